"""Trained ideally vs trained device-aware: does the network survive real devices?

For each model (spintronic, CTRNN) this trains the tuned preset twice on the digits:

- **ideal**: identical devices, full-precision weights (the preset as it is);
- **device-aware**: a fresh chip with ``--train-mismatch`` spread (default 5 %) for every
  batch (``chip_draw="batch"``) and ``--train-bits`` weights (default 0: full precision);
  the spintronic network also with thermal noise ``--train-noise`` if given;
- **noise-aware** (spintronic only, with ``--noise-aware X``): the preset trained with thermal
  noise x_th = X (fresh draws every step of every batch) and, with ``--noise-aware-config
  FILE``, another starting config (e.g. the ``best_config.json`` of a study tuned under noise:
  ``snnspin tune --thermal-power X``).

Then ``snnspin.robustness`` deploys every trained seed on ``--chips`` random chips per value
of each axis (device spread 0-10 %, thermal noise, 8-4 bits) and the table compares the two
trainings: median and 25-75 % band over seeds × chips.

    python benchmarks/robustness.py                       # 5 seeds, 10 chips: ~30 min on 2 cores
    python benchmarks/robustness.py --fast                # 1 seed, 2 epochs, 2 chips: a smoke test

Runs go to ``runs/robustness/<model>-<training>`` and resume; tables and the figure go to
``benchmarks/results/robustness.md/.csv/.png``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from snnspin.config import TrainConfig
from snnspin.io import atomic_write_text
from snnspin.presets import preset_config
from snnspin.robustness import AXES, LABELS, evaluate_robustness, summarise
from snnspin.training import train

RESULTS = Path(__file__).parent / "results"


def trainings(model: str, args) -> dict:
    """{name: config} of the ideal and the device-aware training of ``model``."""
    base = preset_config(model, seeds=args.seeds)
    if args.fast:
        base = base.replace(epochs=2)
    aware = dict(mismatch=args.train_mismatch, chip_draw="batch", weight_bits=args.train_bits)
    if model == "spintronic" and args.train_noise:
        aware["thermal_power"] = args.train_noise
    out = {"ideal": base, "device-aware": base.replace(**aware)}
    if model == "spintronic" and args.noise_aware:
        start = TrainConfig.load(args.noise_aware_config) if args.noise_aware_config else base
        out["noise-aware"] = start.replace(thermal_power=args.noise_aware, seeds=base.seeds, epochs=base.epochs,
                                           val_fraction=base.val_fraction)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["spintronic", "ctrnn"], choices=["spintronic", "ctrnn"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--chips", type=int, default=10)
    parser.add_argument("--train-mismatch", type=float, default=0.05)
    parser.add_argument("--train-bits", type=int, default=0)
    parser.add_argument("--train-noise", type=float, default=0.0)
    parser.add_argument("--noise-aware", type=float, default=0.0,
                        help="also train the spintronic network with this thermal noise (0: not)")
    parser.add_argument("--noise-aware-config", default="", help="config file the noise-aware training starts from")
    parser.add_argument("--fast", action="store_true", help="1 seed, 2 epochs, 2 chips")
    parser.add_argument("--work", default="runs/robustness")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.fast:
        args.seeds, args.chips = 1, 2
    rows = []
    for model in args.models:
        for name, config in trainings(model, args).items():
            run = Path(args.work) / f"{model}-{name}"
            print(f"{model} {name}: {config.seeds} seeds → {run}", flush=True)
            train(config, run, resume=(run / "config.json").exists(), progress=False)
            axes = {k: v for k, v in AXES.items() if not (k == "thermal_power" and model != "spintronic")}
            for r in evaluate_robustness(run, args.chips, axes):
                rows.append({"model": model, "training": name, **r})
    write(rows, Path(args.out), " ".join(["python benchmarks/robustness.py", *sys.argv[1:]]), args)


def write(rows: list[dict], out: Path, command: str, args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    suffix = "-fast" if args.fast else ""
    with open(out / f"robustness{suffix}.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Robustness: trained ideally vs device-aware{' (fast mode: not a result)' if args.fast else ''}", "",
             f"`{command}`: the tuned presets on the digits, {args.seeds} seeds per training, each trained seed "
             f"deployed on {args.chips} random chips per point (`snnspin.robustness`). Device-aware training: a "
             f"fresh chip with {args.train_mismatch:g} spread per batch, {args.train_bits or 'full-precision'} "
             f"{'bit ' if args.train_bits else ''}weights"
             f"{f', thermal noise {args.train_noise:g}' if args.train_noise else ''}."
             + (f" Noise-aware training (spintronic): thermal noise x_th = {args.noise_aware:g} in every training step"
                f"{', from ' + args.noise_aware_config if args.noise_aware_config else ', the preset'}."
                if args.noise_aware else "")
             + " Accuracy on the test half: median over seeds × chips (25-75 % band); differences to ideal training.",
             "", "| model | axis | value | ideal | device-aware | difference | noise-aware | difference |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    summaries = {}
    for (model, training) in dict.fromkeys((r["model"], r["training"]) for r in rows):
        part = [r for r in rows if r["model"] == model and r["training"] == training]
        summaries[(model, training)] = {(s["axis"], s["value"]): s for s in summarise(part)}
    for model in dict.fromkeys(r["model"] for r in rows):
        ideal = summaries[(model, "ideal")]
        others = [summaries.get((model, name), {}) for name in ("device-aware", "noise-aware")]
        for key in ideal:
            a = ideal[key]
            cells = [f"{a['median']:.2f} ({a['q25']:.1f}-{a['q75']:.1f})"]
            for other in others:
                b = other.get(key)
                cells += [f"{b['median']:.2f} ({b['q25']:.1f}-{b['q75']:.1f})", f"{b['median'] - a['median']:+.2f}"
                          ] if b else ["—", "—"]
            lines.append(f"| {model} | {key[0]} | {key[1]:g} | {' | '.join(cells)} |")
    atomic_write_text(out / f"robustness{suffix}.md", "\n".join(lines) + "\n")
    figure(summaries, out / f"robustness{suffix}.png")
    print(f"wrote {out / f'robustness{suffix}.md'}")


def figure(summaries: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(m for m, _ in summaries))
    axes_names = list(AXES)
    fig = Figure(figsize=(4 * len(axes_names), 3.2 * len(models)), layout="constrained")
    FigureCanvasAgg(fig)
    for i, model in enumerate(models):
        for j, axis in enumerate(axes_names):
            ax = fig.add_subplot(len(models), len(axes_names), i * len(axes_names) + j + 1)
            for training in ("ideal", "device-aware", "noise-aware"):
                points = sorted((v for (a, _), v in summaries.get((model, training), {}).items() if a == axis),
                                key=lambda s: s["value"])
                if axis == "weight_bits":
                    points = [p for p in points if p["value"]] + [p for p in points if not p["value"]]
                if not points:
                    continue
                x = np.arange(len(points)) if axis == "weight_bits" else [p["value"] for p in points]
                ax.fill_between(x, [p["q25"] for p in points], [p["q75"] for p in points], alpha=0.25)
                ax.plot(x, [p["median"] for p in points], "o-", label=training)
                if axis == "weight_bits":
                    ax.set_xticks(x, [str(p["value"]) if p["value"] else "full" for p in points])
            ax.set_xlabel(LABELS[axis])
            ax.set_ylabel(f"{model}: accuracy (%)")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, f"does not apply to {model}", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
