"""Exactly-once work for several workers sharing one database: claims, heartbeats, take-over.

A sweep (each (point, seed) training) and a tuning study (each of its ``n`` trial slots) are
lists of *keys*. Any number of worker processes, on one machine or many, run the same
command against the same store; this table makes each key's training finish exactly once:

``snnspin_claims(queue, key, state, worker, beat, trial, attempts)``, primary key (queue, key),
in the same database as the Optuna study (SQLite file, PostgreSQL, MySQL: any SQLAlchemy URL).

1. **Claim.** A worker takes a free key by INSERTing its row (state ``running``). The
   primary key makes this atomic: of several workers inserting the same key, exactly one
   succeeds; the others get an integrity error and try the next key.
2. **Heartbeat.** While it works, a background thread of the owner increments the row's
   ``beat`` counter every ``interval`` seconds.
3. **Take-over.** Other workers note each running row's counter with their own monotonic
   clock. A counter unchanged for ``grace`` seconds (default 5 intervals) belongs to a dead
   worker: a watcher takes the row over with ``UPDATE ... WHERE worker = <old> AND
   beat = <seen>``, which exactly one watcher wins. No clocks are compared between
   machines, so none need to agree.
4. **Finish.** The owner sets ``state = done`` with ``UPDATE ... WHERE worker = <me>``. If
   no row matched, its claim was taken over (it was presumed dead, e.g. suspended for longer
   than ``grace``): its result is dropped and the taker's counts. A training that raised is
   marked ``failed``; the next run of the command (not the current one) retries it.
   A worker may hold several keys at once (``work``'s ``together``: the seeds of one sweep
   point, trained together in one fused call); each is claimed, beaten and taken over on its
   own, so a dead worker's keys are retried one by one.
5. **Leaving.** A worker exits only when every key is done or failed: while another worker
   holds a running key, it waits (polling every ``interval``) and takes it over if it goes stale.
   So a worker killed mid-training is retried by any worker still running, or by the next
   one started; nothing is lost and nothing runs twice.

The owner writes its result (the Optuna trial) before it marks its row done. A worker that
dies in between leaves a finished trial under a running claim; the worker that takes the
claim over sees the finished trial and marks the key done instead of training it again
(``snnspin.hpo.settle_taken_over``). A worker presumed dead that finishes after all finds
its trial failed by the taker and drops its result.

Keys longer than ``KEY_CHARS`` are stored as their SHA-256 (the primary key stays within
every database's index limit).
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import threading
import time
import uuid

import sqlalchemy as sa

TABLE = "snnspin_claims"
#: Keys up to this length are stored as they are, longer ones as ``sha256:<hex>``.
KEY_CHARS = 200


def stored_key(key: str) -> str:
    """The form of ``key`` in the table: itself, or its SHA-256 when longer than ``KEY_CHARS``.

    >>> stored_key("a"), len(stored_key("x" * 500))
    ('a', 71)
    """
    return key if len(key) <= KEY_CHARS else "sha256:" + hashlib.sha256(key.encode()).hexdigest()

_METADATA = sa.MetaData()
CLAIMS = sa.Table(
    TABLE, _METADATA,
    sa.Column("queue", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(KEY_CHARS), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("worker", sa.String(255), nullable=False),
    sa.Column("beat", sa.Integer, nullable=False),
    sa.Column("trial", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False),
)


def worker_name() -> str:
    """A name unique to this process: host, pid and a random suffix.

    >>> worker_name().count(":")
    2
    """
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite waits up to 60 s for a lock instead of failing at once,
    and an in-memory SQLite database is one database for every thread."""
    if url.startswith("sqlite"):
        options = {"connect_args": {"timeout": 60, "check_same_thread": False}}
        if ":memory:" in url or url in ("sqlite://", "sqlite:///"):
            options["poolclass"] = sa.pool.StaticPool
        return sa.create_engine(url, **options)
    return sa.create_engine(url, pool_pre_ping=True)


