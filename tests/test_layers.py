"""snnTorch-style layers: parity with the functional core, state handling, resets, errors."""

import copy
import gc
import warnings
import weakref

import pytest
import snntorch as snn
import torch
from torch import nn

from snnspin.functional import ctrnn_step, cutoff_rate, highpass_step, oscillator_step
from snnspin.nn import ALIF, CTRNN, HighPass, Oscillator, detach_hidden, reset

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


def test_no_class_level_registry_keeps_layers_alive():
    for cls in (Oscillator, HighPass, CTRNN):
        layer = cls(init_hidden=True)
        layer(torch.ones(2, 3))
        ref = weakref.ref(layer)
        del layer
        gc.collect()
        assert ref() is None, cls.__name__


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
    assert net[1].y.numel() == 0  # x0=None: the next sample is the starting level again


def test_detach_hidden_cuts_every_graph_in_a_network():
    net = nn.Sequential(nn.Linear(1, 3), Oscillator(init_hidden=True, learn_tau=True), HighPass(init_hidden=True),
                        CTRNN(init_hidden=True, learn_gain=True), snn.Leaky(beta=0.9, init_hidden=True))
    net(torch.ones(2, 1))
    states = lambda: [net[1].x, net[2].y, net[2].x_prev, net[3].x, net[4].mem]  # noqa: E731
    assert all(s.requires_grad for s in states())
    values = [s.detach().clone() for s in states()]
    detach_hidden(net)
    assert not any(s.requires_grad for s in states())
    assert all(torch.equal(s, v) for s, v in zip(states(), values))


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
    layer = Oscillator(tau=torch.tensor([3.0, 4.0]), x0=0.25).double()
    x, _ = layer(torch.zeros(1, 2, dtype=f64))
    assert x.dtype == f64 and layer.tau.dtype == f64 and layer.x0.dtype == f64
    for cls in (Oscillator, HighPass, CTRNN):  # the meta device: shapes and devices without any data
        moved = cls(init_hidden=True, check=False).to("meta")  # (the finiteness check reads values)
        out = moved(torch.zeros(2, 3, device="meta"))
        assert out.device.type == "meta" and all(s.device.type == "meta" for s in moved._get_state())
        assert all(b.device.type == "meta" for b in moved.buffers())


LAYERS = {
    "Oscillator": lambda: Oscillator(tau=3.0, gain=0.7),
    "Oscillator x0": lambda: Oscillator(tau=torch.tensor([2.0, 3.0, 4.0]), x0=0.2),
    "HighPass": lambda: HighPass(f_cut_mhz=30.0),
    "HighPass x0": lambda: HighPass(f_cut_mhz=30.0, x0=0.1),
    "CTRNN": lambda: CTRNN(tau=2.0, gain=0.6),
}


def _drive(layer_or_net, steps=4, width=3):
    inputs = torch.linspace(0.5, 0.8, steps * 2 * width).view(steps, 2, width) * 3
    return torch.stack([layer_or_net(u) for u in inputs])


@pytest.mark.parametrize("name", LAYERS)
def test_after_reset_every_layer_behaves_like_a_fresh_copy(name):
    fresh, used = LAYERS[name](), LAYERS[name]()
    fresh.init_hidden = used.init_hidden = True
    _drive(used)
    for reset_call in (lambda m: m.reset_mem(), lambda m: m.reset_hidden(), reset):
        reset_call(used)
        assert torch.equal(_drive(used), _drive(copy.deepcopy(fresh)))
        _drive(used)


@pytest.mark.parametrize("name", LAYERS)
def test_after_reset_a_sequential_behaves_like_a_fresh_copy(name):
    torch.manual_seed(0)
    layer = LAYERS[name]()
    layer.init_hidden = True
    net = nn.Sequential(nn.Linear(3, 3), layer, nn.Linear(3, 3), snn.Leaky(beta=0.8, init_hidden=True))
    fresh = copy.deepcopy(net)
    _drive(net)
    reset(net)
    assert torch.equal(_drive(net), _drive(fresh))


