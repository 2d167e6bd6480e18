"""Rerun a tuning study's best trials on fresh seeds, still on validation: the second half of
the method that picked the CTRNN preset (``snnspin/presets.py``), for any study.

A trial's value is the mean over its ``--trial-seeds`` seeds of the validation accuracy of
the last 5 epochs, so the best of 150 trials is partly luck. This script takes the ``--top``
complete trials of the study in ``--out``, rebuilds each one's config from the study's own
base config (recorded in the study) and its parameters, and trains it on ``--seeds`` fresh
seeds (from ``--first-seed``; the study used 0 .. trial_seeds - 1) on the same validation
split, optionally for another number of ``--epochs``. ``--with-base`` reruns the study's base
config (the preset it started from, as it is, not clamped to the search space) beside them.
Nothing here sees the test half.

    python benchmarks/rerun_trials.py --out benchmarks/results/tune-lif --top 5 --seeds 4 --first-seed 4
    python benchmarks/rerun_trials.py --out benchmarks/results/tune-lif --top 2 --epochs 200 --with-base

Writes ``<out>/rerun-<epochs>ep.md`` (a table: trial, study value, rerun mean ± std over the
seeds, each seed) and ``<out>/trial-<n>-<epochs>ep.json`` (each rerun config, evaluating on validation;
``snnspin train --config FILE --val-fraction 0`` trains it on the whole training half and
tests it on the test half).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import optuna

from snnspin.config import TrainConfig
from snnspin.hpo import LAST_EPOCHS
from snnspin.io import atomic_write_json, atomic_write_text
from snnspin.training import load_data, train_seeds


def study_of(out: Path, name: str | None) -> optuna.Study:
    storage = f"sqlite:///{out / 'study.db'}"
    if not (out / "study.db").exists():
        raise SystemExit(f"no study.db in {out}")
    names = optuna.get_all_study_names(storage)
    name = name or (names[0] if len(names) == 1 else None)
    if name not in names:
        raise SystemExit(f"{out / 'study.db'} holds the studies {names}; name one with --study")
    return optuna.load_study(study_name=name, storage=storage)


def rerun(config: TrainConfig, seeds: list[int], data) -> list[float]:
    """Per seed, the mean validation accuracy (%) of the last LAST_EPOCHS epochs."""
    runs = train_seeds(config, seeds, progress=False, data=data)
    return [statistics.mean(r.eval_acc for r in history[-LAST_EPOCHS:]) for _, history in runs.values()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the study's folder (study.db)")
    parser.add_argument("--study", default=None, help="study name (default: the only one in the store)")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=None, help="default: the study's")
    parser.add_argument("--with-base", action="store_true", help="rerun the study's base config too")
    args = parser.parse_args(argv)
    if args.top < 1 or args.seeds < 1:
        parser.error("--top and --seeds must be >= 1")
    out = Path(args.out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = study_of(out, args.study)
    base = TrainConfig.from_dict(study.user_attrs["base_config"], source=str(out / "study.db"))
    if not base.val_fraction:
        raise SystemExit("the study's base config has no validation split (val_fraction 0)")
    epochs = args.epochs or base.epochs
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = sorted(complete, key=lambda t: -t.value)[: args.top]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    data = load_data(base)
    candidates = ([("base", None, base)] if args.with_base else []) + \
        [(str(t.number), t.value, base.replace(**t.params)) for t in best]
    rows = []
    for label, value, config in candidates:
        config = config.replace(epochs=epochs)
        name = "base" if label == "base" else f"trial-{label}"
        atomic_write_json(out / f"{name}-{epochs}ep.json", config.to_dict())
        accuracies = rerun(config, seeds, data)
        mean, std = statistics.mean(accuracies), statistics.pstdev(accuracies)
        rows.append((label, value, mean, std, accuracies))
        print(f"{label}: study {value if value is None else round(value, 2)}, rerun {mean:.2f} ± {std:.2f} %", flush=True)
    lines = [f"# Best trials of `{study.study_name}` rerun on fresh seeds (validation)", "",
             f"`python benchmarks/rerun_trials.py {' '.join(argv if argv is not None else sys.argv[1:])}`: "
             f"{len(complete)} complete trials in the study; the top {len(best)} by their value (the mean over "
             f"{study.user_attrs.get('trial_seeds', 1)} seed(s) of the last {LAST_EPOCHS} epochs' validation "
             f"accuracy), trained again on seeds {seeds[0]}-{seeds[-1]} for {epochs} epochs on the same validation "
             f"split ({base.val_fraction:.0%} of the training half). Rerun: mean ± population std over the seeds "
             f"of the same measure. The test half is not used.", "",
             "| trial | study value (%) | rerun (%) | per seed (%) |", "| --- | ---: | ---: | --- |"]
    for label, value, mean, std, accuracies in rows:
        shown = "—" if value is None else f"{value:.2f}"
        lines.append(f"| {label} | {shown} | {mean:.2f} ± {std:.2f} | {', '.join(f'{a:.1f}' for a in accuracies)} |")
    target = out / f"rerun-{epochs}ep.md"
    atomic_write_text(target, "\n".join(lines) + "\n")
    print(f"written to {target}")


if __name__ == "__main__":
    main()
