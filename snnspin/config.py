"""One config dataclass: the contract between the CLI, training and tuning.

It round-trips to JSON and is saved beside every result. Defaults are the paper's
values where the paper gives them (Plouet et al., Sec. II-III); the rest are documented
choices for what the paper leaves open.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields

MODELS = ("spintronic", "ctrnn", "lif")
READOUTS = ("y", "x")


def _f(default, help_text: str, choices=None):
    return field(default=default, metadata={"help": help_text, "choices": choices})


@dataclass
class TrainConfig:
    """Everything that defines a training run (units: ns, 1/ns, MHz).

    >>> cfg = TrainConfig(model="ctrnn", epochs=3)
    >>> TrainConfig.from_json(cfg.to_json()) == cfg
    True
    """

    model: str = _f("spintronic", "network: spintronic oscillators, their CTRNN twin, or snnTorch LIF", MODELS)
    layers: int = _f(3, "number of recurrent layers (paper: 3)")
    width: int = _f(32, "neurons per layer (paper: 32)")
    d_inter: float = _f(0.5, "inter-layer connection density (paper: 0.5)")
    d_intra: float = _f(0.5, "intra-layer connection density (paper: 0.5)")
    tau: float = _f(14.12, "neuron relaxation time τ in ns (paper: 14.12)")
    delta_t: float = _f(1.0, "time between input points Δt in ns (paper: 1)")
    substeps: int = _f(1, "network solver steps per input point (dt = Δt / substeps)")
    method: str = _f("exact", "neuron stepper", ("exact", "euler", "rk4"))
    learn_tau: bool = _f(False, "train each layer's relaxation time τ (one per neuron) with the weights")
    gain: float = _f(0.5, "amplification S between layers (paper: 0.5)")
    f_cut_mhz: float = _f(1.0, "high-pass cut-off frequency in MHz (paper: 1)")
    readout: str = _f("y", "what the readout reads from the last layer: filtered output y or state x", READOUTS)
    input_scale: float = _f(1.0, "factor on the raw pixels 0..16 (1 = raw, 1/16 = [0, 1])")
    init_scale: float = _f(1.0, "factor on the uniform ±1/sqrt(fan_in) weight initialisation")
    epochs: int = _f(30, "training epochs")
    lr0: float = _f(0.149, "initial learning rate (paper: 0.149)")
    lr_decay: float = _f(8.077, "lr = lr0 / (epoch / lr_decay + 1) (paper: 8.077)")
    batch_size: int = _f(120, "batch size (paper: 120)")
    clip: float = _f(1.0, "clip each gradient element to ±clip (paper: 1)")
    seeds: int = _f(1, "number of random initialisations (seeds first_seed, first_seed+1, ...)")
    first_seed: int = _f(0, "first initialisation seed")
    split_seed: int = _f(0, "seed of the stratified 50/50 train/test split")
    order: str = _f("row", "pixel scan order", ("row", "column", "snake"))
    val_fraction: float = _f(0.0, "if > 0, evaluate on this fraction of the training half instead of the test half")
    engine: str = _f("auto", "time loop: fused (fast, exact stepper), reference (per-step layers), auto (fused when it applies)",
                     ("auto", "fused", "reference"))
    device: str = _f("auto", "torch device: auto (CUDA when present), cpu, cuda")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field with a bad value."""
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        for name in ("layers", "width", "substeps", "epochs", "batch_size", "seeds"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("tau", "delta_t", "gain", "f_cut_mhz", "lr0", "lr_decay", "clip", "init_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("d_inter", "d_intra"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    @property
    def dt(self) -> float:
        """Solver step in ns: Δt / substeps."""
        return self.delta_t / self.substeps

    def seed_list(self) -> list[int]:
        """The initialisation seeds of this run."""
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path) -> "TrainConfig":
        """Read a config JSON file (``config.json`` of a run, ``best_config.json`` of a study)."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_json(handle.read())

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)
