"""The ``snnspin`` command: parse arguments, build a ``TrainConfig``, call the library.

How the values of a configuration combine (``train``, ``tune`` and ``design``):
preset < config file < explicit flags.

1. ``--preset`` (default ``tuned``) gives every field, for the model named by ``--model``,
   else by the config file's ``"model"``, else ``spintronic``.
2. ``--config FILE`` overrides the fields the file sets. A complete file, such as a run's
   ``config.json`` or a study's ``best_config.json``, sets them all, so the preset then
   changes nothing; a partial file (say ``{"tau": 3.0}``) takes its missing fields from
   the preset.
3. Options given on the command line override both.

``train --resume`` with neither ``--preset`` nor ``--config`` starts from the run's saved
``config.json`` instead of 1-2; either way only ``--epochs``, ``--seeds`` (to grow the run,
never to shrink it) and ``--device`` may differ from the saved configuration.

Every check (configuration, device, run folder, resume) passes before anything is written;
a bad input ends with one ``error: ...`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import fields
from pathlib import Path

from .config import MODELS, TrainConfig

PRECEDENCE = """\
how the values combine: preset < config file < explicit flags
  1. --preset (default: tuned) gives every field, for the model named by --model,
     else by the config file's "model", else spintronic;
  2. --config FILE overrides the fields the file sets: a complete file (a run's
     config.json, a study's best_config.json) sets them all, so the preset changes
     nothing; a partial file takes its missing fields from the preset;
  3. options given on the command line override both."""

RESUME_NOTE = """
with --resume and neither --preset nor --config, the run's saved config.json takes
the place of 1-2; only --epochs, --seeds (to grow the run) and --device may differ."""


def _default_text(f) -> str:
    """The default of a config option as ``--help`` shows it: the tuned preset's value for
    the default model where it differs from the paper preset's (the dataclass default), then
    the other models' tuned values where they differ from that."""
    from .presets import TUNED

    show = lambda v: ("on" if v else "off") if isinstance(v, bool) else v
    paper = f.default
    tuned = TUNED["spintronic"].get(f.name, paper)
    models = [f"{m} {show(v.get(f.name, paper))}" for m, v in TUNED.items()  # a field a preset leaves: the default
              if m != "spintronic" and v.get(f.name, paper) != tuned]
    others = f"; tuned {', '.join(models)}" if models else ""
    other = f"paper: {show(paper)}" if f.metadata.get("paper") else f"--preset paper: {show(paper)}"
    if tuned != paper:
        return f"default: tuned preset, {show(tuned)} for spintronic; {other}{others}"
    return f"default: {show(paper)}" + (", the paper's" if f.metadata.get("paper") else "") + others


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per ``TrainConfig`` field (defaults None, so given ones are known;
    booleans as ``--flag`` / ``--no-flag``), and ``--preset`` for the values not given."""
    parser.add_argument("--preset", choices=["tuned", "paper", "paper-2pi"], default=None,
                        help="starting values per model: tuned (default), the paper's published ones read "
                             "literally (paper), or with τ = 14.12/2π ns and 100 epochs, the reading under which "
                             "the paper's design point trains (paper-2pi)")
    for f in fields(TrainConfig):
        option = f"--{f.name.replace('_', '-')}"
        text = f"{f.metadata['help']} ({_default_text(f)})"
        if isinstance(f.default, bool):
            parser.add_argument(option, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        parser.add_argument(option, dest=f.name, type=type(f.default), default=None,
                            choices=f.metadata.get("choices"), help=text)


def _given(args) -> dict:
    """The config fields given explicitly on the command line."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}


def _preset_and_file(path, preset: str = "tuned", model: str | None = None) -> TrainConfig:
    """The preset of ``model`` (else the file's model, else spintronic) overridden by the
    fields of the config file ``path`` (if any); errors in the file name it."""
    from .config import read_config_fields
    from .presets import preset_config

    from_file = read_config_fields(path) if path else {}
    model = model or from_file.get("model", "spintronic")
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"config {path}: model must be one of {', '.join(MODELS)}, got {model!r}")
    try:
        return preset_config(model, preset, **{k: v for k, v in from_file.items() if k != "model"})
    except ValueError as error:
        if not path:
            raise
        raise ValueError(f"config {path}: {error}") from None


