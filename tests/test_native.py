"""The native (C) pointwise kernels against the torch ones, kernel by kernel and end to end."""

import threading
import warnings

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from snnspin import native, pointwise
from snnspin.config import TrainConfig
from snnspin.models import build_model

pytestmark = pytest.mark.skipif(not native.available(), reason="the native kernels are not available here")

L, B, N, P = 3, 5, 4, 6
TOL = {torch.float64: 1e-13, torch.float32: 2e-6}


def _random(dtype, seed, *shape, scale=1.0, positive=False):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(*shape, generator=g, dtype=torch.float64) if positive else torch.randn(*shape, generator=g,
                                                                                          dtype=torch.float64)
    return (t * scale).to(dtype)


def _osc_constants(dtype):
    """Per-neuron constants [L, N], every one different, so that a swapped argument shows."""
    gamma = 0.2 + _random(dtype, 2, L, N, positive=True)
    return dict(gain=0.5 + _random(dtype, 11, L, N, positive=True), gamma=gamma,
                bias_fixed=2.0 * gamma + 0.1 * _random(dtype, 12, L, N, positive=True),
                sigma=0.7 + 0.6 * _random(dtype, 13, L, N, positive=True), q=_random(dtype, 14, L, N, positive=True),
                e_hp=0.98 + 0.02 * _random(dtype, 15, L, N, positive=True),
                k_hp=0.99 + 0.01 * _random(dtype, 16, L, N, positive=True),
                x_min=0.3 * _random(dtype, 17, L, N, positive=True),  # the floor holds some neurons
                kick=0.2 * _random(dtype, 18, L, N, positive=True), h=0.7)


def _osc_state(dtype, constants):
    syn = _random(dtype, 1, L, B, N, scale=3.0)
    # drive = γ: a ≈ 0, the series branches (a = σ (S syn + b_fixed) - γ)
    c = {k: v[1, 3] for k, v in constants.items() if k != "h"}
    syn[1, 2, 3] = (c["gamma"] / c["sigma"] - c["bias_fixed"]) / c["gain"]
    x = _random(dtype, 3, L, B, N, positive=True)
    x[2, 1] = 1.0  # saturated oscillators, the cancellation-prone case
    y = _random(dtype, 4, L, B, N, scale=0.1)
    return syn, x, y


def _run(kernels, name, lo, hi, arguments):
    arguments = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in arguments.items()}
    getattr(kernels, name)(lo, hi, **arguments)
    return arguments


def _assert_same(native_out, torch_out, dtype):
    for name, want in torch_out.items():
        if isinstance(want, torch.Tensor):
            scale = float(want.abs().max()) + 1e-30
            assert float((native_out[name] - want).abs().max()) <= TOL[dtype] * scale, name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("active", [(0, 2), (1, 2), (0, 0)])
