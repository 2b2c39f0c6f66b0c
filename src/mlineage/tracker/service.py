"""The auto-tracker runner: reads source events (the jobs and OpenLineage topics), derives
entity events, and appends them together with its own position in one atomic
``EventLog.transact`` — so a crash derives nothing twice and skips nothing. Records it
cannot decode or validate, or that make a rule fail, go to ``mlineage.dlq.v1`` with headers
naming the error and the original position."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlineage import failpoints
from mlineage._gc import gc_paused
from mlineage.errors import EventLogError
from mlineage.events.codec import Rejected, decode_many, dumps
from mlineage.events.models import OPENLINEAGE_EVENT_TYPES, SOURCE_EVENT_TYPES
from mlineage.log.base import (
    TOPIC_ENTITIES,
    TOPIC_JOBS,
    TOPIC_OPENLINEAGE,
    Consumer,
    EventLog,
    OutRecord,
    Record,
)
from mlineage.log.dead_letters import dead_letter
from mlineage.log.limits import BATCH_BYTES, RunLimits
from mlineage.log.outage import Outage
from mlineage.tracker.derive import derive_records

GROUP = "mlineage-tracker"
SOURCES = {TOPIC_JOBS: SOURCE_EVENT_TYPES, TOPIC_OPENLINEAGE: OPENLINEAGE_EVENT_TYPES}
"""The topics the tracker reads, and the event types that belong on each."""


@dataclass
class TrackerStats:
    consumed: int = 0
    derived: int = 0
    dead_lettered: int = 0


def transform(records: list[Record]) -> tuple[list[OutRecord], int]:
    """Derived (and dead-letter) records for a batch of source records; the count of DLQs."""
    out: list[OutRecord] = []
    dead = 0
    events = decode_many([r.value for r in records], [r.key for r in records])
    for record, event in zip(records, events, strict=True):
        if isinstance(event, Rejected):
            out.append(dead_letter(record, event.error))
            dead += 1
            continue
        if event.event_type not in SOURCES.get(record.topic, frozenset()):
            where = TOPIC_OPENLINEAGE if event.event_type in OPENLINEAGE_EVENT_TYPES else None
            if where is None:
                where = TOPIC_JOBS if event.event_type in SOURCE_EVENT_TYPES else TOPIC_ENTITIES
            what = "not a source event" if where == TOPIC_ENTITIES else "not of this topic"
            out.append(dead_letter(record, f"{event.event_type}: {what}; publish it to {where}"))
            dead += 1
            continue
        try:
            derived = derive_records(event)
        except Exception as exc:
            out.append(dead_letter(record, f"{event.event_type}: tracker rule failed: {exc!r}"))
            dead += 1
            continue
        for key, d in derived:
            out.append(OutRecord(TOPIC_ENTITIES, key.encode("utf-8"), dumps(d).encode("utf-8")))
    return out, dead


class TrackerService:
    """Runs the tracker over the log. Stop conditions: ``until_end`` (default), ``max_events``,
    ``timeout``; ``follow=True`` keeps polling for new records until another condition holds.

    On Kafka it is a member of the consumer group ``mlineage-tracker`` (instances share the
    partitions) and each batch is one transaction: derived records plus the consumed offsets,
    fenced by the group's metadata. A batch whose commit the group refuses (a rebalance took
    its partitions) is dropped and re-read by whoever owns them now."""

    def __init__(
        self,
        log: EventLog,
        *,
        batch_size: int = 5000,
        group: str = GROUP,
        instance: str | None = None,
    ) -> None:
        self.log = log
        self.batch_size = batch_size
        self.group = group
        self.instance = instance

    def lag(self) -> int:
        total = 0
        for topic in SOURCES:
            committed = self.log.committed(self.group, topic)
            ends = self.log.end_offsets(topic)
            total += sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())
        return total

    def run(
        self,
        *,
        follow: bool = False,
        max_events: int | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.2,
        progress: Callable[[int, int], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> TrackerStats:
        """``stop()`` is asked between batches; True ends the run (a clean shutdown)."""
        with self.log.consumer(
            list(SOURCES),
            group=self.group,
            instance=self.instance,
            max_poll_records=self.batch_size,
        ) as consumer:
            if progress is not None:
                progress(0, consumer.lag())  # the size of the run, before its first batch
            limits = RunLimits(self.batch_size, max_events, timeout, stop)
            return self._run(consumer, follow, limits, poll_interval, progress)

    def _run(
        self,
        consumer: Consumer,
        follow: bool,
        limits: RunLimits,
        poll_interval: float,
        progress: Callable[[int, int], None] | None,
    ) -> TrackerStats:
        stats = TrackerStats()
        misses = 0  # empty polls in a row: wait only once the log looked drained
        outage = Outage(f"tracker: the event log {self.log.kind}")
        should_stop = limits.should_stop

        while True:
            limit = limits.next_batch(stats.consumed)
            if limit <= 0:
                return stats
            try:
                records = consumer.poll(
                    limit,
                    timeout=poll_interval if follow or misses else 0.0,
                    max_bytes=BATCH_BYTES,
                )
                limits.observe(records)
                misses = 0 if records else misses + 1
                if records:
                    with gc_paused():
                        out, dead = transform(records)
                    failpoints.hit("tracker.before_transact")
                    committed = consumer.transact(consumer.consumed(records), out)
                    failpoints.hit("tracker.after_transact")
                    if committed:
                        stats.consumed += len(records)
                        stats.dead_lettered += dead
                        stats.derived += len(out) - dead
                        if progress is not None:
                            progress(stats.consumed, consumer.lag())
                else:
                    moved = consumer.advanced()  # past commit markers only: commit that too
                    if moved:
                        consumer.transact(moved, [])
                    if not follow and consumer.at_end():
                        return stats
            except EventLogError as exc:
                # a service rides out an outage of any length; a one-shot run reports it
                if not follow or not exc.transient:
                    raise
                # settle a commit in doubt and go back to the committed offsets before
                # reading on: the failed batch's records must be read again
                if not outage.recover(exc, consumer.recover, should_stop):
                    return stats
                outage.over(stats.consumed)
                continue
            if should_stop():
                return stats
