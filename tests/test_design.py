"""Design rules against hand-computed values (the paper's 2896 synapses, 7.1 GHz, ~40 pJ)."""

import json
import math

import pytest
import torch

from snnspin import design
from snnspin.cli import main
from snnspin.config import TrainConfig
from snnspin.models import build_model


def test_paper_counts_energy_and_frequency():
    r = design.report(TrainConfig())
    assert (r["neurons"], r["synapses"]) == (96, 2896)
    assert r["energy_pj"] == pytest.approx((96 * 100 + 2896 * 10) / 1000)  # 38.56 pJ
    assert r["frequency_ghz"] == pytest.approx(1 / (0.01 * 14.12))  # 7.08 GHz
    assert round(r["frequency_ghz"], 1) == 7.1
    assert r["fan_in"] == 32.0


def test_energy_scales_with_time_and_device_figures():
    assert design.energy_pj(96, 2896, presentation_ns=50) == pytest.approx(38.56 / 2)
    assert design.energy_pj(10, 0, neuron_fj=1000) == pytest.approx(10.0)


def test_tau_frequency_round_trip():
    assert design.tau_ns(design.frequency_ghz(3.3, 0.02), 0.02) == pytest.approx(3.3)
    with pytest.raises(ValueError, match="alpha must be positive"):
        design.frequency_ghz(1.0, 0.0)


def test_cumulative_drive_and_lr_by_hand():
    # S = 0.5, <|W|> = 0.25, N = 16, Δt = 2: I·Δt = 0.5 · 0.25 · 4 · 2 = 1
    assert design.cumulative_drive(0.5, 0.25, 16, 2.0) == pytest.approx(1.0)
    assert design.recommended_lr(2.0, 0.5, 16) == pytest.approx(0.01 / (2 * 0.5 * 4))
    assert design.timescale_ok(2.0, 1.0) and not design.timescale_ok(1.0, 1.0)


def test_measured_drive_uses_unmasked_weights_and_real_fan_in():
    model = build_model(TrainConfig(layers=2, width=4, d_inter=0.5, d_intra=0.25))
    with torch.no_grad():
        for m in list(model.w_ext) + list(model.w_int):
            m.weight.copy_(0.3 * m.mask)  # every kept weight 0.3, masked ones stay 0
    assert design.model_mean_abs_weight(model) == pytest.approx(0.3)
    assert design.model_fan_in(model) == pytest.approx(0.5 * 4 + 0.25 * 4)
    r = design.report(TrainConfig(layers=2, width=4, d_inter=0.5, d_intra=0.25), model)
    assert r["cumulative_drive"] == pytest.approx(0.5 * 0.3 * math.sqrt(3))


def test_rule_warnings():
    assert design.rule_warnings(TrainConfig(init_scale=4.0)) == []
    warnings = design.rule_warnings(TrainConfig(tau=0.5, init_scale=0.1))
    assert any("τ > Δt" in w for w in warnings)
    assert any("far from 1" in w for w in warnings)


def test_cli_design_text_json_and_run(tmp_path, capsys):
    assert main(["design", "--preset", "paper"]) == 0
    text = capsys.readouterr().out
    assert "96" in text and "2896" in text and "38.6 pJ" in text and "7.08 GHz" in text
    assert main(["design", "--preset", "paper", "--json", "--alpha", "0.02"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["synapses"] == 2896 and data["frequency_ghz"] == pytest.approx(1 / (0.02 * 14.12))
    run = tmp_path / "run"
    assert main(["train", "--layers", "2", "--width", "4", "--epochs", "1", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["design", "--run", str(run), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "trained weights" in data["source"] and data["neurons"] == 8
    assert main(["design", "--run", str(tmp_path)]) == 2


def test_train_warns_before_training(tmp_path, capsys):
    main(["train", "--tau", "0.5", "--layers", "1", "--width", "2", "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")])
    assert "rule τ > Δt" in capsys.readouterr().err


def test_drive_accuracy_points_and_figure(tmp_path):
    from snnspin.plot import plot_drive_accuracy
    from snnspin.training import train

    runs = []
    for tau in (0.5, 5.0):
        run = tmp_path / f"tau{tau}"
        train(TrainConfig(tau=tau, layers=2, width=4, epochs=1, seeds=2), run, progress=False)
        runs.append(run)
    points = design.drive_accuracy_points(runs)
    assert [p["tau"] for p in points] == [0.5, 5.0] and all(p["seeds"] == 2 for p in points)
    assert all(p["drive"] > 0 and 0 <= p["accuracy"] <= 100 for p in points)
    fig = plot_drive_accuracy(points, tmp_path / "fig3c.png")
    assert (tmp_path / "fig3c.png").exists()
    assert fig.axes[0].get_xlabel() == "cumulative drive I·Δt"
