"""Pure functions behind the tonic-style transforms: images to sequences, scaling, timing.

All take a numpy array or a tensor, never modify it, and return a new floating array of
the same kind, as tonic's transforms do: numpy in, numpy out; tensor in, tensor out (so
tonic's numpy transforms, such as ``NumpyAsType``, can follow them). Sequences are
``[T, F]``: T time points of F features.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .._checks import check_choice, check_positive, check_positive_int

ORDERS = ("row", "column", "snake")

__all__ = ["ORDERS", "add_noise", "check_choice", "check_positive_int", "frames_to_sequence", "hold",
           "image_to_sequence", "keeps_array_kind", "scale", "steps_per_point"]


def _as_float_tensor(data) -> torch.Tensor:
    tensor = torch.as_tensor(data)
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    return tensor


def keeps_array_kind(function):
    """Decorate a function of a sequence so that numpy input gives numpy output (tonic's
    convention) and anything else a tensor; integer input becomes the default float dtype.

    >>> double = keeps_array_kind(lambda s: s * 2)
    >>> type(double(np.ones(2))).__name__, type(double(torch.ones(2))).__name__
    ('ndarray', 'Tensor')
    """

    @functools.wraps(function)
    def wrapper(sequence, *args, **kwargs):
        result = function(_as_float_tensor(sequence), *args, **kwargs)
        return result.numpy() if isinstance(sequence, np.ndarray) else result

    return wrapper


@keeps_array_kind
def image_to_sequence(image, order: str = "row") -> torch.Tensor:
    """Scan an ``[H, W]`` image into a ``[H·W, 1]`` sequence, one pixel per time point.

    ``order``: ``"row"`` (row by row, left to right: the paper's), ``"column"`` (column by
    column, top to bottom) or ``"snake"`` (rows, every other row right to left).

    >>> img = torch.arange(6.0).reshape(2, 3)
    >>> image_to_sequence(img, "snake").flatten().tolist()
    [0.0, 1.0, 2.0, 5.0, 4.0, 3.0]
    """
    check_choice("order", order, ORDERS)
    if image.dim() != 2:
        raise ValueError(f"image must have shape [H, W], got {tuple(image.shape)}")
    if order == "column":
        image = image.T
    elif order == "snake":
        image = image.clone()
        image[1::2] = image[1::2].flip(-1)
    return image.reshape(-1, 1).clone()


@keeps_array_kind
def frames_to_sequence(frames) -> torch.Tensor:
    """Flatten each time bin of event frames ``[T, ...]`` into one row: ``[T, F]``, F = the product of the rest.

    tonic's ``ToFrame`` gives ``[T, P, X]`` (or ``[T, P, H, W]``) frames; a network takes ``[T, F]``.

    >>> frames_to_sequence(torch.ones(5, 2, 3)).shape
    torch.Size([5, 6])
    """
    if frames.dim() < 2:
        raise ValueError(f"frames must have shape [T, ...] with an axis after time, got {tuple(frames.shape)}")
    return frames.reshape(frames.shape[0], -1).clone()


@keeps_array_kind
def scale(sequence, max_value: float = 16.0, amplitude: float = 1.0) -> torch.Tensor:
    """Map values from [0, ``max_value``] to [0, ``amplitude``]: s · amplitude / max_value.

    For the digits (pixels 0..16) ``max_value=16, amplitude=1`` gives [0, 1]; any other
    amplitude sets the largest drive a pixel can give.

    >>> scale(torch.tensor([[0.0], [8.0], [16.0]])).flatten().tolist()
    [0.0, 0.5, 1.0]
    """
    check_positive("max_value", max_value)
    if not math.isfinite(amplitude):
        raise ValueError(f"amplitude must be finite, got {amplitude}")
    return sequence * (amplitude / max_value)


@keeps_array_kind
def hold(sequence, steps: int) -> torch.Tensor:
    """Hold each time point for ``steps`` solver steps: ``[T, F]`` → ``[T·steps, F]``.

    >>> hold(torch.tensor([[1.0], [2.0]]), 3).flatten().tolist()
    [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    """
    check_positive_int("steps", steps)
    if sequence.dim() != 2:
        raise ValueError(f"sequence must have shape [T, F], got {tuple(sequence.shape)}")
    return sequence.repeat_interleave(steps, dim=0)


def steps_per_point(delta_t: float, dt: float) -> int:
    """Number of solver steps of ``dt`` ns in the time ``delta_t`` ns between input points.

    ``delta_t`` must be a whole number of ``dt`` (to 1e-9 relative).

    >>> steps_per_point(2.5, 0.5)
    5
    >>> steps_per_point(1.0, 0.3)
    Traceback (most recent call last):
    ...
    ValueError: delta_t = 1 ns is not a whole number of solver steps dt = 0.3 ns (ratio 3.33333)
    """
    check_positive("delta_t", delta_t)
    check_positive("dt", dt)
    ratio = delta_t / dt
    steps = round(ratio)
    if steps < 1 or abs(ratio - steps) > 1e-9 * ratio:
        raise ValueError(
            f"delta_t = {delta_t:g} ns is not a whole number of solver steps dt = {dt:g} ns "
            f"(ratio {ratio:g})"
        )
    return steps


@keeps_array_kind
def add_noise(sequence, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``std`` drawn from ``generator``.

    >>> g = torch.Generator().manual_seed(0)
    >>> add_noise(torch.zeros(3, 1), 0.0, g).flatten().tolist()
    [0.0, 0.0, 0.0]
    """
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"std must be finite and >= 0, got {std}")
    noise = torch.randn(sequence.shape, generator=generator, dtype=sequence.dtype)
    return sequence + std * noise
