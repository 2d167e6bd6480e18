"""Second derivatives and torch.func (grad, vmap, jacrev) through every custom autograd.Function."""

import copy

import pytest
import torch
from torch.nn import functional as F

from snnspin import pointwise
from snnspin.config import TrainConfig
from snnspin.functional import expm1_ratio, oscillator_exact
from snnspin.models import build_model

f64 = torch.float64


def _leaf(*values):
    return torch.tensor(values, dtype=f64, requires_grad=True)


def test_expm1_ratio_second_derivative_is_exact():
    w = _leaf(-30.0, -2.0, -0.3, -0.04, -1e-9, 0.0, 1e-9, 0.03, 0.7, 5.0)
    assert torch.autograd.gradgradcheck(expm1_ratio, (w,))
    # F''(0) = 1/3 (F = 1 + w/2 + w²/6 + ...)
    w0 = _leaf(0.0)
    (g,) = torch.autograd.grad(expm1_ratio(w0).sum(), w0, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), w0)
    assert float(gg) == pytest.approx(1 / 3, rel=1e-12)


@pytest.mark.parametrize("drive", [[-3.0, -0.5, 0.25], [0.2500001, 0.24999, 3.0]])  # a < 0, a ≈ 0, a > 0 (γ = 0.25)
def test_exact_step_second_derivatives(drive):
    x, i = _leaf(0.3, 0.9, 0.05), _leaf(*drive)
    assert torch.autograd.gradgradcheck(lambda x, i: oscillator_exact(x, i, 0.25, 1.5, q=0.2, sigma=1.1), (x, i))


def _tiny_network(engine):
    torch.set_default_dtype(f64)
    try:
        return build_model(TrainConfig(engine=engine, layers=2, width=3, tau=2.0, d_inter=1.0, d_intra=1.0,
                                       learn_tau=True), 1)
    finally:
        torch.set_default_dtype(torch.float32)


def _loss(net, data):
    return F.nll_loss(net(data), torch.arange(data.shape[1]))


def test_reference_network_second_derivative_matches_finite_differences():
    """The issue's measurement: d‖∇L‖²/dW_ext[0] (it was 0.0151 by autograd vs 0.0149 by differences)."""
    net = _tiny_network("reference")
    data = torch.rand(6, 2, 1, dtype=f64, generator=torch.Generator().manual_seed(0)) * 4
    weight = net.w_ext[0].weight

    def grad_norm():
        grads = torch.autograd.grad(_loss(net, data), list(net.parameters()), create_graph=True)
        return sum((g * g).sum() for g in grads)

    (analytic,) = torch.autograd.grad(grad_norm(), weight)
    eps = 1e-5
    for row in range(3):
        with torch.no_grad():
            weight[row, 0] += eps
        up = float(grad_norm().detach())
        with torch.no_grad():
            weight[row, 0] -= 2 * eps
        down = float(grad_norm().detach())
        with torch.no_grad():
            weight[row, 0] += eps
        assert float(analytic[row, 0]) == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-10)


@pytest.mark.parametrize("kernels", [pointwise.TORCH, pointwise.NATIVE])
def test_fused_second_derivatives_are_refused_loudly(kernels):
    if kernels is pointwise.NATIVE and not __import__("snnspin").native.available():
        pytest.skip("no native kernels")
    net = _tiny_network("fused")
    data = torch.rand(6, 2, 1, dtype=f64) * 4
    with pointwise.using(kernels):
        with pytest.raises(RuntimeError, match="the fused path has no second derivatives.*engine='reference'"):
            torch.autograd.grad(_loss(net, data), list(net.parameters()), create_graph=True)
        torch.autograd.grad(_loss(net, data), list(net.parameters()))  # first derivatives as usual


def test_torch_func_grad_and_jacrev_on_the_exact_step():
    x, i = torch.tensor([0.3, 0.9], dtype=f64), torch.tensor([-2.0, 1.0], dtype=f64)
    by_func = torch.func.grad(lambda i: oscillator_exact(x, i, 0.25, 1.0).sum())(i)
    leaf = i.clone().requires_grad_()
    (by_autograd,) = torch.autograd.grad(oscillator_exact(x, leaf, 0.25, 1.0).sum(), leaf)
    assert torch.allclose(by_func, by_autograd, rtol=1e-14)
    jacobian = torch.func.jacrev(lambda i: oscillator_exact(x, i, 0.25, 1.0))(i)
    assert torch.allclose(jacobian, torch.diag(by_autograd), rtol=1e-14)
    forward_mode = torch.func.jacfwd(lambda i: oscillator_exact(x, i, 0.25, 1.0, q=0.3))(i)
    leaf = i.clone().requires_grad_()
    (want,) = torch.autograd.grad(oscillator_exact(x, leaf, 0.25, 1.0, q=0.3).sum(), leaf)
    assert torch.allclose(forward_mode, torch.diag(want), rtol=1e-14)
    hessian = torch.func.hessian(lambda w: expm1_ratio(w).sum())(torch.tensor([0.0, -1.0], dtype=f64))
    assert float(hessian[0, 0]) == pytest.approx(1 / 3, rel=1e-12)


