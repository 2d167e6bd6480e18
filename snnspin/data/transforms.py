"""tonic-style transforms: frozen dataclasses, each a thin callable over ``functional``.

They never modify their input or themselves, keep tonic's convention (numpy in, numpy out;
tensor in, tensor out, so that tonic's numpy transforms can follow them), and compose with
``tonic.transforms.Compose``:

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

_WORKER_GENERATORS: dict = {}  # (id of a GaussianNoise, worker seed) → its generator in this worker


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
class FramesToSequence:
    """Event frames ``[T, P, X]`` (tonic's ``ToFrame``) → ``[T, P·X]``: one row of channels per time bin.

    The path from a tonic event dataset to a network: ``Compose([ToFrame(sensor_size,
    n_time_bins=T), FramesToSequence()])``, then ``n_inputs = P·X`` (e.g. 2 × 700 for SHD).

    >>> import numpy as np
    >>> FramesToSequence()(np.zeros((10, 2, 34))).shape
    (10, 68)
    """

    def __call__(self, frames):
        return F.frames_to_sequence(frames)


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
    """Additive Gaussian noise of standard deviation ``std`` (augmentation), in the input's units.

    Randomness comes from ``generator``: every call draws new noise from it, so it differs
    from sample to sample and epoch to epoch and repeats from its seed. Inside a
    ``DataLoader`` worker, which holds a copy of the generator as it was when the workers
    started, each worker draws from its own generator seeded by (the generator's seed, the
    worker's seed): the workers differ from each other and from epoch to epoch (the loader
    gives its workers new seeds every epoch), and a loader with a seeded ``generator``
    (``make_loader(seed=...)``) repeats them. With ``generator=None`` the noise comes from
    torch's global generator, which ``DataLoader`` seeds likewise in each worker.

    >>> g = torch.Generator().manual_seed(0)
    >>> noise = GaussianNoise(0.1, g)
    >>> bool((noise(torch.zeros(3, 1)) != noise(torch.zeros(3, 1))).all())
    True
    """

    std: float = 0.1
    generator: torch.Generator | None = None

    def __post_init__(self):
        F.add_noise(torch.zeros(0), self.std)  # validates std

    def _generator(self):
        info = torch.utils.data.get_worker_info()
        if self.generator is None or info is None:
            return self.generator
        key = (id(self), info.seed)
        if key not in _WORKER_GENERATORS:
            seed = (self.generator.initial_seed() * 1_000_003 + info.seed) % (2**63)
            _WORKER_GENERATORS[key] = torch.Generator().manual_seed(seed)
        return _WORKER_GENERATORS[key]

    def __call__(self, sequence):
        return F.add_noise(sequence, self.std, self._generator())
