"""BPTT training with the paper's protocol, evaluation, checkpoints and resumable runs.

Protocol (Plouet et al. Sec. III): the whole sequence is unrolled (BPTT), the NLL loss is
taken on the output after the last step, Adam with batch 120, each gradient element is
clipped to ±1, and the learning rate follows lr = lr0 / (epoch / lr_decay + 1). Models
are evaluated on the held-out half (or on a validation part of the training half when
``val_fraction`` > 0, for tuning).

A run folder holds ``config.json`` and one ``seed_<k>/`` per seed with ``checkpoint.pt``
(after every epoch), ``history.json`` and, when done, ``weights.pt``. Every write is
atomic; ``resume=True`` continues from the last completed epoch and gives the same
result as an uninterrupted run (batch order is drawn from a generator seeded by seed
and epoch, and the optimiser and schedule are restored).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .config import TrainConfig
from .data import SequentialDigits, as_tensors
from .io import atomic_torch_save, atomic_write_json
from .models import build_model


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


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_data(config: TrainConfig, device="cpu"):
    """Training and evaluation tensors ``(x [T, N, 1], y [N])`` for ``config``.

    Evaluation is the test half, or the validation part of the training half when
    ``config.val_fraction`` > 0. Pixels are multiplied by ``config.input_scale``.
    """
    common = dict(order=config.order, split_seed=config.split_seed, val_fraction=config.val_fraction)
    train = SequentialDigits("train", **common)
    held_out = SequentialDigits("val" if config.val_fraction > 0 else "test", **common)
    out = []
    for ds in (train, held_out):
        x, y = as_tensors(ds)
        out.append(((x * config.input_scale).to(device), y.to(device)))
    return out[0], out[1]


@torch.no_grad()
def evaluate(model, data: torch.Tensor, targets: torch.Tensor, batch_size: int = 1000):
    """Mean NLL and accuracy (%) of ``model`` on ``data`` ``[T, N, F]``, ``targets`` ``[N]``."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, data.shape[1], batch_size):
        log_probs = model(data[:, start : start + batch_size])
        y = targets[start : start + batch_size]
        loss_sum += float(F.nll_loss(log_probs, y, reduction="sum"))
        correct += int((log_probs.argmax(-1) == y).sum())
    model.train()
    n = data.shape[1]
    return loss_sum / n, 100.0 * correct / n


def lr_factor(lr_decay: float) -> Callable[[int], float]:
    """The paper's schedule as a ``LambdaLR`` factor: epoch ↦ 1 / (epoch / lr_decay + 1).

    >>> round(lr_factor(8.077)(8), 4)
    0.5024
    """
    return lambda epoch: 1.0 / (epoch / lr_decay + 1.0)


