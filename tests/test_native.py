"""The native (C) pointwise kernels against the torch ones, kernel by kernel and end to end."""

import shutil
import warnings

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from snnspin import native, pointwise
from snnspin.config import TrainConfig
from snnspin.models import build_model

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler: the native kernels cannot be built")

L, B, N, P = 3, 5, 4, 6
TOL = {torch.float64: 1e-13, torch.float32: 2e-6}


def _random(dtype, seed, *shape, scale=1.0, positive=False):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(*shape, generator=g, dtype=torch.float64) if positive else torch.randn(*shape, generator=g,
                                                                                          dtype=torch.float64)
    return (t * scale).to(dtype)


def _osc_inputs(dtype):
    syn = _random(dtype, 1, L, B, N, scale=3.0)
    gamma = 0.2 + _random(dtype, 2, L, N, positive=True)
    gain = torch.tensor([0.5, 1.0, 2.0], dtype=dtype)
    bias_fixed = 2.0 * gamma
    syn[1, 2, 3] = -gamma[1, 3] / gain[1]  # drive = γ: a ≈ 0, the series branches
    x = _random(dtype, 3, L, B, N, positive=True)
    x[2, 1] = 1.0  # saturated oscillators, the cancellation-prone case
    y = _random(dtype, 4, L, B, N, scale=0.1)
    return syn, x, y, gain, gamma, bias_fixed


def _run(kernels, name, args):
    args = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    getattr(kernels, name)(*args)
    return [a for a in args if isinstance(a, torch.Tensor)]


