"""Design rules against hand-computed values (the paper's 2896 synapses, 7.1 GHz, ~40 pJ)."""

import json
import math
import statistics

import pytest
import torch
from _by_hand import drive_by_hand

from snnspin import design, design_rules, design_runs
from snnspin.cli import main
from snnspin.config import TrainConfig
from snnspin.models import build_model
from snnspin.training import load_weights


def test_paper_counts_energy_and_frequency():
    r = design.report(TrainConfig())
    # 3 layers of 32: input 0.5·32 + inter 2·0.5·32² + intra 3·0.5·32² + readout 32·10 + 0 = 2896
    assert (r["neurons"], r["synapses"]) == (96, 2896) == (3 * 32, 16 + 2 * 512 + 3 * 512 + 320)
    assert r["energy_pj"] == pytest.approx(38.56)  # (96 · 100 fJ + 2896 · 10 fJ) for 100 ns
    assert r["energy_pj_sequence"] == pytest.approx(38.56 * 64 / 100)  # 64 points of Δt = 1 ns
    assert r["frequency_ghz"] == pytest.approx(7.0821529745, abs=1e-9)  # 1 / (0.01 · 14.12 ns)
    assert round(r["frequency_ghz"], 1) == 7.1  # the paper's "ω ≈ 7.1 GHz"
    assert r["fan_in"] == 32.0
    assert r["recommended_lr"] == pytest.approx(0.0035355339, abs=1e-9)  # 0.01 / (1 · 0.5 · √32)
    assert r["tau_over_delta_t"] == pytest.approx(14.12) and r["timescale_ok"] is True
    assert r["cumulative_drive"] == pytest.approx(drive_by_hand(TrainConfig(), build_model(TrainConfig())))


def test_design_names_are_re_exported():
    for name in ("fan_in", "cumulative_drive", "recommended_lr", "timescale_ok", "frequency_ghz", "tau_ns",
                 "energy_pj", "NEURON_FJ", "SYNAPSE_FJ", "REFERENCE_NS", "DRIVE_WINDOW", "DRIVE_WARN"):
        assert getattr(design, name) is getattr(design_rules, name), name
    assert design.drive_accuracy_points is design_runs.drive_accuracy_points
    assert design_rules.fan_in(32, 0.5, 0.5) == 32.0 and design_rules.fan_in(10, 0.2, 1.0) == 12.0


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


