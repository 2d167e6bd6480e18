"""Multi-task benchmark: do the defaults train well on tasks they were never tuned on?

Five synthetic time-series classification tasks, generated offline from fixed seeds, each
with an official train/test split (the two parts are drawn from different seeds). They are
written in snnspin's own-data format (``x`` [N, T, F] float, ``y`` [N] labels 0..C-1,
``x_test``, ``y_test``) and, like real sensor recordings, are in raw units that are *not*
normalised: offsets and scales differ by about six orders of magnitude between tasks and
by 250× between the channels of one task, so whatever normalises (or fails to normalise)
the inputs shows.

==========  ==  ==  ===  =========  ====================================================
task         F   C    T  train/test what decides the class
==========  ==  ==  ===  =========  ====================================================
tone         2   3   80    300/300  frequency (3 bands, ±10 % jitter) of a noisy sine hidden in one of
                                    the two channels (which one is random; the other carries noise of
                                    the same power); values 500 + 100·signal, like a sensor with an
                                    offset in the hundreds
shapes       1   4   64    400/400  waveform: sine, square, triangle or sawtooth, random frequency
                                    (2.7-8 cycles), phase, amplitude (×4 range), offset and noise
                                    (30 % of the amplitude); values around 1e-3 (volts from a pickup)
first        4   4   60    400/400  which of 4 channels fires a pulse first; every channel fires later
                                    (2-20 steps after) and adds 0-2 distractor pulses; channel gains
                                    0.2, 1, 5, 50 and offsets -3 to 200
order        2   2   60    300/400  temporal order / memory: one event per channel in steps 5-30;
                                    class = whether channel 0's event precedes channel 1's; 30+ steps
                                    of noise follow before the readout; channel 0 in °C (20 + 2·s),
                                    channel 1 in volts (0.05·s - 1)
taps         3   5  100    500/500  counting: 1-5 knocks (2-5 m/s², mostly vertical) under a 3-axis
                                    accelerometer lying roughly flat (gravity 9.81 m/s², tilted by
                                    ~10°), a slow sway in a random direction and noise; class =
                                    number of knocks - 1
==========  ==  ==  ===  =========  ====================================================

Why these: they test different abilities (spectral content beside a distractor channel,
shape within a period, cross-channel latency, memory of an order, counting over the whole
sequence), cover 1-4 channels and 2-5 classes (none with 10), lengths 60-100 and training
sets of 300-500 series, as small public sets are (UCR/UEA-sized). Measured when they were
chosen (seed 0-1 or 0-4, 80 epochs' worth of steps at batch 120): a logistic regression on
per-channel summary statistics (mean, std, min, max, std and mean |.| of the steps) reaches
47 / 84 / 28 / 49 / 66 % (tone / shapes / first / order / taps; chance 33 / 25 / 25 / 50 /
20), the reference GRU 90 / 79 / 94-99 / 98-99 (one seed of five at 56) / 97 %. Only shapes
is about as easy from summary statistics as from the sequence; the others need the order of
the points.

For each task the script trains, with the library's defaults and no per-task setting (only
``data=`` and ``seeds=``), the spintronic network (``preset_config("spintronic", data=...)``
and ``snnspin.training.train``), its CTRNN twin (``preset_config("ctrnn", ...)``), and a
reference ``torch.nn.GRU``: 1 layer of 32 units, readout a linear map of the last hidden
state, inputs z-normalised per channel with the training part's statistics, Adam with a
constant learning rate of 1e-2, gradient norm clipped at 1, and the same batch size and
number of optimiser steps as the spintronic run used (read back from its ``config.json`` and
``history.json``, since snnspin may choose them from the data), trained on one CPU thread
(faster than two for a network this small). 5 seeds each (0-4).

Reported per task and model: mean ± std test accuracy over the seeds, min, max, how many
seeds are stuck at chance (test accuracy ≤ 100/C + 5 points), the chance level, the wall
time, and the difference to the GRU's mean. Written to ``<out>/tasks.md``, ``tasks.csv`` and
``tasks.png``.

Run (from the repository root):

    python benchmarks/tasks.py                         # everything: 5 tasks × 3 models × 5 seeds
    python benchmarks/tasks.py --tasks tone order --models spintronic gru --seeds 3
    python benchmarks/tasks.py --fast                  # smoke test: tiny sets, 2 epochs, under a minute
    python benchmarks/tasks.py --threads 1             # on a busy 2-core machine: several times faster

Runs go to ``runs/tasks/<task>/<model>/`` (``--work``), the generated files to
``runs/tasks/data/<task>.npz``. Rerunning after an interruption resumes unfinished runs and
skips finished ones (those with ``summary.json``); ``--fresh`` deletes the selected runs
first, which is needed after the library changed (a finished run trained by other snnspin
sources is reported with a warning).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import snnspin
from snnspin.config import TrainConfig
from snnspin.presets import preset_config
from snnspin.training import train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "runs" / "tasks"
MODELS = ("spintronic", "ctrnn", "gru")
SNN_MODELS = ("spintronic", "ctrnn")
STUCK_MARGIN = 5.0  # points above chance (100/C) at or below which a seed counts as stuck

#: The reference GRU (documented in the module docstring).
GRU = dict(hidden=32, layers=1, lr=1e-2, clip_norm=1.0)

#: What ``--fast`` changes, for every task and model alike: tiny sets and 2 epochs.
FAST_SIZES = dict(n_train=48, n_test=48)
FAST_SNNSPIN = dict(epochs=2)
FAST_SEEDS = 2


# --------------------------------------------------------------------------------------------
# The tasks


def _balanced_labels(rng, n: int, classes: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % classes)


def _pulse(t: np.ndarray, centre, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - centre) / width) ** 2)


def _tone(rng, n: int, length: int):
    """3 classes by the frequency of a noisy sine in one of 2 channels; offset 500, scale 100."""
    y = _balanced_labels(rng, n, 3)
    t = np.arange(length)
    freq = np.array([0.05, 0.085, 0.13])[y] * rng.uniform(0.9, 1.1, n)  # cycles per step
    amp = rng.uniform(0.5, 1.5, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    tone = amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t + phase[:, None]) + rng.normal(0, 0.6, (n, length))
    noise = rng.normal(0, 1.0, (n, length)) * np.sqrt(amp**2 / 2 + 0.36)[:, None]  # same power as the tone channel
    channel = rng.integers(0, 2, n)
    x = np.where(channel[:, None, None] == np.arange(2), tone[:, :, None], noise[:, :, None])
    drift = np.cumsum(rng.normal(0, 0.03, (n, length, 2)), axis=1)  # a slow wander of each sensor's baseline
    offset = rng.normal(0, 0.2, (n, 1, 2))
    return 500.0 + 100.0 * (x + drift + offset), y


def _shapes(rng, n: int, length: int):
    """4 waveforms (sine, square, triangle, sawtooth), 1 channel, around 1e-3."""
    y = _balanced_labels(rng, n, 4)
    t = np.arange(length)
    freq = rng.uniform(1 / 24, 1 / 8, n)
    cycle = (freq[:, None] * t + rng.uniform(0, 1, n)[:, None]) % 1.0  # phase in [0, 1)
    waves = np.stack([
        np.sin(2 * np.pi * cycle),
        np.where(cycle < 0.5, 1.0, -1.0),
        1.0 - 4.0 * np.abs(cycle - 0.5),
        2.0 * cycle - 1.0,
    ])  # [4, n, T]
    wave = waves[y, np.arange(n)]
    amp = rng.uniform(0.5, 2.0, n)[:, None]
    signal = 2.0 + rng.uniform(-1, 1, n)[:, None] + amp * (wave + rng.normal(0, 0.3, (n, length)))
    return 1e-3 * signal[:, :, None], y


def _first(rng, n: int, length: int):
    """Which of 4 channels fires first; later pulses and distractors in every channel."""
    y = _balanced_labels(rng, n, 4)
    t = np.arange(length)
    x = rng.normal(0, 0.15, (n, length, 4))
    for i in range(n):
        start = rng.integers(4, 31)
        for channel in range(4):
            first = start if channel == y[i] else start + rng.integers(2, 21)
            times = [first] + list(rng.integers(first + 3, length - 2, rng.integers(0, 3)))
            for centre in times:
                x[i, :, channel] += rng.uniform(0.7, 1.3) * _pulse(t, centre, 1.0)
    gain = np.array([1.0, 5.0, 0.2, 50.0])
    offset = np.array([0.0, 10.0, -3.0, 200.0])
    return offset + gain * x, y


def _order(rng, n: int, length: int):
    """Whether channel 0's early event precedes channel 1's; a long delay before the readout."""
    y = _balanced_labels(rng, n, 2)
    t = np.arange(length)
    x = rng.normal(0, 0.2, (n, length, 2))
    for i in range(n):
        while True:
            a, b = rng.integers(5, 31, 2)
            if abs(a - b) >= 4:
                break
        early, late = min(a, b), max(a, b)
        times = (early, late) if y[i] == 0 else (late, early)  # class 0: channel 0 first
        for channel, centre in enumerate(times):
            x[i, :, channel] += rng.uniform(0.8, 1.2) * _pulse(t, centre, rng.uniform(1.0, 2.0))
    return np.stack([20.0 + 2.0 * x[:, :, 0], 0.05 * x[:, :, 1] - 1.0], axis=-1), y


def _taps(rng, n: int, length: int):
    """Count 1-5 knocks on a table under a 3-axis accelerometer, with gravity, sway and noise."""
    y = _balanced_labels(rng, n, 5)
    t = np.arange(length)
    gravity = np.array([0.0, 0.0, 9.81]) + rng.normal(0, 0.15 * 9.81, (n, 3))  # lying roughly flat
    gravity *= 9.81 / np.linalg.norm(gravity, axis=1, keepdims=True)
    sway_dir = rng.normal(size=(n, 3))
    sway_dir /= np.linalg.norm(sway_dir, axis=1, keepdims=True)
    sway = rng.uniform(0.3, 1.0, n)[:, None] * np.sin(
        2 * np.pi * t / rng.uniform(30, 60, n)[:, None] + rng.uniform(0, 2 * np.pi, n)[:, None])
    x = gravity[:, None, :] + sway[:, :, None] * sway_dir[:, None, :] + rng.normal(0, 0.2, (n, length, 3))
    for i in range(n):
        while True:  # knocks at least 8 steps apart
            times = np.sort(rng.choice(np.arange(5, length - 6), y[i] + 1, replace=False))
            if len(times) < 2 or np.diff(times).min() >= 8:
                break
        for centre in times:  # mostly vertical, a little sideways
            direction = np.array([0.3, 0.3, 1.0]) * np.append(rng.normal(size=2), 1.0)
            direction /= np.linalg.norm(direction)
            x[i] += rng.uniform(2.0, 5.0) * _pulse(t, centre, 1.0)[:, None] * direction[None, :]
    return x, y


@dataclass(frozen=True)
class Task:
    """A synthetic task: its generator, sizes and the seed of its official split."""

    name: str
    n_inputs: int
    n_classes: int
    length: int
    n_train: int
    n_test: int
    seed: int
    generate: Callable
    summary: str

    @property
    def chance(self) -> float:
        return 100.0 / self.n_classes

    def arrays(self, fast: bool = False) -> dict:
        """The task's arrays in snnspin's own-data format; train and test from different seeds."""
        sizes = FAST_SIZES if fast else dict(n_train=self.n_train, n_test=self.n_test)
        x, y = self.generate(np.random.default_rng([self.seed, 0]), sizes["n_train"], self.length)
        x_test, y_test = self.generate(np.random.default_rng([self.seed, 1]), sizes["n_test"], self.length)
        arrays = dict(x=x.astype(np.float64), y=y.astype(np.int64), x_test=x_test.astype(np.float64),
                      y_test=y_test.astype(np.int64))
        assert arrays["x"].shape[1:] == (self.length, self.n_inputs) and arrays["y"].max() == self.n_classes - 1
        return arrays


TASKS = {task.name: task for task in (
    Task("tone", 2, 3, 80, 300, 300, 101, _tone,
         "frequency of a noisy sine hidden in one of 2 channels (other: noise of equal power), ~500 ± 100s"),
    Task("shapes", 1, 4, 64, 400, 400, 102, _shapes,
         "sine / square / triangle / sawtooth, random frequency, phase, amplitude, offset, noise, ~1e-3"),
    Task("first", 4, 4, 60, 400, 400, 103, _first,
         "which of 4 channels pulses first, later pulses and distractors everywhere, gains 0.2-50, offsets to 200"),
    Task("order", 2, 2, 60, 300, 400, 104, _order,
         "whether channel 0's early event precedes channel 1's, 30+ steps of delay, °C and volts"),
    Task("taps", 3, 5, 100, 500, 500, 105, _taps,
         "number of knocks (1-5) under a 3-axis accelerometer with gravity, sway and noise, m/s²"),
)}


def write_task(task: Task, folder: Path, fast: bool = False) -> Path:
    """Generate ``task`` into ``folder/<name>.npz``; an identical existing file is kept untouched."""
    path = folder / f"{task.name}.npz"
    arrays = task.arrays(fast)
    if path.exists():
        with np.load(path) as old:
            if set(old.files) == set(arrays) and all(np.array_equal(old[k], v) for k, v in arrays.items()):
                return path
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    part = path.with_suffix(".npz.part")
    part.write_bytes(buffer.getvalue())
    os.replace(part, path)
    return path


# --------------------------------------------------------------------------------------------
# Bookkeeping shared by the models


def _read_json(path: Path):
    return json.loads(Path(path).read_text())


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(path.suffix + ".part")
    part.write_text(json.dumps(obj, indent=1))
    os.replace(part, path)


def snnspin_source_hash() -> str:
    """A hash of snnspin's sources: a finished run trained by other sources is flagged."""
    digest = hashlib.sha256()
    package = Path(snnspin.__file__).parent
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".c", ".h")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _source_description() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return f"snnspin {snnspin_source_hash()}" + (f" (git {head})" if head else "")


