"""Device realism: thermal noise statistics, chips (mismatch), weight precision, device-aware
training and the robustness command."""

import math

import pytest
import torch

from snnspin.cli import main
from snnspin.config import TrainConfig
from snnspin.device import CLIP, draw_chip, quantise
from snnspin.models import build_model
from snnspin.nn import Oscillator
from snnspin.training import train_seed

TINY = TrainConfig(layers=2, width=6, epochs=1, batch_size=450)


@pytest.mark.parametrize("dt", [0.2, 1.0, 5.0])
def test_a_passive_noisy_oscillator_reaches_the_boltzmann_law(dt):
    """With the drive I = 0 the power relaxes as dx = -γx dt + 2D dt + 2√(Dx) dW, whose
    stationary law is exponential with mean x_th (= std): for every step, the scheme is exact."""
    x_th, tau, n = 0.02, 2.0, 40_000
    layer = Oscillator(tau=tau, dt=dt, gain=0.5, thermal_power=x_th).double()
    layer.generator = torch.Generator().manual_seed(1)
    u = torch.full((n, 1), -layer.fixed_bias().item() / 0.5, dtype=torch.float64)  # S u + b_fixed = 0
    x = torch.full((n, 1), 0.5, dtype=torch.float64)
    for _ in range(int(12 * tau / dt) + 1):
        x, _ = layer(u, x)
    assert float(x.mean()) == pytest.approx(x_th, rel=0.03)
    assert float(x.std()) == pytest.approx(x_th, rel=0.04)
    assert float((x > 3 * x_th).double().mean()) == pytest.approx(math.exp(-3), rel=0.1)  # the exponential tail
    assert bool((x >= 0).all() and (x <= 1).all())


def test_noise_revives_a_dead_oscillator_and_passes_the_deterministic_gradient():
    layer = Oscillator(tau=2.0, dt=1.0, thermal_power=0.01)
    layer.generator = torch.Generator().manual_seed(0)
    x = torch.full((1000, 1), 1e-30, requires_grad=True)
    y, _ = layer(torch.zeros(1000, 1), x)  # at rest drive, a noisy oscillator leaves x = 0
    assert float(y.mean()) > 1e-3
    y.sum().backward()
    clean = Oscillator(tau=2.0, dt=1.0)
    x2 = x.detach().clone().requires_grad_(True)
    clean(torch.zeros(1000, 1), x2)[0].sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)  # ∂x⁺/∂x of the deterministic step


def test_noise_draws_repeat_from_the_layer_generator_and_are_refused_outside_0_1():
    layer = Oscillator(tau=2.0, thermal_power=0.01)
    draws = []
    for _ in range(2):
        layer.generator = torch.Generator().manual_seed(5)
        draws.append(layer(torch.zeros(3, 4), torch.full((3, 4), 0.5))[0])
    torch.testing.assert_close(draws[0], draws[1], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"thermal_power must be a number in \[0, 1\), got 1.5"):
        layer.thermal_power = 1.5
    assert layer.thermal_power == 0.01


def test_a_chip_has_the_stated_spread_and_is_saved_with_the_weights(tmp_path):
    chip = draw_chip(3, 2000, 0.05, seed=4)
    for name in ("tau", "sigma", "q"):
        assert float(chip[name].mean()) == pytest.approx(1.0, abs=0.003)
        assert float(chip[name].std()) == pytest.approx(0.05, rel=0.05)
        assert float((chip[name] - 1).abs().max()) <= 0.05 * CLIP + 1e-12
    config = TINY.replace(mismatch=0.1, chip_seed=7)
    model = build_model(config, seed=0)
    taus = torch.stack([n.tau for n in model.neurons])
    expected = config.tau * draw_chip(2, 6, 0.1, 7)["tau"]
    torch.testing.assert_close(taus.double(), expected, rtol=1e-6, atol=0)
    assert not torch.equal(taus, torch.stack([n.tau for n in build_model(config.replace(chip_seed=8)).neurons]))
    # b_fixed = 2γ_i follows each device's τ; the rest point follows σ_i
    neuron = model.neurons[0]
    torch.testing.assert_close(neuron.fixed_bias(), 2 / neuron.tau)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    other = build_model(config.replace(chip_seed=99), seed=0)
    other.load_state_dict(torch.load(tmp_path / "w.pt"))
    torch.testing.assert_close(other.neurons[1].sigma, model.neurons[1].sigma, rtol=0, atol=0)


def test_ctrnn_chips_spread_tau_only():
    model = build_model(TINY.replace(model="ctrnn", mismatch=0.05), seed=0)
    assert model.neurons[0].tau.shape == (6,) and float(model.neurons[0].tau.std()) > 0


