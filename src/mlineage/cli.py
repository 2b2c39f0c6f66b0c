"""The ``mlineage`` command."""

from __future__ import annotations

import csv
import io
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import duckdb
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from mlineage import __version__
from mlineage import demo as wf
from mlineage.errors import EventValidationError, MlineageError, ProjectionError
from mlineage.events.codec import parse_json, validate_record
from mlineage.events.schemas import export
from mlineage.log.base import open_log
from mlineage.pipeline import sync
from mlineage.projection.service import ProjectorService, WriterLock, replay
from mlineage.projection.store import DuckDBStore, open_error
from mlineage.recorder import Recorder, complete, route
from mlineage.settings import Settings
from mlineage.tracker.service import TrackerService

# piped output is not cut at 80 columns: scripts and logs get whole lines
_WIDTH = None if sys.stdout.isatty() else 240
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
        return self._settings


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mlineage")
@click.option("--home", type=click.Path(path_type=Path), help="Where the embedded log and the "
              "projection live [env MLINEAGE_HOME; default ./.mlineage].")
@click.option("--log", "log_url", help="Event log URL: sqlite:///path or kafka://host:port "
              "[env MLINEAGE_LOG; default sqlite under --home].")
@click.option("--db", "db_path", type=click.Path(path_type=Path),
              help="DuckDB projection file [env MLINEAGE_DB; default HOME/lineage.duckdb].")
@click.option("--account-id", help="Account stamped on published events that name none "
              "[env MLINEAGE_ACCOUNT_ID; default 000000000000].")
@click.option("--region", help="Region stamped likewise [env MLINEAGE_REGION; default us-east-1].")
@click.pass_context
def cli(ctx: click.Context, /, **flags: Any) -> None:
    """mlineage: self-hosted ML lineage with SageMaker semantics.

    Jobs publish events to a log; the auto-tracker derives artifacts, trial components and
    associations; the projector materializes the graph into DuckDB for SQL and QueryLineage.
    Start with `mlineage demo`.
    """
    ctx.obj = Ctx(**flags)


def _progress_bar(label: str) -> tuple[Progress, Callable[[str, int, int], None]]:
    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.completed:,}/{task.total:,} records"),
                        TimeElapsedColumn(), console=err, transient=True)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, lag: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(f"{label} {stage}", total=done + lag)
        progress.update(tasks[stage], completed=done, total=done + lag)

    return progress, update


def _sync(settings: Settings, quiet: bool = False) -> None:
    if quiet or not err.is_terminal:
        sync(settings)
        return
    bar, update = _progress_bar("catching up:")
    with bar:
        sync(settings, progress=update)


# -- demo -------------------------------------------------------------------------------------

@cli.command()
@pass_ctx
def demo(ctx: Ctx) -> None:
    """Run a realistic workflow end to end on the embedded log (no services needed).

    Publishes raw data -> processing job -> training job (with an experiment) -> batch
    transform -> model package -> endpoint, derives and projects the lineage, prints the
    endpoint's lineage as a tree and a sample SQL query. Safe to run again: the events have
    fixed ids, so nothing is applied twice.
    """
    settings = ctx.settings
    with Recorder(settings, producer=f"mlineage-demo/{__version__}") as rec:
        events = rec.publish_many(wf.workflow(rec))
        endpoint = wf.endpoint_context_arn(rec)
    out.print(f"[bold]Published {len(events)} events[/] to {settings.log_url}")
    _sync(settings)
    with _reader(settings) as con:
        counts = con.execute(
            "SELECT lineage_type, count(*) FROM lineage_vertices GROUP BY 1 ORDER BY 1"
        ).fetchall()
        n_edges = con.execute("SELECT count(*) FROM lineage_edges").fetchall()[0][0]
        out.print("Projected into " + str(settings.db_path) + ": " + ", ".join(
            f"{n} {t}" for t, n in counts) + f", {n_edges} associations\n")
        out.print("[bold]Where did the model behind the endpoint come from?[/] "
                  "(ascendants of the endpoint, as QueryLineage walks them)")
        out.print(_ancestor_tree(con, endpoint))
        query = ("SELECT job_name, job_type, status, metrics FROM jobs "
                 "ORDER BY created_at")
        out.print(f"\n[bold]SQL:[/] {query}")
        _print_rows(*_run(con, query), "table")
    out.print("\n[bold]Try next:[/]")
    for line in (
        "mlineage sql \"SELECT type, count(*) FROM lineage_vertices GROUP BY ALL\"",
        "mlineage sql \"SELECT * FROM lineage_edges\" --format csv",
        "mlineage checksum          # digest of the projection",
        "mlineage replay            # rebuild it from the log: same checksum",
        "mlineage publish events.jsonl   # your own events (see schemas/examples)",
    ):
        out.print(f"  {line}")


