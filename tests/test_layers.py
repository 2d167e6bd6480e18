"""snnTorch-style layers: parity with the functional core, state handling, resets, errors."""

import warnings

import pytest
import snntorch as snn
import torch
from torch import nn

from snnspin.functional import ctrnn_step, cutoff_rate, highpass_step, oscillator_step
from snnspin.nn import CTRNN, HighPass, Oscillator, detach_hidden, reset

f64 = torch.float64


def run(layer, inputs):
    outs = []
    for u in inputs:
        out = layer(u)
        outs.append(out[0] if isinstance(out, tuple) else out)
    return torch.stack(outs)


def test_oscillator_layer_matches_functional():
    torch.manual_seed(0)
    u = torch.randn(10, 3, 4, dtype=f64)
    tau = torch.tensor([2.0, 5.0, 14.12, 30.0], dtype=f64)
    layer = Oscillator(tau=tau, dt=0.7, gain=0.5, method="rk4", substeps=3).double()
    got = run(layer, u)
    x = torch.full((3, 4), 0.5, dtype=f64)
    gamma = 1 / tau
    for t in range(10):
        x = oscillator_step(x, 0.5 * u[t] + 2 * gamma, gamma, 0.7, method="rk4", substeps=3)
        assert torch.equal(got[t], x)


def test_ctrnn_and_highpass_layers_match_functional():
    u = torch.randn(6, 2, 3, dtype=f64)
    ctrnn = CTRNN(tau=3.0, dt=1.0, gain=0.5).double()
    hp = HighPass(f_cut_mhz=10.0, dt=1.0, x0=0.0).double()
    x = torch.zeros(2, 3, dtype=f64)
    y = torch.zeros(2, 3, dtype=f64)
    prev = torch.zeros(2, 3, dtype=f64)
    for t in range(6):
        out, state = ctrnn(u[t])
        x = ctrnn_step(x, 0.5 * u[t], 1 / 3.0, 1.0)
        assert torch.equal(state, x) and torch.equal(out, torch.tanh(x))
        filtered = hp(u[t])[0]
        y = highpass_step(y, prev, u[t], cutoff_rate(10.0), 1.0)
        prev = u[t]
        assert torch.equal(filtered, y)


def test_explicit_state_and_return_modes():
    layer = Oscillator()
    u = torch.ones(2, 3)
    x, state = layer(u)
    x2, state2 = layer(u, state)  # explicit state continues the trajectory
    assert (x2 > x).all()
    hidden = Oscillator(init_hidden=True)
    assert isinstance(hidden(u), torch.Tensor)
    both = Oscillator(init_hidden=True, output=True)(u)
    assert isinstance(both, tuple) and len(both) == 2
    with pytest.raises(TypeError, match="init_hidden=True"):
        hidden(u, state)


def test_reset_returns_rest_state_and_restarts():
    layer = Oscillator(tau=5.0, init_hidden=True)
    first = layer(torch.ones(4, 2))
    layer(torch.ones(4, 2))
    rest = layer.reset_mem()
    assert torch.equal(rest, torch.full((4, 2), 0.5))
    assert not rest.requires_grad
    assert torch.equal(layer(torch.ones(4, 2)), first)
    assert torch.equal(layer.init_oscillator(), torch.full((4, 2), 0.5))


def test_custom_bias_rest_point_and_zero_rest_error():
    layer = Oscillator(tau=2.0, bias_fixed=1.5)  # γ = 0.5: x* = (1.5 - 0.5)/1.5
    x, _ = layer(torch.zeros(1, 1))
    assert float(x) == pytest.approx(2 / 3, abs=1e-6)
    with pytest.raises(ValueError, match="never leaves"):
        Oscillator(tau=2.0, bias_fixed=0.4)
    Oscillator(tau=2.0, bias_fixed=0.4, x0=0.3)  # allowed with an explicit start


def test_new_batch_size_starts_at_rest():
    layer = Oscillator(init_hidden=True)
    layer(torch.ones(4, 2))
    assert torch.equal(layer(torch.zeros(3, 2)), torch.full((3, 2), 0.5))