@pytest.mark.parametrize("changes", [dict(width=1), dict(d_inter=0.0, d_intra=0.0)])
def test_no_connections_between_neurons_is_reported_not_a_crash(changes, capsys):
    config = TrainConfig(**changes)
    r = design.report(config)
    assert r["fan_in"] == 0.0 and r["cumulative_drive"] == 0.0 and r["recommended_lr"] is None
    assert "undefined (fan-in N = 0" in design.format_report(r)
    (warning,) = design.rule_warnings(config)
    assert "no inputs from other neurons (fan-in N = 0" in warning
    with pytest.raises(ValueError, match="fan-in N = 0"):
        design.recommended_lr(1.0, 0.5, 0)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in changes.items()]
    assert main(["design", *flags]) == 0
    assert "undefined" in capsys.readouterr().out
    assert main(["design", "--json", *flags]) == 0
    assert json.loads(capsys.readouterr().out)["recommended_lr"] is None


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
    assert "96" in text and "2896" in text and "38.6 pJ" in text and "the paper's ω = 1/(α τ) = 7.08" in text
    assert main(["design", "--preset", "paper", "--json", "--alpha", "0.02"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["synapses"] == 2896
    assert data["frequency_ghz"] == pytest.approx(3.5410764873, abs=1e-9)  # 1 / (0.02 · 14.12 ns)
    run = tmp_path / "run"
    assert main(["train", "--layers", "2", "--width", "4", "--epochs", "1", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["design", "--run", str(run), "--json", "--presentation-ns", "50"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "trained weights" in data["source"] and data["neurons"] == 8
    # 2 × 4 neurons: input 2 + inter 8 + intra 2·8 + readout 40 + 0 synapses; energy for 50 ns
    assert data["synapses"] == 2 + 8 + 16 + 40
    assert data["energy_pj"] == pytest.approx((8 * 100 + 66 * 10) / 1000 / 2)
    config = TrainConfig.load(run / "config.json")
    model = build_model(config)
    load_weights(model, run / "seed_0" / "weights.pt")
    assert data["cumulative_drive"] == pytest.approx(drive_by_hand(config, model), rel=1e-6)
    assert data["fan_in"] == 0.5 * 4 + 0.5 * 4
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
    for point, run in zip(points, runs):
        config = TrainConfig.load(run / "config.json")
        drives, finals = [], []
        for seed in (0, 1):
            model = build_model(config, seed)
            load_weights(model, run / f"seed_{seed}" / "weights.pt")
            drives.append(drive_by_hand(config, model))
            finals.append(json.loads((run / f"seed_{seed}" / "history.json").read_text())[-1]["eval_acc"])
        assert point["drive"] == pytest.approx((drives[0] + drives[1]) / 2, rel=1e-6)  # median of two
        assert point["accuracy"] == pytest.approx(statistics.median(finals))
        assert point["delta_t"] == 1.0 and point["run"] == str(run)
    fig = plot_drive_accuracy(points, tmp_path / "fig3c.png")
    assert (tmp_path / "fig3c.png").exists()
    assert fig.axes[0].get_xlabel() == "cumulative drive I·Δt"


def test_cli_design_config_file_and_run_alone(tmp_path, capsys):
    (tmp_path / "c.json").write_text('{"width": 4, "layers": 1}')
    assert main(["design", "--config", str(tmp_path / "c.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["neurons"] == 4
    assert main(["design", "--run", str(tmp_path), "--width", "8", "--preset", "paper"]) == 2
    assert "--width, --preset would be ignored" in capsys.readouterr().err


def test_device_frequency_is_checked_against_what_oscillators_reach(capsys):
    from snnspin.design import DEVICE_FREQUENCY_GHZ, report

    paper = report(TrainConfig())  # τ = 14.12 ns: 7.08 GHz
    assert paper["frequency_in_range"] and paper["frequency_range_ghz"] == list(DEVICE_FREQUENCY_GHZ)
    assert paper["lr_over_rule"] == pytest.approx(0.149 / (0.01 / (0.5 * 32 ** 0.5)))  # the paper's own: 42×
    assert paper["oscillation_ghz"] == pytest.approx(1 / (2 * math.pi * 0.01 * 14.12))  # f = ω/2π: 1.13 GHz
    tuned = report(TrainConfig(tau=1.974))  # f = 8.06 GHz (the paper's convention: 50.7)
    assert tuned["frequency_in_range"] and tuned["frequency_ghz"] == pytest.approx(50.66, abs=0.01)
    fast = report(TrainConfig(tau=0.4))  # 39.8 GHz
    assert not fast["frequency_in_range"]
    assert not report(TrainConfig(), f_range=(10.0, 40.0))["frequency_in_range"]
    assert main(["design", "--tau", "0.4"]) == 0
    text = capsys.readouterr().out
    assert "above 0.1-30 GHz" in text and "choose τ in 0.531-159 ns" in text
    assert main(["design"]) == 0
    assert "42× it at its design point" in capsys.readouterr().out
    assert main(["design", "--f-range", "40", "10"]) == 2
    assert "f_range must be two frequencies 0 < low < high" in capsys.readouterr().err


def test_design_reads_the_data_file_and_says_when_init_drive_sets_the_drive(tmp_path, capsys):
    import numpy as np

    from snnspin.cli import main

    path = tmp_path / "c3.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(60, 12, 2)), y=np.arange(60) % 3)
    assert main(["design", "--data", str(path), "--width", "4", "--layers", "1"]) == 0
    text = capsys.readouterr().out
    assert "synapses                   24" in text  # the file's 2 channels and 3 classes (masked), not 1 and 10
    assert main(["design", "--model", "ctrnn", "--data", str(path), "--width", "4", "--layers", "1"]) == 0
    assert "training first scales the input weights so that their drive per point on the data spreads 1" in \
        capsys.readouterr().out
    assert main(["design", "--data", str(tmp_path / "none.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
