"""Device realism: a chip's device-to-device mismatch, limited synaptic precision, and the
seeding of thermal noise (its model is ``snnspin.functional.oscillator.thermal_kick``).

**Mismatch.** A chip is one draw of every neuron's deviation from the design values:

    τ_i = τ (1 + m ξ_τ,i),   σ_i = σ (1 + m ξ_σ,i),   Q_i = Q (1 + m ξ_Q,i),   ξ ~ N(0, 1) clipped to ±3

with m = ``config.mismatch`` (the relative standard deviation; b_fixed = 2γ_i follows each
device's own τ, as a bias current set per device would). The CTRNN twin gets the τ spread
only. A chip is drawn from ``config.chip_seed`` when the network is built and stored in its
buffers, so it is saved with the weights and fixed for the chip's lifetime. Device-aware
training (``chip_draw="batch"``) draws a fresh chip for every batch and evaluates on the
network's own chip.

**Synaptic precision.** ``quantise(w, bits)``: symmetric uniform levels per weight matrix,
Δ = max|W| / (2^(bits-1) - 1), with a straight-through gradient (the rounding passes the
gradient unchanged), as in quantisation-aware training (Bengio et al. 2013, arXiv:1308.3432).
"""

from __future__ import annotations

import torch

#: Draws of ξ are clipped at this many standard deviations.
CLIP = 3.0


def draw_chip(layers: int, width: int, mismatch: float, seed: int) -> dict[str, torch.Tensor]:
    """Relative factors ``[L, N]`` (float64) of one chip: ``tau``, ``sigma`` and ``q``, each
    1 + m ξ with ξ ~ N(0, 1) clipped to ±``CLIP``; all ones when ``mismatch`` is 0.

    >>> chip = draw_chip(3, 4, 0.05, seed=0)
    >>> sorted(chip), tuple(chip["tau"].shape)
    (['q', 'sigma', 'tau'], (3, 4))
    >>> bool((chip["tau"] - 1).abs().max() <= 0.15)
    True
    """
    generator = torch.Generator().manual_seed(int(seed) % 2**63)
    factors = {}
    for name in ("tau", "sigma", "q"):
        xi = torch.randn(layers, width, generator=generator, dtype=torch.float64).clamp(-CLIP, CLIP)
        factors[name] = 1.0 + mismatch * xi
    return factors


def apply_chip(model, factors: dict[str, torch.Tensor]) -> None:
    """Give every neuron of ``model`` (a spintronic or CTRNN network) its chip's constants:
    τ_i = τ · tau[l, i] (with ``model.config.tau`` the design τ), and for oscillators
    σ_i = σ_design · sigma[l, i], Q_i = Q_design · q[l, i] (design σ = 1, Q = 0 unless the
    layers were built otherwise: the design values are kept in ``model.design``)."""
    design = getattr(model, "design", None)
    if design is None:
        raise ValueError(f"{type(model).__name__} has no device constants to spread")
    for layer, neuron in enumerate(model.neurons):
        for name, nominal in design.items():
            if name in factors:
                old = getattr(neuron, name)
                setattr(neuron, name, (nominal * factors[name][layer]).to(dtype=old.dtype, device=old.device))


def seed_noise(model, seed: int) -> None:
    """Seed every noisy oscillator layer's own generator (on the layer's device) from ``seed``;
    layers without thermal noise are left alone."""
    for layer, neuron in enumerate(getattr(model, "neurons", [])):
        if getattr(neuron, "thermal_power", 0.0):
            device = neuron.tau.device
            neuron.generator = torch.Generator(device=device).manual_seed((int(seed) * 1009 + layer) % 2**63)


def quantise(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """``weight`` rounded to 2^(bits-1) - 1 symmetric levels of step Δ = max|W| / (2^(bits-1) - 1)
    on each side of 0 (so 0 stays 0: masked synapses stay off), with a straight-through
    gradient. ``bits`` = 0 returns ``weight`` unchanged.

    >>> w = torch.tensor([0.9, -0.3, 0.05, 0.0], requires_grad=True)
    >>> q = quantise(w, 3)   # levels: 0, ±0.3, ±0.6, ±0.9
    >>> q.detach()
    tensor([ 0.9000, -0.3000,  0.0000,  0.0000])
    >>> q.sum().backward(); w.grad   # straight through
    tensor([1., 1., 1., 1.])
    """
    if bits == 0:
        return weight
    levels = 2 ** (bits - 1) - 1
    with torch.no_grad():
        step = weight.abs().max().clamp_min(torch.finfo(weight.dtype).tiny) / levels
        rounded = torch.round(weight / step) * step
    return weight + (rounded - weight.detach())
