"""Operations: where each consumer is (``mlineage status``) and the dead letters
(``mlineage dlq list`` / ``redrive``).

Dead letters live in two places: records the **tracker** could not decode, validate or
derive go to the topic ``mlineage.dlq.v1`` (the original bytes, with headers naming the
error and the original topic, partition and offset); records the **projector** could not
decode or validate go to the ``dead_letters`` table of the projection.

**Redrive** works on the topic. It reads the dead letters after the redrive group's
position, and for each one: if the original record now validates (the producer was fixed
and republished nothing, or an upcaster learned an old shape), it is appended again to its
original topic; otherwise it is appended again to the DLQ with the current error. Both, and
the new position, go in one ``transact``: a dead letter is redriven exactly once, even if
``redrive`` is interrupted. Running it again without a fix moves the ones that still fail to
the back once more (the pending count stays the same; the topic keeps every attempt).
``--dry-run`` shows what would happen.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from mlineage.errors import ProjectionError
from mlineage.events.codec import Rejected, decode_many
from mlineage.log.base import (
    TOPIC_DLQ,
    EventLog,
    OutRecord,
    Record,
)
from mlineage.log.dead_letters import DeadLetter, with_error
from mlineage.log.spool import spooled_counts
from mlineage.projection.service import ALLOWED as _ALLOWED
from mlineage.projection.service import CONSUMER as PROJECTOR
from mlineage.projection.service import PROJECTED_TOPICS, reading
from mlineage.projection.store import snapshot_path
from mlineage.settings import Settings
from mlineage.tracker.service import GROUP as TRACKER
from mlineage.tracker.service import SOURCES as TRACKED

REDRIVE_GROUP = "mlineage-dlq-redrive"


@dataclass
class ConsumerStatus:
    name: str
    where: str
    positions: dict[str, int] = field(default_factory=dict)  # "topic[partition]" -> next
    lag: int = 0
    note: str = ""


@dataclass
class Status:
    log: str
    ends: dict[str, int]
    consumers: list[ConsumerStatus]
    dead_letters_topic: int
    dead_letters_table: int | None
    spooled: dict[str, int]
    log_file: str | None = None  # the embedded log's file, absolute
    projection: str = ""  # the projection's file, absolute

    def as_dict(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "log_file": self.log_file,
            "projection": self.projection,
            "ends": self.ends,
            "consumers": [c.__dict__ for c in self.consumers],
            "dead_letters": {
                "topic_pending": self.dead_letters_topic,
                "projector_table": self.dead_letters_table,
            },
            "spooled": self.spooled,
        }


def _tp(topic: str, partition: int) -> str:
    return f"{topic}[{partition}]"


def _read_projection(db_path: Path) -> tuple[dict[tuple[str, int], int] | None, int | None, str]:
    """Positions and dead-letter count of the projection (or of the snapshot a follower
    keeps), read in turn with the other processes of the home."""
    if not db_path.exists() and not snapshot_path(db_path).exists():
        return None, None, f"no projection at {db_path} yet"
    try:
        with reading(db_path) as store:
            label = str(db_path.absolute()) if store.path == db_path else "snapshot"
            rows = store.con.execute(
                "SELECT topic, partition, next_offset FROM positions WHERE consumer = ?",
                [PROJECTOR],
            ).fetchall()
            count = store.con.execute("SELECT count(*) FROM dead_letters").fetchall()[0][0]
    except duckdb.Error:
        return None, None, f"{db_path} is not an mlineage projection"
    except ProjectionError as exc:
        return None, None, str(exc)
    return {(t, p): o for t, p, o in rows}, int(count), label


def status(log: EventLog, settings: Settings) -> Status:
    ends: dict[tuple[str, int], int] = {}
    for topic in (*PROJECTED_TOPICS, TOPIC_DLQ):
        for p, end in log.end_offsets(topic).items():
            ends[(topic, p)] = end

    def consumer(
        name: str,
        where: str,
        positions: dict[tuple[str, int], int],
        topics: tuple[str, ...],
        note: str = "",
    ) -> ConsumerStatus:
        c = ConsumerStatus(name, where, note=note)
        for (topic, p), end in ends.items():
            if topic in topics:
                at = positions.get((topic, p), 0)
                c.positions[_tp(topic, p)] = at
                c.lag += max(0, end - at)
        return c

    tracker = {(t, p): o for t in TRACKED for p, o in log.committed(TRACKER, t).items()}
    consumers = [consumer(TRACKER, f"group in {log.kind} log", tracker, tuple(TRACKED))]
    positions, dead_table, where = _read_projection(settings.db_path)
    consumers.append(
        consumer(
            PROJECTOR,
            where,
            positions or {},
            PROJECTED_TOPICS,
            "" if positions is not None else where,
        )
    )
    redrive = {(TOPIC_DLQ, p): o for p, o in log.committed(REDRIVE_GROUP, TOPIC_DLQ).items()}
    dlq = consumer(REDRIVE_GROUP, "dead letters not redriven yet", redrive, (TOPIC_DLQ,))
    spooled = {}
    if settings.spool_dir.exists():
        spooled = {str(p): n for p, n in spooled_counts(settings.spool_dir).items()}
    return Status(
        log=settings.log_url,
        ends={_tp(t, p): e for (t, p), e in sorted(ends.items())},
        consumers=consumers,
        dead_letters_topic=len(dead_letters(log, pending_only=True)) if dlq.lag else 0,
        dead_letters_table=dead_table,
        spooled=spooled,
        log_file=None if settings.log_file is None else str(settings.log_file),
        projection=str(settings.db_path.absolute()),
    )


def dead_letters(
    log: EventLog, *, pending_only: bool = True, limit: int | None = None
) -> list[DeadLetter]:
    """The DLQ topic's records (after the redrive position unless ``pending_only=False``)."""
    start = log.committed(REDRIVE_GROUP, TOPIC_DLQ) if pending_only else {}
    out: list[DeadLetter] = []
    for partition in log.partitions(TOPIC_DLQ):
        offset = start.get(partition, 0)
        while limit is None or len(out) < limit:
            got = log.read(TOPIC_DLQ, partition, offset, 1000)
            if not got:
                break
            out.extend(DeadLetter.of(r) for r in got)
            offset = got[-1].offset + 1
    return out[:limit] if limit is not None else out


