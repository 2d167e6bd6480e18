"""Accuracy against energy per inference: the spintronic network, its CTRNN twin and the
spiking twins (LIF, ALIF), each trained on the digits and each costed on its own hardware.

Each model trains ``--seeds`` seeds with its preset (``snnspin.presets``, the tuned one by
default; ``--config MODEL=FILE`` for another, e.g. a tuning study's ``best_config.json``).
Then, for every trained seed, on the test half: the accuracy, and the energy per inference
measured by ``snnspin.energy.measure_energy`` (its docstring gives every constant and its
source: the paper's device estimate for the oscillators, Horowitz 2014 MACs for the CTRNN on
digital hardware, Loihi's synaptic operations and neuron updates for the spiking twins).

    python benchmarks/accuracy_energy.py                    # 10 seeds per model
    python benchmarks/accuracy_energy.py --fast             # 1 seed, 2 epochs: a smoke test

Runs go to ``runs/accuracy-energy/<model>`` and resume; the table and figure to
``benchmarks/results/accuracy-energy.md`` / ``.png`` (``-fast`` in fast mode).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from snnspin.config import TrainConfig
from snnspin.energy import measure_energy
from snnspin.io import atomic_write_text, read_json
from snnspin.presets import preset_config
from snnspin.training import load_data, train, trained_models

RESULTS = Path(__file__).parent / "results"
MODELS = ("spintronic", "ctrnn", "lif", "alif")


def config_for(model: str, files: dict, seeds: int, fast: bool) -> TrainConfig:
    config = TrainConfig.load(files[model]) if model in files else preset_config(model)
    config = config.replace(seeds=seeds, val_fraction=0.0)
    return config.replace(epochs=2) if fast else config


def measure(model: str, config: TrainConfig, run: Path) -> dict:
    """Train (or resume) the run, then per seed: test accuracy and energy."""
    train(config, run, resume=(run / "config.json").exists(), progress=False)
    summary = read_json(run / "summary.json")
    _, (x_test, _) = load_data(config)
    _, models = trained_models(run)
    energies, rates = [], []
    for _, net in models:
        result = measure_energy(net, x_test)
        energies.append(result["energy_pj"])
        rates.append(result.get("spike_rate"))
        hardware, source = result["hardware"], result["source"]
    accuracies = [float(v) for v in summary["accuracy"].values()]
    spike_rates = None
    if rates[0] is not None:
        spike_rates = [statistics.mean(r[layer] for r in rates) for layer in range(len(rates[0]))]
    return {"model": model, "hardware": hardware, "source": source, "seeds": len(accuracies),
            "accuracy": statistics.mean(accuracies), "std": statistics.pstdev(accuracies),  # population std, as snnspin.training.summarize
            "energy_pj": statistics.median(energies), "spike_rates": spike_rates}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--config", nargs="+", default=[], metavar="MODEL=FILE",
                        help="a config JSON per model instead of its tuned preset")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--work", default="runs/accuracy-energy")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    files = dict(item.split("=", 1) for item in args.config)
    seeds = 1 if args.fast else args.seeds
    rows = []
    for model in args.models:
        config = config_for(model, files, seeds, args.fast)
        print(f"{model}: {seeds} seed(s), {config.epochs} epochs", flush=True)
        rows.append(measure(model, config, Path(args.work) / model))
        print(f"  {rows[-1]['accuracy']:.2f} % at {rows[-1]['energy_pj']:.4g} pJ per inference", flush=True)
    write(rows, Path(args.out), " ".join(["python benchmarks/accuracy_energy.py", *sys.argv[1:]]), args.fast)


def write(rows: list[dict], out: Path, command: str, fast: bool) -> None:
    suffix = "-fast" if fast else ""
    lines = [f"# Accuracy against energy per inference{' (fast mode: not a result)' if fast else ''}", "",
             f"`{command}`: sequential digits (test half), each model on its own hardware; accuracy: mean ± "
             "population std over seeds; energy: median over seeds of the per-sequence energy measured on the trained network (`snnspin.energy`).", "",
             "| model | hardware | seeds | accuracy (%) | energy per inference (pJ) | spikes per neuron per step "
             "(layers) | constants |", "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        rates = ", ".join(f"{v:.3f}" for v in r["spike_rates"]) if r["spike_rates"] else "—"
        lines.append(f"| {r['model']} | {r['hardware']} | {r['seeds']} | {r['accuracy']:.2f} ± {r['std']:.2f} | "
                     f"{r['energy_pj']:.4g} | {rates} | {r['source']} |")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"accuracy-energy{suffix}.md", "\n".join(lines) + "\n")
    figure(rows, out / f"accuracy-energy{suffix}.png")
    print(f"wrote {out / f'accuracy-energy{suffix}.md'}")


def figure(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for r in rows:
        ax.errorbar(r["energy_pj"], r["accuracy"], yerr=r["std"], fmt="o", capsize=3, label=f"{r['model']} "
                    f"({r['hardware']})")
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (pJ, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
