"""The projector runner: reads the jobs, entities and OpenLineage topics from the positions
stored in DuckDB, projects a batch (pure), and writes rows + positions in one DuckDB
transaction. Records that fail to decode or validate go to ``dead_letters`` with the error
and position; projection goes on."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import duckdb

from mlineage import failpoints
from mlineage._gc import gc_paused
from mlineage.errors import EventLogError, ProjectionBusyError, ProjectionError
from mlineage.events.models import (
    ENTITY_EVENT_TYPES,
    OPENLINEAGE_EVENT_TYPES,
    SOURCE_EVENT_TYPES,
)
from mlineage.log.base import (
    TOPIC_ENTITIES,
    TOPIC_JOBS,
    TOPIC_OPENLINEAGE,
    Consumer,
    EventLog,
    Record,
    TopicPartition,
    next_positions,
)
from mlineage.log.limits import BATCH_BYTES, RunLimits, by_bytes
from mlineage.log.outage import Outage
from mlineage.projection.ingest import SQL_INGEST_FROM, SqlIngest, project_batch
from mlineage.projection.project import project
from mlineage.projection.store import Batch, DuckDBStore, held_elsewhere, snapshot_path

CONSUMER = "mlineage-projector"
PROJECTED_TOPICS = (TOPIC_JOBS, TOPIC_ENTITIES, TOPIC_OPENLINEAGE)
log = logging.getLogger("mlineage.projector")
ALLOWED = {
    TOPIC_JOBS: SOURCE_EVENT_TYPES,
    TOPIC_ENTITIES: ENTITY_EVENT_TYPES,
    TOPIC_OPENLINEAGE: OPENLINEAGE_EVENT_TYPES,
}


@dataclass
class ProjectorStats:
    consumed: int = 0
    applied: int = 0
    dead_lettered: int = 0
    batches: int = 0


class WriterLock:
    """An advisory lock beside the DuckDB file, held by whoever writes it for a while
    (``project --follow``, ``replay``), so replay can refuse while a follower runs."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.path = Path(f"{db_path}.lock")
        self._fh: IO[str] | None = None

    def acquire(self, what: str) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        # a short window: readers probe this lock for an instant (held_elsewhere), and must
        # never make a starting follower fail
        deadline = time.monotonic() + 2.0
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise ProjectionBusyError(
                f"cannot {what}: the projection is held by {holder}; stop it first"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        remove_leftovers(self.db_path)
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    @staticmethod
    def held_elsewhere(db_path: Path) -> bool:
        """True while a process holds the lock (a follower, serve or replay): it keeps the
        projection current, so a command must not catch up itself. The holder's own process
        must not ask (its descriptor counts as another holder)."""
        path = Path(f"{db_path}.lock")
        if not path.exists():
            return False
        with path.open("a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class AccessLock:
    """Who may open the projection file right now, between processes of one home (a flock
    on ``<db>.access``): a command that catches up holds it exclusively, readers of the file
    share it for as long as their connection is open, and a starting follower takes it
    exclusively until its first snapshot exists. DuckDB itself lets one writer *or* readers
    open a file, and fails the others at once; this turns those failures into short waits."""

    NOTE_AFTER_S = 1.0

    def __init__(self, db_path: Path, *, timeout: float = 120.0) -> None:
        self.path = Path(f"{db_path}.access")
        self.timeout = timeout
        self._fh: IO[str] | None = None

    def acquire(self, *, exclusive: bool, note: Callable[[str], None] | None = None) -> None:
        """Wait for the lock (saying so through ``note`` after a second), at most
        ``timeout`` seconds. A projection directory that does not exist needs no lock."""
        if not self.path.parent.is_dir():
            return
        fh = self.path.open("a+")
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        started = time.monotonic()
        noted = False
        while True:
            try:
                fcntl.flock(fh.fileno(), mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= self.timeout:
                    fh.close()
                    raise ProjectionBusyError(
                        f"another mlineage process kept {self.path.with_suffix('')} busy for "
                        f"{self.timeout:.0f}s; try again when it has finished"
                    ) from None
                if note is not None and not noted and waited >= self.NOTE_AFTER_S:
                    note("waiting for another mlineage process to finish with the projection")
                    noted = True
                time.sleep(0.02)
        self._fh = fh

    def share(self) -> None:
        """Turn an exclusive hold into a shared one (after catching up, to read)."""
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


@contextlib.contextmanager
def reading(db_path: Path, *, note: Callable[[str], None] | None = None) -> Iterator[DuckDBStore]:
    """The projection open read-only for a short read, holding :class:`AccessLock` shared
    meanwhile (a reader outside it makes another command's catch-up fail to open the file):
    the live file, or the snapshot a follower keeps while it holds the live one.
    :class:`ProjectionError` when there is neither."""
    lock = AccessLock(db_path)
    lock.acquire(exclusive=False, note=note)
    try:
        try:
            store = DuckDBStore(db_path, read_only=True)
        except ProjectionBusyError:
            snap = snapshot_path(db_path)
            if not snap.exists():
                raise
            store = DuckDBStore(snap, read_only=True)
            if note is not None:
                note(f"a projector holds {db_path}; reading its snapshot")
        with store:
            yield store
    finally:
        lock.release()


class Snapshotter:
    """Keeps a copy of a held projection (``<db>.snapshot``) fresh for other processes, which
    cannot open the file while this one writes it. :meth:`maybe` writes at most every
    ``interval`` seconds, only after changes, and never more than ~1/5 of the time (large
    files copy slowly)."""

    def __init__(self, store: DuckDBStore, path: Path, interval: float = 2.0) -> None:
        self.store = store
        self.path = path
        self.interval = interval
        self.dirty = True
        self._at = 0.0
        self._cost = 0.0

    def write(self) -> None:
        """Checkpoint and copy the projection to the snapshot path (atomically replaced)."""
        started = time.monotonic()
        self.store.checkpoint()
        tmp = self.path.with_name(f"{self.path.name}{TMP_SUFFIX}{os.getpid()}")
        # Copy in a child process: closing any descriptor of the DuckDB file in *this*
        # process would release every POSIX lock it holds on it, DuckDB's write lock
        # included (fcntl lock semantics), letting other processes open the live file.
        cp = shutil.which("cp") or "/bin/cp"
        problem = None
        try:
            copy = subprocess.Popen(  # noqa: S603 - cp from PATH, our own paths
                [cp, str(self.store.path), str(tmp)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            failpoints.hit("snapshot.mid_copy")
            _, errors = copy.communicate()
            if copy.returncode != 0:
                problem = errors.decode(errors="replace").strip()
        except OSError as exc:
            problem = str(exc)
        if problem is not None:
            tmp.unlink(missing_ok=True)
            raise ProjectionError(f"could not write the snapshot {self.path}: {problem}")
        os.replace(tmp, self.path)
        self._at = time.monotonic()
        self._cost = self._at - started
        self.dirty = False

    def maybe(self) -> None:
        if self.dirty and time.monotonic() - self._at >= max(self.interval, 5 * self._cost):
            self.write()


class ProjectorService:
    """Stop conditions: ``until_end`` (default), ``max_events``, ``timeout``; ``follow=True``
    keeps polling until another condition holds."""

    def __init__(
        self,
        log: EventLog,
        store: DuckDBStore,
        *,
        batch_size: int = 50_000,
        batch_bytes: int = BATCH_BYTES,
        consumer: str = CONSUMER,
        snapshot: Path | None = None,
        snapshot_interval: float = 2.0,
    ) -> None:
        self.log = log
        self.store = store
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes  # a heavier batch is merged in parts (see _prepare)
        self.consumer_name = consumer
        self.snapshotter = (
            Snapshotter(store, snapshot, snapshot_interval) if snapshot is not None else None
        )
        self._committed: dict[TopicPartition, int] = {}
        self._local = threading.local()  # each thread's SQL stage (its own DuckDB connection)

    def write_snapshot(self) -> None:
        """Write the readers' snapshot now (see :class:`Snapshotter`)."""
        if self.snapshotter is not None:
            self.snapshotter.write()

    def lag(self) -> int:
        positions = self.store.positions(self.consumer_name)
        return sum(
            max(0, end - positions.get((topic, p), 0))
            for topic in PROJECTED_TOPICS
            for p, end in self.log.end_offsets(topic).items()
        )

    def consumer(self) -> Consumer:
        """A consumer of both topics that starts from (and rewinds to) the positions stored in
        DuckDB; on Kafka it assigns every partition itself (no consumer group: exactly one
        projector owns a projection, so it must read everything)."""
        # read here, on the thread that owns the store; kept current by _apply, so the
        # callback (called on the prefetch thread) never touches the DuckDB connection
        self._committed = dict(self.store.positions(self.consumer_name))

        def stored(tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
            return {tp: self._committed.get(tp, 0) for tp in tps}

        return self.log.consumer(
            PROJECTED_TOPICS, positions=stored, max_poll_records=self.batch_size
        )

    def _prepare(self, consumer: Consumer, limit: int, wait: float) -> _Prepared:
        """Read up to ``limit`` records and project them (pure Python; never touches the
        store, so it can run while the store applies another batch)."""
        records = consumer.poll(limit, timeout=wait, max_bytes=self.batch_bytes)
        if not records:
            moved = consumer.advanced()  # past commit markers only: store that too
            if moved:
                return _Prepared(records, moved, Batch.of(project([], ALLOWED)))
            return _Prepared(records, {}, None)
        # a batch heavier than BATCH_BYTES is merged a part at a time (each with the positions
        # it reaches, in its own transaction), so one merge never holds more than that
        *heavy, last = by_bytes(records, self.batch_bytes)
        with gc_paused():
            parts = [(next_positions(part), self._project(part)) for part in heavy]
            batch = self._project(last)
        return _Prepared(records, consumer.consumed(records), batch, parts)

    def _project(self, records: list[Record]) -> Batch:
        ingest = getattr(self._local, "ingest", None)
        if ingest is None and len(records) >= SQL_INGEST_FROM:
            ingest = self._local.ingest = SqlIngest(TOPIC_JOBS, TOPIC_ENTITIES)
        return project_batch(records, ALLOWED, ingest)

    def _apply(self, prepared: _Prepared) -> ProjectorStats:
        stats = ProjectorStats()
        if prepared.batch is None:
            return stats
        for consumed, batch in (*prepared.parts, (prepared.consumed, prepared.batch)):
            self.store.apply(batch, consumed, self.consumer_name)
            self._committed.update(consumed)
            stats.dead_lettered += batch.dead.num_rows
            stats.batches += 1
        stats.consumed = len(prepared.records)
        stats.applied = stats.consumed - stats.dead_lettered
        return stats

    def run(
        self,
        *,
        follow: bool = False,
        max_events: int | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.2,
        progress: Callable[[int, int], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> ProjectorStats:
        """Apply batches until a stop condition holds (``stop()`` is asked between batches).
        The next batch is read, decoded and projected on a worker thread while the store
        writes the current one (DuckDB releases the GIL), so Python and DuckDB work overlap;
        batches still commit in order."""
        with self.consumer() as consumer:
            if progress is not None:
                progress(0, self.lag())  # the size of the run, before its first batch
            limits = RunLimits(self.batch_size, max_events, timeout, stop)
            return self._run(consumer, follow, limits, poll_interval, progress)

    def _run(
        self,
        consumer: Consumer,
        follow: bool,
        limits: RunLimits,
        poll_interval: float,
        progress: Callable[[int, int], None] | None,
    ) -> ProjectorStats:
        total = ProjectorStats()
        outage = Outage(f"projector: the event log {self.log.kind}")
        should_stop = limits.should_stop
        limit_for = limits.next_batch

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlineage-prefetch") as pool:
            planned = 0
            limit = limit_for(planned)
            pending: Future[_Prepared] | None = (
                pool.submit(self._prepare, consumer, limit, 0.0) if limit else None
            )
            while pending is not None:
                try:
                    prepared = pending.result()
                except EventLogError as exc:
                    # a follower rides out an outage of any length; a one-shot run reports it
                    if not follow or not exc.transient:
                        raise
                    # back to the positions stored with the rows before reading on
                    pending = None
                    if not outage.recover(exc, consumer.rewind, should_stop):
                        break
                    pending = pool.submit(self._prepare, consumer, limit, poll_interval)
                    continue
                if prepared.batch is not None:
                    outage.over(total.consumed)  # the log answered
                limits.observe(prepared.records)
                got = len(prepared.records)
                planned += got
                limit = limit_for(planned)
                pending = None
                if got and limit:
                    pending = pool.submit(self._prepare, consumer, limit, 0.0)
                stats = self._apply(prepared)
                total.consumed += stats.consumed
                total.applied += stats.applied
                total.dead_lettered += stats.dead_lettered
                total.batches += stats.batches
                if progress is not None and got:
                    progress(total.consumed, self.lag())
                if self.snapshotter is not None:
                    if got:
                        self.snapshotter.dirty = True
                    if follow:
                        self.snapshotter.maybe()
                if should_stop():
                    break
                if pending is None and limit:
                    # nothing in hand: stop at the end unless following, else wait for more
                    if got == 0 and not follow and consumer.at_end():
                        break
                    pending = pool.submit(
                        self._prepare, consumer, limit, poll_interval if got == 0 else 0.0
                    )
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(Exception):
                    pending.result()  # let the worker finish before the consumer closes
        return total


@dataclass
class _Prepared:
    records: list[Record]
    consumed: dict[tuple[str, int], int]
    batch: Batch | None
    parts: list[tuple[dict[tuple[str, int], int], Batch]] = field(default_factory=list)
    """The earlier parts of a batch too heavy for one merge, with the positions each reaches."""


def replay(
    log: EventLog,
    db_path: Path,
    *,
    batch_size: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> ProjectorStats:
    """Rebuild the projection from offset 0 into a new file, checkpoint it and swap it in.
    Refuses while another process holds the projection."""
    db_path = Path(db_path)
    with WriterLock(db_path).acquire("replay"):
        if db_path.exists() and _is_held(db_path):
            raise ProjectionBusyError(
                f"cannot replay: another process has {db_path} open for writing; stop it first"
            )
        tmp = db_path.with_name(f"{db_path.name}{REPLAY_SUFFIX}{os.getpid()}")
        store = DuckDBStore(tmp)
        try:
            try:
                stats = ProjectorService(log, store, batch_size=batch_size).run(progress=progress)
                store.checkpoint()
            finally:
                store.close()
        except BaseException:  # interrupted or failed: the live file stays, the new one goes
            tmp.unlink(missing_ok=True)
            Path(f"{tmp}.wal").unlink(missing_ok=True)
            raise
        failpoints.hit("replay.before_swap")
        Path(f"{db_path}.wal").unlink(missing_ok=True)
        os.replace(tmp, db_path)
        failpoints.hit("replay.after_swap")
        Path(f"{tmp}.wal").unlink(missing_ok=True)
        return stats


REPLAY_SUFFIX = ".replay-"
TMP_SUFFIX = ".tmp-"


def leftovers(db_path: Path) -> list[Path]:
    """Files a crashed replay or snapshot writer left beside ``db_path``: replays' new
    files (and their WALs) and snapshots' temporary copies. Only the holder of the
    :class:`WriterLock` writes them, so while it is held none of them is in use."""
    db_path = Path(db_path)
    return sorted(
        p
        for p in db_path.parent.glob(f"{glob.escape(db_path.name)}.*")
        if p.name.startswith(
            (f"{db_path.name}{REPLAY_SUFFIX}", f"{snapshot_path(db_path).name}{TMP_SUFFIX}")
        )
    )


def remove_leftovers(db_path: Path) -> None:
    for path in leftovers(db_path):
        log.warning("removing %s, left by a process that crashed", path)
        path.unlink(missing_ok=True)


def _is_held(db_path: Path) -> bool:
    """True when another process has the DuckDB file open for writing. The probe opens it
    for writing, so it takes turns with readers (a reader's hold is not a writer's)."""
    access = AccessLock(db_path)
    access.acquire(exclusive=True)
    try:
        duckdb.connect(str(db_path)).close()
    except duckdb.Error as exc:
        return held_elsewhere(exc)
    finally:
        access.release()
    return False