def _check_source(run: Path, what: str) -> None:
    marker = run / "benchmark.json"
    if marker.exists() and _read_json(marker).get("snnspin_source") != snnspin_source_hash():
        print(f"  warning: {what} in {run} was trained with other snnspin sources; --fresh redoes it", flush=True)


def _mark_source(run: Path) -> None:
    if not (run / "benchmark.json").exists():
        _write_json(run / "benchmark.json", {"snnspin_source": snnspin_source_hash()})


def optimiser_budget(run: Path, n_train: int) -> tuple[int, int]:
    """(optimiser steps, batch size) that the snnspin run in ``run`` used.

    The batch size is ``config.json``'s; the steps are the epochs trained (seed 0's
    ``history.json``, else the config's ``epochs``) × ⌈n_train / batch⌉, since every snnspin
    epoch is one pass over the shuffled training part in batches, the last one smaller.
    """
    config = _read_json(run / "config.json")
    batch = int(config.get("batch_size") or 0)
    if batch <= 0:
        print(f"  warning: {run / 'config.json'} records no batch size; the GRU uses min(120, N)", flush=True)
    batch = min(batch, n_train) if batch > 0 else min(120, n_train)
    histories = sorted(run.glob("seed_*/history.json"))
    epochs = len(_read_json(histories[0])) if histories else int(config["epochs"])
    return epochs * math.ceil(n_train / batch), batch


