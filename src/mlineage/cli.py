"""The ``mlineage`` command."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import duckdb
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from mlineage import __version__, arns, ops
from mlineage import demo as wf
from mlineage.errors import (
    ConfigurationError,
    EventValidationError,
    MlineageError,
    ProjectionBusyError,
    ProjectionError,
)
from mlineage.events.codec import validate_record
from mlineage.events.schemas import export
from mlineage.log.base import TOPIC_DLQ, open_log
from mlineage.pipeline import SyncStats, sync
from mlineage.projection.service import (
    AccessLock,
    ProjectorService,
    WriterLock,
    reading,
    replay,
)
from mlineage.projection.store import DuckDBStore, snapshot_path
from mlineage.query import catalog
from mlineage.query.lineage import DIRECTIONS, LINEAGE_TYPES, LineageFilter, LineageResult
from mlineage.query.lookup import match_choice, match_value
from mlineage.query.store import LineageStore
from mlineage.recorder import Recorder, complete, route
from mlineage.settings import Settings
from mlineage.tracker.service import TrackerService

# piped output is not cut at 80 columns: scripts and logs get whole lines
_WIDTH = None if sys.stdout.isatty() else 100_000
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


class Ctx:
    def __init__(self, **flags: Any) -> None:
        self.flags = flags
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.load(**self.flags)
            note = self._settings.log_url_note()
            if note is not None:
                _note(note)
        return self._settings


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mlineage")
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    help="Where the embedded log and the projection live [env MLINEAGE_HOME; default ./.mlineage].",
)
@click.option(
    "--log",
    "log_url",
    help="Event log URL: sqlite:///path or kafka://host:port "
    "[env MLINEAGE_LOG; default sqlite under --home].",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path),
    help="DuckDB projection file [env MLINEAGE_DB; default HOME/lineage.duckdb].",
)
@click.option(
    "--account-id",
    help="Account stamped on published events that name none "
    "[env MLINEAGE_ACCOUNT_ID; default 000000000000].",
)
@click.option("--region", help="Region stamped likewise [env MLINEAGE_REGION; default us-east-1].")
@click.pass_context
def cli(ctx: click.Context, /, **flags: Any) -> None:
    """mlineage: self-hosted ML lineage with SageMaker semantics.

    Jobs publish events to a log; the auto-tracker derives artifacts, trial components and
    associations; the projector materializes the graph into DuckDB for SQL and QueryLineage.
    Start with `mlineage demo`.
    """
    ctx.obj = Ctx(**flags)


class _Reporter:
    """Progress of a catch-up or a replay on stderr, once it has run for a second: a bar
    per stage on a terminal; piped, a plain line every few seconds and one at the end.
    ``update(stage, done, lag)`` is what :func:`mlineage.pipeline.sync` reports."""

    LINE_EVERY_S = 5.0

    def __init__(self, label: str) -> None:
        self.label = label
        # MLINEAGE_PROGRESS_AFTER: seconds before progress shows (0: from the start)
        after = os.environ.get("MLINEAGE_PROGRESS_AFTER", "1")
        try:
            self.show_after = max(0.0, float(after))
        except ValueError:
            raise ConfigurationError(
                f"MLINEAGE_PROGRESS_AFTER={after!r} is not a number of seconds"
            ) from None
        self._stages: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._bar: Progress | None = None
        self._tasks: dict[str, Any] = {}
        self._lines = 0
        self._started = 0.0
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Reporter:
        self._started = time.monotonic()
        if self.show_after == 0 and not err.is_terminal:
            err.print(self._line(), markup=False)  # at once, before any work
            self._lines += 1
        self._thread = threading.Thread(target=self._show, name="progress", daemon=True)
        self._thread.start()
        return self

    def update(self, stage: str, done: int, lag: int) -> None:
        with self._lock:
            self._stages[stage] = (done, done + lag)
            if self._bar is not None:
                self._bar_update(stage)

    def _bar_update(self, stage: str) -> None:
        assert self._bar is not None  # noqa: S101 - narrows the type
        done, total = self._stages[stage]
        if stage not in self._tasks:
            self._tasks[stage] = self._bar.add_task(f"{self.label} {stage}", total=total)
        self._bar.update(self._tasks[stage], completed=done, total=total)

    def _line(self) -> str:
        parts = [f"{stage} {done:,}/{total:,}" for stage, (done, total) in self._stages.items()]
        elapsed = time.monotonic() - self._started
        return f"{self.label} {', '.join(parts) or 'starting'} records ({elapsed:.0f}s)"

    def _show(self) -> None:
        if self._done.wait(self.show_after):
            return
        with self._lock:
            if err.is_terminal:
                self._bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed:,}/{task.total:,} records"),
                    TimeElapsedColumn(),
                    console=err,
                    transient=True,
                )
                self._bar.start()
                for stage in self._stages:
                    self._bar_update(stage)
                return
        if self._lines and self._done.wait(self.LINE_EVERY_S):
            return
        while True:
            with self._lock:
                err.print(self._line(), markup=False)
                self._lines += 1
            if self._done.wait(self.LINE_EVERY_S):
                return

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
            elif self._lines and exc[0] is None:
                err.print(self._line().replace(self.label, f"{self.label} done,", 1), markup=False)


def _require_published(settings: Settings) -> None:
    if (empty := settings.nothing_published()) is not None:
        raise ProjectionError(empty)


def _note(message: str) -> None:
    err.print(f"note: {message}", markup=False)


def _sync(settings: Settings) -> SyncStats:
    """Catch up with the log (the embedded log's tracker too), taking turns with the other
    processes of this home (``followed``: a follower holds the projection and does it)."""
    lock = AccessLock(settings.db_path)
    lock.acquire(exclusive=True, note=_note)
    try:
        with _Reporter("catching up:") as reporter:
            return sync(settings, progress=reporter.update)
    finally:
        lock.release()


def _sync_after_write(settings: Settings, what: str) -> None:
    """After a write that reached the log: project it here, or say who will. The write is
    done either way, so this never fails the command (a retrying script must not write
    twice)."""
    try:
        stats = _sync(settings)
    except ProjectionBusyError as exc:
        out.print(f"{what}; not projected yet ({exc}): the next command catches up")
        return
    if stats.followed:
        out.print(f"{what}; the running projector (or server) applies it to {settings.db_path}")


# -- demo -------------------------------------------------------------------------------------


DEMO_HOME = Path(".mlineage-demo")


@cli.command()
@pass_ctx
def demo(ctx: Ctx) -> None:
    """Run a realistic workflow end to end on the embedded log (no services needed).

    Publishes raw data -> processing job -> training job (with an experiment) -> batch
    transform -> model package -> endpoint, derives and projects the lineage, prints the
    endpoint's lineage as a tree and a sample SQL query. Safe to run again: the events have
    fixed ids, so nothing is applied twice.

    It uses a home of its own, ./.mlineage-demo, so demo data never lands in the log you
    configured (MLINEAGE_HOME, MLINEAGE_LOG); --home, --log or --db choose another.
    """
    told = any(ctx.flags.get(k) is not None for k in ("home", "log_url", "db_path"))
    if told:
        settings = ctx.settings
    else:
        theirs = ("MLINEAGE_HOME", "MLINEAGE_LOG", "MLINEAGE_DB", "MLINEAGE_SPOOL_DIR")
        settings = Settings.load(
            home=DEMO_HOME,
            account_id=ctx.flags.get("account_id"),
            region=ctx.flags.get("region"),
            environ={k: v for k, v in os.environ.items() if k not in theirs},
        )
    with Recorder(settings, producer=f"mlineage-demo/{__version__}") as rec:
        events = rec.publish_many(wf.workflow(rec))
        endpoint = wf.endpoint_context_arn(rec)
    out.print(f"[bold]Published {len(events)} events[/] to {settings.log_url}")
    _sync(settings)
    with _open_store(settings, no_sync=True) as store:
        con = store.con
        counts = con.execute(
            "SELECT lineage_type, count(*) FROM lineage_vertices GROUP BY 1 ORDER BY 1"
        ).fetchall()
        n_edges = con.execute("SELECT count(*) FROM lineage_edges").fetchall()[0][0]
        out.print(
            "Projected into "
            + str(settings.db_path)
            + ": "
            + ", ".join(f"{n} {t}" for t, n in counts)
            + f", {n_edges} associations\n"
        )
        out.print(
            "[bold]Where did the model behind the endpoint come from?[/] "
            "(ascendants of the endpoint, as QueryLineage walks them)"
        )
        walked = store.query_lineage([endpoint], direction="Ascendants")
        shown = _shown(store, [v.arn for v in walked.vertices])
        out.print(*_lineage_trees([endpoint], walked, shown, "Ascendants"))
        query = "SELECT job_name, job_type, status, metrics FROM jobs ORDER BY created_at"
        out.print(f"\n[bold]SQL:[/] {query}")
        _print_rows(*store.sql(query), "table")
    hint = ""
    if shutil.which("mlineage") is None:
        hint = (
            f" (mlineage is {Path(sys.argv[0]).resolve()}: "
            "`source .venv/bin/activate` puts it on your PATH)"
        )
    if not told:
        out.print(
            f"\nThe demo has a home of its own, {settings.home}/ (never your configured log). "
            f"To explore it: [bold]export MLINEAGE_HOME={settings.home}[/]"
        )
    out.print(f"\n[bold]Try next{hint}:[/]")
    for line in (
        'mlineage sql "SELECT type, count(*) FROM lineage_vertices GROUP BY ALL"',
        'mlineage sql "SELECT * FROM lineage_edges" --format csv',
        "mlineage query-lineage ARN --direction Ascendants --format tree   # this tree",
        "mlineage checksum          # digest of the projection",
        "mlineage replay            # rebuild it from the log: same checksum",
        "mlineage publish events.jsonl   # your own events (see schemas/examples)",
    ):
        out.print(f"  {line}")


# -- publishing -------------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--no-sync",
    is_flag=True,
    help="Only append to the log; do not track and project (embedded log) afterwards.",
)
@pass_ctx
def publish(ctx: Ctx, file: io.TextIOBase, no_sync: bool) -> None:
    """Publish events from FILE (- for stdin).

    FILE holds JSON events: one per line (JSON lines), pretty-printed documents one after
    the other, or JSON arrays of events. event_id, occurred_at, schema_version, account_id
    and region are filled in when absent. Every event is validated first: if any is bad,
    each bad one is reported with its line number and nothing is written.
    """
    settings = ctx.settings
    rec = Recorder(settings, producer=f"mlineage-cli/{__version__}")
    valid = []
    problems = []
    for where, value in _documents(file.read()):
        try:
            if isinstance(value, EventValidationError):
                raise value
            draft = complete(value, settings, rec.producer) if isinstance(value, dict) else value
            valid.append(validate_record(draft))
        except EventValidationError as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        for p in problems[:MAX_PROBLEMS_SHOWN]:
            err.print(p, markup=False)
        if len(problems) > MAX_PROBLEMS_SHOWN:
            err.print(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more", markup=False)
        raise click.ClickException(
            f"{len(problems)} bad event(s); nothing was published. Fix them and publish again."
        )
    with rec:
        rec.log.append([route(e) for e in valid])
        if not rec.flush(timeout=30):
            err.print(
                f"the log at {settings.log_url} is not answering: the events wait in "
                f"{settings.spool_dir} and the next mlineage process forwards them"
            )
            return
    out.print(f"published {len(valid)} events to {settings.log_url}")
    if not no_sync and settings.log_url.startswith("sqlite:"):
        _sync_after_write(settings, "published")


MAX_PROBLEMS_SHOWN = 50
_DECODER = json.JSONDecoder()


def _malformed(where: str, exc: json.JSONDecodeError) -> tuple[str, EventValidationError]:
    problem = f"malformed JSON: {exc.msg} (column {exc.colno})"
    return where, EventValidationError(f"event: {problem}", [("event", "(json)", problem)])


def _values(where: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, list):  # an array of events
        for k, item in enumerate(value, start=1):
            yield f"{where}, item {k}", item
    else:
        yield where, value


def _documents(text: str) -> Iterator[tuple[str, Any]]:
    """The JSON values of ``text``, each with where it starts ("line N"; "line N, item K"
    inside an array), malformed JSON as an EventValidationError. JSON lines are read line by
    line (each bad line is one problem); anything else (pretty-printed documents one after
    the other) as a stream of values, which stops at the first malformed one."""
    lines = text.splitlines()
    if all(not ln.strip() or ln[0] in "{[" for ln in lines):  # each line opens a value
        for number, ln in enumerate(lines, start=1):
            if not ln.strip():
                continue
            try:
                value = json.loads(ln)
            except json.JSONDecodeError as exc:
                yield _malformed(f"line {number}", exc)
                continue
            yield from _values(f"line {number}", value)
        return
    pos, line, n = 0, 1, len(text)
    while True:
        start = pos
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        line += text.count("\n", start, pos)
        if pos >= n:
            return
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield _malformed(f"line {exc.lineno}", exc)
            return
        yield from _values(f"line {line}", value)
        line += text.count("\n", pos, end)
        pos = end


# -- consumers --------------------------------------------------------------------------------


def _service_logging() -> None:
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
            _service_logging()
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
        _service_logging()
        lock.acquire("project --follow")
    # readers and catch-ups of other commands finish first; a follower lets them in again
    # once its first snapshot is there for them
    access.acquire(exclusive=True, note=_note)
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
    _require_published(settings)
    with open_log(settings.log_url) as log:
        if log.kind == "sqlite":  # with Kafka the tracker is a service: never join its group
            access = AccessLock(settings.db_path)
            access.acquire(exclusive=True, note=_note)  # no other command tracks meanwhile
            try:
                with _Reporter("replaying:") as reporter:
                    TrackerService(log).run(
                        progress=lambda n, lag: reporter.update("track", n, lag)
                    )
            finally:
                access.release()
        with _Reporter("replaying:") as reporter:
            stats = replay(
                log, settings.db_path, progress=lambda n, lag: reporter.update("project", n, lag)
            )
    with reading(settings.db_path, note=_note) as store:
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
    _require_published(settings)
    if not no_sync:
        _sync(settings)
    with reading(settings.db_path, note=_note) as store:
        out.print(store.checksum())


# -- SQL --------------------------------------------------------------------------------------

ACCOUNT_HELP = (
    "Answer on behalf of this account: only its entities and those of owners "
    "that share with it (default: everything, the operator's view)."
)


def _open_store(
    settings: Settings, no_sync: bool = False, account: str | None = None
) -> LineageStore:
    """Catch up with the log (embedded), then open the projection for reading. When a
    projector follows the log it holds the file: read the snapshot it keeps fresh. With
    ``account``, a store holding only what that account may see."""
    with _Reporter("catching up:") as reporter:
        store = LineageStore.open(settings, sync=not no_sync, note=_note, progress=reporter.update)
    age = store.snapshot_age
    if age is not None:
        err.print(
            f"note: a projector holds {settings.db_path}; reading its snapshot ({age:.1f}s old)"
        )
    if account is None:
        return store
    try:
        return store.as_account(account)
    finally:
        store.close()


class _PlainTable(Table):
    """A table whose cells are plain text: data never reads as rich markup (a ``[/]`` in a
    URI or an error made rich raise, a ``[red]`` recoloured the rest)."""

    def add_row(self, *renderables: RenderableType | None, **kwargs: Any) -> None:
        super().add_row(*(Text(r) if isinstance(r, str) else r for r in renderables), **kwargs)


def _print_table(table: _PlainTable) -> None:
    """Print a table without cutting an ARN: a column holding ARNs is as wide as its longest
    one and the other columns fold to make room. When even that does not fit (a narrow
    terminal), each row is printed as a block of ``column value`` lines instead."""
    fold_min = 8  # narrowest a folded column may get
    needed = 0
    for column in table.columns:
        texts = [c.plain if isinstance(c, Text) else str(c) for c in column.cells]
        longest = max((len(c) for c in texts if c.startswith("arn:")), default=0)
        if longest:
            column.min_width = max(longest, column.min_width or 0)
            column.no_wrap = True
            needed += longest + 3
        else:
            column.overflow = "fold"
            needed += min(fold_min, max((len(c) for c in texts), default=0)) + 3
    if table.row_count == 0 or needed <= out.width:
        out.print(table)
        return
    names = [str(c.header) for c in table.columns]
    width = max(len(n) for n in names)
    by_column = [list(c.cells) for c in table.columns]
    for n in range(table.row_count):
        out.print(f"[dim]-- {escape(str(table.title or 'row'))} {n + 1} --[/]")
        for name, cells in zip(names, by_column, strict=True):
            out.print(f"[bold]{escape(name.ljust(width))}[/] ", cells[n], sep="")


def _resolve(store: LineageStore, key: str) -> str:
    """The ARN of the entity ``key`` names (see :func:`mlineage.query.lookup.resolve`),
    saying on stderr what it was taken for when it was not that ARN itself."""
    found = store.resolve(key)
    if found.how != "arn":
        err.print(f"note: {key} is {found.arn} ({found.how})", markup=False)
    return found.arn


def _print_rows(names: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    """Rows as a table, CSV (``\\n`` line ends, a header even when empty) or JSON."""

    def cell(v: Any) -> Any:
        return v.isoformat() if hasattr(v, "isoformat") else v

    if fmt == "json":
        objects = [{n: cell(v) for n, v in zip(names, r, strict=True)} for r in rows]
        sys.stdout.write(json.dumps(objects, default=str, indent=2) + "\n")
    elif fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(names)
        w.writerows([[cell(v) for v in r] for r in rows])
    else:
        table = _PlainTable(*names, show_lines=False)
        for r in rows:
            table.add_row(*["NULL" if v is None else str(cell(v)) for v in r])
        _print_table(table)
        out.print(f"[dim]{len(rows)} row(s)[/]")


@cli.command()
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Cancel the query after this many seconds.",
)
@click.option(
    "--memory-limit", default="1GB", show_default=True, help="DuckDB memory limit for the query."
)
@click.option("--no-sync", is_flag=True, help="Query the projection as it is.")
@click.option(
    "--account",
    help=ACCOUNT_HELP + " The query then runs on a private database "
    "holding only that, with file and network access disabled.",
)
@pass_ctx
def sql(
    ctx: Ctx,
    query: str,
    fmt: str,
    timeout: float,
    memory_limit: str,
    no_sync: bool,
    account: str | None,
) -> None:
    """Run a read-only SQL query on the DuckDB projection.

    Tables: artifacts, actions, contexts, experiments, trials, trial_components,
    trial_component_trials, associations, jobs, lineage_groups, lineage_shares, events,
    dead_letters, positions; views lineage_vertices and lineage_edges (live entities only).
    """
    with _open_store(ctx.settings, no_sync, account) as store:
        if account is None:
            store.con.execute(f"SET memory_limit = '{memory_limit}'")
        # as JSON, a JSON column is a JSON value, not a string holding one
        _print_rows(*store.sql(query, timeout=timeout, decode_json=fmt == "json"), fmt)


# -- describe and list ------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.isoformat() if isinstance(value, datetime) else value


def _flat(summary: dict[str, Any]) -> dict[str, Any]:
    """One level deep, for tables and CSV: nested values become compact JSON."""
    return {
        k: json.dumps(_plain(v), sort_keys=True) if isinstance(v, dict | list) else _plain(v)
        for k, v in summary.items()
    }


@cli.command()
@click.argument("arn_or_name")
@click.option(
    "--kind",
    help="artifact, action, context, experiment, trial, trial-component or "
    "lineage-group, when a name is ambiguous.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option("--no-sync", is_flag=True, help="Read the projection as it is.")
@click.option("--account", help=ACCOUNT_HELP)
@pass_ctx
def describe(
    ctx: Ctx, arn_or_name: str, kind: str | None, fmt: str, no_sync: bool, account: str | None
) -> None:
    """Describe one entity, as SageMaker's Describe* calls answer.

    ARN_OR_NAME is what you know: the entity's ARN or name, an artifact's URI (s3://...,
    an image URI), a job's name or ARN (its trial component), or an endpoint's or model
    package's ARN (what has it as its source)."""
    with _open_store(ctx.settings, no_sync, account) as store:
        if kind:
            found = store.describe(arn_or_name, catalog.resolve_kind(kind))
        else:
            target = _resolve(store, arn_or_name)
            found = store.describe(target, None)
    if fmt == "json":
        sys.stdout.write(json.dumps(_plain(found), indent=2, sort_keys=True) + "\n")
    elif fmt == "csv":
        _print_rows(["field", "value"], list(_flat(found).items()), "csv")
    else:
        table = _PlainTable("Field", "Value", show_header=False)
        for key, value in _flat(found).items():
            table.add_row(key, str(value))
        _print_table(table)


@cli.command()
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per event.")
@click.option("--no-sync", is_flag=True, help="Read the projection as it is.")
@pass_ctx
def history(ctx: Ctx, key: str, as_json: bool, no_sync: bool) -> None:
    """Every event applied to one entity, oldest first, as it was published.

    KEY is the entity's ARN, or for an association "SOURCE_ARN DESTINATION_ARN" (the
    entity_key column of the events table). The projection records where each event was
    read; the events themselves are read back from the log.
    """
    with _open_store(ctx.settings, no_sync) as store, open_log(ctx.settings.log_url) as log:
        found = ops.history(store.con, log, key)
    if not found:
        raise click.ClickException(
            f"no events for {key!r}: pass an ARN as `mlineage list` or `describe` shows it "
            "(an association: the source and destination ARNs, space-separated, quoted)"
        )
    if as_json:
        for entry in found:
            print(json.dumps(entry, sort_keys=True))
        return
    table = _PlainTable("version", "event", "producer", "read at", "payload", box=None)
    for entry in found:
        payload = (entry["event"] or {}).get("payload")
        table.add_row(
            entry["version"],
            entry["event_type"],
            entry["producer"] or "",
            f"{entry['topic']}[{entry['partition']}]@{entry['offset']}",
            "(no longer in the log)" if entry["event"] is None else json.dumps(payload),
        )
    _print_table(table)


@cli.command(name="list")
@click.argument("kind")
@click.option("--source-uri")
@click.option("--artifact-type")
@click.option("--action-type")
@click.option("--context-type")
@click.option("--experiment-name")
@click.option("--trial-name")
@click.option("--trial-component-name")
@click.option("--source-arn")
@click.option("--destination-arn")
@click.option("--source-type")
@click.option("--destination-type")
@click.option("--association-type")
@click.option("--job-type", help="jobs: TrainingJob, ProcessingJob or TransformJob.")
@click.option("--status", help="jobs: InProgress, Completed, Failed, Stopping or Stopped.")
@click.option("--created-after", help="ISO 8601 time (UTC when no zone is given), inclusive.")
@click.option("--created-before")
@click.option(
    "--sort-by",
    help="Name or CreationTime (associations: SourceArn, "
    "DestinationArn, SourceType, DestinationType, CreationTime).",
)
@click.option(
    "--sort-order",
    type=click.Choice(["Ascending", "Descending"]),
    default="Descending",
    show_default=True,
)
@click.option("--max-results", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--next-token")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option("--no-sync", is_flag=True, help="Read the projection as it is.")
@click.option("--account", help=ACCOUNT_HELP)
@pass_ctx
def list_cmd(
    ctx: Ctx,
    /,
    kind: str,
    created_after: str | None,
    created_before: str | None,
    fmt: str,
    no_sync: bool,
    account: str | None,
    **options: Any,
) -> None:
    """List entities of KIND with SageMaker's filters, sort orders and paging.

    KIND: artifacts, actions, contexts, experiments, trials, trial-components, associations,
    lineage-groups (singular or plural, - or _), shares (live lineage shares) or jobs (the
    published jobs, with --job-type and --status). Only the filters SageMaker has for that
    kind are accepted. Type values match case-insensitively (dataset: DataSet) and a job
    type without SageMaker's prefix (--destination-type TrainingJob).
    """
    job_filters = {k: options.pop(k) for k in ("job_type", "status")}
    if kind.replace("-", "_").lower() in ("jobs", "job"):
        _list_jobs(ctx, job_filters, created_after, created_before, fmt, no_sync, account, options)
        return
    if any(v is not None for v in job_filters.values()):
        raise click.UsageError("--job-type and --status filter `mlineage list jobs` only")
    if kind.replace("-", "_").lower() in ("shares", "share", "lineage_shares", "lineage_share"):
        with _open_store(ctx.settings, no_sync, account) as store:
            names, rows = store.sql(
                "SELECT owner_account, grantee_account, created_at FROM lineage_shares "
                "WHERE live ORDER BY owner_account, grantee_account"
            )
        if fmt == "json":
            sys.stdout.write(
                json.dumps([_flat(dict(zip(names, r, strict=True))) for r in rows], indent=2) + "\n"
            )
        else:
            _print_rows(names, rows, fmt)
        return
    filters = {k: v for k, v in options.items() if v is not None}
    filters["created_after"] = _when(created_after, "--created-after")
    filters["created_before"] = _when(created_before, "--created-before")
    filters = {k: v for k, v in filters.items() if v is not None}
    resolved = catalog.resolve_kind(kind)
    with _open_store(ctx.settings, no_sync, account) as store:
        for name, field in _LOOSE_FILTERS.items():
            if name in filters:
                option = "--" + name.replace("_", "-")
                filters[name] = match_value(store.con, field, filters[name], option)
        page = store.list_entities(resolved, **filters)
    summaries = page[catalog.SUMMARY_KEYS[resolved]]
    if fmt == "json":
        sys.stdout.write(json.dumps(_plain(page), indent=2, sort_keys=True) + "\n")
        return
    flat = [_flat(s) for s in summaries]
    columns = list(catalog.SUMMARY_COLUMNS[resolved])  # the same on every page, even empty
    _print_rows(columns, [tuple(r.get(n) for n in columns) for r in flat], fmt)
    if page.get("NextToken"):
        err.print(f"more: --next-token {page['NextToken']}")


# list filters whose values are matched loosely, and the values they are matched against
_LOOSE_FILTERS = {
    "artifact_type": "artifact_type",
    "action_type": "action_type",
    "context_type": "context_type",
    "source_type": "end_type",
    "destination_type": "end_type",
    "association_type": "association_type",
}
_JOB_VALUES = {
    "job_type": tuple(arns.JOB_RESOURCE),
    "status": ("InProgress", "Completed", "Failed", "Stopping", "Stopped"),
}


def _list_jobs(
    ctx: Ctx,
    job_filters: dict[str, str | None],
    created_after: str | None,
    created_before: str | None,
    fmt: str,
    no_sync: bool,
    account: str | None,
    options: dict[str, Any],
) -> None:
    paging = ("sort_order", "max_results", "next_token")
    if options.get("sort_by") not in (None, "CreationTime"):
        raise click.UsageError("jobs are sorted by CreationTime only")
    other = [k for k, v in options.items() if v is not None and k not in (*paging, "sort_by")]
    if other:
        flags = ", ".join("--" + k.replace("_", "-") for k in other)
        raise click.UsageError(f"{flags}: not a filter of jobs (use --job-type, --status)")
    given = {}
    for name, value in job_filters.items():
        if value is not None:
            given[name] = match_choice(value, _JOB_VALUES[name], "--" + name.replace("_", "-"))
    with _open_store(ctx.settings, no_sync, account) as store:
        page = store.list_jobs(
            **given,
            created_after=_when(created_after, "--created-after"),
            created_before=_when(created_before, "--created-before"),
            **{k: options[k] for k in paging if options.get(k) is not None},
        )
    if fmt == "json":
        sys.stdout.write(json.dumps(_plain(page), indent=2, sort_keys=True) + "\n")
        return
    columns = list(catalog.JOB_COLUMNS)
    rows = [tuple(_plain(s.get(n)) for n in columns) for s in page["JobSummaries"]]
    _print_rows(columns, rows, fmt)
    if page.get("NextToken"):
        err.print(f"more: --next-token {page['NextToken']}")


# -- QueryLineage -----------------------------------------------------------------------------


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time such as 2026-01-31 or 2026-01-31T12:00:00Z",
            param_hint=option,
        ) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class _Shown:
    """How a vertex is shown: its type and name (an artifact's SourceUri), its lineage type
    and the status of a job or action (None when it has none)."""

    label: str
    lineage_type: str
    status: str | None


_BAD_STATUSES = frozenset({"Failed", "Stopped", "Stopping"})


def _shown(store: LineageStore, arns: list[str]) -> dict[str, _Shown]:
    if not arns:
        return {}
    rows = store.con.execute(
        "SELECT v.arn, coalesce(v.type, v.lineage_type), coalesce(a.source_uri, v.name, v.arn), "
        "v.lineage_type, coalesce(t.status, x.status) "
        "FROM lineage_vertices v LEFT JOIN artifacts a ON a.arn = v.arn "
        "LEFT JOIN trial_components t ON t.arn = v.arn LEFT JOIN actions x ON x.arn = v.arn "
        "WHERE v.arn IN (SELECT unnest(?))",
        [arns],
    ).fetchall()
    return {arn: _Shown(f"{typ} {name}", lt, status) for arn, typ, name, lt, status in rows}


def _dot_text(text: str) -> str:
    """A Graphviz quoted string's content: backslashes and quotes escaped, lines kept."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _mermaid_text(text: str) -> str:
    """Mermaid label text: entity codes for what Mermaid would read as markup or HTML."""
    codes = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "|": "#124;"}
    return "".join(codes.get(c, c) for c in text.replace("\n", " "))


# lineage type -> Graphviz shape and fill, Mermaid class
_DOT_STYLE = {
    "Artifact": ("note", "#e8f1fb"),
    "TrialComponent": ("box", "#eaf6e6"),
    "Context": ("hexagon", "#fdf3e1"),
    "Action": ("parallelogram", "#f3e8fb"),
}
_MERMAID_CLASSES = [
    "  classDef Artifact fill:#e8f1fb,stroke:#4a78b5",
    "  classDef TrialComponent fill:#eaf6e6,stroke:#4c8a3f",
    "  classDef Context fill:#fdf3e1,stroke:#b5852d",
    "  classDef Action fill:#f3e8fb,stroke:#7e4ab5",
    "  classDef failed fill:#fde0dc,stroke:#c0392b,stroke-dasharray:4 2",
]


def _dot(
    starts: list[str], arns: list[str], result: LineageResult, shown: dict[str, _Shown]
) -> list[str]:
    ids = {arn: f"n{i}" for i, arn in enumerate(arns)}
    lines = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box, style=filled, fontsize=10];"]
    for arn in arns:
        info = shown.get(arn)
        shape, fill = _DOT_STYLE.get(info.lineage_type if info else "", ("box", "white"))
        label = info.label if info else arn
        attrs = [f'label="{_dot_text(label)}"', f'tooltip="{_dot_text(arn)}"', f"shape={shape}"]
        if info is not None and info.status in _BAD_STATUSES:
            attrs += ['fillcolor="#fde0dc"', 'color="#c0392b"', 'style="filled,dashed"']
            attrs[0] = f'label="{_dot_text(f"{label} ({info.status})")}"'
        else:
            attrs.append(f'fillcolor="{fill}"')
        if arn in starts:
            attrs.append("penwidth=3")
        lines.append(f"  {ids[arn]} [{', '.join(attrs)}];")
    for e in result.edges:
        lines.append(
            f"  {ids[e.source_arn]} -> {ids[e.destination_arn]} "
            f'[label="{_dot_text(e.association_type or "")}", fontsize=8];'
        )
    return [*lines, "}"]


def _mermaid(
    starts: list[str], arns: list[str], result: LineageResult, shown: dict[str, _Shown]
) -> list[str]:
    ids = {arn: f"n{i}" for i, arn in enumerate(arns)}
    lines = ["graph LR"]
    for arn in arns:
        info = shown.get(arn)
        label = info.label if info else arn
        if info is not None and info.status in _BAD_STATUSES:
            label = f"{label} ({info.status})"
        lines.append(f'  {ids[arn]}["{_mermaid_text(label)}"]')
    for e in result.edges:
        assoc = _mermaid_text(e.association_type or "")
        lines.append(
            f"  {ids[e.source_arn]} -->|{assoc}| {ids[e.destination_arn]}"
            if assoc
            else f"  {ids[e.source_arn]} --> {ids[e.destination_arn]}"
        )
    lines += _MERMAID_CLASSES
    for arn in arns:
        info = shown.get(arn)
        if info is None:
            continue
        klass = "failed" if info.status in _BAD_STATUSES else info.lineage_type
        lines.append(f"  class {ids[arn]} {klass}")
    lines += [f"  style {ids[arn]} stroke-width:3px" for arn in starts if arn in ids]
    return lines


def _tree_label(arn: str, info: _Shown | None) -> str:
    if info is None:
        return escape(arn)
    typ, _, name = info.label.partition(" ")
    text = f"[cyan]{escape(typ)}[/] {escape(name)}"
    if info.status is not None:
        color = (
            "red"
            if info.status in _BAD_STATUSES
            else "green"
            if info.status == "Completed"
            else "yellow"
        )
        text += f" [{color}]{escape(info.status)}[/]"
    return text


def _lineage_trees(
    starts: list[str], result: LineageResult, shown: dict[str, _Shown], direction: str
) -> list[Tree]:
    """The result as one tree per start: Ascendants hang under what they produced
    (``←``), descendants under what produced them (``→``), both ways with Both. A vertex
    reached again is shown once more, marked, and not expanded again."""
    near: dict[str, list[tuple[str, str, str]]] = {}
    for e in result.edges:
        assoc = e.association_type or ""
        if direction in ("Descendants", "Both"):
            near.setdefault(e.source_arn, []).append((assoc, "→", e.destination_arn))
        if direction in ("Ascendants", "Both"):
            near.setdefault(e.destination_arn, []).append((assoc, "←", e.source_arn))
    seen: set[str] = set()

    def grow(node: Tree, arn: str) -> None:
        for assoc, arrow, other in sorted(near.get(arn, [])):
            again = other in seen
            seen.add(other)
            child = node.add(
                f"[dim]{escape(assoc)} {arrow}[/] {_tree_label(other, shown.get(other))}"
                + (" [dim](shown above)[/]" if again else "")
            )
            if not again:
                grow(child, other)

    trees = []
    for start in starts:
        seen.add(start)
        tree = Tree(_tree_label(start, shown.get(start)))
        grow(tree, start)
        trees.append(tree)
    return trees


def _print_lineage(
    store: LineageStore, starts: list[str], result: LineageResult, fmt: str, direction: str
) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    arns = list(
        dict.fromkeys(
            starts
            + [v.arn for v in result.vertices]
            + [a for e in result.edges for a in (e.source_arn, e.destination_arn)]
        )
    )
    shown = _shown(store, arns)
    if fmt in ("dot", "mermaid"):
        lines = (_dot if fmt == "dot" else _mermaid)(starts, arns, result, shown)
        sys.stdout.write("\n".join(lines) + "\n")
        return
    if fmt == "tree":
        for tree in _lineage_trees(starts, result, shown, direction):
            out.print(tree)
    else:
        table = _PlainTable("LineageType", "Type", "Name / SourceUri", "Arn", title="Vertices")
        for v in result.vertices:
            info = shown.get(v.arn)
            name = info.label.split(" ", 1)[-1] if info else ""
            table.add_row(v.lineage_type, v.type or "", name, v.arn)
        _print_table(table)
        if result.edges:
            edges = _PlainTable("Source", "AssociationType", "Destination", title="Edges")
            for e in result.edges:
                src, dst = shown.get(e.source_arn), shown.get(e.destination_arn)
                edges.add_row(
                    src.label if src else e.source_arn,
                    e.association_type or "",
                    dst.label if dst else e.destination_arn,
                )
            _print_table(edges)
    notes = [f"{len(result.vertices)} vertices, {len(result.edges)} edges"]
    if result.truncated_by_depth:
        notes.append("cut short by --max-depth: a deeper query returns more")
    if result.next_token:
        notes.append(f"more: --next-token {result.next_token}")
    out.print("[dim]" + "; ".join(notes) + "[/]")


@cli.command("query-lineage")
@click.argument("start_arns", nargs=-1, required=True)
@click.option("--direction", type=click.Choice(DIRECTIONS), default="Both", show_default=True)
@click.option(
    "--max-depth",
    type=click.IntRange(0, 100),
    default=10,
    show_default=True,
    help="Associations to follow from the start (SageMaker caps it at 10).",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    help="Return only vertices of this type "
    "(DataSet, Model, Image, Endpoint, TrainingJob, ...). Repeatable.",
)
@click.option(
    "--lineage-type",
    "lineage_types",
    multiple=True,
    type=click.Choice(LINEAGE_TYPES, case_sensitive=False),
    help="Artifact, Action, Context or TrialComponent. Repeatable.",
)
@click.option("--created-after", help="ISO 8601 time (UTC when no zone is given).")
@click.option("--created-before")
@click.option("--modified-after")
@click.option("--modified-before")
@click.option(
    "--property",
    "properties",
    multiple=True,
    metavar="KEY=VALUE",
    help="Vertices with this property (any one given pair matches). Repeatable.",
)
@click.option("--no-edges", is_flag=True, help="Return vertices only (IncludeEdges=false).")
@click.option("--max-results", type=click.IntRange(1), help="Vertices per page.")
@click.option("--next-token", help="Continue a paged query (same options).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "tree", "dot", "mermaid"]),
    default="table",
    show_default=True,
    help="tree: one tree per start ARN, as the demo prints; dot: Graphviz "
    "(`| dot -Tsvg > g.svg`); mermaid: paste into Markdown. Failed jobs are marked.",
)
@click.option("--no-sync", is_flag=True, help="Query the projection as it is.")
@click.option(
    "--account",
    help=ACCOUNT_HELP + " Adds the SameAs links between its visible "
    "accounts' copies of the same artifact.",
)
@pass_ctx
def query_lineage_cmd(
    ctx: Ctx,
    start_arns: tuple[str, ...],
    direction: str,
    max_depth: int,
    types: tuple[str, ...],
    lineage_types: tuple[str, ...],
    created_after: str | None,
    created_before: str | None,
    modified_after: str | None,
    modified_before: str | None,
    properties: tuple[str, ...],
    no_edges: bool,
    max_results: int | None,
    next_token: str | None,
    fmt: str,
    no_sync: bool,
    account: str | None,
) -> None:
    """Walk the lineage graph from START_ARNS, with SageMaker's QueryLineage semantics.

    Example, the datasets behind the demo's endpoint:

    \b
      mlineage query-lineage --direction Ascendants --type DataSet \\
        arn:aws:sagemaker:us-east-1:000000000000:context/churn-prediction-aws-endpoint
    """
    props: dict[str, str] = {}
    for pair in properties:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--property")
        props[key] = value
    filters = LineageFilter(
        types=None,
        lineage_types=list(lineage_types) or None,
        created_after=_when(created_after, "--created-after"),
        created_before=_when(created_before, "--created-before"),
        modified_after=_when(modified_after, "--modified-after"),
        modified_before=_when(modified_before, "--modified-before"),
        properties=props or None,
    )
    with _open_store(ctx.settings, no_sync, account) as store:
        if types:
            wanted = [match_value(store.con, "type", t, "--type") for t in types]
            filters = dataclasses.replace(filters, types=wanted)
        starts = [
            a if a.startswith("arn:") and store.graph.vid(a) is not None else _resolve(store, a)
            for a in start_arns
        ]
        unknown = [a for a in starts if store.graph.vid(a) is None]
        for arn in unknown:
            err.print(
                f"note: {arn} is not a live entity in the projection: nothing is reached from it",
                markup=False,
            )
        result = store.query_lineage(
            starts,
            direction=direction,
            include_edges=not no_edges,
            filters=filters,
            max_depth=max_depth,
            max_results=max_results,
            next_token=next_token,
        )
        if fmt == "tree" and no_edges:
            raise click.UsageError("--format tree draws the edges: leave out --no-edges")
        _print_lineage(store, starts, result, fmt, direction)


# -- cross-account sharing ---------------------------------------------------------------------


def _set_share(settings: Settings, owner: str, grantee: str, *, shared: bool) -> None:
    with Recorder(settings, producer=f"mlineage-cli/{__version__}") as rec:
        if shared:
            rec.share(grantee, owner_account=owner)
        else:
            rec.unshare(grantee, owner_account=owner)
    state = "now shares" if shared else "no longer shares"
    out.print(f"{owner} {state} its lineage with {grantee}")
    if settings.log_url.startswith("sqlite:"):
        _sync_after_write(settings, "recorded")


@cli.command()
@click.option("--owner", "owner", required=True, help="The account whose lineage is shared.")
@click.option("--with", "grantee", required=True, help="The account that may see it.")
@pass_ctx
def share(ctx: Ctx, owner: str, grantee: str) -> None:
    """Share OWNER's lineage group with another account (not transitive: the grantee cannot
    pass it on). Published as an event of OWNER."""
    _set_share(ctx.settings, owner, grantee, shared=True)


@cli.command()
@click.option("--owner", "owner", required=True, help="The account whose lineage was shared.")
@click.option("--with", "grantee", required=True, help="The account that loses access.")
@pass_ctx
def unshare(ctx: Ctx, owner: str, grantee: str) -> None:
    """Revoke a share: every later query on behalf of the grantee stops seeing OWNER's
    lineage."""
    _set_share(ctx.settings, owner, grantee, shared=False)


# -- schemas ----------------------------------------------------------------------------------

# -- operations -------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def status(ctx: Ctx, as_json: bool) -> None:
    """Show each consumer's position and lag, dead letters and spooled events."""
    settings = ctx.settings
    if (empty := settings.nothing_published()) is not None:
        out.print(empty, markup=False)
        return
    with open_log(settings.log_url) as log:
        st = ops.status(log, settings)
    if as_json:
        out.print_json(json.dumps(st.as_dict()))
        return
    where = f" (the file {settings.log_file})" if settings.log_file is not None else ""
    out.print(f"log {st.log}{where}", markup=False)
    out.print(f"projection {settings.db_path.absolute()}", markup=False)
    table = _PlainTable("consumer", "reads from", "position", "lag", box=None)
    for c in st.consumers:
        positions = ", ".join(f"{k}@{v}" for k, v in c.positions.items()) or "-"
        table.add_row(c.name, c.where, positions, f"{c.lag:,}")
    _print_table(table)
    in_table = "-" if st.dead_letters_table is None else f"{st.dead_letters_table:,}"
    out.print(
        f"dead letters: {st.dead_letters_topic:,} on {TOPIC_DLQ} not redriven "
        f"(mlineage dlq list); {in_table} in the projection's dead_letters table"
    )
    waiting = sum(n for n in st.spooled.values() if n > 0)
    out.print(
        f"spooled, waiting for the log: {waiting:,} events in {len(st.spooled)} file(s)"
        + (f" under {settings.spool_dir}" if st.spooled else "")
    )