def test_detach_hidden_cuts_graph():
    layer = Oscillator(init_hidden=True, learn_tau=True)
    layer(torch.ones(2, 2))
    assert layer.x.requires_grad
    layer.detach_hidden()
    assert not layer.x.requires_grad
    out = layer(torch.ones(2, 2)).sum()
    out.backward()
    assert layer.tau.grad is not None


def test_learn_flags_switch_parameter_and_buffer():
    learned = Oscillator(learn_tau=True, learn_gain=True)
    fixed = Oscillator()
    assert {n for n, _ in learned.named_parameters()} == {"tau", "gain"}
    assert list(fixed.parameters()) == [] and "tau" in dict(fixed.named_buffers())
    assert "x" not in fixed.state_dict()  # state buffers are not persistent


def test_no_class_level_registry():
    before = len(getattr(Oscillator, "instances", []))
    for _ in range(5):
        Oscillator()
    assert len(getattr(Oscillator, "instances", [])) == before == 0


def test_snntorch_sequential_runs_backprops_and_resets():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(1, 32),
        Oscillator(tau=14.12, dt=1.0, init_hidden=True),
        nn.Linear(32, 32),
        snn.Leaky(beta=0.9, init_hidden=True, output=True),
    )
    data = torch.rand(64, 8, 1) * 16  # [T, B, 1]
    mems = []
    for t in range(data.shape[0]):
        spk, mem = net(data[t])
        mems.append(mem)
    loss = torch.stack(mems).pow(2).mean()
    loss.backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0
    reset(net)
    assert torch.equal(net[1].x, torch.full((8, 32), 0.5))
    assert net[3].mem.abs().sum() == 0
    assert not net[1].x.requires_grad


def test_reset_finds_nested_layers():
    inner = nn.ModuleList([Oscillator(init_hidden=True), CTRNN(init_hidden=True)])
    net = nn.Sequential(nn.Sequential(inner), HighPass(init_hidden=True))
    inner[0](torch.ones(2, 2))
    inner[1](torch.ones(2, 2))
    net[1](torch.ones(2, 2))
    reset(net)
    assert torch.equal(inner[0].x, torch.full((2, 2), 0.5))
    assert torch.equal(inner[1].x, torch.zeros(2, 2))
    assert torch.equal(net[1].y, torch.zeros(2, 2))
    detach_hidden(net)


@pytest.mark.parametrize("kwargs, match", [
    (dict(tau=0.0), "tau must be positive"),
    (dict(tau=torch.tensor([1.0, -2.0])), "tau must be positive"),
    (dict(dt=-1.0), "dt must be positive"),
    (dict(method="leapfrog"), "unknown method 'leapfrog'"),
    (dict(substeps=0), "substeps must be an integer"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Oscillator(**kwargs)
    if "tau" in kwargs or "dt" in kwargs:
        with pytest.raises(ValueError, match=match):
            CTRNN(**kwargs)


def test_nan_input_and_bad_state_shape():
    layer = Oscillator()
    with pytest.raises(ValueError, match="NaN or infinite"):
        layer(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"state 'x' has shape \(3,\), expected \(2, 2\)"):
        layer(torch.ones(2, 2), torch.ones(3))
    with pytest.raises(ValueError, match="expects a state of 2 tensor"):
        HighPass()(torch.ones(2), torch.ones(2))


def test_unstable_euler_warns_with_limit():
    layer = Oscillator(tau=1.0, dt=1.0, method="euler", gain=1.0)
    with pytest.warns(RuntimeWarning, match=r"euler step h = 1 ns is unstable.*use h <"):
        layer(torch.full((1, 1), 10.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Oscillator(tau=1.0, dt=1.0, method="euler", substeps=50, gain=1.0)(torch.full((1, 1), 10.0))
    with pytest.warns(RuntimeWarning, match="CTRNN: euler"):
        CTRNN(tau=0.2, dt=1.0, method="euler")(torch.ones(1, 1))


def test_layers_follow_device_and_dtype():
    layer = Oscillator(tau=torch.tensor([3.0, 4.0])).double()
    x, _ = layer(torch.zeros(1, 2, dtype=f64))
    assert x.dtype == f64
