"""Optuna tuning of the hyperparameters the paper tuned.

This module imports optuna at its top; ``snnspin.sweep`` imports it only inside the
functions that open or read a store; no other snnspin module imports it.

Each trial trains one model on 80 % of the training half and reports the accuracy on the
other 20 % after every epoch (``val_fraction``): the test half is never seen while tuning.
Hopeless trials are pruned on those per-epoch accuracies (median rule). The study lives
in persistent storage — an SQLite file in the run folder by default, or any Optuna
storage URL (PostgreSQL, MySQL) so that workers on several machines share it — and a
killed ``snnspin tune`` resumes with the same command: finished trials are kept. The study
has ``n_trials`` slots, each finished exactly once whatever the workers do: a slot held by a
dead worker is taken over when its heartbeat stops, its trial marked FAIL and its
parameters tried again (``snnspin.claims``; protocol in ``snnspin.sweep``).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import optuna

from .config import SPIKE_READOUTS, SPIKING, TrainConfig
from .io import atomic_write_json
from .defaults import resolve_for_data, resolved_init_drive, resolved_readout_time
from .nn.alif import SURROGATES
from .training import LEGACY_VALUES, keep_legacy_settings, load_data, train_seeds

#: name → (low, high, log scale) for every model; readout only where the model has one.
SEARCH_SPACE = {
    "tau": (0.5, 30.0, True),
    "lr0": (1e-3, 0.3, True),
    "lr_decay": (1.0, 50.0, True),
    "gain": (0.1, 2.0, True),
    "input_scale": (1 / 16, 2.0, True),
    "init_scale": (0.5, 8.0, True),
}


#: Searched for the spiking twins too: the surrogate's slope (whichever ``surrogate`` the base
#: names) and the readout integrator's relaxation time in ns.
SPIKING_SPACE = {"surrogate_slope": (1.0, 30.0, True), "readout_tau": (1.0, 200.0, True)}

#: Searched for the adaptive twin too: τ_a in ns and the threshold's increase b_a.
ALIF_SPACE = {"adapt_tau": (5.0, 300.0, True), "adapt_strength": (0.05, 3.0, True)}


def effective_value(config: TrainConfig, name: str) -> float:
    """``config``'s value of the field ``name``, with 0 read as what it stands for: the surrogate's
    default slope (``surrogate_slope``) or the neurons' τ (``readout_tau``).

    >>> effective_value(TrainConfig(model="lif", surrogate="fast_sigmoid"), "surrogate_slope")
    25.0
    >>> effective_value(TrainConfig(model="lif", tau=5.0), "readout_tau")
    5.0
    """
    value = getattr(config, name)
    if value == 0 and name == "surrogate_slope":
        return SURROGATES[config.surrogate]
    if value == 0 and name == "readout_tau":
        return config.tau
    return value


def model_space(model: str) -> dict:
    """The fields searched for ``model`` beyond the shared space: ``SPIKING_SPACE`` for the spiking
    twins, and ``ALIF_SPACE`` as well for ALIF.

    >>> sorted(model_space("alif"))
    ['adapt_strength', 'adapt_tau', 'readout_tau', 'surrogate_slope']
    >>> model_space("ctrnn")
    {}
    """
    if model not in SPIKING:
        return {}
    return {**SPIKING_SPACE, **(ALIF_SPACE if model == "alif" else {})}


def searches_readout(base: TrainConfig) -> bool:
    """Whether tuning draws ``readout`` (y or x): for the spintronic network and the CTRNN when
    they read the last step (``readout_time`` last, or auto on the digits). A readout of the mean
    over the sequence keeps the base's (y: the fused path averages y, not x).

    >>> searches_readout(TrainConfig()), searches_readout(TrainConfig(data="mine.npz"))
    (True, False)
    """
    return base.model not in SPIKING and resolved_readout_time(base.model, base.readout_time, base.data) == "last"


def suggest(trial: optuna.Trial, base: TrainConfig, space: dict = SEARCH_SPACE) -> TrainConfig:
    """A config with the searched fields drawn by ``trial`` and the others from ``base``.

    Each field is drawn in [low, high] of ``space`` (log-uniform where flagged; τ in ns,
    rates dimensionless); the readout from {"y", "x"} for the spintronic network and the
    CTRNN when they read the last step (``searches_readout``); for the spiking twins
    ``spike_readout`` from {last, mean, max} and ``SPIKING_SPACE`` (surrogate slope, readout τ),
    and for ALIF also ``ALIF_SPACE`` (τ_a, b_a).

    >>> params = dict(tau=3.0, lr0=0.05, lr_decay=10.0, gain=0.4, input_scale=0.5, init_scale=1.0, readout="x")
    >>> config = suggest(optuna.trial.FixedTrial(params), TrainConfig(width=8))
    >>> config.tau, config.readout, config.width
    (3.0, 'x', 8)
    """
    values = {name: trial.suggest_float(name, low, high, log=log) for name, (low, high, log) in space.items()}
    if searches_readout(base):
        values["readout"] = trial.suggest_categorical("readout", ["y", "x"])
    elif base.model in SPIKING:
        values["spike_readout"] = trial.suggest_categorical("spike_readout", list(SPIKE_READOUTS))
    for name, (low, high, log) in model_space(base.model).items():
        values[name] = trial.suggest_float(name, low, high, log=log)
    return base.replace(**values)


#: The objective averages the validation accuracy over the last epochs: with ~180 validation
#: digits one epoch's figure moves by a few % from epoch to epoch.
LAST_EPOCHS = 5


def search_space(tau_range: tuple[float, float] | None = None) -> dict:
    """``SEARCH_SPACE`` with τ searched in ``tau_range`` (ns, log scale) when given: tuning within
    what a device can do (``tau_range_for_frequencies`` turns a frequency range into one).

    >>> search_space((10.0, 100.0))["tau"]
    (10.0, 100.0, True)
    """
    space = dict(SEARCH_SPACE)
    if tau_range is not None:
        low, high = (float(v) for v in tau_range)
        if not 0 < low < high:
            raise ValueError(f"the τ range must be 0 < low < high in ns, got {low:g}, {high:g}")
        space["tau"] = (low, high, True)
    return space


def tau_range_for_frequencies(low_ghz: float, high_ghz: float, alpha: float = 0.01) -> tuple[float, float]:
    """The τ range (ns) of devices whose oscillation frequency f = 1/(2π α τ) lies in [low, high] GHz
    (``design_rules.oscillation_ghz``).

    >>> [round(t, 3) for t in tau_range_for_frequencies(1.0, 10.0)]
    [1.592, 15.915]
    """
    from .design_rules import tau_for_oscillation_ns

    if not 0 < low_ghz < high_ghz:
        raise ValueError(f"the frequency range must be 0 < low < high in GHz, got {low_ghz:g}, {high_ghz:g}")
    return tau_for_oscillation_ns(high_ghz, alpha), tau_for_oscillation_ns(low_ghz, alpha)


def warmup_epochs(epochs: int) -> int:
    """Epochs of a trial's seeds before the pruner may stop it: half of them, at least 5.

    >>> warmup_epochs(40), warmup_epochs(6)
    (20, 5)
    """
    return max(5, epochs // 2)


def objective(base: TrainConfig, seeds=(0,), data=None, space: dict = SEARCH_SPACE):
    """Optuna objective: validation accuracy (%) averaged over the last ``LAST_EPOCHS``
    epochs and over the initialisation ``seeds`` (trained together, epoch by epoch, in one
    fused call per batch where they can be: ``snnspin.training.train_seeds``).

    Seed i's epoch e is reported as step ``i * epochs + e`` for pruning, so trials are
    compared at the same point of the same seed; the pruner is asked once every seed has
    reported epoch e (then at the last seed's step), and not before epoch ``warmup_epochs``:
    the seeds run together, so the steps of the later seeds come early. The trial's user attributes (which
    ``optuna-dashboard`` shows) get, over the seeds: the last epoch's mean train loss and
    accuracy and validation accuracy, the training seconds, the skipped batches (gradient
    not finite) and the network's neuron and synapse counts. The value, in %, is
    (1/|seeds|) Σ_seeds (1/K) Σ_{last K epochs} eval_acc with K = ``LAST_EPOCHS``.

    >>> callable(objective(TrainConfig(), seeds=(0, 1)))
    True
    """

    data = data if data is not None else load_data(base)  # once per worker; it fixes the epochs each seed runs

    def run(trial: optuna.Trial) -> float:
        config = resolve_for_data(suggest(trial, base, space), data)
        finals, ends, skipped, seconds = [], [], 0, 0.0
        index, reported = {seed: i for i, seed in enumerate(seeds)}, {}

        def report(seed, record):
            value = record.eval_acc
            trial.report(value, index[seed] * config.epochs + record.epoch)
            reported[record.epoch] = reported.get(record.epoch, 0) + 1
            everyone = reported[record.epoch] == len(seeds) and record.epoch >= warmup_epochs(config.epochs)
            if not math.isfinite(value) or (everyone and trial.should_prune()):
                raise optuna.TrialPruned()

        for seed, (model, history) in train_seeds(config, list(seeds), progress=False, data=data,
                                                  on_epoch=report).items():
            last = [r.eval_acc for r in history[-LAST_EPOCHS:]]
            finals.append(sum(last) / len(last))
            ends.append(history[-1])
            skipped += sum(r.skipped for r in history)
            seconds += sum(r.seconds for r in history)
        for name, value in {**model.counts(), "skipped_batches": skipped, "seconds": round(seconds, 2),
                            "train_loss": sum(r.train_loss for r in ends) / len(ends),
                            "train_acc": sum(r.train_acc for r in ends) / len(ends),
                            "last_eval_acc": sum(r.eval_acc for r in ends) / len(ends)}.items():
            trial.set_user_attr(name, value)
        return sum(finals) / len(finals)

    return run


#: A missing database driver (the module SQLAlchemy imports) → what to ``pip install``.
DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]", "pg8000": "pg8000", "asyncpg": "asyncpg",
    "MySQLdb": "mysqlclient, or use mysql+pymysql://... after pip install pymysql", "pymysql": "pymysql",
    "mysql": "mysql-connector-python", "mariadb": "mariadb", "cx_Oracle": "cx_Oracle", "oracledb": "oracledb",
    "pyodbc": "pyodbc", "pymssql": "pymssql",
}

#: Errors of workers racing to create the tables of a new store: retrying fixes them.
_RACE = ("already exists", "database is locked", "unique constraint", "duplicate", "deadlock")


def _hide_password(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``.

    >>> _hide_password("postgresql://me:secret@host/db")
    'postgresql://me:***@host/db'
    """
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