# --------------------------------------------------------------------------------------------
# snnspin models


def _settings(items) -> dict:
    """``["spintronic:x_min=0.01", ...]`` → {"spintronic": {"x_min": 0.01}}, each value parsed by its field's type.

    >>> _settings(["spintronic:x_min=0.01"])
    {'spintronic': {'x_min': 0.01}}
    """
    kinds = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    out: dict = {}
    for item in items:
        model, _, assignment = item.partition(":")
        name, _, value = assignment.partition("=")
        if model not in MODELS or name not in kinds or not value:
            raise SystemExit(f"error: --set {item!r}: expected MODEL:FIELD=VALUE with MODEL one of {', '.join(MODELS)}")
        out.setdefault(model, {})[name] = {"int": int, "float": float, "bool": lambda v: v == "true"}.get(
            kinds[name], str)(value)
    return out


def run_snnspin(model: str, data: Path, run: Path, seeds: int, fast: bool, fresh: bool, progress: bool,
                n_train: int, settings: dict | None = None) -> dict:
    """Train ``model`` on ``data`` with the defaults (``data=`` and ``seeds=`` only) into ``run``,
    or read the finished run. Returns per-seed accuracies and the summed training time."""
    if fresh and run.exists():
        shutil.rmtree(run)
    summary_path = run / "summary.json"
    done = summary_path.exists() and _read_json(summary_path)["stats"]["n"] >= seeds
    if done:
        print(f"  finished earlier: {run}", flush=True)
        _check_source(run, model)
    else:
        changes = dict(data=str(data), seeds=seeds, **(settings or {}).get(model, {}))
        if fast:
            fields = {f.name for f in dataclasses.fields(TrainConfig)}
            changes.update({k: v for k, v in FAST_SNNSPIN.items() if k in fields})
        config = preset_config(model, **changes)
        resume = (run / "config.json").exists()
        if resume:
            _check_source(run, model)
        try:
            train(config, run, resume=resume, progress=progress)
        except ValueError as error:
            if not resume:
                raise
            raise SystemExit(f"error: {error}\n(resuming {run}: if the library's defaults changed since it "
                             "started, rerun with --fresh to redo it)") from None
        _mark_source(run)
    summary = _read_json(summary_path)
    accuracy = {int(k): float(v) for k, v in summary["accuracy"].items() if int(k) < seeds}
    seconds = 0.0
    for seed in accuracy:
        history = run / f"seed_{seed}" / "history.json"
        seconds += sum(r["seconds"] for r in _read_json(history)) if history.exists() else 0.0
    steps, batch = optimiser_budget(run, n_train)
    return dict(accuracy=accuracy, seconds=seconds or float(summary.get("seconds", 0.0)), steps=steps,
                batch_size=batch)


