"""BPTT training with the paper's protocol, evaluation, checkpoints and resumable runs.

Protocol (Plouet et al. Sec. III): the whole sequence is unrolled (BPTT), the NLL loss is
taken on the readout of the output after the last step (or, with ``readout_time="mean"``, the
default for data files, of its average over every step), Adam with batch 120, each gradient
element is clipped to ±1, and the learning rate follows lr = lr0 / (epoch / lr_decay + 1). Models
are evaluated on the held-out half (or on a validation part of the training half when
``val_fraction`` > 0, for tuning).

A run folder holds ``config.json`` and one ``seed_<k>/`` per seed with ``checkpoint.pt``
(after every epoch), ``history.json`` and, when done, ``weights.pt``. Every write is
atomic; ``resume=True`` continues from the last completed epoch and gives the same
result as an uninterrupted run (batch order is drawn from a generator seeded by seed
and epoch, and the optimiser and schedule are restored).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .config import SPIKING, TrainConfig
from .data import SequentialDigits, as_tensors, load_series
from .io import atomic_torch_save, atomic_write_json, load_torch_file, not_a_checkpoint, read_json
from .defaults import input_statistics, resolve_for_data
from .device import apply_chip, draw_chip, seed_noise
from .models import LayeredNetwork, build_model
from .nn import Oscillator


@dataclass
class EpochRecord:
    """One epoch: mean training loss/accuracy over its batches and the evaluation figures."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    eval_loss: float
    eval_acc: float
    seconds: float
    skipped: int = 0  # batches whose gradient was not finite, so no step was taken
    dead: list | None = None  # per layer: fraction of neurons dead at the end of the evaluation sequences
    saturated: list | None = None  # per layer: fraction saturated (see the model's ``neuron_health``)


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; any other name is checked: a name torch
    does not know, or a device this machine lacks, is one ``ValueError`` line.

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("foo")
    Traceback (most recent call last):
    ...
    ValueError: device must be one of auto, cpu, cuda, cuda:<index>, mps, got 'foo'
    """
    from .config import DEVICE_PATTERN, DEVICES

    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise ValueError(f"device must be one of {DEVICES}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device found"
            raise ValueError(f"device {name!r} is not available ({why}); use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r} is not available: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} is not available (no Apple MPS here); use --device cpu or auto")
    return device


def load_data(config: TrainConfig, device="cpu"):
    """Training and evaluation tensors ``((x [T, N, F], y [N]), (x_eval, y_eval))`` for ``config``.

    The data are sklearn's digits (64 raw pixels 0..16 per series, F = 1), or the ``.npz`` file
    ``config.data`` (``snnspin.data.load_series``). Evaluation is the test part, or the
    validation part of the training part when ``config.val_fraction`` > 0. The values are
    the file's or the pixels' own: ``config.input_scale`` is applied by the model, wherever
    data enter it.

    >>> (x, y), (x_eval, y_eval) = load_data(TrainConfig())
    >>> tuple(x.shape), tuple(y.shape), tuple(x_eval.shape)
    ((64, 898, 1), (898,), (64, 899, 1))
    """
    if config.data:
        split = load_series(config.data, config.split_seed, config.val_fraction)
        parts = ((split.x_train, split.y_train), (split.x_eval, split.y_eval))
    else:
        common = dict(order=config.order, split_seed=config.split_seed, val_fraction=config.val_fraction)
        train = SequentialDigits("train", **common)
        held_out = SequentialDigits("val" if config.val_fraction > 0 else "test", **common)
        parts = (as_tensors(train), as_tensors(held_out))
    return tuple((x.to(device), y.to(device)) for x, y in parts)


@torch.no_grad()
def evaluate(model, data: torch.Tensor, targets: torch.Tensor, batch_size: int = 1000, health: bool = False):
    """Mean NLL and accuracy (%) of ``model`` on ``data`` ``[T, N, F]``, ``targets`` ``[N]``.

    NLL = −(1/N) Σ_n log p_n(y_n); accuracy = 100 · (1/N) Σ_n [argmax p_n = y_n]. The model
    runs in eval mode; every submodule's train/eval mode is restored afterwards as found.
    With ``health=True`` also return the model's ``neuron_health`` over all of ``data``
    (per layer, the fraction of neurons dead and saturated after the last step).

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> model = build_model(TrainConfig(layers=1, width=4)).eval()
    >>> loss, acc = evaluate(model, torch.rand(64, 5, 1) * 16, torch.tensor([0, 1, 2, 3, 4]))
    >>> 0.0 <= acc <= 100.0, model.training
    (True, False)
    """
    return evaluate_together([model], data, targets, batch_size, health)[0]


@torch.no_grad()
def evaluate_together(models, data: torch.Tensor, targets: torch.Tensor, batch_size: int = 1000,
                      health: bool = False) -> list:
    """``evaluate`` for each of ``models`` on the same data, the networks run together in one fused
    call per chunk where ``snnspin.ensemble.log_probs_together`` can (chunks of ``batch_size`` // M
    series, so that memory stays that of one network; of ``batch_size`` with thermal noise, whose
    draws follow the chunks). One result per model, as ``evaluate``'s to rounding.

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> models = [build_model(TrainConfig(width=4), seed) for seed in range(2)]
    >>> len(evaluate_together(models, torch.rand(64, 5, 1) * 16, torch.tensor([0, 1, 2, 3, 4])))
    2
    """
    from .ensemble import log_probs_together

    modes = [(m, m.training) for model in models for m in model.modules()]
    for model in models:
        model.eval()
    # chunks of batch_size // M series keep one network's memory; with thermal noise the chunks stay
    # those of evaluate, so that every series sees the noise it sees when the network runs alone
    noisy = any(getattr(neuron, "thermal_power", 0) for model in models for neuron in getattr(model, "neurons", ()))
    chunk = batch_size if noisy else max(1, batch_size // len(models))
    loss_sums, corrects, sums = [0.0] * len(models), [0] * len(models), [{} for _ in models]
    try:
        for start in range(0, data.shape[1], chunk):
            part, y = data[:, start : start + chunk], targets[start : start + chunk]
            for k, (model, log_probs) in enumerate(zip(models, log_probs_together(models, [part] * len(models)))):
                loss_sums[k] += float(F.nll_loss(log_probs, y, reduction="sum"))
                corrects[k] += int((log_probs.argmax(-1) == y).sum())
                if health:
                    for name, fractions in model.neuron_health().items():
                        if fractions is not None:
                            totals = sums[k].setdefault(name, [0.0] * len(fractions))
                            sums[k][name] = [t + f * len(y) for t, f in zip(totals, fractions)]
    finally:
        for module, training in modes:
            module.training = training
    n, out = data.shape[1], []
    for loss_sum, correct, totals in zip(loss_sums, corrects, sums):
        if not health:
            out.append((loss_sum / n, 100.0 * correct / n))
            continue
        fractions = {name: [t / n for t in totals[name]] if name in totals else None for name in ("dead", "saturated")}
        out.append((loss_sum / n, 100.0 * correct / n, fractions))
    return out


def lr_factor(lr_decay: float) -> Callable[[int], float]:
    """The paper's schedule as a ``LambdaLR`` factor: epoch ↦ 1 / (epoch / lr_decay + 1)
    (dimensionless; the learning rate of epoch e, counted from 0, is lr0 times this).

    >>> round(lr_factor(8.077)(8), 4)
    0.5024
    """
    return lambda epoch: 1.0 / (epoch / lr_decay + 1.0)


def _batch_order(n: int, seed: int, epoch: int, device) -> torch.Tensor:
    """Batch order of one epoch, from a local generator seeded by (seed, epoch): the same
    on resume, and independent of torch's global RNG."""
    generator = torch.Generator().manual_seed(1_000_003 * seed + epoch)
    return torch.randperm(n, generator=generator).to(device)


