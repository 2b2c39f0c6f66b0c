"""The embedded deployment: run the tracker and the projector in-process up to the end of
the log, so a command answers from a projection that includes everything published."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlineage.log.base import EventLog, open_log
from mlineage.projection.service import ProjectorService, ProjectorStats, WriterLock
from mlineage.projection.store import DuckDBStore
from mlineage.settings import Settings
from mlineage.tracker.service import TrackerService, TrackerStats

Progress = Callable[[str, int, int], None]


@dataclass
class SyncStats:
    tracker: TrackerStats
    projector: ProjectorStats
    followed: bool = False
    """Nothing was done here: a follower (``project --follow``, ``serve``) holds the
    projection and keeps it current, tracking included on the embedded log."""


def sync(
    settings: Settings,
    *,
    log: EventLog | None = None,
    store: DuckDBStore | None = None,
    progress: Progress | None = None,
) -> SyncStats:
    """Track (embedded log only) and project everything in the log; return what was done.

    With Kafka the auto-tracker is a service (``mlineage track --follow``, a consumer group
    member with its own transactional id): a command must not join its group in passing, so
    only the projection catches up here. Nor does anything happen here while a follower
    holds the projection (``followed``): it tracks and projects what is new itself."""
    own_log = log is None
    own_store = store is None
    if own_store and WriterLock.held_elsewhere(settings.db_path):
        return SyncStats(TrackerStats(), ProjectorStats(), followed=True)
    log = log or open_log(settings.log_url)
    try:
        tracker = TrackerStats()
        if log.kind == "sqlite":
            tracker = TrackerService(log).run(
                progress=(lambda n, lag: progress("track", n, lag)) if progress else None
            )
        store = store or DuckDBStore(settings.db_path)
        try:
            projector = ProjectorService(log, store).run(
                progress=(lambda n, lag: progress("project", n, lag)) if progress else None
            )
        finally:
            if own_store:
                store.close()
    finally:
        if own_log:
            log.close()
    return SyncStats(tracker, projector)
