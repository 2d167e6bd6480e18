"""The ``snnspin`` command: parse arguments, build a ``TrainConfig``, call the library."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path

from .config import TrainConfig


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per ``TrainConfig`` field; defaults are None so given ones are known."""
    for f in fields(TrainConfig):
        kind = type(f.default)
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=kind,
            default=None,
            choices=f.metadata.get("choices"),
            help=f"{f.metadata['help']} (default: {f.default})",
        )


def _config_from_args(args) -> TrainConfig:
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    return TrainConfig(**given), given


def _train(args) -> int:
    from .io import read_json
    from .training import train

    config, given = _config_from_args(args)
    out = Path(args.out) if args.out else Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.resume:
        saved = out / "config.json"
        if not saved.exists():
            print(f"error: --resume: no run in {out} (no config.json)", file=sys.stderr)
            return 2
        config = TrainConfig.from_dict({**read_json(saved), **given})
    print(f"training {config.model}: {config.layers} × {config.width} neurons, τ = {config.tau} ns, "
          f"Δt = {config.delta_t} ns, {config.epochs} epochs, seeds {config.seed_list()} → {out}")
    summary = train(config, out, resume=args.resume, progress=not args.quiet)
    stats = summary["stats"]
    per_seed = ", ".join(f"seed {k}: {v:.2f}%" for k, v in summary["accuracy"].items())
    print(f"{summary['evaluated_on']} accuracy per seed: {per_seed}")
    print(f"{config.model}: {stats['mean']:.2f} ± {stats['std']:.2f} % (median {stats['median']:.2f}, "
          f"min {stats['min']:.2f}, max {stats['max']:.2f}) over {stats['n']} seed(s) in {summary['seconds']:.0f} s")
    print(f"{summary['counts']['neurons']} neurons, {summary['counts']['synapses']} synapses; "
          f"results, weights and curves.png in {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snnspin", description="Spintronic oscillator networks: train, tune, design.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the paper's network (or its CTRNN / LIF twin) with BPTT")
    _add_config_options(train)
    train.add_argument("--out", help="run folder (default: runs/<model>-<time>)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``snnspin`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished epochs are saved; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
