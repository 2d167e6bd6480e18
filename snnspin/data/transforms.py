"""tonic-style transforms: frozen dataclasses, each a thin callable over ``functional``.

They never modify their input or themselves, and compose with ``tonic.transforms.Compose``:

>>> import tonic, torch
>>> from snnspin.data.transforms import ImageToSequence, Scale, Resample
>>> t = tonic.transforms.Compose([ImageToSequence("row"), Scale(16.0), Resample(1.0, 0.5)])
>>> t(torch.full((8, 8), 16.0)).shape
torch.Size([128, 1])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import functional as F


@dataclass(frozen=True)
class ImageToSequence:
    """Scan an ``[H, W]`` image into ``[H·W, 1]``: ``order`` = row (paper), column or snake.

    >>> ImageToSequence("column")(torch.arange(4.0).reshape(2, 2)).flatten().tolist()
    [0.0, 2.0, 1.0, 3.0]
    """

    order: str = "row"

    def __post_init__(self):
        F.check_choice("order", self.order, F.ORDERS)

    def __call__(self, image):
        return F.image_to_sequence(image, self.order)


@dataclass(frozen=True)
class Scale:
    """Map [0, ``max_value``] to [0, ``amplitude``] (digits: raw 0..16 → drive amplitude).

    >>> Scale(16.0, amplitude=2.0)(torch.tensor([[16.0]])).item()
    2.0
    """

    max_value: float = 16.0
    amplitude: float = 1.0

    def __post_init__(self):
        F.scale(torch.zeros(0), self.max_value, self.amplitude)  # validates the arguments

    def __call__(self, sequence):
        return F.scale(sequence, self.max_value, self.amplitude)


@dataclass(frozen=True)
class Hold:
    """Hold each input point for ``steps`` solver steps: ``[T, F]`` → ``[T·steps, F]``.

    >>> Hold(2)(torch.tensor([[1.0], [2.0]])).flatten().tolist()
    [1.0, 1.0, 2.0, 2.0]
    """

    steps: int = 1

    def __post_init__(self):
        F.check_positive_int("steps", self.steps)

    def __call__(self, sequence):
        return F.hold(sequence, self.steps)


@dataclass(frozen=True)
class Resample:
    """Present points ``delta_t`` ns apart to a solver stepping ``dt`` ns: hold each point
    for delta_t/dt steps (which must be whole). Sweeping Δt is one argument away.

    >>> Resample(delta_t=2.0, dt=0.5)(torch.ones(64, 1)).shape
    torch.Size([256, 1])
    """

    delta_t: float = 1.0
    dt: float = 1.0

    def __post_init__(self):
        F.steps_per_point(self.delta_t, self.dt)

    @property
    def steps(self) -> int:
        """Solver steps per input point."""
        return F.steps_per_point(self.delta_t, self.dt)

    def __call__(self, sequence):
        return F.hold(sequence, self.steps)


@dataclass(frozen=True)
class GaussianNoise:
    """Additive Gaussian noise of standard deviation ``std`` (augmentation).

    Randomness comes from ``generator``; with ``None`` it comes from torch's global
    generator, which ``DataLoader`` seeds differently and reproducibly in each worker.

    >>> g = torch.Generator().manual_seed(0)
    >>> GaussianNoise(0.1, g)(torch.zeros(2, 1)).shape
    torch.Size([2, 1])
    """

    std: float = 0.1
    generator: torch.Generator | None = None

    def __post_init__(self):
        F.add_noise(torch.zeros(0), self.std)  # validates std

    def __call__(self, sequence):
        return F.add_noise(sequence, self.std, self.generator)