def _config_from_args(args) -> tuple[TrainConfig, dict]:
    """The config (preset < ``--config`` file < explicit options; see the module docstring)
    and the options given explicitly. Errors in the file name the file."""
    given = _given(args)
    if "epochs" in given and "schedule" not in given:  # epochs typed by the user are epochs of their data
        given["schedule"] = "epochs"
    base = _preset_and_file(getattr(args, "config", None), getattr(args, "preset", None) or "tuned",
                            given.get("model"))
    return base.replace(**given), given


def _train(args) -> int:
    from .defaults import resolve_for_data
    from .training import as_it_ran, check_run_folder, data_fingerprint, load_data, resolve_device, train

    if args.resume:
        if not args.out:
            raise ValueError("--resume needs --out, the folder of the run to continue")
        if not (Path(args.out) / "config.json").exists():
            raise ValueError(f"--resume: no run in {args.out} (no config.json)")
    if args.resume and not (args.config or args.preset):
        config = TrainConfig.load(Path(args.out) / "config.json").replace(**_given(args))
    else:
        config, _ = _config_from_args(args)
    out = Path(args.out) if args.out else Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    resolve_device(config.device)
    data = load_data(config)
    if args.resume:  # a run saved before a field existed goes on as it ran
        config = as_it_ran(config, out)
    config = resolve_for_data(config, data)  # what will run (and be compared with a saved run)
    check_run_folder(config, out, args.resume, data_fingerprint(data))
    from .design import rule_warnings

    for warning in rule_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"training {config.model}: {config.layers} × {config.width} neurons, τ = {config.tau} ns, "
          f"Δt = {config.delta_t} ns, {config.epochs} epochs, seeds {config.seed_list()} → {out}")
    summary = train(config, out, resume=args.resume, progress=not args.quiet, data=data)
    stats = summary["stats"]
    per_seed = ", ".join(f"seed {k}: {v:.2f}%" for k, v in summary["accuracy"].items())
    print(f"{summary['evaluated_on']} accuracy per seed: {per_seed}")
    print(f"{config.model}: {stats['mean']:.2f} ± {stats['std']:.2f} % (median {stats['median']:.2f}, "
          f"min {stats['min']:.2f}, max {stats['max']:.2f}) over {stats['n']} seed(s) in {summary['seconds']:.0f} s")
    print(f"{summary['counts']['neurons']} neurons, {summary['counts']['synapses']} synapses; "
          f"results, weights and curves.png in {out}")
    return 0


def load_run_model(run_dir: Path, seed: int | None = None):
    """(config, model with trained weights, seed) from a run folder made by ``snnspin train``."""
    from .training import trained_models

    seeds = [seed] if seed is not None else None
    config, models = trained_models(run_dir, seeds)
    for k, model in models:
        return config, model, k
    raise ValueError(f"no trained weights in {run_dir} (looked for seed_<k>/weights.pt, "
                     f"seeds {seeds or config.seed_list()})")


def _design(args) -> int:
    import json

    from . import design

    if args.run:
        ignored = [f"--{k.replace('_', '-')}" for k in _given(args)] + [o for o in ("--config", "--preset")
                                                                      if getattr(args, o[2:])]
        if ignored:
            raise ValueError(f"--run uses the run's own config.json; {', '.join(ignored)} would be ignored")
        config, model, seed = load_run_model(Path(args.run), args.seed)
        source = f"trained weights of {args.run}, seed {seed}"
    else:
        config, _ = _config_from_args(args)
        if config.data:  # the widths (channels, classes) and data-dependent defaults of that file
            from .defaults import resolve_for_data
            from .training import load_data

            config = resolve_for_data(config, load_data(config))
        model, source = None, "a freshly initialised network"
    f_range = tuple(args.f_range) if args.f_range else design.DEVICE_FREQUENCY_GHZ
    report = design.report(config, model, alpha=args.alpha, presentation_ns=args.presentation_ns, f_range=f_range)
    if args.json:
        print(json.dumps({**report, "source": source}, indent=2))
    else:
        print(f"design report for the {config.model} network ({source})")
        print(design.format_report(report))
    return 0


