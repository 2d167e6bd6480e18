"""Argument checks shared by the whole package: one clear ``ValueError`` per bad input."""

from __future__ import annotations

import math

import torch


def check_positive(name: str, value) -> None:
    """Raise ``ValueError`` unless every element of ``value`` is finite and > 0.

    >>> check_positive("tau", 14.12)
    >>> check_positive("tau", -1.0)
    Traceback (most recent call last):
    ...
    ValueError: tau must be positive and finite, got -1.0
    """
    if isinstance(value, torch.Tensor):
        with torch.no_grad():
            ok = bool(torch.isfinite(value).all() and (value > 0).all())
        shown = value.detach().flatten()[:4].tolist() if value.numel() > 1 else float(value)
    else:
        ok = isinstance(value, (int, float)) and math.isfinite(value) and value > 0
        shown = value
    if not ok:
        raise ValueError(f"{name} must be positive and finite, got {shown}")


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``tensor`` holds a NaN or an infinity (one reduction, one sync).

    >>> check_finite("input_", torch.tensor([1.0, float("nan")]))
    Traceback (most recent call last):
    ...
    ValueError: input_ contains NaN or infinite values (1 of 2 elements)
    """
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        raise ValueError(
            f"{name} contains NaN or infinite values ({int(bad.sum())} of {tensor.numel()} elements)"
        )


def check_choice(name: str, value: str, choices) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``.

    >>> check_choice("method", "rk5", ("exact", "euler", "rk4"))
    Traceback (most recent call last):
    ...
    ValueError: unknown method 'rk5'; choose one of: exact, euler, rk4
    """
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def check_positive_int(name: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` is an int >= 1.

    >>> check_positive_int("substeps", 0)
    Traceback (most recent call last):
    ...
    ValueError: substeps must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_flag(name: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` is ``True`` or ``False`` (not 0, 1 or a string).

    >>> check_flag("detach_reset", "no")
    Traceback (most recent call last):
    ...
    ValueError: detach_reset must be True or False, got 'no'
    """
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
