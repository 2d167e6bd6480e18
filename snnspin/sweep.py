"""Sweeps of the paper's figures: many trainings over a grid of config values × seeds.

The store is an Optuna study (SQLite file by default, any Optuna/SQLAlchemy storage URL
with ``--storage``: PostgreSQL for workers on several machines). Each finished (point, seed)
is one COMPLETE trial whose user attributes hold the point, the seed, the config, the
training history and the cumulative drive of the trained weights; its value is the final
test accuracy. Optuna gives the store, its dashboard and the readers of ``figures``.

**Protocol: every training exactly once, whatever the workers do.** Any number of workers
run the same ``snnspin sweep`` command on one store (``--workers N`` starts N here; a Slurm
array starts one per task). Before anything is written, every grid point is checked
(``check_grid``). Then each worker:

1. lists the plan: every (point, seed) key;
2. claims a free key atomically: an INSERT into the ``snnspin_claims`` table of the same
   database, whose primary key lets exactly one worker win (``snnspin.claims``);
3. runs that training as a new Optuna trial, then marks the claim done and the trial
   COMPLETE (a training that raises is marked failed, FAIL, with its error; the next run of
   the command retries it). A worker claims up to ``seeds_per_claim`` free seeds of one point
   at once (each key claimed on its own) and trains them together in one fused call
   (``snnspin.ensemble``); each seed stays its own trial. A seed whose loss stops being finite
   fails alone (the others finish); any other error of the group's training has each seed the
   worker still holds trained again alone, so that one seed's failure is only its own;
4. sends a heartbeat for its claim every ``heartbeat`` seconds from a background thread;
5. when no key is free, waits for the keys other workers hold. A key whose heartbeat has
   not moved for 5 beats belongs to a dead worker (SIGKILL, power cut, preempted job): the
   first worker to notice takes it over atomically, marks the dead worker's trial FAIL and
   trains it again;
6. exits once every key is done or failed.

So a killed worker's training is retried by a surviving worker, or by the next one started
(it waits out the 5 beats); a rerun of a finished sweep trains nothing; an extended grid
trains only its new keys. Optuna is imported only when a store is opened (``snnspin.hpo``
holds the storage code).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from .config import SPIKING, TrainConfig
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
        spiking = model in SPIKING or base.model in SPIKING
        kept = KEPT_ACROSS_MODELS + (() if spiking else ("readout_time", "init_drive"))
        base = preset_config(model).replace(**{k: v for k, v in base.to_dict().items() if k in kept})
    return base.replace(**changes)


#: What a grid point that switches ``model`` keeps of the base config (the rest is the model's preset);
#: also ``readout_time`` and ``init_drive`` between the spintronic network and the CTRNN.
KEPT_ACROSS_MODELS = ("epochs", "val_fraction", "device", "split_seed", "data", "n_inputs", "n_classes", "normalize",
                      "batch_size", "schedule", "order", "engine")


def _key(point: dict, seed: int) -> str:
    return json.dumps({"point": point, "seed": seed}, sort_keys=True)


def trial_key(trial) -> str | None:
    """The (point, seed) key a trial ran (None for a trial that is not a sweep's training).

    >>> import optuna
    >>> study = optuna.create_study()
    >>> trial = study.ask()
    >>> trial.set_user_attr("key", _key({"tau": 2.0}, 1))
    >>> trial_key(trial)
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


def check_same_base(study, base: TrainConfig) -> None:
    """Refuse to run a sweep on a store whose trainings started from another base config: a
    (point, seed) finished there would count for this base too. One ``ValueError`` line. A
    sweep stored before base configs were recorded takes this one; fields added to the config
    since held their defaults there; ``device`` and ``engine`` may differ.

    >>> import optuna
    >>> study = optuna.create_study()
    >>> study.set_user_attr("base_config", TrainConfig(width=8).to_dict())
    >>> check_same_base(study, TrainConfig(width=8, device="cpu"))
    >>> check_same_base(study, TrainConfig(width=16))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the sweep 'no-name-...' in this store was run from another base config (width 8 → 16): ...
    """
    from .hpo import changed_fields

    saved = study.user_attrs.get("base_config")
    if saved is None:
        return
    changed = changed_fields(saved, base.to_dict())
    if changed:
        raise ValueError(f"the sweep {study.study_name!r} in this store was run from another base config "
                         f"({', '.join(changed)}): its finished trainings would count for this one; use another "
                         "sweep name, --out or --storage, or the same settings")


def existing_sweep(name: str, storage: str) -> optuna.Study:
    """The study of sweep ``name`` if the store holds it; a one-line ``ValueError`` otherwise
    (nothing is created: neither the store nor the study).

    >>> existing_sweep("demo", "sqlite:////no/such/sweeps.db")
    Traceback (most recent call last):
    ...
    ValueError: no sweep store at sqlite:////no/such/sweeps.db (run snnspin sweep first)
    """
    names = sweep_names(storage)
    if name not in names:
        held = f"it holds: {', '.join(names)}" if names else "it holds no sweep"
        raise ValueError(f"no sweep {name!r} in {storage} ({held})")
    return open_sweep(name, storage)


def check_grid(grid: dict, base: TrainConfig) -> list[dict]:
    """The grid's points, each checked to make a valid config from ``base`` and a buildable
    network; a one-line ``ValueError`` naming the field or the point otherwise.

    >>> check_grid({"tau": [-1.0]}, TrainConfig())
    Traceback (most recent call last):
    ...
    ValueError: grid point {'tau': -1.0}: tau must be > 0, got -1.0
    >>> check_grid({"nonsense": [1]}, TrainConfig())
    Traceback (most recent call last):
    ...
    ValueError: grid field 'nonsense' is not a config field (or density)
    """
    from dataclasses import fields

    from .models import build_model

    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"a grid is a non-empty dict of field → list of values, got {grid!r}")
    known = {f.name for f in fields(TrainConfig)} | {"density"}
    for name, values in grid.items():
        if name not in known:
            raise ValueError(f"grid field {name!r} is not a config field (or density)")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
            raise ValueError(f"grid field {name!r}: expected a non-empty list of values, got {values!r}")
    grid_points = points(grid)
    for point in grid_points:
        try:
            config = config_for(point, base)
            build_model(config.replace(n_inputs=config.n_inputs or 1, n_classes=config.n_classes or 10))
        except ValueError as error:
            raise ValueError(f"grid point {point}: {error}") from None
    return grid_points


