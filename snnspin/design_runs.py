"""Design figures read from run folders (``snnspin train`` output): the points of Fig. 3c.

The formulas are in ``snnspin.design_rules`` and the report of one network in
``snnspin.design``; this module only walks run folders, loads their trained weights and
final accuracies, and hands them to the report.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from .io import read_json


def drive_accuracy_points(run_dirs) -> list[dict]:
    """One point per run folder for Fig. 3c: median over seeds of the cumulative drive
    I·Δt = S ⟨|W|⟩ √N Δt (from the trained weights; dimensionless) and of the final
    evaluation accuracy (%), with τ and Δt (ns). Folders without trained weights give no point.

    >>> drive_accuracy_points([])
    []
    """
    from .design import report
    from .training import trained_models

    points = []
    for run in map(Path, run_dirs):
        config, models = trained_models(run)
        drives, accuracies = [], []
        for seed, model in models:
            drives.append(report(config, model)["cumulative_drive"])
            accuracies.append(read_json(run / f"seed_{seed}" / "history.json")[-1]["eval_acc"])
        if drives:
            points.append({
                "run": str(run), "tau": config.tau, "delta_t": config.delta_t,
                "drive": statistics.median(drives), "accuracy": statistics.median(accuracies),
                "seeds": len(drives),
            })
    return points
