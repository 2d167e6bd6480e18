"""Data-dependent initialisation from the paper's drive rule (snnspin.init, config init_drive)."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnspin import design
from snnspin.config import TrainConfig
from snnspin.init import DEAD_BOUND, _input_drive_spread, drive_init
from snnspin.models import build_model
from snnspin.presets import preset_config
from snnspin.training import prepare_model, train_seed


def _series(kind: str, rng, steps: int, n: int, channels: int) -> np.ndarray:
    t = np.arange(steps)[:, None, None]
    if kind == "sine":
        return np.sin(t * rng.uniform(0.05, 1.5, (1, n, channels)) + rng.uniform(0, 6, (1, n, channels)))
    if kind == "heavy-tailed":
        return rng.standard_cauchy((steps, n, channels)).clip(-50, 50)
    return (rng.random((steps, n, channels)) < 0.05).astype(float)


@settings(max_examples=8, deadline=None)
@given(model=st.sampled_from(["spintronic", "ctrnn"]), channels=st.integers(1, 3), log_scale=st.floats(-3, 3),
       log_offset=st.floats(-3, 3), kind=st.sampled_from(["sine", "heavy-tailed", "sparse events"]),
       seed=st.integers(0, 1000))
def test_few_neurons_start_dead_after_the_initialisation_on_raw_data(model, channels, log_scale, log_offset, kind,
                                                                      seed):
    """Issue 19: after drive_init, at most DEAD_BOUND (2 %) of each layer's neurons end the batch
    it measured dead (spintronic, x < 1e-3) or saturated (CTRNN), on raw data of any units (no
    normalisation), and at most 5 % on another batch of the same data."""
    rng = np.random.default_rng(seed)
    x = 10.0 ** log_offset + 10.0 ** log_scale * _series(kind, rng, 32, 96, channels)
    x = torch.tensor(x, dtype=torch.float32)
    net = build_model(preset_config(model, width=12, n_inputs=channels, init_drive=1.0), seed)
    report = drive_init(net, x[:, :48])
    assert [r["layer"] for r in report] == [0, 1, 2]
    with torch.no_grad():
        for batch, bound in ((x[:, :48], DEAD_BOUND), (x[:, 48:], 0.05)):
            net(batch)
            health = net.neuron_health()
            assert max(health["dead"] if model == "spintronic" else health["saturated"]) <= bound


def test_the_drive_spread_hits_its_target_where_no_neuron_dies():
    """Closed form: the input weights' drive is linear in their factor, so a target that kills
    nothing is met exactly (to float32), layer by layer, the first layer's times input_scale;
    the bias cancels each neuron's mean synaptic sum; the recurrent weights keep their
    initialisation."""
    x = torch.randn(40, 64, 2, generator=torch.Generator().manual_seed(0)) * 30.0 + 200.0
    for model, input_scale in (("spintronic", 1.0), ("ctrnn", 1.0), ("spintronic", 0.4)):
        net = build_model(preset_config(model, width=10, n_inputs=2, input_scale=input_scale, init_drive=0.05), 0)
        recurrent = [m.weight.clone() for m in net.w_int]
        report = drive_init(net, x, target=0.05)
        expected = pytest.approx([0.05 * input_scale, 0.05, 0.05], rel=1e-4)
        assert [r["shrinks"] for r in report] == [0, 0, 0]
        assert [r["spread"] for r in report] == expected
        with torch.no_grad():
            assert [_input_drive_spread(net, x, i)[0] for i in range(3)] == expected
            _, traces = net(x, record=True)
        for i in range(3):
            assert traces["syn"][i].mean((0, 1)).abs().max() <= 0.0101 * traces["syn"][i].std()
            assert torch.equal(net.w_int[i].weight, recurrent[i])


def test_too_strong_a_target_is_shrunk_until_the_neurons_live():
    x = torch.randn(40, 64, 1, generator=torch.Generator().manual_seed(1)) * 4.0 + 8.0
    net = build_model(preset_config("spintronic", width=16, init_drive=5.0), 0)
    report = drive_init(net, x, target=5.0)
    assert all(r["shrinks"] > 0 and r["spread"] < 5.0 and r["unhealthy"] <= DEAD_BOUND for r in report)


def test_training_with_init_drive_records_its_report_and_repeats(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 24, 2)) * np.array([100.0, 0.01]) + np.array([500.0, 3.0])
    y = np.arange(60) % 3
    x[y == 1, :, 0] += 80.0
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    config = preset_config("spintronic", data=str(path), width=6, epochs=2, init_drive=1.0)
    plain = build_model(config.replace(init_drive=0.0, n_inputs=2, n_classes=3), 3)
    model, _ = train_seed(config.replace(epochs=1), 3, folder=tmp_path / "a", progress=False)
    report = json.loads((tmp_path / "a" / "init.json").read_text())
    assert [r["layer"] for r in report] == [0, 1, 2] and all(r["unhealthy"] <= DEAD_BOUND for r in report)
    again, _ = train_seed(config.replace(epochs=1), 3, folder=tmp_path / "b", progress=False)
    assert torch.equal(model.w_ext[0].weight, again.w_ext[0].weight)
    assert not torch.allclose(model.w_ext[0].weight, plain.w_ext[0].weight)
    # resuming does not initialise again over the trained weights
    resumed, history = train_seed(config, 3, folder=tmp_path / "a", resume=True, progress=False)
    straight, history_straight = train_seed(config, 3, folder=tmp_path / "c", progress=False)
    assert torch.allclose(resumed.w_ext[1].weight, straight.w_ext[1].weight, atol=1e-6)
    assert [r.train_loss for r in history] == pytest.approx([r.train_loss for r in history_straight], rel=1e-5)


def test_prepare_model_leaves_the_uniform_init_alone_without_init_drive():
    config = TrainConfig(width=6, normalize="none", init_drive=0.0)
    net = build_model(config, 0)
    before = [p.clone() for p in net.parameters()]
    assert prepare_model(net, config, torch.rand(20, 30, 1)) is None
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    with pytest.raises(ValueError, match="must be resolved against the data first"):
        prepare_model(net, config.replace(init_drive=-1.0), torch.rand(20, 30, 1))


def test_auto_means_the_drive_rule_for_the_ctrnn_on_a_data_file_only(tmp_path):
    from snnspin.defaults import resolve_for_data

    x, y = torch.randn(20, 60, 2), torch.arange(60) % 3
    data = ((x, y), (x, y))
    for model, on_file, expected in (("ctrnn", True, 1.0), ("ctrnn", False, 0.0), ("spintronic", True, 0.0),
                                     ("lif", True, 0.0)):
        config = preset_config(model, data="mine.npz" if on_file else "", n_inputs=2 if on_file else 0)
        assert config.init_drive == -1.0
        if on_file:
            assert resolve_for_data(config, data).init_drive == expected
    path = tmp_path / "mine.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(60, 20, 2)), y=np.arange(60) % 3)
    train_seed(preset_config("ctrnn", data=str(path), width=4, epochs=1), 0, folder=tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "init.json").read_text())[0]["layer"] == 0


@pytest.mark.parametrize("changes, message", [
    (dict(model="lif", init_drive=1.0), "threshold sets its own scale"),
    (dict(init_drive=-2.0), "init_drive must be in \\[0, 100\\]"),
    (dict(init_drive=1e300), "init_drive must be in"),
    (dict(init_drive=float("inf")), "init_drive must be"),
])
def test_settings_init_drive_cannot_honour_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_drive_init_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="not the lif model"):
        drive_init(build_model(TrainConfig(model="lif", width=4), 0), torch.rand(5, 4, 1))
    net = build_model(TrainConfig(width=4), 0)
    with pytest.raises(ValueError, match="target must be a number in"):
        drive_init(net, torch.rand(5, 4, 1), target=0.0)
    with pytest.raises(ValueError, match="bound must be in"):
        drive_init(net, torch.rand(5, 4, 1), bound=1.0)
    with pytest.raises(ValueError, match="needs a batch"):
        drive_init(net, torch.rand(5, 0, 1))


def test_the_config_rule_check_leaves_the_drive_to_init_drive():
    assert any("cumulative drive" in w for w in design.rule_warnings(TrainConfig(init_scale=0.01)))
    assert not any("cumulative drive" in w for w in design.rule_warnings(TrainConfig(init_scale=0.01, init_drive=1.0)))


def test_health_warnings_under_init_drive_name_it_instead_of_input_scale():
    from snnspin.training import EpochRecord, health_warnings

    record = EpochRecord(1, 0.1, 2.3, 10.0, 2.3, 10.0, 1.0, 0, [0.6], [0.0])
    line = health_warnings(record, TrainConfig(init_drive=0.8))[0]
    assert "a smaller init_drive (now 0.8)" in line and "input_scale" not in line


def test_tuning_keeps_init_drive_in_every_trial(tmp_path):
    from snnspin.hpo import tune

    base = TrainConfig(layers=1, width=4, epochs=1, batch_size=300, init_drive=0.5)
    result = tune(base, tmp_path, n_trials=1, progress=False)
    assert {"input_scale", "init_scale"} <= set(result["best_params"])
    best = TrainConfig.from_dict(json.loads((tmp_path / "best_config.json").read_text()))
    assert best.init_drive == 0.5 and best.input_scale == pytest.approx(result["best_params"]["input_scale"])


def test_constant_inputs_are_no_signal_to_scale_up():
    """A constant series leaves only float rounding in the centred drive: no layer's weights are
    blown up to amplify it (factor 1 where there is no signal)."""
    for model in ("spintronic", "ctrnn"):
        net = build_model(preset_config(model, width=8, n_inputs=2, init_drive=1.0), 0)
        with pytest.warns(RuntimeWarning, match="no signal reaches layer 0"):
            report = drive_init(net, torch.full((30, 16, 2), 3.0))
        assert all(r["factor"] <= 1.0 for r in report), report
        assert all(torch.isfinite(p).all() for p in net.parameters())


def test_float64_batches_initialise_a_float32_model():
    net = build_model(preset_config("spintronic", width=8, init_drive=1.0), 0)
    report = drive_init(net, torch.randn(20, 16, 1, dtype=torch.float64))
    assert report[0]["spread"] == pytest.approx(net.config.input_scale, rel=1e-3)


def test_resuming_on_changed_data_is_refused_and_the_init_is_not_redone(tmp_path, monkeypatch):
    from snnspin.training import train

    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x=rng.normal(size=(40, 12, 2)), y=np.arange(40) % 2)
    config = preset_config("ctrnn", data=str(path), width=4, layers=1, epochs=1)
    train(config, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "seed_0" / "init.json").exists()

    def not_again(*args, **kwargs):
        raise AssertionError("drive_init ran again on resume")

    monkeypatch.setattr("snnspin.init.drive_init", not_again)
    train(config.replace(epochs=2), tmp_path / "run", resume=True, progress=False)  # same data: fine, no new init
    np.savez(path, x=rng.normal(size=(40, 12, 2)) * 3 + 2, y=np.arange(40) % 2)
    with pytest.raises(ValueError, match="the data differ from those the run .* started on"):
        train(config.replace(epochs=3), tmp_path / "run", resume=True, progress=False)


def test_runs_and_studies_saved_before_init_drive_go_on_as_they_ran(tmp_path, capsys):
    """A CTRNN run on a data file saved before the field existed started from the uniform init:
    resuming it (CLI, Python) keeps that instead of refusing the auto default's 1."""
    from snnspin.cli import main
    from snnspin.training import train

    path = tmp_path / "mine.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(40, 12, 2)), y=np.arange(40) % 2)
    run = tmp_path / "old"
    config = preset_config("ctrnn", data=str(path), width=4, layers=1, epochs=1, init_drive=0.0)
    train(config, run, progress=False)
    saved = json.loads((run / "config.json").read_text())
    del saved["init_drive"]  # as written before the option
    (run / "config.json").write_text(json.dumps(saved))
    assert main(["train", "--out", str(run), "--resume", "--epochs", "4", "--quiet"]) == 0, capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["init_drive"] == 0.0
    train(preset_config("ctrnn", data=str(path), width=4, layers=1, epochs=3), run, resume=True, progress=False)
    assert json.loads((run / "config.json").read_text())["init_drive"] == 0.0


