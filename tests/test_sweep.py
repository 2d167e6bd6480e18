"""Sweeps: a 2-point × 2-seed sweep killed and resumed yields exactly 4 results; figures render."""

import pytest
from _by_hand import drive_by_hand

from snnspin.cli import main
from snnspin.config import TrainConfig
from snnspin.plot import plot_sweep
from snnspin.sweep import SWEEPS, config_for, open_sweep, points, results, run_sweep, table
from snnspin.training import train_seed

BASE = TrainConfig(layers=1, width=4, epochs=1, batch_size=450)
GRID = {"delta_t": [0.5, 2.0]}


class Kill(Exception):
    pass


def test_killed_sweep_resumes_to_exactly_four_results(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    finished = []

    def kill_after_two(study, trial):
        finished.append(trial.number)
        if len(finished) == 2:
            raise Kill

    with pytest.raises(Kill):
        run_sweep("custom", storage, seeds=2, base=BASE, grid=GRID, callbacks=[kill_after_two])
    assert len(results(open_sweep("custom", storage))) == 2
    out = run_sweep("custom", storage, seeds=2, base=BASE, grid=GRID)
    assert len(out) == 4
    assert sorted((r["point"]["delta_t"], r["seed"]) for r in out) == [(0.5, 0), (0.5, 1), (2.0, 0), (2.0, 1)]
    assert len(run_sweep("custom", storage, seeds=2, base=BASE, grid=GRID)) == 4  # nothing redone
    rows = table(open_sweep("custom", storage))
    assert sorted(r["delta_t"] for r in rows) == [0.5, 2.0] and all(r["seeds"] == 2 for r in rows)
    for row in rows:  # two seeds: median = mean, quartiles interpolated a quarter of the way in
        mine = [r for r in out if r["point"]["delta_t"] == row["delta_t"]]
        lo, hi = sorted(r["accuracy"] for r in mine)
        assert row["median"] == pytest.approx((lo + hi) / 2)
        assert row["q25"] == pytest.approx(lo + (hi - lo) / 4) and row["q75"] == pytest.approx(hi - (hi - lo) / 4)
        assert row["drive"] == pytest.approx(sum(r["drive"] for r in mine) / 2)
        assert all(r["accuracy"] == r["history"][-1]["eval_acc"] for r in mine)
    # one stored result against a fresh training of its (point, seed): same accuracy, drive by hand
    stored = next(r for r in out if r["point"] == {"delta_t": 2.0} and r["seed"] == 1)
    config = config_for(stored["point"], BASE)
    model, history = train_seed(config, 1, progress=False)
    assert TrainConfig.from_dict(stored["config"]) == model.config and model.config.delta_t == 2.0  # as it ran
    assert stored["accuracy"] == history[-1].eval_acc
    assert stored["drive"] == pytest.approx(drive_by_hand(config, model), rel=1e-6)


def test_config_for_points():
    assert config_for({"density": 0.3}, BASE).d_inter == 0.3
    assert config_for({"density": 0.3}, BASE).d_intra == 0.3
    ctrnn = config_for({"model": "ctrnn", "delta_t": 2.0}, BASE.replace(epochs=3))
    assert ctrnn.model == "ctrnn" and ctrnn.delta_t == 2.0 and ctrnn.epochs == 3
    assert len(points(SWEEPS["timescale"].grid)) == 20


def test_figures_from_store_have_paper_axes(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    run_sweep("timescale", storage, seeds=1, base=BASE, grid={"model": ["spintronic", "ctrnn"], "delta_t": [1.0, 2.0]})
    run_sweep("overfit", storage, seeds=1, base=BASE.replace(epochs=2), grid={"density": [0.5, 0.1]})
    run_sweep("drive", storage, seeds=1, base=BASE, grid={"tau": [0.5, 4.0], "delta_t": [1.0]})
    assert main(["figures", "--storage", storage, "--out", str(tmp_path / "fig")]) == 0
    for name in ("timescale", "overfit", "drive"):
        assert (tmp_path / "fig" / f"{name}.png").exists() and (tmp_path / "fig" / f"{name}.md").exists()
    # the Markdown table holds, per point, the stored accuracy (1 seed: median = quartiles = it)
    # and drive of that point's training
    lines = (tmp_path / "fig" / "timescale.md").read_text().splitlines()
    assert lines[0] == "| delta_t | model | seeds | median (%) | 25 % | 75 % | drive I·Δt |"
    stored = {(r["point"]["model"], r["point"]["delta_t"]): r for r in results(open_sweep("timescale", storage))}
    assert len(lines) == 2 + len(stored) == 6
    for line in lines[2:]:
        delta_t, model, seeds, median, q25, q75, drive = [c.strip() for c in line.strip("|").split("|")]
        r = stored[(model, float(delta_t))]
        assert seeds == "1" and median == q25 == q75 == f"{r['accuracy']:.2f}"
        assert drive == f"{r['drive']:.3g}"  # both models have a drive (only LIF has none)
    study = open_sweep("timescale", storage)
    fig = plot_sweep("timescale", table(study), "delta_t", "model")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time between input points Δt (ns)" and ax.get_ylabel() == "accuracy (%)"
    assert ax.get_xscale() == "log"
    fig = plot_sweep("overfit", [], "epoch", "density", results=results(open_sweep("overfit", storage)))
    assert [a.get_ylabel() for a in fig.axes] == ["loss (NLL)", "accuracy (%)"]


def test_bad_sweep_name():
    with pytest.raises(ValueError, match="unknown sweep 'fig9'"):
        run_sweep("fig9", "sqlite:///:memory:")


def test_a_model_switch_keeps_the_data_and_how_they_are_read():
    """Measured: a grid over models rebuilt the config from the preset and trained on the digits."""
    from snnspin.presets import preset_config
    from snnspin.sweep import config_for

    base = preset_config("spintronic", data="mine.npz", normalize="zscore", batch_size=20, n_inputs=4, n_classes=3)
    switched = config_for({"model": "ctrnn"}, base)
    assert switched.model == "ctrnn" and switched.tau == preset_config("ctrnn").tau
    assert (switched.data, switched.normalize, switched.batch_size, switched.n_inputs, switched.n_classes) == \
        ("mine.npz", "zscore", 20, 4, 3)


@pytest.mark.parametrize("args, message", [
    (["--grid", "tau=-1,2"], "grid point {'tau': -1.0}: tau must be > 0, got -1.0"),
    (["--grid", "model=foo"], "grid point {'model': 'foo'}: model must be one of spintronic, ctrnn, lif"),
    (["--grid", "nonsense=1"], "--grid 'nonsense=1': expected FIELD=V1,V2,... with FIELD a config field or density"),
    (["--grid", "layers=2.5"], "--grid 'layers=2.5': layers takes int values"),
    (["--grid", "model=lif", "readout=x"], "grid point {'model': 'lif', 'readout': 'x'}: "),
    (["--grid", "tau=1", "--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["--grid", "tau=1", "--seeds", "-1"], "--seeds must be at least 1, got -1"),
    (["--grid", "tau=1", "--workers", "0"], "--workers must be at least 1, got 0"),
    ([], "unknown sweep 'custom'"),
])
def test_bad_sweep_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "sweeps"
    assert main(["sweep", "custom", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not out.exists()  # no store, no folder


def test_bad_grid_through_the_python_api_writes_nothing(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ValueError, match=r"grid point \{'layers': 2.0\}: layers must be an integer, got 2.0"):
        run_sweep("custom", storage, seeds=1, base=BASE, grid={"layers": [2.0, 3.0]})
    with pytest.raises(ValueError, match="seeds must be an integer >= 1, got 0"):
        run_sweep("custom", storage, seeds=0, base=BASE, grid=GRID)
    with pytest.raises(ValueError, match="grid field 'delta_t': expected a non-empty list of values"):
        run_sweep("custom", storage, seeds=1, base=BASE, grid={"delta_t": []})
    assert not (tmp_path / "s.db").exists()


def test_figures_never_create_a_store_or_a_study(tmp_path, capsys):
    missing = f"sqlite:///{tmp_path / 'none' / 's.db'}"
    assert main(["figures", "--storage", missing, "--out", str(tmp_path / "fig")]) == 2
    assert capsys.readouterr().err == f"error: no sweep store at {missing} (run snnspin sweep first)\n"
    assert not (tmp_path / "none").exists() and not (tmp_path / "fig").exists()
    storage = f"sqlite:///{tmp_path / 's.db'}"
    run_sweep("custom", storage, seeds=1, base=BASE, grid={"delta_t": [1.0]})
    assert main(["figures", "--storage", storage, "--sweeps", "nosuch", "--out", str(tmp_path / "fig")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: no sweep 'nosuch' in {storage} (it holds: custom)"
    from snnspin.sweep import sweep_names

    assert sweep_names(storage) == ["custom"]  # nosuch was not created


def test_a_sweep_leaves_only_its_trainings_in_the_store(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 's.db'}"
    run_sweep("custom", storage, seeds=1, base=BASE, grid=GRID)
    run_sweep("custom", storage, seeds=1, base=BASE, grid={"delta_t": [0.5, 2.0, 4.0]})  # an extended grid
    states = [t.state for t in open_sweep("custom", storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 3  # no placeholder trial, nothing trained twice


def test_a_store_run_from_another_base_config_is_refused_before_anything_is_written(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    run_sweep("custom", storage, seeds=1, base=BASE, grid={"delta_t": [0.5]})
    before = len(open_sweep("custom", storage).trials)
    for other in (BASE.replace(width=5), BASE.replace(init_drive=0.5)):
        with pytest.raises(ValueError, match="run from another base config"):
            run_sweep("custom", storage, seeds=1, base=other, grid={"delta_t": [0.5, 2.0]})
    assert len(open_sweep("custom", storage).trials) == before
    run_sweep("custom", storage, seeds=1, base=BASE.replace(device="cpu"), grid={"delta_t": [0.5]})  # may differ


def test_a_failed_training_fails_the_command_and_is_retried_by_the_next_run(tmp_path, capsys, monkeypatch):
    import snnspin.training

    storage = f"sqlite:///{tmp_path / 's.db'}"
    real = snnspin.training.train_seeds

    def broken(config, seeds, *args, **kw):
        if config.delta_t == 2.0:
            raise FloatingPointError("loss is not finite")
        return real(config, seeds, *args, **kw)

    monkeypatch.setattr(snnspin.training, "train_seeds", broken)
    import json

    (tmp_path / "tiny.json").write_text(json.dumps({"layers": 1, "width": 4, "epochs": 1, "batch_size": 450}))
    args = ["sweep", "custom", "--grid", "delta_t=0.5,2", "--seeds", "1", "--config", str(tmp_path / "tiny.json"),
            "--storage", storage]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "{'delta_t': 2.0} seed 0 failed: FloatingPointError: loss is not finite" in err
    monkeypatch.setattr(snnspin.training, "train_seeds", real)
    assert main(args) == 0
    assert "2 trainings finished" in capsys.readouterr().out


def test_the_seeds_of_a_point_train_together_and_fail_alone(tmp_path, monkeypatch):
    import snnspin.training

    real, calls = snnspin.training.train_seeds, []

    def recorded(config, seeds, *args, **kw):
        calls.append(list(seeds))
        if 1 in seeds:  # seed 1 diverges: alone or with others
            raise FloatingPointError("loss is not finite")
        return real(config, seeds, *args, **kw)

    monkeypatch.setattr(snnspin.training, "train_seeds", recorded)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    found = {(r["point"]["delta_t"], r["seed"]): r["accuracy"] for r in
             run_sweep("custom", storage, seeds=3, base=BASE, grid={"delta_t": [0.5]})}
    assert calls == [[0, 1, 2], [0], [1], [2]]  # together, then each alone after the group failed
    assert sorted(found) == [(0.5, 0), (0.5, 2)]
    for seed in (0, 2):  # each seed's result is its own training's
        _, history = train_seed(config_for({"delta_t": 0.5}, BASE), seed, progress=False)
        assert found[0.5, seed] == pytest.approx(history[-1].eval_acc)


def test_a_group_maps_each_seed_to_its_trial_and_a_diverged_seed_fails_alone(tmp_path, monkeypatch):
    import optuna

    import snnspin.training
    from snnspin.training import SeedsFailed

    real, calls = snnspin.training.train_seeds, []

    def diverging(config, seeds, *args, **kw):  # seed 1 diverges inside the group; 0 and 2 finish
        calls.append(list(seeds))
        finished = real(config, [s for s in seeds if s != 1], *args, **kw)
        if 1 in seeds:
            raise SeedsFailed({1: FloatingPointError("seed 1: the loss became nan")}, finished)
        return finished

    monkeypatch.setattr(snnspin.training, "train_seeds", diverging)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    found = {r["seed"]: r["accuracy"] for r in run_sweep("custom", storage, seeds=3, base=BASE,
                                                           grid={"delta_t": [2.0]})}
    assert calls == [[0, 1, 2]]  # no retraining: the finished seeds count
    assert found[0] != found[2]  # so that a swapped mapping would show
    for seed in (0, 2):
        _, history = train_seed(config_for({"delta_t": 2.0}, BASE), seed, progress=False)
        assert found[seed] == pytest.approx(history[-1].eval_acc)
    trials = open_sweep("custom", storage).trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.user_attrs["error"] for t in failed] == ["FloatingPointError: seed 1: the loss became nan"]


def test_cli_sweep_trains_every_point_on_a_data_file(tmp_path):
    import json

    import numpy as np

    path = tmp_path / "c3.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(60, 12, 2)), y=np.arange(60) % 3)
    config = tmp_path / "base.json"
    config.write_text(json.dumps({"width": 4, "layers": 1, "epochs": 1}))
    assert main(["sweep", "custom", "--data", str(path), "--grid", "tau=2", "--seeds", "1", "--config", str(config),
                 "--out", str(tmp_path / "sw")]) == 0
    [result] = results(open_sweep("custom", f"sqlite:///{(tmp_path / 'sw' / 'sweeps.db').resolve()}"))
    assert result["config"]["data"] == str(path)
    assert result["config"]["n_inputs"] == 2 and result["config"]["init_drive"] == 0.0  # as it ran, resolved


def test_a_named_sweep_on_a_data_file_keeps_its_small_preset_epochs(tmp_path, monkeypatch):
    import numpy as np

    import snnspin.training

    path = tmp_path / "c3.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(60, 12, 2)), y=np.arange(60) % 3)
    seen = []

    def record(config, *args, **kwargs):  # what each training would run, then a quick failure
        seen.append(config)
        raise ValueError("stop here")

    monkeypatch.setattr(snnspin.training, "train_seeds", record)
    run_sweep("tau", f"sqlite:///{tmp_path / 's.db'}", seeds=1, data=str(path))
    assert seen and all(c.epochs == SWEEPS["tau"].small_epochs and c.data == str(path) for c in seen)