def _assert_same(native_out, torch_out, dtype):
    for got, want in zip(native_out, torch_out):
        scale = float(want.abs().max()) + 1e-30
        assert float((got - want).abs().max()) <= TOL[dtype] * scale


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("active", [(0, 2), (1, 2), (0, 0)])
@pytest.mark.parametrize("batch", [B, 700])  # 3 × 700 × 4 ≥ PARALLEL_MIN: rows split over threads (OpenMP)
def test_oscillator_kernels_match_torch(dtype, active, batch):
    syn, x, y, gain, gamma, bias_fixed = (t.repeat(1, batch // B, 1) if t.dim() == 3 else t for t in _osc_inputs(dtype))
    n_b = syn.shape[1]
    z_next = torch.zeros(L, n_b, P + N, dtype=dtype)
    forward = [*active, syn, x, y, gain, gamma, bias_fixed, 1.0, 0.3, 0.7, 0.99, 0.995,
               torch.zeros(L, n_b, N, dtype=dtype), torch.zeros(L, n_b, N, dtype=dtype), z_next]
    got, want = _run(pointwise.NATIVE, "osc_forward", forward), _run(pointwise.TORCH, "osc_forward", forward)
    _assert_same(got, want, dtype)
    x_new, y_new, z = want[-3:]
    assert torch.equal(z[:, :, P:], y_new) and torch.equal(z[1:, :, :N], y_new[:-1]) and not z[0, :, :N].any()
    lo, hi = active
    assert torch.equal(got[-3][:lo], x[:lo]) and torch.equal(got[-3][hi + 1 :], x[hi + 1 :])
    assert (got[-3] >= 0).all() and (got[-3] <= 1).all()

    back = _random(dtype, 5, L, n_b, P + N)
    gx, gy = _random(dtype, 6, L, n_b, N), _random(dtype, 7, L, n_b, N)
    accumulators = [_random(dtype, 8 + k, L, n_b, N) for k in range(3)]
    backward = [*active, back, gx, gy, x, syn, gain, gamma, bias_fixed, 1.0, 0.3, 0.7, 0.99, 0.995,
                torch.zeros(L, n_b, N, dtype=dtype), *accumulators]
    _assert_same(_run(pointwise.NATIVE, "osc_backward", backward), _run(pointwise.TORCH, "osc_backward", backward),
                 dtype)
    backward[2] = None  # the first diagonal of the backward pass has nothing coming back
    _assert_same(_run(pointwise.NATIVE, "osc_backward", backward), _run(pointwise.TORCH, "osc_backward", backward),
                 dtype)


@settings(max_examples=1000, deadline=None)
@given(
    x=st.floats(0.0, 1.0),
    drive=st.floats(-1e4, 1e4),
    gamma=st.floats(1e-3, 10.0),
    h=st.floats(1e-6, 100.0),
    q=st.floats(0.0, 2.0),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_native_step_stays_in_unit_interval_and_matches_torch(x, drive, gamma, h, q, dtype):
    """The native exact step, like the torch one, maps [0, 1] into [0, 1] for any drive and step.

    States are 0 or normal floats: the step clamps at the smallest normal, and the native
    kernels read subnormals as 0 (denormals-are-zero), as documented in kernels.c.
    """
    assume(x == 0.0 or x >= torch.finfo(dtype).tiny)
    shape = (1, 1, 1)
    syn = torch.full(shape, drive, dtype=dtype)  # gain 1, b_fixed 0: the drive is syn
    args = [0, 0, syn, torch.full(shape, x, dtype=dtype), torch.zeros(shape, dtype=dtype),
            torch.ones(1, dtype=dtype), torch.full((1, 1), gamma, dtype=dtype), torch.zeros((1, 1), dtype=dtype),
            1.0, q, h, 1.0, 1.0, torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype), None]
    got = _run(pointwise.NATIVE, "osc_forward", args)[-2]
    want = _run(pointwise.TORCH, "osc_forward", args)[-2]
    assert torch.isfinite(got).all() and 0.0 <= float(got) <= 1.0
    assert abs(float(got) - float(want)) <= 8 * torch.finfo(dtype).eps * max(float(want), 1e-30) + 1e-37


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ctrnn_kernels_match_torch(dtype):
    syn, x = _random(dtype, 1, L, B, N, scale=2.0), _random(dtype, 2, L, B, N)
    step_gain, decay = _random(dtype, 3, L, N, positive=True), _random(dtype, 4, L, N, positive=True)
    forward = [1, 2, syn, x, step_gain, decay, torch.zeros(L, B, N, dtype=dtype), torch.zeros(L, B, N, dtype=dtype),
               torch.zeros(L, B, P + N, dtype=dtype)]
    got, want = _run(pointwise.NATIVE, "ctrnn_forward", forward), _run(pointwise.TORCH, "ctrnn_forward", forward)
    _assert_same(got, want, dtype)
    assert torch.equal(got[-3][0], x[0])  # layer 0 inactive: kept
    backward = [0, 1, _random(dtype, 5, L, B, P + N), _random(dtype, 6, L, B, N), _random(dtype, 7, L, B, N),
                torch.tanh(x), step_gain, decay, torch.zeros(L, B, N, dtype=dtype), torch.zeros(L, B, N, dtype=dtype)]
    got, want = _run(pointwise.NATIVE, "ctrnn_backward", backward), _run(pointwise.TORCH, "ctrnn_backward", backward)
    _assert_same(got, want, dtype)
    assert not got[-2][2].any()  # layer 2 inactive: no gradient to its state


def test_subnormal_gradients_are_flushed_to_zero():
    dtype = torch.float32
    tiny = torch.finfo(dtype).tiny
    y = torch.zeros(L, B, N, dtype=dtype)
    step_gain, decay = torch.full((L, N), 0.5, dtype=dtype), torch.full((L, N), 0.5, dtype=dtype)
    gx = torch.full((L, B, N), 1.5 * tiny, dtype=dtype)  # × decay 0.5: subnormal
    gy = torch.zeros(L, B, N, dtype=dtype)
    outputs = torch.empty(L, B, N, dtype=dtype), torch.empty(L, B, N, dtype=dtype)
    pointwise.NATIVE.ctrnn_backward(0, 2, None, gx, gy, y, step_gain, decay, *outputs)
    assert not gx.any() and not outputs[1].any()  # 0.75 tiny → 0 (torch keeps the subnormal)
    assert torch.equal(outputs[0], torch.full_like(y, 1.5 * tiny))


@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_training_step_same_with_both_backends(model, dtype):
    config = TrainConfig(model=model, layers=2, width=8, substeps=2, delta_t=2.0, learn_tau=True, tau=3.0)
    data = (torch.rand(12, 5, 1, generator=torch.Generator().manual_seed(0)) * 16).to(dtype)
    targets = torch.arange(5)
    results = []
    for kernels in (pointwise.NATIVE, pointwise.TORCH):
        torch.set_default_dtype(dtype)
        try:
            net = build_model(config, 3)
            with pointwise.using(kernels):
                loss = F.nll_loss(net(data), targets)
                loss.backward()
        finally:
            torch.set_default_dtype(torch.float32)
        results.append((float(loss.detach()), {n: p.grad.clone() for n, p in net.named_parameters()}))
    (loss_n, grads_n), (loss_t, grads_t) = results
    assert abs(loss_n - loss_t) <= TOL[dtype] * abs(loss_t) * 10
    for name, want in grads_t.items():
        assert float((grads_n[name] - want).abs().max()) <= TOL[dtype] * 10 * (float(want.abs().max()) + 1e-30), name


def test_build_is_cached_and_missing_compiler_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNSPIN_CACHE", str(tmp_path))
    path = native.build()
    assert path.parent == tmp_path and path.exists()
    assert native.build() == path  # second call: the cached library
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("SNNSPIN_CACHE", str(tmp_path / "empty"))
    with pytest.warns(RuntimeWarning, match="native kernels unavailable"):
        assert not native.available()
    assert pointwise.for_tensor(torch.zeros(1)) is pointwise.TORCH
    with pytest.raises(RuntimeError, match="not available"):
        with pointwise.using(pointwise.NATIVE):
            pass


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("SNNSPIN_NATIVE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not native.available()
