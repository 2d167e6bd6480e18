"""Several worker processes on one store, one SIGKILLed mid-training: every planned training
finishes exactly once, on SQLite and on a real PostgreSQL server (pgserver)."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import sqlalchemy as sa

from snnspin.claims import Claims, work

TINY = {"layers": 1, "width": 4, "epochs": 3, "batch_size": 450}
HEARTBEAT = "1"  # s; a worker silent for 5 beats is taken over
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server = request.getfixturevalue("postgres")
    name = f"t{os.getpid()}_{int(time.time() * 1e6)}"
    server.psql(f"CREATE DATABASE {name};")
    return server.get_uri(name)


def _workers(args, n=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return [subprocess.Popen([sys.executable, "-m", "snnspin.cli", *args], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(n)]


def _claims(storage, queue):
    engine = sa.create_engine(storage)
    with engine.connect() as db:
        rows = db.execute(sa.text("SELECT key, state, worker, trial, attempts FROM snnspin_claims WHERE queue = :q"),
                          {"q": queue}).mappings().all()
    engine.dispose()
    return {r["key"]: dict(r) for r in rows}


def _kill_one_mid_training(procs, storage, queue, ready=lambda trial: True, timeout=240):
    """SIGKILL a worker that holds a running claim whose trial is ``ready`` (a predicate on its
    trial number); (its key, its trial number, the process)."""
    pids = {p.pid: p for p in procs}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rows = _claims(storage, queue)
        except sa.exc.DBAPIError:  # the table does not exist yet
            rows = {}
        for key, row in rows.items():
            pid = int(row["worker"].split(":")[-2])
            if row["state"] == "running" and row["trial"] is not None and pid in pids and ready(row["trial"]):
                pids[pid].send_signal(signal.SIGKILL)
                pids[pid].wait()
                return key, row["trial"], pids[pid]
        time.sleep(0.05)
    raise AssertionError(f"no worker held a training within {timeout} s")


def _wait(procs, timeout=600):
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outs.append((p.returncode, out))
    return outs


def test_sweep_workers_one_killed_every_training_exactly_once(storage, tmp_path):
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    args = ["sweep", "custom", "--config", str(tmp_path / "tiny.json"), "--grid", "delta_t=0.5,1,2", "--seeds", "2",
            "--storage", storage, "--heartbeat", HEARTBEAT]
    procs = _workers(args)
    killed_key, killed_trial, killed = _kill_one_mid_training(procs, storage, "sweep-custom")
    survivors = [p for p in procs if p is not killed]
    for code, out in _wait(survivors):
        assert code == 0, out
    rows = _claims(storage, "sweep-custom")
    assert len(rows) == 6 and {r["state"] for r in rows.values()} == {"done"}
    assert rows[killed_key]["attempts"] == 2 and rows[killed_key]["trial"] != killed_trial  # retried
    study = optuna.load_study(study_name="sweep-custom", storage=storage)
    complete = [t.user_attrs["key"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(complete) == sorted(rows)  # each (point, seed) once: none lost, none twice
    assert study.trials[killed_trial].state == optuna.trial.TrialState.FAIL
    # a rerun trains nothing and says so
    again = subprocess.run([sys.executable, "-m", "snnspin.cli", *args], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "6 trainings finished" in again.stdout, again.stderr
    assert len(optuna.load_study(study_name="sweep-custom", storage=storage).trials) == len(study.trials)


def test_tune_workers_one_killed_its_trial_retried(storage, tmp_path):
    args = ["tune", "--layers", "1", "--width", "4", "--epochs", "3", "--batch-size", "450", "--trials", "4",
            "--storage", storage, "--heartbeat", HEARTBEAT, "--out", str(tmp_path / "tune")]
    procs = _workers(args)

    def training(number):  # all 7 parameters drawn: the trial's training has started
        study = optuna.load_study(study_name="snnspin-spintronic", storage=storage)
        return len(study.trials[number].params) == 7

    _, killed_trial, killed = _kill_one_mid_training(procs, storage, "snnspin-spintronic", training)
    for code, out in _wait([p for p in procs if p is not killed]):
        assert code == 0, out
    rows = _claims(storage, "snnspin-spintronic")
    assert sorted(rows) == [f"trial-{i}" for i in range(4)] and {r["state"] for r in rows.values()} == {"done"}
    study = optuna.load_study(study_name="snnspin-spintronic", storage=storage)
    dead = study.trials[killed_trial]
    assert dead.state == optuna.trial.TrialState.FAIL
    finished = [t for t in study.trials if t.state in FINISHED]
    assert sorted(t.user_attrs["slot"] for t in finished) == sorted(rows)  # 4 slots, each finished once
    retry = [t for t in finished if t.user_attrs.get("retry_of") == killed_trial]
    assert len(retry) == 1 and retry[0].params == dead.params  # the killed point was tried again
    for t in finished:  # what the dashboard shows
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert {"train_loss", "train_acc", "seconds", "skipped_batches", "neurons", "synapses"} <= set(t.user_attrs)
            assert t.user_attrs["neurons"] == 4 and t.user_attrs["skipped_batches"] == 0
    assert study.metric_names == ["validation accuracy (%)"]


def test_workers_flag_starts_local_workers(tmp_path):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "tiny.json").write_text(json.dumps({**TINY, "epochs": 1}))
    done = subprocess.run([sys.executable, "-m", "snnspin.cli", "sweep", "custom", "--config", str(tmp_path / "tiny.json"),
                           "--grid", "delta_t=0.5,2", "--seeds", "2", "--storage", store, "--workers", "2"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "[worker 1]" in done.stdout and "[worker 2]" in done.stdout and "2 workers finished" in done.stdout
    rows = _claims(store, "sweep-custom")
    assert len(rows) == 4 and {r["state"] for r in rows.values()} == {"done"}


def test_claims_are_exclusive_and_a_silent_claim_is_taken_over(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    alive = Claims(url, "q", interval=0.05)
    other = Claims(url, "q", interval=0.05)
    assert alive.claim("k") and not other.claim("k")
    time.sleep(0.6)  # alive beats: never stale
    assert other.stale() == [] and (time.sleep(0.6) or other.stale()) == []
    dead = Claims(url, "q", interval=0.05)
    assert dead.claim("d")
    dead._stop.set()  # its heartbeat stops, as when the process is killed
    dead._beater.join()
    assert other.stale() == []  # first sight of its beat
    time.sleep(0.4)
    assert other.stale() == ["d"]
    assert other.take_over("d")["worker"] == dead.worker
    assert alive.take_over("d") is None  # only one taker
    assert not dead.finish("d")  # the presumed-dead worker's result is dropped
    assert other.finish("d") and other.states()["d"] == "done"
    ran = []
    assert alive.finish("k")
    work(other, ["k", "d", "n"], lambda key, former: (ran.append(key), other.finish(key)))
    assert ran == ["n"]  # only the free key ran
    for c in (alive, other):
        c.close()
    dead.engine.dispose()


def test_long_keys_are_stored_hashed_and_still_run(tmp_path):
    claims = Claims(f"sqlite:///{tmp_path / 'c.db'}", "q", interval=0.05)
    keys = ["k" * 500, "short"]
    ran = []
    work(claims, keys, lambda key, former: (ran.append(key), claims.finish(key)))
    assert ran == keys and sorted(len(k) for k in claims.states()) == [5, 71]
    claims.close()


def test_a_worker_that_died_after_writing_its_result_is_settled_not_rerun(tmp_path):
    """Its trial is COMPLETE but its claim still runs: the taker marks the key done."""
    from snnspin.hpo import open_study, settle_taken_over

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = open_study("q", url)
    dead = Claims(url, "q", interval=0.05)
    assert dead.claim("k")
    trial = study.ask()
    dead.set_trial("k", trial.number)
    study.tell(trial, 1.0)
    dead._stop.set()
    dead._beater.join()  # it dies before marking its claim done
    taker = Claims(url, "q", interval=0.05)
    assert taker.stale() == []
    time.sleep(0.4)
    former = taker.take_over(taker.stale()[0])
    assert settle_taken_over(study, taker, "k", former) and taker.states() == {"k": "done"}
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    taker.close()
    dead.engine.dispose()
