"""snnspin tune: study storage, resume after a kill, validation split, best config."""

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

import snnspin
from snnspin.cli import main
from snnspin.config import TrainConfig
from snnspin.hpo import counted, open_study, suggest, tune

TINY = TrainConfig(layers=1, width=4, epochs=2, batch_size=300)


def test_suggest_stays_in_space_and_keeps_base():
    study = optuna.create_study()
    config = suggest(study.ask(), TINY)
    assert 0.5 <= config.tau <= 30 and 1e-3 <= config.lr0 <= 0.3
    assert config.width == 4 and config.readout in ("x", "y")
    lif = suggest(study.ask(), TINY.replace(model="lif"))
    assert lif.readout == "y"
    assert 1.0 <= lif.surrogate_slope <= 30.0 and 1.0 <= lif.readout_tau <= 200.0  # the spiking fields too
    assert lif.adapt_tau == TINY.adapt_tau  # ALIF's only for ALIF


def test_spiking_base_enqueued_with_what_its_zeros_mean(tmp_path):
    # slope 0 is the surrogate's default (fast_sigmoid: 25), readout_tau 0 the neurons' τ
    base = TINY.replace(model="lif", surrogate="fast_sigmoid", tau=3.0, epochs=1)
    tune(base, tmp_path, n_trials=1, progress=False, enqueue_base=True)
    study = open_study("snnspin-lif", f"sqlite:///{tmp_path / 'study.db'}")
    first = study.trials[0]
    assert first.params["surrogate_slope"] == 25.0 and first.params["readout_tau"] == 3.0
    # a τ range that moves the start's τ moves what readout_tau 0 means with it
    from snnspin.hpo import check_same_settings, search_space

    tune(base, tmp_path / "ranged", n_trials=1, progress=False, enqueue_base=True, space=search_space((10.0, 20.0)))
    ranged = open_study("snnspin-lif", f"sqlite:///{tmp_path / 'ranged' / 'study.db'}").trials[0]
    assert ranged.params["tau"] == 10.0 and ranged.params["readout_tau"] == 10.0
    # a spiking study recorded before the spiking fields were searched is not resumed with them
    study.set_user_attr("search_space", {k: list(v) for k, v in search_space().items()})
    with pytest.raises(ValueError, match="the search space"):
        check_same_settings(study, base.replace(val_fraction=0.2), 1)


def test_tune_writes_best_and_resumes(tmp_path):
    result = tune(TINY, tmp_path, n_trials=2, progress=False)
    assert result["trials_finished"] == 2
    best = TrainConfig.from_dict(json.loads((tmp_path / "best_config.json").read_text()))
    assert best.val_fraction == 0.0 and best.tau == pytest.approx(result["best_params"]["tau"])
    study = open_study("snnspin-spintronic", f"sqlite:///{tmp_path / 'study.db'}")
    assert study.user_attrs["base_config"]["val_fraction"] == 0.2  # tuned on validation, never on test
    # a second run with a larger target continues the same study, losing nothing
    assert tune(TINY, tmp_path, n_trials=3, progress=False)["trials_finished"] == 3
    assert counted(study) == 3


def test_killed_trial_is_not_counted_and_study_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study("snnspin-spintronic", storage)
    study.ask()  # a worker of an older version died while this trial was running (it holds no claim)
    result = tune(TINY, tmp_path, n_trials=1, progress=False)
    assert result["trials_finished"] == 1
    states = [t.state for t in open_study("snnspin-spintronic", storage).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) + states.count(optuna.trial.TrialState.PRUNED) == 1


PACKAGE = Path(snnspin.__file__).parent


def _optuna_imports(tree):
    """(line, at module level outside ``if TYPE_CHECKING``) of every import of optuna in a module:
    ``import optuna[.x]``, ``from optuna[.x] import ...`` and ``importlib.import_module``/``__import__``
    of an ``optuna`` string, at any depth (functions, classes, branches)."""
    found = []

    def visit(node, top_level):
        for child in ast.iter_child_nodes(node):
            names = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                names = [child.module or ""]
            elif isinstance(child, ast.Call) and child.args and isinstance(child.args[0], ast.Constant):
                func = child.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in ("import_module", "__import__") and isinstance(child.args[0].value, str):
                    names = [child.args[0].value]
            if any(n == "optuna" or n.startswith("optuna.") for n in names):
                found.append((child.lineno, top_level))
            type_checking = isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or type_checking
            visit(child, top_level and not nested)

    visit(tree, True)
    return found


