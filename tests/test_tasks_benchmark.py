"""benchmarks/tasks.py in its --fast mode: the tasks' files, one tiny run, the table and a resumed rerun."""

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from snnspin.data import load_series

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "tasks.py"


@pytest.fixture(scope="module")
def tasks():
    spec = importlib.util.spec_from_file_location("benchmark_tasks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_every_task_is_a_valid_own_data_file_with_its_own_test_split(tasks, tmp_path):
    assert len(tasks.TASKS) >= 4
    assert sum(t.n_inputs >= 2 for t in tasks.TASKS.values()) >= 2
    assert sum(t.n_classes != 10 for t in tasks.TASKS.values()) >= 2
    for task in tasks.TASKS.values():
        path = tasks.write_task(task, tmp_path, fast=True)
        split = load_series(path)  # snnspin's own-data checks
        assert (split.n_inputs, split.n_classes) == (task.n_inputs, task.n_classes)
        assert split.x_train.shape[0] == task.length
        arrays = task.arrays(fast=True)
        assert not np.array_equal(arrays["x"], arrays["x_test"])  # train and test from different seeds
        assert np.array_equal(arrays["x"], task.arrays(fast=True)["x"])  # the same from the same seed
        assert set(np.bincount(arrays["y"], minlength=task.n_classes)) - {0}  # every class present
        assert np.bincount(arrays["y"], minlength=task.n_classes).min() > 0


def test_fast_run_writes_the_table_and_a_rerun_trains_nothing(tasks, tmp_path, capsys):
    argv = ["--fast", "--tasks", "order", "first", "--seeds", "1", "--quiet",
            "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    rows = tasks.main(argv)
    assert [(r["task"], r["model"]) for r in rows] == [
        (t, m) for t in ("order", "first") for m in ("spintronic", "ctrnn", "gru")]
    for name in ("tasks.md", "tasks.csv", "tasks.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    with open(tmp_path / "out" / "tasks.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 6 and {"mean", "std", "min", "stuck", "chance", "minus_gru", "seconds"} <= set(table[0])
    gru = tasks._read_json(tmp_path / "work" / "order" / "gru" / "seed_0.json")
    assert gru["steps"] == rows[0]["steps"]  # the GRU copies the spintronic run's optimiser steps
    capsys.readouterr()
    again = tasks.main(argv)
    out = capsys.readouterr().out
    assert out.count("finished earlier") == 4 and "gru seed" not in out  # nothing trained again
    assert [r["mean"] for r in again] == [r["mean"] for r in rows]
