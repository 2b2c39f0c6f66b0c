"""The long-running pieces as commands: `track`, `project`, `replay`, `checksum`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable

import click

from mlineage.cli.app import Ctx, Reporter, catch_up, cli, pass_ctx, print_note, require_published
from mlineage.cli.render import err, out
from mlineage.log.base import open_log
from mlineage.projection.service import AccessLock, ProjectorService, WriterLock, reading, replay
from mlineage.projection.store import DuckDBStore, snapshot_path
from mlineage.settings import Settings
from mlineage.tracker.service import TrackerService


def service_logging() -> None:
    """Long-running services log warnings (outages, recoveries, leftovers removed) with a
    time stamp on stderr."""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    # kafka-python logs every refused connection and metadata retry of an outage; the
    # services say once that the log is not answering, and when it answers again
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def _stop_on_sigterm() -> Callable[[], bool]:
    """SIGTERM (``docker stop``) ends a service after its current batch, cleanly."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    return stopping.is_set


@cli.command()
@click.option("--follow", is_flag=True, help="Keep running and derive new events as they come.")
@click.option("--timeout", type=float, help="Stop after this many seconds.")
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=5000,
    show_default=True,
    help="Source events per log transaction.",
)
@click.option(
    "--instance",
    envvar="MLINEAGE_INSTANCE_ID",
    help="Kafka: this instance's stable name in the tracker group (its transactional "
    "id is mlineage-tracker-INSTANCE; a restarted instance fences its predecessor). "
    "Give each concurrent instance its own [env MLINEAGE_INSTANCE_ID; default the "
    "host name].",
)
@pass_ctx
def track(
    ctx: Ctx, follow: bool, timeout: float | None, batch_size: int, instance: str | None
) -> None:
    """Run the auto-tracker: derive entities from job events (to the end of the log).

    With Kafka, instances form the consumer group mlineage-tracker and share the partitions
    of mlineage.jobs.v1; each batch is one transaction (derived events + consumed offsets).
    """
    with open_log(ctx.settings.log_url) as log:
        service = TrackerService(log, batch_size=batch_size, instance=instance)
        if follow:
            service_logging()
            err.print(f"tracking {ctx.settings.log_url} (Ctrl-C to stop)")
        try:
            stats = service.run(follow=follow, timeout=timeout, stop=_stop_on_sigterm())
        except KeyboardInterrupt:
            return
    out.print(
        f"tracked {stats.consumed} events: derived {stats.derived}, "
        f"dead-lettered {stats.dead_lettered}"
    )


def _track_in_background(settings: Settings, stopping: threading.Event) -> threading.Thread:
    """The embedded log's tracker, following the log beside a projector that follows it (a
    thread with its own log connection; a failure stops the projector too)."""

    def run() -> None:
        try:
            with open_log(settings.log_url) as log:
                TrackerService(log).run(follow=True, stop=stopping.is_set)
        except Exception:
            logging.getLogger("mlineage.track").exception("the tracker stopped")
            stopping.set()

    thread = threading.Thread(target=run, name="mlineage-tracker", daemon=True)
    thread.start()
    return thread


@cli.command()
@click.option("--follow", is_flag=True, help="Keep running and project new events as they come.")
@click.option("--timeout", type=float, help="Stop after this many seconds.")
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=50_000,
    show_default=True,
    help="Records per DuckDB transaction.",
)
@click.option(
    "--snapshot-interval",
    type=click.FloatRange(0.1),
    default=2.0,
    show_default=True,
    help="With --follow: refresh the read snapshot at most this often (seconds).",
)
@pass_ctx
def project(
    ctx: Ctx, follow: bool, timeout: float | None, batch_size: int, snapshot_interval: float
) -> None:
    """Run the projector: apply the log to the DuckDB projection (to the end of the log).

    With --follow it keeps running, holds the DuckDB file, and keeps a snapshot beside it
    (lineage.duckdb.snapshot) fresh for other commands, which read it meanwhile; on the
    embedded log it also runs the tracker, so jobs published meanwhile get their lineage.
    """
    settings = ctx.settings
    lock = WriterLock(settings.db_path)
    access = AccessLock(settings.db_path)
    stop = _stop_on_sigterm()
    if follow:
        service_logging()
        lock.acquire("project --follow")
    # readers and catch-ups of other commands finish first; a follower lets them in again
    # once its first snapshot is there for them
    access.acquire(exclusive=True, note=print_note)
    tracker: threading.Thread | None = None
    stopping = threading.Event()
    try:
        with open_log(settings.log_url) as log, DuckDBStore(settings.db_path) as store:
            service = ProjectorService(
                log,
                store,
                batch_size=batch_size,
                snapshot=snapshot_path(settings.db_path) if follow else None,
                snapshot_interval=snapshot_interval,
            )
            if follow:
                service.write_snapshot()
                access.release()
                if log.kind == "sqlite":
                    # on the embedded log nobody else tracks while a follower runs
                    tracker = _track_in_background(settings, stopping)
                err.print(
                    f"following {settings.log_url} into {settings.db_path}"
                    f"{' (and tracking it)' if tracker else ''}; readers use "
                    f"{snapshot_path(settings.db_path)} (Ctrl-C to stop)"
                )
            try:
                stats = service.run(
                    follow=follow, timeout=timeout, stop=lambda: stop() or stopping.is_set()
                )
            except KeyboardInterrupt:
                return
    finally:
        stopping.set()
        if tracker is not None:
            tracker.join()
        access.release()
        lock.release()
    out.print(
        f"projected {stats.consumed} records: applied {stats.applied}, "
        f"dead-lettered {stats.dead_lettered}"
    )


@cli.command(name="replay")
@pass_ctx
def replay_cmd(ctx: Ctx) -> None:
    """Rebuild the projection from offset 0 of the log into a new file and swap it in.

    Refuses while another process (such as `project --follow`) holds the projection.
    """
    settings = ctx.settings
    require_published(settings)
    with open_log(settings.log_url) as log:
        if log.kind == "sqlite":  # with Kafka the tracker is a service: never join its group
            access = AccessLock(settings.db_path)
            access.acquire(exclusive=True, note=print_note)  # no other command tracks meanwhile
            try:
                with Reporter("replaying:") as reporter:
                    TrackerService(log).run(
                        progress=lambda n, lag: reporter.update("track", n, lag)
                    )
            finally:
                access.release()
        with Reporter("replaying:") as reporter:
            stats = replay(
                log, settings.db_path, progress=lambda n, lag: reporter.update("project", n, lag)
            )
    with reading(settings.db_path, note=print_note) as store:
        digest = store.checksum()
    out.print(
        f"replayed {stats.consumed} records ({stats.dead_lettered} dead-lettered) into "
        f"{settings.db_path}\nchecksum {digest}"
    )


@cli.command()
@click.option(
    "--no-sync",
    is_flag=True,
    help="Digest the projection as it is, without catching up with the log first.",
)
@pass_ctx
def checksum(ctx: Ctx, no_sync: bool) -> None:
    """Print one hex digest of the projected state (equal logs give equal checksums)."""
    settings = ctx.settings
    require_published(settings)
    if not no_sync:
        catch_up(settings)
    with reading(settings.db_path, note=print_note) as store:
        out.print(store.checksum())