def test_highpass_reset_with_default_x0_restarts_from_the_next_sample():
    """The measured bug: fed 0.5, 0.6, 0.7 a fresh filter gives [0, 0.0997, 0.1987], and after a
    reset it must give the same (it gave [0.3003, 0.3981, 0.4953])."""
    hp = HighPass(init_hidden=True)
    samples = [torch.tensor([0.5]), torch.tensor([0.6]), torch.tensor([0.7])]
    first = torch.cat([hp(s) for s in samples])
    assert first.tolist() == pytest.approx([0.0, 0.0997, 0.1987], abs=1e-4)
    for reset_call in (hp.reset_mem, hp.init_highpass, lambda: reset(hp)):
        reset_call()
        assert torch.equal(torch.cat([hp(s) for s in samples]), first)


@pytest.mark.parametrize("name", LAYERS)
def test_explicit_state_is_pure_and_deepcopy_works_after_any_forward(name):
    layer = LAYERS[name]()
    u = torch.ones(2, 3, requires_grad=True)
    out, state = layer(u)  # no state given: the layer keeps it, as in snnTorch
    kept = [s.clone() for s in layer._get_state()]
    out2, state2 = layer(u * 2, state)
    assert all(torch.equal(s, k) for s, k in zip(layer._get_state(), kept))  # nothing written into the layer
    out3, _ = layer(u * 2, state)
    assert torch.equal(out2, out3)
    copy.deepcopy(layer)
    layer.init_hidden = True
    layer(u)  # the state inside the layer now holds a graph
    assert copy.deepcopy(layer)._get_state()[0].requires_grad is False
    assert layer._get_state()[0].requires_grad


def test_network_deepcopies_after_a_reference_forward():
    from snnspin.config import TrainConfig
    from snnspin.models import build_model

    net = build_model(TrainConfig(engine="reference", width=4, learn_tau=True), 0)
    net(torch.rand(3, 2, 1)).sum().backward()
    clone = copy.deepcopy(net)
    assert torch.equal(clone(torch.ones(3, 2, 1)), net(torch.ones(3, 2, 1)))


def test_mem_is_an_alias_of_state_and_highpass_state_is_a_namedtuple():
    layer = Oscillator()
    _, state = layer(torch.ones(2, 3))
    assert torch.equal(layer(torch.ones(2, 3), mem=state)[0], layer(torch.ones(2, 3), state)[0])
    with pytest.raises(TypeError, match="not both"):
        layer(torch.ones(2, 3), state, mem=state)
    y, hp_state = HighPass(x0=0.0)(torch.ones(2))
    assert hp_state._fields == ("y", "x_prev") and torch.equal(hp_state.y, y)
    assert torch.equal(hp_state.x_prev, torch.ones(2))


def test_repr_shows_tau_dt_and_gain_and_version_exists():
    import snnspin

    assert repr(Oscillator(tau=2.5, dt=0.5, gain=0.3)) == (
        "Oscillator(tau=2.5 ns, dt=0.5 ns, gain=0.3, method='exact', substeps=1, init_hidden=False)")
    assert "tau=[4] mean 2.5 ns" in repr(CTRNN(tau=torch.tensor([1.0, 2.0, 3.0, 4.0])))
    assert "f_cut=1 MHz" in repr(HighPass())
    assert isinstance(snnspin.__version__, str) and snnspin.__version__.count(".") >= 2


def test_integer_input_is_promoted_not_killed():
    """Measured: Oscillator(tau=2.0)(torch.ones(1, 3, dtype=torch.long)) gave 1e-38 (every neuron dead)."""
    for dtype in (torch.long, torch.int32, torch.bool):
        x, _ = Oscillator(tau=2.0)(torch.ones(1, 3, dtype=dtype))
        want, _ = Oscillator(tau=2.0)(torch.ones(1, 3))
        assert x.dtype == torch.get_default_dtype() and torch.equal(x, want)


