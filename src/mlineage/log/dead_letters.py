"""The dead-letter record, the one place its format is written down: a record a consumer
could not use goes to ``mlineage.dlq.v1`` with its key and bytes unchanged and headers that
say why (``mlineage.error``) and where it was read (``mlineage.original.topic``,
``.partition``, ``.offset``). The tracker writes them; ``mlineage dlq`` (ops.py) reads,
redrives and discards them. (The projector keeps its own in the ``dead_letters`` table.)"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from mlineage.log.base import TOPIC_DLQ, OutRecord, Record

ERROR = "mlineage.error"
ORIGINAL_TOPIC = "mlineage.original.topic"
ORIGINAL_PARTITION = "mlineage.original.partition"
ORIGINAL_OFFSET = "mlineage.original.offset"


def dead_letter(record: Record, error: str) -> OutRecord:
    """``record``, read from its topic, as a dead letter saying ``error``."""
    return OutRecord(
        TOPIC_DLQ,
        record.key,
        record.value,
        (
            (ERROR, error.encode("utf-8")),
            (ORIGINAL_TOPIC, record.topic.encode()),
            (ORIGINAL_PARTITION, str(record.partition).encode()),
            (ORIGINAL_OFFSET, str(record.offset).encode()),
        ),
    )


def with_error(letter: Record, error: str) -> OutRecord:
    """A dead letter (a record of the DLQ) appended again with a new ``error``; where it
    was first read is kept."""
    headers = tuple((k, v) for k, v in letter.headers if k != ERROR)
    return OutRecord(TOPIC_DLQ, letter.key, letter.value, ((ERROR, error.encode()), *headers))


@dataclass
class DeadLetter:
    """A record on the DLQ topic, with what its headers say."""

    record: Record
    error: str
    original_topic: str
    original_partition: int | None
    original_offset: int | None

    @classmethod
    def of(cls, record: Record) -> DeadLetter:
        def header(name: str) -> str:
            raw = record.header(name)
            return raw.decode("utf-8", "replace") if raw is not None else ""

        def number(name: str) -> int | None:
            with contextlib.suppress(ValueError):
                return int(header(name))
            return None

        return cls(
            record,
            header(ERROR),
            header(ORIGINAL_TOPIC),
            number(ORIGINAL_PARTITION),
            number(ORIGINAL_OFFSET),
        )

    @property
    def summary(self) -> str:
        """``event_type event_id`` when the value is JSON that names them."""
        with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError, TypeError):
            value = json.loads(self.record.value)
            return f"{value.get('event_type', '?')} {value.get('event_id', '?')}"
        return f"{len(self.record.value)} bytes, not JSON"

    def as_dict(self) -> dict[str, Any]:
        return {
            "offset": self.record.offset,
            "partition": self.record.partition,
            "error": self.error,
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "event": self.summary,
        }
