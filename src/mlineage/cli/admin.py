"""Operating a home: `share`, `unshare`, `status` and the dead-letter queue (`dlq`)."""

from __future__ import annotations

import json
import re

import click

from mlineage import __version__, ops
from mlineage.cli.app import Ctx, catch_up, catch_up_after_write, cli, pass_ctx
from mlineage.cli.render import PlainTable, err, out, print_table
from mlineage.log.base import TOPIC_DLQ, open_log
from mlineage.recorder import Recorder
from mlineage.settings import Settings


def _set_share(settings: Settings, owner: str, grantee: str, *, shared: bool) -> None:
    with Recorder(settings, producer=f"mlineage-cli/{__version__}") as rec:
        if shared:
            rec.share(grantee, owner_account=owner)
        else:
            rec.unshare(grantee, owner_account=owner)
    state = "now shares" if shared else "no longer shares"
    out.print(f"{owner} {state} its lineage with {grantee}")
    if settings.log_url.startswith("sqlite:"):
        catch_up_after_write(settings, "recorded")


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
    table = PlainTable("consumer", "reads from", "position", "lag", box=None)
    for c in st.consumers:
        positions = ", ".join(f"{k}@{v}" for k, v in c.positions.items()) or "-"
        table.add_row(c.name, c.where, positions, f"{c.lag:,}")
    print_table(table)
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
        catch_up(settings)  # the projector's dead letters of what was published meanwhile
    with open_log(settings.log_url) as log:
        letters = ops.dead_letters(log, pending_only=not show_all, limit=limit)
    table_rows = ops.projector_dead_letters(settings.db_path, limit)
    if as_json:
        for letter in letters:
            print(json.dumps({"source": "tracker", **letter.as_dict()}))
        for row in table_rows:
            print(json.dumps({"source": "projector", **row}))
        return
    table = PlainTable("source", "where", "original", "event", "error", box=None)
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
    print_table(table)


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
