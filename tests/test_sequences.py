"""The fused paths' whole-sequence C loops (diagonal and layer by layer) against their Python loops,
and their checks."""

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
    dict(model="spintronic", thermal_power=0.002, x_min=0.3),  # the floor holds some neurons: d = c = 0 there
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


@pytest.mark.parametrize("width", [16, 64])  # 16: along the diagonals (snnspin.fused); 64: layer by layer
@pytest.mark.parametrize("changes", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_c_loops_match_python_loops_float64(changes, width, monkeypatch):
    net = build_model(TrainConfig(width=width, layers=3, engine="fused", **changes), 1).double()
    data = torch.rand(12, 5, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 16
    in_c, in_python = [], []
    out_c, grads_c = _run(copy.deepcopy(net), data, True, monkeypatch, in_c)
    out_py, grads_py = _run(copy.deepcopy(net), data, False, monkeypatch, in_python)
    prefix = "osc" if changes["model"] == "spintronic" else "ctrnn"
    # layer by layer, the oscillator's C loops keep each step's derivatives unless τ is trained
    # (its gradient needs the synaptic sums): the Python loop they are held to recomputes the step
    kept = prefix == "osc" and not changes.get("learn_tau")
    loops = [f"{prefix}_forward{'_keep' if kept else ''}_seq"] * 3 + \
        [f"{prefix}_backward{'_kept' if kept else ''}_seq"] * 3 if width == 64 else \
        [f"{prefix}_forward_diag", f"{prefix}_backward_diag"]
    assert in_c == loops and in_python == []
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


def test_ensemble_along_the_diagonals_matches_python_loop(monkeypatch):
    """Three networks of one shape in one call (layers network by network) take the C loop too."""
    from snnspin.fused import fused_oscillator_sequences

    nets = [build_model(TrainConfig(width=8, layers=2, engine="fused", mismatch=0.05, chip_seed=s), s).double()
            for s in range(3)]
    data = torch.rand(10, 3, 4, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 16
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(sequences, "ENABLED", enabled)
        copies = [copy.deepcopy(n) for n in nets]
        outputs = fused_oscillator_sequences(copies, data)  # per network: the last layer's (y, x), every x
        sum(y.sum() + (x * x).sum() for y, x, _ in outputs).backward()
        y = torch.stack([y for y, _, _ in outputs]).detach()
        results.append((y, [p.grad for n in copies for p in n.parameters() if p.grad is not None]))
    (y_c, g_c), (y_py, g_py) = results
    assert torch.allclose(y_c, y_py, rtol=1e-12, atol=1e-15)
    assert len(g_c) == len(g_py) > 0
    for a, b in zip(g_c, g_py):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max()))


def test_grid_loops_refuse_an_invalid_grid():
    n, batch, layers, steps = 4, 2, 3, 5
    grid = dict(dtype=torch.float64)
    arguments = dict(w=torch.zeros(layers, n, 2 * n, **grid), bias=torch.zeros(layers, n, **grid),
                     z=torch.zeros(steps + 2, layers, batch, 2 * n, **grid),
                     syn=torch.zeros(steps + 2, layers, batch, n, **grid), x0=torch.zeros(layers, batch, n, **grid),
                     xs=torch.zeros(steps + 2, layers, batch, n, **grid), ys=torch.zeros(steps + 2, layers, batch, n,
                                                                                         **grid),
                     step_gain=torch.zeros(layers, n, **grid), decay=torch.zeros(layers, n, **grid))
    arguments["syn"] = torch.zeros(layers, batch, n, **grid)
    with pytest.raises(ValueError, match="not a valid grid"):  # 7 diagonals are 5 steps of depth 3, not of depth 2
        sequences.run("ctrnn_forward_diag", depth=2, steps=steps, **arguments)
    with pytest.raises(ValueError, match="bias must be a contiguous"):
        sequences.run("ctrnn_forward_diag", depth=3, steps=steps, **{**arguments, "bias": arguments["bias"][:, None]})


def test_disabled_loops_are_not_ready(monkeypatch):
    monkeypatch.setattr(sequences, "ENABLED", False)
    assert not sequences.ready(torch.zeros(1))


def test_only_cpu_float32_and_float64_are_ready():
    assert sequences.ready(torch.zeros(1)) and sequences.ready(torch.zeros(1, dtype=torch.float64))
    assert not sequences.ready(torch.zeros(1, dtype=torch.float16))


def test_keep_large_buffers_can_be_declined(monkeypatch):
    monkeypatch.delitem(sequences._state, "kept", raising=False)
    monkeypatch.setenv("SNNSPIN_KEEP_BUFFERS", "0")
    assert sequences.keep_large_buffers() is False
    assert sequences._state["kept"] is False  # decided once per process


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_only_a_gemm_that_computes_the_product_is_used(dtype):
    """torch's GEMM passes the check; a function of the same signature that computes nothing fails it
    (as a BLAS with another integer convention would), and the C loops then stay off for that type."""
    assert sequences._gemm_agrees(sequences._gemm_addresses()[dtype], dtype)
    import ctypes
    scalar = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
    integer, pointer = ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p
    idle = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, integer, integer, integer, ctypes.POINTER(scalar),
                            pointer, integer, pointer, integer, ctypes.POINTER(scalar), pointer, integer)(
        lambda *arguments: None)
    assert not sequences._gemm_agrees(ctypes.cast(idle, ctypes.c_void_p).value, dtype)


def test_pointer_refuses_a_non_tensor_with_a_value_error():
    arguments = _forward_arguments()
    with pytest.raises(ValueError, match="x0 must be a contiguous CPU"):
        sequences.run("osc_forward_seq", **{**arguments, "x0": [[0.5] * 4]})


def test_derivatives_are_kept_only_where_autograd_will_need_them(monkeypatch):
    """Layer by layer, the oscillator's forward keeps each step's derivatives (osc_forward_keep_seq)
    only when autograd's backward follows: not under no_grad, nor with nothing to differentiate,
    nor when τ (whose gradient needs the synaptic sums) is trained; the outputs are the same
    either way."""
    data = torch.rand(10, 4, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 16
    calls = []
    run = sequences.run
    monkeypatch.setattr(sequences, "run", lambda kernel, **a: (calls.append(kernel), run(kernel, **a))[1])
    net = build_model(TrainConfig(width=48, layers=2, engine="fused"), 2).double()
    with torch.no_grad():
        plain = net(data)
    assert calls == ["osc_forward_seq"] * 2
    calls.clear()
    kept = net(data)
    assert calls == ["osc_forward_keep_seq"] * 2
    assert torch.allclose(plain, kept.detach(), rtol=1e-14, atol=0)  # two inlined copies of one step
    kept.sum().backward()
    assert calls[2:] == ["osc_backward_kept_seq"] * 2
    calls.clear()
    for p in net.parameters():
        p.requires_grad_(False)
    net(data)  # grad mode on, but nothing to differentiate
    assert calls == ["osc_forward_seq"] * 2
    calls.clear()
    build_model(TrainConfig(width=48, layers=2, engine="fused", learn_tau=True), 2).double()(data).sum().backward()
    assert calls == ["osc_forward_seq"] * 2 + ["osc_backward_seq"] * 2
