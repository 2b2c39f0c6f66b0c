"""`mlineage demo` and `mlineage publish`: events onto the log."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from mlineage import __version__
from mlineage import demo as wf
from mlineage.cli.app import Ctx, catch_up, catch_up_after_write, cli, open_store, pass_ctx
from mlineage.cli.render import err, lineage_trees, out, print_rows
from mlineage.errors import EventValidationError
from mlineage.events.codec import validate_record, wrap_openlineage
from mlineage.events.openlineage import looks_like_openlineage
from mlineage.recorder import Recorder, complete, route
from mlineage.settings import Settings

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
    catch_up(settings)
    with open_store(settings, no_sync=True) as store:
        counts, n_edges = store.graph_summary()
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
        shown = store.vertex_labels([v.arn for v in walked.vertices])
        out.print(*lineage_trees([endpoint], walked, shown, "Ascendants"))
        query = "SELECT job_name, job_type, status, metrics FROM jobs ORDER BY created_at"
        out.print(f"\n[bold]SQL:[/] {query}")
        print_rows(*store.sql(query), "table")
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


@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--openlineage",
    is_flag=True,
    help="FILE holds OpenLineage events (RunEvent, DatasetEvent, JobEvent), e.g. what the "
    "OpenLineage client's file transport writes; they are recorded for --account-id.",
)
@click.option(
    "--no-sync",
    is_flag=True,
    help="Only append to the log; do not track and project (embedded log) afterwards.",
)
@pass_ctx
def publish(ctx: Ctx, file: io.TextIOBase, openlineage: bool, no_sync: bool) -> None:
    """Publish events from FILE (- for stdin).

    FILE holds JSON events: one per line (JSON lines), pretty-printed documents one after
    the other, or JSON arrays of events. event_id, occurred_at, schema_version, account_id
    and region are filled in when absent. Every event is validated first: if any is bad,
    each bad one is reported with its line number and nothing is written.

    With --openlineage, FILE holds OpenLineage events as they are (no mlineage envelope);
    each gets an id from its content, so publishing a file again applies nothing twice.
    """
    settings = ctx.settings
    rec = Recorder(settings, producer=f"mlineage-cli/{__version__}")
    valid = []
    problems = []
    try:
        text = file.read()
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{getattr(file, 'name', 'FILE')} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
            "nothing was published"
        ) from exc
    for where, value in _documents(text.removeprefix("\ufeff")):
        try:
            if isinstance(value, EventValidationError):
                raise value
            valid.append(validate_record(_draft(value, settings, rec.producer, openlineage)))
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
        catch_up_after_write(settings, "published")


MAX_PROBLEMS_SHOWN = 50


def _draft(value: Any, settings: Settings, producer: str, openlineage: bool) -> Any:
    """The event to validate for one value of FILE: an OpenLineage event in its envelope
    (with --openlineage, or when it is one), else the value completed."""
    if not isinstance(value, dict):
        return value
    if openlineage or looks_like_openlineage(value):
        if openlineage and "event_type" in value:
            raise EventValidationError(
                "OpenLineageEventReceived: an mlineage event, not an OpenLineage one: publish "
                "it without --openlineage",
                [("OpenLineageEventReceived", "(event)", "is an mlineage event")],
            )
        return wrap_openlineage(value, settings.account_id, settings.region, producer)
    return complete(value, settings, producer)


_DECODER = json.JSONDecoder()


def _malformed(where: str, exc: ValueError | RecursionError) -> tuple[str, EventValidationError]:
    if isinstance(exc, json.JSONDecodeError):
        problem = f"malformed JSON: {exc.msg} (column {exc.colno})"
    elif isinstance(exc, RecursionError):
        problem = "malformed JSON: nested too deeply"
    else:  # e.g. an integer of more digits than Python converts
        problem = f"malformed JSON: {exc}"
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
    # JSON lines end in "\n" only: U+2028 and its kind may stand raw inside a JSON string
    lines = [ln.removesuffix("\r") for ln in text.split("\n")]
    if all(not ln.strip() or ln[0] in "{[" for ln in lines):  # each line opens a value
        for number, ln in enumerate(lines, start=1):
            if not ln.strip():
                continue
            try:
                value = json.loads(ln)
            except (ValueError, RecursionError) as exc:
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
        except (ValueError, RecursionError) as exc:
            yield _malformed(f"line {line}", exc)
            return
        yield from _values(f"line {line}", value)
        line += text.count("\n", pos, end)
        pos = end