#: Training series ``drive_init`` measures the drive on (drawn by the seed; all of them when fewer).
INIT_BATCH = 256


def check_sees_input(model) -> None:
    """Refuse (one line) a network in which some layer keeps no connection from the layer below
    (the first: from the input): its masks (density ``d_inter``) dropped them all, so nothing
    of the data reaches the readout."""
    for layer, linear in enumerate(model.w_ext):
        if linear.n_synapses == 0:
            below = f"the input ({model.n_inputs} channel(s))" if layer == 0 else f"layer {layer - 1}"
            raise ValueError(f"with d_inter = {model.config.d_inter:g} layer {layer} keeps no connection from {below}: "
                             "the network could not see the data; raise d_inter")


def prepare_model(model, config: TrainConfig, x_train: torch.Tensor, seed: int = 0) -> list[dict] | None:
    """What a fresh model takes from its training data ``[T, N, F]`` before training (a model whose
    first layer keeps no connection from the input is refused, one line): the input
    normalisation ``config.normalize`` asks for (from the training series only), then, with
    ``init_drive`` > 0, its biases and weights' scale (``snnspin.init.drive_init`` on
    ``INIT_BATCH`` training series drawn by ``seed``, at most a training batch; thermal noise
    drawn from a generator seeded by ``seed``; its report is returned).

    >>> from snnspin.models import build_model
    >>> from snnspin.presets import preset_config
    >>> config = preset_config("ctrnn", width=8, normalize="zscore", init_drive=1.0)
    >>> model = build_model(config)
    >>> x = torch.linspace(-1, 1, 30)[:, None, None] * torch.arange(1, 41.0)[None, :, None] + 3  # [T, N, F]
    >>> report = prepare_model(model, config, x)
    >>> [r["unhealthy"] <= 0.02 for r in report], round(float(model.input_shift), 1)
    ([True, True, True], 3.0)
    """
    check_sees_input(model)
    statistics = input_statistics(config, x_train)
    if statistics is not None:
        model.set_input_statistics(*statistics)
    if config.init_drive == -1:
        raise ValueError("init_drive=-1 (auto) must be resolved against the data first (resolve_for_data)")
    if not config.init_drive > 0:
        return None
    from .init import DEAD_BOUND, drive_init

    key = 1_000_003 * seed + 999_983
    seed_noise(model, key)  # thermal noise during the initialisation: its own draw, not torch's global RNG
    batch = min(INIT_BATCH, config.batch_size or INIT_BATCH)  # no more memory than a training batch needs
    pick = torch.randperm(x_train.shape[1], generator=torch.Generator().manual_seed(key))[:batch]
    report = drive_init(model, x_train[:, pick.to(x_train.device)], target=config.init_drive)
    for r in report:
        if r["unhealthy"] > DEAD_BOUND:
            warnings.warn(f"{config.model} seed {seed}: init_drive left {r['unhealthy']:.0%} of layer {r['layer']}'s "
                          "neurons dead or saturated at the start even with its weights shrunk "
                          f"{r['shrinks']} times (try a smaller init_drive or gain S)", RuntimeWarning, stacklevel=2)
    return report


