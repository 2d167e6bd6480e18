"""Sparse connectivity: fixed random masks and the masked linear map that applies them.

A mask is a boolean buffer (saved with the model, never trained). A masked weight is
zero and, because the layer computes ``F.linear(x, W * mask, b)``, receives zero gradient.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .device import quantise


def random_mask(out_features: int, in_features: int, density: float, generator: torch.Generator | None = None):
    """Boolean mask ``[out, in]`` with exactly round(density · out · in) entries set.

    >>> m = random_mask(32, 32, 0.5, torch.Generator().manual_seed(0))
    >>> m.shape, int(m.sum())
    (torch.Size([32, 32]), 512)
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    total = out_features * in_features
    keep = int(round(density * total))
    order = torch.randperm(total, generator=generator)
    mask = torch.zeros(total, dtype=torch.bool)
    mask[order[:keep]] = True
    return mask.view(out_features, in_features)


class MaskedLinear(nn.Module):
    """y = (W ⊙ M) x + b with a fixed boolean mask M (``[out, in]``) and W of the same shape.

    W is initialised like ``nn.Linear`` (uniform in ±1/√in), scaled by ``init_scale``, then
    masked. ``bits`` (attribute, 0 by default: full precision) quantises the weights that act
    (``snnspin.device.quantise``: symmetric levels per matrix, straight-through gradient).
    Shapes: input ``[..., in]`` → output ``[..., out]``.

    >>> layer = MaskedLinear(4, 3, density=0.5, generator=torch.Generator().manual_seed(0))
    >>> layer(torch.ones(2, 4)).shape, layer.n_synapses
    (torch.Size([2, 3]), 6)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        density: float = 1.0,
        bias: bool = True,
        init_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        mask = random_mask(out_features, in_features, density, generator)
        bound = init_scale / math.sqrt(in_features)
        weight = (torch.rand(out_features, in_features, generator=generator) * 2 - 1) * bound
        self.weight = nn.Parameter(weight * mask)
        self.register_buffer("mask", mask)
        self.bits = 0
        if bias:
            b = (torch.rand(out_features, generator=generator) * 2 - 1) / math.sqrt(in_features)
            self.bias = nn.Parameter(b)
        else:
            self.register_parameter("bias", None)

    @property
    def n_synapses(self) -> int:
        """Number of connections kept by the mask."""
        return int(self.mask.sum())

    def effective_weight(self) -> torch.Tensor:
        """W ⊙ M, quantised to ``bits`` bits when set: the weights that really act."""
        return quantise(self.weight * self.mask, self.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        bits = f", bits={self.bits}" if self.bits else ""
        return (f"in={self.in_features}, out={self.out_features}, synapses={self.n_synapses}, "
                f"bias={self.bias is not None}{bits}")
