"""Producer resilience: a training job never crashes or hangs because Kafka is down.

A :class:`SpooledLog` stands between a :class:`~mlineage.Recorder` and a remote log. Every
append is written first to a local SQLite *spool* (one file per process, under
``$MLINEAGE_HOME/spool`` or ``MLINEAGE_SPOOL_DIR``: a persistent path), which takes about a
millisecond and never touches the network. A background thread forwards the spool to the
log in order, one transaction per chunk, and deletes each chunk once it is committed. While
the log does not answer, events wait in the spool and a warning says where; they go out in
order when it answers again. ``flush(timeout)`` waits for the spool to drain (a Recorder
calls it on close and at exit); what is left after it is not lost: the next process that
opens a spool in the same directory adopts files whose owner is gone and forwards them.

The window: if a process dies after Kafka committed a chunk and before the spool deleted
it, that chunk is forwarded again by whoever adopts the file. The duplicates carry the same
``event_id`` and the projection applies an event id once, so the lineage is unchanged
(documented in docs/design.md).

Fork: a child never uses its parent's spool or thread; it opens its own on first append.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, ClassVar

from mlineage import failpoints
from mlineage.errors import EventLogError
from mlineage.log.base import EventLog, OutRecord, Record, check_records
from mlineage.log.rows import decode_headers, encode_headers, insert_rows

log = logging.getLogger("mlineage.spool")

CHUNK = 2000
FLUSH_AT_EXIT_S = 10.0
MAX_RECORD_BYTES = 1_000_000  # under Kafka's default message.max.bytes (1,048,588)


class SpoolFile:
    """One spool: a SQLite file of records waiting to be forwarded, and a lock file whose
    ``flock`` says that a live process owns it."""

    def __init__(self, path: Path, lock: IO[str], target: str | None = None) -> None:
        self.path = path
        self._lock = lock
        self._conn = sqlite3.connect(
            path, timeout=60, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        # batch: one append (one publish_many), forwarded in one Kafka transaction
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "batch INTEGER NOT NULL, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL, "
            "headers TEXT)"
        )
        self._conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        if target is not None:
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('target', ?)", (target,))
        self._mutex = threading.Lock()

    @property
    def target(self) -> str | None:
        """The log this spool's records are for (its owner's URL)."""
        with self._mutex:
            row = self._conn.execute("SELECT value FROM meta WHERE name = 'target'").fetchone()
        return None if row is None else str(row[0])

    @classmethod
    def create(cls, directory: Path, target: str) -> SpoolFile:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}.sqlite"
        lock = _lock_file(path)
        if lock is None:  # pragma: no cover - a fresh uuid cannot be locked already
            raise EventLogError(f"could not lock the new spool {path}")
        return cls(path, lock, target)

    @classmethod
    def adopt(cls, path: Path, target: str) -> SpoolFile | None:
        """Take over a spool for ``target`` whose owner is gone (None when a live process
        holds it, or it is for another log)."""
        lock = _lock_file(path)
        if lock is None:
            return None
        if not path.exists():  # forwarded and removed by its owner just now
            _release(lock, path)
            return None
        spool = cls(path, lock)
        if spool.target != target:
            spool.release()
            return None
        return spool

    def add(self, records: Sequence[OutRecord]) -> None:
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                batch = int(
                    self._conn.execute("SELECT coalesce(max(batch), 0) + 1 FROM spool").fetchone()[
                        0
                    ]
                )
                rows = [
                    (batch, r.topic, r.key, r.value, encode_headers(r.headers)) for r in records
                ]
                insert_rows(
                    self._conn, "INSERT INTO spool (batch, topic, key, value, headers)", rows
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def head(self, n: int) -> tuple[int, list[OutRecord]]:
        """The oldest whole batches, about ``n`` records (at least one batch, never part of
        one: an append stays one transaction), and the sequence number of the last record
        (0: none)."""
        with self._mutex:
            first = self._conn.execute("SELECT min(batch) FROM spool").fetchone()[0]
            if first is None:
                return 0, []
            last_batch = self._conn.execute(
                "SELECT max(batch) FROM (SELECT batch FROM spool ORDER BY seq LIMIT ?)", (n,)
            ).fetchone()[0]
            rows = self._conn.execute(
                "SELECT seq, topic, key, value, headers FROM spool WHERE batch <= ? ORDER BY seq",
                (last_batch - 1 if last_batch > first else first,),
            ).fetchall()
        return rows[-1][0], [OutRecord(t, k, v, decode_headers(h)) for _, t, k, v, h in rows]

    def drop_through(self, seq: int) -> None:
        with self._mutex:
            self._conn.execute("DELETE FROM spool WHERE seq <= ?", (seq,))

    def pending(self) -> int:
        with self._mutex:
            return int(self._conn.execute("SELECT count(*) FROM spool").fetchone()[0])

    def close(self, *, remove_if_empty: bool) -> None:
        with self._mutex:
            empty = int(self._conn.execute("SELECT count(*) FROM spool").fetchone()[0]) == 0
            self._conn.close()
        if remove_if_empty and empty:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        _release(self._lock, self.path if remove_if_empty and empty else None)

    def release(self) -> None:
        """Let go of a spool without touching it (for another log)."""
        with contextlib.suppress(Exception):
            self._conn.close()
        _release(self._lock, None)

    def abandon(self) -> None:
        """In a forked child: let go of the parent's spool without touching its contents."""
        with contextlib.suppress(Exception):
            self._conn.close()
        with contextlib.suppress(OSError):
            self._lock.close()  # the parent's descriptor keeps its flock