def test_vmap_over_parameter_sets_equals_a_loop():
    """Ensembles by vmap: three networks' weights stacked, one vmapped call = three calls."""
    nets = [build_model(TrainConfig(width=4, layers=2), seed) for seed in range(3)]
    data = torch.rand(8, 5, 1, generator=torch.Generator().manual_seed(1)) * 8
    params, buffers = torch.func.stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")

    def run(p, b):
        return torch.func.functional_call(base, (p, b), (data,))

    stacked = torch.vmap(run)(params, buffers)
    for k, net in enumerate(nets):
        assert torch.allclose(stacked[k], net(data), rtol=1e-5, atol=1e-6)
    grads = torch.vmap(torch.func.grad(lambda p, b: F.nll_loss(run(p, b), torch.arange(5))))(params, buffers)
    for k, net in enumerate(nets):
        net.zero_grad()
        F.nll_loss(net(data), torch.arange(5)).backward()
        for name, p in net.named_parameters():
            assert torch.allclose(grads[name][k], p.grad, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
@pytest.mark.parametrize("width, learn_tau", [(4, True), (48, True), (48, False)])
def test_torch_func_grad_runs_through_the_fused_functions(model, width, learn_tau):
    """The fused Functions take torch.func's form: grad through them equals autograd; nesting is refused.
    At width 48 without learn_tau autograd's oscillator backward reads the derivatives its C forward
    kept (osc_forward_keep_seq), torch.func's recomputes each step: the two agree."""
    from snnspin.fused import fused_ctrnn_sequence, fused_oscillator_sequence

    run = fused_oscillator_sequence if model == "spintronic" else fused_ctrnn_sequence
    torch.set_default_dtype(f64)
    try:
        net = build_model(TrainConfig(model=model, width=width, layers=2, learn_tau=learn_tau), 0)
    finally:
        torch.set_default_dtype(torch.float32)
    data = torch.rand(6, 3, 1, dtype=f64) * 4
    names = [n for n, _ in net.named_parameters()]

    class Last(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, d):
            y, x, _ = run(self.net, d)
            return (y * y).sum() + x.sum()

    def loss(params):
        return torch.func.functional_call(Last(), {f"net.{k}": v for k, v in params.items()}, (data,))

    params = {k: p.detach() for k, p in net.named_parameters()}
    by_func = torch.func.grad(loss)(params)
    y, x, _ = run(net, data)
    by_autograd = dict(zip(names, torch.autograd.grad((y * y).sum() + x.sum(), list(net.parameters()),
                                                       allow_unused=True)))
    for name in names:
        want = by_autograd[name] if by_autograd[name] is not None else torch.zeros_like(params[name])
        assert torch.allclose(by_func[name], want, rtol=1e-12, atol=1e-15), name
    with pytest.raises(RuntimeError, match="no second derivatives"):
        torch.func.grad(lambda p: torch.func.grad(loss)(p)["w_ext.0.weight"].sum())(params)


@pytest.mark.parametrize("width", [4, 48])  # along the diagonals; layer by layer
def test_batched_gradients_are_refused_by_the_fused_path_and_taken_by_the_reference(width):
    """is_grads_batched=True hands the backward batched tensors, which the fused path's C loops
    cannot read: it says so (it once failed on a tensor without storage); the per-step reference
    path takes them, equal to the gradients taken one at a time."""
    data = torch.rand(6, 3, 1, dtype=f64, generator=torch.Generator().manual_seed(0)) * 4
    fused = build_model(TrainConfig(width=width, layers=2, engine="fused"), 0).double()
    out = fused(data)
    weight = fused.w_ext[0].weight
    with pytest.raises(RuntimeError, match="does not take batched gradients"):
        torch.autograd.grad(out, weight, torch.ones(2, *out.shape, dtype=f64), is_grads_batched=True)
    reference = build_model(TrainConfig(width=width, layers=2, engine="reference"), 0).double()
    out = reference(data)
    seeds = torch.randn(2, *out.shape, dtype=f64, generator=torch.Generator().manual_seed(1))
    batched = torch.autograd.grad(out, reference.w_ext[0].weight, seeds, is_grads_batched=True, retain_graph=True)[0]
    for k in range(2):
        one = torch.autograd.grad(out, reference.w_ext[0].weight, seeds[k], retain_graph=True)[0]
        assert torch.allclose(batched[k], one, rtol=1e-12, atol=1e-15)