def projector_dead_letters(db_path: Path, limit: int = 100) -> list[dict[str, Any]]:
    if not db_path.exists() and not snapshot_path(db_path).exists():
        return []
    with reading(db_path) as store:
        rows = store.con.execute(
            'SELECT topic, partition, "offset", error, dead_lettered_at FROM dead_letters '
            'ORDER BY dead_lettered_at, topic, partition, "offset" LIMIT ?',
            [limit],
        ).fetchall()
    return [
        {"topic": t, "partition": p, "offset": o, "error": e, "at": str(a)}
        for t, p, o, e, a in rows
    ]


@dataclass
class DiscardResult:
    discarded: list[DeadLetter] = field(default_factory=list)
    kept: list[DeadLetter] = field(default_factory=list)


def _pending_chunks(log: EventLog) -> Iterator[tuple[int, list[Record], int]]:
    """The pending dead letters a chunk at a time: (partition, records, the redrive position
    after them). Only those before the end the walk began at: what a redrive or a discard
    appends to the DLQ meanwhile lies beyond."""
    start = log.committed(REDRIVE_GROUP, TOPIC_DLQ)
    ends = log.end_offsets(TOPIC_DLQ)
    for partition in log.partitions(TOPIC_DLQ):
        offset = start.get(partition, 0)
        end = ends.get(partition, 0)
        while offset < end:
            records = [r for r in log.read(TOPIC_DLQ, partition, offset, 1000) if r.offset < end]
            if not records:
                break
            offset = records[-1].offset + 1
            yield partition, records, offset