class _SeedRun:
    """One seed's training: model, optimiser, schedule, history and checkpoint folder.

    No randomness comes from torch's global RNG: the model draws its initialisation from a
    generator seeded by ``seed`` (``build_model``), each epoch its batch order from one
    seeded by (seed, epoch) (``_batch_order``), and each batch its chip (device-aware
    training) and thermal noise from ones seeded by (seed, epoch, batch); evaluation uses
    the network's own chip and a noise draw seeded by ``chip_seed``. Training leaves the
    global RNG untouched.
    """

    def __init__(self, config: TrainConfig, seed: int, folder, device, x_train: torch.Tensor, resume: bool = False):
        self.config, self.seed, self.device = config, seed, device
        self.folder = Path(folder) if folder is not None else None
        self.model = build_model(config, seed).to(device)
        restoring = resume and self.checkpoint_path is not None and self.checkpoint_path.exists()
        # a run that restores its checkpoint takes its weights and statistics from there
        self.init_report = None if restoring else prepare_model(self.model, config, x_train, seed)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(config.lr_decay))
        self.history: list[EpochRecord] = []
        self.failure: FloatingPointError | None = None  # set when the loss stopped being finite

    @property
    def checkpoint_path(self) -> Path | None:
        return self.folder / "checkpoint.pt" if self.folder is not None else None

    def restore(self) -> None:
        """Continue from the checkpoint, if there is one: weights, optimiser, schedule, history.

        A file that is not a checkpoint of this run (damaged, empty, another model or
        width) is refused with one ``ValueError`` line naming it.
        """
        path = self.checkpoint_path
        if path is None or not path.exists():
            self._restore_finished()
            return
        state = read_checkpoint(path, map_location=self.device)
        load_state(self.model, state["model"], path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.history = [EpochRecord(**r) for r in state["history"]]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise not_a_checkpoint(path, f"its optimiser, schedule or history do not fit this run: "
                                         f"{str(error).splitlines()[0] if str(error) else type(error).__name__}")

    def _restore_finished(self) -> None:
        """A finished seed that kept only ``weights.pt`` and ``history.json`` (a committed run: checkpoints
        are not committed) resumes as finished instead of training again from scratch over its files.
        One that cannot go on (fewer epochs done than asked: no optimiser state to continue from) is
        refused with one ``ValueError`` line."""
        weights = self.folder / "weights.pt" if self.folder is not None else None
        if weights is None or not weights.exists():
            return
        self.history = finished_history(self.folder, self.config.epochs)
        load_weights(self.model, weights)

    def _devices_for_batch(self, epoch: int, batch: int) -> None:
        """The devices batch ``batch`` of ``epoch`` trains on: with ``chip_draw="batch"`` a fresh
        chip, and the thermal noise's draw; both seeded by (seed, epoch, batch), so a resumed
        run repeats them."""
        config, key = self.config, (1_000_003 * self.seed + epoch) * 65_537 + batch
        if config.mismatch and config.chip_draw == "batch":
            apply_chip(self.model, draw_chip(config.layers, config.width, config.mismatch, 2**32 + key))
        seed_noise(self.model, key)

    def devices_for_evaluation(self) -> None:
        """The network's own chip (``chip_seed``) and a noise draw seeded by it."""
        config = self.config
        if config.mismatch and config.chip_draw == "batch":
            apply_chip(self.model, draw_chip(config.layers, config.width, config.mismatch, config.chip_seed))
        seed_noise(self.model, config.chip_seed)

    def check_loss(self, loss: torch.Tensor, epoch: int) -> None:
        """Refuse to go on from a loss that is not finite (the weights no longer are)."""
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{self.config.model} seed {self.seed}: the loss became {loss.item()} at epoch {epoch + 1}; "
                "the weights are no longer finite (lower lr0 or clip)"
            )

    def update(self) -> bool:
        """After the backward pass: element-wise clip and Adam step; False (no step taken) when the
        gradient is not finite (e.g. a neuron driven up from x ≈ 0)."""
        parameters = [p for p in self.model.parameters() if p.grad is not None]
        if not all(torch.isfinite(p.grad).all() for p in parameters):
            return False
        torch.nn.utils.clip_grad_value_(self.model.parameters(), self.config.clip)
        self.optimizer.step()
        return True

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt``, ``history.json`` and (with ``init_drive``) ``init.json``, the
        initialisation's report, atomically (nothing without a folder)."""
        if self.folder is None:
            return
        if self.init_report is not None and not (self.folder / "init.json").exists():  # before the checkpoint
            atomic_write_json(self.folder / "init.json", self.init_report)
        history = [asdict(r) for r in self.history]
        atomic_torch_save(
            {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
             "scheduler": self.scheduler.state_dict(), "history": history},
            self.checkpoint_path,
        )
        atomic_write_json(self.folder / "history.json", history)

    def save_weights(self) -> None:
        """Write the final ``weights.pt`` (nothing without a folder)."""
        if self.folder is not None:
            atomic_torch_save(self.model.state_dict(), self.folder / "weights.pt")


