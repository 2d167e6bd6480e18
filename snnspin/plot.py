"""Figures (the only module that imports matplotlib); every function saves or returns a figure.

A figure saved to a ``path`` is a standalone ``matplotlib.figure.Figure`` drawn by the Agg
canvas: pyplot is not involved and matplotlib's backend is never switched. Without a path
the figure is made by pyplot, with whatever backend the caller has, so that ``plt.show()``
or a notebook displays it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _figure(path, **kwargs):
    """A new figure: standalone on an Agg canvas when it is saved to ``path``, else pyplot's."""
    if path is not None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(**kwargs)
        FigureCanvasAgg(fig)
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(**kwargs)


def _save(fig, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def plot_training_curves(histories: dict, path=None, title: str = ""):
    """Loss (left) and accuracy in % (middle) vs epoch, train solid and evaluation dashed,
    one colour per seed (as the paper's Fig. 5). ``histories``: seed → list of ``EpochRecord``
    (or dicts with the same keys). Loss is the NLL (nats), accuracy in %. When the records
    carry neuron health (``dead``/``saturated`` per layer), a third panel shows the fraction
    of neurons dead (solid) and saturated (dotted) per layer, averaged over seeds. Saves a
    PNG if ``path`` is given; returns the figure.

    >>> import tempfile
    >>> rows = [{"epoch": 1, "train_loss": 2.0, "eval_loss": 2.1, "train_acc": 30.0, "eval_acc": 28.0}]
    >>> fig = plot_training_curves({0: rows}, f"{tempfile.mkdtemp()}/curves.png")
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['loss (NLL)', 'accuracy (%)']
    >>> rows[0].update(dead=[0.1, 0.5], saturated=[0.0, 0.2])
    >>> [ax.get_ylabel() for ax in plot_training_curves({0: rows}).axes][-1]
    'neurons (%)'
    """
    all_rows = {seed: [r if isinstance(r, dict) else r.__dict__ for r in h] for seed, h in sorted(histories.items())}
    with_health = any(r.get("dead") or r.get("saturated") for rows in all_rows.values() for r in rows)
    fig = _figure(path, figsize=(15 if with_health else 10, 4))
    axes = fig.subplots(1, 3 if with_health else 2)
    ax_loss, ax_acc = axes[0], axes[1]
    for i, (seed, rows) in enumerate(all_rows.items()):
        epochs = [r["epoch"] for r in rows]
        color = f"C{i % 10}"
        marker = "o" if len(epochs) < 3 else None  # one or two epochs: points, not an invisible line
        ax_loss.plot(epochs, [r["train_loss"] for r in rows], color=color, marker=marker, label=f"seed {seed} train")
        ax_loss.plot(epochs, [r["eval_loss"] for r in rows], color=color, ls="--", marker=marker,
                     label=f"seed {seed} eval")
        ax_acc.plot(epochs, [r["train_acc"] for r in rows], color=color, marker=marker)
        ax_acc.plot(epochs, [r["eval_acc"] for r in rows], color=color, ls="--", marker=marker)
    ax_loss.set(xlabel="epoch", ylabel="loss (NLL)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    ax_loss.legend(fontsize="small", ncol=2)
    if with_health:
        _plot_health(axes[2], all_rows)
    if title:
        fig.suptitle(title + "  (solid: train, dashed: evaluation)")
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def _plot_health(ax, all_rows):
    """Fraction of neurons dead (solid) and saturated (dotted) per layer vs epoch, mean over seeds."""
    for key, style in (("dead", "-"), ("saturated", ":")):
        per_epoch = {}
        for rows in all_rows.values():
            for r in rows:
                if r.get(key):
                    per_epoch.setdefault(r["epoch"], []).append(r[key])
        if not per_epoch:
            continue
        epochs = sorted(per_epoch)
        mean = np.array([np.mean(per_epoch[e], axis=0) for e in epochs]) * 100  # [epochs, layers]
        for layer in range(mean.shape[1]):
            ax.plot(epochs, mean[:, layer], color=f"C{layer}", ls=style, marker="o" if len(epochs) < 3 else None,
                    label=f"layer {layer} {key}")
    ax.set(xlabel="epoch", ylabel="neurons (%)", ylim=(-2, 102), title="dead (x < 1e-3) and saturated, mean of seeds")
    ax.legend(fontsize="small", ncol=2)


def plot_traces(traces, labels, layer: int, neuron: int, samples=None, dt: float = 1.0, ax=None,
                variable: str = "x"):
    """One neuron's trajectory for several inputs, coloured by input (the paper's Fig. 1b-d).

    ``traces``: the dict returned by ``model(data, record=True)[1]``; ``traces[variable][layer]``
    is ``[T, B, N]``. ``labels`` ``[B]`` name each input's class; ``samples`` picks inputs.
    Time axis in ns (input point index × ``dt``, dt in ns). Draws on ``ax`` if given, else
    on a new pyplot figure; returns the axes.

    >>> import torch
    >>> from matplotlib.figure import Figure
    >>> traces = {"x": [torch.rand(64, 3, 4)]}
    >>> ax = plot_traces(traces, torch.tensor([5, 6, 9]), layer=0, neuron=2, ax=Figure().subplots())
    >>> ax.get_xlabel(), len(ax.lines)
    ('time (ns)', 3)
    """
    series = traces[variable][layer]
    samples = range(series.shape[1]) if samples is None else samples
    if ax is None:
        ax = _figure(None, figsize=(6, 3)).subplots()
    t = np.arange(1, series.shape[0] + 1) * dt
    for i, b in enumerate(samples):
        ax.plot(t, series[:, b, neuron].cpu().numpy(), color=f"C{i % 10}", label=f"class {int(labels[b])}")
    ax.set(xlabel="time (ns)", ylabel=f"{variable}", title=f"layer {layer}, neuron {neuron}")
    ax.legend(fontsize="x-small", ncol=3)
    return ax


def plot_drive_accuracy(points, path=None):
    """Accuracy vs cumulative drive I·Δt (the paper's Fig. 3c): green where τ > Δt, orange
    otherwise, a red line at I·Δt = 1. ``points``: dicts with drive, accuracy, tau, delta_t
    (``snnspin.design.drive_accuracy_points``; drive dimensionless, accuracy in %, τ and
    Δt in ns). Saves a PNG if ``path``; returns the figure.

    >>> import tempfile
    >>> points = [{"drive": 0.8, "accuracy": 90.0, "tau": 14.0, "delta_t": 1.0}]
    >>> fig = plot_drive_accuracy(points, f"{tempfile.mkdtemp()}/fig3c.png")
    >>> fig.axes[0].get_xscale(), fig.axes[0].get_xlabel()
    ('log', 'cumulative drive I·Δt')
    """
    fig = _figure(path, figsize=(5, 4))
    _draw_drive_accuracy(fig, points)
    if path is not None:
        _save(fig, path)
    return fig


def _draw_drive_accuracy(fig, points) -> None:
    ax = fig.subplots()
    for ok, color, label in [(True, "tab:green", "τ > Δt"), (False, "tab:orange", "τ ≤ Δt")]:
        chosen = [p for p in points if (p["tau"] > p["delta_t"]) == ok]
        ax.scatter([p["drive"] for p in chosen], [p["accuracy"] for p in chosen], color=color, label=label)
    ax.axvline(1.0, color="red")
    ax.set(xscale="log", xlabel="cumulative drive I·Δt", ylabel="accuracy (%)")
    ax.legend()
    fig.tight_layout()


#: Values the paper reports, drawn as red stars: (sweep, series value or None) → [(x, accuracy %)].
PAPER_POINTS = {
    ("timescale", "spintronic"): [(1.0, 89.83)],
    ("timescale", "ctrnn"): [(1.0, 89.00)],
    ("density-global", None): [(0.5, 90.28), (0.3, 85.42), (0.2, 77.78)],
    ("density-inter", None): [(0.2, 87.22)],
}

AXIS_LABELS = {
    "delta_t": "time between input points Δt (ns)",
    "d_intra": "intra-layer density",
    "d_inter": "inter-layer density",
    "density": "connection density (inter and intra)",
}


def plot_sweep(name: str, rows: list[dict], x: str, series: str, path=None, results=None, overlay: bool = True):
    """One sweep's figure in the paper's style: median accuracy over seeds vs ``x`` with the
    25-75 % band, one line per ``series`` value; ``x="drive"`` draws Fig. 3c and
    ``x="epoch"`` the train/test curves of Fig. 5 (from ``results``' histories).
    ``rows`` come from ``snnspin.sweep.table`` (accuracies in %, Δt in ns). Saves a PNG if
    ``path``; returns the figure.

    >>> import tempfile
    >>> rows = [{"model": "spintronic", "delta_t": dt, "median": 90.0, "q25": 89.0, "q75": 91.0} for dt in (0.5, 2.0)]
    >>> fig = plot_sweep("timescale", rows, "delta_t", "model", f"{tempfile.mkdtemp()}/timescale.png")
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_xscale()
    ('time between input points Δt (ns)', 'log')
    """
    if x == "drive":
        points = [{"drive": r["drive"], "accuracy": r["median"], "tau": r["tau"], "delta_t": r["delta_t"]}
                  for r in rows if r.get("drive") is not None]
        fig = _figure(path, figsize=(5, 4))
        _draw_drive_accuracy(fig, points)
        fig.axes[0].set_title(f"{name}: median over seeds")
        fig.tight_layout()  # again, with the title (else cut off at the top)
    elif x == "epoch":
        fig = _figure(path, figsize=(10, 4))
        _draw_overfit(fig, results or [], series)
    else:
        fig = _figure(path, figsize=(6, 4))
        ax = fig.subplots()
        values = sorted({r.get(series) for r in rows}, key=str) if series else [None]
        starred = False  # the paper's stars get one legend entry
        for i, value in enumerate(values):
            chosen = sorted((r for r in rows if not series or r.get(series) == value), key=lambda r: r[x])
            xs = [r[x] for r in chosen]
            label = f"{series} = {value}" if series else None
            ax.plot(xs, [r["median"] for r in chosen], "o-", color=f"C{i}", label=label)
            ax.fill_between(xs, [r["q25"] for r in chosen], [r["q75"] for r in chosen], color=f"C{i}", alpha=0.25)
            for px, py in PAPER_POINTS.get((name, value), []) if overlay else []:
                ax.plot(px, py, "*", color="red", ms=12, label=None if starred else "paper")
                starred = True
        if x == "delta_t":
            ax.set_xscale("log")
        ax.set(xlabel=AXIS_LABELS.get(x, x), ylabel="accuracy (%)", title=f"{name}: median, 25-75 % band")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def _draw_overfit(fig, results, series) -> None:
    ax_loss, ax_acc = fig.subplots(1, 2)
    groups = {}
    for r in results:
        groups.setdefault(r["point"].get(series), []).append(r["history"])
    for i, (value, histories) in enumerate(sorted(groups.items(), key=lambda kv: -kv[0])):
        epochs = [h["epoch"] for h in histories[0]]
        for key, ax, style in [("train_loss", ax_loss, "-"), ("eval_loss", ax_loss, "--"),
                               ("train_acc", ax_acc, "-"), ("eval_acc", ax_acc, "--")]:
            med = np.median([[h[key] for h in hist] for hist in histories], axis=0)
            label = f"{series} = {value}" if style == "-" else None
            ax.plot(epochs, med, style, color=f"C{i}", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss (NLL)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    ax_loss.legend(fontsize="small")
    fig.suptitle("train (solid) and test (dashed), median over seeds")
    fig.tight_layout()


def plot_robustness(summary: list[dict], path=None, title: str = ""):
    """Accuracy against each device imperfection (``snnspin.robustness.summarise`` rows): one
    panel per axis, median over seeds × chips as a line, the 25-75 % band shaded."""
    from .robustness import LABELS

    axes_names = list(dict.fromkeys(r["axis"] for r in summary))
    fig = _figure(path, figsize=(4.2 * len(axes_names), 3.4), layout="constrained")
    for i, name in enumerate(axes_names):
        ax = fig.add_subplot(1, len(axes_names), i + 1)
        rows = sorted((r for r in summary if r["axis"] == name), key=lambda r: r["value"])
        if name == "weight_bits":  # full precision (0) drawn rightmost, as the most bits
            rows = [r for r in rows if r["value"] != 0] + [r for r in rows if r["value"] == 0]
            x = np.arange(len(rows))
            ax.set_xticks(x, [str(r["value"]) if r["value"] else "full" for r in rows])
        else:
            x = np.array([r["value"] for r in rows], dtype=float)
        ax.fill_between(x, [r["q25"] for r in rows], [r["q75"] for r in rows], alpha=0.3)
        ax.plot(x, [r["median"] for r in rows], "o-")
        ax.set_xlabel(LABELS.get(name, name))
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    if path is not None:
        _save(fig, path)
    return fig