def test_the_initialisation_with_thermal_noise_neither_draws_from_nor_depends_on_the_global_rng():
    config = preset_config("spintronic", width=6, normalize="none", thermal_power=1e-3, init_drive=1.0,
                           batch_size=32)
    x = torch.rand(20, 40, 1, generator=torch.Generator().manual_seed(3)) * 16
    weights = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        state = torch.get_rng_state()
        model = build_model(config, 0)
        prepare_model(model, config, x, seed=0)
        assert torch.equal(torch.get_rng_state(), state)
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
def test_the_initialisation_is_the_same_whichever_engine_runs_the_network(model):
    """drive_init reads its statistics from the per-step path and judges liveness with the
    model's own engine: the reference loop and the fused path give the same weights."""
    x = torch.randn(30, 48, 2, generator=torch.Generator().manual_seed(5)) * 4 + 1
    reports, weights = [], []
    for engine in ("reference", "fused"):
        net = build_model(preset_config(model, width=8, n_inputs=2, init_drive=1.0, engine=engine), 0)
        reports.append(drive_init(net, x))
        weights.append([p.detach().clone() for p in net.parameters()])
    assert [r["shrinks"] for r in reports[0]] == [r["shrinks"] for r in reports[1]]
    assert [r["unhealthy"] for r in reports[0]] == [r["unhealthy"] for r in reports[1]]
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(*weights))
