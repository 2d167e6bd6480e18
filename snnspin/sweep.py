"""Sweeps of the paper's figures: many trainings over a grid of config values × seeds.

The store is an Optuna study (SQLite file by default, any Optuna/SQLAlchemy storage URL
with ``--storage``): each (point, seed) is one trial whose parameters are the point's
config values and the seed; its value is the final test accuracy and its user attributes
hold the training history and the cumulative drive of the trained weights. Why Optuna:
its storages already give atomic hand-out of queued trials to workers on several
machines, heartbeats that fail the trials of a killed worker, and a dashboard, so a
sweep needs no server of its own. Re-running the same command queues only the
(point, seed) pairs that have no finished trial, so nothing finished is lost or redone.
Optuna is imported only when a store is opened (``snnspin.hpo`` holds the storage code).
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

import numpy as np

from .config import TrainConfig
from .presets import preset_config

if TYPE_CHECKING:
    import optuna

_DT = [0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.5, 4.0, 7.0, 10.0]
_DT_SMALL = [0.2, 1.0, 5.0]
_DENSITY = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
_DENSITY_SMALL = [0.1, 0.5, 1.0]


@dataclass(frozen=True)
class SweepSpec:
    """A named sweep: its grid (field → values), fixed changes, figure, and both presets."""

    grid: dict
    small_grid: dict
    fixed: dict = field(default_factory=dict)
    seeds: int = 10
    small_seeds: int = 2
    small_epochs: int = 15
    x: str = "delta_t"
    series: str = "model"
    figure: str = ""


SWEEPS = {
    "timescale": SweepSpec({"model": ["spintronic", "ctrnn"], "delta_t": _DT},
                           {"model": ["spintronic", "ctrnn"], "delta_t": _DT_SMALL}, figure="Fig. 2b"),
    "tau": SweepSpec({"tau": [1.5, 4.5, 13.5], "delta_t": _DT}, {"tau": [1.5, 13.5], "delta_t": _DT_SMALL},
                     series="tau", figure="Fig. 3a"),
    "lr": SweepSpec({"lr0": [0.01, 0.03, 0.1], "delta_t": _DT}, {"lr0": [0.01, 0.1], "delta_t": _DT_SMALL},
                    series="lr0", figure="Fig. 3b"),
    "drive": SweepSpec({"tau": [1.0, 4.5, 14.12], "gain": [0.1, 0.5, 2.0], "delta_t": [0.3, 1.0, 3.0]},
                       {"tau": [1.0, 14.12], "gain": [0.1, 2.0], "delta_t": [0.3, 3.0]},
                       x="drive", series="", figure="Fig. 3c"),
    "density-intra": SweepSpec({"d_intra": _DENSITY}, {"d_intra": _DENSITY_SMALL}, fixed={"d_inter": 1.0},
                               x="d_intra", series="", figure="Fig. 4 (red)"),
    "density-inter": SweepSpec({"d_inter": _DENSITY[1:]}, {"d_inter": _DENSITY_SMALL}, fixed={"d_intra": 1.0},
                               x="d_inter", series="", figure="Fig. 4 (green)"),
    "density-global": SweepSpec({"density": _DENSITY[1:]}, {"density": _DENSITY_SMALL}, x="density", series="",
                                figure="Fig. 4 (black)"),
    "overfit": SweepSpec({"density": [0.5, 0.25, 0.1]}, {"density": [0.5, 0.1]}, x="epoch", series="density",
                         figure="Fig. 5"),
}


def points(grid: dict) -> list[dict]:
    """Every combination of the grid's values, in order.

    >>> points({"a": [1, 2], "b": ["x"]})
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
    """
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def config_for(point: dict, base: TrainConfig) -> TrainConfig:
    """The config of one grid point: ``density`` sets both densities; ``model`` switches preset
    (keeping ``base``'s ``KEPT_ACROSS_MODELS``: the data and how they are read, the split,
    epochs and device).

    >>> c = config_for({"density": 0.3, "delta_t": 2.0}, TrainConfig())
    >>> c.d_inter, c.d_intra, c.delta_t
    (0.3, 0.3, 2.0)
    """
    changes = dict(point)
    density = changes.pop("density", None)
    if density is not None:
        changes.update(d_inter=density, d_intra=density)
    model = changes.pop("model", base.model)
    if model != base.model:
        base = preset_config(model).replace(**{k: v for k, v in base.to_dict().items() if k in KEPT_ACROSS_MODELS})
    return base.replace(**changes)


#: What a grid point that switches ``model`` keeps of the base config (the rest is the model's preset).
KEPT_ACROSS_MODELS = ("epochs", "val_fraction", "device", "split_seed", "data", "n_inputs", "n_classes", "normalize",
                      "batch_size", "schedule", "order", "engine")


def _key(point: dict, seed: int) -> str:
    return json.dumps({"point": point, "seed": seed}, sort_keys=True)


def trial_key(trial) -> str | None:
    """The (point, seed) key a queued trial was created for (None for a stray trial).

    >>> import optuna
    >>> study = optuna.create_study()
    >>> study.enqueue_trial({}, user_attrs={"key": _key({"tau": 2.0}, 1)})
    >>> trial_key(study.ask())
    '{"point": {"tau": 2.0}, "seed": 1}'
    """
    return trial.user_attrs.get("key")


def open_sweep(name: str, storage: str) -> optuna.Study:
    """The sweep's study ``sweep-<name>`` (created if new; several workers may call this at once).

    >>> import tempfile
    >>> open_sweep("demo", f"sqlite:///{tempfile.mkdtemp()}/s.db").study_name
    'sweep-demo'
    """
    from .hpo import open_study  # optuna is imported only when a store is opened

    return open_study(f"sweep-{name}", storage)


def queue(study, grid_points: list[dict], seeds: list[int]) -> int:
    """Queue every (point, seed) with no complete, waiting or running trial; return how many.

    >>> import tempfile
    >>> study = open_sweep("demo", f"sqlite:///{tempfile.mkdtemp()}/s.db")
    >>> queue(study, points({"tau": [1.0, 2.0]}), [0, 1]), queue(study, points({"tau": [1.0, 2.0]}), [0, 1])
    (4, 0)
    """
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    live = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
    have = {trial_key(t) for t in study.get_trials(deepcopy=False, states=live)}
    added = 0
    for point in grid_points:
        for seed in seeds:
            key = _key(point, seed)
            if key not in have:
                study.enqueue_trial({}, user_attrs={"key": key})
                added += 1
    return added


def _run_one(base: TrainConfig, progress):
    import optuna

    from .design import report
    from .training import train_seed

    def run(trial: optuna.Trial) -> float:
        key = trial_key(trial)
        if key is None:  # nothing left in the queue: this trial was made up by optuna
            trial.study.stop()
            raise optuna.TrialPruned()
        spec = json.loads(key)
        config = config_for(spec["point"], base)
        model, history = train_seed(config, spec["seed"], progress=False)
        drive = report(config, model)["cumulative_drive"] if config.model != "lif" else float("nan")
        trial.set_user_attr("point", spec["point"])
        trial.set_user_attr("seed", spec["seed"])
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("drive", drive)
        trial.set_user_attr("history", [{k: r.__dict__[k] for k in ("epoch", "train_loss", "train_acc", "eval_loss",
                                                                    "eval_acc")} for r in history])
        if progress is not None:
            progress(spec, history[-1].eval_acc)
        return history[-1].eval_acc

    return run


def run_sweep(name: str, storage: str, preset: str = "small", seeds: int | None = None, base: TrainConfig | None = None,
              grid: dict | None = None, progress=None, callbacks=()) -> list[dict]:
    """Queue the missing (point, seed) trainings of sweep ``name`` and run them; return all results.

    ``grid`` replaces the named sweep's grid (a custom sweep); ``base`` the starting config
    (default: the tuned spintronic preset, with the small preset's epochs when small).
    Accuracies in %, as in ``results``.

    >>> run_sweep("fig9", "sqlite:///:memory:")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown sweep 'fig9'; choose one of: timescale, tau, lr, drive, ... (or give a grid)
    """
    spec = SWEEPS.get(name)
    if spec is None and grid is None:
        raise ValueError(f"unknown sweep {name!r}; choose one of: {', '.join(SWEEPS)} (or give a grid)")
    if preset not in ("small", "full"):
        raise ValueError(f"preset must be small or full, got {preset!r}")
    small = preset == "small"
    grid = grid or (spec.small_grid if small else spec.grid)
    n_seeds = seeds or (spec.small_seeds if (spec and small) else (spec.seeds if spec else 3))
    if base is None:
        base = preset_config("spintronic")
        if small and spec is not None:
            base = base.replace(epochs=spec.small_epochs)
    if spec is not None:
        base = base.replace(**spec.fixed)
    study = open_sweep(name, storage)
    study.set_user_attr("grid", grid)
    study.set_user_attr("x", spec.x if spec else next(iter(grid)))
    study.set_user_attr("series", spec.series if spec else "")
    queue(study, points(grid), list(range(n_seeds)))
    study.optimize(_run_one(base, progress), callbacks=list(callbacks),
                   catch=(ValueError, RuntimeError, FloatingPointError))
    return results(study)


def results(study) -> list[dict]:
    """One dict per finished (point, seed): point, seed, accuracy (final test accuracy, %),
    drive (I·Δt of the trained weights), config, history (first finished wins).

    >>> import tempfile
    >>> results(open_sweep("demo", f"sqlite:///{tempfile.mkdtemp()}/s.db"))
    []
    """
    import optuna

    out, seen = [], set()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        key = trial_key(t)
        if key is None or key in seen:
            continue
        seen.add(key)
        out.append({"point": t.user_attrs["point"], "seed": t.user_attrs["seed"], "accuracy": t.value,
                    "drive": t.user_attrs.get("drive"), "config": t.user_attrs.get("config"),
                    "history": t.user_attrs.get("history")})
    return out


def sweep_names(storage: str) -> list[str]:
    """The sweeps held in a store.

    >>> import tempfile
    >>> store = f"sqlite:///{tempfile.mkdtemp()}/s.db"
    >>> _ = open_sweep("timescale", store)
    >>> sweep_names(store)
    ['timescale']
    """
    import optuna

    summaries = optuna.get_all_study_summaries(storage)
    return [s.study_name[len("sweep-"):] for s in summaries if s.study_name.startswith("sweep-")]


def median_band(values) -> tuple[float, float, float]:
    """(median, 25th, 75th percentile).

    >>> median_band([1, 2, 3, 4, 5])
    (3.0, 2.0, 4.0)
    """
    a = np.asarray(values, dtype=float)
    return float(np.median(a)), float(np.percentile(a, 25)), float(np.percentile(a, 75))


def table(study) -> list[dict]:
    """Per grid point: median and 25-75 % band of accuracy (%) over seeds, and the median
    drive I·Δt over the seeds with a finite one (None when there is none).

    >>> import tempfile
    >>> table(open_sweep("demo", f"sqlite:///{tempfile.mkdtemp()}/s.db"))
    []
    """
    groups: dict[str, list[dict]] = {}
    for r in results(study):
        groups.setdefault(json.dumps(r["point"], sort_keys=True), []).append(r)
    rows = []
    for key, rs in groups.items():
        med, lo, hi = median_band([r["accuracy"] for r in rs])
        drives = [r["drive"] for r in rs if r["drive"] is not None and math.isfinite(r["drive"])]
        rows.append({**json.loads(key), "seeds": len(rs), "median": med, "q25": lo, "q75": hi,
                     "drive": float(np.median(drives)) if drives else None})
    return rows
