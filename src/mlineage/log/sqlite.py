"""Embedded event log on SQLite (stdlib ``sqlite3``): the default, no services needed.

One table per topic (``offset INTEGER PRIMARY KEY``, one partition, offsets from 0), one
table of consumer positions. WAL journal so readers never block the writer; every append
runs in ``BEGIN IMMEDIATE`` with a busy timeout, so processes publishing at once queue up
instead of failing; ``synchronous=FULL`` so an append that returned survives a crash.
Connections are closed before ``os.fork()`` and reopened lazily on both sides (SQLite
connections must not cross a fork).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from mlineage.errors import EventLogError
from mlineage.log.base import (
    TOPICS,
    EventLog,
    OutRecord,
    Record,
    check_records,
    register,
)
from mlineage.log.rows import decode_headers, encode_headers, insert_rows

_BUSY_TIMEOUT_S = 60.0

# Fork safety. A SQLite connection must not cross fork: the child would share SQLite's
# in-process lock bookkeeping copied from the parent without holding the POSIX locks it
# describes, and the parent could then delete the WAL the child is writing. So every
# connection is closed just before os.fork() and reopened lazily on both sides.
_OPEN: set[sqlite3.Connection] = set()
_generation = 0


def _close_before_fork() -> None:
    global _generation  # noqa: PLW0603 - process-wide fork generation
    for conn in list(_OPEN):
        with contextlib.suppress(sqlite3.Error):
            conn.close()
    _OPEN.clear()
    _generation += 1


os.register_at_fork(before=_close_before_fork)


def _table(topic: str) -> str:
    return "topic_" + re.sub(r"[^A-Za-z0-9]", "_", topic)


class SqliteEventLog(EventLog):
    kind: ClassVar[str] = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._known_tables: set[str] = set()
        with self._write() as conn:
            for topic in TOPICS:
                self._ensure_topic(conn, topic)
            self._known_tables.update(_table(t) for t in TOPICS)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS consumer_offsets (group_id TEXT NOT NULL, "
                "topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, "
                "PRIMARY KEY (group_id, topic, partition))"
            )

    @classmethod
    def from_url(cls, url: str) -> SqliteEventLog:
        """SQLAlchemy's convention: ``sqlite:///relative/path``, ``sqlite:////absolute/path``."""
        if not url.startswith("sqlite:///"):
            raise EventLogError(
                f"bad sqlite log URL {url!r}: use sqlite:///relative/path or sqlite:////abs/path"
            )
        return cls(url.removeprefix("sqlite:///"))

    # -- connections ----------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "generation", None) != _generation:
            try:
                # check_same_thread=False only so the fork hook can close it from the
                # forking thread; each thread still uses its own connection
                conn = sqlite3.connect(
                    self.path,
                    timeout=_BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise EventLogError(
                    f"cannot open the event log {self.path}: {exc}; check the path and "
                    "that MLINEAGE_HOME is writable"
                ) from exc
            self._local.conn = conn
            self._local.generation = _generation
            _OPEN.add(conn)
        return conn

    def _write(self) -> _Txn:
        return _Txn(self._conn())

    def _ensure_topic(self, conn: sqlite3.Connection, topic: str) -> str:
        """Create the topic's table (inside the caller's transaction). Remembered only for the
        fixed topics, created at open: a new topic's table may be rolled back with a failed
        append, so it is checked again every time (IF NOT EXISTS costs microseconds)."""
        table = _table(topic)
        if table not in self._known_tables:
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{table}" (offset INTEGER PRIMARY KEY, key BLOB, '
                "value BLOB NOT NULL, headers TEXT, timestamp_ms INTEGER NOT NULL)"
            )
        return table

    # -- contract -------------------------------------------------------------------------------

    def append(self, records: Sequence[OutRecord]) -> None:
        if not records:
            return
        check_records(records)
        with self._write() as conn:
            self._append(conn, records)

    def _append(self, conn: sqlite3.Connection, records: Sequence[OutRecord]) -> None:
        now = int(time.time() * 1000)
        by_topic: dict[str, list[OutRecord]] = {}
        for rec in records:
            by_topic.setdefault(rec.topic, []).append(rec)
        for topic, recs in by_topic.items():
            table = self._ensure_topic(conn, topic)
            (base,) = conn.execute(f'SELECT coalesce(max(offset) + 1, 0) FROM "{table}"').fetchone()
            insert_rows(
                conn,
                f'INSERT INTO "{table}" (offset, key, value, headers, timestamp_ms)',
                [
                    (base + i, r.key, r.value, encode_headers(r.headers), now)
                    for i, r in enumerate(recs)
                ],
            )

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        return self._read(topic, partition, offset, max_records, None)

    def read_bounded(
        self, topic: str, partition: int, offset: int, max_records: int, max_bytes: int
    ) -> list[Record]:
        return self._read(topic, partition, offset, max_records, max_bytes)

    def _read(
        self, topic: str, partition: int, offset: int, max_records: int, max_bytes: int | None
    ) -> list[Record]:
        if partition != 0 or max_records <= 0:
            return []
        table = _table(topic)
        out: list[Record] = []
        size = 0
        try:
            cursor = self._conn().execute(
                f'SELECT offset, key, value, headers, timestamp_ms FROM "{table}" '
                "WHERE offset >= ? ORDER BY offset LIMIT ?",
                (offset, max_records),
            )
            # row by row: SQLite reads no further than the rows taken (a batch of large
            # records stops at the byte budget instead of being read whole)
            for off, key, value, headers, ts in cursor:
                size += len(value)
                if max_bytes is not None and size > max_bytes and out:
                    break
                out.append(Record(topic, 0, off, key, bytes(value), decode_headers(headers), ts))
            cursor.close()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise EventLogError(f"cannot read {topic} from {self.path}: {exc}") from exc
        return out

    def partitions(self, topic: str) -> list[int]:
        return [0]

    def end_offsets(self, topic: str) -> dict[int, int]:
        try:
            (end,) = (
                self._conn()
                .execute(f'SELECT coalesce(max(offset) + 1, 0) FROM "{_table(topic)}"')
                .fetchone()
            )
        except sqlite3.OperationalError:
            end = 0
        return {0: int(end)}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        rows = (
            self._conn()
            .execute(
                "SELECT partition, next_offset FROM consumer_offsets "
                "WHERE group_id = ? AND topic = ?",
                (group, topic),
            )
            .fetchall()
        )
        return {int(p): int(o) for p, o in rows}

    def transact(
        self,
        group: str,
        consumed: Mapping[tuple[str, int], int],
        produce: Sequence[OutRecord],
    ) -> None:
        check_records(produce)
        with self._write() as conn:
            self._append(conn, produce)
            insert_rows(
                conn,
                "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)",
                [(group, t, p, o) for (t, p), o in consumed.items()],
                suffix=" ON CONFLICT (group_id, topic, partition) "
                "DO UPDATE SET next_offset = excluded.next_offset",
            )

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "generation", None) == _generation:
            _OPEN.discard(conn)
            conn.close()
        self._local.conn = None


class _Txn:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK``), errors translated."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise EventLogError(
                f"the event log is locked or unwritable ({exc}); another process may hold "
                "it for longer than the busy timeout"
            ) from exc
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as err:
                self.conn.execute("ROLLBACK")
                raise EventLogError(f"could not commit to the event log: {err}") from err
        else:
            self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise EventLogError(f"event log write failed: {exc}") from exc


register("sqlite", SqliteEventLog.from_url)
