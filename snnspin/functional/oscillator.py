"""Spintronic auto-oscillator neuron (Slavin-Tiberkevich model, Plouet et al. eq. 1-2).

The normalised oscillation power x ∈ [0, 1] obeys

    dx/dt = -(γ (1 + Q x) - σ I (1 - x)) x                       (general form)

which with Q = 0, σ = 1 is the paper's eq. 2, dx/dt = -γ x + I x (1 - x). The paper's
eq. 1 carries an extra factor 2 on the right-hand side; it is this form with γ → 2γ and
I → 2I. Units: t in ns, γ = 1/τ and I in 1/ns; Q and σ are dimensionless.

For a drive held over a step the equation is logistic, dx/dt = a x - b x², with growth
rate a = σ I - γ and saturation b = γ Q + σ I, and has the closed form used by
``oscillator_exact``. It maps [0, 1] into [0, 1] for any drive and any step.
"""

from __future__ import annotations

import math

import torch

from .exponential import expm1_ratio, expm1_ratio_derivative
from .params import OscillatorParameters, logistic_coefficients, oscillator_rest  # noqa: F401 (re-exported)
from .steppers import advance

# e^{-80} ≈ 1.8e-35 is a normal float32: clamping the exponent there avoids subnormal
# arithmetic (ten times slower on CPU) at no visible cost to the trajectory.
_MIN_EXPONENT = -80.0


def oscillator_rate(x, drive, gamma, q=0.0, sigma=1.0):
    """dx/dt = -(γ(1 + Q x) - σ I (1 - x)) x, in 1/ns.

    Shapes broadcast: x and drive ``[..., N]``; γ a float or ``[N]`` (one per neuron).

    >>> float(oscillator_rate(torch.tensor(0.5), torch.tensor(1.0), gamma=0.25))
    0.125
    """
    return -(gamma * (1.0 + q * x) - sigma * drive * (1.0 - x)) * x


def _exact_parts(x, a, c, dt):
    """Shared pieces of the exact update x⁺ = x m / D, with c = b - a = γ(1 + Q) ≥ 0.

    a ≥ 0: m = 1, D = e + b x g; a < 0: m = e, D = 1 + b x g = (1 - x) + x e + c x g, using
    a g = e - 1 on that branch, so that D is a sum of non-negative terms: no cancellation
    even for x = 1 and a → -∞, where the plain form 1 + b x g loses every digit.
    Returns (x⁺, grow, w, e, f, D, b).
    """
    grow = a >= 0
    w = torch.where(grow, -a, a) * dt  # -|a| dt, with the sign of its derivative kept
    e = torch.exp(w.clamp_min(_MIN_EXPONENT))
    f = expm1_ratio(w)
    xg = x * (dt * f)
    b = a + c
    den = torch.where(grow, e + b * xg, (1.0 - x) + x * e + c * xg)
    m = torch.where(grow, torch.ones_like(e), e)
    out = (x * m / den).clamp_min(torch.finfo(den.dtype).tiny)
    return out, grow, w, e, f, den, b


