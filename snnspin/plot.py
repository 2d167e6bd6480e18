"""Figures (the only module that imports matplotlib); every function saves or returns a figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and not _interactive():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _interactive() -> bool:
    try:
        from IPython import get_ipython

        return get_ipython() is not None
    except ImportError:
        return False


def plot_training_curves(histories: dict, path=None, title: str = ""):
    """Loss (left) and accuracy in % (right) vs epoch, train solid and evaluation dashed,
    one colour per seed (as the paper's Fig. 5). ``histories``: seed → list of ``EpochRecord``
    (or dicts with the same keys). Saves a PNG if ``path`` is given; returns the figure.
    """
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (seed, history) in enumerate(sorted(histories.items())):
        rows = [r if isinstance(r, dict) else r.__dict__ for r in history]
        epochs = [r["epoch"] for r in rows]
        color = f"C{i % 10}"
        ax_loss.plot(epochs, [r["train_loss"] for r in rows], color=color, label=f"seed {seed} train")
        ax_loss.plot(epochs, [r["eval_loss"] for r in rows], color=color, ls="--", label=f"seed {seed} eval")
        ax_acc.plot(epochs, [r["train_acc"] for r in rows], color=color)
        ax_acc.plot(epochs, [r["eval_acc"] for r in rows], color=color, ls="--")
    ax_loss.set(xlabel="epoch", ylabel="loss (NLL)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    ax_loss.legend(fontsize="small", ncol=2)
    if title:
        fig.suptitle(title + "  (solid: train, dashed: evaluation)")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


def plot_traces(traces, labels, layer: int, neuron: int, samples=None, dt: float = 1.0, ax=None,
                variable: str = "x"):
    """One neuron's trajectory for several inputs, coloured by input (the paper's Fig. 1b-d).

    ``traces``: the dict returned by ``model(data, record=True)[1]``; ``traces[variable][layer]``
    is ``[T, B, N]``. ``labels`` ``[B]`` name each input's class; ``samples`` picks inputs.
    Time axis in ns (input point index × ``dt``).
    """
    plt = _pyplot()
    series = traces[variable][layer]
    samples = range(series.shape[1]) if samples is None else samples
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    t = np.arange(1, series.shape[0] + 1) * dt
    for i, b in enumerate(samples):
        ax.plot(t, series[:, b, neuron].cpu().numpy(), color=f"C{i % 10}", label=f"class {int(labels[b])}")
    ax.set(xlabel="time (ns)", ylabel=f"{variable}", title=f"layer {layer}, neuron {neuron}")
    ax.legend(fontsize="x-small", ncol=3)
    return ax


def plot_drive_accuracy(points, path=None):
    """Accuracy vs cumulative drive I·Δt (the paper's Fig. 3c): green where τ > Δt, orange
    otherwise, a red line at I·Δt = 1. ``points``: dicts with drive, accuracy, tau, delta_t
    (``snnspin.design.drive_accuracy_points``). Saves a PNG if ``path``; returns the figure.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for ok, color, label in [(True, "tab:green", "τ > Δt"), (False, "tab:orange", "τ ≤ Δt")]:
        chosen = [p for p in points if (p["tau"] > p["delta_t"]) == ok]
        ax.scatter([p["drive"] for p in chosen], [p["accuracy"] for p in chosen], color=color, label=label)
    ax.axvline(1.0, color="red")
    ax.set(xscale="log", xlabel="cumulative drive I·Δt", ylabel="accuracy (%)")
    ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
