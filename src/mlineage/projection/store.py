"""The DuckDB projection: schema, set-based batch writes, positions, checksum.

One batch = one DuckDB transaction holding the batch's rows and the positions it consumed,
so a crash leaves either all of a batch or none of it, and the projector resumes from the
positions stored next to the rows (never from anything outside the file).

Merge (ARCHITECTURE.md, "Merge semantics"): the state is a join-semilattice, stored as

- ``entity_state``: one row per entity with its newest upsert, newest delete, newest event
  and the first upsert after the newest delete;
- ``fields_<kind>``: one row per entity of a kind, each scalar field as the (version, value)
  that won;
- ``map_items``: one row per (entity, map, item), value or removal, with its version;

versions being one HUGEINT each (:func:`~mlineage.projection.schema.version_of`). A batch:

1. new events: the batch's events whose ``event_id`` is not yet in ``events`` (one per id);
2. their marks and facts, with merge versions;
3. map items: the greatest version per (entity, map, item) replaces the stored one;
4. scalar fields: per kind, each field of the touched entities is the greater of the stored
   and the batch's (version, value);
5. ``entity_state``: newest upsert and delete, and the first upsert after the newest delete
   (recomputed from ``events`` when a newer delete arrives);
6. the fixed tables are rebuilt for the touched keys only, from state, fields and items
   newer than the entity's newest delete; ``visible_edges`` for the associations touched and
   those at an end whose visibility can have changed (new, deleted, or back after a delete).

The state tables of the touched kinds are read once per batch: their cost grows with the
projection and is paid by every batch, which bounds the latency of small ones.

Every step is "greatest version wins" over a set, so any order of the same records, with any
record applied twice, gives the same tables.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mlineage import failpoints, settings
from mlineage.arns import LINEAGE_GROUP_NAME
from mlineage.errors import ProjectionBusyError, ProjectionError
from mlineage.log.base import Positions
from mlineage.projection import schema
from mlineage.projection.project import (
    DEAD_COLUMNS,
    EVENT_COLUMNS,
    FACT_COLUMNS,
    MARK_COLUMNS,
    Changes,
)

MEMORY_LIMIT = "512MB"
"""DuckDB's memory limit in a process that writes the projection (``MLINEAGE_DUCKDB_MEMORY``
overrides it). DuckDB's own default, 80% of the machine, let its buffer pool grow with the
projection; past the limit it spills to ``<projection>.tmp`` instead."""

GRAPH_CHANGES_LIMIT = 100_000
"""Changed vertices and edges :meth:`DuckDBStore.take_graph_changes` keeps at most; past it
the reader rebuilds its index instead (a replay or a long catch-up changes everything)."""


class GraphChanges:
    """The vertices (ARNs) and edges ((source, destination) ARNs) whose state in the live
    lineage graph may have changed since the last :meth:`DuckDBStore.take_graph_changes`."""

    def __init__(self) -> None:
        self.vertices: set[str] = set()
        self.edges: set[tuple[str, str]] = set()
        self.overflowed = False

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        for key, is_edge in rows:
            if is_edge:
                src, _, dst = key.partition(" ")
                self.edges.add((src, dst))
            else:
                self.vertices.add(key)
        if len(self.vertices) + len(self.edges) > GRAPH_CHANGES_LIMIT:
            self.overflowed = True
            self.vertices.clear()
            self.edges.clear()


_ARROW_TYPES: dict[str, pa.DataType] = {
    "schema_version": pa.int32(),
    "partition": pa.int32(),
    "offset": pa.int64(),
    "removed": pa.bool_(),
    "key": pa.binary(),
    "value": pa.string(),
}

# Columns left out of the checksum: where a record was read and when it was written.
_CHECKSUM_EXCLUDE: dict[str, tuple[str, ...]] = {
    "events": ("topic", "partition", "offset", "applied_at"),
    "dead_letters": ("dead_lettered_at",),
    # the graph index's ids depend on how the log was cut into batches, not on what it holds
    "entity_state": ("vid",),
    "visible_edges": ("source_vid", "destination_vid"),
}

_VERTEX_KINDS = ", ".join(f"'{k}'" for k in schema.VERTEX_KINDS)


def _arrow(columns: dict[str, list[Any]], names: tuple[str, ...]) -> pa.Table:
    arrays = []
    for name in names:
        typ = _ARROW_TYPES.get(name, pa.string())
        if name == "value" and names is DEAD_COLUMNS:
            typ = pa.binary()
        arrays.append(pa.array(columns[name], type=typ))
    return pa.Table.from_arrays(arrays, names=list(names))


@dataclass(frozen=True)
class Batch:
    """A batch's columns as Arrow tables, ready for :meth:`DuckDBStore.apply`. The projector
    builds it on its prefetch thread, so the Python lists of :class:`Changes` are gone before
    the batch waits its turn (they were most of a waiting batch's memory)."""

    events: pa.Table
    marks: pa.Table
    facts: pa.Table
    dead: pa.Table

    @classmethod
    def of(cls, changes: Changes) -> Batch:
        return cls(
            _arrow(changes.events, EVENT_COLUMNS),
            _arrow(changes.marks, MARK_COLUMNS),
            _arrow(changes.facts, FACT_COLUMNS),
            _arrow(changes.dead, DEAD_COLUMNS),
        )


def fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> tuple[Any, ...] | None:
    """First row of a query. DuckDB 2 keeps a result that was not read to the end open and
    refuses other work on the connection, so always read the whole result."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def held_elsewhere(exc: BaseException) -> bool:
    """Whether a DuckDB error says another process holds the file (DuckDB's only sign of it
    is the IO error's text, ``Could not set lock on file ...``): the one place that reads it."""
    return isinstance(exc, duckdb.IOException) and "could not set lock" in str(exc).lower()


def open_error(path: Path, exc: Exception) -> ProjectionError:
    text = str(exc)
    if held_elsewhere(exc):
        return ProjectionBusyError(
            f"the projection {path} is held by another process (a running "
            "`mlineage project --follow`, `mlineage replay` or another command): stop it or "
            "wait for it to finish, then retry"
        )
    return ProjectionError(f"cannot open the projection {path}: {text}")


EDGE_KEY = "source_arn || ' ' || destination_arn"
"""SQL of an association's key from its columns."""

KEYED_LIMIT = 1000
"""Keys up to which a batch finds its stored rows by literal IN-lists (a filter of
constants, which DuckDB pushes into the scan), above which it joins with the tables.
ART indexes on those keys were tried and dropped: at 20,000 jobs the file was 227 MiB with
them and 80 without, replay 11,100 against 19,100 events/s, and small batches no faster."""


def _literal(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


class KeySet:
    """The keys a batch reads by: a literal IN-list when there are at most
    :data:`KEYED_LIMIT` (a filter pushed into the scan), else the query itself."""

    def __init__(self, con: duckdb.DuckDBPyConnection, select: str) -> None:
        self.select = select
        rows = con.execute(f"SELECT * FROM ({select}) LIMIT {KEYED_LIMIT + 1}").fetchall()
        self.keys: list[Any] | None = [r[0] for r in rows] if len(rows) <= KEYED_LIMIT else None

    def __bool__(self) -> bool:
        return self.keys is None or bool(self.keys)

    def match(self, column: str) -> str:
        """SQL: ``column`` is one of the keys."""
        if self.keys is None:
            return f"{column} IN ({self.select})"
        if not self.keys:
            return "false"
        return f"{column} IN ({', '.join(_literal(k) for k in self.keys)})"


GRAPH_LOG_TRIM_EVERY = 64
"""Batches between trims of ``graph_changes`` (a reader further behind than the log reaches
builds its index again)."""


def snapshot_path(db_path: Path) -> Path:
    """Where a follower keeps its read snapshot of ``db_path`` fresh."""
    return Path(f"{db_path}.snapshot")


class DuckDBStore:
    """The projection file. Exactly one process may hold it for writing."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if not read_only and str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise open_error(self.path, exc) from exc
        self.con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            # Batches are large: with DuckDB's default 16 MiB threshold every commit also
            # checkpointed (rewriting row groups), ~4x the cost of the commit itself. The WAL
            # is checkpointed at this size, on close, and before each snapshot instead.
            self.con.execute("SET checkpoint_threshold = '1GB'")
            limit = settings.duckdb_memory() or MEMORY_LIMIT
            try:
                self.con.execute("SET memory_limit = ?", [limit])
            except duckdb.Error as exc:
                self.con.close()
                raise ProjectionError(
                    f"MLINEAGE_DUCKDB_MEMORY={limit!r} is not a memory size DuckDB accepts "
                    "(for example 512MB or 2GB)"
                ) from exc
            self._migrate()
        self._graph_changes: GraphChanges | None = None
        self._batch_changes: list[tuple[Any, ...]] = []
        self._changes_lock = threading.Lock()  # the writer adds, a reader thread takes
        self._max_vid: int | None = None  # the greatest graph id given (None: ask the file)

    def track_graph_changes(self) -> None:
        """From now on, note which vertices and edges each batch changes (for a reader in
        this process that keeps a :class:`~mlineage.query.graph.LineageGraph` up to date)."""
        with self._changes_lock:
            if self._graph_changes is None:
                self._graph_changes = GraphChanges()

    def take_graph_changes(self) -> GraphChanges | None:
        """What changed since the last call (None: not tracked; ``overflowed``: too much to
        list, rebuild instead)."""
        with self._changes_lock:
            taken = self._graph_changes
            if taken is not None:
                self._graph_changes = GraphChanges()
            return taken

    def _migrate(self) -> None:
        row = None
        with contextlib.suppress(duckdb.CatalogException):
            row = fetch_one(
                self.con, "SELECT value FROM mlineage_meta WHERE key = 'schema_version'"
            )
        if row is not None and int(row[0]) != schema.SCHEMA_VERSION:
            raise ProjectionError(
                f"{self.path} has projection schema {row[0]}, this mlineage writes "
                f"{schema.SCHEMA_VERSION}: rebuild it from the log with `mlineage replay`"
            )
        self.con.execute("BEGIN")
        for stmt in schema.create_statements():
            self.con.execute(stmt)
        self.con.execute(
            "INSERT OR REPLACE INTO mlineage_meta VALUES ('schema_version', ?)",
            [str(schema.SCHEMA_VERSION)],
        )
        # which projection this is (a replay makes a new one): readers that follow its
        # graph_changes must start over on another
        self.con.execute(
            "INSERT INTO mlineage_meta SELECT 'projection_id', CAST(uuid() AS VARCHAR) "
            "WHERE NOT EXISTS (SELECT 1 FROM mlineage_meta WHERE key = 'projection_id')"
        )
        self.con.execute("COMMIT")

    # -- positions -----------------------------------------------------------------------------

    def positions(self, consumer: str) -> Positions:
        rows = self.con.execute(
            "SELECT topic, partition, next_offset FROM positions WHERE consumer = ?", [consumer]
        ).fetchall()
        return {(t, int(p)): int(o) for t, p, o in rows}

    # -- writes --------------------------------------------------------------------------------

    def apply(
        self, changes: Changes | Batch, positions: Mapping[tuple[str, int], int], consumer: str
    ) -> None:
        """Write one batch and the positions it consumed, in one transaction."""
        con = self.con
        batch = changes if isinstance(changes, Batch) else Batch.of(changes)
        con.register("b_events", batch.events)
        con.register("b_marks", batch.marks)
        con.register("b_facts", batch.facts)
        con.register("b_dead", batch.dead)
        con.register(
            "b_positions",
            pa.table(
                {
                    "topic": pa.array([t for t, _ in positions], pa.string()),
                    "partition": pa.array([p for _, p in positions], pa.int32()),
                    "next_offset": pa.array(list(positions.values()), pa.int64()),
                }
            ),
        )
        try:
            con.execute("BEGIN")
            max_vid = self._merge(consumer)
            failpoints.hit("projector.before_commit")
            con.execute("COMMIT")
            self._max_vid = max_vid
        except BaseException:
            con.execute("ROLLBACK")
            self._max_vid = None
            raise
        finally:
            for name in ("b_events", "b_marks", "b_facts", "b_dead", "b_positions"):
                con.unregister(name)
        with self._changes_lock:
            if self._graph_changes is not None:
                self._graph_changes.add(self._batch_changes)
        failpoints.hit("projector.after_commit")

    def _merge(self, consumer: str) -> int:
        """Merge the batch (tables ``b_*``); returns the greatest graph id given."""
        sql = self.con.execute
        version_of = schema.version_of
        no_v = schema.NO_VERSION
        # 1. new events (first of each id in the batch, and not applied before); a batch
        #    rarely repeats an id, and the window that picks the first costs a sort
        dups = fetch_one(self.con, "SELECT count(*) - count(DISTINCT event_id) FROM b_events")
        batch = (
            "b_events"
            if dups is None or dups[0] == 0
            else (
                "(SELECT * FROM b_events QUALIFY row_number() OVER (PARTITION BY event_id "
                'ORDER BY topic, partition, "offset") = 1)'
            )
        )
        ids = KeySet(self.con, "SELECT event_id FROM b_events")
        sql(
            f"CREATE OR REPLACE TEMP TABLE new_events AS SELECT b.* FROM {batch} b "
            f"ANTI JOIN (SELECT event_id FROM events WHERE {ids.match('event_id')}) e "
            "ON e.event_id = b.event_id"
        )
        sql(
            "INSERT INTO events SELECT event_id, event_type, schema_version, "
            "CAST(occurred_at AS TIMESTAMPTZ), account_id, region, producer, caused_by, "
            'entity_kind, entity_key, version, topic, partition, "offset", now() FROM new_events'
        )
        # 2. the marks of new events (one per event) with their merge versions, and the
        #    entities they touch
        sql(
            "CREATE OR REPLACE TEMP TABLE new_marks AS SELECT m.event_id, m.entity_key, m.kind, "
            f"m.account_id, m.region, m.op, {version_of('m.version')} AS version "
            "FROM b_marks m SEMI JOIN new_events n ON n.event_id = m.event_id"
        )
        sql(
            "CREATE OR REPLACE TEMP TABLE touched AS SELECT entity_key, "
            "arg_max(kind, version) AS kind, arg_max(account_id, version) AS account_id, "
            "arg_max(region, version) AS region, max(version) AS last_v, "
            "max(version) FILTER (WHERE op = 'upsert') AS up_max, "
            "max(version) FILTER (WHERE op = 'delete') AS del_max "
            "FROM new_marks GROUP BY entity_key"
        )
        # 3. facts of new events, by the kind of the event that wrote them
        sql(
            "CREATE OR REPLACE TEMP TABLE new_facts AS SELECT f.entity_key, m.kind, f.field, "
            "f.item, f.value, f.removed, m.version FROM b_facts f "
            "JOIN new_marks m ON m.event_id = f.event_id"
        )
        kinds = {row[0] for row in sql("SELECT DISTINCT kind FROM touched").fetchall()}
        keys = KeySet(self.con, "SELECT entity_key FROM touched")
        # 4. map items: greatest version per (entity, field, item) wins (ties within one
        #    event: a removal wins, then a null, then the greatest value; one max over a
        #    struct, a third cheaper than a row_number window)
        maps = sorted({m for spec in schema.TABLES if spec.kind in kinds for m in spec.maps})
        if maps:
            sql(
                "CREATE OR REPLACE TEMP TABLE new_items AS SELECT entity_key, field, item, "
                "w.x AS value, w.r AS removed, w.v AS version FROM (SELECT entity_key, field, "
                "item, max({'v': version, 'r': removed, 'n': value IS NULL, 'x': value}) AS w "
                f"FROM new_facts WHERE field IN ({', '.join(repr(m) for m in maps)}) "
                "GROUP BY ALL)"
            )
            # the stored items of the touched entities (one scan of map_items)
            sql(
                "CREATE OR REPLACE TEMP TABLE old_items AS SELECT rowid AS rid, * "
                f"FROM map_items WHERE {keys.match('entity_key')}"
            )
            sql(
                "CREATE OR REPLACE TEMP TABLE replaced AS SELECT o.rid FROM old_items o "
                "JOIN new_items n ON o.entity_key = n.entity_key AND o.field = n.field "
                "AND o.item = n.item WHERE {'v': o.version, 'r': o.removed, 'n': o.value IS "
                "NULL, 'x': o.value} < {'v': n.version, 'r': n.removed, 'n': n.value IS NULL, "
                "'x': n.value}"
            )
            sql("DELETE FROM map_items WHERE rowid IN (SELECT rid FROM replaced)")
            sql(
                "CREATE OR REPLACE TEMP TABLE kept_items AS SELECT o.* EXCLUDE (rid) "
                "FROM old_items o ANTI JOIN replaced r ON r.rid = o.rid"
            )
            sql(
                "CREATE OR REPLACE TEMP TABLE added_items AS SELECT n.* FROM new_items n "
                "ANTI JOIN kept_items k ON k.entity_key = n.entity_key AND k.field = n.field "
                "AND k.item = n.item"
            )
            sql("INSERT INTO map_items SELECT * FROM added_items")
            # the stored items of the touched entities, as they are now
            sql(
                "CREATE OR REPLACE TEMP TABLE touched_items AS SELECT * FROM kept_items "
                "UNION ALL SELECT * FROM added_items"
            )
        # 5. scalar fields, per kind: each field's greater (version, value) wins
        for spec in schema.TABLES:
            names = schema.scalar_fields(spec)
            if spec.kind not in kinds or not names:
                continue
            table = schema.fields_table(spec)
            new = ", ".join(
                f"max({{'v': version, 'x': value}}) FILTER (WHERE field = '{f}') AS \"{f}\""
                for f in names
            )
            sql(
                f"CREATE OR REPLACE TEMP TABLE new_{table} AS SELECT entity_key, {new} "
                f"FROM new_facts WHERE kind = '{spec.kind}' AND item = '' "
                f"AND field IN ({', '.join(repr(f) for f in names)}) GROUP BY entity_key"
            )
            sql(
                f"CREATE OR REPLACE TEMP TABLE old_{table} AS SELECT f.* FROM (SELECT rowid "
                f"AS rid, * FROM {table} WHERE {keys.match('entity_key')}) f SEMI JOIN touched t "
                f"ON t.entity_key = f.entity_key AND t.kind = '{spec.kind}'"
            )
            merged = ", ".join(f'greatest(n."{f}", o."{f}") AS "{f}"' for f in names)
            sql(
                f"CREATE OR REPLACE TEMP TABLE cur_{table} AS SELECT n.entity_key, {merged}, "
                f"o.rid FROM new_{table} n LEFT JOIN old_{table} o "
                "ON o.entity_key = n.entity_key"
            )
            sql(f"DELETE FROM {table} WHERE rowid IN (SELECT rid FROM cur_{table})")
            sql(f"INSERT INTO {table} SELECT * EXCLUDE (rid) FROM cur_{table}")
            # the fields of every touched entity of the kind, as they are now
            sql(
                f"INSERT INTO cur_{table} SELECT o.* EXCLUDE (rid), o.rid FROM old_{table} o "
                f"ANTI JOIN new_{table} n ON n.entity_key = o.entity_key"
            )
        # 6. entity state
        sql(
            "CREATE OR REPLACE TEMP TABLE merged AS SELECT t.entity_key, "
            "CASE WHEN s.last_v IS NULL OR t.last_v > s.last_v THEN t.kind ELSE s.kind END "
            "AS kind, "
            "CASE WHEN s.last_v IS NULL OR t.last_v > s.last_v THEN t.account_id "
            "ELSE s.account_id END AS account_id, "
            "CASE WHEN s.last_v IS NULL OR t.last_v > s.last_v THEN t.region ELSE s.region END "
            "AS region, "
            "s.created_v AS old_created, s.deleted_v AS old_deleted, "
            "greatest(s.modified_v, t.up_max) AS modified_v, "
            "greatest(s.deleted_v, t.del_max) AS deleted_v, "
            "greatest(s.last_v, t.last_v) AS last_v, "
            # can the visibility of edges at this entity change? (it is new, a delete
            # arrived, or it came back to life); a mere update to a live entity cannot
            "s.entity_key IS NULL OR greatest(s.deleted_v, t.del_max) IS DISTINCT FROM "
            "s.deleted_v OR "
            + schema.is_live("greatest(s.modified_v, t.up_max)", "greatest(s.deleted_v, t.del_max)")
            + f" <> {schema.live('s')} AS ends_changed, "
            "s.rid, s.vid AS old_vid FROM touched t LEFT JOIN (SELECT rowid AS rid, * FROM "
            f"entity_state WHERE {keys.match('entity_key')}) s ON s.entity_key = t.entity_key"
        )
        # graph ids for vertices seen for the first time: dense, after every id given
        # (in key order within the batch), never reused (query/graph.py)
        if self._max_vid is None:
            row = fetch_one(self.con, "SELECT coalesce(max(vid), -1) FROM entity_state")
            self._max_vid = int(row[0]) if row else -1
        sql(
            f"CREATE OR REPLACE TEMP TABLE new_vids AS SELECT entity_key, CAST({self._max_vid} + "
            "row_number() OVER (ORDER BY entity_key) AS INTEGER) AS vid FROM merged "
            f"WHERE rid IS NULL AND kind IN ({_VERTEX_KINDS})"
        )
        row = fetch_one(self.con, "SELECT max(vid) FROM new_vids")
        max_vid = self._max_vid if row is None or row[0] is None else int(row[0])
        # first upsert after the newest delete: incremental unless a newer delete arrived,
        # then recomputed from the events of that entity
        sql(
            "CREATE OR REPLACE TEMP TABLE batch_created AS SELECT m.entity_key, "
            "min(n.version) AS v FROM merged m JOIN new_marks n ON n.entity_key = m.entity_key "
            f"AND n.op = 'upsert' AND n.version > coalesce(m.deleted_v, {no_v}) "
            "GROUP BY m.entity_key"
        )
        redeleted = KeySet(
            self.con, "SELECT entity_key FROM merged WHERE deleted_v IS DISTINCT FROM old_deleted"
        )
        sql(
            f"CREATE OR REPLACE TEMP TABLE recomputed AS SELECT m.entity_key, "
            f"min({version_of('e.version')}) AS v FROM merged m JOIN (SELECT entity_key, "
            f"event_type, version FROM events WHERE {redeleted.match('entity_key')}) e "
            "ON e.entity_key = m.entity_key AND e.event_type <> 'EntityDeleted' "
            f"AND {version_of('e.version')} > m.deleted_v "
            "WHERE m.deleted_v IS DISTINCT FROM m.old_deleted GROUP BY m.entity_key"
        )
        sql(
            "CREATE OR REPLACE TEMP TABLE touched_state AS SELECT m.entity_key, m.kind, "
            "m.account_id, m.region, CASE WHEN m.deleted_v IS DISTINCT FROM m.old_deleted "
            "THEN r.v ELSE least(m.old_created, b.v) END AS created_v, m.modified_v, "
            "m.deleted_v, m.last_v, coalesce(m.old_vid, v.vid) AS vid "
            "FROM merged m LEFT JOIN batch_created b ON b.entity_key = m.entity_key "
            "LEFT JOIN recomputed r ON r.entity_key = m.entity_key "
            "LEFT JOIN new_vids v ON v.entity_key = m.entity_key"
        )
        sql("DELETE FROM entity_state WHERE rowid IN (SELECT rid FROM merged)")
        sql("INSERT INTO entity_state SELECT * FROM touched_state")
        # 7. rebuild the touched rows of the fixed tables
        # only the tables of the kinds touched (a key's kind never changes: it is in the key)
        if kinds & set(schema.VERTEX_KINDS):
            vids = KeySet(self.con, "SELECT vid FROM touched_state WHERE vid IS NOT NULL")
            sql(f"DELETE FROM graph_vertices WHERE {vids.match('vid')}")
        graph_rows: list[str] = []
        for spec in schema.TABLES:
            if spec.kind not in kinds:
                continue
            if len(spec.key_columns) == 1:
                sql(f"DELETE FROM {spec.table} WHERE {keys.match(spec.key_columns[0])}")
            else:
                a, b = spec.key_columns
                firsts = KeySet(
                    self.con,
                    "SELECT DISTINCT split_part(entity_key, ' ', 1) FROM touched "
                    f"WHERE kind = '{spec.kind}'",
                )
                pairs = KeySet(
                    self.con, f"SELECT entity_key FROM touched WHERE kind = '{spec.kind}'"
                )
                pair = f"{a} || ' ' || {b}"
                sql(f"DELETE FROM {spec.table} WHERE {firsts.match(a)} AND {pairs.match(pair)}")
            fields = f"cur_{schema.fields_table(spec)}" if schema.scalar_fields(spec) else None
            spec_maps = None
            if spec.maps:
                spec_maps = f"maps_{spec.kind}"
                sql(
                    f"CREATE OR REPLACE TEMP TABLE {spec_maps} AS "
                    + schema.maps_select(spec, "touched_state", "touched_items")
                )
            select = schema.pivot_select(spec, "touched_state", fields, spec_maps)
            if spec.table not in schema.VERTEX_COLUMNS:
                sql(f"INSERT INTO {spec.table} {select}")
                continue
            # a vertex's row goes to its table and, when live, to the graph index (below)
            pivoted = f"pivoted_{spec.kind}"
            sql(f"CREATE OR REPLACE TEMP TABLE {pivoted} AS {select}")
            sql(f"INSERT INTO {spec.table} SELECT * FROM {pivoted}")
            graph_rows.append(schema.graph_vertices_select(spec.table, pivoted, "touched_state"))
        if graph_rows:
            sql("INSERT INTO graph_vertices " + " UNION ALL ".join(graph_rows))
        # visible edges: recompute the associations touched, and those at an end whose
        # liveness or newest delete changed (updating a shared artifact, such as an image
        # every job uses, must not recompute all of its edges)
        sql(
            "CREATE OR REPLACE TEMP TABLE ends_changed AS SELECT entity_key FROM merged "
            "WHERE ends_changed AND kind <> 'association'"
        )
        ends = KeySet(self.con, "SELECT entity_key FROM ends_changed")
        sql(
            "CREATE OR REPLACE TEMP TABLE affected_edges AS "
            "SELECT entity_key FROM touched WHERE kind = 'association' UNION "
            "SELECT source_arn || ' ' || destination_arn FROM associations "
            f"WHERE {ends.match('source_arn')} UNION "
            "SELECT source_arn || ' ' || destination_arn FROM associations "
            f"WHERE {ends.match('destination_arn')}"
        )
        sources = KeySet(
            self.con, "SELECT DISTINCT split_part(entity_key, ' ', 1) FROM affected_edges"
        )
        edges = KeySet(self.con, "SELECT entity_key FROM affected_edges")
        sql(
            f"DELETE FROM visible_edges WHERE {sources.match('source_arn')} "
            f"AND {edges.match(EDGE_KEY)}"
        )
        ends_too = KeySet(
            self.con,
            "SELECT entity_key FROM affected_edges UNION SELECT split_part(entity_key, ' ', 1) "
            "FROM affected_edges UNION SELECT split_part(entity_key, ' ', 2) FROM affected_edges",
        )
        sql(
            "INSERT INTO visible_edges "
            + schema.visible_edges_select(
                "affected_edges", ends_too.match("entity_key"), sources.match("source_arn")
            )
        )
        changed = (
            f"SELECT entity_key, false FROM touched WHERE kind IN ({_VERTEX_KINDS}) "
            "UNION ALL SELECT entity_key, true FROM affected_edges"
        )
        if self._graph_changes is not None:
            self._batch_changes = sql(changed).fetchall()
        self._log_graph_changes(changed)
        # lineage groups: one per (account, region) seen, created at its first event
        sql(
            "CREATE OR REPLACE TEMP TABLE new_groups AS SELECT account_id, region, "
            "min(CAST(occurred_at AS TIMESTAMPTZ)) AS created_at FROM new_events GROUP BY ALL"
        )
        sql(
            "DELETE FROM lineage_groups g USING new_groups n WHERE g.account_id = n.account_id "
            "AND g.region = n.region AND g.created_at > n.created_at"
        )
        sql(
            "INSERT INTO lineage_groups SELECT 'arn:aws:sagemaker:' || n.region || ':' || "
            f"n.account_id || ':lineage-group/{LINEAGE_GROUP_NAME}', n.account_id, n.region, "
            f"'{LINEAGE_GROUP_NAME}', n.created_at FROM new_groups n ANTI JOIN lineage_groups g "
            "ON g.account_id = n.account_id AND g.region = n.region"
        )
        # dead letters and positions
        sql(
            'INSERT INTO dead_letters SELECT ?, topic, partition, "offset", key, value, error, '
            "now() FROM b_dead",
            [consumer],
        )
        sql(
            "INSERT INTO positions SELECT ?, topic, partition, next_offset, now() "
            "FROM b_positions ON CONFLICT (consumer, topic, partition) DO UPDATE SET "
            "next_offset = excluded.next_offset, updated_at = excluded.updated_at",
            [consumer],
        )
        return max_vid

    def _log_graph_changes(self, changed: str) -> None:
        """Note in ``graph_changes`` what this batch changed (rows of SELECT ``changed``), as
        batch number one past the newest; every :data:`GRAPH_LOG_TRIM_EVERY` batches, keep
        only the newest batches holding about :data:`GRAPH_CHANGES_LIMIT` rows."""
        row = fetch_one(self.con, "SELECT coalesce(max(batch), 0) + 1 FROM graph_changes")
        batch = int(row[0]) if row else 1
        self.con.execute(f"INSERT INTO graph_changes SELECT ?, * FROM ({changed})", [batch])
        if batch % GRAPH_LOG_TRIM_EVERY == 0:
            self.con.execute(
                "DELETE FROM graph_changes WHERE batch < (SELECT min(batch) FROM (SELECT "
                "batch FROM graph_changes ORDER BY batch DESC LIMIT ?))",
                [GRAPH_CHANGES_LIMIT],
            )

    # -- reads ---------------------------------------------------------------------------------

    def checksum(self) -> str:
        """Row counts plus a digest of every projected table's rows in canonical form
        (DuckDB's text form of the row; positions and wall-clock columns left out)."""
        tables = [
            "events",
            "dead_letters",
            "map_items",
            "entity_state",
            "lineage_groups",
            "visible_edges",
        ]
        tables += [
            schema.fields_table(spec) for spec in schema.TABLES if schema.scalar_fields(spec)
        ]
        tables += [spec.table for spec in schema.TABLES]
        digest = hashlib.sha256()
        for table in sorted(tables):
            exclude = _CHECKSUM_EXCLUDE.get(table)
            select = (
                f"SELECT * EXCLUDE ({', '.join(chr(34) + c + chr(34) for c in exclude)})"
                if exclude
                else "SELECT *"
            )
            # a multiset hash: the sums of every row's md5 (both halves), streamed in constant
            # memory and independent of row order; a lost or doubled row changes it
            count, low, high = fetch_one(
                self.con,
                f"SELECT count(*), coalesce(sum(md5_number_lower(CAST(r AS VARCHAR))::HUGEINT), "
                f"0), coalesce(sum(md5_number_upper(CAST(r AS VARCHAR))::HUGEINT), 0) "
                f"FROM ({select} FROM {table}) r",
            ) or (0, 0, 0)
            digest.update(f"{table}:{count}:{low}:{high}\n".encode())
        return digest.hexdigest()

    def counts(self) -> dict[str, int]:
        out = {}
        for spec in schema.TABLES:
            row = fetch_one(self.con, f"SELECT count(*) FROM {spec.table}")
            out[spec.table] = int(row[0]) if row else 0
        for table in ("events", "dead_letters"):
            row = fetch_one(self.con, f"SELECT count(*) FROM {table}")
            out[table] = int(row[0]) if row else 0
        return out

    def checkpoint(self) -> None:
        self.con.execute("CHECKPOINT")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
