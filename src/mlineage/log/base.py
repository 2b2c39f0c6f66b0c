"""The event log contract. Every implementation (``sqlite://``, ``kafka://``) must meet it;
``tests/contract`` runs one suite against each.

- **Topics and offsets.** A topic has one or more partitions; a record's offset is its
  position in its partition, starting at 0 and growing by one with each record appended.
  ``read(topic, partition, offset, n)`` returns records at offsets ``>= offset`` in offset
  order, at most ``n``; an empty list means the end of the partition for now.
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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from mlineage.errors import ConfigurationError

TOPIC_JOBS = "mlineage.jobs.v1"
TOPIC_ENTITIES = "mlineage.entities.v1"
TOPIC_DLQ = "mlineage.dlq.v1"
TOPICS = (TOPIC_JOBS, TOPIC_ENTITIES, TOPIC_DLQ)

Headers = tuple[tuple[str, bytes], ...]


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


class EventLog(ABC):
    """Append records, read them from a position, commit consumer positions atomically."""

    kind: ClassVar[str]

    @abstractmethod
    def append(self, records: Sequence[OutRecord]) -> None: ...

    @abstractmethod
    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]: ...

    @abstractmethod
    def partitions(self, topic: str) -> list[int]: ...

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset to be written, per partition (so: the record count)."""

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

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_REGISTRY: dict[str, Callable[[str], EventLog]] = {}


def register(scheme: str, factory: Callable[[str], EventLog]) -> None:
    _REGISTRY[scheme] = factory


def open_log(url: str) -> EventLog:
    """Open the event log a URL names (``sqlite:///path`` or ``kafka://host:port``)."""
    scheme = url.split("://", 1)[0]
    if scheme not in _REGISTRY:
        # implementations register themselves on import
        import mlineage.log.sqlite  # noqa: F401, PLC0415 - avoids an import cycle

    factory = _REGISTRY.get(scheme)
    if factory is None and scheme == "kafka":
        raise ConfigurationError(
            f"{url}: the Kafka event log is not available in this version of mlineage yet; "
            "use the embedded log (unset MLINEAGE_LOG, or sqlite:///path/events.sqlite)")
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_REGISTRY))
        raise ConfigurationError(
            f"no event log for {url!r}: this mlineage supports {known}"
        )
    return factory(url)