class _OscillatorExact(torch.autograd.Function):
    """Closed-form step with analytic derivatives: one graph node instead of ~40.

    Supports ``torch.func`` (``setup_context``, a generated vmap rule) and double backward:
    when the backward itself is differentiated (``create_graph=True``) it recomputes the
    step's pieces from the saved inputs, so that each carries its dependence on them.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, a, c, dt):
        return _exact_parts(x, a, c, dt)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, a, c, dt = inputs
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(x, a, c, *output)
        ctx.save_for_forward(x, a, c, *output)
        ctx.dt = dt

    @staticmethod
    def _partials(ctx):
        """(∂x⁺/∂x, ∂x⁺/∂a, ∂x⁺/∂c) at the saved point; inputs (x, a, c) with b = a + c."""
        x, a, c, *parts = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: pieces with their graph back to (x, a, c)
            parts = _exact_parts(x, a, c, ctx.dt)
        out, grow, w, e, f, den, b = parts
        d_x, d_a, d_b = exact_derivatives(x, b, out, grow, w, e, f, den, ctx.dt)
        return d_x, d_a + d_b, d_b

    @staticmethod
    def backward(ctx, grad_out, *_):
        d_x, d_a, d_c = _OscillatorExact._partials(ctx)
        return grad_out * d_x, grad_out * d_a, grad_out * d_c, None

    @staticmethod
    def jvp(ctx, x_t, a_t, c_t, _):
        d_x, d_a, d_c = _OscillatorExact._partials(ctx)
        tangent = sum(d * t for d, t in ((d_x, x_t), (d_a, a_t), (d_c, c_t)) if t is not None)
        return (tangent,) + (None,) * 6


def exact_derivatives(x, b, out, grow, w, e, f, den, dt):
    """∂x⁺/∂x, ∂x⁺/∂a, ∂x⁺/∂b of the exact step, from the pieces ``_exact_parts`` returns.

    Writing x⁺ = x m / D with D = n + b x g, g = dt F(w), w = s a dt (s = -1 when a ≥ 0,
    else +1), and (m, n) = (1, e^w) or (e^w, 1):
    ∂x⁺/∂x = e^w / D², ∂x⁺/∂b = -(x⁺/D) x g and
    ∂x⁺/∂a = (x/D) ∂m/∂a - (x⁺/D)(∂n/∂a + b x ∂g/∂a), with ∂e^w/∂a = s dt e^w.
    """
    s = torch.where(grow, -torch.ones_like(w), torch.ones_like(w))
    de_da = e * s * dt
    dg_da = (dt * dt) * expm1_ratio_derivative(w, f) * s
    ratio = out / den
    zero = torch.zeros_like(e)
    d_a = (x / den) * torch.where(grow, zero, de_da) - ratio * (torch.where(grow, de_da, zero) + b * x * dg_da)
    d_b = -ratio * x * (dt * f)
    d_x = (e / den) / den  # e ≤ D on both branches: no underflow of D² to 0 in float32
    return d_x, d_a, d_b


def oscillator_exact(x, drive, gamma, dt, q=0.0, sigma=1.0):
    """Closed-form update of the oscillator over ``dt`` ns with the drive held constant.

    With a, b from ``logistic_coefficients``:

        a ≥ 0:  x⁺ = x / (e^{-a dt} + b x (1 - e^{-a dt}) / a)
        a < 0:  x⁺ = x e^{a dt} / (1 + b x (e^{a dt} - 1) / a)

    Both are the same function, written so that no intermediate overflows; both
    denominators are positive for x ∈ [0, 1] and γ(1 + Q) ≥ 0. At a = 0 the ratio
    (e^{a dt} - 1)/a → dt. The result is clamped below at the smallest normal float so
    that long decays never produce slow subnormals. Gradients are analytic (one autograd
    node per step) and checked against finite differences in the tests.

    >>> x = torch.tensor([0.5], dtype=torch.float64)
    >>> oscillator_exact(x, torch.tensor([2 / 14.12]), 1 / 14.12, 1.0)  # rest point
    tensor([0.5000], dtype=torch.float64)
    >>> oscillator_exact(x, torch.tensor([1e4]), 0.07, 100.0)  # fixed point 1 - γ/I
    tensor([1.0000], dtype=torch.float64)
    """
    a, _ = logistic_coefficients(drive, gamma, q, sigma)
    c = torch.as_tensor(gamma * (1.0 + q), dtype=a.dtype, device=a.device)  # b - a, without cancellation
    if isinstance(dt, torch.Tensor):  # a grid of steps: plain autograd through the same formula
        return _exact_parts(x, a, c, dt)[0]
    shape = torch.broadcast_shapes(x.shape, a.shape, c.shape)
    x, a, c = x.expand(shape), a.expand(shape), c.expand(shape)
    return _OscillatorExact.apply(x, a, c, float(dt))[0]


def oscillator_step(x, drive, gamma, dt, q=0.0, sigma=1.0, method="exact", substeps=1):
    """Advance the oscillator over one input point of ``dt`` ns, drive held.

    ``method`` is ``"exact"``, ``"euler"`` or ``"rk4"``; ``substeps`` solver steps per point.
    Shapes: x, drive ``[B, N]`` (any broadcastable shapes), γ float or ``[N]``.

    >>> x = torch.full((2, 3), 0.5, dtype=torch.float64)
    >>> oscillator_step(x, torch.zeros(2, 3), 0.1, 1.0, method="rk4", substeps=4).shape
    torch.Size([2, 3])
    """
    return advance(
        lambda s: oscillator_rate(s, drive, gamma, q, sigma),
        lambda s, h: oscillator_exact(s, drive, gamma, h, q, sigma),
        x,
        dt,
        method,
        substeps,
    )


def oscillator_rate_bound(drive, gamma, q=0.0, sigma=1.0) -> float:
    """max |∂f/∂x| over x ∈ [0, 1] for the drives given (1/ns), for stability checks.

    ∂f/∂x = a - 2 b x is linear in x, so the bound is max(|a|, |a - 2b|).

    >>> oscillator_rate_bound(torch.tensor([1.0]), 0.5)
    1.5
    """
    a, b = logistic_coefficients(drive, gamma, q, sigma)
    with torch.no_grad():
        return float(torch.maximum(a.abs(), (a - 2 * b).abs()).max())


def oscillator_update(x, u, p: OscillatorParameters, generator: torch.Generator | None = None):
    """One call of an oscillator layer: drive I = S u + b_fixed held over ``p.dt`` ns, then the
    thermal noise of ``p.thermal_power`` (``thermal_kick``, drawn from ``generator``, else from
    torch's global RNG), then the floor ``p.x_min`` (see ``apply_floor``).

    ``u`` is the synaptic sum ``[..., N]``; everything else comes from the record ``p``.

    >>> p = OscillatorParameters(tau=torch.tensor(2.0), gain=torch.tensor(0.5))
    >>> oscillator_update(torch.full((1, 2), 0.5), torch.zeros(1, 2), p)   # stays at rest
    tensor([[0.5000, 0.5000]])
    """
    drive = p.gain * u + p.fixed_bias()
    x = oscillator_step(x, drive, p.gamma, p.dt, p.q, p.sigma, p.method, p.substeps)
    if p.thermal_power:
        x = thermal_kick(x, p.gamma, p.thermal_power, p.dt, generator)
    return apply_floor(x, p.x_min)


def thermal_kick(x, gamma, thermal_power: float, h: float, generator: torch.Generator | None = None):
    """The thermal noise of one step of length ``h`` ns, after the deterministic step.

    In the stochastic model of an auto-oscillator (Slavin & Tiberkevich, IEEE Trans. Magn.
    45, 1875 (2009), Sec. VIII), a thermal force f(t) acts additively on the complex amplitude
    c (x = |c|²), white with ⟨f(t) f*(t')⟩ = 2D δ(t - t'). For the power, Itô's rule gives

        dx = F(x) dt + 2D dt + 2 √(D x) dW,    D = γ x_th / 2,   x_th = k_B T / E_0,

    with F the deterministic drift of eq. 1 and x_th (``thermal_power``, dimensionless: the
    thermal energy over the energy of unit power) the mean power of a passive oscillator:
    with F = -γx the stationary law is Boltzmann's, exponential with mean x_th and variance
    x_th². The 2D term pushes x off 0, so an oscillator driven dead comes back.

    Scheme (a splitting: the exact deterministic step x_d, then the noise the amplitude
    gathers over the step, as in an exact Ornstein-Uhlenbeck step of c):

        x⁺ = min((√x_d + a ξ₁)² + a² ξ₂², 1),   a² = D (1 - e^{-γh})/γ,   ξ₁, ξ₂ ~ N(0, 1).

    x⁺ ≥ 0 always, and for the passive oscillator the step is exact (any h): the stationary
    law is the exponential of mean x_th. Near the drift's nonlinearity the splitting error
    is O(h). The cap at 1 keeps x a normalised power. The gradient passes as through the
    deterministic step alone (∂x⁺/∂x_d = 1, the mean of the kick's sensitivity; the sampled
    sensitivity 1 + aξ₁/√x_d is unbounded near x = 0).

    Shapes: ``x`` ``[..., N]``, ``gamma`` a number or ``[N]``.

    >>> x = torch.zeros(100_000, dtype=torch.float64)
    >>> g = torch.Generator().manual_seed(0)
    >>> for _ in range(100):
    ...     x = x * math.exp(-0.5)  # the exact passive decay over h = 0.5 ns at γ = 1/ns
    ...     x = thermal_kick(x, 1.0, 0.01, 0.5, g)
    >>> round(float(x.mean()), 4), round(float(x.std()), 4)  # exponential: mean = std = x_th
    (0.01, 0.01)
    """
    a = kick_amplitude(torch.as_tensor(gamma, dtype=x.dtype, device=x.device), thermal_power, h)
    with torch.no_grad():
        xi = torch.randn((2, *x.shape), generator=generator, dtype=x.dtype, device=x.device)
        kicked = kicked_power(x, a, xi[0], xi[1])
    return x + (kicked - x.detach())  # the value of x⁺, the gradient of x_d


def kick_amplitude(gamma: torch.Tensor, thermal_power, h: float) -> torch.Tensor:
    """a = √(D (1 - e^{-γh})/γ) with D = γ x_th / 2: the standard deviation of the thermal
    amplitude gathered over a step of ``h`` ns (``thermal_kick``), shaped like ``gamma``;
    ``thermal_power`` x_th a number or a tensor broadcasting against ``gamma``.

    >>> float(kick_amplitude(torch.tensor(1.0), 0.0, 0.5))
    0.0
    """
    return torch.sqrt(gamma * (torch.as_tensor(thermal_power, dtype=gamma.dtype, device=gamma.device) / 2.0)
                      * h * expm1_ratio(-gamma * h))


def kicked_power(x_d, a, xi1, xi2):
    """x⁺ = min((√x_d + a ξ₁)² + a² ξ₂², 1): the power after the thermal kick of amplitude ``a``
    (``kick_amplitude``) with standard normal draws ξ₁, ξ₂; the one place the kick's arithmetic
    is written (the reference layers and the fused path's torch kernels; the C kernels repeat it).

    >>> kicked_power(torch.tensor(0.25), torch.tensor(0.1), torch.tensor(1.0), torch.tensor(-2.0))
    tensor(0.4000)
    """
    return ((x_d.clamp_min(0.0).sqrt() + a * xi1) ** 2 + (a * xi2) ** 2).clamp_max(1.0)


def apply_floor(x, x_min):
    """x⁺ = max(x, x_min), with the gradient passing where x ≥ x_min only (a floor on the power,
    as thermal fluctuations keep a real oscillator's power above 0); x_min = 0 leaves x as it is.

    >>> apply_floor(torch.tensor([1e-9, 0.3]), 1e-3)
    tensor([0.0010, 0.3000])
    """
    if x_min == 0:
        return x
    return torch.where(x >= x_min, x, torch.full_like(x, x_min))
