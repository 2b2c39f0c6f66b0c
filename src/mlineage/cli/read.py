"""Reading the projection: `sql`, `describe`, `history`, `list`, `query-lineage`."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click

from mlineage import arns
from mlineage.cli.app import (
    ACCOUNT_HELP,
    Ctx,
    account_option,
    cli,
    format_option,
    open_store,
    parse_time,
    pass_ctx,
    read_as_is_option,
    resolve_arn,
)
from mlineage.cli.render import (
    PlainTable,
    err,
    flatten,
    lineage_arns,
    plain_value,
    print_lineage,
    print_rows,
    print_table,
)
from mlineage.log.base import open_log
from mlineage.query import catalog
from mlineage.query.lineage import DIRECTIONS, LINEAGE_TYPES, LineageFilter
from mlineage.query.lookup import match_choice


@cli.command()
@click.argument("query")
@format_option("table", "csv", "json")
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
    with open_store(ctx.settings, no_sync, account) as store:
        if account is None:
            store.set_memory_limit(memory_limit)
        # as JSON, a JSON column is a JSON value, not a string holding one
        print_rows(*store.sql(query, timeout=timeout, decode_json=fmt == "json"), fmt)


@cli.command()
@click.argument("arn_or_name")
@click.option(
    "--kind",
    help="artifact, action, context, experiment, trial, trial-component or "
    "lineage-group, when a name is ambiguous.",
)
@format_option("table", "json", "csv")
@read_as_is_option
@account_option
@pass_ctx
def describe(
    ctx: Ctx, arn_or_name: str, kind: str | None, fmt: str, no_sync: bool, account: str | None
) -> None:
    """Describe one entity, as SageMaker's Describe* calls answer.

    ARN_OR_NAME is what you know: the entity's ARN or name, an artifact's URI (s3://...,
    an image URI), a job's name or ARN (its trial component), or an endpoint's or model
    package's ARN (what has it as its source)."""
    with open_store(ctx.settings, no_sync, account) as store:
        if kind:
            found = store.describe(arn_or_name, catalog.resolve_kind(kind))
        else:
            target = resolve_arn(store, arn_or_name)
            found = store.describe(target, None)
    if fmt == "json":
        sys.stdout.write(json.dumps(plain_value(found), indent=2, sort_keys=True) + "\n")
    elif fmt == "csv":
        print_rows(["field", "value"], list(flatten(found).items()), "csv")
    else:
        table = PlainTable("Field", "Value", show_header=False)
        for key, value in flatten(found).items():
            table.add_row(key, str(value))
        print_table(table)


@cli.command()
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per event.")
@read_as_is_option
@pass_ctx
def history(ctx: Ctx, key: str, as_json: bool, no_sync: bool) -> None:
    """Every event applied to one entity, oldest first, as it was published.

    KEY is the entity's ARN, or for an association "SOURCE_ARN DESTINATION_ARN" (the
    entity_key column of the events table). The projection records where each event was
    read; the events themselves are read back from the log.
    """
    with open_store(ctx.settings, no_sync) as store, open_log(ctx.settings.log_url) as log:
        found = store.history(log, key)
    if not found:
        raise click.ClickException(
            f"no events for {key!r}: pass an ARN as `mlineage list` or `describe` shows it "
            "(an association: the source and destination ARNs, space-separated, quoted)"
        )
    if as_json:
        for entry in found:
            print(json.dumps(entry, sort_keys=True))
        return
    table = PlainTable("version", "event", "producer", "read at", "payload", box=None)
    for entry in found:
        payload = (entry["event"] or {}).get("payload")
        table.add_row(
            entry["version"],
            entry["event_type"],
            entry["producer"] or "",
            f"{entry['topic']}[{entry['partition']}]@{entry['offset']}",
            "(no longer in the log)" if entry["event"] is None else json.dumps(payload),
        )
    print_table(table)


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
@format_option("table", "json", "csv")
@read_as_is_option
@account_option
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
        with open_store(ctx.settings, no_sync, account) as store:
            names, rows = store.shares()
        if fmt == "json":
            sys.stdout.write(
                json.dumps([flatten(dict(zip(names, r, strict=True))) for r in rows], indent=2)
                + "\n"
            )
        else:
            print_rows(names, rows, fmt)
        return
    filters = {k: v for k, v in options.items() if v is not None}
    filters["created_after"] = parse_time(created_after, "--created-after")
    filters["created_before"] = parse_time(created_before, "--created-before")
    filters = {k: v for k, v in filters.items() if v is not None}
    resolved = catalog.resolve_kind(kind)
    with open_store(ctx.settings, no_sync, account) as store:
        for name, field in _LOOSE_FILTERS.items():
            if name in filters:
                option = "--" + name.replace("_", "-")
                filters[name] = store.match_value(field, filters[name], option)
        page = store.list_entities(resolved, **filters)
    summaries = page[catalog.SUMMARY_KEYS[resolved]]
    if fmt == "json":
        sys.stdout.write(json.dumps(plain_value(page), indent=2, sort_keys=True) + "\n")
        return
    flat_rows = [flatten(s) for s in summaries]
    columns = list(catalog.SUMMARY_COLUMNS[resolved])  # the same on every page, even empty
    print_rows(columns, [tuple(r.get(n) for n in columns) for r in flat_rows], fmt)
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
    with open_store(ctx.settings, no_sync, account) as store:
        page = store.list_jobs(
            **given,
            created_after=parse_time(created_after, "--created-after"),
            created_before=parse_time(created_before, "--created-before"),
            **{k: options[k] for k in paging if options.get(k) is not None},
        )
    if fmt == "json":
        sys.stdout.write(json.dumps(plain_value(page), indent=2, sort_keys=True) + "\n")
        return
    columns = list(catalog.JOB_COLUMNS)
    rows = [tuple(plain_value(s.get(n)) for n in columns) for s in page["JobSummaries"]]
    print_rows(columns, rows, fmt)
    if page.get("NextToken"):
        err.print(f"more: --next-token {page['NextToken']}")


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
        created_after=parse_time(created_after, "--created-after"),
        created_before=parse_time(created_before, "--created-before"),
        modified_after=parse_time(modified_after, "--modified-after"),
        modified_before=parse_time(modified_before, "--modified-before"),
        properties=props or None,
    )
    with open_store(ctx.settings, no_sync, account) as store:
        if types:
            wanted = [store.match_value("type", t, "--type") for t in types]
            filters = dataclasses.replace(filters, types=wanted)
        starts = [
            a if a.startswith("arn:") and store.graph.vid(a) is not None else resolve_arn(store, a)
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
        shown = {} if fmt == "json" else store.vertex_labels(lineage_arns(starts, result))
        print_lineage(starts, result, shown, fmt, direction)
