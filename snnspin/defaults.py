"""Data-aware defaults: what a training run takes from its data unless the config says otherwise.

The presets were tuned on sklearn's digits: raw pixels 0..16, 898 training series, batch 120,
so 8 optimiser steps per epoch. On other data those numbers mean something else (80 epochs of
60 series at batch 120 are 80 steps, not 640), so ``resolve_for_data`` turns the config's
``auto`` and ``0`` fields into concrete values from the data and returns the config that is
run and recorded in ``config.json``:

- ``n_inputs`` (channels F) and ``n_classes`` (largest label + 1), checked where given;
- ``batch_size`` 0 → the paper's 120 on the digits (whatever the split: tuning on 80 % of the
  training half keeps the protocol the presets were tuned with), and for data files
  min(120, max(8, ⌈N/7⌉)): at least 7 optimiser steps per epoch on small sets;
- ``schedule`` steps (auto: for data files): ``epochs`` and ``lr_decay`` count blocks of
  ``REFERENCE_STEPS`` = 8 optimiser steps (a digits epoch) and are converted to this data's
  epochs, so a preset takes as many optimiser steps, with the same learning-rate decay per
  step, on any data (on the digits at batch 120 the conversion is the identity); auto means
  epochs for the digits, so a digits run keeps its epochs whatever its batch size;
- ``normalize`` auto → none for the digits (the presets were tuned on raw pixels), and for data
  files ``zscore``: each channel shifted and scaled to mean 0 and standard deviation 1 with
  training statistics only. (``digits``, the digits' pixel mean and spread, is the other
  choice; in a development run on three of ``benchmarks/tasks.py``'s tasks (tone, first,
  order; 2 seeds each; not committed) zscore trained the spintronic preset to 41-47 / 95-96 /
  94-99 % and digits to 36-44 / 25-46 / 54-82 %: the digits' larger spread times the preset's
  input scale drives many neurons dead.)
- ``readout_time`` auto (spintronic and CTRNN; the spiking twins read their spikes as
  ``spike_readout`` says) → ``last`` for the digits (the paper's readout, the one the presets
  were tuned with), and for data files ``mean``: the readout reads the last layer's output
  averaged over every step, so that every step gets a share of the gradient. With ``last`` only
  the final step's output does; on ``benchmarks/tasks.py``'s tone task the loss then sat at
  ln C for ~100 optimiser steps while Adam's steps drove 30-60 % of the oscillators dead.
  Spintronic preset, validation (25 % of each task's training part, 2 seeds), last → mean:
  tone 60.0 → 96.0 %, shapes 37.0 → 79.0 %, first 74.5 → 97.5 %, order 91.3 → 97.3 %, taps
  89.2 → 89.2 % (``benchmarks/results/tasks.md`` has the test table). On the digits (20 %
  validation, 2 seeds, mean of the last 5 epochs) mean gives the spintronic preset 92.1 %
  against 90.8 % for last, but the CTRNN preset 87.9 % against 93.9 %: the digits keep last.

- ``init_drive`` -1 (auto) → 1 for the CTRNN on a data file (``snnspin.init.drive_init``: each
  layer's input weights set from a batch of training data so that their drive per input point
  spreads 1, the paper's I·Δt ≈ 1), off (0) otherwise. On ``benchmarks/tasks.py``'s five tasks
  (test halves, 5 seeds) it took the CTRNN preset from 93.9 / 45.5 / 92.0 / 87.7 / 97.5 % (tone
  / shapes / first / order / taps; 2 seeds at chance) to 90.7 / 79.2 / 91.6 / 98.8 / 93.5 %
  (none; ``benchmarks/results/tasks.md``). The spintronic preset gains nothing from it on validation (25 %, 2 seeds: off 95.3 /
  78.5 / 96.5 / 98.7 / 88.0 %; 0.1: 96.7 / 82.0 / 97.0 / 100 / 84.0 %; 1: 86.0 / 64.5 / 97.0 /
  98.7 / 84.0 %), so it stays off there; the digits keep the paper's initialisation.

Resolution is idempotent: a resolved config resolves to itself.
"""

from __future__ import annotations

import math

import torch

from .config import SPIKING, TrainConfig

#: Optimiser steps in one epoch of the digits at batch 120 (⌈898 / 120⌉): the presets' unit.
REFERENCE_STEPS = 8
#: Mean and standard deviation of the digits' pixels (all 1797 images of sklearn's load_digits).
DIGITS_MEAN, DIGITS_STD = 4.884, 6.017


def auto_batch_size(n_series: int) -> int:
    """min(120, max(8, ⌈N/7⌉)): the paper's batch where the data allow 7 steps of it, smaller otherwise.

    >>> auto_batch_size(898), auto_batch_size(100), auto_batch_size(20)
    (120, 15, 8)
    """
    return min(120, max(8, math.ceil(n_series / 7)))


