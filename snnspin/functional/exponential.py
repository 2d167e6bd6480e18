"""The one special function the exact updates need: F(w) = (e^w - 1) / w, smooth through w = 0."""

from __future__ import annotations

import math

import torch

# Below |w| = 0.05 the derivative F'(w) is taken from its Taylor series (exact to ~1e-14
# relative), where the direct formula would lose digits to cancellation.
_SERIES_BELOW = 0.05
# F'(w) = sum_k k w^(k-1) / (k+1)!
_DCOEFFS = (1.0 / 2, 2.0 / 6, 3.0 / 24, 4.0 / 120, 5.0 / 720, 6.0 / 5040, 7.0 / 40320)


def _horner(w, coeffs):
    out = torch.full_like(w, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        out = out * w + c
    return out


def _ratio_value(w: torch.Tensor) -> torch.Tensor:
    # expm1 is correctly rounded, so expm1(w)/w is accurate for every w != 0; at w = 0
    # a neighbour whose F is 1 to the last bit stands in (F(w) = 1 + w/2 + ...).
    zero = w == 0
    w_safe = w.masked_fill(zero, -torch.finfo(w.dtype).tiny)
    return torch.expm1(w_safe).div_(w_safe)


class _Expm1Ratio(torch.autograd.Function):
    """F with its analytic derivative; ``torch.func``-ready, and its backward is made of
    differentiable operations on (w, F(w)), so second derivatives are exact too."""

    generate_vmap_rule = True

    @staticmethod
    def forward(w):
        return _ratio_value(w)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output)
        ctx.save_for_forward(inputs[0], output)

    @staticmethod
    def backward(ctx, grad):
        w, f = ctx.saved_tensors
        return grad * expm1_ratio_derivative(w, f)

    @staticmethod
    def jvp(ctx, w_tangent):
        w, f = ctx.saved_tensors
        return expm1_ratio_derivative(w, f) * w_tangent


def expm1_ratio(w):
    """F(w) = (e^w - 1) / w with F(0) = 1, accurate with accurate gradients for all w.

    Used as (1 - e^{-r h}) / r = h F(-r h): the exact response of a relaxing variable
    with rate r (1/ns) to a drive held for h (ns). Its derivative uses the Taylor series
    near 0, where (e^w - F)/w would lose digits to cancellation.

    >>> float(expm1_ratio(torch.tensor(0.0)))
    1.0
    >>> round(float(expm1_ratio(torch.tensor(-1.0, dtype=torch.float64))), 12)
    0.632120558829
    >>> expm1_ratio(0.0)   # plain floats give plain floats
    1.0
    """
    if not isinstance(w, torch.Tensor):
        return 1.0 if w == 0 else math.expm1(w) / w
    if not torch.is_grad_enabled():
        return _ratio_value(w)
    return _Expm1Ratio.apply(w)


def expm1_ratio_derivative(w: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """F'(w) = (e^w - F(w)) / w, by its series near 0; ``f`` is F(w), already computed.

    >>> round(float(expm1_ratio_derivative(torch.tensor(0.0), torch.tensor(1.0))), 12)
    0.5
    """
    small = w.abs() < _SERIES_BELOW
    w_safe = torch.where(small, torch.ones_like(w), w)
    direct = (torch.exp(w_safe) - f) / w_safe
    return torch.where(small, _horner(w, _DCOEFFS), direct)
