"""The DuckDB schema of the projection: fixed table and view names (ARCHITECTURE.md), built
from one spec so the tables, the pivot that fills them and the docs cannot drift apart.

Schema changes bump :data:`SCHEMA_VERSION`; a projection of another version is rebuilt by
replay (``mlineage replay``), which is always safe because the log is the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 6

NO_VERSION = "CAST(-85070591730234615865843651857942052864 AS HUGEINT)"
"""Below every merge version (a stand-in for none, so comparisons need no NULL handling)."""


def version_of(text: str) -> str:
    """SQL of the merge version of a version text ``"{occurred_at}|{event_id}"``
    (:func:`mlineage.projection.project.project`): one HUGEINT, the UTC microseconds of
    ``occurred_at`` times 2**64 plus the first 64 bits of the event id. It orders versions
    as the text does, except that two events of the same microsecond whose ids share their
    first 64 bits tie (for random UUIDs, never in practice); a tie is broken by the value
    (:func:`field_select`), so the merge stays a semilattice."""
    return (
        f"(epoch_us(CAST(left({text}, 27) AS TIMESTAMPTZ))::HUGEINT * 18446744073709551616 + "
        f"CAST('0x' || substr({text}, 29, 8) || substr({text}, 38, 4) || substr({text}, 43, 4) "
        "AS UBIGINT))"
    )


def time_of(version: str) -> str:
    """SQL of the TIMESTAMPTZ a merge version was written at."""
    return f"CAST(make_timestamp(CAST({version} >> 64 AS BIGINT)) AS TIMESTAMPTZ)"


def is_live(modified: str, deleted: str) -> str:
    """SQL: an entity whose newest upsert is ``modified`` and newest delete ``deleted``
    (versions, either NULL) is live: the one definition of liveness."""
    return f"(coalesce({modified}, {NO_VERSION}) > coalesce({deleted}, {NO_VERSION}))"


def live(state: str) -> str:
    """SQL: the entity of ``state`` (a row of ``entity_state``) is live."""
    return is_live(f"{state}.modified_v", f"{state}.deleted_v")


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    field: str
    path: str = "$"


@dataclass(frozen=True)
class TableSpec:
    kind: str
    table: str
    key_columns: tuple[str, ...]  # one: the key itself; two: the key is "a b"
    columns: tuple[Column, ...]
    maps: tuple[str, ...]


def _c(name: str, sql_type: str = "VARCHAR", field: str | None = None, path: str = "$") -> Column:
    return Column(name, sql_type, field or name, path)


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "artifact",
        "artifacts",
        ("arn",),
        (
            _c("artifact_name"),
            _c("source_uri", field="source", path="$.source_uri"),
            _c("source_types", "JSON", "source", "$.source_types"),
            _c("artifact_type"),
            _c("metadata", "JSON"),
        ),
        ("properties", "tags"),
    ),
    TableSpec(
        "action",
        "actions",
        ("arn",),
        (
            _c("action_name"),
            _c("source_uri", field="source", path="$.source_uri"),
            _c("source_type", field="source", path="$.source_type"),
            _c("source_id", field="source", path="$.source_id"),
            _c("action_type"),
            _c("description"),
            _c("status"),
            _c("metadata", "JSON"),
        ),
        ("properties", "tags"),
    ),
    TableSpec(
        "context",
        "contexts",
        ("arn",),
        (
            _c("context_name"),
            _c("source_uri", field="source", path="$.source_uri"),
            _c("source_type", field="source", path="$.source_type"),
            _c("source_id", field="source", path="$.source_id"),
            _c("context_type"),
            _c("description"),
        ),
        ("properties", "tags"),
    ),
    TableSpec(
        "experiment",
        "experiments",
        ("arn",),
        (
            _c("experiment_name"),
            _c("display_name"),
            _c("description"),
        ),
        ("tags",),
    ),
    TableSpec(
        "trial",
        "trials",
        ("arn",),
        (
            _c("trial_name"),
            _c("experiment_name"),
            _c("display_name"),
            _c("metadata", "JSON"),
        ),
        ("tags",),
    ),
    TableSpec(
        "trial_component",
        "trial_components",
        ("arn",),
        (
            _c("trial_component_name"),
            _c("display_name"),
            _c("status", field="status", path="$.primary_status"),
            _c("status_message", field="status", path="$.message"),
            _c("start_time", "TIMESTAMPTZ"),
            _c("end_time", "TIMESTAMPTZ"),
            _c("source_arn", field="source", path="$.source_arn"),
            _c("source_type", field="source", path="$.source_type"),
            _c("metadata", "JSON"),
        ),
        ("parameters", "input_artifacts", "output_artifacts", "metrics", "tags"),
    ),
    TableSpec(
        "association",
        "associations",
        ("source_arn", "destination_arn"),
        (_c("association_type"),),
        (),
    ),
    TableSpec(
        "trial_component_trial",
        "trial_component_trials",
        ("trial_component_arn", "trial_arn"),
        (
            _c("trial_component_name"),
            _c("trial_name"),
        ),
        (),
    ),
    TableSpec("lineage_share", "lineage_shares", ("owner_account", "grantee_account"), (), ()),
    TableSpec(
        "job",
        "jobs",
        ("job_arn",),
        (
            _c("job_type"),
            _c("job_name"),
            _c("status"),
            _c("image_uri"),
            _c("instance_type"),
            _c("instance_count", "BIGINT"),
            _c("model_data_uri"),
            _c("checkpoint_uri"),
            _c("inputs", "JSON"),
            _c("outputs", "JSON"),
            _c("final_outputs", "JSON"),
            _c("failure_reason"),
            _c("end_time", "TIMESTAMPTZ"),
            _c("experiment_config", "JSON"),
            _c("metadata", "JSON"),
        ),
        ("parameters", "metrics", "tags"),
    ),
    # one row per OpenLineage event received: its main fields (each a fact of its own, so
    # the merge never parses an event, which may be a megabyte) and the event as it came;
    # the view openlineage_events shows its parts (OPENLINEAGE_VIEW)
    TableSpec(
        "openlineage_event",
        "openlineage_event_rows",
        ("event_id",),
        (
            *(
                _c(name)
                for name in (
                    "event_kind",
                    "event_type",
                    "run_id",
                    "job_namespace",
                    "job_name",
                    "dataset_namespace",
                    "dataset_name",
                    "producer",
                    "schema_url",
                )
            ),
            _c("event_time", "TIMESTAMPTZ"),
            _c("event", "JSON"),
        ),
        (),
    ),
)

FIELD_TYPE = "STRUCT(v HUGEINT, x VARCHAR)"
"""A scalar field's merge state: the version that wrote it and its value as JSON text (the
greater struct wins: the version, then on a tie the value)."""


def scalar_fields(spec: TableSpec) -> tuple[str, ...]:
    """The scalar fields of a kind that its table shows (in column order, once each)."""
    return tuple(dict.fromkeys(c.field for c in spec.columns))


def fields_table(spec: TableSpec) -> str:
    return f"fields_{spec.kind}"


VERTEX_KINDS = ("artifact", "action", "context", "experiment", "trial_component")

_STATE_COLUMNS = (
    "account_id VARCHAR NOT NULL, region VARCHAR NOT NULL, live BOOLEAN NOT NULL, "
    "created_at TIMESTAMPTZ, modified_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ"
)


def create_statements() -> list[str]:
    stmts = [
        "CREATE TABLE IF NOT EXISTS mlineage_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        # every applied event, and where it was read (topic/partition/offset); its body stays
        # in the log, which `mlineage history` reads (a copy here was a quarter of the file and
        # a third of the merge's time)
        "CREATE TABLE IF NOT EXISTS events (event_id VARCHAR NOT NULL, event_type VARCHAR NOT "
        "NULL, schema_version INTEGER NOT NULL, occurred_at TIMESTAMPTZ NOT NULL, account_id "
        "VARCHAR NOT NULL, region VARCHAR NOT NULL, producer VARCHAR, caused_by VARCHAR, "
        "entity_kind VARCHAR, entity_key VARCHAR, version VARCHAR NOT NULL, topic VARCHAR NOT "
        'NULL, partition INTEGER NOT NULL, "offset" BIGINT NOT NULL, applied_at TIMESTAMPTZ '
        "NOT NULL)",
        "CREATE TABLE IF NOT EXISTS dead_letters (consumer VARCHAR NOT NULL, topic VARCHAR NOT "
        'NULL, partition INTEGER NOT NULL, "offset" BIGINT NOT NULL, key BLOB, value BLOB, '
        "error VARCHAR NOT NULL, dead_lettered_at TIMESTAMPTZ NOT NULL)",
        "CREATE TABLE IF NOT EXISTS positions (consumer VARCHAR NOT NULL, topic VARCHAR NOT NULL, "
        "partition INTEGER NOT NULL, next_offset BIGINT NOT NULL, updated_at TIMESTAMPTZ NOT "
        "NULL, PRIMARY KEY (consumer, topic, partition))",
        # merge state (a join-semilattice, ARCHITECTURE.md): one row per entity with its
        # first upsert after the newest delete, newest upsert, newest delete and newest event
        # (merge versions: version_of), and for a vertex its dense id in the graph index
        # (given in the batch that first sees it) ...
        "CREATE TABLE IF NOT EXISTS entity_state (entity_key VARCHAR NOT NULL, kind VARCHAR NOT "
        "NULL, account_id VARCHAR NOT NULL, region VARCHAR NOT NULL, created_v HUGEINT, "
        "modified_v HUGEINT, deleted_v HUGEINT, last_v HUGEINT NOT NULL, vid INTEGER)",
        # ... one row per map item (properties, parameters, metrics, tags, ...) with the
        # version that wrote or removed it ...
        "CREATE TABLE IF NOT EXISTS map_items (entity_key VARCHAR NOT NULL, field VARCHAR NOT "
        "NULL, item VARCHAR NOT NULL, value VARCHAR, removed BOOLEAN NOT NULL, version HUGEINT "
        "NOT NULL)",
        "CREATE TABLE IF NOT EXISTS lineage_groups (arn VARCHAR NOT NULL, account_id VARCHAR NOT "
        "NULL, region VARCHAR NOT NULL, lineage_group_name VARCHAR NOT NULL, created_at "
        "TIMESTAMPTZ NOT NULL)",
        # the visible associations, maintained by the projector (behind the lineage_edges view)
        "CREATE TABLE IF NOT EXISTS visible_edges (source_arn VARCHAR NOT NULL, destination_arn "
        "VARCHAR NOT NULL, association_type VARCHAR, account_id VARCHAR NOT NULL, "
        "source_vid INTEGER NOT NULL, destination_vid INTEGER NOT NULL)",
        # which vertices and edges each batch changed (entity keys; an edge's key is "src
        # dst"), for readers that keep a graph index up to date; the newest batches only
        "CREATE TABLE IF NOT EXISTS graph_changes (batch BIGINT NOT NULL, entity_key VARCHAR "
        "NOT NULL, is_edge BOOLEAN NOT NULL)",
        # the graph index's vertices (query/graph.py): one row per live vertex, by its
        # dense id (entity_state.vid, given once per vertex entity and never reused)
        "CREATE TABLE IF NOT EXISTS graph_vertices (vid INTEGER NOT NULL, arn VARCHAR NOT "
        "NULL, lineage_type TINYINT NOT NULL, type VARCHAR, account_id VARCHAR NOT NULL, "
        "created_us BIGINT, modified_us BIGINT, arn_hash UBIGINT NOT NULL, same_key UBIGINT)",
    ]
    # ... and per kind one row per entity with each scalar field's winning (version, value)
    for spec in TABLES:
        if scalar_fields(spec):
            fields = ", ".join(f'"{f}" {FIELD_TYPE}' for f in scalar_fields(spec))
            stmts.append(
                f"CREATE TABLE IF NOT EXISTS {fields_table(spec)} (entity_key VARCHAR NOT NULL, "
                f"{fields})"
            )
    for spec in TABLES:
        cols = [f"{c} VARCHAR NOT NULL" for c in spec.key_columns]
        cols += [f"{c.name} {c.sql_type}" for c in spec.columns]
        cols += [f"{m} JSON" for m in spec.maps]
        stmts.append(
            f"CREATE TABLE IF NOT EXISTS {spec.table} ({', '.join(cols)}, {_STATE_COLUMNS})"
        )
    stmts += view_statements()
    return stmts


LINEAGE_TYPES = ("TrialComponent", "Artifact", "Context", "Action")
"""The lineage types of vertices; ``graph_vertices.lineage_type`` is the index into it."""

VERTEX_COLUMNS: dict[str, tuple[str, str, str]] = {
    "artifacts": ("Artifact", "artifact_type", "artifact_name"),
    "actions": ("Action", "action_type", "action_name"),
    "contexts": ("Context", "context_type", "context_name"),
    "experiments": ("Context", "'Experiment'", "experiment_name"),
    "trial_components": (
        "TrialComponent",
        "regexp_replace(source_type, '^SageMaker', '')",
        "trial_component_name",
    ),
}
"""Per vertex table: its lineage type and the SQL of its vertex type and name (one home for
the ``lineage_vertices`` view and the graph index's ``graph_vertices``)."""


def graph_vertices_select(table: str, rows: str, state: str) -> str:
    """SELECT of ``graph_vertices`` rows for the live rows in ``rows`` (rows of ``table``),
    with their ids from ``state`` (rows of ``entity_state``)."""
    lineage_type, type_sql, _ = VERTEX_COLUMNS[table]
    same_key = (
        "md5_number_lower(split_part(r.arn, '/', 2))" if lineage_type == "Artifact" else "NULL"
    )
    return (
        f"SELECT s.vid, r.arn, {LINEAGE_TYPES.index(lineage_type)}, {type_sql}, r.account_id, "
        "epoch_us(r.created_at), epoch_us(r.modified_at), md5_number_lower(r.arn), "
        f"{same_key} FROM {rows} r JOIN {state} s ON s.entity_key = r.arn WHERE r.live"
    )


OPENLINEAGE_VIEW = (
    "CREATE OR REPLACE VIEW openlineage_events AS SELECT event_id, event_kind, event_type, "
    "event_time, run_id, job_namespace, job_name, dataset_namespace, dataset_name, producer, "
    "schema_url, json_extract(event, '$.run.facets') AS run_facets, json_extract(event, "
    "'$.job.facets') AS job_facets, json_extract(event, '$.inputs') AS inputs, "
    "json_extract(event, '$.outputs') AS outputs, json_extract(event, '$.dataset.facets') AS "
    "dataset_facets, event, account_id, region "
    "FROM openlineage_event_rows WHERE live"
)
"""One row per OpenLineage event, its facets and datasets as JSON (taken out of the event when
queried). A view of one table: an account's view of the projection makes it too."""


def view_statements() -> list[str]:
    vertices = " UNION ALL ".join(
        f"SELECT arn, '{lineage_type}'{' AS lineage_type' if i == 0 else ''}, "
        f"{type_sql}{' AS type' if i == 0 else ''}, {name}{' AS name' if i == 0 else ''}, "
        f"account_id, created_at, modified_at FROM {table} WHERE live"
        for i, (table, (lineage_type, type_sql, name)) in enumerate(VERTEX_COLUMNS.items())
    )
    return [
        f"CREATE OR REPLACE VIEW lineage_vertices AS {vertices}",
        "CREATE OR REPLACE VIEW lineage_edges AS SELECT source_arn, destination_arn, "
        "association_type, account_id FROM visible_edges",
        OPENLINEAGE_VIEW,
        _walk_macro("lineage_descendants", "source_arn", "destination_arn"),
        _walk_macro("lineage_ancestors", "destination_arn", "source_arn"),
    ]


def _walk_macro(name: str, near: str, far: str) -> str:
    """A table macro walking live edges from ``start_arn`` up to ``max_depth`` associations:
    one row per vertex reached (not the start) with the least depth it is reached at."""
    return (
        f"CREATE OR REPLACE MACRO {name}(start_arn, max_depth := 10) AS TABLE "
        "WITH RECURSIVE walk(arn, depth) AS ("
        "SELECT CAST(start_arn AS VARCHAR), 0 UNION "
        f"SELECT e.{far}, w.depth + 1 FROM walk w JOIN lineage_edges e ON e.{near} = w.arn "
        "WHERE w.depth < max_depth) "
        "SELECT w.arn, min(w.depth) AS depth, any_value(v.lineage_type) AS lineage_type, "
        "any_value(v.type) AS type FROM walk w JOIN lineage_vertices v ON v.arn = w.arn "
        "WHERE w.arn <> start_arn GROUP BY w.arn ORDER BY depth, w.arn"
    )


def visible_edges_select(affected: str, state_keys: str, sources: str) -> str:
    """The visible associations among those keyed in table ``affected`` (entity_key): live,
    both ends live vertices, and written after the newest delete of either end.
    ``state_keys``: a filter on ``entity_key`` holding the keys of those associations and of
    their ends; ``sources``: a filter on ``source_arn`` holding their sources."""
    kinds = ", ".join(f"'{k}'" for k in VERTEX_KINDS)
    # keys are split instead of joined: concatenating both ARNs of every association row
    # (a full scan) made this the costliest statement of a small batch
    # (and entity_state is read once, for the association and both ends)
    return (
        "WITH f AS MATERIALIZED (SELECT DISTINCT entity_key, split_part(entity_key, ' ', 1) "
        f"AS src, split_part(entity_key, ' ', 2) AS dst FROM {affected}), "
        "st AS MATERIALIZED (SELECT entity_key, kind, modified_v, deleted_v, vid FROM entity_state "
        f"WHERE {state_keys}) "
        "SELECT a.source_arn, a.destination_arn, a.association_type, a.account_id, s.vid, "
        f"d.vid FROM f JOIN (SELECT * FROM associations WHERE {sources}) a "
        "ON a.source_arn = f.src AND a.destination_arn = f.dst "
        "JOIN st e ON e.entity_key = f.entity_key "
        f"JOIN st s ON s.entity_key = f.src AND s.kind IN ({kinds}) "
        f"JOIN st d ON d.entity_key = f.dst AND d.kind IN ({kinds}) "
        f"WHERE {live('e')} AND {live('s')} AND {live('d')} "
        f"AND e.modified_v > coalesce(s.deleted_v, {NO_VERSION}) "
        f"AND e.modified_v > coalesce(d.deleted_v, {NO_VERSION})"
    )


def maps_select(spec: TableSpec, state: str, items: str) -> str:
    """SELECT of one row per entity of ``spec.kind`` in table ``state`` (rows of
    ``entity_state``) with each of its maps as JSON text: the items of table ``items`` (rows
    of ``map_items``) newer than the entity's newest delete and not removed, by key."""
    cols = [
        f"'{{' || string_agg(to_json(i.item) || ':' || i.value, ',' ORDER BY i.item) "
        f"FILTER (WHERE i.field = '{m}' AND NOT i.removed) || '}}' AS \"{m}\""
        for m in spec.maps
    ]
    return (
        f"SELECT s.entity_key, {', '.join(cols)} FROM {state} s JOIN {items} i "
        f"ON i.entity_key = s.entity_key AND i.version > coalesce(s.deleted_v, {NO_VERSION}) "
        f"WHERE s.kind = '{spec.kind}' GROUP BY s.entity_key"
    )


def pivot_select(spec: TableSpec, state: str, fields: str | None, maps: str | None) -> str:
    """SELECT that rebuilds ``spec.table``'s rows for the entities of its kind in table
    ``state`` (rows of ``entity_state``: those the batch touched) from their state, their
    scalar fields in table ``fields`` (rows of the kind's fields table) and their maps in
    table ``maps`` (:func:`maps_select`); a field or map item shows when it is newer than
    the entity's newest delete."""
    if len(spec.key_columns) == 1:
        keys = [f"s.entity_key AS {spec.key_columns[0]}"]
    else:
        keys = [
            f"split_part(s.entity_key, ' ', {i + 1}) AS {c}" for i, c in enumerate(spec.key_columns)
        ]
    cols = []
    for c in spec.columns:
        field = f'f."{c.field}"'
        raw = f"CASE WHEN {field}.v > coalesce(s.deleted_v, {NO_VERSION}) THEN {field}.x END"
        if c.sql_type == "JSON":
            expr = f"CAST(json_extract({raw}, '{c.path}') AS JSON)"
            if c.path == "$":
                expr = f"CAST({raw} AS JSON)"
        elif c.sql_type == "VARCHAR":
            expr = f"json_extract_string({raw}, '{c.path}')"
        else:
            expr = f"CAST(json_extract_string({raw}, '{c.path}') AS {c.sql_type})"
        cols.append(f"{expr} AS {c.name}")
    for m in spec.maps:
        cols.append(f"CAST(coalesce(m.\"{m}\", '{{}}') AS JSON) AS {m}")
    state_cols = [
        "s.account_id",
        "s.region",
        f"{live('s')} AS live",
        f"{time_of('s.created_v')} AS created_at",
        f"{time_of('s.modified_v')} AS modified_at",
        f"{time_of('s.deleted_v')} AS deleted_at",
    ]
    joins = ""
    if fields is not None:
        joins += f" LEFT JOIN {fields} f ON f.entity_key = s.entity_key"
    if maps is not None:
        joins += f" LEFT JOIN {maps} m ON m.entity_key = s.entity_key"
    return (
        f"SELECT {', '.join(keys + cols + state_cols)} FROM {state} s{joins} "
        f"WHERE s.kind = '{spec.kind}'"
    )
