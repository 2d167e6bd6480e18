"""Figures saved to a path leave matplotlib's backend and pyplot alone; others go through pyplot."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import matplotlib

    matplotlib.use("svg")  # the caller's own choice, not Agg
    calls = []
    original_use = matplotlib.use
    matplotlib.use = lambda *args, **kwargs: (calls.append(args), original_use(*args, **kwargs))[1]

    import torch
    from matplotlib.figure import Figure

    from snnspin.plot import plot_drive_accuracy, plot_sweep, plot_traces, plot_training_curves

    out = Path(sys.argv[1])
    epochs = [{"epoch": e, "train_loss": 2.0 / e, "eval_loss": 2.1 / e, "train_acc": 30.0 * e, "eval_acc": 28.0 * e}
              for e in (1, 2)]
    rows = [{"model": m, "delta_t": dt, "median": 90.0, "q25": 89.0, "q75": 91.0, "drive": 0.9, "tau": 2.0}
            for m in ("spintronic", "ctrnn") for dt in (0.5, 2.0)]
    runs = [{"point": {"density": d}, "history": epochs} for d in (0.5, 0.1)]
    figures = {
        "curves.png": plot_training_curves({0: epochs, 1: epochs}, out / "curves.png", title="t"),
        "fig3c.png": plot_drive_accuracy([{"drive": 0.8, "accuracy": 90.0, "tau": 14.0, "delta_t": 1.0}],
                                         out / "fig3c.png"),
        "timescale.png": plot_sweep("timescale", rows, "delta_t", "model", out / "timescale.png"),
        "drive.png": plot_sweep("drive", rows, "drive", "", out / "drive.png"),
        "overfit.png": plot_sweep("overfit", [], "epoch", "density", out / "overfit.png", results=runs),
    }
    plot_traces({"x": [torch.rand(64, 3, 4)]}, torch.tensor([1, 2, 3]), layer=0, neuron=1, ax=Figure().subplots())
    for name, fig in figures.items():
        assert (out / name).read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n", name
        assert fig.axes, name
    print(matplotlib.get_backend(), calls, "matplotlib.pyplot" in sys.modules)
    """
)


def test_saving_figures_keeps_the_backend_and_never_loads_pyplot(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "[]", "False"]  # backend, matplotlib.use calls, pyplot loaded


def test_figures_without_a_path_are_pyplots_for_show(tmp_path):
    import matplotlib.pyplot as plt

    from snnspin.plot import plot_drive_accuracy, plot_training_curves

    epochs = [{"epoch": 1, "train_loss": 2.0, "eval_loss": 2.1, "train_acc": 30.0, "eval_acc": 28.0}]
    backend = plt.get_backend()
    shown = [plot_training_curves({0: epochs}), plot_drive_accuracy([{"drive": 1.0, "accuracy": 50.0, "tau": 2.0,
                                                                      "delta_t": 1.0}])]
    try:
        assert all(fig.number in plt.get_fignums() for fig in shown)  # plt.show() would display them
        assert plt.get_backend() == backend
    finally:
        for fig in shown:
            plt.close(fig)
    saved = plot_training_curves({0: epochs}, tmp_path / "c.png")
    assert saved not in [plt.figure(n) for n in plt.get_fignums()]


def test_the_papers_stars_have_one_legend_entry(tmp_path):
    from snnspin.plot import plot_sweep

    rows = [{"density": d, "median": 90.0, "q25": 89.0, "q75": 91.0} for d in (0.2, 0.5, 1.0)]
    fig = plot_sweep("density-global", rows, "density", "", tmp_path / "d.png")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    assert labels == ["paper"]
    assert len(fig.axes[0].lines) == 4  # the sweep's line and the paper's 3 points
