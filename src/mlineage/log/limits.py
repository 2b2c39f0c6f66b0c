"""What ends a consumer's run (the tracker's and the projector's runners share it): a
number of records, a deadline, or the caller's ``stop()``, asked between batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from operator import attrgetter

from mlineage.log.base import Record

_VALUE = attrgetter("value")
BATCH_BYTES = 64 * 1024 * 1024
"""About the most record bytes one batch holds: a batch of large records (OpenLineage events
of up to 1 MiB, big jobs) takes fewer of them, so a batch's memory, and the DuckDB merge of
it, stays bounded whatever the records weigh."""


def weight(records: Sequence[Record]) -> int:
    """The bytes of the records' values (summed in C: no Python per record)."""
    return sum(map(len, map(_VALUE, records)))


def by_bytes(records: Sequence[Record], budget: int = BATCH_BYTES) -> list[list[Record]]:
    """``records`` in order, cut into runs of at most ``budget`` bytes of values (each at
    least one record)."""
    if weight(records) <= budget:  # the usual batch: one part, no loop
        return [list(records)]
    parts: list[list[Record]] = [[]]
    size = 0
    for record in records:
        size_of = len(record.value)
        if parts[-1] and size + size_of > budget:
            parts.append([])
            size = 0
        parts[-1].append(record)
        size += size_of
    return parts


class RunLimits:
    """The stop conditions of one run: at most ``max_events`` records (None: no limit), for
    at most ``timeout`` seconds from now (None: no deadline), until ``stop()`` says so."""

    def __init__(
        self,
        batch_size: int,
        max_events: int | None = None,
        timeout: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.batch_size = batch_size
        self._fits = batch_size  # records of the last batch's mean size that fit BATCH_BYTES
        self.max_events = max_events
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self._stop = stop

    def observe(self, records: Sequence[Record]) -> None:
        """Size the next batches after what this one weighed (see :data:`BATCH_BYTES`)."""
        if records:
            mean = weight(records) / len(records)
            self._fits = max(1, int(BATCH_BYTES / max(mean, 1.0)))

    def next_batch(self, done: int) -> int:
        """How many records the next batch may take after ``done`` (0: the run is full)."""
        size = min(self.batch_size, self._fits)
        if self.max_events is None:
            return size
        return max(0, min(size, self.max_events - done))

    def should_stop(self) -> bool:
        """The caller asked to stop, or the deadline passed."""
        if self._stop is not None and self._stop():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline
