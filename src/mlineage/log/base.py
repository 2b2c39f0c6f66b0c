"""The event log contract. Every implementation (``sqlite://``, ``kafka://``) must meet it;
``tests/contract`` runs one suite against each.

- **Topics and offsets.** A topic has one or more partitions; a record's offset is its
  position in its partition: offsets start at 0 and grow with each record appended. On
  logs with ``dense_offsets`` (SQLite) they grow by exactly one; Kafka's transactions leave
  gaps (each commit writes a marker that takes an offset), so there ``end_offsets`` is the
  next offset to be written, not the record count. ``read(topic, partition, offset, n)``
  returns records at offsets ``>= offset`` in offset order, at most ``n``; an empty list
  means the end of the partition for now.
- **Append is atomic and durable.** ``append(records)`` writes all of them or none; when it
  returns they survive a crash of the process. Several processes may append at once: no
  record is lost or duplicated, and each partition's offsets stay dense.
- **Keys.** A record's key picks its partition (the same key always goes to the same
  partition, so the events of one entity stay in order).
- **Transform atomically.** ``transact(group, consumed, produce)`` appends ``produce`` and sets
  the group's committed positions (``consumed``: ``(topic, partition) -> next offset``) in one
  atomic step, so a consumer that crashes either did both or neither: it never derives a
  record twice and never skips one. ``committed(group, topic)`` reads those positions back.
- **Bytes only.** Implementations move bytes and headers; they never import the event models
  (the codec turns bytes into events).
- **close()** releases connections; appends that returned before it are durable.
- **Consumers.** ``consumer(topics, group=...)`` reads from the group's committed positions
  and commits with ``Consumer.transact``; ``consumer(topics, positions=...)`` reads from
  positions the caller keeps itself (the projector keeps them in DuckDB). The generic
  :class:`LogConsumer` builds both on ``read``; Kafka overrides them with real consumer
  groups (group-metadata fencing) and manual assignment.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import ClassVar

from mlineage.errors import ConfigurationError, EventLogError

TOPIC_JOBS = "mlineage.jobs.v1"
TOPIC_ENTITIES = "mlineage.entities.v1"
TOPIC_OPENLINEAGE = "mlineage.openlineage.v1"
"""OpenLineage events: mlineage's envelope, or bare as the OpenLineage client's Kafka
transport writes them."""
TOPIC_DLQ = "mlineage.dlq.v1"
TOPICS = (TOPIC_JOBS, TOPIC_ENTITIES, TOPIC_OPENLINEAGE, TOPIC_DLQ)

Headers = tuple[tuple[str, bytes], ...]
TopicPartition = tuple[str, int]
Positions = Mapping[TopicPartition, int]
StartPositions = Callable[[Sequence[TopicPartition]], Positions]


@dataclass(frozen=True)
class OutRecord:
    """A record to append."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True)
class Record:
    """A record read back from the log, with its position."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def check_records(records: Sequence[OutRecord]) -> None:
    """The log moves bytes: refuse anything else before writing (atomic: all or nothing)."""
    for r in records:
        if not isinstance(r.value, bytes):
            raise EventLogError(
                f"record value for {r.topic} must be bytes, got {type(r.value).__name__}"
            )
        if r.key is not None and not isinstance(r.key, bytes):
            raise EventLogError(
                f"record key for {r.topic} must be bytes or None, got {type(r.key).__name__}"
            )
        for name, value in r.headers:
            if not isinstance(name, str) or not isinstance(value, bytes):
                raise EventLogError(
                    f"record header {name!r} for {r.topic} must be a str name with a bytes value"
                )


def next_positions(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """The position after each partition's last record in ``records``."""
    out: dict[TopicPartition, int] = {}
    for r in records:
        tp = (r.topic, r.partition)
        out[tp] = max(out.get(tp, 0), r.offset + 1)
    return out


