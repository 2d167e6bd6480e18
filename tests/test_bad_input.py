"""Bad inputs and damaged files (issue #13): each one gets a one-line error that names what
is wrong, and nothing is written before every check has passed.

Each table row is one case a new user ran into; keep them, so that they stay true.
"""

import json
import math
import os
import pickle
import shutil
import time

import numpy as np
import pytest
import torch

from snnspin.cli import _config_from_args, build_parser, main
from snnspin.config import TrainConfig
from snnspin.data import SequenceDataset, SequentialDigits
from snnspin.io import atomic_torch_save, atomic_write_json, atomic_write_text
from snnspin.models import build_model
from snnspin.presets import TUNED, preset_config
from snnspin.training import train

TINY = ["--layers", "1", "--width", "3", "--epochs", "1", "--batch-size", "450", "--quiet"]


def refused(argv, capsys, match):
    """Run the CLI; it must end with status 2 and exactly one line ``error: ...`` containing ``match``."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert "Traceback" not in err and "weights_only" not in err, err
    assert match in lines[-1], lines[-1]
    return lines[-1]


# --- TrainConfig: types are checked, not coerced -------------------------------------------------

@pytest.mark.parametrize("changes, match", [
    ({"tau": "abc"}, "tau must be a finite number, got 'abc'"),
    ({"tau": None}, "tau must be a finite number, got None"),
    ({"tau": True}, "tau must be a finite number, got True"),
    ({"tau": float("nan")}, "tau must be a finite number, got nan"),
    ({"lr0": float("inf")}, "lr0 must be a finite number, got inf"),
    ({"gain": float("inf")}, "gain must be a finite number, got inf"),
    ({"gain": -float("inf")}, "gain must be a finite number, got -inf"),
    ({"epochs": "1"}, "epochs must be an integer, got '1'"),
    ({"epochs": 1.5}, "epochs must be an integer, got 1.5"),
    ({"epochs": True}, "epochs must be an integer, got True"),
    ({"width": 4.7}, "width must be an integer, got 4.7"),
    ({"width": 0}, "width must be >= 1, got 0"),
    ({"learn_tau": "false"}, "learn_tau must be true or false (a JSON boolean), got 'false'"),
    ({"learn_tau": 1}, "learn_tau must be true or false (a JSON boolean), got 1"),
    ({"model": 3}, "model must be a string, got 3"),
    ({"model": "transformer"}, "model must be one of spintronic, ctrnn, lif, alif, got 'transformer'"),
    ({"d_inter": 1.5}, "d_inter must be in [0, 1], got 1.5"),
    ({"val_fraction": 1.0}, "val_fraction must be in [0, 1), got 1.0"),
    ({"split_seed": -1}, "split_seed must be in [0, 2**32 - 1], got -1"),
    ({"device": "foo"}, "device must be one of auto, cpu, cuda, cuda:<index>, mps, got 'foo'"),
    ({"device": None}, "device must be a string, got None"),
])
def test_config_refuses_bad_types_and_values(changes, match):
    with pytest.raises(ValueError) as caught:
        TrainConfig(**changes)
    assert str(caught.value) == match
    with pytest.raises(ValueError, match="got"):  # replace validates the same way
        TrainConfig().replace(**changes)


def test_config_accepts_what_json_and_numpy_give():
    config = TrainConfig(tau=3, epochs=np.int64(2), learn_tau=np.bool_(True), lr0=np.float32(0.5))
    assert (config.tau, config.epochs, config.learn_tau, config.lr0) == (3.0, 2, True, 0.5)
    assert type(config.tau) is float and type(config.epochs) is int and type(config.learn_tau) is bool
    assert TrainConfig.from_json(config.to_json()) == config


# --- --config files: one line naming the file, nothing written ------------------------------------

@pytest.mark.parametrize("text, match", [
    ("[1, 2]", "must be a JSON object of config fields, got a list"),
    ('"tau"', "must be a JSON object of config fields, got a string"),
    ('{"tau": "abc"}', "tau must be a finite number, got 'abc'"),
    ('{"tau": null}', "tau must be a finite number, got None"),
    ('{"tau": true}', "tau must be a finite number, got True"),
    ('{"tau": NaN}', "tau must be a finite number, got nan"),
    ('{"lr0": Infinity}', "lr0 must be a finite number, got inf"),
    ('{"epochs": "1"}', "epochs must be an integer, got '1'"),
    ('{"epochs": 1.5}', "epochs must be an integer, got 1.5"),
    ('{"width": 4.7}', "width must be an integer, got 4.7"),
    ('{"learn_tau": "false"}', "learn_tau must be true or false (a JSON boolean), got 'false'"),
    ('{"model": "transformer"}', "model must be one of spintronic, ctrnn, lif, alif, got 'transformer'"),
    ('{"model": ["lif"]}', "model must be one of spintronic, ctrnn, lif, alif, got ['lif']"),
    ('{"colour": "red"}', "unknown config fields: colour"),
    ('{"tau": 2.0', "not valid JSON (Expecting ',' delimiter"),
    ("", "not valid JSON (Expecting value"),
])
@pytest.mark.parametrize("command", ["train", "tune"])
def test_bad_config_file(command, text, match, tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(text)
    out = tmp_path / "out"
    line = refused([command, "--config", path, "--quiet", "--out", out], capsys, match)
    assert line.startswith(f"error: config {path}: ")
    assert not out.exists()


@pytest.mark.parametrize("make, match", [
    (lambda tmp: tmp, "is a folder, not a JSON file"),
    (lambda tmp: tmp / "missing.json", "no such file"),
    (lambda tmp: (tmp / "bin.json").write_bytes(b"\xff\xfe\x00") and tmp / "bin.json", "not a text file"),
])
def test_config_path_that_is_not_a_json_file(make, match, tmp_path, capsys):
    path = make(tmp_path)
    line = refused(["train", "--config", path, "--out", tmp_path / "out"], capsys, match)
    assert line == f"error: config {path}: {match}" or line.startswith(f"error: config {path}: {match}")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=f"config {path}: {match}"):
        TrainConfig.load(path)


# --- flags and devices: checked before anything is written ---------------------------------------

@pytest.mark.parametrize("flags, match, rerun", [
    (["--lr0", "inf"], "lr0 must be a finite number, got inf", False),
    (["--gain", "inf"], "gain must be a finite number, got inf", False),
    (["--tau", "nan"], "tau must be a finite number, got nan", False),
    (["--tau", "-1"], "tau must be > 0, got -1.0", False),
    (["--val-fraction", "1"], "val_fraction must be in [0, 1), got 1.0", False),
    (["--device", "foo"], "device must be one of auto, cpu, cuda, cuda:<index>, mps, got 'foo'", True),
    pytest.param(["--device", "cuda"], "device 'cuda' is not available", True,
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    (["--device", "cuda:99"], "device 'cuda:99' is not available", False),
])
def test_bad_flags_write_nothing(flags, match, rerun, tmp_path, capsys):
    out = tmp_path / "run"
    refused(["train", *TINY, *flags, "--out", out], capsys, match)
    assert not out.exists()
    if rerun:  # the corrected command is not refused as "already holds a run"
        assert main(["train", *TINY, "--out", str(out)]) == 0


def test_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    refused(["train", *TINY, "--out", tmp_path / "f"], capsys, "is a file, not a run folder")


@pytest.mark.parametrize("argv", [
    ["train", "--layers", "2", "--width", "1", "--epochs", "1", "--batch-size", "450", "--quiet"],
    ["train", "--layers", "2", "--width", "3", "--d-inter", "0", "--d-intra", "0", "--epochs", "1",
     "--batch-size", "450", "--quiet", "--engine", "reference"],
    ["design", "--width", "1"],
    ["design", "--d-inter", "0", "--d-intra", "0"],
])
def test_no_connections_between_neurons_is_reported_and_no_input_refused(argv, tmp_path, capsys):
    """design reports a network without connections; training one whose first layer keeps no
    connection from the input (here its masks drop them all) is refused: it could not learn."""
    if argv[0] == "design":
        assert main(argv) == 0
        return
    assert main(argv + ["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "fan-in N = 0" in err and "layer 0 keeps no connection from the input" in err
    assert not (tmp_path / "run").exists()  # refused before anything is written


# --- preset < config file < flags -----------------------------------------------------------------

def _parse(tmp_path, fields, *flags):
    argv = ["train", *flags]
    if fields is not None:
        (tmp_path / "c.json").write_text(json.dumps(fields))
        argv += ["--config", str(tmp_path / "c.json")]
    return _config_from_args(build_parser().parse_args(argv))[0]


@pytest.mark.parametrize("fields, flags, expected", [
    (None, [], preset_config("spintronic")),
    ({"tau": 3.0}, [], preset_config("spintronic", tau=3.0)),  # missing fields: the tuned preset, not the paper's
    ({"tau": 3.0}, ["--preset", "tuned"], preset_config("spintronic", tau=3.0)),
    ({"tau": 3.0}, ["--preset", "paper"], TrainConfig(tau=3.0)),
    ({"tau": 3.0}, ["--preset", "tuned", "--tau", "4", "--lr0", "0.1"], preset_config("spintronic", tau=4.0, lr0=0.1)),
    ({"model": "ctrnn", "tau": 3.0}, [], preset_config("ctrnn", tau=3.0)),
    ({"model": "ctrnn"}, ["--model", "lif"], preset_config("lif")),  # the flag's model picks the preset
    ({"model": "lif"}, ["--preset", "paper"], TrainConfig(model="lif")),
    # a complete file (a run's config.json) is taken as it is, whatever the preset
    (TrainConfig(tau=5.0, width=8).to_dict(), ["--preset", "tuned"], TrainConfig(tau=5.0, width=8)),
    # epochs typed on the command line are epochs of the data (schedule "epochs", not digit steps)
    (TrainConfig(tau=5.0).to_dict(), ["--epochs", "2"], TrainConfig(tau=5.0, epochs=2, schedule="epochs")),
])
def test_preset_then_config_file_then_flags(fields, flags, expected, tmp_path):
    assert _parse(tmp_path, fields, *flags) == expected


def test_precedence_is_documented_in_help():
    for command in ("train", "tune", "design"):
        text = " ".join(build_parser()._subparsers._group_actions[0].choices[command].format_help().split())
        assert "preset < config file < explicit flags" in text
    import snnspin.cli

    assert "preset < config file < explicit flags" in snnspin.cli.__doc__


def test_help_shows_each_default_once_and_boolean_flags():
    parser = build_parser()._subparsers._group_actions[0].choices["train"]
    for action in parser._actions:
        if action.help:
            assert action.help.count("paper:") <= 1 and action.help.count("default:") <= 1, action.help
    text = " ".join(parser.format_help().split())
    assert "(default: tuned preset, 1.974 for spintronic; paper: 14.12; tuned ctrnn 2.159, lif 5.0)" in text
    assert (f"(default: tuned preset, {TUNED['spintronic']['epochs']} for spintronic; --preset paper: 30; "
            f"tuned lif {TUNED['lif']['epochs']})") in text
    assert "(default: on; tuned lif off)" in text  # detach_reset: the LIF preset keeps the reset's gradient
    assert "(default: 3, the paper's)" in text
    assert "--learn-tau, --no-learn-tau" in text and "LEARN_TAU" not in text
    parse = lambda *a: build_parser().parse_args(["train", *a])
    assert parse("--learn-tau").learn_tau is True and parse("--no-learn-tau").learn_tau is False
    assert parse().learn_tau is None
    with pytest.raises(SystemExit):
        parse("--learn-tau", "false")


# --- resume: never shrink a run, never rewrite its record on a refusal ----------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 2-epoch, 2-seed run (the dataclass defaults: the paper preset)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    train(TrainConfig(layers=1, width=3, epochs=2, batch_size=450, seeds=2), out, progress=False)
    return out


def _copy(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize("flags, match", [
    (["--epochs", "1"], "the run has 2 epochs done; --epochs 1 would shrink it"),
    (["--seeds", "1"], "the run has seeds 0, 1 started or done; --seeds 1 would shrink it"),
    (["--tau", "3"], "cannot resume with a different configuration (tau: saved 14.12, requested 3.0)"),
    (["--preset", "tuned", "--layers", "1", "--width", "3", "--batch-size", "450"],
     "cannot resume with a different configuration"),
    (["--device", "foo"], "device must be one of"),
])
def test_resume_refusals_leave_the_run_untouched(finished_run, flags, match, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    refused(["train", "--out", run, "--resume", "--quiet", *flags], capsys, match)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_without_a_run(tmp_path, capsys):
    refused(["train", "--out", tmp_path / "none", "--resume"], capsys, "--resume: no run in")
    refused(["train", "--resume"], capsys, "--resume needs --out")


# --- damaged or foreign checkpoint.pt / weights.pt: one line naming the file, nothing loaded ------

class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _damage(kind, path, tmp_path):
    good = path.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "cut short":
        path.write_bytes(good[:-30])
    elif kind == "garbage":
        path.write_bytes(b"not a checkpoint at all\n" * 20)
    elif kind == "plain pickle":
        path.write_bytes(pickle.dumps({"model": [1, 2, 3]}))
    elif kind == "malicious":
        torch.save({"model": _Evil(tmp_path / "PWNED"), "optimizer": {}, "scheduler": {}, "history": []}, path)
    elif kind == "a list":
        torch.save([torch.ones(2)], path)
    elif kind in ("other width", "other model"):  # a well-formed file of another network
        other = TrainConfig(layers=1, width=4) if kind == "other width" else TrainConfig(model="lif", layers=1, width=3)
        state = build_model(other).state_dict()
        if path.name == "checkpoint.pt":
            state = {**torch.load(path, weights_only=True), "model": state}
        torch.save(state, path)


DAMAGE = {
    "empty": "not a snnspin checkpoint (empty file)",
    "truncated": "not a snnspin checkpoint (truncated or corrupted",
    "cut short": "not a snnspin checkpoint (truncated or corrupted",
    "garbage": "not a snnspin checkpoint (",
    "plain pickle": "not a snnspin checkpoint (",
    "malicious": "not a snnspin checkpoint (it asks to build the Python object",
    "a list": "not a snnspin checkpoint (it holds a list",
    "other width": "saved for another model or width (size mismatch on w_ext.0.weight: shape (4, 1) in the file "
                   "but (3, 1) in the model",
    "other model": "saved for another model or width (",
}


@pytest.mark.parametrize("kind", list(DAMAGE))
@pytest.mark.parametrize("name", ["checkpoint.pt", "weights.pt"])
def test_damaged_or_foreign_files_are_refused_in_one_line(finished_run, name, kind, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    path = run / "seed_0" / name
    _damage(kind, path, tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    if name == "checkpoint.pt":
        argv = ["train", "--out", run, "--resume", "--epochs", "3", "--quiet"]
    else:
        argv = ["design", "--run", run]
    line = refused(argv, capsys, DAMAGE[kind])
    assert line.startswith(f"error: {path}: ") and line.endswith("; it was not loaded")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing rewritten
    assert not (tmp_path / "PWNED").exists()  # the pickle was never run


# --- tune: bad --trials and --storage, fast and in one line -----------------------------------

@pytest.mark.parametrize("trials", ["0", "-3"])
def test_tune_needs_at_least_one_trial(trials, tmp_path, capsys):
    refused(["tune", *TINY, "--trials", trials, "--out", tmp_path / "t"], capsys,
            f"--trials must be at least 1, got {trials}")
    assert not (tmp_path / "t").exists()
    from snnspin.hpo import tune

    with pytest.raises(ValueError, match="n_trials"):
        tune(TrainConfig(), tmp_path / "t", n_trials=0)
    assert not (tmp_path / "t").exists()


def _missing(module):
    try:
        __import__(module)
        return False
    except ImportError:
        return True


@pytest.mark.parametrize("url, match", [
    ("nonsense", "not a storage URL"),
    ("foo://x", "unknown database kind 'foo'"),
    ("sqlite:////no/such/folder/study.db", "the folder /no/such/folder does not exist"),
    pytest.param("postgresql+psycopg2://me:pw@localhost:1/db",
                 "driver psycopg2 is not installed; pip install psycopg2-binary",
                 marks=pytest.mark.skipif(not _missing("psycopg2"), reason="psycopg2 is here")),
    pytest.param("mysql+pymysql://me:pw@localhost/db",
                 "driver pymysql is not installed; pip install pymysql",
                 marks=pytest.mark.skipif(not _missing("pymysql"), reason="pymysql is here")),
    pytest.param("mysql://me:pw@localhost/db",
                 "driver MySQLdb is not installed; pip install mysqlclient",
                 marks=pytest.mark.skipif(not _missing("MySQLdb"), reason="MySQLdb is here")),
])
def test_tune_bad_storage_is_one_quick_line(url, match, tmp_path, capsys):
    start = time.perf_counter()
    line = refused(["tune", *TINY, "--trials", "1", "--storage", url, "--out", tmp_path / "t"], capsys, match)
    assert time.perf_counter() - start < 3.0  # no retry loop for what retrying cannot fix
    shown = url.replace(":pw@", ":***@")
    assert f"storage '{shown}'" in line and ":pw@" not in line
    assert not (tmp_path / "t").exists()


# --- data -----------------------------------------------------------------------------------------

X = np.zeros((2, 5))


@pytest.mark.parametrize("make, match", [
    (lambda: SequentialDigits("train", val_fraction=-0.2), r"val_fraction must be in \[0, 1\), got -0.2"),
    (lambda: SequentialDigits("train", val_fraction=math.nan), r"val_fraction must be in \[0, 1\), got nan"),
    (lambda: SequentialDigits("train", val_fraction=1.5), r"val_fraction must be in \[0, 1\), got 1.5"),
    (lambda: SequentialDigits("train", val_fraction="0.2"), r"val_fraction must be in \[0, 1\), got '0.2'"),
    (lambda: SequentialDigits("val", val_fraction=math.nan), r"val_fraction must be in \[0, 1\), got nan"),
    (lambda: SequentialDigits("val", val_fraction=0.0), "split='val' needs val_fraction > 0"),
    (lambda: SequentialDigits("train", val_fraction=0.001), "val_fraction = 0.001 cannot split 898 samples"),
    (lambda: SequentialDigits("test", test_fraction=1.0), r"test_fraction must be in \(0, 1\), got 1.0"),
    (lambda: SequenceDataset(X, [0.2, 1.7]), "targets must be whole-number class labels, got 0.2 at index 0"),
    (lambda: SequenceDataset(X, [0.0, math.nan]), "targets must be whole-number class labels, got nan at index 1"),
    (lambda: SequenceDataset(X, ["a", "b"]), "targets must be integer class labels"),
    (lambda: SequenceDataset([[0.0, math.nan], [1.0, 2.0]], [0, 1]), "data contains NaN or infinite values"),
    (lambda: SequenceDataset([[0.0, math.inf], [1.0, 2.0]], [0, 1]), "data contains NaN or infinite values"),
])
def test_bad_data(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_whole_valued_float_labels_are_accepted():
    ds = SequenceDataset(X, [1.0, 0.0])
    assert ds.targets.dtype == np.int64 and ds[0][1] == 1 and ds.classes == [0, 1]


# --- files written by snnspin respect the umask -----------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_respect_the_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        written = [atomic_write_text(tmp_path / "a.txt", "x"), atomic_write_json(tmp_path / "b.json", {}),
                   atomic_torch_save({"w": torch.ones(1)}, tmp_path / "c.pt")]
    finally:
        os.umask(old)
    assert [oct(p.stat().st_mode & 0o777) for p in written] == [oct(mode)] * 3


# --- sweep --grid: values parsed by field type, every point checked before a store is made ----------

@pytest.mark.parametrize("grid, match", [
    (["width=4.5"], "--grid 'width=4.5': width takes int values"),
    (["colour=red"], "--grid 'colour=red': expected FIELD=V1,V2,... with FIELD a config field or density"),
    (["tau"], "--grid 'tau': expected FIELD=V1,V2"),
    (["tau=1,-2"], "tau must be > 0, got -2.0"),
    (["density=0.5,2"], "d_inter must be in [0, 1], got 2.0"),
])
def test_bad_sweep_grid(grid, match, tmp_path, capsys):
    refused(["sweep", "custom", "--grid", *grid, "--out", tmp_path / "s"], capsys, match)
    assert not (tmp_path / "s").exists()
