"""The ``mlineage`` command group and what every command shares: the global options and
settings, progress on stderr, catching up with the log, opening the projection to read."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from mlineage import __version__
from mlineage.cli.render import err, out
from mlineage.errors import MlineageError, ProjectionBusyError, ProjectionError
from mlineage.pipeline import SyncStats, sync
from mlineage.projection.service import AccessLock
from mlineage.query.store import INTERRUPTS, LineageStore
from mlineage.settings import Settings, progress_after


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
                print_note(note)
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


class Reporter:
    """Progress of a catch-up or a replay on stderr, once it has run for a second: a bar
    per stage on a terminal; piped, a plain line every few seconds and one at the end.
    ``update(stage, done, lag)`` is what :func:`mlineage.pipeline.sync` reports."""

    LINE_EVERY_S = 5.0

    def __init__(self, label: str) -> None:
        self.label = label
        self.show_after = progress_after()
        self._stages: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._bar: Progress | None = None
        self._tasks: dict[str, Any] = {}
        self._lines = 0
        self._started = 0.0
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Reporter:
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


def require_published(settings: Settings) -> None:
    if (empty := settings.nothing_published()) is not None:
        raise ProjectionError(empty)


def print_note(message: str) -> None:
    err.print(f"note: {message}", markup=False)


def catch_up(settings: Settings) -> SyncStats:
    """Catch up with the log (the embedded log's tracker too), taking turns with the other
    processes of this home (``followed``: a follower holds the projection and does it)."""
    lock = AccessLock(settings.db_path)
    lock.acquire(exclusive=True, note=print_note)
    try:
        with Reporter("catching up:") as reporter:
            return sync(settings, progress=reporter.update)
    finally:
        lock.release()


def catch_up_after_write(settings: Settings, what: str) -> None:
    """After a write that reached the log: project it here, or say who will. The write is
    done either way, so this never fails the command (a retrying script must not write
    twice)."""
    try:
        stats = catch_up(settings)
    except ProjectionBusyError as exc:
        out.print(f"{what}; not projected yet ({exc}): the next command catches up")
        return
    if stats.followed:
        out.print(f"{what}; the running projector (or server) applies it to {settings.db_path}")


ACCOUNT_HELP = (
    "Answer on behalf of this account: only its entities and those of owners "
    "that share with it (default: everything, the operator's view)."
)
FC = TypeVar("FC", bound=Callable[..., Any])
account_option = click.option("--account", help=ACCOUNT_HELP)
read_as_is_option = click.option("--no-sync", is_flag=True, help="Read the projection as it is.")


def format_option(*choices: str) -> Callable[[FC], FC]:
    """``--format`` (as ``fmt``) among ``choices``, the first by default."""
    return click.option(
        "--format", "fmt", type=click.Choice(list(choices)), default=choices[0], show_default=True
    )


def open_store(
    settings: Settings, no_sync: bool = False, account: str | None = None
) -> LineageStore:
    """Catch up with the log (embedded), then open the projection for reading. When a
    projector follows the log it holds the file: read the snapshot it keeps fresh. With
    ``account``, a store holding only what that account may see."""
    with Reporter("catching up:") as reporter:
        store = LineageStore.open(
            settings, sync=not no_sync, note=print_note, progress=reporter.update
        )
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


def resolve_arn(store: LineageStore, key: str) -> str:
    """The ARN of the entity ``key`` names (see :func:`mlineage.query.lookup.resolve`),
    saying on stderr what it was taken for when it was not that ARN itself."""
    found = store.resolve(key)
    if found.how != "arn":
        err.print(f"note: {key} is {found.arn} ({found.how})", markup=False)
    return found.arn


def parse_time(value: str | None, option: str) -> datetime | None:
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


_CTRL_C: tuple[type[BaseException], ...] = (click.exceptions.Abort, *INTERRUPTS)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except _CTRL_C:
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
