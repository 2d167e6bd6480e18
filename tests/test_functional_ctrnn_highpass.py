"""CTRNN and high-pass filter math against closed forms."""

import math

import numpy as np
import pytest
import torch

from snnspin.functional import ctrnn_exact, ctrnn_step, cutoff_rate, highpass_step

f64 = torch.float64


def test_ctrnn_exact_closed_form():
    x0, i, gamma, t = 0.3, 1.7, 0.4, 2.5
    got = ctrnn_exact(torch.tensor(x0, dtype=f64), torch.tensor(i, dtype=f64), gamma, t)
    expected = x0 * math.exp(-gamma * t) + i / gamma * (1 - math.exp(-gamma * t))
    assert float(got) == pytest.approx(expected, abs=1e-14)


@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4)])
def test_ctrnn_convergence_order(method, order):
    x, i = torch.tensor(0.3, dtype=f64), torch.tensor(1.7, dtype=f64)
    ref = ctrnn_exact(x, i, 0.8, 3.0)
    ns = [8, 16, 32, 64]
    errs = [abs(float(ctrnn_step(x, i, 0.8, 3.0, method, n) - ref)) for n in ns]
    slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.15


def test_ctrnn_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, generator=g, dtype=f64, requires_grad=True)
    i = torch.randn(4, generator=g, dtype=f64, requires_grad=True)
    gamma = (0.1 + torch.rand(4, generator=g, dtype=f64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, i, gm: ctrnn_exact(x, i, gm, 0.7), (x, i, gamma))


def test_highpass_matches_ode_for_linear_ramp():
    # x(t) = c t: dy/dt = -ω y + c  →  y(t) = c (1 - e^{-ω t}) / ω
    omega, c, dt, steps = cutoff_rate(1.0), 0.01, 1.0, 64
    y = torch.tensor(0.0, dtype=f64)
    for k in range(steps):
        y = highpass_step(y, torch.tensor(c * k, dtype=f64), torch.tensor(c * (k + 1), dtype=f64), omega, dt)
    t = steps * dt
    assert float(y) == pytest.approx(c * (1 - math.exp(-omega * t)) / omega, abs=1e-14)


def test_highpass_decays_a_step():
    omega = cutoff_rate(1000.0)  # 1 GHz: ω = 6.28 /ns
    y = highpass_step(torch.tensor(0.0, dtype=f64), torch.tensor(0.0, dtype=f64), torch.tensor(1.0, dtype=f64), omega, 1e-3)
    for _ in range(1000):  # hold x: y decays as e^{-ω t}
        y = highpass_step(y, torch.tensor(1.0, dtype=f64), torch.tensor(1.0, dtype=f64), omega, 1e-3)
    step_gain = (1 - math.exp(-omega * 1e-3)) / (omega * 1e-3)
    assert float(y) == pytest.approx(step_gain * math.exp(-omega * 1.0), rel=1e-12)


def test_highpass_gradcheck():
    g = torch.Generator().manual_seed(2)
    args = tuple(torch.randn(3, generator=g, dtype=f64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda y, a, b: highpass_step(y, a, b, 0.05, 1.0), args)


def test_cutoff_rate_units():
    assert cutoff_rate(1.0) == pytest.approx(2 * math.pi * 1e-3)
