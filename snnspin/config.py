"""One config dataclass: the contract between the CLI, training and tuning.

It round-trips to JSON and is saved beside every result. Defaults are the paper's
values where the paper gives them (Plouet et al., Sec. II-III); the rest are documented
choices for what the paper leaves open.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

MODELS = ("spintronic", "ctrnn", "lif", "alif")
#: The spiking twins: snnTorch LIF neurons and adaptive-threshold LIF neurons (``snnspin.nn.ALIF``).
SPIKING = ("lif", "alif")
SPIKE_READOUTS = ("last", "mean", "max")
SURROGATES = ("atan", "fast_sigmoid", "sigmoid")
READOUTS = ("y", "x")
READOUT_TIMES = ("auto", "last", "mean")


def _f(default, help_text: str, choices=None, paper: bool = False):
    """A field with its help text, allowed values and whether its default is the paper's."""
    return field(default=default, metadata={"help": help_text, "choices": choices, "paper": paper})


#: What ``device`` may name; whether the machine has it is checked when training starts.
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICES = "auto, cpu, cuda, cuda:<index>, mps"
#: The largest device spread ``mismatch`` accepts: with draws clipped at 3 standard deviations,
#: every τ stays above half its design value and every σ above 0.5 (below it the rest point is x = 0).
MAX_MISMATCH = 0.15


def _checked(name: str, kind: str, value):
    """``value`` checked against the field's type (``kind``: "bool", "int", "float", "str"),
    ints converted to float for float fields; ``ValueError`` naming field and value otherwise."""
    if kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise ValueError(f"{name} must be true or false (a JSON boolean), got {value!r}")
    if kind == "int":
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if kind == "float":
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value):
            return float(value)
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


