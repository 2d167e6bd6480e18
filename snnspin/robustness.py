"""Does a trained network survive real devices? Accuracy of a run's trained weights deployed
on many random chips, one device imperfection at a time.

Three axes, each varied with the others at the run's own values:

- ``mismatch``: relative device spread m (``snnspin.device``); every (seed, chip) pair is
  a new chip drawn with ``chip_seed`` = 10_000 + chip (m = 0: identical, ideal devices; the
  other axes keep the chip the run was evaluated on);
- ``thermal_power``: thermal noise x_th (spintronic only; ``thermal_kick``), a new noise
  draw per chip index;
- ``weight_bits``: synaptic precision after training (0: full precision), deterministic.

For each value, the accuracy on the run's evaluation data (the test half, or its validation
part if the run was tuned on one) is summarised over seeds × chips by its median and its
25-75 % band.
"""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np

from .config import TrainConfig

#: The default values per axis: what a device designer asks about (0 first: the reference).
AXES = {
    "mismatch": (0.0, 0.02, 0.05, 0.1),
    "thermal_power": (0.0, 1e-3, 1e-2, 3e-2),
    "weight_bits": (0, 8, 6, 4),
}


def axes_for(config: TrainConfig, axes: dict | None = None) -> dict:
    """The axes that apply to ``config.model`` (LIF: bits only; CTRNN: no thermal noise), with
    their values checked; ``ValueError`` for one that does not apply or a bad value.

    >>> list(axes_for(TrainConfig(model="ctrnn")))
    ['mismatch', 'weight_bits']
    """
    applies = {"spintronic": ("mismatch", "thermal_power", "weight_bits"), "ctrnn": ("mismatch", "weight_bits"),
               "lif": ("weight_bits",), "alif": ("weight_bits",)}[config.model]
    if config.learn_tau:  # the trained τ are the devices: a chip would overwrite them
        applies = tuple(a for a in applies if a != "mismatch")
    chosen = axes if axes is not None else {k: v for k, v in AXES.items() if k in applies}
    for name, values in chosen.items():
        if name not in applies:
            why = " with learn_tau (the trained τ are the devices)" if config.learn_tau and name == "mismatch" else ""
            raise ValueError(f"{name} does not apply to the {config.model} model{why} (axes here: {', '.join(applies)})")
        for value in values:  # the config's own checks name a bad value (deployed: on one fixed chip)
            config.replace(chip_draw="fixed", **{name: value})
    return chosen


def _deploy(model, config: TrainConfig, axis: str, value, chip: int):
    """A copy of the trained ``model`` on chip ``chip`` with ``axis`` set to ``value``."""
    from .device import apply_chip, draw_chip, seed_noise

    model = copy.deepcopy(model)
    if axis == "mismatch":
        apply_chip(model, draw_chip(config.layers, config.width, float(value), 10_000 + chip))
    elif axis == "thermal_power":
        for neuron in model.neurons:
            neuron.thermal_power = float(value)
    elif axis == "weight_bits":
        for linear in (*model.w_ext, *model.w_int, model.readout):
            linear.bits = int(value)
    seed_noise(model, 10_000 + chip)  # every noisy layer (the run's own or this axis's) draws reproducibly
    return model


def evaluate_robustness(run_dir, chips: int = 10, axes: dict | None = None, progress=None) -> list[dict]:
    """Rows {axis, value, seed, chip, accuracy (%)}: every trained seed of the run folder
    ``run_dir``, deployed on ``chips`` chips per value of every axis (deterministic axes,
    bits and the value 0 of mismatch without noise, on one chip only).

    ``progress(done, total)`` is called after each evaluation.
    """
    import warnings

    from .training import evaluate, load_data, trained_models

    if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
        raise ValueError(f"chips must be an integer >= 1, got {chips!r}")
    config, models = trained_models(run_dir)
    axes = axes_for(config, axes)
    trained = list(models)
    if not trained:
        raise ValueError(f"no trained weights in {run_dir} (seed_<k>/weights.pt)")
    _, (x_eval, y_eval) = load_data(config)
    jobs = [(axis, value, chip) for axis, values in axes.items() for value in values
            for chip in range(1 if _deterministic(axis, value, config) else chips)]
    rows, total = [], len(jobs) * len(trained)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="using the per-step reference path")
        for seed, model in trained:
            for axis, value, chip in jobs:
                deployed = _deploy(model, config, axis, value, chip)
                _, accuracy = evaluate(deployed, x_eval, y_eval)
                rows.append({"axis": axis, "value": value, "seed": seed, "chip": chip, "accuracy": accuracy})
                if progress is not None:
                    progress(len(rows), total)
    return rows


def _deterministic(axis: str, value, config: TrainConfig) -> bool:
    """Whether chips do not matter for this point (one evaluation is enough): no spread drawn
    (the mismatch axis at 0: identical devices; the other axes keep the run's own chip) and
    no noise (the thermal axis at 0, or a run trained without noise)."""
    if axis == "thermal_power":
        return value == 0
    noiseless = not config.thermal_power
    return noiseless and (axis == "weight_bits" or value == 0)


def summarise(rows: list[dict]) -> list[dict]:
    """Per (axis, value): median, 25 % and 75 % accuracy over seeds × chips, and their count.

    >>> summarise([{"axis": "mismatch", "value": 0.1, "seed": 0, "chip": c, "accuracy": a}
    ...            for c, a in enumerate([80.0, 90.0, 100.0])])
    [{'axis': 'mismatch', 'value': 0.1, 'n': 3, 'median': 90.0, 'q25': 85.0, 'q75': 95.0}]
    """
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["axis"], r["value"]), []).append(r["accuracy"])
    out = []
    for (axis, value), accuracies in groups.items():
        a = np.asarray(accuracies, dtype=float)
        out.append({"axis": axis, "value": value, "n": len(a), "median": float(np.median(a)),
                    "q25": float(np.percentile(a, 25)), "q75": float(np.percentile(a, 75))})
    return out


LABELS = {"mismatch": "device spread m (relative std of τ, σ)", "thermal_power": "thermal noise x_th = k_B T / E_0",
          "weight_bits": "weight precision (bits; 0 = full)"}


def write_outputs(rows: list[dict], out_dir, title: str = "") -> dict:
    """``robustness.csv`` (every evaluation), ``robustness.md`` (the summary) and
    ``robustness.png`` (accuracy against each axis: median and 25-75 % band) in ``out_dir``."""
    from .io import atomic_write_text
    from .plot import plot_robustness

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "robustness.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["axis", "value", "seed", "chip", "accuracy"])
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows)
    lines = [f"# Robustness{': ' + title if title else ''}", "",
             "| axis | value | evaluations | median (%) | 25 % | 75 % |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {s['axis']} | {s['value']:g} | {s['n']} | {s['median']:.2f} | {s['q25']:.2f} | {s['q75']:.2f} |"
              for s in summary]
    atomic_write_text(out / "robustness.md", "\n".join(lines) + "\n")
    plot_robustness(summary, out / "robustness.png", title)
    return {"csv": out / "robustness.csv", "md": out / "robustness.md", "png": out / "robustness.png"}
