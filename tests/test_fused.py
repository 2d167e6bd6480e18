"""The fused sequence path against the per-step reference: loss and every gradient."""

import warnings

import pytest
import torch
from torch.nn import functional as F

from snnspin import native, pointwise
from snnspin.config import TrainConfig
from snnspin.models import build_model

# the fused path on CPU runs the native kernels when a C compiler is found; the torch kernels
# (the GPU's, and the fallback) are checked against the reference path too
KERNELS = [pytest.param(pointwise.TORCH, id="torch-kernels"),
           pytest.param(pointwise.NATIVE, id="native-kernels",
                        marks=pytest.mark.skipif(not native.available(), reason="no C compiler"))]

CASES = [
    dict(),
    dict(substeps=3, delta_t=2.0),
    dict(layers=2, d_intra=1.0, d_inter=0.3, readout="x"),
    dict(learn_tau=True, tau=3.0),
    dict(layers=4, width=8, init_scale=4.0),
]


def _compare(model, changes, dtype, tol, near_zero_growth=False):
    data = (torch.rand(16, 6, 1, generator=torch.Generator().manual_seed(0)) * 16).to(dtype)
    targets = torch.arange(6) % 10
    results = []
    for engine in ("reference", "fused"):
        config = TrainConfig(model=model, engine=engine, **changes)
        torch.set_default_dtype(dtype)
        try:
            net = build_model(config, 2)
            if near_zero_growth:  # drive I = γ: a = I - γ ≈ 0, the series branch of the exact step
                with torch.no_grad():
                    for m in list(net.w_ext) + list(net.w_int):
                        m.weight.mul_(1e-7)
                    for m in net.w_ext:
                        m.bias.fill_(-(1 / config.tau) / config.gain)
            loss = F.nll_loss(net(data), targets)
            loss.backward()
            results.append((loss.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}))
        finally:
            torch.set_default_dtype(torch.float32)
    (loss_ref, g_ref), (loss_fused, g_fused) = results
    assert abs(float(loss_ref - loss_fused)) <= tol * abs(float(loss_ref))
    for name in g_ref:
        scale = float(g_ref[name].abs().max()) + 1e-30
        assert float((g_ref[name] - g_fused[name]).abs().max()) <= tol * scale, name


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
@pytest.mark.parametrize("changes", CASES)
def test_fused_matches_reference_float64(model, changes, kernels):
    with pointwise.using(kernels):
        _compare(model, changes, torch.float64, 1e-12)


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
def test_fused_matches_reference_float32(model, kernels):
    with pointwise.using(kernels):
        _compare(model, dict(substeps=2, delta_t=2.0), torch.float32, 1e-5)


@pytest.mark.parametrize("kernels", KERNELS)
def test_fused_small_growth_branch(kernels):
    with pointwise.using(kernels):
        _compare("spintronic", dict(layers=2), torch.float64, 1e-12, near_zero_growth=True)


@pytest.mark.parametrize("kernels", KERNELS)
def test_fused_gradcheck_float64(kernels):
    torch.set_default_dtype(torch.float64)
    try:
        net = build_model(TrainConfig(layers=2, width=3, tau=2.0, d_intra=1.0, d_inter=1.0, learn_tau=True), 0)
    finally:
        torch.set_default_dtype(torch.float32)
    data = torch.rand(5, 2, 1, dtype=torch.float64) * 4
    names = [n for n, _ in net.named_parameters()]

    def run(*params):
        return torch.func.functional_call(net, dict(zip(names, params)), (data,))

    params = tuple(p.detach().clone().requires_grad_() for p in net.parameters())
    with pointwise.using(kernels):
        assert torch.autograd.gradcheck(run, params)


def test_fused_is_default_and_reference_on_request():
    net = build_model(TrainConfig())
    assert net._use_fused(record=False)
    assert not net._use_fused(record=True)
    assert not build_model(TrainConfig(engine="reference"))._use_fused(record=False)


def test_unsupported_stepper_falls_back_once_or_errors():
    data = torch.rand(4, 2, 1)
    net = build_model(TrainConfig(method="rk4", layers=1, width=3))
    with pytest.warns(RuntimeWarning, match="reference path: the fused path integrates with the exact stepper only"):
        net(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(data)  # said once
    with pytest.raises(ValueError, match="engine='fused' is not available"):
        build_model(TrainConfig(method="euler", engine="fused", layers=1, width=3))(data)


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
def test_fused_with_inputs_wider_than_a_layer(model, kernels):
    """6 input features into layers of 4: the stacked weights pad every layer's signal to 6 columns."""
    from snnspin.models import CTRNNNetwork, SpintronicNetwork

    cls = SpintronicNetwork if model == "spintronic" else CTRNNNetwork
    data = torch.rand(10, 3, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 4
    targets = torch.arange(3)
    grads = []
    for engine in ("reference", "fused"):
        torch.set_default_dtype(torch.float64)
        try:
            net = cls(TrainConfig(model=model, engine=engine, width=4, layers=3), seed=0, n_inputs=6)
        finally:
            torch.set_default_dtype(torch.float32)
        with pointwise.using(kernels):
            F.nll_loss(net(data), targets).backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    for name, want in grads[0].items():
        assert torch.allclose(grads[1][name], want, rtol=1e-10, atol=1e-12), name
