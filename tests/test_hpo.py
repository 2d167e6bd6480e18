"""snnspin tune: study storage, resume after a kill, validation split, best config."""

import json
import sys

import optuna
import pytest

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
    with pytest.warns(UserWarning, match="Heartbeat"):
        study.ask()  # a worker died while this trial was running
    result = tune(TINY, tmp_path, n_trials=1, progress=False)
    assert result["trials_finished"] == 1
    states = [t.state for t in open_study("snnspin-spintronic", storage).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) + states.count(optuna.trial.TrialState.PRUNED) == 1


def test_optuna_imported_only_by_hpo():
    import importlib

    from snnspin.cli import build_parser

    for name in ("snnspin.training", "snnspin.models", "snnspin.cli", "snnspin.design", "snnspin.sweep"):
        importlib.import_module(name)
    build_parser()
    modules = [m for m in sys.modules if m.startswith("snnspin")]
    users = [m for m in modules if "optuna" in vars(sys.modules[m])]
    assert set(users) <= {"snnspin.hpo"}


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
    assert saved == best


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