class Claims:
    """The claims of one ``queue`` (a study name) in the database at ``url``.

    ``interval``: seconds between heartbeats; ``grace``: seconds without a beat after which
    a running claim is taken over (default ``5 * interval``).

    >>> claims = Claims("sqlite://", "demo", interval=0.05)
    >>> claims.claim("a"), claims.claim("a")
    (True, False)
    >>> claims.finish("a"), claims.states()
    (True, {'a': 'done'})
    >>> claims.close()
    """

    def __init__(self, url: str, queue: str, interval: float = 10.0, grace: float | None = None,
                 worker: str | None = None):
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError(f"heartbeat interval must be a finite number of seconds > 0, got {interval}")
        self.queue, self.interval = queue, float(interval)
        self.grace = float(grace) if grace is not None else 5 * self.interval
        self.worker = worker or worker_name()
        self.engine = _engine(url)
        self._seen: dict[str, tuple[str, int, float]] = {}  # key → (worker, beat, when first seen unchanged)
        self._create_table()
        self._stop = threading.Event()
        self._beater = threading.Thread(target=self._beat_loop, name="snnspin-heartbeat", daemon=True)
        self._beater.start()

    def _create_table(self, attempts: int = 5) -> None:
        for attempt in range(attempts):  # workers starting together race to create it
            try:
                _METADATA.create_all(self.engine, tables=[CLAIMS], checkfirst=True)
                return
            except sa.exc.DBAPIError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.engine.begin() as db:
                    db.execute(CLAIMS.update()
                               .where(CLAIMS.c.queue == self.queue, CLAIMS.c.worker == self.worker,
                                      CLAIMS.c.state == "running")
                               .values(beat=CLAIMS.c.beat + 1))
            except Exception:  # a busy or briefly unreachable database, an exhausted pool: beat next time
                continue

    def close(self) -> None:
        """Stop the heartbeat, hand back the keys this worker still holds (a run interrupted by
        an exception or Ctrl-C: they are free to claim at once) and release the connections."""
        self._stop.set()
        self._beater.join()
        try:
            with self.engine.begin() as db:
                db.execute(CLAIMS.delete().where(CLAIMS.c.queue == self.queue, CLAIMS.c.worker == self.worker,
                                                 CLAIMS.c.state == "running"))
        finally:
            self.engine.dispose()

    def __enter__(self) -> "Claims":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def rows(self) -> dict[str, dict]:
        """Every claim of the queue: key (as stored, ``stored_key``) → {state, worker, beat, trial, attempts}."""
        with self.engine.connect() as db:
            found = db.execute(sa.select(CLAIMS).where(CLAIMS.c.queue == self.queue)).mappings().all()
        return {r["key"]: {k: r[k] for k in ("state", "worker", "beat", "trial", "attempts")} for r in found}

    def states(self) -> dict[str, str]:
        """key → state (running, done or failed) of every claimed key."""
        return {key: row["state"] for key, row in self.rows().items()}

    def claim(self, key: str) -> bool:
        """Take ``key`` if no worker has; True when this worker now owns it."""
        key = stored_key(key)
        try:
            with self.engine.begin() as db:
                db.execute(CLAIMS.insert().values(queue=self.queue, key=key, state="running", worker=self.worker,
                                                  beat=0, trial=None, attempts=1))
            return True
        except sa.exc.IntegrityError:
            return False

    def mark_done(self, key: str, trial: int | None = None) -> None:
        """Record ``key`` as done without running it (a result found from before claims existed)."""
        key = stored_key(key)
        try:
            with self.engine.begin() as db:
                db.execute(CLAIMS.insert().values(queue=self.queue, key=key, state="done", worker=self.worker,
                                                  beat=0, trial=trial, attempts=0))
        except sa.exc.IntegrityError:
            pass

    def holds(self, key: str) -> bool:
        """Whether this worker still holds ``key``, running (not taken over, not finished)."""
        row = self.rows().get(stored_key(key))
        return row is not None and row["worker"] == self.worker and row["state"] == "running"

    def set_trial(self, key: str, trial: int) -> None:
        """Record the Optuna trial number that runs ``key``."""
        key = stored_key(key)
        with self.engine.begin() as db:
            db.execute(CLAIMS.update().where(CLAIMS.c.queue == self.queue, CLAIMS.c.key == key,
                                             CLAIMS.c.worker == self.worker).values(trial=trial))

    def stale(self, rows: dict[str, dict] | None = None) -> list[str]:
        """Running keys of other workers whose beat has not moved for ``grace`` seconds (by this
        worker's clock, from the first time it saw that beat)."""
        now = time.monotonic()
        out = []
        for key, row in (self.rows() if rows is None else rows).items():
            if row["state"] != "running" or row["worker"] == self.worker:
                self._seen.pop(key, None)
                continue
            mark = (row["worker"], row["beat"])
            seen = self._seen.get(key)
            if seen is None or seen[:2] != mark:
                self._seen[key] = (*mark, now)
            elif now - seen[2] >= self.grace:
                out.append(key)
        return out

    def take_over(self, key: str) -> dict | None:
        """Take the stale claim of ``key`` (see ``stale``); its former row (with the dead
        worker's trial number) if this worker won it, else None."""
        key = stored_key(key)
        seen = self._seen.get(key)
        if seen is None:
            return None
        old_worker, old_beat, _ = seen
        former = self.rows().get(key)
        with self.engine.begin() as db:
            done = db.execute(CLAIMS.update()
                              .where(CLAIMS.c.queue == self.queue, CLAIMS.c.key == key, CLAIMS.c.state == "running",
                                     CLAIMS.c.worker == old_worker, CLAIMS.c.beat == old_beat)
                              .values(worker=self.worker, beat=0, trial=None, attempts=CLAIMS.c.attempts + 1))
        self._seen.pop(key, None)
        return former if done.rowcount == 1 else None

    def finish(self, key: str, state: str = "done") -> bool:
        """Mark this worker's claim of ``key`` done (or failed); False if it was taken over."""
        key = stored_key(key)
        if state not in ("done", "failed"):
            raise ValueError(f"state must be done or failed, got {state!r}")
        with self.engine.begin() as db:
            done = db.execute(CLAIMS.update()
                              .where(CLAIMS.c.queue == self.queue, CLAIMS.c.key == key, CLAIMS.c.worker == self.worker,
                                     CLAIMS.c.state == "running")
                              .values(state=state))
        return done.rowcount == 1

    def release(self, keys) -> None:
        """Hand ``keys`` back (delete their rows): failed keys retried by a new run, or done
        keys whose result never reached the store."""
        keys = [stored_key(k) for k in keys]
        if not keys:
            return
        with self.engine.begin() as db:
            db.execute(CLAIMS.delete().where(CLAIMS.c.queue == self.queue, CLAIMS.c.key.in_(keys)))

    def release_failed(self, keys) -> list[str]:
        """Hand back the failed keys among ``keys`` (so this run retries them); return them."""
        wanted = {stored_key(k) for k in keys}
        failed = [k for k, state in self.states().items() if state == "failed" and k in wanted]
        with self.engine.begin() as db:
            for key in failed:
                db.execute(CLAIMS.delete().where(CLAIMS.c.queue == self.queue, CLAIMS.c.key == key,
                                                 CLAIMS.c.state == "failed"))
        return failed