def storage_error(url: str, error: BaseException) -> ValueError | None:
    """The one-line ``ValueError`` for a storage URL that cannot work (missing driver, not a
    URL, unknown database, missing folder, database unreachable), or None for an error that
    a retry may fix (another worker creating the same tables).

    >>> str(storage_error("nonsense", ValueError("x")))  # doctest: +ELLIPSIS
    "storage 'nonsense': not a storage URL (expected e.g. sqlite:///path/study.db or ...)"
    """
    where = f"storage {_hide_password(url)!r}"
    cause = error
    while isinstance(cause, ImportError) and isinstance(cause.__cause__, ImportError):
        cause = cause.__cause__
    if isinstance(cause, ImportError):
        module = (cause.name or "").split(".")[0] or "?"
        package = DRIVER_PACKAGES.get(module, module)
        return ValueError(f"{where}: its database driver {module} is not installed; pip install {package}")
    kind = type(error).__name__
    text = str(error).strip().splitlines()[0] if str(error).strip() else kind
    if kind == "ArgumentError" or "://" not in url:
        return ValueError(f"{where}: not a storage URL (expected e.g. sqlite:///path/study.db or "
                          "postgresql://user:password@host/database)")
    if kind == "NoSuchModuleError":
        return ValueError(f"{where}: unknown database kind {url.split(':', 1)[0]!r} "
                          "(sqlite, postgresql, mysql, ... with an optional +driver)")
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        folder = Path(url[len("sqlite:///"):]).parent
        if not folder.is_dir():
            return ValueError(f"{where}: the folder {folder} does not exist")
    if any(word in text.lower() for word in _RACE):
        return None
    text = re.sub(r"^\([\w.]+\)\s*", "", text)  # "(sqlite3.OperationalError) ..." → "..."
    return ValueError(f"{where}: cannot be opened ({text})")