def _check_workers(args) -> None:
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if not (args.heartbeat > 0 and math.isfinite(args.heartbeat)):
        raise ValueError(f"--heartbeat must be a finite number of seconds > 0, got {args.heartbeat}")


def _spawn_workers(args, storage: str) -> int:
    """Run the same command in ``args.workers`` local processes on ``storage`` (each with
    its share of the CPU threads) and wait for them; 0 when all succeeded."""
    import os
    import subprocess

    argv = [*args.argv, "--workers", "1"]
    if "--storage" not in argv and not any(a.startswith("--storage=") for a in argv):
        argv += ["--storage", storage]  # the default store is resolved once, here, for all workers
    threads = str(max(1, (os.cpu_count() or 1) // args.workers))
    procs = []
    for index in range(args.workers):
        env = {**os.environ, "SNNSPIN_WORKER": str(index + 1), "OMP_NUM_THREADS": threads,
               "MKL_NUM_THREADS": threads}
        procs.append(subprocess.Popen([sys.executable, "-m", "snnspin.cli", *argv], env=env))
    codes = [p.wait() for p in procs]
    died = [f"worker {i + 1} ({'signal ' + str(-c) if c < 0 else 'exit ' + str(c)})" for i, c in enumerate(codes) if c]
    if died:
        print(f"error: {', '.join(died)}; rerun the same command to finish what they left", file=sys.stderr)
        return 1
    print(f"{args.workers} workers finished")
    return 0


def _worker_prefix() -> str:
    import os

    worker = os.environ.get("SNNSPIN_WORKER")
    return f"[worker {worker}] " if worker else ""


def _robustness(args) -> int:
    from .robustness import AXES, evaluate_robustness, summarise, write_outputs

    if args.chips < 1:
        raise ValueError(f"--chips must be at least 1, got {args.chips}")
    run = Path(args.run)
    given = {"mismatch": args.mismatch, "thermal_power": args.thermal_power, "weight_bits": args.weight_bits}
    axes = {k: v for k, v in given.items() if v is not None} or None
    out = Path(args.out) if args.out else run

    def progress(k, total):
        if not args.quiet and (k == total or k % 10 == 0):
            print(f"  {k}/{total} evaluations", flush=True)

    print(f"robustness of {run}: {args.chips} chips per point; axes "
          f"{', '.join(axes or AXES)}")
    rows = evaluate_robustness(run, args.chips, axes, progress)
    paths = write_outputs(rows, out, title=str(run))
    for s in summarise(rows):
        print(f"  {s['axis']} = {s['value']:g}: median {s['median']:.2f} % (25-75 %: {s['q25']:.2f}-{s['q75']:.2f}, "
              f"{s['n']} evaluations)")
    print(f"table {paths['md']}, every evaluation {paths['csv']}, figure {paths['png']}")
    return 0


def _tune(args) -> int:
    if args.trials < 1:
        raise ValueError(f"--trials must be at least 1, got {args.trials}")
    _check_workers(args)
    from .hpo import tune

    config, _ = _config_from_args(args)
    out = Path(args.out) if args.out else Path("runs") / f"tune-{config.model}"
    from .hpo import search_space, tau_range_for_frequencies

    if args.tau_range and args.f_range:
        raise ValueError("give --tau-range or --f-range, not both")
    tau_range = tuple(args.tau_range) if args.tau_range else (
        tau_range_for_frequencies(*args.f_range, alpha=args.alpha) if args.f_range else None)
    space = search_space(tau_range)
    if args.workers > 1:
        out.mkdir(parents=True, exist_ok=True)
        return _spawn_workers(args, args.storage or f"sqlite:///{(out / 'study.db').resolve()}")
    print(f"{_worker_prefix()}tuning {config.model} ({config.epochs} epochs per trial, validation on 20 % of the "
          f"training half) until {args.trials} trials are finished; study in {args.storage or out / 'study.db'}")
    if tau_range:
        print(f"{_worker_prefix()}τ searched in {space['tau'][0]:.4g}-{space['tau'][1]:.4g} ns")
    result = tune(config, out, args.trials, storage=args.storage, study_name=args.study, progress=not args.quiet,
                  trial_seeds=args.trial_seeds, enqueue_base=args.enqueue_base, heartbeat=args.heartbeat, space=space)
    print(f"best validation accuracy {result['best_value']:.2f} % (trial {result['best_trial']}, "
          f"{result['trials_finished']} trials finished)")
    for name, value in result["best_params"].items():
        print(f"  {name} = {value}")
    print(f"best configuration: {out / 'best_config.json'}; evaluate it on the test half with\n"
          f"  snnspin train --config {out / 'best_config.json'} --seeds 10")
    return 0


def _parse_grid(items) -> dict:
    """``--grid FIELD=V1,V2 ...`` as {field: values}, each value parsed as its config field's
    type (``density`` sets both densities); a bad item is one ``ValueError`` line.

    >>> _parse_grid(["width=4,8", "tau=1.5", "learn_tau=true,false"])
    {'width': [4, 8], 'tau': [1.5], 'learn_tau': [True, False]}
    """
    kinds = {f.name: f.type for f in fields(TrainConfig)} | {"density": "float"}
    bools = {"true": True, "false": False}
    parse = {"int": int, "float": float, "str": str, "bool": lambda v: bools[v.lower()]}
    grid = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or name not in kinds:
            raise ValueError(f"--grid {item!r}: expected FIELD=V1,V2,... with FIELD a config field or density")
        try:
            grid[name] = [parse[kinds[name]](v) for v in values.split(",")]
        except (ValueError, KeyError):
            raise ValueError(f"--grid {item!r}: {name} takes {kinds[name]} values") from None
    return grid


def _sweep(args) -> int:
    from .sweep import SWEEPS, failures, open_sweep, run_sweep

    _check_workers(args)
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    if args.name not in SWEEPS and not args.grid:
        raise ValueError(f"unknown sweep {args.name!r}; choose one of: {', '.join(SWEEPS)} (or give --grid)")
    grid = _parse_grid(args.grid) if args.grid else None
    base = _preset_and_file(args.config) if args.config else None
    data = args.data or ""  # your own series: every point of the sweep reads them
    out = Path(args.out)
    storage = args.storage or f"sqlite:///{(out / 'sweeps.db').resolve()}"
    # every point checked, opening no store: nothing is made before the plan is valid
    plan = run_sweep(args.name, storage, args.preset, args.seeds, base, grid, plan_only=True, data=data)
    if not args.storage:
        out.mkdir(parents=True, exist_ok=True)
    if args.workers > 1:
        open_sweep(args.name, storage)  # a bad store is one error here, not one per worker
        return _spawn_workers(args, storage)
    prefix = _worker_prefix()
    waited = set()

    def progress(spec, accuracy):
        print(f"{prefix}  {spec['point']} seed {spec['seed']}: {accuracy:.2f} %", flush=True)

    def on_wait(keys):
        if set(keys) != waited:
            waited.clear()
            waited.update(keys)
            print(f"{prefix}waiting for {len(keys)} training(s) held by other workers (one whose heartbeat stops "
                  f"for {5 * args.heartbeat:g} s is taken over)", flush=True)

    print(f"{prefix}sweep {args.name} ({args.preset} preset) into {storage}")
    results = run_sweep(args.name, storage, args.preset, args.seeds, base, grid, progress, heartbeat=args.heartbeat,
                        on_wait=on_wait, data=data)
    failed = failures(open_sweep(args.name, storage), plan)
    print(f"{prefix}{len(results)} trainings finished in the store; draw them with: snnspin figures --storage {storage}")
    if failed:
        for f in failed:
            print(f"error: {f['point']} seed {f['seed']} failed: {f['error']}", file=sys.stderr)
        print(f"error: {len(failed)} training(s) failed; rerun the command to retry them", file=sys.stderr)
        return 1
    return 0


def _figures(args) -> int:
    from .io import atomic_write_text
    from .plot import plot_sweep
    from .sweep import open_sweep, results, sweep_names, table

    out = Path(args.out)
    held = sweep_names(args.storage)  # a missing store is refused here; nothing is created
    if not held:
        raise ValueError(f"no sweep in {args.storage} (run snnspin sweep first)")
    names = args.sweeps or held
    missing = [n for n in names if n not in held]
    if missing:
        raise ValueError(f"no sweep {', '.join(map(repr, missing))} in {args.storage} (it holds: {', '.join(held)})")
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        study = open_sweep(name, args.storage)
        rows = table(study)
        if not rows:
            print(f"{name}: no finished training yet")
            continue
        x, series = study.user_attrs.get("x", "delta_t"), study.user_attrs.get("series", "")
        plot_sweep(name, rows, x, series, out / f"{name}.png", results=results(study), overlay=not args.no_paper)
        keys = [k for k in rows[0] if k not in ("median", "q25", "q75", "seeds", "drive")]
        lines = [f"| {' | '.join(keys)} | seeds | median (%) | 25 % | 75 % | drive I·Δt |",
                 "|" + " --- |" * (len(keys) + 5)]
        for r in sorted(rows, key=lambda r: [str(r[k]) if isinstance(r[k], str) else r[k] for k in keys]):
            drive = f"{r['drive']:.3g}" if r["drive"] is not None else "—"
            lines.append(f"| {' | '.join(str(r[k]) for k in keys)} | {r['seeds']} | {r['median']:.2f} | "
                         f"{r['q25']:.2f} | {r['q75']:.2f} | {drive} |")
        atomic_write_text(out / f"{name}.md", "\n".join(lines) + "\n")
        print(f"{name}: {out / (name + '.png')} and {out / (name + '.md')} ({len(rows)} points)")
    return 0


def _add_worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=1,
                        help="start this many local worker processes on the store (default: 1); workers on other "
                             "machines run the same command with the same --storage")
    parser.add_argument("--heartbeat", type=float, default=10.0,
                        help="seconds between a worker's heartbeats; a training whose worker misses 5 is taken over "
                             "by another worker (default: 10)")


def build_parser() -> argparse.ArgumentParser:
    """The ``snnspin`` argument parser (subcommands train, tune, sweep, figures, robustness, design).

    >>> build_parser().parse_args(["train", "--no-learn-tau", "--tau", "3"]).learn_tau
    False
    """
    parser = argparse.ArgumentParser(prog="snnspin", description="Spintronic oscillator networks: train, tune, design.")
    sub = parser.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter
    train = sub.add_parser("train", help="train the paper's network (or its CTRNN / LIF twin) with BPTT",
                           description="Train the paper's network (or its CTRNN / LIF twin) with BPTT.",
                           epilog=PRECEDENCE + RESUME_NOTE, formatter_class=raw)
    _add_config_options(train)
    train.add_argument("--config", help="start from this config JSON (e.g. best_config.json of `snnspin tune`); "
                                        "fields it does not set come from --preset (see below)")
    train.add_argument("--out", help="run folder (default: runs/<model>-<time>)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    tune = sub.add_parser("tune", help="Optuna search of τ, lr0, lr_decay, S, input and init scale (validation split)",
                          description="Optuna search of τ, lr0, lr_decay, S, input and init scale on a validation "
                                      "split.", epilog=PRECEDENCE, formatter_class=raw)
    _add_config_options(tune)
    tune.add_argument("--config", help="start from this config JSON; fields it does not set come from --preset")
    tune.add_argument("--trials", type=int, default=50, help="finished trials to reach, >= 1 (default: 50)")
    tune.add_argument("--out", help="folder for the study and best_config.json (default: runs/tune-<model>)")
    tune.add_argument("--storage", help="Optuna storage URL shared by workers (default: sqlite file in --out)")
    tune.add_argument("--study", help="study name (default: snnspin-<model>)")
    tune.add_argument("--trial-seeds", type=int, default=1,
                      help="initialisation seeds per trial, averaged (default: 1)")
    tune.add_argument("--enqueue-base", action="store_true",
                      help="a new study's first trial evaluates the starting values (the preset's)")
    tune.add_argument("--tau-range", type=float, nargs=2, metavar=("LO", "HI"),
                      help="search τ only in [LO, HI] ns (what your devices can do; default 0.5 30)")
    tune.add_argument("--f-range", type=float, nargs=2, metavar=("LO", "HI"),
                      help="search only τ = 1/(2π α f) of devices oscillating at f in [LO, HI] GHz (with --alpha)")
    tune.add_argument("--alpha", type=float, default=0.01, help="Gilbert damping α for --f-range (default: 0.01)")
    tune.add_argument("--quiet", action="store_true", help="no line per finished trial")
    _add_worker_options(tune)
    tune.set_defaults(func=_tune)

    from .sweep import SWEEPS

    sweep = sub.add_parser("sweep", help="run a named sweep of the paper's figures (or a custom grid) into a store")
    sweep.add_argument("name", help=f"one of {', '.join(SWEEPS)}, or any name with --grid")
    sweep.add_argument("--preset", choices=["small", "full"], default="small",
                       help="small: few points, 2 seeds, 15 epochs (minutes); full: the paper's grid, 10 seeds")
    sweep.add_argument("--seeds", type=int, help="seeds per point (default: the preset's)")
    sweep.add_argument("--grid", nargs="+", metavar="FIELD=V1,V2", help="custom grid over config fields")
    sweep.add_argument("--config", help="base config JSON (default: the tuned spintronic preset); fields it does "
                                        "not set come from the tuned preset of its model")
    sweep.add_argument("--data", help="a .npz file of your own series (x [N, T, F], y [N]) that every point trains on")
    sweep.add_argument("--out", default="runs/sweeps", help="folder of the default SQLite store")
    sweep.add_argument("--storage", help="Optuna/SQLAlchemy storage URL shared by workers")
    _add_worker_options(sweep)
    sweep.set_defaults(func=_sweep)

    figures = sub.add_parser("figures", help="draw every sweep of a store as PNG + Markdown table")
    figures.add_argument("--storage", default=f"sqlite:///{Path('runs/sweeps/sweeps.db').resolve()}")
    figures.add_argument("--out", default="runs/figures")
    figures.add_argument("--sweeps", nargs="+", help="only these sweeps")
    figures.add_argument("--no-paper", action="store_true", help="do not overlay the paper's reported values")
    figures.set_defaults(func=_figures)

    robust = sub.add_parser("robustness", help="accuracy of a trained run on many random chips: device spread, "
                                                "thermal noise, weight precision",
                            description="Deploy a trained run's weights on many random chips, one device "
                                        "imperfection at a time; median and 25-75 % band over seeds × chips.")
    robust.add_argument("--run", required=True, help="a run folder from `snnspin train`")
    robust.add_argument("--chips", type=int, default=10, help="random chips (and noise draws) per point (default: 10)")
    robust.add_argument("--mismatch", type=float, nargs="+", help="device spreads to try (default: 0 0.02 0.05 0.1)")
    robust.add_argument("--thermal-power", type=float, nargs="+",
                        help="thermal noise levels x_th to try (default: 0 0.001 0.01 0.03; spintronic only)")
    robust.add_argument("--weight-bits", type=int, nargs="+", help="weight precisions to try (default: 0 8 6 4)")
    robust.add_argument("--out", help="folder for robustness.md/.csv/.png (default: the run folder)")
    robust.add_argument("--quiet", action="store_true", help="no progress lines")
    robust.set_defaults(func=_robustness)

    design = sub.add_parser("design", help="design rules, device frequency and energy for a config or a trained run",
                            description="Design rules, device frequency and energy for a config or a trained run.",
                            epilog=PRECEDENCE, formatter_class=raw)
    _add_config_options(design)
    design.add_argument("--config", help="a config JSON; fields it does not set come from --preset")
    design.add_argument("--run", help="a run folder from `snnspin train` (uses its config and trained weights; "
                                      "no config options with it)")
    design.add_argument("--seed", type=int, help="which seed's weights to read from --run (default: the first)")
    design.add_argument("--alpha", type=float, default=0.01, help="Gilbert damping α (default: 0.01)")
    design.add_argument("--presentation-ns", type=float, default=100.0,
                        help="presentation time per input for the energy estimate, ns (default: 100, the paper's)")
    design.add_argument("--f-range", type=float, nargs=2, metavar=("LO", "HI"),
                        help="frequencies (GHz) your devices reach, to check the design against (default: 0.1 30, "
                             "spin-torque and spin-Hall nano-oscillators)")
    design.add_argument("--json", action="store_true", help="print the report as JSON")
    design.set_defaults(func=_design)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``snnspin`` console script."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as error:  # bad input, unreadable or unwritable file: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:  # a training diverged: the others' results are saved
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished epochs are saved; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
