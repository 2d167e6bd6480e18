"""Reproduce the paper's comparison: 10 seeds each of the spintronic network, its CTRNN twin
and the spiking (LIF) twin on sequential digits (3 × 32, densities 0.5, Δt = 1 ns).

Each model uses its preset (``snnspin.presets``; ``--preset paper`` for the paper's published
hyperparameters). Runs go to ``benchmarks/results/accuracy/<model>/`` and resume if
interrupted; the table is written to ``benchmarks/results/accuracy.md`` and ``.csv``.

    python benchmarks/reproduce_accuracy.py                  # 10 seeds, tuned presets
    python benchmarks/reproduce_accuracy.py --seeds 3 --models ctrnn
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

from snnspin.io import atomic_write_text, read_json
from snnspin.presets import PAPER_ACCURACY, preset_config
from snnspin.training import train

RESULTS = Path(__file__).parent / "results"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["spintronic", "ctrnn", "lif"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--preset", default="tuned", choices=["tuned", "paper", "paper-2pi"])
    parser.add_argument("--out", default=str(RESULTS / "accuracy"))
    parser.add_argument("--fresh", action="store_true", help="delete earlier runs instead of resuming them")
    args = parser.parse_args(argv)
    for model in args.models:
        config = preset_config(model, args.preset).replace(seeds=args.seeds)
        run = Path(args.out) / f"{model}-{args.preset}"
        if args.fresh and run.exists():
            shutil.rmtree(run)
        resume = (run / "config.json").exists()
        print(f"{model}: {config.seeds} seeds, {config.epochs} epochs → {run}", flush=True)
        s = train(config, run, resume=resume, progress=True)["stats"]
        print(f"  {s['mean']:.2f} ± {s['std']:.2f} % (median {s['median']:.2f})", flush=True)
    write_table(Path(args.out), args.preset)


def write_table(out: Path, preset: str) -> None:
    """The Markdown and CSV tables of every finished ``<model>-<preset>`` run under ``out``."""
    rows = []
    for model in ("spintronic", "ctrnn", "lif"):
        run = out / f"{model}-{preset}"
        if not (run / "summary.json").exists():
            continue
        s = read_json(run / "summary.json")["stats"]
        seeds = sorted(run.glob("seed_*/history.json"))
        seconds = sum(sum(r["seconds"] for r in read_json(h)) for h in seeds)
        rows.append({
            "model": model, "preset": preset, "seeds": s["n"], "mean": s["mean"], "std": s["std"],
            "median": s["median"], "min": s["min"], "max": s["max"],
            "paper": PAPER_ACCURACY.get(model, ""), "train_seconds": seconds,
        })
    table = [
        "| model | preset | seeds | mean ± std (%) | median | min | max | paper (%) | training time (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        paper = f"{r['paper'][0]:.2f} ± {r['paper'][1]:.2f}" if r["paper"] else "—"
        table.append(f"| {r['model']} | {r['preset']} | {r['seeds']} | {r['mean']:.2f} ± {r['std']:.2f} | "
                     f"{r['median']:.2f} | {r['min']:.2f} | {r['max']:.2f} | {paper} | {r['train_seconds']:.0f} |")
    stem = out.parent / f"accuracy-{preset}"
    atomic_write_text(stem.with_suffix(".md"), "\n".join(table) + "\n")
    with open(stem.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "paper": r["paper"][0] if r["paper"] else ""})
    print("\n".join(table))


if __name__ == "__main__":
    main()