# --------------------------------------------------------------------------------------------
# The GRU reference


class GRUClassifier(nn.Module):
    """``nn.GRU`` (time first) and a linear readout of the last hidden state of the top layer."""

    def __init__(self, n_inputs: int, n_classes: int, hidden: int, layers: int):
        super().__init__()
        self.gru = nn.GRU(n_inputs, hidden, num_layers=layers)
        self.readout = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [T, B, F]
        _, h = self.gru(x)
        return self.readout(h[-1])


def train_gru(arrays: dict, seed: int, steps: int, batch_size: int) -> float:
    """Test accuracy (%) of the reference GRU after ``steps`` Adam steps of ``batch_size``
    series (shuffled epochs, the last batch of an epoch smaller, as snnspin does)."""
    x, y, x_test, y_test = (arrays[k] for k in ("x", "y", "x_test", "y_test"))
    mean, std = x.mean(axis=(0, 1)), x.std(axis=(0, 1))
    std = np.where(std > 0, std, 1.0)

    def tensor(values):  # z-normalised with the training statistics, time first
        return torch.as_tensor((values - mean) / std, dtype=torch.float32).permute(1, 0, 2).contiguous()

    x_train, x_eval = tensor(x), tensor(x_test)
    y_train, y_eval = torch.as_tensor(y), torch.as_tensor(y_test)
    with torch.random.fork_rng(devices=[]):  # the initialisation from the seed; the global RNG is left alone
        torch.manual_seed(seed)
        net = GRUClassifier(x.shape[2], int(max(y.max(), y_test.max())) + 1, GRU["hidden"], GRU["layers"])
    optimiser = torch.optim.Adam(net.parameters(), lr=GRU["lr"])
    generator = torch.Generator().manual_seed(seed)
    n, step, threads = len(y), 0, torch.get_num_threads()
    torch.set_num_threads(1)  # a GRU this small runs faster on one thread, much faster on a busy machine
    try:
        while step < steps:
            order = torch.randperm(n, generator=generator)
            for first in range(0, n, batch_size):
                if step == steps:
                    break
                index = order[first: first + batch_size]
                loss = F.cross_entropy(net(x_train[:, index]), y_train[index])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), GRU["clip_norm"])
                optimiser.step()
                step += 1
        with torch.no_grad():
            return 100.0 * float((net(x_eval).argmax(-1) == y_eval).float().mean())
    finally:
        torch.set_num_threads(threads)