def fit(records: list[Record], max_bytes: int) -> list[Record]:
    """The leading records whose values fit in ``max_bytes`` (at least one)."""
    size = 0
    for i, record in enumerate(records):
        size += len(record.value)
        if size > max_bytes and i > 0:
            return records[:i]
    return records


class Consumer(ABC):
    """Reads records of some topics, keeping its own positions. Not thread-safe: one thread
    at a time."""

    @abstractmethod
    def poll(
        self, max_records: int, timeout: float = 0.0, max_bytes: int | None = None
    ) -> list[Record]:
        """Up to ``max_records`` records from the current positions (advancing them), waiting
        up to ``timeout`` seconds for the first; ``[]`` when nothing came in time. Given
        ``max_bytes``, no more records than their values fit in (but at least one), read no
        further where the log allows (the embedded log; Kafka's fetches are bounded by its
        fetch sizes instead)."""

    def consumed(self, records: Sequence[Record]) -> dict[TopicPartition, int]:
        """The positions to commit after processing ``records`` (the last poll's): past each
        partition's last record, and on Kafka past any transaction markers after it too, so
        a consumer that caught up commits exactly the end offset."""
        return next_positions(records)

    def advanced(self) -> dict[TopicPartition, int]:
        """Positions that moved on with no record to show for it since the last
        :meth:`consumed` (Kafka: past commit markers and aborted records). An idle consumer
        commits them, so that once caught up its position is exactly the end offset."""
        return {}

    @abstractmethod
    def at_end(self) -> bool:
        """True when every partition this consumer reads has been read to its end."""

    @abstractmethod
    def lag(self) -> int:
        """Offsets between the positions and the ends (records, on dense logs)."""

    @abstractmethod
    def rewind(self) -> None:
        """Forget read-but-uncommitted records: back to the committed / stored positions."""

    def recover(self) -> None:
        """After a failed :meth:`transact` (the log did not answer, or the outcome is in
        doubt): settle what the log knows, then :meth:`rewind` to it. Raises
        :class:`EventLogError` while the log still does not answer."""
        self.rewind()

    def transact(self, consumed: Positions, produce: Sequence[OutRecord]) -> bool:
        """Group consumers: append ``produce`` and commit ``consumed`` atomically. False when
        the group moved on (a rebalance): nothing was written and the consumer rewound."""
        raise EventLogError("transact needs a consumer created with a group")

    def close(self) -> None:  # noqa: B027 - an optional hook: most consumers hold nothing
        """Release connections."""

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventLog(ABC):
    """Append records, read them from a position, commit consumer positions atomically."""

    kind: ClassVar[str]
    dense_offsets: bool = True  # a class's default; a log in front of another may say its own

    @abstractmethod
    def append(self, records: Sequence[OutRecord]) -> None: ...

    @abstractmethod
    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]: ...

    def read_bounded(
        self, topic: str, partition: int, offset: int, max_records: int, max_bytes: int
    ) -> list[Record]:
        """What :meth:`read` returns, cut after the records whose values fit in ``max_bytes``
        (at least one). Logs that can stop reading there override it (SQLite)."""
        return fit(self.read(topic, partition, offset, max_records), max_bytes)

    @abstractmethod
    def partitions(self, topic: str) -> list[int]: ...

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset to be written, per partition (the record count only on logs with
        ``dense_offsets``: Kafka's commit markers take offsets too)."""

    @abstractmethod
    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed next offsets for ``topic`` (partitions never committed: absent)."""

    @abstractmethod
    def transact(
        self,
        group: str,
        consumed: Mapping[tuple[str, int], int],
        produce: Sequence[OutRecord],
    ) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group: str | None = None,
        positions: StartPositions | None = None,
        instance: str | None = None,
        max_poll_records: int = 5000,
    ) -> Consumer:
        """A consumer of ``topics``: from ``group``'s committed positions (commit with
        :meth:`Consumer.transact`), or from ``positions(partitions)`` that the caller keeps.
        ``instance`` names this member of the group (Kafka: its stable transactional id)."""
        del instance, max_poll_records
        return LogConsumer(self, topics, group=group, positions=positions)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_REGISTRY: dict[str, Callable[[str], EventLog]] = {}


def register(scheme: str, factory: Callable[[str], EventLog]) -> None:
    _REGISTRY[scheme] = factory


LOG_ENTRY_POINTS = "mlineage.event_logs"
"""The entry-point group naming, per URL scheme, the module of an EventLog implementation
(pyproject.toml); the module registers its scheme with :func:`register` when imported, so
an implementation (kafka-python with it) is imported only when a URL asks for it."""


def open_log(url: str) -> EventLog:
    """Open the event log a URL names (``sqlite:///path`` or ``kafka://host:port``)."""
    scheme = url.split("://", 1)[0]
    if scheme not in _REGISTRY:
        for entry in entry_points(group=LOG_ENTRY_POINTS, name=scheme):
            entry.load()
    factory = _REGISTRY.get(scheme)
    if factory is None:
        schemes = set(_REGISTRY) | {e.name for e in entry_points(group=LOG_ENTRY_POINTS)}
        known = ", ".join(f"{s}://" for s in sorted(schemes))
        raise ConfigurationError(f"no event log for {url!r}: this mlineage supports {known}")
    return factory(url)


class LogConsumer(Consumer):
    """A consumer built on ``EventLog.read``: every partition of every topic, round robin."""

    def __init__(
        self,
        log: EventLog,
        topics: Sequence[str],
        *,
        group: str | None = None,
        positions: StartPositions | None = None,
    ) -> None:
        if (group is None) == (positions is None):
            raise ValueError("a consumer needs exactly one of group= and positions=")
        self.log = log
        self.topics = tuple(topics)
        self.group = group
        self._start = positions or self._committed
        self._pos: dict[TopicPartition, int] = {}

    def _committed(self, tps: Sequence[TopicPartition]) -> Positions:
        group = self.group or ""
        out: dict[TopicPartition, int] = {}
        for topic in {t for t, _ in tps}:
            for p, offset in self.log.committed(group, topic).items():
                out[(topic, p)] = offset
        return out

    def _partitions(self) -> list[TopicPartition]:
        tps = [(t, p) for t in self.topics for p in self.log.partitions(t)]
        new = [tp for tp in tps if tp not in self._pos]
        if new:
            start = self._start(new)
            for tp in new:
                self._pos[tp] = start.get(tp, 0)
        return tps

    def poll(
        self, max_records: int, timeout: float = 0.0, max_bytes: int | None = None
    ) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            out: list[Record] = []
            budget = max_bytes
            for tp in self._partitions():
                room = max_records - len(out)
                if room <= 0 or (budget is not None and budget <= 0):
                    break
                if budget is None:
                    got = self.log.read(tp[0], tp[1], self._pos[tp], room)
                else:
                    # the first partition may take a record over the budget; later ones not
                    got = self.log.read_bounded(tp[0], tp[1], self._pos[tp], room, budget)
                    if out and got and len(got[0].value) > budget:
                        got = []
                    budget -= sum(map(len, (r.value for r in got)))
                if got:
                    out.extend(got)
                    self._pos[tp] = got[-1].offset + 1
            left = deadline - time.monotonic()
            if out or left <= 0:
                return out
            time.sleep(min(0.05, left))

    def at_end(self) -> bool:
        return self.lag() == 0

    def lag(self) -> int:
        self._partitions()
        return sum(
            max(0, end - self._pos[(t, p)])
            for t in self.topics
            for p, end in self.log.end_offsets(t).items()
            if (t, p) in self._pos
        )

    def rewind(self) -> None:
        self._pos.clear()

    def transact(self, consumed: Positions, produce: Sequence[OutRecord]) -> bool:
        if self.group is None:
            return super().transact(consumed, produce)
        self.log.transact(self.group, consumed, produce)
        return True