def _ancestor_tree(con: duckdb.DuckDBPyConnection, start: str, max_depth: int = 10) -> Tree:
    def label(arn: str) -> str:
        rows = con.execute("SELECT lineage_type, type, coalesce(name, '') FROM lineage_vertices "
                           "WHERE arn = ?", [arn]).fetchall()
        if not rows:
            return arn
        lineage_type, typ, name = rows[0]
        if lineage_type == "Artifact":
            uris = con.execute("SELECT source_uri FROM artifacts WHERE arn = ?", [arn]).fetchall()
            name = uris[0][0] if uris and uris[0][0] else name
        return f"[cyan]{typ or lineage_type}[/] {name or arn.rsplit('/', 1)[-1]}"

    tree = Tree(label(start))
    seen = {start}

    def walk(node: Tree, arn: str, depth: int) -> None:
        if depth >= max_depth:
            return
        parents = con.execute(
            "SELECT source_arn, association_type FROM lineage_edges WHERE destination_arn = ? "
            "ORDER BY association_type, source_arn", [arn]).fetchall()
        for parent, assoc in parents:
            child = node.add(f"[dim]{assoc} ←[/] {label(parent)}")
            if parent not in seen:
                seen.add(parent)
                walk(child, parent, depth + 1)

    walk(tree, start, 0)
    return tree


# -- publishing -------------------------------------------------------------------------------

@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--no-sync", is_flag=True, help="Only append to the log; do not track and "
              "project (embedded log) afterwards.")
@pass_ctx
def publish(ctx: Ctx, file: io.TextIOBase, no_sync: bool) -> None:
    """Publish events from FILE (JSON lines; - for stdin).

    Each line is one event; event_id, occurred_at, schema_version, account_id and region are
    filled in when absent. Every line is validated first: if any line is bad, each bad line
    is reported with its number and nothing is written.
    """
    settings = ctx.settings
    rec = Recorder(settings, producer=f"mlineage-cli/{__version__}")
    valid = []
    problems = []
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            draft = parse_json(line)
            if isinstance(draft, dict):
                draft = complete(draft, settings, rec.producer)
            valid.append(validate_record(draft))
        except EventValidationError as exc:
            problems.append(f"line {number}: {exc}")
    if problems:
        for p in problems:
            err.print(p, markup=False)
        raise click.ClickException(
            f"{len(problems)} bad line(s); nothing was published. Fix them and publish again.")
    with rec:
        rec.log.append([route(e) for e in valid])
    out.print(f"published {len(valid)} events to {settings.log_url}")
    if not no_sync and settings.log_url.startswith("sqlite:"):
        _sync(settings)


# -- consumers --------------------------------------------------------------------------------

@cli.command()
@click.option("--follow", is_flag=True, help="Keep running and derive new events as they come.")
@click.option("--timeout", type=float, help="Stop after this many seconds.")
@pass_ctx
def track(ctx: Ctx, follow: bool, timeout: float | None) -> None:
    """Run the auto-tracker: derive entities from job events (to the end of the log)."""
    with open_log(ctx.settings.log_url) as log:
        stats = TrackerService(log).run(follow=follow, timeout=timeout)
    out.print(f"tracked {stats.consumed} events: derived {stats.derived}, "
              f"dead-lettered {stats.dead_lettered}")


@cli.command()
@click.option("--follow", is_flag=True, help="Keep running and project new events as they come.")
@click.option("--timeout", type=float, help="Stop after this many seconds.")
@click.option("--batch-size", type=click.IntRange(1), default=50_000, show_default=True,
              help="Records per DuckDB transaction.")
@pass_ctx
def project(ctx: Ctx, follow: bool, timeout: float | None, batch_size: int) -> None:
    """Run the projector: apply the log to the DuckDB projection (to the end of the log)."""
    settings = ctx.settings
    lock = WriterLock(settings.db_path)
    if follow:
        lock.acquire("project --follow")
    try:
        with open_log(settings.log_url) as log, DuckDBStore(settings.db_path) as store:
            if follow:
                err.print(f"following {settings.log_url} into {settings.db_path} "
                          "(Ctrl-C to stop)")
            try:
                stats = ProjectorService(log, store, batch_size=batch_size).run(
                    follow=follow, timeout=timeout)
            except KeyboardInterrupt:
                return
    finally:
        lock.release()
    out.print(f"projected {stats.consumed} records: applied {stats.applied}, "
              f"dead-lettered {stats.dead_lettered}")