def discard(
    log: EventLog, which: Collection[tuple[int, int]] | None = None, *, dry_run: bool = False
) -> DiscardResult:
    """Give up on pending dead letters: every one (``which`` None) or those at these
    (partition, offset) places of the DLQ topic. Like :func:`redrive` it moves the redrive
    position past the pending ones, in one ``transact`` per partition with the records it
    appends: the dead letters kept are appended to the DLQ again, unchanged (they stay
    pending, at the back), the discarded ones are not. The topic keeps every record, so a
    discard is on the record too. :class:`ValueError` names a place that is not pending."""
    if which is not None:
        pending = {(d.record.partition, d.record.offset) for d in dead_letters(log)}
        missing = sorted(set(which) - pending)
        if missing:
            places = ", ".join(f"{TOPIC_DLQ}[{p}]@{o}" for p, o in missing)
            raise ValueError(f"not a pending dead letter: {places} (see `mlineage dlq list`)")
    result = DiscardResult()
    for partition, records, offset in _pending_chunks(log):
        produce: list[OutRecord] = []
        for record in records:
            letter = DeadLetter.of(record)
            if which is None or (partition, record.offset) in which:
                result.discarded.append(letter)
            else:
                result.kept.append(letter)
                produce.append(
                    OutRecord(TOPIC_DLQ, record.key, record.value, tuple(record.headers))
                )
        if not dry_run:
            log.transact(REDRIVE_GROUP, {(TOPIC_DLQ, partition): offset}, produce)
    return result


def history(con: duckdb.DuckDBPyConnection, log: EventLog, key: str) -> list[dict[str, Any]]:
    """Every event applied to the entity ``key`` (an ARN; an association is ``"SOURCE_ARN
    DESTINATION_ARN"``), oldest first in merge order, each with the event as published: the
    projection keeps where each event was read, and its body is read back from the log."""
    rows = con.execute(
        'SELECT version, event_type, producer, topic, partition, "offset" FROM events '
        "WHERE entity_key = ? ORDER BY version",
        [key],
    ).fetchall()
    out = []
    for version, event_type, producer, topic, partition, offset in rows:
        found = log.read(topic, partition, offset, 1)
        if not found or found[0].offset != offset:
            body: Any = None  # only when the log lost it (Kafka retention shorter than forever)
        else:
            body = json.loads(found[0].value)
        out.append(
            {
                "version": version,
                "event_type": event_type,
                "producer": producer,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "event": body,
            }
        )
    return out


@dataclass
class RedriveResult:
    redriven: list[DeadLetter] = field(default_factory=list)
    still_bad: list[tuple[DeadLetter, str]] = field(default_factory=list)


def redrive(log: EventLog, *, dry_run: bool = False) -> RedriveResult:
    """Re-publish the dead letters that validate now (see the module's docstring)."""
    result = RedriveResult()
    for partition, records, offset in _pending_chunks(log):
        produce: list[OutRecord] = []
        values = decode_many([r.value for r in records], [r.key for r in records])
        for record, decoded in zip(records, values, strict=True):
            letter = DeadLetter.of(record)
            topic = letter.original_topic
            problem = ""
            if isinstance(decoded, Rejected):
                problem = decoded.error
            elif topic not in _ALLOWED:
                problem = f"unknown original topic {topic!r}"
            elif decoded.event_type not in _ALLOWED[topic]:
                problem = f"{decoded.event_type} does not belong on {topic}"
            if problem:
                result.still_bad.append((letter, problem))
                produce.append(with_error(record, problem))
            else:
                result.redriven.append(letter)
                produce.append(OutRecord(topic, record.key, record.value))
        if not dry_run:
            log.transact(REDRIVE_GROUP, {(TOPIC_DLQ, partition): offset}, produce)
    return result