def test_quantised_weights_take_few_levels_keep_masks_and_pass_gradients_straight():
    model = build_model(TINY.replace(weight_bits=3), seed=0)
    for linear in (*model.w_ext, *model.w_int, model.readout):
        w = linear.effective_weight()
        step = float(linear.weight.abs().max()) / 3
        levels = torch.unique(torch.round(w.detach() / step))
        assert set(levels.tolist()) <= {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}
        assert bool((w[~linear.mask] == 0).all())
    w = torch.randn(5, 5, requires_grad=True)
    quantise(w, 4).pow(2).sum().backward()
    torch.testing.assert_close(w.grad, 2 * quantise(w, 4).detach())  # d/dw of q² with dq/dw = 1


@pytest.mark.parametrize("changes, message", [
    ({"mismatch": 0.2}, r"mismatch must be in \[0, 0.15\]"),
    ({"mismatch": 0.05, "learn_tau": True}, "cannot be combined with learn_tau"),
    ({"model": "lif", "mismatch": 0.05}, "applies to the spintronic and CTRNN models"),
    ({"model": "ctrnn", "thermal_power": 0.01}, "does not apply to the ctrnn model"),
    ({"thermal_power": -0.1}, r"thermal_power must be in \[0, 1\)"),
    ({"weight_bits": 1}, r"weight_bits must be 0 \(full precision\) or in \[2, 16\]"),
    ({"chip_draw": "epoch"}, "chip_draw must be one of fixed, batch"),
])
def test_device_settings_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_device_aware_training_draws_chips_per_batch_and_evaluates_on_its_own(tmp_path):
    config = TINY.replace(mismatch=0.1, chip_draw="batch", batch_size=300, epochs=2, thermal_power=0.005)
    model, history = train_seed(config, 0, folder=tmp_path / "a", progress=False)
    own = build_model(config, seed=0)
    torch.testing.assert_close(model.neurons[0].tau, own.neurons[0].tau)  # the chip it is evaluated on
    again, history2 = train_seed(config, 0, progress=False)
    assert [r.eval_acc for r in history] == [r.eval_acc for r in history2]  # reproducible: seeded draws
    fixed = train_seed(config.replace(chip_draw="fixed"), 0, progress=False)[1]
    assert [r.train_loss for r in fixed] != [r.train_loss for r in history]


def test_robustness_of_a_device_aware_run(tmp_path):
    """A run trained with a fresh chip per batch is deployed like any other (on fixed chips),
    including at zero spread."""
    from snnspin.robustness import evaluate_robustness
    from snnspin.training import train

    config = TINY.replace(mismatch=0.05, chip_draw="batch", batch_size=450, epochs=1, seeds=1)
    train(config, tmp_path / "run", progress=False)
    rows = evaluate_robustness(tmp_path / "run", chips=2, axes={"mismatch": (0.0, 0.05)})
    assert [(r["value"], r["chip"]) for r in rows] == [(0.0, 0), (0.05, 0), (0.05, 1)]  # no spread: one chip
    assert all(0 <= r["accuracy"] <= 100 for r in rows)


def test_robustness_command_on_a_trained_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--layers", "1", "--width", "4", "--epochs", "1", "--batch-size", "450", "--quiet",
                 "--out", str(run)]) == 0
    summary = (run / "summary.json").read_text()
    args = ["robustness", "--run", str(run), "--chips", "2", "--mismatch", "0", "0.05", "--thermal-power", "0.01",
            "--weight-bits", "0", "4", "--quiet"]
    assert main(args) == 0
    text = (run / "robustness.md").read_text()
    import json

    accuracy = json.loads(summary)["accuracy"]["0"]
    assert f"| mismatch | 0 | 1 | {accuracy:.2f} |" in text  # no spread, no noise: the run's own accuracy
    assert f"| weight_bits | 0 | 1 | {accuracy:.2f} |" in text
    assert "| mismatch | 0.05 | 2 |" in text and "| thermal_power | 0.01 | 2 |" in text
    assert (run / "robustness.png").stat().st_size > 0
    rows = (run / "robustness.csv").read_text().splitlines()
    assert rows[0] == "axis,value,seed,chip,accuracy" and len(rows) == 1 + 1 + 2 + 2 + 1 + 1
    capsys.readouterr()
    assert main(["robustness", "--run", str(run), "--chips", "0"]) == 2
    assert "--chips must be at least 1, got 0" in capsys.readouterr().err
    assert main(["robustness", "--run", str(tmp_path / "nothing")]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_chip_settings_that_could_not_act_are_refused_and_robustness_keeps_learned_taus(tmp_path):
    with pytest.raises(ValueError, match="chip_draw='batch' draws chips with a device spread"):
        TrainConfig(chip_draw="batch")
    with pytest.raises(ValueError, match="chip_seed draws a chip's spread and noise"):
        TrainConfig(model="lif", chip_seed=5)
    from snnspin.robustness import axes_for

    with pytest.raises(ValueError, match="mismatch does not apply to the spintronic model with learn_tau"):
        axes_for(TrainConfig(learn_tau=True), {"mismatch": (0.0,)})
    assert "mismatch" not in axes_for(TrainConfig(learn_tau=True))