def run_gru(arrays: dict, budget_from: Path | None, run: Path, seeds: int, fresh: bool) -> dict:
    """Train (or read) the reference GRU's seeds into ``run/seed_<k>.json``."""
    if fresh and run.exists():
        shutil.rmtree(run)
    n_train = len(arrays["y"])
    if budget_from is not None and (budget_from / "config.json").exists():
        steps, batch = optimiser_budget(budget_from, n_train)
        source = f"as {budget_from.name}"
    else:  # no snnspin run to copy: the spintronic preset's epochs at its batch size (120 if chosen from data)
        preset = preset_config("spintronic")
        batch = min(preset.batch_size if preset.batch_size > 0 else 120, n_train)
        steps, source = preset.epochs * math.ceil(n_train / batch), "no snnspin run: the preset's epochs"
    accuracy, seconds = {}, 0.0
    for seed in range(seeds):
        path = run / f"seed_{seed}.json"
        record = _read_json(path) if path.exists() else None
        if record is not None and (record["steps"], record["batch_size"]) != (steps, batch):
            print(f"    gru seed {seed}: trained earlier for {record['steps']} steps of {record['batch_size']}, "
                  f"the snnspin run now used {steps} of {batch}: training again", flush=True)
            record = None
        if record is None:
            start = time.perf_counter()
            acc = train_gru(arrays, seed, steps, batch)
            record = dict(seed=seed, accuracy=acc, seconds=time.perf_counter() - start, steps=steps,
                          batch_size=batch, budget=source, **GRU)
            _write_json(path, record)
            print(f"    gru seed {seed}: {acc:.2f} % ({steps} steps of {batch}, {source}, "
                  f"{record['seconds']:.0f} s)", flush=True)
        accuracy[seed], seconds = record["accuracy"], seconds + record["seconds"]
    _write_json(run / "summary.json", dict(accuracy=accuracy, steps=steps, batch_size=batch, **GRU))
    return dict(accuracy=accuracy, seconds=seconds, batch_size=batch, steps=steps)


