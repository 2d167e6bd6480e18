"""Your own multichannel series through the Python API and the CLI: every channel and class counts."""

import json

import numpy as np
import pytest
import torch

from snnspin.cli import main
from snnspin.config import TrainConfig
from snnspin.models import build_model
from snnspin.presets import preset_config
from snnspin.defaults import resolve_for_data
from snnspin.training import evaluate, load_data, train, train_seed


def sines(n=200, t=40, seed=0):
    """3 classes told apart only by the frequency of a sine in channel 1; channel 0 is noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    phase = rng.uniform(0, 2 * np.pi, n)
    x = np.zeros((n, t, 2))
    x[:, :, 0] = rng.normal(0, 1, (n, t))
    x[:, :, 1] = np.sin(2 * np.pi * (0.05 + 0.07 * y)[:, None] * np.arange(t) + phase[:, None])
    x[:, :, 1] += rng.normal(0, 0.3, (n, t))
    return x, y


@pytest.fixture(scope="module")
def sines_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("own") / "sines.npz"
    np.savez(path, *(), **dict(zip(("x", "y"), sines())))
    return path


def _config(path, **changes):
    return preset_config("spintronic", **{"data": str(path), "width": 16, "epochs": 30, "batch_size": 20, **changes})


def test_the_informative_second_channel_is_learned_through_the_api(sines_file):
    """Measured before: 33 % (chance), channel 1 ignored, training on channel 0 only."""
    config = _config(sines_file)
    model, history = train_seed(config, 0, progress=False)
    assert history[-1].eval_acc > 80.0  # chance: 33 %
    assert (model.n_inputs, model.n_classes) == (2, 3)
    (_, _), (x_eval, y_eval) = load_data(config)
    without_signal = x_eval.clone()
    without_signal[:, :, 1] = 0
    without_noise = x_eval.clone()
    without_noise[:, :, 0] = 0
    assert evaluate(model, without_signal, y_eval)[1] < 50.0  # the class is in channel 1 only
    assert not torch.equal(model(without_signal), model(x_eval))
    assert not torch.equal(model(without_noise), model(x_eval))  # channel 0 reaches the network too


def test_the_cli_trains_own_data_and_records_the_widths(sines_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(sines_file), "--width", "16", "--batch-size", "20", "--out", str(out),
                 "--quiet"]) == 0  # the preset's 80 digit-epochs: 640 optimiser steps of 20 series
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert (config["n_inputs"], config["n_classes"], config["data"]) == (2, 3, str(sines_file))
    assert (config["normalize"], config["schedule"], config["epochs"]) == ("zscore", "epochs", 128)
    assert summary["stats"]["mean"] > 80.0
    assert main(["design", "--run", str(out), "--json"]) == 0  # the run reads back with its widths


def test_input_scale_applies_to_every_way_data_enter(sines_file):
    """Measured before: input_scale 0.001 and 1000 gave identical histories when data= was passed."""
    data = load_data(_config(sines_file))
    histories = [train_seed(_config(sines_file, epochs=2, input_scale=scale), 0, progress=False, data=data)[1]
                 for scale in (0.001, 1000.0)]
    assert histories[0][-1].train_loss != histories[1][-1].train_loss
    model = build_model(TrainConfig(n_inputs=2, n_classes=3, input_scale=0.5, width=4), 0)
    x = torch.rand(5, 3, 2)
    unscaled = build_model(TrainConfig(n_inputs=2, n_classes=3, width=4), 0)
    assert torch.allclose(model(x), unscaled(x * 0.5))


def test_widths_must_agree_with_the_data(sines_file):
    data = load_data(_config(sines_file))
    with pytest.raises(ValueError, match="the data have 2 channels .* but n_inputs = 1"):
        train_seed(_config(sines_file, n_inputs=1), 0, progress=False, data=data)
    with pytest.raises(ValueError, match="labels go up to 2 but n_classes = 2"):
        resolve_for_data(_config(sines_file, n_classes=2), data)
    with pytest.raises(ValueError, match="data have 1 features .* the model takes 3"):
        build_model(TrainConfig(n_inputs=3), 0)(torch.rand(4, 2, 1))


def test_twelve_classes(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "twelve.npz"
    np.savez(path, x=rng.normal(size=(48, 6, 3)), y=np.arange(48) % 12)
    summary = train(TrainConfig(data=str(path), width=4, epochs=1), progress=False)  # was: IndexError
    # 0.5 · 4·3 (input) + 0.5 · 2 · 4·4 (inter) + 0.5 · 3 · 4·4 (intra) + 4·12 (readout)
    assert summary["counts"]["synapses"] == 6 + 16 + 24 + 48


@pytest.mark.parametrize("changes, match", [
    (dict(n_inputs=-1), "n_inputs must be >= 0"),
    (dict(n_classes=1), "n_classes must be >= 2"),
    (dict(data="x.npz", order="snake"), "order='snake' scans the digits"),
])
def test_bad_widths_and_options(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)