def seeds_per_claim(config: TrainConfig) -> int:
    """How many seeds of one point a worker claims at once and trains together in one fused call
    (``snnspin.ensemble.group_size``, the batch size and sequence length taken from the data); 1
    where two networks of ``config`` cannot run together (``snnspin.ensemble.together_reason``:
    wide oscillator or CTRNN layers, the reference engine).

    >>> from snnspin.ensemble import group_size
    >>> seeds_per_claim(TrainConfig()) == group_size(TrainConfig(batch_size=120))
    True
    >>> seeds_per_claim(TrainConfig(model="lif")) == group_size(TrainConfig(model="lif", batch_size=120))
    True
    >>> seeds_per_claim(TrainConfig(width=64)), seeds_per_claim(TrainConfig(engine="reference"))
    (1, 1)
    """
    from .defaults import resolve_for_data
    from .ensemble import group_size, together_reason
    from .models import build_model
    from .training import load_data

    if together_reason([build_model(config, seed) for seed in (0, 1)]) is not None:
        return 1
    data = load_data(config)
    return group_size(resolve_for_data(config, data), steps=data[0][0].shape[0] * config.substeps)


def _frozen_history(history) -> list[dict]:
    return [{k: r.__dict__[k] for k in ("epoch", "train_loss", "train_acc", "eval_loss", "eval_acc")} for r in history]