def _batch_order(n: int, seed: int, epoch: int, device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1_000_003 * seed + epoch)
    return torch.randperm(n, generator=generator).to(device)


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
    Returns ``(model, history)`` with history a list of ``EpochRecord``.
    """
    from tqdm.auto import tqdm

    device = resolve_device(config.device)
    (x_train, y_train), (x_eval, y_eval) = data if data is not None else load_data(config, device)
    x_train, y_train, x_eval, y_eval = (t.to(device) for t in (x_train, y_train, x_eval, y_eval))
    torch.manual_seed(seed)
    model = build_model(config, seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config.lr_decay))
    history: list[EpochRecord] = []
    folder = Path(folder) if folder is not None else None
    checkpoint_path = folder / "checkpoint.pt" if folder else None
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = [EpochRecord(**r) for r in state["history"]]

    n = x_train.shape[1]
    bar = tqdm(
        total=config.epochs, initial=len(history), disable=not progress, leave=False,
        desc=f"{config.model} seed {seed}", unit="epoch",
    )
    for epoch in range(len(history), config.epochs):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        order = _batch_order(n, seed, epoch, device)
        loss_sum, correct, skipped = 0.0, 0, 0
        for first in range(0, n, config.batch_size):
            index = order[first : first + config.batch_size]
            log_probs = model(x_train[:, index])
            loss = F.nll_loss(log_probs, y_train[index])
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{config.model} seed {seed}: the loss became {loss.item()} at epoch {epoch + 1}; "
                    "the weights are no longer finite (lower lr0 or clip)"
                )
            loss_sum += loss.item() * len(index)
            correct += int((log_probs.argmax(-1) == y_train[index]).sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None):
                skipped += 1  # an exploding gradient (e.g. a neuron driven up from x ≈ 0): no step
                continue
            torch.nn.utils.clip_grad_value_(model.parameters(), config.clip)
            optimizer.step()
        scheduler.step()
        eval_loss, eval_acc = evaluate(model, x_eval, y_eval)
        record = EpochRecord(epoch + 1, lr, loss_sum / n, 100.0 * correct / n, eval_loss, eval_acc,
                             time.perf_counter() - start, skipped)
        if skipped:
            warnings.warn(f"{config.model} seed {seed}, epoch {epoch + 1}: {skipped} batch(es) had non-finite "
                          "gradients and were skipped", RuntimeWarning, stacklevel=2)
        history.append(record)
        if folder is not None:
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history": [asdict(r) for r in history],
                },
                checkpoint_path,
            )
            atomic_write_json(folder / "history.json", [asdict(r) for r in history])
        bar.update(1)
        bar.set_postfix(loss=f"{record.train_loss:.3f}", train=f"{record.train_acc:.1f}%",
                        eval=f"{record.eval_acc:.1f}%")
        if on_epoch is not None:
            on_epoch(record)
    bar.close()
    if folder is not None:
        atomic_torch_save(model.state_dict(), folder / "weights.pt")
    return model, history


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


def train(config: TrainConfig, out_dir=None, resume: bool = False, progress: bool = True) -> dict:
    """Train ``config.seeds`` models; write the run folder; return the summary dict.

    The summary holds per-seed final evaluation accuracy (%), their statistics, the
    neuron and synapse counts and the wall time. With ``out_dir`` the folder gets
    ``config.json``, ``summary.json``, ``curves.png`` and one ``seed_<k>/`` per seed.
    """
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        saved = out / "config.json"
        if saved.exists() and not resume:
            raise FileExistsError(f"{out} already holds a run; pass resume=True (--resume) or choose another folder")
        if resume and saved.exists():
            check_resumable(TrainConfig.load(saved), config)
        atomic_write_json(saved, config.to_dict())
    device = resolve_device(config.device)
    data = load_data(config, device)
    start = time.perf_counter()
    per_seed, histories = {}, {}
    counts = None
    for seed in config.seed_list():
        folder = out / f"seed_{seed}" if out is not None else None
        model, history = train_seed(config, seed, folder, resume, progress, data)
        counts = model.counts()
        histories[seed] = history
        per_seed[seed] = history[-1].eval_acc
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


RESUMABLE_CHANGES = ("epochs", "seeds", "device")


def check_resumable(saved: TrainConfig, requested: TrainConfig) -> None:
    """Raise ``ValueError`` if ``requested`` differs from ``saved`` in more than epochs/seeds/device."""
    a, b = saved.to_dict(), requested.to_dict()
    diff = [k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES]
    if diff:
        shown = ", ".join(f"{k}: saved {a[k]!r}, requested {b[k]!r}" for k in diff)
        raise ValueError(f"cannot resume with a different configuration ({shown})")


def trained_models(run_dir, seeds=None):
    """The config of a run folder and an iterator of ``(seed, model with its trained weights)``
    over the seeds (default: the run's) that have a ``weights.pt``.
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


def load_weights(model, path) -> None:
    """Load ``weights.pt`` into ``model`` (``weights_only=True``); a shape mismatch names both shapes."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    for name, tensor in state.items():
        if name in own and own[name].shape != tensor.shape:
            raise ValueError(
                f"cannot load {path}: '{name}' has shape {tuple(tensor.shape)} in the file but "
                f"{tuple(own[name].shape)} in the model"
            )
    model.load_state_dict(state)