@pytest.mark.parametrize("kwargs, match", [
    (dict(gain=float("nan")), "gain contains NaN"),
    (dict(gain=torch.ones(2, 2)), "gain must be a number or a 1-D tensor"),
    (dict(x0=-1.0), r"x0 must be in \(0, 1\]"),
    (dict(x0=0.0), r"x0 must be in \(0, 1\]"),
    (dict(x0=1.5), r"x0 must be in \(0, 1\]"),
    (dict(tau=torch.ones(2, 3)), "tau must be a number or a 1-D tensor"),
    (dict(q=-0.1), "q .* must be >= 0"),
    (dict(sigma=0.0), "sigma .* must be > 0"),
    (dict(bias_fixed=float("inf")), "bias_fixed contains NaN"),
])
def test_constructor_checks(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Oscillator(**kwargs)


def test_assigned_constants_are_checked_too():
    layer = Oscillator()
    layer.x0 = 0.4  # a number is accepted and stored as a buffer
    assert isinstance(layer.x0, torch.Tensor) and float(layer.x0) == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"x0 must be in \(0, 1\]"):
        layer.x0 = -1.0
    dead = Oscillator(tau=14.12)
    with pytest.raises(ValueError, match="rest point is x = 0"):  # the constructor's check, after assignment
        dead.bias_fixed = 0.01
    assert dead.bias_fixed is None  # refused: kept what it had
    wide = Oscillator(tau=3.0).double()
    wide.q = [0.1, 0.2]  # an assigned constant takes the layer's dtype: no float32 rounding in float64 runs
    assert wide.q.dtype == f64 and wide.q.tolist() == [0.1, 0.2]


def test_per_neuron_width_mismatch_names_the_parameter_and_both_sizes():
    with pytest.raises(ValueError, match="tau has 3 values .* but the input has 5 features"):
        Oscillator(tau=torch.full((3,), 2.0))(torch.ones(4, 5))
    with pytest.raises(ValueError, match="f_cut_mhz has 2 values"):
        HighPass(f_cut_mhz=torch.ones(2))(torch.ones(4, 5))


@pytest.mark.parametrize("make, name, value, message", [
    (lambda: Oscillator(bias_fixed=5.0), "tau", -1.0, "tau must be positive"),
    (lambda: Oscillator(), "dt", 0, "dt must be positive"),
    (lambda: Oscillator(method="euler"), "substeps", 0, "substeps must be an integer >= 1"),
    (lambda: CTRNN(), "tau", -1.0, "tau must be positive"),
    (lambda: CTRNN(), "dt", -1.0, "dt must be positive"),
    (lambda: HighPass(), "f_cut_mhz", -1.0, "f_cut_mhz must be positive"),
    (lambda: HighPass(x0=0.0), "dt", -1.0, "dt must be positive"),
    (lambda: ALIF(), "rho", 5.0, r"rho must be a finite number \[0, 1\]"),
    (lambda: ALIF(), "threshold", -1.0, "threshold must be a finite number > 0"),
    (lambda: ALIF(), "adapt", float("nan"), "adapt must be a finite number >= 0"),
])
def test_a_constant_assigned_after_construction_is_checked_and_refused_whole(make, name, value, message):
    """Assigning a constant goes through the constructor's checks; a refused value leaves the
    layer as it was (an assigned τ = -1 once gave a power x = 1.18)."""
    layer = make()
    before = getattr(layer, name)
    with pytest.raises(ValueError, match=message):
        setattr(layer, name, value)
    after = getattr(layer, name)
    assert torch.equal(after, before) if isinstance(before, torch.Tensor) else after == before


@pytest.mark.parametrize("make, message", [
    (lambda: ALIF(rho=float("nan")), "rho must be a finite number"),
    (lambda: ALIF(threshold=float("inf")), "threshold must be a finite number"),
    (lambda: ALIF(slope=float("nan")), "slope must be a finite number"),
])
def test_alif_refuses_constants_that_are_not_finite(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_an_explicit_state_the_neuron_cannot_be_in_is_refused():
    with pytest.raises(ValueError, match=r"state 'x' is a power in \[0, 1\], got values from 5"):
        Oscillator()(torch.zeros(2, 3), torch.full((2, 3), 5.0))
    with pytest.raises(ValueError, match="state 'x' contains NaN"):
        Oscillator()(torch.zeros(2, 3), torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="state 'mem' contains NaN"):
        ALIF()(torch.zeros(2, 3), (torch.full((2, 3), float("nan")), torch.zeros(2, 3), torch.zeros(2, 3)))
    x, _ = Oscillator()(torch.zeros(2, 3), torch.full((2, 3), 0.3))  # a power in [0, 1] is fine
    assert bool(((x > 0) & (x < 1)).all())
