"""Data-aware defaults and neuron-health monitoring."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnspin.config import TrainConfig
from snnspin.defaults import DIGITS_MEAN, DIGITS_STD, input_statistics, resolve_for_data
from snnspin.models import build_model
from snnspin.presets import preset_config
from snnspin.training import load_data, train_seed


def _multichannel(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 40, 3)) * np.array([0.01, 1.0, 50.0]) + np.array([500.0, 0.0, -3.0])
    x[:, :, 1] += np.sin(np.arange(40) * (0.2 + 0.2 * (np.arange(240) % 3))[:, None])
    path = tmp_path / "multi.npz"
    np.savez(path, x=x, y=np.arange(240) % 3)
    return str(path)


def test_normalisation_uses_training_statistics_only(tmp_path):
    x = torch.tensor(np.random.default_rng(1).normal(3.0, 5.0, size=(20, 50, 2)), dtype=torch.float32)
    for mode, (mean, std) in (("zscore", (0.0, 1.0)), ("digits", (DIGITS_MEAN, DIGITS_STD))):
        shift, gain = input_statistics(TrainConfig(normalize=mode), x)
        normalised = (x - shift) * gain
        assert normalised.mean((0, 1)).tolist() == pytest.approx([mean] * 2, abs=1e-4)
        assert normalised.std((0, 1), unbiased=False).tolist() == pytest.approx([std] * 2, rel=1e-4)
    assert input_statistics(TrainConfig(normalize="none"), x) is None
    path = _multichannel(tmp_path)
    model, _ = train_seed(TrainConfig(data=path, width=4, epochs=1), 0, progress=False)
    (x_train, _), (x_test, _) = load_data(TrainConfig(data=path))
    shift, gain = input_statistics(TrainConfig(normalize="zscore"), x_train)
    assert torch.allclose(model.input_shift, shift) and torch.allclose(model.input_gain, gain)
    assert not torch.allclose(input_statistics(TrainConfig(normalize="zscore"), x_test)[0], shift)


def test_defaults_leave_the_digits_run_as_it_was():
    config = preset_config("spintronic")
    resolved = resolve_for_data(config, load_data(config))
    assert (resolved.batch_size, resolved.epochs, resolved.lr_decay, resolved.normalize) == \
        (120, config.epochs, config.lr_decay, "none")
    # the same preset on a small file: batch from N, the same 640 optimiser steps, lr decay per step kept
    data = ((torch.zeros(5, 100, 2), torch.arange(100) % 2), (torch.zeros(5, 10, 2), torch.arange(10) % 2))
    small = resolve_for_data(config.replace(data="file.npz"), data)
    steps_per_epoch = -(-100 // small.batch_size)
    assert small.batch_size == 15 and abs(small.epochs * steps_per_epoch - 80 * 8) <= steps_per_epoch
    # lr = lr0 / (epoch / lr_decay + 1): the decay per optimiser step is lr_decay · steps per epoch
    assert small.lr_decay * steps_per_epoch == pytest.approx(config.lr_decay * 8)


def test_history_records_neuron_health_and_training_warns():
    config = preset_config("spintronic", "paper", epochs=2)
    with pytest.warns(RuntimeWarning, match=r"% of layer \d's neurons end the sequences dead .*smaller lr0"):
        _, history = train_seed(config, 0, progress=False)
    for record in history:
        assert len(record.dead) == 3 and len(record.saturated) == 3
        assert all(0.0 <= f <= 1.0 for f in record.dead + record.saturated)
    assert max(history[-1].dead) > 0.3  # the paper's point: many dead oscillators (issue 15)
    _, ctrnn = train_seed(preset_config("ctrnn", epochs=1), 0, progress=False)
    assert ctrnn[-1].dead is None and len(ctrnn[-1].saturated) == 3


@settings(max_examples=25, deadline=None)
@given(channels=st.integers(1, 6), log_scale=st.floats(-6, 6), log_offset=st.floats(-6, 6),
       kind=st.sampled_from(["sine", "heavy-tailed", "sparse events"]), seed=st.integers(0, 1000))
def test_no_neuron_starts_dead_on_data_of_any_scale(channels, log_scale, log_offset, kind, seed):
    """Issue 19: with the data-aware defaults (z-scored inputs) the tuned preset starts alive
    whatever the data's units: at most 2 % of any layer's oscillators end a batch with x < 1e-3
    at initialisation (measured: 0 % on 180 random sets, scales and offsets 1e-6..1e6)."""
    rng = np.random.default_rng(seed)
    t, n = np.arange(48)[:, None, None], 48
    if kind == "sine":
        base = np.sin(t * rng.uniform(0.05, 1.5, (1, n, channels)) + rng.uniform(0, 6, (1, n, channels)))
    elif kind == "heavy-tailed":
        base = rng.standard_cauchy((48, n, channels)).clip(-50, 50)
    else:
        base = (rng.random((48, n, channels)) < 0.05).astype(float)
    x = torch.tensor(10.0 ** log_offset + 10.0 ** log_scale * base, dtype=torch.float32)
    y = torch.arange(n) % 3
    config = resolve_for_data(preset_config("spintronic", data="mine.npz"), ((x, y), (x, y)))
    net = build_model(config, seed=seed)
    net.set_input_statistics(*input_statistics(config, x))
    with torch.no_grad():
        net(x)
    assert max(net.neuron_health()["dead"]) <= 0.02