def _steps_together(runs, batches, epoch: int) -> list[tuple[float, int, bool]]:
    """One batch for each run (its own ``(x, y)``): loss, backward, element-wise clip, Adam step,
    the networks run together (``snnspin.ensemble.log_probs_together``). The summed loss's backward
    gives each network the gradient of its own loss (they share no parameter). Per run: (summed
    loss, correct predictions, whether the step was skipped for a non-finite gradient). A loss that
    is not finite raises ``_Diverged`` (naming those runs) before any run takes its step."""
    from .ensemble import log_probs_together

    log_probs = log_probs_together([r.model for r in runs], [x for x, _ in batches])
    losses = [F.nll_loss(p, y) for p, (_, y) in zip(log_probs, batches)]
    diverged = {}
    for run, loss in zip(runs, losses):
        try:
            run.check_loss(loss, epoch)
        except FloatingPointError as error:
            diverged[run] = error
    if diverged:
        raise _Diverged(diverged)
    for run in runs:
        run.optimizer.zero_grad(set_to_none=True)
    (losses[0] if len(losses) == 1 else torch.stack(losses).sum()).backward()
    return [(loss.item() * len(y), int((p.argmax(-1) == y).sum()), not run.update())
            for run, loss, p, (_, y) in zip(runs, losses, log_probs, batches)]


class _Diverged(Exception):
    """Runs whose loss stopped being finite: run → its ``FloatingPointError``."""

    def __init__(self, errors: dict):
        super().__init__(next(iter(errors.values())))
        self.errors = errors


class SeedsFailed(FloatingPointError):
    """Seeds whose loss stopped being finite (``errors``: seed → its error), raised once the
    others have finished (``finished``: seed → (model, history)). The message is the first
    failure's."""

    def __init__(self, errors: dict, finished: dict):
        first = str(next(iter(errors.values())))
        others = f" (seeds {', '.join(map(str, errors))} diverged; seeds {', '.join(map(str, finished))} finished)" \
            if finished or len(errors) > 1 else ""
        super().__init__(first + others)
        self.errors, self.finished = errors, finished