@pytest.mark.parametrize("batch", [B, 700])  # 3 × 700 × 4 ≥ PARALLEL_MIN: rows split over threads (OpenMP)
@pytest.mark.parametrize("noisy", [False, True], ids=["quiet", "thermal"])
def test_oscillator_kernels_match_torch(dtype, active, batch, noisy):
    constants = _osc_constants(dtype)
    syn, x, y = (t.repeat(1, batch // B, 1) for t in _osc_state(dtype, constants))
    n_b = syn.shape[1]
    # the thermal kick's draws [L, 2, B, N] (large enough that some kicks reach the cap x = 1)
    constants["noise"] = _random(dtype, 19, L, 2, n_b, N, scale=3.0) if noisy else None
    forward = dict(syn=syn, x=x, y=y, x_out=torch.zeros(L, n_b, N, dtype=dtype),
                   y_out=torch.zeros(L, n_b, N, dtype=dtype), z_next=torch.zeros(L, n_b, P + N, dtype=dtype),
                   **constants)
    got, want = _run(pointwise.NATIVE, "osc_forward", *active, forward), _run(pointwise.TORCH, "osc_forward", *active,
                                                                              forward)
    _assert_same(got, want, dtype)
    x_new, y_new, z = want["x_out"], want["y_out"], want["z_next"]
    assert torch.equal(z[:, :, P:], y_new) and torch.equal(z[1:, :, :N], y_new[:-1]) and not z[0, :, :N].any()
    lo, hi = active
    assert torch.equal(got["x_out"][:lo], x[:lo]) and torch.equal(got["x_out"][hi + 1 :], x[hi + 1 :])
    assert (got["x_out"] >= 0).all() and (got["x_out"] <= 1).all()

    backward = dict(back=_random(dtype, 5, L, n_b, P + N), gx=_random(dtype, 6, L, n_b, N),
                    gy=_random(dtype, 7, L, n_b, N), x_old=x, syn=syn, dsyn_out=torch.zeros(L, n_b, N, dtype=dtype),
                    **{name: _random(dtype, 8 + k, L, n_b, N) for k, name in enumerate(("g_gain", "g_a_sum",
                                                                                       "g_b_sum"))},
                    **constants)
    _assert_same(_run(pointwise.NATIVE, "osc_backward", *active, backward),
                 _run(pointwise.TORCH, "osc_backward", *active, backward), dtype)
    backward["back"] = None  # the first diagonal of the backward pass has nothing coming back
    _assert_same(_run(pointwise.NATIVE, "osc_backward", *active, backward),
                 _run(pointwise.TORCH, "osc_backward", *active, backward), dtype)


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
    shape, one = (1, 1, 1), torch.ones((1, 1), dtype=dtype)
    # gain 1, b_fixed 0, σ 1: the drive is syn
    arguments = dict(syn=torch.full(shape, drive, dtype=dtype), x=torch.full(shape, x, dtype=dtype),
                     y=torch.zeros(shape, dtype=dtype), gain=one, gamma=gamma * one, bias_fixed=0 * one, sigma=one,
                     q=q * one, e_hp=one, k_hp=one, x_min=0 * one, kick=0 * one, noise=None, h=h,
                     x_out=torch.empty(shape, dtype=dtype),
                     y_out=torch.empty(shape, dtype=dtype), z_next=None)
    got = _run(pointwise.NATIVE, "osc_forward", 0, 0, arguments)["x_out"]
    want = _run(pointwise.TORCH, "osc_forward", 0, 0, arguments)["x_out"]
    assert torch.isfinite(got).all() and 0.0 <= float(got) <= 1.0
    assert abs(float(got) - float(want)) <= 8 * torch.finfo(dtype).eps * max(float(want), 1e-30) + 1e-37


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ctrnn_kernels_match_torch(dtype):
    syn, x = _random(dtype, 1, L, B, N, scale=2.0), _random(dtype, 2, L, B, N)
    step_gain, decay = _random(dtype, 3, L, N, positive=True), _random(dtype, 4, L, N, positive=True)
    forward = dict(syn=syn, x=x, step_gain=step_gain, decay=decay, x_out=torch.zeros(L, B, N, dtype=dtype),
                   y_out=torch.zeros(L, B, N, dtype=dtype), z_next=torch.zeros(L, B, P + N, dtype=dtype))
    got, want = _run(pointwise.NATIVE, "ctrnn_forward", 1, 2, forward), _run(pointwise.TORCH, "ctrnn_forward", 1, 2,
                                                                             forward)
    _assert_same(got, want, dtype)
    assert torch.equal(got["x_out"][0], x[0])  # layer 0 inactive: kept
    backward = dict(back=_random(dtype, 5, L, B, P + N), gx=_random(dtype, 6, L, B, N), gy=_random(dtype, 7, L, B, N),
                    y=torch.tanh(x), step_gain=step_gain, decay=decay, g_state=torch.zeros(L, B, N, dtype=dtype),
                    dsyn_out=torch.zeros(L, B, N, dtype=dtype))
    got, want = _run(pointwise.NATIVE, "ctrnn_backward", 0, 1, backward), _run(pointwise.TORCH, "ctrnn_backward", 0,
                                                                               1, backward)
    _assert_same(got, want, dtype)
    assert not got["g_state"][2].any()  # layer 2 inactive: no gradient to its state


def test_subnormal_gradients_are_flushed_to_zero():
    dtype = torch.float32
    tiny = torch.finfo(dtype).tiny
    y = torch.zeros(L, B, N, dtype=dtype)
    step_gain, decay = torch.full((L, N), 0.5, dtype=dtype), torch.full((L, N), 0.5, dtype=dtype)
    gx = torch.full((L, B, N), 1.5 * tiny, dtype=dtype)  # × decay 0.5: subnormal
    gy = torch.zeros(L, B, N, dtype=dtype)
    g_state, dsyn = torch.empty(L, B, N, dtype=dtype), torch.empty(L, B, N, dtype=dtype)
    pointwise.NATIVE.ctrnn_backward(0, 2, back=None, gx=gx, gy=gy, y=y, step_gain=step_gain, decay=decay,
                                    g_state=g_state, dsyn_out=dsyn)
    assert not gx.any() and not dsyn.any()  # 0.75 tiny → 0 (torch keeps the subnormal)
    assert torch.equal(g_state, torch.full_like(y, 1.5 * tiny))


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


def test_compiled_constants_equal_the_python_ones():
    from snnspin.functional.exponential import _DCOEFFS, _SERIES_BELOW
    from snnspin.functional.oscillator import _MIN_EXPONENT

    compiled = native.compiled_constants()
    assert compiled["MIN_EXPONENT"] == _MIN_EXPONENT and compiled["SERIES_BELOW"] == _SERIES_BELOW
    assert compiled["RATIO_SERIES_BELOW"] == native.CONSTANTS["RATIO_SERIES_BELOW"]
    assert compiled["DERIVATIVE_COEFFS"] == pytest.approx(_DCOEFFS, rel=1e-15)


def _two_networks(value):
    """Layers [L, ...] → two networks of L layers [2L, ...], the second's values other than the first's."""
    if not isinstance(value, torch.Tensor):
        return value
    return torch.cat([value, 0.5 * value + 0.25 * value.flip(-1)])


def _widened(t, n):
    """t [..., 4] repeated to n columns along the last axis, each copy rolled along the first axis."""
    copies = -(-n // t.shape[-1])
    return torch.cat([t.roll(i, dims=0) for i in range(copies)], dim=-1)[..., :n].contiguous()


# forward blocks of 8 rows up to 32 neurons, then 4; backward blocks of 2 up to 64, then 1
@pytest.mark.parametrize("width", [32, 33, 64, 65])
@pytest.mark.parametrize("batch", [13, 61])  # 3 × 61 × 32 ≥ PARALLEL_MIN: blocks split over threads (OpenMP)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("noisy", [False, True], ids=["quiet", "thermal"])
def test_oscillator_kernels_match_torch_at_every_block_size(width, batch, dtype, noisy):
    """kernels.c updates 8, 4, 2 or 1 rows together by the layer's width (FORWARD_ROWS,
    BACKWARD_ROWS), at the widths on either side of each change; 13 and 61 rows leave a short
    last block at each size."""
    constants = {k: _widened(v, width) if isinstance(v, torch.Tensor) else v for k, v in _osc_constants(dtype).items()}
    syn, x, y = (_widened(t.repeat(1, -(-batch // B), 1)[:, :batch], width)
                 for t in _osc_state(dtype, _osc_constants(dtype)))
    constants["noise"] = _random(dtype, 19, L, 2, batch, width, scale=3.0) if noisy else None
    forward = dict(syn=syn, x=x, y=y, x_out=torch.zeros(L, batch, width, dtype=dtype),
                   y_out=torch.zeros(L, batch, width, dtype=dtype), z_next=None, **constants)
    _assert_same(_run(pointwise.NATIVE, "osc_forward", 0, 2, forward), _run(pointwise.TORCH, "osc_forward", 0, 2,
                                                                             forward), dtype)
    backward = dict(back=None, gx=_random(dtype, 6, L, batch, width), gy=_random(dtype, 7, L, batch, width), x_old=x,
                    syn=syn, dsyn_out=torch.zeros(L, batch, width, dtype=dtype),
                    **{name: _random(dtype, 8 + k, L, batch, width) for k, name in enumerate(("g_gain", "g_a_sum",
                                                                                             "g_b_sum"))},
                    **constants)
    _assert_same(_run(pointwise.NATIVE, "osc_backward", 0, 2, backward),
                 _run(pointwise.TORCH, "osc_backward", 0, 2, backward), dtype)


@pytest.mark.parametrize("active", [(0, 2), (1, 2), (0, 0), (2, 2)])
@pytest.mark.parametrize("noisy", [False, True], ids=["quiet", "thermal"])
def test_kernels_of_two_networks_match_torch(active, noisy):
    """2 networks of 3 layers in one call (depth = 3): 13 rows per layer, one block of 8 and 5 rows
    alone; the first network's last layer feeds nobody (has_up), the noise offsets per block."""
    dtype, batch = torch.float64, 13
    constants = {k: _two_networks(v) for k, v in _osc_constants(dtype).items()}
    syn, x, y = (_two_networks(t.repeat(1, 3, 1)[:, :batch]) for t in _osc_state(dtype, _osc_constants(dtype)))
    layers = syn.shape[0]
    constants["noise"] = _random(dtype, 19, layers, 2, batch, N, scale=3.0) if noisy else None
    forward = dict(syn=syn, x=x, y=y, x_out=torch.zeros(layers, batch, N, dtype=dtype),
                   y_out=torch.zeros(layers, batch, N, dtype=dtype),
                   z_next=torch.full((layers, batch, P + N), 7.0, dtype=dtype), **constants)
    run = lambda kernels, name, arguments: getattr(kernels, name)(*active, True, L, **arguments)  # noqa: E731
    got = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in forward.items()}
    want = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in forward.items()}
    run(pointwise.NATIVE, "osc_forward", got)
    run(pointwise.TORCH, "osc_forward", want)
    _assert_same(got, want, dtype)
    z = want["z_next"]
    assert torch.equal(z[L, :, :N], torch.full((batch, N), 7.0, dtype=dtype))  # network 2's layer 0: not network 1's
    assert torch.equal(z[L + 1, :, :N], want["y_out"][L])
    backward = dict(back=_random(dtype, 5, layers, batch, P + N), gx=_random(dtype, 6, layers, batch, N),
                    gy=_random(dtype, 7, layers, batch, N), x_old=x, syn=syn,
                    dsyn_out=torch.zeros(layers, batch, N, dtype=dtype),
                    **{name: _random(dtype, 8 + k, layers, batch, N) for k, name in enumerate(("g_gain", "g_a_sum",
                                                                                               "g_b_sum"))},
                    **constants)
    got = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in backward.items()}
    want = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in backward.items()}
    run(pointwise.NATIVE, "osc_backward", got)
    run(pointwise.TORCH, "osc_backward", want)
    _assert_same(got, want, dtype)
    for name in ("ctrnn_forward", "ctrnn_backward"):
        arguments = (dict(syn=syn, x=x, step_gain=constants["gain"], decay=constants["e_hp"], x_out=torch.zeros_like(x),
                          y_out=torch.zeros_like(x), z_next=torch.zeros(layers, batch, P + N, dtype=dtype))
                     if name == "ctrnn_forward" else
                     dict(back=backward["back"], gx=backward["gx"], gy=backward["gy"], y=torch.tanh(x),
                          step_gain=constants["gain"], decay=constants["e_hp"], g_state=torch.zeros_like(x),
                          dsyn_out=torch.zeros_like(x)))
        got = {k: v.clone() for k, v in arguments.items()}
        want = {k: v.clone() for k, v in arguments.items()}
        run(pointwise.NATIVE, name, got)
        run(pointwise.TORCH, name, want)
        _assert_same(got, want, dtype)


def _ctrnn_arguments(dtype=torch.float64):
    rows = lambda: torch.zeros(L, B, N, dtype=dtype)  # noqa: E731
    return dict(syn=rows(), x=rows(), step_gain=torch.ones(L, N, dtype=dtype), decay=torch.ones(L, N, dtype=dtype),
                x_out=rows(), y_out=rows(), z_next=torch.zeros(L, B, P + N, dtype=dtype))


@pytest.mark.parametrize("change, match", [
    (dict(decay=torch.ones(L, N, dtype=torch.float32)), "decay must be a contiguous CPU torch.float64"),
    (dict(decay=torch.ones(N, L, dtype=torch.float64).t()), "decay must be .*not contiguous"),
    (dict(step_gain=torch.ones(L, N + 1, dtype=torch.float64)), r"step_gain .* shape \(3, 4\)"),
    (dict(x_out=torch.zeros(L, B + 1, N, dtype=torch.float64)), r"x_out .* shape \(3, 5, 4\)"),
    (dict(z_next=torch.zeros(L, B, 2 * N - 1, dtype=torch.float64)), "at least as many"),
    (dict(decay=None), "decay is required"),
    (dict(decay=[1.0]), "decay must be a tensor"),
])
def test_the_c_boundary_refuses_bad_tensors(change, match):
    arguments = {**_ctrnn_arguments(), **change}
    with pytest.raises((ValueError, TypeError), match=match):
        pointwise.NATIVE.ctrnn_forward(0, 2, **arguments)
    with pytest.raises(TypeError, match="missing"):
        pointwise.NATIVE.ctrnn_forward(0, 2, **{k: v for k, v in _ctrnn_arguments().items() if k != "x"})
    with pytest.raises(ValueError, match="active layers"):
        pointwise.NATIVE.ctrnn_forward(0, 3, **_ctrnn_arguments())


def test_loading_is_thread_safe(tmp_path, monkeypatch):
    """Threads racing on the first use all get the native kernels (none silently the torch ones)."""
    monkeypatch.setenv("SNNSPIN_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_state", {})
    results = []
    threads = [threading.Thread(target=lambda: results.append(native.available())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 4


def test_a_cached_library_that_does_not_load_is_rebuilt_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNSPIN_CACHE", str(tmp_path))
    path = native.build()
    path.write_bytes(b"not a shared library")
    monkeypatch.setattr(native, "_state", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.available()  # rebuilt, silently
    assert path.read_bytes()[:4] == b"\x7fELF"


def test_cache_key_holds_compiler_and_libc_versions(monkeypatch):
    compiler = native._compiler()
    base = native._library_path(compiler)
    monkeypatch.setattr(native, "_compiler_version", lambda c: "another compiler 99")
    assert native._library_path(compiler) != base
    monkeypatch.undo()
    monkeypatch.setattr(native.platform, "libc_ver", lambda: ("glibc", "9.99"))
    assert native._library_path(compiler) != base