def test_optuna_is_imported_only_by_hpo_and_lazily_by_sweep():
    """snnspin.hpo may import optuna anywhere; snnspin.sweep only inside functions (or for type
    checking); every other module never, at any level."""
    users = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found = _optuna_imports(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            users[path.relative_to(PACKAGE).as_posix()] = found
    assert set(users) == {"hpo.py", "sweep.py"}
    assert any(top for _, top in users["hpo.py"])
    assert users["sweep.py"] and not any(top for _, top in users["sweep.py"]), users["sweep.py"]


def test_optuna_is_not_loaded_without_hpo():
    """In a fresh interpreter, importing every snnspin module but hpo (and building the CLI's
    parser) leaves optuna unloaded; importing hpo loads it (the check can fail)."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import snnspin
        names = sorted(m.name for m in pkgutil.walk_packages(snnspin.__path__, "snnspin."))
        assert "snnspin.hpo" in names and "snnspin.sweep" in names, names
        for name in names:
            if name != "snnspin.hpo":
                importlib.import_module(name)
        from snnspin.cli import build_parser
        build_parser()
        print("before", "optuna" in sys.modules)
        importlib.import_module("snnspin.hpo")
        print("after", "optuna" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["before", "False", "after", "True"]


def test_cli_tune_then_train_from_best_config(tmp_path, capsys):
    out = tmp_path / "tune"
    args = ["tune", "--layers", "1", "--width", "4", "--epochs", "1", "--trials", "1", "--quiet", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "best validation accuracy" in text and "snnspin train --config" in text
    run = tmp_path / "run"
    assert main(["train", "--config", str(out / "best_config.json"), "--quiet", "--out", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())
    best = json.loads((out / "best_config.json").read_text())
    # the run records what the digits gave: widths, batch size, no normalisation, epochs as epochs
    assert saved == {**best, "n_inputs": 1, "n_classes": 10, "batch_size": 120, "normalize": "none",
                     "schedule": "epochs", "readout_time": "last", "init_drive": 0.0}


def _open(path):
    open_study("race", f"sqlite:///{path}")


def test_workers_starting_together_on_a_new_file(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_open, args=(tmp_path / "new.db",)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]


def test_trial_seeds_average_and_base_enqueued_first(tmp_path):
    from snnspin.training import train_seed

    base = TINY.replace(tau=3.0, lr0=0.05)
    result = tune(base, tmp_path, n_trials=1, progress=False, trial_seeds=2, enqueue_base=True)
    study = open_study("snnspin-spintronic", f"sqlite:///{tmp_path / 'study.db'}")
    first = study.trials[0]
    assert first.params["tau"] == 3.0 and first.params["lr0"] == 0.05  # the base's own values
    assert study.user_attrs["trial_seeds"] == 2
    # the value is the mean over seeds 0 and 1 of each seed's last-epochs validation mean
    config = suggest(optuna.trial.FixedTrial(first.params), base.replace(val_fraction=0.2, seeds=1))
    per_seed = []
    for seed in (0, 1):
        _, history = train_seed(config, seed, progress=False)
        per_seed.append(sum(r.eval_acc for r in history[-5:]) / len(history[-5:]))
    assert result["best_value"] == pytest.approx(sum(per_seed) / 2)
    # seed i's epochs were reported after seed i-1's, for pruning at matching steps
    assert sorted(first.intermediate_values) == [1, 2, 3, 4]


def test_trial_seeds_must_be_positive(tmp_path, capsys):
    with pytest.raises(ValueError, match="trial_seeds must be at least 1"):
        tune(TINY, tmp_path, n_trials=1, progress=False, trial_seeds=0)
    assert main(["tune", "--trial-seeds", "0", "--quiet", "--out", str(tmp_path)]) == 2
    assert "trial_seeds must be at least 1" in capsys.readouterr().err


def test_storage_errors_are_final_or_retried():
    from snnspin.hpo import storage_error

    race = Exception("(sqlite3.OperationalError) table studies already exists")
    assert storage_error("sqlite:///study.db", race) is None  # another worker made the tables: retry
    refused = storage_error("postgresql://me:secret@db.example/x", Exception("(psycopg.OperationalError) refused"))
    assert str(refused) == "storage 'postgresql://me:***@db.example/x': cannot be opened (refused)"


def test_tune_refuses_a_study_made_with_other_settings(tmp_path, capsys):
    tune(TINY, tmp_path, n_trials=1, progress=False)
    best = (tmp_path / "best_config.json").read_text()
    with pytest.raises(ValueError, match=r"was made with other settings \(epochs 2 → 3, tau 14.12 → 3.0\)"):
        tune(TINY.replace(epochs=3, tau=3.0), tmp_path, n_trials=2, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(trial_seeds 1 → 2\)"):
        tune(TINY, tmp_path, n_trials=2, progress=False, trial_seeds=2)
    assert (tmp_path / "best_config.json").read_text() == best  # nothing mixed in
    assert counted(open_study("snnspin-spintronic", f"sqlite:///{tmp_path / 'study.db'}")) == 1
    args = ["tune", "--layers", "1", "--width", "4", "--epochs", "5", "--trials", "2", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "was made with other settings" in capsys.readouterr().err


def test_tune_searches_tau_only_where_devices_can_go(tmp_path, capsys):
    from snnspin.hpo import search_space

    result = tune(TINY, tmp_path, n_trials=2, progress=False, space=search_space((10.0, 20.0)))
    study = open_study("snnspin-spintronic", f"sqlite:///{tmp_path / 'study.db'}")
    assert all(10.0 <= t.params["tau"] <= 20.0 for t in study.trials) and result["trials_finished"] == 2
    with pytest.raises(ValueError, match=r"other settings \(the search space"):
        tune(TINY, tmp_path, n_trials=3, progress=False)
    # f in [1, 10] GHz at α = 0.01 is τ = 1/(2π α f) in [1.59, 15.9] ns
    args = ["tune", "--layers", "1", "--width", "4", "--epochs", "1", "--trials", "1", "--quiet", "--f-range", "1",
            "10", "--out", str(tmp_path / "f")]
    assert main(args) == 0
    assert "τ searched in 1.592-15.92 ns" in capsys.readouterr().out
    study = open_study("snnspin-spintronic", f"sqlite:///{tmp_path / 'f' / 'study.db'}")
    assert 1.59 <= study.trials[0].params["tau"] <= 15.92
    assert main(args[:-2] + ["--tau-range", "1", "2", "--out", str(tmp_path / "g")]) == 2
    assert "give --tau-range or --f-range, not both" in capsys.readouterr().err


def test_a_study_saved_before_new_fields_existed_still_resumes():
    from snnspin.hpo import check_same_settings

    study = optuna.create_study()
    old = {k: v for k, v in TINY.to_dict().items() if k not in ("mismatch", "learn_beta", "adapt_tau")}
    study.set_user_attr("base_config", old)
    check_same_settings(study, TINY, 1)  # the missing fields held their defaults