def run_epochs(runs, x_train, y_train, x_eval, y_eval) -> list[EpochRecord]:
    """One epoch of each run (runs of one config, at the same epoch, differing in seed): each over
    its own shuffled batches (``_batch_order``), the networks run together per batch
    (``_steps_together``) and evaluated together; step each schedule, append and return each
    record (None for a run whose loss stopped being finite: its ``failure`` is set, its history and
    checkpoint stay at the last finished epoch, and the others go on without it). A record's
    ``seconds`` is the epoch's wall time divided by the number of runs."""
    config, epoch, start = runs[0].config, len(runs[0].history), time.perf_counter()
    if any(len(r.history) != epoch or r.config != config for r in runs):
        raise ValueError("runs trained together must share one config and be at the same epoch")
    lrs = {r: r.optimizer.param_groups[0]["lr"] for r in runs}
    n = x_train.shape[1]
    orders = {r: _batch_order(n, r.seed, epoch, r.device) for r in runs}
    totals = {r: [0.0, 0, 0] for r in runs}  # summed loss, correct, skipped
    active = list(runs)
    for first in range(0, n, config.batch_size):
        while active:
            for run in active:  # (again, after a run diverged: the same chips and noise draws)
                run._devices_for_batch(epoch, first // config.batch_size)
            batches = [(x_train[:, i], y_train[i]) for i in (orders[r][first : first + config.batch_size]
                                                             for r in active)]
            try:
                results = _steps_together(active, batches, epoch)
            except _Diverged as diverged:
                for run, error in diverged.errors.items():
                    run.failure = error
                active = [r for r in active if r not in diverged.errors]
                continue
            for run, result in zip(active, results):
                for k, value in enumerate(result):
                    totals[run][k] += value
            break
    for run in active:
        run.scheduler.step()
        run.devices_for_evaluation()
    evaluations = dict(zip(active, evaluate_together([r.model for r in active], x_eval, y_eval, health=True)
                           if active else []))
    seconds = (time.perf_counter() - start) / len(runs)
    records = []
    for run in runs:
        if run not in evaluations:
            records.append(None)
            continue
        (loss_sum, correct, skipped), (eval_loss, eval_acc, health) = totals[run], evaluations[run]
        record = EpochRecord(epoch + 1, lrs[run], loss_sum / n, 100.0 * correct / n, eval_loss, eval_acc, seconds,
                             int(skipped), health["dead"], health["saturated"])
        run.history.append(record)
        records.append(record)
    return records


def train_seed(
    config: TrainConfig,
    seed: int,
    folder=None,
    resume: bool = False,
    progress: bool = True,
    data=None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
):
    """Train one model (initialisation ``seed``) for ``config.epochs`` epochs.

    ``folder``: where checkpoints, history and weights go (nothing is written if None).
    ``data``: ``((x_train, y_train), (x_eval, y_eval))`` to reuse across seeds.
    ``on_epoch(record)`` is called after each epoch (e.g. for Optuna pruning; it may raise).
    Returns ``(model, history)`` with history a list of ``EpochRecord``. Epoch e (from 0)
    uses lr = lr0 / (e / lr_decay + 1). Torch's global RNG is neither reseeded nor drawn from.

    >>> from snnspin.config import TrainConfig
    >>> model, history = train_seed(TrainConfig(layers=1, width=2, epochs=1, batch_size=450), 0, progress=False)
    >>> [r.epoch for r in history], history[0].lr
    ([1], 0.149)
    """
    callback = None if on_epoch is None else lambda _seed, record: on_epoch(record)
    return train_seeds(config, [seed], [folder], resume, progress, data, callback)[seed]


def train_seeds(config: TrainConfig, seeds, folders=None, resume: bool = False, progress: bool = True, data=None,
                on_epoch: Callable[[int, EpochRecord], None] | None = None) -> dict:
    """Train one model per seed of ``seeds`` for ``config.epochs`` epochs, all seeds together:
    epoch by epoch, the networks run in one fused call per batch, ``snnspin.ensemble.group_size``
    at a time, when ``snnspin.ensemble.together_reason`` allows it (else one after the other
    within the epoch).
    Each seed's training is the one ``train_seed`` gives it alone (same batches, chips, noise,
    optimiser; results to rounding), with its own checkpoint folder (``folders``, one per seed
    or None). Resumed seeds at different epochs are brought level, the furthest behind first.
    ``on_epoch(seed, record)`` after each seed's epoch (it may raise; every finished epoch is
    checkpointed first). Returns ``{seed: (model, history)}``. A seed whose loss stops being
    finite drops out, the others finish (weights written), then ``SeedsFailed`` (a
    ``FloatingPointError`` holding the finished seeds) is raised.

    >>> from snnspin.config import TrainConfig
    >>> runs = train_seeds(TrainConfig(layers=1, width=2, epochs=1, batch_size=450), [0, 1], progress=False)
    >>> sorted(runs), [len(history) for _, history in runs.values()]
    ([0, 1], [1, 1])
    """
    from tqdm.auto import tqdm

    from .ensemble import group_size, together_reason

    seeds = list(seeds)
    folders = list(folders) if folders is not None else [None] * len(seeds)
    if len(folders) != len(seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"train_seeds needs distinct seeds and one folder per seed, got seeds {seeds}")
    device = resolve_device(config.device)
    data = data if data is not None else load_data(config, device)
    config = resolve_for_data(config, data)
    (x_train, y_train), (x_eval, y_eval) = ((x.to(device), y.to(device)) for x, y in data)
    runs = [_SeedRun(config, seed, folder, device, x_train, resume) for seed, folder in zip(seeds, folders)]
    for run in runs if resume else ():
        run.restore()
        if len(run.history) > config.epochs:
            raise ValueError(f"{run.checkpoint_path}: the run has {len(run.history)} epochs done; "
                             f"--epochs {config.epochs} would shrink it")
    label = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    bar = tqdm(total=config.epochs * len(runs), initial=sum(len(r.history) for r in runs), disable=not progress,
               leave=False, desc=f"{config.model} {label}", unit="epoch")
    # networks that cannot share a call train in groups of one: a group's graphs are held until its backward
    steps = x_train.shape[0] * config.substeps
    together = group_size(config, steps=steps) if together_reason([r.model for r in runs[:2]]) is None else 1
    while True:
        pending = [r for r in runs if len(r.history) < config.epochs and r.failure is None]
        if not pending:
            break
        behind = min(len(r.history) for r in pending)
        group = [r for r in pending if len(r.history) == behind][:together]
        done = [(run, record) for run, record in zip(group, run_epochs(group, x_train, y_train, x_eval, y_eval))
                if record is not None]
        for run, record in done:  # every finished epoch is checkpointed before any callback may raise
            run.save_checkpoint()
        for run, record in done:
            if record.skipped:
                warnings.warn(f"{config.model} seed {run.seed}, epoch {record.epoch}: {record.skipped} batch(es) had "
                              "non-finite gradients and were skipped", RuntimeWarning, stacklevel=2)
            bar.update(1)
            bar.set_postfix(loss=f"{record.train_loss:.3f}", train=f"{record.train_acc:.1f}%",
                            eval=f"{record.eval_acc:.1f}%")
            if on_epoch is not None:
                on_epoch(run.seed, record)
    bar.close()
    finished = {}
    for run in runs:
        if run.failure is not None:
            continue
        run.save_weights()
        for message in health_warnings(run.history[-1], config):
            warnings.warn(f"{config.model} seed {run.seed}: {message}", RuntimeWarning, stacklevel=2)
        finished[run.seed] = (run.model, run.history)
    failed = {run.seed: run.failure for run in runs if run.failure is not None}
    if failed:
        raise SeedsFailed(failed, finished)
    return finished


#: ``health_warnings`` speaks when a layer ends with more than this fraction of its neurons dead or saturated.
HEALTH_LIMIT = 0.3


def health_warnings(record: EpochRecord, config: TrainConfig) -> list[str]:
    """One line per layer that ends an epoch with more than ``HEALTH_LIMIT`` of its neurons dead
    (x < 1e-3) or saturated, naming the likely causes and what to change.

    >>> r = EpochRecord(1, 0.1, 2.3, 10.0, 2.3, 10.0, 1.0, 0, [0.1, 0.6], [0.0, 0.0])
    >>> print(health_warnings(r, TrainConfig())[0])  # doctest: +ELLIPSIS
    60 % of layer 1's neurons end the sequences dead (x < 1e-3; x = 0 absorbs): ... a smaller lr0 (now 0.149)

    """
    lines = []
    scale = (f"init_drive (now {config.init_drive:g})" if config.init_drive > 0
             else f"input_scale (now {config.input_scale:g})")  # what sets the input's drive
    for layer, fraction in enumerate(record.dead or []):
        if fraction > HEALTH_LIMIT:
            normalise = "; or normalize='zscore'" if config.data and config.normalize != "zscore" else ""
            why = (f"at the thermal floor x_th = {config.thermal_power:g}" if config.thermal_power
                   else "x = 0 absorbs")
            lines.append(f"{100 * fraction:.0f} % of layer {layer}'s neurons end the sequences dead (x < 1e-3; {why}): "
                         f"the drive I = S·syn + b_fixed stays below γ = 1/τ; try a smaller {scale} or gain S "
                         f"(now {config.gain:g}), a smaller lr0 (now "
                         f"{config.lr0:g}){normalise}")
    for layer, fraction in enumerate(record.saturated or []):
        if fraction > HEALTH_LIMIT:
            lines.append(f"{100 * fraction:.0f} % of layer {layer}'s neurons end the sequences saturated: the drive "
                         f"is too strong; try a smaller {scale} or gain S (now "
                         f"{config.gain:g})")
    return lines


def summarize(accuracies) -> dict:
    """Mean, std (population, as over seeds), median, min and max of accuracies (%).

    >>> summarize([80.0, 90.0])["mean"]
    85.0
    """
    a = np.asarray(accuracies, dtype=float)
    return {
        "n": int(a.size), "mean": float(a.mean()), "std": float(a.std()), "median": float(np.median(a)),
        "min": float(a.min()), "max": float(a.max()),
    }


def train(config: TrainConfig, out_dir=None, resume: bool = False, progress: bool = True, data=None) -> dict:
    """Train ``config.seeds`` models; write the run folder; return the summary dict.

    The summary holds per-seed final evaluation accuracy (%), their statistics, the
    neuron and synapse counts and the wall time. With ``out_dir`` the folder gets
    ``config.json``, ``summary.json``, ``curves.png`` and one ``seed_<k>/`` per seed.
    ``data``: what ``load_data(config)`` returns, when the caller has it already.
    Accuracies in %, ``seconds`` of wall time.

    >>> summary = train(TrainConfig(layers=1, width=2, epochs=1, batch_size=450), progress=False)
    >>> summary["evaluated_on"], summary["counts"], list(summary["accuracy"])  # synapses: 1 + 2 + 2·10
    ('test', {'neurons': 2, 'synapses': 23}, ['0'])
    """
    out = Path(out_dir) if out_dir is not None else None
    device = resolve_device(config.device)
    data = data if data is not None else load_data(config, device)
    if resume and out is not None:  # a run saved before a field existed goes on as it ran
        config = as_it_ran(config, out)
    config = resolve_for_data(config, data)  # recorded in config.json: the widths the data gave
    check_sees_input(build_model(config, config.first_seed))  # (the masks keep as many inputs for every seed)
    if out is not None:
        fingerprint = data_fingerprint(data)
        check_run_folder(config, out, resume, fingerprint)
        # every check passed: only now is the folder written
        atomic_write_json(out / "config.json", config.to_dict())
        atomic_write_json(out / "data.json", {"sha256": fingerprint})
    start = time.perf_counter()
    seeds = config.seed_list()
    folders = [out / f"seed_{seed}" if out is not None else None for seed in seeds]
    runs = train_seeds(config, seeds, folders, resume, progress, data)  # together, where they can be
    histories = {seed: history for seed, (_, history) in runs.items()}
    per_seed = {seed: history[-1].eval_acc for seed, history in histories.items()}
    counts = next(iter(runs.values()))[0].counts()
    summary = {
        "model": config.model,
        "evaluated_on": "validation" if config.val_fraction > 0 else "test",
        "accuracy": {str(k): v for k, v in per_seed.items()},
        "stats": summarize(list(per_seed.values())),
        "counts": counts,
        "seconds": time.perf_counter() - start,
    }
    if out is not None:
        atomic_write_json(out / "summary.json", summary)
        from .plot import plot_training_curves

        plot_training_curves(histories, out / "curves.png", title=f"{config.model}: {len(per_seed)} seed(s)")
    return summary


#: Fields whose default (auto) resolves from the data, and what runs and studies saved before the
#: field existed ran with: resuming them keeps that unless the field is set explicitly.
LEGACY_VALUES = {"init_drive": 0.0}


def keep_legacy_settings(config: TrainConfig, saved: dict) -> TrainConfig:
    """``config`` with every ``LEGACY_VALUES`` field it leaves at its default (auto) set to what
    ``saved`` (a run's ``config.json`` or a study's base config, as a dict) holds, or, where
    ``saved`` predates the field, to the value older runs used: resuming goes on as it ran.

    >>> keep_legacy_settings(TrainConfig(model="ctrnn"), {"model": "ctrnn"}).init_drive
    0.0
    >>> keep_legacy_settings(TrainConfig(model="ctrnn"), {"init_drive": 1.0}).init_drive
    1.0
    >>> keep_legacy_settings(TrainConfig(model="ctrnn", init_drive=0.5), {}).init_drive  # set explicitly: kept
    0.5
    """
    defaults = TrainConfig().to_dict()
    changes = {k: saved.get(k, v) for k, v in LEGACY_VALUES.items() if getattr(config, k) == defaults[k]}
    return config.replace(**changes) if changes else config


def as_it_ran(config: TrainConfig, out_dir) -> TrainConfig:
    """``config`` for resuming the run in ``out_dir``: ``keep_legacy_settings`` against the fields
    its ``config.json`` holds (``config`` itself when there is no readable run there)."""
    try:
        saved = json.loads((Path(out_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return config
    return keep_legacy_settings(config, saved) if isinstance(saved, dict) else config


RESUMABLE_CHANGES = ("epochs", "seeds", "device")
#: Fields ``resolve_for_data`` fills in; a saved run older than them holds their default.
DATA_DEPENDENT = ("n_inputs", "n_classes", "batch_size", "schedule", "normalize")


def data_fingerprint(data) -> str:
    """SHA-256 (first 16 hex digits) of the training and evaluation series and labels as a run
    sees them (``((x_train, y_train), (x_eval, y_eval))``): a resumed run checks it against
    the one its folder recorded in ``data.json``.

    >>> x, y = torch.zeros(3, 4, 1), torch.zeros(4, dtype=torch.long)
    >>> data_fingerprint(((x, y), (x, y))) == data_fingerprint(((x, y), (x + 1, y)))
    False
    """
    digest = hashlib.sha256()
    for part in data:
        for tensor in part:
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(memoryview(tensor.numpy()).cast("B"))
    return digest.hexdigest()[:16]


def check_run_folder(config: TrainConfig, out_dir, resume: bool = False, fingerprint: str | None = None) -> None:
    """Every check ``train`` makes before it writes into ``out_dir``: the folder holds no run
    (or ``resume``), the saved config differs only in epochs/seeds/device, the data are those
    the run started on (``fingerprint``, the data's ``data_fingerprint``, against ``data.json``,
    when given and the run recorded one), every checkpoint is one of this network, and the run would not
    shrink (fewer epochs than a checkpoint holds, or a started seed left out) nor grow a seed that
    finished without keeping its checkpoint (``finished_history``). Each failure is
    one line (``ValueError``, or ``FileExistsError`` for a folder that already holds a run and
    no ``resume``).

    >>> import tempfile
    >>> check_run_folder(TrainConfig(), tempfile.mkdtemp())  # an empty folder: nothing to refuse
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a run folder")
    saved = out / "config.json"
    if not saved.exists():
        return
    if not resume:
        raise FileExistsError(f"{out} already holds a run; pass resume=True (--resume) or choose another folder")
    previous = TrainConfig.load(saved)
    check_resumable(previous, config)
    recorded = out / "data.json"
    if fingerprint is not None and recorded.exists():
        try:
            before = json.loads(recorded.read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"{recorded}: not a data record of this run (unreadable or damaged)") from None
        if before != fingerprint:
            raise ValueError(f"cannot resume: the data differ from those the run in {out} started on (fingerprint "
                             f"{before} → {fingerprint}; was {config.data or 'the digits'} changed?)")
    started = {seed: out / f"seed_{seed}" / "checkpoint.pt" for seed in previous.seed_list()}
    started = {seed: path for seed, path in started.items() if path.exists()}
    finished = {seed for seed in previous.seed_list() if (out / f"seed_{seed}" / "weights.pt").exists()}
    dropped = sorted((set(started) | finished) - set(config.seed_list()))
    if dropped:
        raise ValueError(f"the run has seeds {', '.join(map(str, sorted(set(started) | finished)))} started or done; "
                         f"--seeds {config.seeds} would shrink it (drop seed(s) {', '.join(map(str, dropped))})")
    own = build_model(config).state_dict() if started else {}
    done = 0
    for path in started.values():
        state = read_checkpoint(path)
        check_state(own, state["model"], path)
        done = max(done, len(state["history"]))
    for seed in finished - set(started):  # finished, checkpoint not kept (a committed run): it cannot grow
        done = max(done, len(finished_history(out / f"seed_{seed}", config.epochs)))
    if config.epochs < done:
        raise ValueError(f"the run has {done} epochs done; --epochs {config.epochs} would shrink it")


def finished_history(folder, epochs: int) -> list[EpochRecord]:
    """The history of a seed folder that finished and kept no ``checkpoint.pt`` (a committed run),
    refused in one ``ValueError`` line when it holds fewer than ``epochs`` epochs: without the
    optimiser's state it cannot go on."""
    history = Path(folder) / "history.json"
    records = read_json(history) if history.exists() else []
    if len(records) < epochs:
        raise ValueError(f"{folder}: finished after {len(records)} epochs (weights.pt, no checkpoint.pt), so it "
                         f"cannot go on to {epochs} (no optimiser state); train into a new folder")
    try:
        return [EpochRecord(**r) for r in records]
    except TypeError as error:
        raise ValueError(f"{history}: not a snnspin history ({error})") from None


def check_resumable(saved: TrainConfig, requested: TrainConfig) -> None:
    """Raise ``ValueError`` if ``requested`` differs from ``saved`` in more than epochs/seeds/device.

    >>> check_resumable(TrainConfig(), TrainConfig(epochs=60))
    >>> check_resumable(TrainConfig(), TrainConfig(lr0=0.1))
    Traceback (most recent call last):
    ...
    ValueError: cannot resume with a different configuration (lr0: saved 0.149, requested 0.1)
    """
    a, b = saved.to_dict(), requested.to_dict()
    if saved.model not in SPIKING:
        if a["readout_time"] == "auto":
            a["readout_time"] = "last"  # saved before the option: every such run read the last step
        if b["readout_time"] == "auto":
            b["readout_time"] = a["readout_time"]  # not resolved against the data yet
    defaults = TrainConfig().to_dict()
    for name, legacy in LEGACY_VALUES.items():
        if a[name] == defaults[name]:
            a[name] = legacy  # saved before the option: such runs ran with the legacy value
        if b[name] == defaults[name]:
            b[name] = a[name]  # not resolved against the data yet
    # a run saved before a data-dependent field existed holds its "from the data" default there
    diff = [k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES
            and not (k in DATA_DEPENDENT and a[k] == defaults[k])]
    if diff:
        shown = ", ".join(f"{k}: saved {a[k]!r}, requested {b[k]!r}" for k in diff)
        hint = ("; this run reads the last step (as every run saved before readout_time existed): resume it with "
                "readout_time='last' (--readout-time last)") if "readout_time" in diff and a["readout_time"] == "last" \
            else ""
        raise ValueError(f"cannot resume with a different configuration ({shown}){hint}")


def trained_models(run_dir, seeds=None):
    """The config of a run folder and an iterator of ``(seed, model with its trained weights)``
    over the seeds (default: the run's) that have a ``weights.pt``.

    >>> import tempfile
    >>> trained_models(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ... is not a run folder (no config.json)
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise ValueError(f"{run_dir} is not a run folder (no config.json)")
    config = TrainConfig.load(run_dir / "config.json")

    def models():
        for seed in seeds if seeds is not None else config.seed_list():
            path = run_dir / f"seed_{seed}" / "weights.pt"
            if path.exists():
                model = build_model(config, seed)
                load_weights(model, path)
                yield seed, model

    return config, models()


def read_checkpoint(path, map_location="cpu") -> dict:
    """A ``checkpoint.pt`` (weights, optimiser, schedule, history), read with ``weights_only=True``;
    anything else is one ``ValueError`` line naming the file.

    >>> import tempfile
    >>> path = f"{tempfile.mkdtemp()}/checkpoint.pt"
    >>> torch.save({"model": {}}, path)
    >>> read_checkpoint(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...checkpoint.pt: not a snnspin checkpoint (no optimizer, scheduler, history entries); it was not loaded
    """
    state = load_torch_file(path, map_location)
    if not isinstance(state, dict):
        raise not_a_checkpoint(path, f"it holds a {type(state).__name__}, not a checkpoint dict")
    lacking = [k for k in ("model", "optimizer", "scheduler", "history") if k not in state]
    if lacking:
        raise not_a_checkpoint(path, f"no {', '.join(lacking)} entries")
    if not isinstance(state["history"], list):
        raise not_a_checkpoint(path, "its history is not a list of epochs")
    return state


def _names(keys, most: int = 3) -> str:
    keys = list(keys)
    return ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")


def check_state(own: dict, state, path) -> None:
    """Raise one ``ValueError`` line naming ``path`` unless the parameter dict ``state`` read
    from it fits a model whose ``state_dict()`` is ``own`` (same names, same shapes; the
    oscillators' Q and σ and the input normalisation may be absent, from files written before
    they were saved).

    >>> own = build_model(TrainConfig(layers=1, width=4)).state_dict()
    >>> check_state(own, build_model(TrainConfig(layers=1, width=5)).state_dict(), "w.pt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: w.pt: saved for another model or width (size mismatch on w_ext.0.weight: ...); it was not loaded
    """
    if not isinstance(state, dict):
        raise not_a_checkpoint(path, f"it holds a {type(state).__name__}, not tensors by parameter name")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise not_a_checkpoint(path, "it does not hold tensors by parameter name")
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    added_later = set(Oscillator.added_buffers) | set(LayeredNetwork.added_buffers)
    missing = [k for k in own if k not in state and k.rpartition(".")[2] not in added_later]
    unexpected = [k for k in state if k not in own]
    problems = []
    if mismatched:
        k = mismatched[0]
        more = f" and {len(mismatched) - 1} more" if len(mismatched) > 1 else ""
        problems.append(f"size mismatch on {k}: shape {tuple(state[k].shape)} in the file but "
                        f"{tuple(own[k].shape)} in the model{more}")
    if missing:
        problems.append(f"missing {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected {_names(unexpected)}")
    if problems:
        raise ValueError(f"{path}: saved for another model or width ({'; '.join(problems)}); it was not loaded")


def load_state(model, state, path) -> None:
    """Load a parameter dict read from ``path`` into ``model``, or refuse it whole (the model
    is left as it was) with one ``ValueError`` line naming the file and the first mismatch.

    >>> model = build_model(TrainConfig(layers=1, width=4))
    >>> load_state(model, build_model(TrainConfig(layers=1, width=4), seed=1).state_dict(), "weights.pt")
    >>> load_state(model, {"w": 1}, "weights.pt")  # a number where a tensor belongs
    Traceback (most recent call last):
    ...
    ValueError: weights.pt: not a snnspin checkpoint (it does not hold tensors by parameter name); it was not loaded
    """
    check_state(model.state_dict(), state, path)
    model.load_state_dict(state)


def load_weights(model, path) -> None:
    """Load ``weights.pt`` into ``model`` (``weights_only=True``). A file that is not
    snnspin's weights (damaged, empty, a pickle of other objects) or that was saved for
    another model or width is refused with one ``ValueError`` line naming the file.

    >>> import tempfile
    >>> path = f"{tempfile.mkdtemp()}/weights.pt"
    >>> torch.save(build_model(TrainConfig(width=4), seed=1).state_dict(), path)
    >>> model = build_model(TrainConfig(width=4), seed=0)
    >>> load_weights(model, path)
    >>> torch.equal(model.readout.weight, build_model(TrainConfig(width=4), seed=1).readout.weight)
    True
    """
    load_state(model, load_torch_file(path, map_location="cpu"), path)