@cli.command(name="replay")
@pass_ctx
def replay_cmd(ctx: Ctx) -> None:
    """Rebuild the projection from offset 0 of the log into a new file and swap it in.

    Refuses while another process (such as `project --follow`) holds the projection.
    """
    settings = ctx.settings
    with open_log(settings.log_url) as log:
        TrackerService(log).run()
        total = sum(sum(log.end_offsets(t).values()) for t in ("mlineage.jobs.v1",
                                                               "mlineage.entities.v1"))
        bar = Progress(TextColumn("replaying"), BarColumn(),
                       TextColumn("{task.completed:,}/{task.total:,} records"),
                       TimeElapsedColumn(), console=err, disable=not err.is_terminal)
        with bar:
            task = bar.add_task("replay", total=total)
            stats = replay(log, settings.db_path,
                           progress=lambda done, lag: bar.update(task, completed=done))
    with DuckDBStore(settings.db_path, read_only=True) as store:
        digest = store.checksum()
    out.print(f"replayed {stats.consumed} records ({stats.dead_lettered} dead-lettered) into "
              f"{settings.db_path}\nchecksum {digest}")


@cli.command()
@click.option("--no-sync", is_flag=True, help="Digest the projection as it is, without "
              "catching up with the log first.")
@pass_ctx
def checksum(ctx: Ctx, no_sync: bool) -> None:
    """Print one hex digest of the projected state (equal logs give equal checksums)."""
    settings = ctx.settings
    if not no_sync:
        _sync(settings, quiet=True)
    with DuckDBStore(settings.db_path, read_only=True) as store:
        out.print(store.checksum())


# -- SQL --------------------------------------------------------------------------------------

@contextmanager
def _reader(settings: Settings, memory_limit: str = "1GB") -> Iterator[duckdb.DuckDBPyConnection]:
    if not settings.db_path.exists():
        raise ProjectionError(f"no projection at {settings.db_path} yet: publish something "
                              "(or run `mlineage demo`) first")
    try:
        con = duckdb.connect(str(settings.db_path), read_only=True)
    except duckdb.Error as exc:
        raise open_error(settings.db_path, exc) from exc
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET memory_limit = '{memory_limit}'")
        yield con
    finally:
        con.close()


def _run(con: duckdb.DuckDBPyConnection, query: str, timeout: float = 30.0
         ) -> tuple[list[str], list[tuple[Any, ...]]]:
    timer = threading.Timer(timeout, con.interrupt)
    timer.start()
    try:
        cur = con.execute(query)
        rows = cur.fetchall()
        names = [d[0] for d in cur.description or []]
    except duckdb.InterruptException as exc:
        raise MlineageError(f"query cancelled after {timeout:g}s (raise --timeout)") from exc
    except duckdb.Error as exc:
        text = str(exc)
        if "read-only" in text or "read only" in text:
            raise MlineageError("mlineage sql is read-only: the projection is rebuilt from "
                                "the event log; publish events to change it") from exc
        raise MlineageError(f"SQL error: {text}") from exc
    finally:
        timer.cancel()
    return names, rows


def _print_rows(names: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    def cell(v: Any) -> Any:
        return v.isoformat() if hasattr(v, "isoformat") else v

    if fmt == "json":
        sys.stdout.write(json.dumps([{n: cell(v) for n, v in zip(names, r, strict=True)}
                                     for r in rows], default=str, indent=2) + "\n")
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(names)
        w.writerows([[cell(v) for v in r] for r in rows])
    else:
        table = Table(*names, show_lines=False)
        for r in rows:
            table.add_row(*["NULL" if v is None else str(cell(v)) for v in r])
        out.print(table)
        out.print(f"[dim]{len(rows)} row(s)[/]")


@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Cancel the query after this many seconds.")
@click.option("--memory-limit", default="1GB", show_default=True,
              help="DuckDB memory limit for the query.")
@click.option("--no-sync", is_flag=True, help="Query the projection as it is.")
@pass_ctx
def sql(ctx: Ctx, query: str, fmt: str, timeout: float, memory_limit: str,
        no_sync: bool) -> None:
    """Run a read-only SQL query on the DuckDB projection.

    Tables: artifacts, actions, contexts, experiments, trials, trial_components,
    trial_component_trials, associations, jobs, lineage_groups, lineage_shares, events,
    dead_letters, positions; views lineage_vertices and lineage_edges (live entities only).
    """
    settings = ctx.settings
    if not no_sync:
        _sync(settings, quiet=True)
    with _reader(settings, memory_limit) as con:
        _print_rows(*_run(con, query, timeout), fmt)


# -- schemas ----------------------------------------------------------------------------------

@cli.group()
def schemas() -> None:
    """JSON Schemas of the events."""


@schemas.command("export")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("schemas"),
              show_default=True, help="Directory to write <EventType>.v1.json into.")
def schemas_export(out_dir: Path) -> None:
    """Write one JSON Schema per event type and version, generated from the models."""
    for path in export(out_dir):
        out.print(f"wrote {path}")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MlineageError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