def open_study(name: str, storage: str, attempts: int = 5, warmup: int = 5) -> optuna.Study:
    """Create the study or load it if it exists (safe to call from several workers).

    Trials are pruned by the median rule from step ``warmup`` on (steps: epochs, counted
    over the seeds of a trial).

    Workers that start together on a new SQLite file race to create its tables ("table
    studies already exists"); the loser waits a moment (0.5-1.5 s, from a local random
    generator) and loads what the winner made. Dead workers are found by the claims'
    heartbeats (``snnspin.claims``), not Optuna's. A URL that cannot work (see ``storage_error``) is refused at once, in one ``ValueError`` line.

    >>> import tempfile
    >>> study = open_study("demo", f"sqlite:///{tempfile.mkdtemp()}/study.db")
    >>> study.study_name, study.direction.name
    ('demo', 'MAXIMIZE')
    >>> open_study("demo", "sqlite:////no/such/folder/study.db")
    Traceback (most recent call last):
    ...
    ValueError: storage 'sqlite:////no/such/folder/study.db': the folder /no/such/folder does not exist
    """
    import random
    import time

    jitter = random.Random()  # a local generator: Python's global random state is left alone
    for attempt in range(attempts):
        try:
            options = {"connect_args": {"timeout": 60}} if isinstance(storage, str) and storage.startswith("sqlite") \
                else {}  # workers on one SQLite file wait for each other's locks instead of failing
            rdb = optuna.storages.RDBStorage(storage, engine_kwargs=options)
            return optuna.create_study(
                study_name=name,
                storage=rdb,
                direction="maximize",
                load_if_exists=True,
                sampler=optuna.samplers.TPESampler(),
                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup),
            )
        except Exception as error:  # sqlalchemy errors while another worker creates the schema
            if not isinstance(storage, str):
                raise
            final = storage_error(storage, error)
            if final is not None:
                raise final from None
            if attempt == attempts - 1:
                raise ValueError(f"storage {_hide_password(storage)!r}: cannot be opened after {attempts} attempts "
                                 f"({str(error).strip().splitlines()[0]})") from None
            time.sleep(0.5 + jitter.random())
    raise AssertionError("unreachable")