@dataclass
class TrainConfig:
    """Everything that defines a training run (units: ns, 1/ns, MHz).

    >>> cfg = TrainConfig(model="ctrnn", epochs=3)
    >>> TrainConfig.from_json(cfg.to_json()) == cfg
    True
    """

    model: str = _f("spintronic", "network: spintronic oscillators, their CTRNN twin, or snnTorch LIF", MODELS)
    layers: int = _f(3, "number of recurrent layers", paper=True)
    width: int = _f(32, "neurons per layer", paper=True)
    d_inter: float = _f(0.5, "inter-layer connection density", paper=True)
    d_intra: float = _f(0.5, "intra-layer connection density", paper=True)
    tau: float = _f(14.12, "neuron relaxation time τ in ns", paper=True)
    delta_t: float = _f(1.0, "time between input points Δt in ns", paper=True)
    substeps: int = _f(1, "network solver steps per input point (dt = Δt / substeps); the spiking twins take the "
                          "whole input at every step (snnTorch's convention, no dt factor), so for them more steps "
                          "make a faster-clocked network, not a finer solver of the same one")
    method: str = _f("exact", "neuron stepper", ("exact", "euler", "rk4"))
    learn_tau: bool = _f(False, "train each layer's relaxation time τ (one per neuron) with the weights")
    gain: float = _f(0.5, "amplification S between layers", paper=True)
    f_cut_mhz: float = _f(1.0, "high-pass cut-off frequency in MHz", paper=True)
    x_min: float = _f(0.0, "a floor on each oscillator's power x after every step, in [0, 1) (as a thermal floor "
                           "keeps a real oscillator's power above 0; lets a neuron driven dead recover); 0: none")
    thermal_power: float = _f(0.0, "thermal noise on each oscillator's power: x_th = k_B T / E_0 in [0, 1), the mean "
                                    "power a passive oscillator keeps; 0: none")
    mismatch: float = _f(0.0, "device-to-device spread: relative standard deviation of each neuron's τ (and, for the "
                              "oscillators, σ and Q), drawn once per chip, in [0, 0.15]; 0: identical devices")
    chip_seed: int = _f(0, "seed of the chip: its devices' mismatch draw (and the evaluation's noise)")
    chip_draw: str = _f("fixed", "training against device spread: fixed (the one chip chip_seed) or batch (a fresh "
                                 "chip and noise draw for every batch; evaluation on chip chip_seed)",
                        ("fixed", "batch"))
    weight_bits: int = _f(0, "synaptic precision: weights quantised to this many bits (symmetric, uniform, per "
                             "matrix; straight-through gradient), 2-16; 0: full precision")
    learn_beta: bool = _f(False, "spiking twins (lif, alif): train each neuron's membrane decay β (one per neuron, "
                                 "snnTorch's learn_beta), the readout integrator's too")
    spike_readout: str = _f("last", "spiking twins: what the logits are: last (a leaky integrator of the last layer's "
                                    "spikes, read after the last step), mean (the readout of the spikes averaged over "
                                    "the sequence), max (the integrator's largest value over the sequence)",
                            SPIKE_READOUTS)
    surrogate: str = _f("atan", "spiking twins: snnTorch's surrogate gradient of the spike", SURROGATES)
    detach_reset: bool = _f(True, "spiking twins: stop the gradient at the reset (snnTorch's Leaky always does); "
                                  "False lets the spike's surrogate gradient flow through the reset (and ALIF's "
                                  "adaptation trace), as SpikingJelly's detach_reset=False and the LSNN's code")
    readout_tau: float = _f(0.0, "spiking twins: relaxation time in ns of the readout's leaky integrator (last and "
                                 "max readouts), its own memory of the last layer's spikes; 0: the neurons' τ")
    surrogate_slope: float = _f(0.0, "spiking twins: the surrogate's slope (0: snnTorch's default, atan 2, "
                                     "fast_sigmoid and sigmoid 25)")
    adapt_tau: float = _f(50.0, "alif: relaxation time τ_a of the adaptive threshold, ns")
    adapt_strength: float = _f(1.8, "alif: threshold increase b_a of a neuron firing at every step (the adaptation "
                                    "trace is a running average of the spikes, as in the LSNN; 0: plain LIF)")
    readout: str = _f("y", "what the readout reads from the last layer: filtered output y or state x", READOUTS)
    readout_time: str = _f("auto", "spintronic and ctrnn: when the readout reads the last layer: last (after the last "
                                   "step, the paper's) or mean (its average over every step of the sequence); auto: "
                                   "last for the digits (the presets were tuned on it), mean for data files",
                           READOUT_TIMES)
    input_scale: float = _f(1.0, "factor on the raw pixels 0..16 (1 = raw, 1/16 = [0, 1])")
    init_scale: float = _f(1.0, "factor on the uniform ±1/sqrt(fan_in) weight initialisation")
    init_drive: float = _f(-1.0, "spintronic and ctrnn: if > 0, scale each layer's input weights (and centre its "
                                 "bias) from a batch of training data so that the drive per input point from the "
                                 "layer below, S·W_ext·u·Δt, spreads this much (the paper's rule I·Δt ≈ 1), with "
                                 "at most 1 in 50 neurons starting dead (snnspin.init); init_scale then sets the "
                                 "recurrent weights (shrunk with the input weights while neurons start dead), and "
                                 "input_scale multiplies the first layer's spread; 0: "
                                 "off; -1: auto, 1 for the ctrnn on a data file, off otherwise")
    epochs: int = _f(30, "training epochs")
    lr0: float = _f(0.149, "initial learning rate", paper=True)
    lr_decay: float = _f(8.077, "lr = lr0 / (epoch / lr_decay + 1)", paper=True)
    batch_size: int = _f(0, "batch size; 0: from the data, min(120, max(8, ceil(N/7))): the paper's 120 for the "
                            "digits, and at least 7 optimiser steps per epoch on smaller sets")
    schedule: str = _f("auto", "what epochs and lr_decay count: epochs of this data, or steps: blocks of 8 optimiser "
                               "steps (one digits epoch at batch 120), converted to this data's epochs; auto: steps "
                               "for data files, epochs for the digits; an explicit --epochs means epochs",
                       ("auto", "epochs", "steps"))
    normalize: str = _f("auto", "input normalisation per channel from the training part: none, zscore (mean 0, "
                                "std 1) or digits (the mean 4.88 and std 6.02 of the pixels the presets were tuned "
                                "on); auto: none for the digits, zscore for data files", ("auto", "none", "zscore",
                                                                                         "digits"))
    clip: float = _f(1.0, "clip each gradient element to ±clip", paper=True)
    seeds: int = _f(1, "number of random initialisations (seeds first_seed, first_seed+1, ...)")
    first_seed: int = _f(0, "first initialisation seed")
    split_seed: int = _f(0, "seed of the stratified 50/50 train/test split")
    order: str = _f("row", "pixel scan order of the digits", ("row", "column", "snake"), paper=True)
    data: str = _f("", "a .npz file of your own series: x [N, T, F], y [N] (optional x_test, y_test); "
                       "empty: sklearn's digits")
    n_inputs: int = _f(0, "channels per time point F; 0: from the data (1 for the digits)")
    n_classes: int = _f(0, "number of classes C; 0: from the data (10 for the digits)")
    val_fraction: float = _f(0.0, "if > 0, evaluate on this fraction of the training half instead of the test half")
    engine: str = _f("auto", "time loop: fused (fast: the exact stepper's fused kernels; for the spiking twins one lean "
                             "loop of the same equations), reference (per-step layers), auto (fused when it applies)",
                     ("auto", "fused", "reference"))
    device: str = _f("auto", "torch device: auto (CUDA when present), cpu, cuda, cuda:<index>, mps")
    checkpoint_every: int = _f(0, "long sequences: BPTT recomputes the forward pass in segments of this many input "
                                  "points and stores one segment's activations at a time (the same gradients, "
                                  "about one more forward pass of time; fused path only); 0: store the whole "
                                  "sequence")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field with a bad value (one line: the field,
        the value, what is expected). Types are checked, not coerced: bools must be bools,
        ints ints, floats finite numbers (an int is accepted for a float and stored as float).

        >>> TrainConfig(tau=3).tau
        3.0
        >>> TrainConfig(epochs=1.5)
        Traceback (most recent call last):
        ...
        ValueError: epochs must be an integer, got 1.5
        >>> TrainConfig(lr0=float("inf"))
        Traceback (most recent call last):
        ...
        ValueError: lr0 must be a finite number, got inf
        """
        for f in fields(self):
            value = _checked(f.name, f.type, getattr(self, f.name))
            setattr(self, f.name, value)
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(choices)}, got {value!r}")
        if self.batch_size < 0:
            raise ValueError(f"batch_size must be >= 1 (or 0: from the data), got {self.batch_size}")
        for name in ("layers", "width", "substeps", "epochs", "seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_inputs", "n_classes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: from the data), got {getattr(self, name)}")
        if self.n_classes == 1:
            raise ValueError("n_classes must be >= 2 (or 0: from the data), got 1")
        if self.data and self.order != "row":
            raise ValueError(f"order={self.order!r} scans the digits' images; it does not apply to data={self.data!r}")
        if not 0 <= self.split_seed < 2**32:
            raise ValueError(f"split_seed must be in [0, 2**32 - 1], got {self.split_seed}")
        for name in ("tau", "delta_t", "gain", "f_cut_mhz", "lr0", "lr_decay", "clip", "init_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.x_min < 1.0:
            raise ValueError(f"x_min must be in [0, 1), got {self.x_min}")
        if not 0.0 <= self.thermal_power < 1.0:
            raise ValueError(f"thermal_power must be in [0, 1), got {self.thermal_power}")
        if self.thermal_power and self.model != "spintronic":
            raise ValueError(f"thermal_power (noise on the oscillators' power) does not apply to the {self.model} model")
        if not 0.0 <= self.mismatch <= MAX_MISMATCH:
            raise ValueError(f"mismatch must be in [0, {MAX_MISMATCH}] (a relative spread; beyond it devices "
                             f"stop oscillating), got {self.mismatch}")
        if self.mismatch and self.model in SPIKING:
            raise ValueError(f"mismatch (device spread) applies to the spintronic and CTRNN models, not {self.model}")
        if self.mismatch and self.learn_tau:
            raise ValueError("mismatch fixes each device's τ on the chip; it cannot be combined with learn_tau")
        if not 0 <= self.chip_seed < 2**32:
            raise ValueError(f"chip_seed must be in [0, 2**32 - 1], got {self.chip_seed}")
        if self.chip_draw != "fixed" and not self.mismatch:
            raise ValueError(f"chip_draw={self.chip_draw!r} draws chips with a device spread: set mismatch > 0")
        if self.chip_seed and not (self.mismatch or self.thermal_power):
            raise ValueError("chip_seed draws a chip's spread and noise: it needs mismatch or thermal_power > 0")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0 (0: no recomputation), got {self.checkpoint_every}")
        if self.checkpoint_every and (self.model in SPIKING or self.engine == "reference"):
            raise ValueError("checkpoint_every recomputes segments of the oscillators' and CTRNN's fused path, which "
                             f"{'the ' + self.model + ' model has not' if self.model in SPIKING else 'engine=reference does not use'}")
        if self.weight_bits != 0 and not 2 <= self.weight_bits <= 16:
            raise ValueError(f"weight_bits must be 0 (full precision) or in [2, 16], got {self.weight_bits}")
        defaults = {f.name: f.default for f in fields(self)}
        if self.model not in SPIKING:
            for name in ("learn_beta", "spike_readout", "surrogate", "surrogate_slope", "readout_tau", "detach_reset"):
                if getattr(self, name) != defaults[name]:
                    raise ValueError(f"{name} applies to the spiking twins ({', '.join(SPIKING)}), not the "
                                     f"{self.model} model")
        if self.model in SPIKING and self.readout_time != "auto":
            raise ValueError(f"readout_time applies to the spintronic and ctrnn models; the {self.model} model reads "
                             "its spikes as spike_readout says")
        if self.model != "alif":
            for name in ("adapt_tau", "adapt_strength"):
                if getattr(self, name) != defaults[name]:
                    raise ValueError(f"{name} applies to the alif model only, not {self.model}")
        if self.readout_tau < 0:
            raise ValueError(f"readout_tau must be > 0 (or 0: the neurons' τ), got {self.readout_tau}")
        if self.surrogate_slope < 0:
            raise ValueError(f"surrogate_slope must be > 0 (or 0: the default), got {self.surrogate_slope}")
        if not self.adapt_tau > 0:
            raise ValueError(f"adapt_tau must be > 0, got {self.adapt_tau}")
        if self.adapt_strength < 0:
            raise ValueError(f"adapt_strength must be >= 0, got {self.adapt_strength}")
        if not (0 <= self.init_drive <= 100 or self.init_drive == -1):  # NaN fails too
            raise ValueError(f"init_drive must be in [0, 100] (0: off; the paper's rule is 1) or -1 (auto), got "
                             f"{self.init_drive}")
        if self.init_drive > 0 and self.model in SPIKING:
            raise ValueError(f"init_drive sets the spintronic and ctrnn models' drive; the {self.model} model's "
                             "threshold sets its own scale")
        if self.x_min and self.model != "spintronic":
            raise ValueError(f"x_min (a floor on the oscillators' power) does not apply to the {self.model} model")
        for name in ("d_inter", "d_intra"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")

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
    def check_fields(cls, data, source: str | None = None) -> dict:
        """``data`` if it is a dict of known field names; else ``ValueError`` (naming ``source``).

        >>> TrainConfig.check_fields([1, 2], "c.json")
        Traceback (most recent call last):
        ...
        ValueError: config c.json: must be a JSON object of config fields, got a list
        """
        where = f"config {source}: " if source else ""
        if not isinstance(data, dict):
            raise ValueError(f"{where}must be a JSON object of config fields, got {_kind(data)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise ValueError(f"{where}unknown config fields: {', '.join(unknown)}")
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> "TrainConfig":
        """A validated config from a dict of fields (the missing ones take their defaults);
        errors are one ``ValueError`` line naming ``source`` (e.g. the file) when given.

        >>> TrainConfig.from_dict({"tau": "abc"}, source="c.json")
        Traceback (most recent call last):
        ...
        ValueError: config c.json: tau must be a finite number, got 'abc'
        """
        data = cls.check_fields(data, source)
        try:
            return cls(**data)
        except ValueError as error:
            raise ValueError(f"config {source}: {error}" if source else str(error)) from None

    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> "TrainConfig":
        """A config from JSON text (see ``from_dict``).

        >>> TrainConfig.from_json('{"width": 8}').width
        8
        """
        return cls.from_dict(read_config_fields_text(text, source), source)

    @classmethod
    def load(cls, path) -> "TrainConfig":
        """Read a config JSON file (``config.json`` of a run, ``best_config.json`` of a study).

        Every problem (missing file, a folder, invalid JSON, not an object, a bad field) is
        one ``ValueError`` line that names the file.

        >>> TrainConfig.load("/no/such/config.json")
        Traceback (most recent call last):
        ...
        ValueError: config /no/such/config.json: no such file
        """
        return cls.from_dict(read_config_fields(path), str(path))

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated).

        >>> TrainConfig().replace(width=8).width
        8
        """
        self.check_fields(changes)
        return dataclasses.replace(self, **changes)


def _kind(value) -> str:
    return {list: "a list", str: "a string", type(None): "null", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def read_config_fields_text(text: str, source: str | None = None) -> dict:
    """The fields of a config given as JSON text: a dict of known names (not yet validated).

    >>> read_config_fields_text('{"tau": 2.0}')
    {'tau': 2.0}
    >>> read_config_fields_text('{"tau": 2.0', "c.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: config c.json: not valid JSON (Expecting ',' delimiter: line 1 column 12 ...)
    """
    where = f"config {source}: " if source else ""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}not valid JSON ({error})") from None
    return TrainConfig.check_fields(data, source)


def read_config_fields(path) -> dict:
    """The fields set by a config JSON file (a dict of known names, values not yet
    validated): a partial file gives only its own fields. Errors name the file.

    >>> import tempfile
    >>> read_config_fields(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: config ...: is a folder, not a JSON file
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"config {path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"config {path}: is a folder, not a JSON file") from None
    except UnicodeDecodeError:
        raise ValueError(f"config {path}: not a text file (not UTF-8)") from None
    except OSError as error:
        raise ValueError(f"config {path}: cannot be read ({error.strerror or error})") from None
    return read_config_fields_text(text, str(path))