def _check_shapes(config: TrainConfig, x_train, y_train, x_eval, y_eval):
    for x in (x_train, x_eval):
        if x.dim() != 3:
            raise ValueError(f"data must be time first [T, N, F], got shape {tuple(x.shape)}")
    if x_eval.shape[2] != x_train.shape[2]:
        raise ValueError(f"training data have {x_train.shape[2]} channels but evaluation data {x_eval.shape[2]}")
    channels = int(x_train.shape[2])
    if config.n_inputs and config.n_inputs != channels:
        raise ValueError(f"the data have {channels} channels per time point ([T, N, F] = {tuple(x_train.shape)}) "
                         f"but n_inputs = {config.n_inputs}")
    largest = int(max(y_train.max(), y_eval.max()))
    if config.n_classes and largest >= config.n_classes:
        raise ValueError(f"the labels go up to {largest} but n_classes = {config.n_classes} (labels must be "
                         f"0 .. n_classes - 1)")
    return channels, config.n_classes or max(largest + 1, 2)


def resolved_readout_time(model: str, readout_time: str, data: str) -> str:
    """What ``readout_time`` means for a run of ``model`` on ``data`` (a file, or "" for the
    digits): auto → last for the digits and mean for data files (spintronic and CTRNN); the
    spiking twins keep auto (their ``spike_readout`` decides).

    >>> resolved_readout_time("ctrnn", "auto", ""), resolved_readout_time("ctrnn", "auto", "mine.npz")
    ('last', 'mean')
    """
    if readout_time != "auto" or model in SPIKING:
        return readout_time
    return "mean" if data else "last"


#: What ``init_drive`` auto means for the CTRNN on a data file.
AUTO_INIT_DRIVE = 1.0


def resolved_init_drive(model: str, init_drive: float, data: str) -> float:
    """What ``init_drive`` means for a run of ``model`` on ``data`` (a file, or "" for the digits):
    -1 (auto) → ``AUTO_INIT_DRIVE`` for the CTRNN on a data file, 0 (off) otherwise.

    >>> resolved_init_drive("ctrnn", -1, "mine.npz"), resolved_init_drive("spintronic", -1, "mine.npz")
    (1.0, 0.0)
    >>> resolved_init_drive("ctrnn", -1, ""), resolved_init_drive("spintronic", 0.5, "")
    (0.0, 0.5)
    """
    if init_drive != -1:
        return init_drive
    return AUTO_INIT_DRIVE if model == "ctrnn" and data else 0.0


def resolve_for_data(config: TrainConfig, data) -> TrainConfig:
    """``config`` with every data-dependent default made concrete (see the module doc).

    ``data``: ``((x_train [T, N, F], y_train [N]), (x_eval, y_eval))``.

    >>> data = ((torch.zeros(5, 100, 3), torch.arange(100) % 3), (torch.zeros(5, 40, 3), torch.arange(40) % 3))
    >>> c = resolve_for_data(TrainConfig(epochs=80, lr_decay=20.0, data="mine.npz"), data)
    >>> c.n_inputs, c.n_classes, c.batch_size, c.schedule, c.epochs, round(c.lr_decay, 3), c.normalize
    (3, 3, 15, 'epochs', 91, 22.857, 'zscore')
    >>> c.readout_time
    'mean'
    >>> resolve_for_data(c, data) == c
    True
    >>> resolve_for_data(TrainConfig(n_inputs=2), data)
    Traceback (most recent call last):
    ...
    ValueError: the data have 3 channels per time point ([T, N, F] = (5, 100, 3)) but n_inputs = 2
    """
    (x_train, y_train), (x_eval, y_eval) = data
    channels, classes = _check_shapes(config, x_train, y_train, x_eval, y_eval)
    n_series = int(x_train.shape[1])
    batch = config.batch_size or (auto_batch_size(n_series) if config.data else 120)  # the digits: the paper's
    changes = dict(n_inputs=channels, n_classes=classes, batch_size=batch, schedule="epochs")
    if config.schedule == "steps" or (config.schedule == "auto" and config.data):
        per_epoch = math.ceil(n_series / batch)
        ratio = REFERENCE_STEPS / per_epoch
        changes.update(schedule="epochs", epochs=max(1, round(config.epochs * ratio)),
                       lr_decay=config.lr_decay * ratio)
    if config.normalize == "auto":
        changes["normalize"] = "zscore" if config.data else "none"
    changes["readout_time"] = resolved_readout_time(config.model, config.readout_time, config.data)
    changes["init_drive"] = resolved_init_drive(config.model, config.init_drive, config.data)
    return config.replace(**changes)


def input_statistics(config: TrainConfig, x_train: torch.Tensor):
    """(shift, gain) per channel ``[F]`` so that (x - shift) · gain has the moments ``config.normalize``
    asks for, from the training series ``[T, N, F]`` only; None for ``none``. A constant channel
    keeps gain 1.

    >>> shift, gain = input_statistics(TrainConfig(normalize="zscore"), torch.tensor([[[1.0]], [[3.0]]]))
    >>> shift.tolist(), gain.tolist()
    ([2.0], [1.0])
    """
    if config.normalize == "none":
        return None
    if config.normalize == "auto":
        raise ValueError("normalize='auto' must be resolved against the data first (resolve_for_data)")
    flat = x_train.reshape(-1, x_train.shape[-1]).double()
    mean, std = flat.mean(0), flat.std(0, unbiased=False)
    gain = torch.where(std > 0, 1.0 / std, torch.ones_like(std))
    if config.normalize == "digits":  # (x - μ)/σ · σ_d + μ_d = (x - (μ - μ_d σ/σ_d)) · σ_d/σ
        gain = gain * DIGITS_STD
        mean = mean - DIGITS_MEAN / gain
    return mean.to(x_train.dtype), gain.to(x_train.dtype)