# --------------------------------------------------------------------------------------------
# Table, CSV and figure


def row_for(task: Task, model: str, result: dict, n_train: int, n_test: int) -> dict:
    acc = np.array([result["accuracy"][k] for k in sorted(result["accuracy"])], dtype=float)
    stuck = int((acc <= task.chance + STUCK_MARGIN).sum())
    return dict(task=task.name, n_inputs=task.n_inputs, n_classes=task.n_classes, length=task.length,
                n_train=n_train, n_test=n_test, model=model, seeds=len(acc), mean=acc.mean(), std=acc.std(),
                median=float(np.median(acc)), min=acc.min(), max=acc.max(), stuck=stuck, chance=task.chance,
                steps=result["steps"], batch_size=result["batch_size"], seconds=result["seconds"], minus_gru=None,
                accuracies=";".join(f"{a:.2f}" for a in acc))


def write_outputs(rows: list[dict], out: Path, command: str, fast: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    gru_mean = {r["task"]: r["mean"] for r in rows if r["model"] == "gru"}
    for r in rows:
        if r["model"] != "gru" and r["task"] in gru_mean:
            r["minus_gru"] = r["mean"] - gru_mean[r["task"]]
    with open(out / "tasks.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_markdown(rows, out / "tasks.md", command, fast)
    write_figure(rows, out / "tasks.png")


def write_markdown(rows: list[dict], path: Path, command: str, fast: bool) -> None:
    def number(v, fmt):
        return "—" if v is None else format(v, fmt)

    lines = ["# Multi-task benchmark" + (" (--fast smoke test: not a result)" if fast else ""), ""]
    lines += [f"`{command}` with {_source_description()}; every model with the library's defaults "
              "(`preset_config(model, data=..., seeds=...)`, nothing tuned per task). The tasks are synthetic, "
              "generated offline from fixed seeds with an official train/test split, in raw sensor-like units "
              "(not normalised); `benchmarks/tasks.py`'s docstring describes them.", ""]
    lines += ["| task | F | C | T | what decides the class |", "| --- | ---: | ---: | ---: | --- |"]
    for name in dict.fromkeys(r["task"] for r in rows):
        task = TASKS[name]
        lines.append(f"| {name} | {task.n_inputs} | {task.n_classes} | {task.length} | {task.summary} |")
    lines += ["", f"Reference: `torch.nn.GRU`, {GRU['layers']} layer of {GRU['hidden']} units, readout from the last "
              f"hidden state, inputs z-normalised per channel with training statistics, Adam lr {GRU['lr']:g} "
              f"(constant), gradient norm clipped at {GRU['clip_norm']:g}, the spintronic run's batch size and "
              "number of optimiser steps, one CPU thread. Stuck: test accuracy ≤ chance + 5 points. Wall time: all seeds, "
              "training and per-epoch evaluation, one after another.", ""]
    lines += ["| task | train/test | model | seeds | mean ± std (%) | min | max | stuck | chance | steps × batch "
              "| wall time (s) | − GRU |",
              "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        budget = f"{r['steps']} × {r['batch_size']}"
        lines.append(f"| {r['task']} | {r['n_train']}/{r['n_test']} | {r['model']} | {r['seeds']} | "
                     f"{r['mean']:.2f} ± {r['std']:.2f} | {r['min']:.2f} | {r['max']:.2f} | {r['stuck']} | "
                     f"{r['chance']:.1f} | {budget} | {r['seconds']:.1f} | {number(r['minus_gru'], '+.2f')} |")
    spin = [r for r in rows if r["model"] == "spintronic"]
    if spin and any(r["minus_gru"] is not None for r in spin):
        within = [r["task"] for r in spin if r["minus_gru"] is not None and r["minus_gru"] >= -5.0]
        below = [f"{r['task']} ({r['minus_gru']:+.1f})" for r in spin
                 if r["minus_gru"] is not None and r["minus_gru"] < -5.0]
        stuck = sum(r["stuck"] for r in spin)
        lines += ["", f"Target (issue 19): no spintronic seed stuck at chance, and its mean within 5 points of the "
                  f"GRU's on every task. Here: {stuck} spintronic seed(s) stuck; within 5 points on "
                  f"{len(within)} of {len(spin)} tasks" + (f"; below on {', '.join(below)}." if below else ".")]
    lines += ["", "![test accuracy per task and model](tasks.png)", ""]
    part = path.with_suffix(".md.part")
    part.write_text("\n".join(lines))
    os.replace(part, path)


def write_figure(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    colours = {"spintronic": "tab:blue", "ctrnn": "tab:orange", "gru": "tab:gray"}
    figure = Figure(figsize=(1.9 * len(tasks) + 1.5, 4.0), constrained_layout=True)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    width = 0.8 / len(models)
    jitter = np.random.default_rng(0)
    for i, name in enumerate(tasks):
        for j, model in enumerate(models):
            found = [r for r in rows if r["task"] == name and r["model"] == model]
            if not found:
                continue
            r, x = found[0], i + (j - (len(models) - 1) / 2) * width
            acc = np.array([float(a) for a in r["accuracies"].split(";")])
            ax.bar(x, r["mean"], width * 0.9, yerr=r["std"], color=colours[model], alpha=0.75, capsize=3,
                   label=model if i == 0 else None)
            ax.scatter(x + jitter.uniform(-0.2, 0.2, len(acc)) * width, acc, s=10, color="black", zorder=3)
        ax.hlines(TASKS[name].chance, i - 0.45, i + 0.45, colors="red", linestyles="dashed",
                  label="chance" if i == 0 else None)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([f"{n}\nF={TASKS[n].n_inputs}, C={TASKS[n].n_classes}" for n in tasks])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("defaults on untuned tasks: mean ± std over seeds, dots = seeds")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    figure.savefig(path, dpi=120)


# --------------------------------------------------------------------------------------------


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=None, help=f"seeds per model (default 5; --fast: {FAST_SEEDS})")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS), metavar="TASK",
                        help=f"tasks to run (default all: {' '.join(TASKS)})")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL",
                        help=f"models to run (default all: {' '.join(MODELS)})")
    parser.add_argument("--fast", action="store_true",
                        help=f"smoke test: {FAST_SIZES['n_train']} training and {FAST_SIZES['n_test']} test series, "
                             f"snnspin with {FAST_SNNSPIN}; work and output under runs/tasks-fast")
    parser.add_argument("--out", default=None, help="where tasks.md/.csv/.png go (default benchmarks/results; "
                                                     "--fast: runs/tasks-fast/results)")
    parser.add_argument("--work", default=None, help="run folders and data (default runs/tasks; --fast: runs/tasks-fast)")
    parser.add_argument("--fresh", action="store_true", help="delete the selected runs first instead of resuming")
    parser.add_argument("--set", nargs="+", default=[], metavar="MODEL:FIELD=VALUE",
                        help="an experiment away from the defaults, e.g. spintronic:x_min=0.01 (use another --work "
                             "and --out: the table is no longer the defaults')")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress bars")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the snnspin runs (default: torch's own; --fast: 1, which is much "
                             "faster than 2 on a busy machine). The GRU always uses 1")
    args = parser.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else (FAST_SEEDS if args.fast else 5)
    if seeds < 1:
        parser.error("--seeds must be >= 1")
    threads = args.threads if args.threads is not None else (1 if args.fast else None)
    if threads is not None and threads < 1:
        parser.error("--threads must be >= 1")
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        return _run(args, seeds, argv)
    finally:
        torch.set_num_threads(before)


