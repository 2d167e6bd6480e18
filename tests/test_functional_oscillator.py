"""The oscillator's math: exact update vs a fine RK4 reference, convergence, bounds, gradients."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnspin.functional import (
    advance,
    oscillator_exact,
    oscillator_rate,
    oscillator_rest,
    oscillator_step,
)

f64 = torch.float64


def rk4_reference(x0, drive, gamma, t, q=0.0, sigma=1.0, steps=20000):
    x = torch.tensor(x0, dtype=f64)
    i = torch.tensor(drive, dtype=f64)
    return oscillator_step(x, i, gamma, t, q, sigma, method="rk4", substeps=steps)


CASES = [  # (x0, drive I, gamma, dt, q, sigma): growing, decaying, negative, a = 0, eq. 1 terms
    (0.1, 2.0, 0.07, 1.0, 0.0, 1.0),
    (0.9, 0.05, 0.1, 3.0, 0.0, 1.0),
    (0.5, -3.0, 1 / 14.12, 1.0, 0.0, 1.0),
    (0.3, 0.25, 0.25, 2.0, 0.0, 1.0),  # a = I - γ = 0 exactly
    (0.6, 1.5, 0.2, 1.5, 0.7, 0.8),
]


@pytest.mark.parametrize("x0, drive, gamma, dt, q, sigma", CASES)
def test_exact_matches_fine_rk4(x0, drive, gamma, dt, q, sigma):
    exact = oscillator_exact(torch.tensor(x0, dtype=f64), torch.tensor(drive, dtype=f64), gamma, dt, q, sigma)
    ref = rk4_reference(x0, drive, gamma, dt, q, sigma)
    assert abs(float(exact - ref)) < 1e-10


def test_exact_at_zero_growth_is_the_limit_formula():
    # a = 0: x⁺ = x / (1 + I x dt)
    x, i, dt = 0.3, 0.25, 2.0
    got = oscillator_exact(torch.tensor(x, dtype=f64), torch.tensor(i, dtype=f64), 0.25, dt)
    assert float(got) == pytest.approx(x / (1 + i * x * dt), abs=1e-15)


def test_rest_point_is_half_with_paper_bias():
    gamma = 1 / 14.12
    assert float(oscillator_rest(2 * gamma, gamma)) == pytest.approx(0.5)
    x = torch.full((4,), 0.5, dtype=f64)
    out = oscillator_exact(x, torch.full((4,), 2 * gamma, dtype=f64), gamma, 1.0)
    assert torch.allclose(out, x, atol=1e-15)
    assert float(oscillator_rate(x, 2 * gamma, gamma).abs().max()) < 1e-16


def _errors(method, ns, drive=1.5, gamma=0.3, x0=0.2, t=2.0):
    x = torch.tensor(x0, dtype=f64)
    i = torch.tensor(drive, dtype=f64)
    ref = oscillator_exact(x, i, gamma, t)
    return [abs(float(oscillator_step(x, i, gamma, t, method=method, substeps=n) - ref)) for n in ns]


@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4)])
def test_convergence_order(method, order):
    ns = [32, 64, 128, 256]  # asymptotic regime for both schemes
    errs = _errors(method, ns)
    slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.15, (errs, slope)


def test_exact_substeps_agree_with_one_step():
    x = torch.tensor([0.2, 0.7], dtype=f64)
    i = torch.tensor([3.0, -1.0], dtype=f64)
    one = oscillator_step(x, i, 0.1, 5.0)
    many = oscillator_step(x, i, 0.1, 5.0, substeps=50)
    assert torch.allclose(one, many, atol=1e-13)


def test_per_neuron_gamma_broadcasts():
    gamma = torch.tensor([0.05, 0.5, 5.0], dtype=f64)
    x = torch.full((2, 3), 0.5, dtype=f64)
    out = oscillator_exact(x, 2 * gamma.expand(2, 3), gamma, 1.0)
    assert torch.allclose(out, x, atol=1e-14)  # each at its own rest point 0.5


@settings(max_examples=300, deadline=None)
@given(
    x=st.floats(0.0, 1.0),
    drive=st.floats(-1e4, 1e4),
    gamma=st.floats(1e-3, 10.0),
    dt=st.floats(1e-6, 100.0),
    q=st.floats(0.0, 2.0),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_exact_stays_in_unit_interval(x, drive, gamma, dt, q, dtype):
    out = oscillator_exact(torch.tensor(x, dtype=dtype), torch.tensor(drive, dtype=dtype), gamma, dt, q)
    assert torch.isfinite(out)
    assert 0.0 <= float(out) <= 1.0


def test_exact_bounded_on_dense_grid_float32():
    x = torch.linspace(0, 1, 11).view(-1, 1, 1)
    drive = torch.linspace(-1e4, 1e4, 201).view(1, -1, 1)
    dt = torch.logspace(-3, 2, 11).view(1, 1, -1)
    out = oscillator_exact(x, drive, 1 / 14.12, dt)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def _gradcheck_inputs(a_near_zero=False):
    g = torch.Generator().manual_seed(0)
    x = (0.05 + 0.9 * torch.rand(5, generator=g, dtype=f64)).requires_grad_()
    gamma = (0.1 + torch.rand(5, generator=g, dtype=f64)).requires_grad_()
    if a_near_zero:  # drives within 1e-4 of γ: the series branch of F(w)
        drive = (gamma.detach() + 1e-4 * torch.randn(5, generator=g, dtype=f64)).requires_grad_()
    else:
        drive = (4 * torch.randn(5, generator=g, dtype=f64)).requires_grad_()
    return x, drive, gamma


@pytest.mark.parametrize("a_near_zero", [False, True])
def test_gradcheck_exact(a_near_zero):
    x, drive, gamma = _gradcheck_inputs(a_near_zero)
    assert torch.autograd.gradcheck(lambda x, i, g: oscillator_exact(x, i, g, 1.3, 0.2, 0.9), (x, drive, gamma))


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_gradcheck_explicit(method):
    x, drive, gamma = _gradcheck_inputs()
    assert torch.autograd.gradcheck(
        lambda x, i, g: oscillator_step(x, i, g, 0.5, method=method, substeps=3), (x, drive, gamma)
    )


def test_gradient_continuous_across_zero_growth():
    # d x⁺ / d I on both sides of a = I - γ = 0 must agree to the slope of a smooth function.
    def grad_at(i):
        drive = torch.tensor(i, dtype=f64, requires_grad=True)
        oscillator_exact(torch.tensor(0.4, dtype=f64), drive, 0.5, 2.0).backward()
        return float(drive.grad)

    left, mid, right = grad_at(0.5 - 1e-9), grad_at(0.5), grad_at(0.5 + 1e-9)
    assert mid == pytest.approx(left, rel=1e-7) and mid == pytest.approx(right, rel=1e-7)


def test_unknown_method_and_bad_substeps():
    x = torch.tensor(0.5)
    with pytest.raises(ValueError, match="unknown method 'heun'"):
        oscillator_step(x, x, 0.1, 1.0, method="heun")
    with pytest.raises(ValueError, match="substeps must be an integer >= 1"):
        oscillator_step(x, x, 0.1, 1.0, substeps=0)


def test_advance_with_exponential_decay_exact():
    x0 = torch.tensor(1.0, dtype=f64)
    out = advance(lambda x: -x, lambda x, h: x * math.exp(-h), x0, 2.0, "exact", 7)
    assert float(out) == pytest.approx(math.exp(-2.0), abs=1e-14)


def test_saturated_neuron_under_huge_negative_drive_float32():
    # x = 1 and a → -∞: the plain denominator 1 + b x g cancels to noise in float32
    for drive in (-1e4, -1e6):
        got = oscillator_exact(torch.tensor(1.0), torch.tensor(drive), 0.07, 1.0)
        ref = oscillator_exact(torch.tensor(1.0, dtype=f64), torch.tensor(drive, dtype=f64), 0.07, 1.0)
        assert torch.isfinite(got) and float(got) == pytest.approx(float(ref), rel=1e-3)


def test_gradient_finite_for_dead_neuron_under_huge_growth_float32():
    x = torch.tensor(torch.finfo(torch.float32).tiny, requires_grad=True)
    drive = torch.tensor(50.0, requires_grad=True)
    oscillator_exact(x, drive, 0.5, 10.0).backward()  # a dt ≈ 500: e^{-a dt} clamps at e^{-80}
    assert torch.isfinite(x.grad) and torch.isfinite(drive.grad)
