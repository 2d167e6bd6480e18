"""readout_time: the readout of the last step (the paper's) or of the mean over every step."""

import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from snnspin.config import TrainConfig
from snnspin.defaults import resolve_for_data
from snnspin.ensemble import together_reason
from snnspin.fused import ensemble_reason
from snnspin.models import build_model
from snnspin.presets import preset_config
from snnspin.training import check_resumable, train


@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
@pytest.mark.parametrize("engine", ["reference", "fused"])
def test_the_mean_readout_reads_the_average_of_every_steps_output(model, engine):
    """log p = log_softmax(W_r · mean_k y_last(k) + b_r), with y_last(k) the recorded outputs of
    the last layer (one per input point: one solver step each here)."""
    config = TrainConfig(model=model, readout_time="mean", tau=2.0, gain=0.4, engine=engine, width=6, n_inputs=2,
                         n_classes=3)
    torch.set_default_dtype(torch.float64)
    try:
        net = build_model(config, seed=3)
    finally:
        torch.set_default_dtype(torch.float32)
    data = torch.randn(20, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, traces = net(data, record=True)
        log_probs = net(data)
    want = F.log_softmax(net.readout(traces["y"][-1].mean(0)), dim=-1)
    assert torch.allclose(log_probs, want, atol=1e-12)
    last = F.log_softmax(net.readout(traces["y"][-1][-1]), dim=-1)
    assert not torch.allclose(log_probs, last, atol=1e-6)  # not the last step's (4e-4 apart here)


def test_the_mean_readout_of_x_runs_on_the_reference_path_or_is_refused():
    config = TrainConfig(readout_time="mean", readout="x", width=4)
    data = torch.rand(6, 2, 1)
    with pytest.warns(RuntimeWarning, match=r"reference path: the fused path averages y over the sequence, not x"):
        build_model(config)(data)
    with pytest.raises(ValueError, match=r"engine='fused' is not available: the fused path averages y"):
        build_model(config.replace(engine="fused"))(data)


def test_networks_run_together_only_with_one_readout_time():
    """(Each member of a call equals its own run: tests/test_ensemble.py, readout_time="mean" among its cases.)"""
    assert together_reason([build_model(TrainConfig(readout_time="mean"), seed) for seed in range(2)]) is None
    mixed = [build_model(TrainConfig(readout_time=t)) for t in ("last", "mean")]
    assert ensemble_reason(mixed) == "the networks differ in readout_time (last, mean)"


def test_readout_time_applies_to_the_continuous_models_only():
    with pytest.raises(ValueError, match=r"readout_time applies to the spintronic and ctrnn models; the lif model"):
        TrainConfig(model="lif", readout_time="mean")
    with pytest.raises(ValueError, match=r"readout_time must be one of auto, last, mean, got 'first'"):
        TrainConfig(readout_time="first")


def test_auto_is_last_on_the_digits_and_mean_on_data_files():
    data = ((torch.zeros(5, 40, 2), torch.arange(40) % 2), (torch.zeros(5, 10, 2), torch.arange(10) % 2))
    assert resolve_for_data(preset_config("spintronic"), data).readout_time == "last"
    assert resolve_for_data(preset_config("ctrnn", data="f.npz"), data).readout_time == "mean"
    assert resolve_for_data(preset_config("spintronic", data="f.npz", readout_time="last"), data).readout_time == "last"
    assert resolve_for_data(preset_config("lif", data="f.npz"), data).readout_time == "auto"  # spike_readout decides


def test_a_run_saved_before_the_option_resumes_with_the_last_step_readout(tmp_path):
    """A data-file run saved before readout_time existed trained on the last step: resuming it under
    the new default (mean) is refused, and with readout_time=last it resumes."""
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.normal(size=(40, 8, 2)), y=np.arange(40) % 2)
    config = TrainConfig(data=str(path), epochs=1, layers=1, width=3, readout_time="last")
    train(config, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved.pop("readout_time") == "last"
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))  # as an older release wrote it
    with pytest.raises(ValueError, match=r"readout_time: saved 'last', requested 'mean'"):
        train(config.replace(readout_time="auto", epochs=2), tmp_path / "run", resume=True, progress=False)
    train(config.replace(epochs=2), tmp_path / "run", resume=True, progress=False)
    check_resumable(TrainConfig(), TrainConfig(readout_time="last"))  # auto saved = last


def test_tuning_on_a_data_file_draws_no_readout_and_no_spike_readout():
    """A data file reads the mean (auto): tuning keeps readout y and draws nothing the model refuses."""
    import optuna

    from snnspin.hpo import SEARCH_SPACE, suggest

    params = {name: low for name, (low, _, _) in SEARCH_SPACE.items()}
    config = suggest(optuna.trial.FixedTrial(params), TrainConfig(data="mine.npz"))
    assert config.readout == "y" and config.spike_readout == "last"
    config = suggest(optuna.trial.FixedTrial({**params, "readout": "x"}), TrainConfig(readout_time="last"))
    assert config.readout == "x"


def test_a_study_made_before_the_option_is_not_resumed_under_the_mean_readout():
    import optuna

    from snnspin.hpo import check_same_settings

    old = TrainConfig(data="mine.npz").to_dict()
    del old["readout_time"]  # as a study made before the option saved its base
    study = optuna.create_study()
    study.set_user_attr("base_config", old)
    study.set_user_attr("trial_seeds", 1)
    with pytest.raises(ValueError, match=r"other settings \(readout_time 'last' → 'mean'\)"):
        check_same_settings(study, TrainConfig(data="mine.npz"), 1)
    check_same_settings(study, TrainConfig(data="mine.npz", readout_time="last"), 1)
    study.set_user_attr("base_config", TrainConfig(data="mine.npz").to_dict())  # made now: auto
    check_same_settings(study, TrainConfig(data="mine.npz", readout_time="mean"), 1)


def test_a_sweep_switching_between_the_continuous_models_keeps_readout_time():
    from snnspin.sweep import config_for

    base = preset_config("spintronic", readout_time="last")
    assert config_for({"model": "ctrnn"}, base).readout_time == "last"
    assert config_for({"model": "lif"}, base).readout_time == "auto"