def _run(args, seeds: int, argv) -> list[dict]:
    work = Path(args.work) if args.work else (ROOT / "runs" / "tasks-fast" if args.fast else WORK)
    out = Path(args.out) if args.out else (work / "results" if args.fast else RESULTS)
    models = [m for m in MODELS if m in args.models]  # the snnspin runs first: the GRU copies their budget
    command = "python benchmarks/tasks.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    rows, start = [], time.perf_counter()
    for number, name in enumerate(args.tasks, 1):
        task = TASKS[name]
        path = write_task(task, work / "data", args.fast)
        arrays = task.arrays(args.fast)
        n_train, n_test = len(arrays["y"]), len(arrays["y_test"])
        print(f"[{number}/{len(args.tasks)}] {name}: F={task.n_inputs}, C={task.n_classes}, T={task.length}, "
              f"{n_train}/{n_test} series, chance {task.chance:.1f} % ({path})", flush=True)
        for model in models:
            run = work / name / model
            print(f"  {model}: {seeds} seed(s) → {run}", flush=True)
            if model == "gru":
                snn = next((work / name / m for m in SNN_MODELS if (work / name / m / "config.json").exists()), None)
                result = run_gru(arrays, snn, run, seeds, args.fresh)
            else:
                result = run_snnspin(model, path, run, seeds, args.fast, args.fresh, not args.quiet, n_train,
                                     _settings(args.set))
            row = row_for(task, model, result, n_train, n_test)
            rows.append(row)
            print(f"  {model}: {row['mean']:.2f} ± {row['std']:.2f} % (min {row['min']:.2f}), {row['stuck']} of "
                  f"{row['seeds']} stuck at chance, {row['seconds']:.0f} s", flush=True)
    write_outputs(rows, out, command, args.fast)
    print((out / "tasks.md").read_text())
    print(f"done in {time.perf_counter() - start:.0f} s; {out / 'tasks.md'}, tasks.csv, tasks.png", flush=True)
    return rows


if __name__ == "__main__":
    main()
