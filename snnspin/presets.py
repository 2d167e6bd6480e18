"""Named starting configurations per model: the paper's published values and tuned ones.

``paper``: the dataclass defaults, i.e. the hyperparameters the paper gives (τ = 14.12 ns,
lr0 = 0.149, lr_decay = 8.077, S = 0.5, batch 120, ...), for every model.

``tuned``: what ``snnspin tune`` found on the validation split (never the test half);
how each was found is recorded beside it. ``snnspin train`` starts from ``tuned``.
"""

from __future__ import annotations

from .config import TrainConfig

#: The paper's reported test accuracy (mean, std over 10 seeds), %.
PAPER_ACCURACY = {"spintronic": (89.83, 2.91), "ctrnn": (89.00, 3.48)}

TUNED = {
    "spintronic": dict(tau=4.5, lr0=0.1, epochs=40),
    "ctrnn": dict(tau=2.0, lr0=0.1, readout="x", epochs=40),
    "lif": dict(tau=4.5, lr0=0.01, epochs=40),
}

#: How the tuned values were obtained (shown by ``snnspin train --help`` and the README).
TUNED_SOURCE = {
    "spintronic": "hand search on the validation split (80/20 of the training half), 1 seed, 40 epochs",
    "ctrnn": "hand search on the validation split (80/20 of the training half), 1 seed, 40 epochs",
    "lif": "not tuned yet: a plausible starting point",
}

PRESETS = ("tuned", "paper")


def preset_config(model: str, preset: str = "tuned", **changes) -> TrainConfig:
    """The config of ``model`` under ``preset`` with ``changes`` applied.

    >>> preset_config("ctrnn", "paper").tau
    14.12
    >>> preset_config("spintronic", "tuned", seeds=10).seeds
    10
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    base = TUNED.get(model, {}) if preset == "tuned" else {}
    return TrainConfig(model=model, **{**base, **changes})
