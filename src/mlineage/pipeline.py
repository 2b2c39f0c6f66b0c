"""The embedded deployment: run the tracker and the projector in-process up to the end of
the log, so a command answers from a projection that includes everything published."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlineage.log.base import EventLog, open_log
from mlineage.projection.service import ProjectorService, ProjectorStats
from mlineage.projection.store import DuckDBStore
from mlineage.settings import Settings
from mlineage.tracker.service import TrackerService, TrackerStats

Progress = Callable[[str, int, int], None]


@dataclass
class SyncStats:
    tracker: TrackerStats
    projector: ProjectorStats


def sync(settings: Settings, *, log: EventLog | None = None, store: DuckDBStore | None = None,
         progress: Progress | None = None) -> SyncStats:
    """Track and project everything in the log; return what was done."""
    own_log = log is None
    own_store = store is None
    log = log or open_log(settings.log_url)
    try:
        tracker = TrackerService(log).run(
            progress=(lambda n, lag: progress("track", n, lag)) if progress else None)
        store = store or DuckDBStore(settings.db_path)
        try:
            projector = ProjectorService(log, store).run(
                progress=(lambda n, lag: progress("project", n, lag)) if progress else None)
        finally:
            if own_store:
                store.close()
    finally:
        if own_log:
            log.close()
    return SyncStats(tracker, projector)