#: What the objective's value is, as the dashboard names it.
METRIC = "validation accuracy (%)"

#: Fields that may differ between runs of one study: they change where it runs, not what.
MAY_DIFFER = ("device", "engine")


def _recorded_space(space: dict, model: str) -> dict:
    """Every searched range of ``model`` (the shared ``space`` and ``model_space``), as a study records it."""
    return {k: list(v) for k, v in {**space, **model_space(model)}.items()}


def changed_fields(saved: dict, now: dict) -> list[str]:
    """``"name old → new"`` for every config field whose value in ``now`` differs from ``saved``
    (a field ``saved`` lacks, added to the config since, held its default there), except those
    that may differ between workers (``MAY_DIFFER``: device, engine).

    >>> changed_fields({"tau": 2.0}, TrainConfig(tau=3.0, device="cpu").to_dict())
    ['tau 2.0 → 3.0']
    """
    saved = {**TrainConfig().to_dict(), **saved}
    return [f"{k} {saved[k]!r} → {now[k]!r}" for k in sorted(now) if k not in MAY_DIFFER and saved[k] != now[k]]


def _as_study_ran(study: optuna.Study, base: TrainConfig) -> TrainConfig:
    """``base`` with the fields a study made before they existed ran without (``keep_legacy_settings``)."""
    saved = study.user_attrs.get("base_config")
    return keep_legacy_settings(base, saved) if isinstance(saved, dict) else base


def check_same_settings(study: optuna.Study, base: TrainConfig, trial_seeds: int, space: dict = SEARCH_SPACE) -> None:
    """Refuse to add trials to a study made with other settings (its trials would not be
    comparable, and ``best_config.json`` would mix the two); one ``ValueError`` line.

    >>> study = optuna.create_study()
    >>> study.set_user_attr("base_config", TrainConfig(tau=2.0).to_dict())
    >>> study.set_user_attr("trial_seeds", 1)
    >>> check_same_settings(study, TrainConfig(tau=3.0, epochs=4), 1)
    Traceback (most recent call last):
    ...
    ValueError: the study 'no-name-...' was made with other settings (epochs 30 → 4, tau 2.0 → 3.0); use another --out / --study, or the same settings
    """
    saved = study.user_attrs.get("base_config")
    if saved is None:
        return
    now, defaults = base.to_dict(), TrainConfig().to_dict()
    if "readout_time" not in saved and base.model not in SPIKING:
        saved = {**saved, "readout_time": "last"}  # a study made before the option read the last step
    saved = {**LEGACY_VALUES, **saved}  # a study made before such an option ran with its legacy value
    saved = {**defaults, **saved}  # a field added after the study was made held its default there
    for fields in (saved, now):  # auto as it resolves (snnspin.defaults)
        fields["readout_time"] = resolved_readout_time(fields["model"], fields["readout_time"], fields["data"])
        fields["init_drive"] = resolved_init_drive(fields["model"], fields["init_drive"], fields["data"])
    changed = changed_fields(saved, now)
    before = study.user_attrs.get("trial_seeds", trial_seeds)
    if before != trial_seeds:
        changed.append(f"trial_seeds {before} → {trial_seeds}")
    saved_space = study.user_attrs.get("search_space")
    now_space = _recorded_space(space, base.model)
    if saved_space is not None and saved_space != now_space:
        changed.append("the search space (e.g. --tau-range)")
    if changed:
        raise ValueError(f"the study {study.study_name!r} was made with other settings ({', '.join(changed)}); "
                         "use another --out / --study, or the same settings")