def work(claims: Claims, keys: list[str], run, on_wait=None, together=None) -> None:
    """Run ``run(key, former)`` for every key of ``keys`` this worker claims or takes over,
    until every key is done or failed (see the module docstring); ``former`` is the dead
    worker's row of a taken-over key, else None. ``run`` must call ``claims.finish``.

    ``on_wait(running_keys)`` is called (if given) each time the worker waits for others.
    ``together = (group_of, most, run_together)``: a free key claimed is run with up to
    ``most - 1`` more free keys of its group (``group_of(key)``; ``most`` a number or a function
    of the group), each claimed on its own as above, by ``run_together(keys)`` (which must
    finish each); keys taken over run alone.

    >>> claims = Claims("sqlite://", "demo", interval=0.05)
    >>> work(claims, ["a", "b"], lambda key, former: claims.finish(key))
    >>> claims.states()
    {'a': 'done', 'b': 'done'}
    >>> runs = []
    >>> def run_together(keys):
    ...     runs.append(keys)
    ...     for key in keys:
    ...         claims.finish(key)
    >>> work(claims, ["a1", "a2", "b1"], None, together=(lambda key: key[0], 5, run_together))
    >>> runs
    [['a1', 'a2'], ['b1']]
    >>> claims.close()
    """
    original = {stored_key(k): k for k in keys}  # the table holds long keys as their hash
    wanted = list(original)
    while True:
        rows = claims.rows()
        free = [k for k in wanted if k not in rows]
        if free:
            for key in free:
                if claims.claim(key):
                    if together is None:
                        run(original[key], None)
                    else:
                        group_of, most, run_together = together
                        group = group_of(original[key])
                        limit, mine = most(group) if callable(most) else most, [key]
                        for other in free:
                            if len(mine) < limit and other != key and group_of(original[other]) == group \
                                    and claims.claim(other):
                                mine.append(other)
                        run_together([original[k] for k in mine])
                    break
            continue
        pending = [k for k in wanted if rows[k]["state"] == "running"]
        if not pending:
            return
        taken = False
        for key in claims.stale({k: rows[k] for k in pending}):
            former = claims.take_over(key)
            if former is not None:
                run(original[key], former)
                taken = True
                break
        if not taken:
            if on_wait is not None:
                on_wait(pending)
            time.sleep(min(claims.interval, claims.grace / 4))