def run_sweep(name: str, storage: str, preset: str = "small", seeds: int | None = None, base: TrainConfig | None = None,
              grid: dict | None = None, progress=None, callbacks=(), heartbeat: float = 10.0,
              on_wait=None, plan_only: bool = False, data: str = "") -> list:
    """Run the (point, seed) trainings of sweep ``name`` that no worker has finished; return
    every finished result in the store (``results``).

    ``grid`` replaces the named sweep's grid (a custom sweep); ``base`` the starting config
    (default: the tuned spintronic preset, with the small preset's epochs when small);
    ``data``: a ``.npz`` file of your own series that every point trains on (the base's own
    ``data`` when empty).
    Accuracies in %, as in ``results``. Every point is checked (``check_grid``) and ``seeds``
    must be >= 1 before the store is opened; a store whose sweep ``name`` ran from another base
    config is refused before anything is written to it (``check_same_base``).

    Any number of workers may run the same call on one store: each training is claimed
    atomically and runs exactly once; a worker stays until all are finished, and takes over
    a training whose worker's heartbeat (every ``heartbeat`` s) stopped for 5 beats (see
    ``snnspin.claims``). ``progress(spec, accuracy)`` is called after each training of this
    worker, ``callbacks(study, frozen_trial)`` after each trial it finishes, ``on_wait(keys)``
    while it waits for the trainings other workers hold. ``plan_only``: check everything and
    return the (point, seed) keys of the plan, opening no store.

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
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    small = preset == "small"
    grid = grid or (spec.small_grid if small else spec.grid)
    n_seeds = seeds if seeds is not None else (spec.small_seeds if small else spec.seeds) if spec else 3
    if base is None:
        base = preset_config("spintronic")
        if small and spec is not None:
            base = base.replace(epochs=spec.small_epochs)
    if spec is not None:
        base = base.replace(**spec.fixed)
    if data:
        base = base.replace(data=data)
    keys = [_key(point, seed) for point in check_grid(grid, base) for seed in range(n_seeds)]
    if plan_only:
        return keys

    import optuna

    from .claims import Claims, work
    from .design import report
    from .hpo import fail_trial, settle_taken_over, tell_unless_taken
    from .training import train_seeds

    study = open_sweep(name, storage)
    check_same_base(study, base)
    study.set_user_attr("base_config", base.to_dict())
    study.set_user_attr("grid", grid)
    study.set_user_attr("x", spec.x if spec else next(iter(grid)))
    study.set_user_attr("series", spec.series if spec else "")

    def fail(key, trial, error):
        trial.set_user_attr("error", f"{type(error).__name__}: {error}")
        if tell_unless_taken(study, trial, state=optuna.trial.TrialState.FAIL) is not None:
            claims.finish(key, "failed")

    def train_keys(keys):
        """Train the (point, seed) trainings of ``keys`` (one point) together, each its own trial."""
        from .training import SeedsFailed

        specs = [json.loads(key) for key in keys]
        trials = []
        for key in keys:
            trial = study.ask()
            claims.set_trial(key, trial.number)
            trial.set_user_attr("key", key)
            trials.append(trial)
        try:
            config = config_for(specs[0]["point"], base)
            try:
                runs, errors = train_seeds(config, [spec_["seed"] for spec_ in specs], progress=False), {}
            except SeedsFailed as failed:  # the seeds that diverged fail alone; the others finished
                runs, errors = failed.finished, failed.errors
        except (ValueError, RuntimeError, FloatingPointError) as error:
            if len(keys) == 1:
                fail(keys[0], trials[0], error)
                return
            for trial in trials:  # one seed's error must not be its neighbours': each again alone
                fail_trial(study, trial.number)
            for key in keys:
                if claims.holds(key):  # (not taken over meanwhile by a worker that thought this one dead)
                    train_keys([key])
            return
        except BaseException:
            for trial in trials:
                fail_trial(study, trial.number)
            raise
        try:
            for key, spec_, trial in zip(keys, specs, trials):
                if spec_["seed"] in errors:
                    fail(key, trial, errors[spec_["seed"]])
                    continue
                model, history = runs[spec_["seed"]]
                drive = report(config, model)["cumulative_drive"] if config.model not in SPIKING else float("nan")
                # the config as it ran (resolved against the data: widths, batch, init_drive, readout_time)
                ran = model.config.to_dict()
                for attr, value in (("point", spec_["point"]), ("seed", spec_["seed"]), ("config", ran), ("drive", drive),
                                    ("history", _frozen_history(history))):
                    trial.set_user_attr(attr, value)
                # the result first, then the claim: a worker that dies in between is settled by its taker
                frozen = tell_unless_taken(study, trial, history[-1].eval_acc)
                if frozen is None:  # taken over while this worker looked dead: the taker's run counts
                    continue
                claims.finish(key)
                if progress is not None:
                    progress(spec_, history[-1].eval_acc)
                for callback in callbacks:
                    callback(study, frozen)
        except BaseException:  # no trial of the group left RUNNING (finished ones stay as they are)
            for trial in trials:
                fail_trial(study, trial.number)
            raise

    def run(key, former):
        if not settle_taken_over(study, claims, key, former):
            train_keys([key])

    def point_of(key):
        return json.dumps(json.loads(key)["point"], sort_keys=True)

    most = {}

    def most_for(point):  # worked out when a worker first claims a seed of the point, not at start-up
        if point not in most:
            most[point] = seeds_per_claim(config_for(json.loads(point), base))
        return most[point]

    with Claims(storage, study.study_name, interval=heartbeat) as claims:
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if trial_key(trial) in keys:  # finished before claims were kept (or its row was lost)
                claims.mark_done(trial_key(trial), trial.number)
        claims.release_failed(keys)  # a new run retries what failed before
        work(claims, keys, run, on_wait, together=(point_of, most_for, train_keys))
    return results(study)


def failures(study, keys=None) -> list[dict]:
    """The (point, seed) trainings whose last attempt failed, each with its error line (only
    those of ``keys``, the plan of this run, when given).

    >>> import tempfile
    >>> failures(open_sweep("demo", f"sqlite:///{tempfile.mkdtemp()}/s.db"))
    []
    """
    import optuna

    finished = {trial_key(t) for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    out = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        key = trial_key(t)
        if key is not None and key not in finished and "error" in t.user_attrs and (keys is None or key in keys):
            out[key] = {**json.loads(key), "error": t.user_attrs["error"]}
    return list(out.values())


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

    from .hpo import storage_error

    if storage.startswith("sqlite:///") and ":memory:" not in storage:
        if not Path(storage[len("sqlite:///"):]).is_file():  # reading must not create the file
            raise ValueError(f"no sweep store at {storage} (run snnspin sweep first)")
    try:
        summaries = optuna.get_all_study_summaries(storage)
    except Exception as error:
        raise (storage_error(storage, error) or ValueError(f"storage {storage}: {error}")) from None
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
