"""Design figures computed by hand in the tests, independently of ``snnspin.design``."""

import math

import torch


def drive_by_hand(config, model) -> float:
    """I·Δt = S ⟨|W|⟩ √N Δt over the kept hidden weights (inter-layer after the first layer,
    and intra-layer), N the mean kept entries per row of the inter maps plus of the intra maps."""
    inter, intra = list(model.w_ext)[1:], list(model.w_int)
    kept = torch.cat([m.weight.detach()[m.mask].abs() for m in inter + intra])
    mean_rows = lambda maps: sum(m.mask.sum().item() / m.mask.shape[0] for m in maps) / len(maps) if maps else 0.0
    n = mean_rows(inter) + mean_rows(intra)
    return config.gain * kept.mean().item() * math.sqrt(n) * config.delta_t