@cli.group()
def dlq() -> None:
    """Dead letters: records the tracker or the projector could not process."""


@dlq.command("list")
@click.option("--no-sync", is_flag=True, help="List without catching up with the log first.")
@click.option("--all", "show_all", is_flag=True, help="Include dead letters already redriven.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@pass_ctx
def dlq_list(ctx: Ctx, show_all: bool, limit: int, as_json: bool, no_sync: bool) -> None:
    """List dead letters: the tracker's (topic mlineage.dlq.v1) and the projector's
    (table dead_letters), each with its reason and original position."""
    settings = ctx.settings
    if (empty := settings.nothing_published()) is not None:
        out.print(empty, markup=False)
        return
    if not no_sync:
        _sync(settings)  # the projector's dead letters of what was published meanwhile
    with open_log(settings.log_url) as log:
        letters = ops.dead_letters(log, pending_only=not show_all, limit=limit)
    table_rows = ops.projector_dead_letters(settings.db_path, limit)
    if as_json:
        for letter in letters:
            print(json.dumps({"source": "tracker", **letter.as_dict()}))
        for row in table_rows:
            print(json.dumps({"source": "projector", **row}))
        return
    table = _PlainTable("source", "where", "original", "event", "error", box=None)
    for letter in letters:
        table.add_row(
            "tracker",
            f"{TOPIC_DLQ}[{letter.record.partition}]@{letter.record.offset}",
            f"{letter.original_topic}[{letter.original_partition}]@{letter.original_offset}",
            letter.summary,
            letter.error,
        )
    for row in table_rows:
        table.add_row(
            "projector",
            "dead_letters",
            f"{row['topic']}[{row['partition']}]@{row['offset']}",
            "",
            row["error"],
        )
    if not letters and not table_rows:
        out.print("no dead letters")
        return
    _print_table(table)


@dlq.command("redrive")
@click.option("--dry-run", is_flag=True, help="Show what would be redriven; change nothing.")
@pass_ctx
def dlq_redrive(ctx: Ctx, dry_run: bool) -> None:
    """Re-publish the tracker's dead letters that validate now to their original topic.

    Each dead letter is handled exactly once: those that still fail are appended to the
    DLQ again with the current error, and the redrive position moves past both in the same
    transaction. Fix what made them fail (the producer, or an upcaster for an old event
    shape) first; `--dry-run` shows the outcome.
    """
    with open_log(ctx.settings.log_url) as log:
        result = ops.redrive(log, dry_run=dry_run)
    verb = "would redrive" if dry_run else "redrove"
    out.print(f"{verb} {len(result.redriven)} dead letter(s)")
    for letter, problem in result.still_bad:
        err.print(
            f"still bad: {TOPIC_DLQ}[{letter.record.partition}]@{letter.record.offset} "
            f"({letter.summary}): {problem}",
            markup=False,
        )
    if result.still_bad and not dry_run:
        err.print(
            f"{len(result.still_bad)} still fail; they are back on {TOPIC_DLQ} with "
            "the current error"
        )


def _dlq_place(text: str) -> tuple[int, int]:
    """``mlineage.dlq.v1[0]@5`` (as `dlq list` shows it) or ``0@5``: (partition, offset)."""
    match = re.fullmatch(rf"(?:{re.escape(TOPIC_DLQ)}\[)?(\d+)\]?@(\d+)", text.strip())
    if match is None:
        raise click.BadParameter(
            f"{text!r} is not a place such as {TOPIC_DLQ}[0]@5 or 0@5 (see `mlineage dlq list`)"
        )
    return int(match[1]), int(match[2])


@dlq.command("discard")
@click.argument("places", nargs=-1, metavar="[PLACE]...")
@click.option("--all", "discard_all", is_flag=True, help="Discard every pending dead letter.")
@click.option("--dry-run", is_flag=True, help="Show what would be discarded; change nothing.")
@pass_ctx
def dlq_discard(ctx: Ctx, places: tuple[str, ...], discard_all: bool, dry_run: bool) -> None:
    """Give up on dead letters that will never be redriven (a test event, a producer bug
    that is fixed going forward).

    PLACE is where `mlineage dlq list` shows it (mlineage.dlq.v1[0]@5, or 0@5); --all takes
    every pending one. The DLQ topic keeps every record (a discard only moves the redrive
    position past it), and the pending ones not discarded stay pending.
    """
    if bool(places) == discard_all:
        raise click.UsageError("name the dead letters to discard (PLACE...) or give --all")
    which = None if discard_all else {_dlq_place(p) for p in places}
    with open_log(ctx.settings.log_url) as log:
        try:
            result = ops.discard(log, which, dry_run=dry_run)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    verb = "would discard" if dry_run else "discarded"
    for letter in result.discarded:
        out.print(
            f"{verb} {TOPIC_DLQ}[{letter.record.partition}]@{letter.record.offset} "
            f"({letter.summary}): {letter.error}",
            markup=False,
        )
    out.print(f"{verb} {len(result.discarded)} dead letter(s); {len(result.kept)} still pending")


# -- the SageMaker-compatible API ---------------------------------------------------------------

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--credentials",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="MLINEAGE_CREDENTIALS",
    help='JSON file of access keys: {"AKID": '
    '{"secret_access_key": "...", "account_id": "123456789012"}} '
    "[env MLINEAGE_CREDENTIALS]. Requests are verified with SigV4 against it and the "
    "key decides the caller's account.",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve without authentication, as the "
    "operator (sees every account; writes as --account-id). Loopback only.",
)
@click.option(
    "--extended-limits",
    is_flag=True,
    help="Lift SageMaker's caps on QueryLineage "
    "(MaxDepth up to 100, MaxResults uncapped) and List* MaxResults. Entity limits "
    "are the event schema's and stay.",
)
@pass_ctx
def serve(
    ctx: Ctx, host: str, port: int, credentials: Path | None, no_auth: bool, extended_limits: bool
) -> None:
    """Serve SageMaker's lineage API (boto3 and the SageMaker SDK work unchanged).

    Point a client at it with endpoint_url, e.g.
    boto3.client("sagemaker", endpoint_url="http://127.0.0.1:8080"). Writes become events on
    the configured log and are answered once the projection shows them. This process owns
    its projection (--db): stop `project --follow` on the same file first. See docs/serve.md.
    """
    import uvicorn  # noqa: PLC0415 - only this command needs the web stack

    from mlineage.server.app import ServerConfig, create_app  # noqa: PLC0415
    from mlineage.server.backend import Backend  # noqa: PLC0415
    from mlineage.server.sigv4 import Credentials  # noqa: PLC0415

    if no_auth and credentials is not None:
        raise click.UsageError("--no-auth and --credentials exclude each other")
    if not no_auth and credentials is None:
        raise click.UsageError(
            "give --credentials FILE (SigV4 against those keys), or "
            "--no-auth to serve unauthenticated on loopback"
        )
    if no_auth and host not in LOOPBACK:
        raise click.UsageError(
            f"--no-auth serves on loopback only, not on {host}: use "
            "--credentials to listen elsewhere"
        )
    keys = Credentials.load(credentials) if credentials is not None else None
    settings = ctx.settings
    if no_auth:
        err.print(
            "[yellow]warning:[/] serving WITHOUT authentication: every caller is the "
            f"operator (sees every account, writes as {settings.account_id})"
        )
    _service_logging()
    lock = WriterLock(settings.db_path).acquire("serve")
    access = AccessLock(settings.db_path)
    access.acquire(exclusive=True, note=_note)  # as `project --follow` does
    try:
        backend = Backend(settings)
        backend.write_snapshot(force=True)
    except BaseException:
        lock.release()
        raise
    finally:
        access.release()
    stop = backend.follow()
    app = create_app(
        backend, ServerConfig(keys, settings.account_id, extended_limits, settings.region)
    )
    err.print(
        f"serving SageMaker's lineage API on http://{host}:{port} (log "
        f"{settings.log_url}, projection {settings.db_path}); Ctrl-C to stop"
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        stop.set()
        backend.close()
        lock.release()


@cli.group()
def schemas() -> None:
    """JSON Schemas of the events."""


@schemas.command("export")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="Directory to write <EventType>.v1.json into.",
)
def schemas_export(out_dir: Path) -> None:
    """Write one JSON Schema per event type and version, generated from the models."""
    for path in export(out_dir):
        out.print(f"wrote {path}")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt, duckdb.InterruptException):
        # Ctrl-C: what was committed stays (the log and the projection move in whole
        # batches) and a replay's half-built file is gone; running it again goes on
        err.print("interrupted: nothing half-done is kept; run the command again to finish")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MlineageError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