def counted(study: optuna.Study) -> int:
    """Finished trials (complete or pruned); running, waiting and failed ones do not count.

    >>> study = optuna.create_study()
    >>> study.tell(study.ask(), 1.0).state.name, counted(study)
    ('COMPLETE', 1)
    """
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def tune(base: TrainConfig, out_dir, n_trials: int, storage: str | None = None, study_name: str | None = None,
         progress: bool = True, trial_seeds: int = 1, enqueue_base: bool = False, heartbeat: float = 10.0,
         space: dict = SEARCH_SPACE) -> dict:
    """Run (or resume) a study until it holds ``n_trials`` finished trials; return the best.

    ``trial_seeds``: initialisation seeds per trial (the objective is their mean; more
    seeds cost time but rank trials less by luck). ``enqueue_base``: the first trial of a
    new study evaluates ``base``'s own values (e.g. the tuned preset), so the search
    starts from the best point known.

    Several workers may run the same call on one store. The study has ``n_trials`` slots,
    each claimed atomically by one worker and finished exactly once (``snnspin.claims``,
    protocol as in ``snnspin.sweep``); a slot whose worker's heartbeat (every ``heartbeat``
    s) stopped for 5 beats is taken over, its trial marked FAIL and its parameters tried
    again. A study made with other settings is refused (``check_same_settings``). ``space``:
    the search ranges (``search_space``, e.g. τ limited to what a device can do).

    Writes ``best_config.json`` (a ``TrainConfig`` evaluating on the test half, ready for
    ``snnspin train --config``) and ``best.json`` (value, parameters, trial counts).
    The value is the objective's validation accuracy in % (see ``objective``).

    >>> import tempfile
    >>> tune(TrainConfig(), tempfile.mkdtemp(), n_trials=1, trial_seeds=0)
    Traceback (most recent call last):
    ...
    ValueError: trial_seeds must be at least 1, got 0
    """
    from .claims import Claims, work

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials (--trials) must be an integer >= 1, got {n_trials!r}")
    if isinstance(trial_seeds, bool) or not isinstance(trial_seeds, int) or trial_seeds < 1:
        raise ValueError(f"trial_seeds must be at least 1, got {trial_seeds}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder")
    name = study_name or f"snnspin-{base.model}"
    base = base.replace(val_fraction=base.val_fraction or 0.2, seeds=1)
    # no verdict before half of the first seed's epochs: a slower start is not a worse end
    data = load_data(base)
    warmup = warmup_epochs(resolve_for_data(base, data).epochs)  # the epochs a seed really runs
    if storage:  # a given store is opened first: a bad URL leaves no folder behind
        study = open_study(name, storage, warmup=warmup)
        base = _as_study_ran(study, base)
        check_same_settings(study, base, trial_seeds, space)
        out.mkdir(parents=True, exist_ok=True)
    else:
        storage = f"sqlite:///{(out / 'study.db').resolve()}"
        if out.is_dir() and (out / "study.db").exists():
            study = open_study(name, storage, warmup=warmup)
            base = _as_study_ran(study, base)
            check_same_settings(study, base, trial_seeds, space)
        else:
            out.mkdir(parents=True, exist_ok=True)
            study = open_study(name, storage, warmup=warmup)
    study.set_user_attr("base_config", base.to_dict())
    study.set_user_attr("trial_seeds", trial_seeds)
    study.set_user_attr("search_space", _recorded_space(space, base.model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([METRIC])
    run_objective = objective(base, tuple(range(trial_seeds)), data, space)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

    def evaluate(trial):
        """(state, value) of the objective on ``trial``: COMPLETE with the value, PRUNED, or FAIL
        with the error line in the trial's user attributes."""
        try:
            return optuna.trial.TrialState.COMPLETE, run_objective(trial)
        except optuna.TrialPruned:
            return optuna.trial.TrialState.PRUNED, None
        except (ValueError, RuntimeError, FloatingPointError) as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            return optuna.trial.TrialState.FAIL, None

    def retry(slot, dead) -> bool:
        """Run a dead worker's parameters again in this slot; False if they were incomplete."""
        fixed = optuna.trial.FixedTrial(dead.params)
        try:
            suggest(fixed, base, space)
        except ValueError:  # it died while drawing them: this slot draws afresh
            return False
        state, value = evaluate(fixed)  # a FixedTrial is never pruned
        if claims.finish(slot, "failed" if state == optuna.trial.TrialState.FAIL else "done"):
            study.add_trial(optuna.trial.create_trial(
                state=state, value=value, params=dead.params, distributions=dead.distributions,
                user_attrs={**fixed.user_attrs, "slot": slot, "retry_of": dead.number}))
            if progress:
                print(f"trial {dead.number} again: " + (f"{value:.2f} %" if value is not None else "failed"), flush=True)
        return True

    def run(slot, former):
        if settle_taken_over(study, claims, slot, former):
            return
        if former is not None and former["trial"] is not None and retry(slot, study.trials[former["trial"]]):
            return
        trial = study.ask()
        claims.set_trial(slot, trial.number)
        trial.set_user_attr("slot", slot)
        try:
            state, value = evaluate(trial)
        except BaseException:
            fail_trial(study, trial.number)
            raise
        # the result first, then the claim: a worker that dies in between is settled by its taker
        if tell_unless_taken(study, trial, value if state == optuna.trial.TrialState.COMPLETE else None,
                             state) is None:
            return
        claims.finish(slot, "failed" if state == optuna.trial.TrialState.FAIL else "done")
        if progress:
            shown = f"{value:.2f} %" if value is not None else state.name.lower()
            print(f"trial {trial.number}: {shown}", flush=True)

    slots = [f"trial-{i}" for i in range(n_trials)]
    with Claims(storage, name, interval=heartbeat) as claims:
        if enqueue_base and not study.trials and claims.claim("enqueue-base"):  # one worker enqueues it
            start = {name: min(max(getattr(base, name), space[name][0]), space[name][1]) for name in space}
            if searches_readout(base):
                start["readout"] = base.readout
            elif base.model in SPIKING:
                start["spike_readout"] = base.spike_readout
            for name, (low, high, _) in model_space(base.model).items():  # 0 as it means at the start's τ
                start[name] = min(max(effective_value(base.replace(tau=start["tau"]), name), low), high)
            study.enqueue_trial(start)
            claims.finish("enqueue-base")
        old = [t for t in study.get_trials(deepcopy=False, states=finished) if "slot" not in t.user_attrs]
        for slot, trial in zip(slots, old):  # trials finished before claims were kept fill the first slots
            claims.mark_done(slot, trial.number)
        claims.release_failed(slots)
        work(claims, slots, run)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError("no trial completed; nothing to report")
    best = study.best_trial
    best_config = base.replace(val_fraction=0.0, **best.params)
    atomic_write_json(out / "best_config.json", best_config.to_dict())
    result = {
        "study": name,
        "storage": storage if isinstance(storage, str) else str(storage),
        "best_value": best.value,
        "best_params": best.params,
        "best_trial": best.number,
        "trials_finished": counted(study),
        "trials_complete": len(complete),
    }
    atomic_write_json(out / "best.json", result)
    return result


def fail_trial(study: optuna.Study, number: int) -> None:
    """Mark trial ``number`` failed unless it is already finished."""
    try:
        study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    except (ValueError, RuntimeError):
        pass


def settle_taken_over(study: optuna.Study, claims, key: str, former: dict | None) -> bool:
    """After taking over ``key`` from a silent worker: fail its trial if it still runs; if it had
    finished (the worker died after writing its result and before marking its claim), mark
    the claim done and return True: nothing is to be run again."""
    if former is None or former["trial"] is None:
        return False
    fail_trial(study, former["trial"])
    state = study.trials[former["trial"]].state
    if state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
        claims.finish(key)
        return True
    return False


def tell_unless_taken(study: optuna.Study, trial, value=None, state=None):
    """``study.tell``, or None when the trial was failed meanwhile by a worker that took its key
    over (this worker looked dead): then the taker's run counts."""
    try:
        return study.tell(trial, value, state=state)
    except (ValueError, RuntimeError):
        if study.trials[trial.number].state == optuna.trial.TrialState.FAIL:
            return None
        raise
