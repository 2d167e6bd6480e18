"""Time steppers, looked up by name, for an ODE dx/dt = f(x) with the drive held over a step.

``"exact"`` uses a model's closed-form update (see ``oscillator_exact``, ``ctrnn_exact``);
``"euler"`` and ``"rk4"`` are the explicit schemes of order 1 and 4. Every stepper can
split one input point of length ``dt`` (ns) into ``substeps`` equal solver steps.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from .._checks import check_choice, check_positive, check_positive_int

Rate = Callable[[torch.Tensor], torch.Tensor]

METHODS = ("exact", "euler", "rk4")

#: Largest stable h·|λ| on the negative real axis for each explicit scheme.
STABILITY_LIMIT = {"euler": 2.0, "rk4": 2.785}


def euler_step(rate: Rate, x: torch.Tensor, dt: float) -> torch.Tensor:
    """Forward Euler: x⁺ = x + dt f(x). Order 1.

    >>> euler_step(lambda x: -x, torch.tensor(1.0), 0.1)
    tensor(0.9000)
    """
    return x + dt * rate(x)


def rk4_step(rate: Rate, x: torch.Tensor, dt: float) -> torch.Tensor:
    """Classical Runge-Kutta: x⁺ = x + dt (k1 + 2 k2 + 2 k3 + k4) / 6. Order 4.

    >>> round(float(rk4_step(lambda x: -x, torch.tensor(1.0, dtype=torch.float64), 0.1)), 8)
    0.9048375
    """
    k1 = rate(x)
    k2 = rate(x + 0.5 * dt * k1)
    k3 = rate(x + 0.5 * dt * k2)
    k4 = rate(x + dt * k3)
    return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


EXPLICIT_STEPPERS = {"euler": euler_step, "rk4": rk4_step}


def check_method(method: str, substeps: int = 1) -> None:
    """Raise ``ValueError`` for an unknown stepper name or a bad number of sub-steps.

    >>> check_method("rk4", 2)
    >>> check_method("midpoint")
    Traceback (most recent call last):
    ...
    ValueError: unknown method 'midpoint'; choose one of: exact, euler, rk4
    """
    check_choice("method", method, METHODS)
    check_positive_int("substeps", substeps)


def advance(
    rate: Rate,
    exact: Callable[[torch.Tensor, float], torch.Tensor],
    x: torch.Tensor,
    dt: float,
    method: str = "exact",
    substeps: int = 1,
) -> torch.Tensor:
    """Advance ``x`` by one input point of length ``dt`` in ``substeps`` solver steps.

    ``rate(x)`` is the vector field with the drive already bound, ``exact(x, h)`` the
    model's closed-form update over ``h``.

    >>> decay = lambda x: -x
    >>> exact = lambda x, h: x * torch.exp(torch.tensor(-h, dtype=x.dtype))
    >>> x0 = torch.tensor(1.0, dtype=torch.float64)
    >>> [round(float(advance(decay, exact, x0, 1.0, m, 10)), 6) for m in METHODS]
    [0.367879, 0.348678, 0.36788]
    """
    check_method(method, substeps)
    h = dt / substeps
    if method == "exact":
        for _ in range(substeps):
            x = exact(x, h)
        return x
    step = EXPLICIT_STEPPERS[method]
    for _ in range(substeps):
        x = step(rate, x, h)
    return x


def warn_if_unstable(method: str, rate_bound: float, dt: float, substeps: int, model: str) -> None:
    """Warn when an explicit solver step h = dt/substeps exceeds its stability limit.

    ``rate_bound`` bounds |∂f/∂x| (1/ns). Euler is stable for h·|∂f/∂x| < 2, RK4 for < 2.785.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn_if_unstable("euler", 10.0, 1.0, 1, "oscillator")
    >>> print(w[0].message)  # doctest: +ELLIPSIS
    oscillator: euler step h = 1 ns is unstable: h·|df/dx| = 10 > 2; use h < 0.2 ns ...
    """
    check_positive("dt", dt)
    if method not in STABILITY_LIMIT:
        return
    h = dt / substeps
    limit = STABILITY_LIMIT[method]
    if h * rate_bound > limit:
        warnings.warn(
            f"{model}: {method} step h = {h:g} ns is unstable: h·|df/dx| = {h * rate_bound:.3g} > "
            f"{limit:g}; use h < {limit / rate_bound:.3g} ns (more substeps) or method='exact'",
            RuntimeWarning,
            stacklevel=3,
        )