def _lock_file(path: Path) -> IO[str] | None:
    fh = Path(f"{path}.lock").open("a+")  # noqa: SIM115 - held for the spool's lifetime
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def _release(lock: IO[str], path: Path | None) -> None:
    if path is not None:
        Path(f"{path}.lock").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        lock.close()


def spooled_counts(directory: Path) -> dict[Path, int]:
    """Records waiting in each spool file of ``directory`` (for ``mlineage status``)."""
    out: dict[Path, int] = {}
    for path in sorted(directory.glob("spool-*.sqlite")):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as c:
                out[path] = int(c.execute("SELECT count(*) FROM spool").fetchone()[0])
        except sqlite3.Error:
            out[path] = -1
    return out


class SpooledLog(EventLog):
    """Appends go to the local spool; a thread forwards them to ``target`` in order. Reads
    go straight to the target."""

    kind: ClassVar[str] = "spooled"
    dense_offsets = False  # the target's (given to __init__), else assume the weaker
    _live: ClassVar[weakref.WeakSet[SpooledLog]] = weakref.WeakSet()

    def __init__(
        self,
        open_target: Callable[[], EventLog],
        directory: Path,
        *,
        describe: str = "the event log",
        target_url: str | None = None,
        reachable: Callable[[], bool] | None = None,
        dense_offsets: bool = False,
    ) -> None:
        self.dense_offsets = dense_offsets
        self._open_target = open_target
        # a cheap check before each attempt: opening clients against a log that is down can
        # cost half a minute and leak their threads (kafka-python's), attempt after attempt
        self._reachable = reachable
        self.directory = Path(directory)
        self.describe = describe
        self.target_url = target_url or describe
        self._target: EventLog | None = None
        self._spool: SpoolFile | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # new records to forward
        self._stop = threading.Event()  # close(): the forwarder ends
        self._failing_since: float | None = None
        self._pid = os.getpid()
        SpooledLog._live.add(self)

    # -- process lifetime ---------------------------------------------------------------

    def _own(self) -> SpoolFile:
        if os.getpid() != self._pid:
            self._after_fork()
        if self._spool is None:
            self._spool = SpoolFile.create(self.directory, self.target_url)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._forward_loop, daemon=True, name="mlineage-spool-forwarder"
            )
            self._thread.start()
        return self._spool

    def _after_fork(self) -> None:
        if self._spool is not None:
            self._spool.abandon()
        self._spool = None
        self._thread = None
        self._target = None  # its clients belong to the parent
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pid = os.getpid()

    def target(self) -> EventLog:
        if os.getpid() != self._pid:
            self._after_fork()
        if self._target is None:
            self._target = self._open_target()
        return self._target

    # -- appends and forwarding ---------------------------------------------------------

    def append(self, records: Sequence[OutRecord]) -> None:
        check_records(records)
        if not records:
            return
        for r in records:  # Kafka refuses bigger ones for ever: refuse them here, now
            size = len(r.value) + len(r.key or b"") + sum(len(k) + len(v) for k, v in r.headers)
            if size > MAX_RECORD_BYTES:
                raise EventLogError(
                    f"a record for {r.topic} is {size:,} bytes; Kafka takes at most "
                    f"{MAX_RECORD_BYTES:,} (message.max.bytes): make the event smaller"
                )
        self._own().add(records)
        self._wake.set()

    def pending(self) -> int:
        """Records this process has spooled that are not in the log yet."""
        return 0 if self._spool is None or os.getpid() != self._pid else self._spool.pending()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything appended so far is in the log; False on timeout (the rest
        stays spooled, and is forwarded later). It only watches: the forwarder keeps its own
        pace (and its back-off while the log is away)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            time.sleep(0.02 if left is None else min(0.02, left))
        return True

    def _forward_loop(self) -> None:
        pid = os.getpid()
        backoff = 0.2
        last_orphan_scan = 0.0
        while os.getpid() == pid and not self._stop.is_set():
            self._wake.clear()
            try:
                moved = self._forward(self._spool)
                if time.monotonic() - last_orphan_scan > 30:
                    last_orphan_scan = time.monotonic()
                    moved += self._adopt_orphans()
            except Exception as exc:
                self._failed(exc)
                self._stop.wait(backoff)  # only close() cuts a back-off short
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            if self._failing_since is not None:
                log.warning(
                    "mlineage: %s answers again; forwarded the spooled events", self.describe
                )
                self._failing_since = None
            if not moved:
                self._wake.wait(1.0)

    def _forward(self, spool: SpoolFile | None) -> int:
        if spool is None:
            return 0
        moved = 0
        while True:
            seq, records = spool.head(CHUNK)
            if not records:
                return moved
            if self._target is None and self._reachable is not None and not self._reachable():
                raise EventLogError("nothing answers at its address")
            self.target().append(records)
            failpoints.hit("spool.after_forward")
            spool.drop_through(seq)
            moved += len(records)

    def _adopt_orphans(self) -> int:
        moved = 0
        own = self._spool.path if self._spool is not None else None
        for path in sorted(self.directory.glob("spool-*.sqlite")):
            if path == own:
                continue
            orphan = SpoolFile.adopt(path, self.target_url)
            if orphan is None:
                continue
            try:
                n = self._forward(orphan)
                if n:
                    log.warning(
                        "mlineage: forwarded %d events left in %s by an earlier process", n, path
                    )
                moved += n
            finally:
                orphan.close(remove_if_empty=True)
        return moved

    def _failed(self, exc: BaseException) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            path = self._spool.path if self._spool is not None else self.directory
            log.warning(
                "mlineage: %s is not answering (%s); events are kept in %s and will be "
                "forwarded, in order, when it answers. Nothing is lost.",
                self.describe,
                exc,
                path,
            )
            self._drop_target()

    def _drop_target(self) -> None:
        """Close the target (after a failure): the next forward reconnects from scratch."""
        if self._target is not None:
            with contextlib.suppress(Exception):
                self._target.close()
        self._target = None

    def close(self, timeout: float = FLUSH_AT_EXIT_S) -> None:
        """Flush (up to ``timeout``), stop the forwarder and close the target. Whatever is
        still spooled stays on disk and is forwarded by a later process. A forwarder stuck
        in a call to the log is left to die with the process: closing the spool or the log
        under it could lose track of a chunk the log already took."""
        if os.getpid() != self._pid:
            self._after_fork()
            return
        if self._spool is not None and not self.flush(timeout):
            log.warning(
                "mlineage: %d events could not reach %s within %.0f s; they stay in "
                "%s and the next mlineage process forwards them",
                self.pending(),
                self.describe,
                timeout,
                self._spool.path,
            )
        self._stop.set()
        self._wake.set()
        stuck = False
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            stuck = self._thread.is_alive()
            self._thread = None
        if stuck:
            return
        if self._spool is not None:
            self._spool.close(remove_if_empty=True)
            self._spool = None
        if self._target is not None:
            with contextlib.suppress(Exception):
                self._target.close()
            self._target = None

    # -- reads go to the log itself -------------------------------------------------------

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        return self.target().read(topic, partition, offset, max_records)

    def read_bounded(
        self, topic: str, partition: int, offset: int, max_records: int, max_bytes: int
    ) -> list[Record]:
        return self.target().read_bounded(topic, partition, offset, max_records, max_bytes)

    def partitions(self, topic: str) -> list[int]:
        return self.target().partitions(topic)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self.target().end_offsets(topic)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        return self.target().committed(group, topic)

    def transact(
        self, group: str, consumed: Mapping[tuple[str, int], int], produce: Sequence[OutRecord]
    ) -> None:
        self.target().transact(group, consumed, produce)


@atexit.register
def _flush_at_exit() -> None:
    for spooled in list(SpooledLog._live):
        if spooled._pid == os.getpid():
            spooled.close(FLUSH_AT_EXIT_S)


def tcp_reachable(addresses: Sequence[str], timeout: float = 2.0) -> Callable[[], bool]:
    """A check that one of ``host:port`` accepts a TCP connection."""

    def check() -> bool:
        for address in addresses:
            host, _, port = address.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                    return True
            except (OSError, ValueError):
                continue
        return False

    return check
