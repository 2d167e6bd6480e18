"""The layer-by-layer path's whole-sequence C loops against its Python loop, and their checks."""

import copy

import pytest
import torch

from snnspin.config import TrainConfig
from snnspin.models import build_model
from snnspin.native import sequences

pytestmark = pytest.mark.skipif(not sequences.ready(torch.zeros(1)), reason="no native kernels or no BLAS GEMM")

CASES = [
    dict(model="spintronic"),
    dict(model="spintronic", mismatch=0.1, x_min=0.01, weight_bits=6, substeps=2, delta_t=2.0),
    dict(model="spintronic", thermal_power=0.002, learn_tau=True),
    dict(model="ctrnn"),
    dict(model="ctrnn", mismatch=0.1, weight_bits=6),
    dict(model="ctrnn", learn_tau=True, substeps=2, delta_t=2.0),
]


def _run(net, data, enabled, monkeypatch, calls):
    monkeypatch.setattr(sequences, "ENABLED", enabled)
    run = sequences.run
    monkeypatch.setattr(sequences, "run", lambda kernel, **a: (calls.append(kernel), run(kernel, **a))[1])
    torch.manual_seed(3)  # the thermal draws
    out = net(data)
    (out * torch.linspace(-1, 1, out.shape[1], dtype=out.dtype)).sum().backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    monkeypatch.undo()
    return out.detach(), grads


@pytest.mark.parametrize("changes", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_c_loops_match_python_loops_float64(changes, monkeypatch):
    net = build_model(TrainConfig(width=64, layers=3, engine="fused", **changes), 1).double()
    data = torch.rand(12, 5, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 16
    in_c, in_python = [], []
    out_c, grads_c = _run(copy.deepcopy(net), data, True, monkeypatch, in_c)
    out_py, grads_py = _run(copy.deepcopy(net), data, False, monkeypatch, in_python)
    prefix = "osc" if changes["model"] == "spintronic" else "ctrnn"
    assert in_c == [f"{prefix}_forward_seq"] * 3 + [f"{prefix}_backward_seq"] * 3 and in_python == []
    assert torch.allclose(out_c, out_py, rtol=1e-12, atol=0)
    assert grads_c.keys() == grads_py.keys() and len(grads_c) >= 9
    for name in grads_c:
        scale = float(grads_py[name].abs().max()) + 1e-300
        assert float((grads_c[name] - grads_py[name]).abs().max()) <= 1e-12 * scale, name


def _forward_arguments(steps=4, batch=3, n=5, dtype=torch.float64):
    like = dict(dtype=dtype)
    constants = {name: torch.full((1, n), value, **like) for name, value in
                 dict(gain=0.5, gamma=0.5, bias_fixed=1.0, sigma=1.0, q=0.0, e_hp=0.99, k_hp=0.99, x_min=0.0,
                      kick=0.0).items()}
    return dict(w_int=torch.zeros(n, n, **like), syn=torch.zeros(steps, batch, n, **like),
                x0=torch.full((batch, n), 0.2, **like), ys=torch.zeros(steps + 1, batch, n, **like),
                xs=torch.empty(steps, batch, n, **like), noise=None, h=1.0, **constants)


def test_forward_loop_closed_form():
    """No weights, syn = 0: I = b_fixed = 1, so each oscillator grows from x = 0.2 by the logistic law
    dx/dt = a x - b x², a = I - γ = 0.5, b = I = 1: x(t) = a / (b + (a/x0 - b) e^{-a t}); y follows x."""
    arguments = _forward_arguments()
    sequences.run("osc_forward_seq", **arguments)
    a, b, x0, t = 0.5, 1.0, 0.2, torch.arange(1, 5, dtype=torch.float64)
    expected = a / (b + (a / x0 - b) * torch.exp(-a * t))
    assert torch.allclose(arguments["xs"][:, 1, 3], expected, rtol=1e-14)
    filtered = torch.zeros(())  # y(k+1) = E y(k) + K (x(k+1) - x(k)), E = K = 0.99
    for k, x_prev in enumerate([x0, *expected[:-1].tolist()]):
        filtered = 0.99 * filtered + 0.99 * (expected[k] - x_prev)
        assert torch.allclose(arguments["ys"][k + 1, 2, 0], filtered, rtol=1e-13)


def test_run_refuses_bad_arguments():
    arguments = _forward_arguments()
    with pytest.raises(ValueError, match="x0 must be a contiguous CPU torch.float64 tensor of shape"):
        sequences.run("osc_forward_seq", **{**arguments, "x0": arguments["x0"].t().contiguous()})
    with pytest.raises(ValueError, match="w_int must be a contiguous CPU torch.float64 tensor"):
        sequences.run("osc_forward_seq", **{**arguments, "w_int": arguments["w_int"].float()})
    with pytest.raises(ValueError, match="xs must be a contiguous"):
        sequences.run("osc_forward_seq", **{**arguments, "xs": torch.empty(3, 4, 5, dtype=torch.float64)[:, :, 1:]
                                            .transpose(0, 1)})
    with pytest.raises(TypeError, match="differ"):
        sequences.run("osc_forward_seq", **{k: v for k, v in arguments.items() if k != "kick"})


def test_disabled_loops_are_not_ready(monkeypatch):
    monkeypatch.setattr(sequences, "ENABLED", False)
    assert not sequences.ready(torch.zeros(1))


def test_only_cpu_float32_and_float64_are_ready():
    assert sequences.ready(torch.zeros(1)) and sequences.ready(torch.zeros(1, dtype=torch.float64))
    assert not sequences.ready(torch.zeros(1, dtype=torch.float16))
