"""``LineageStore``: the read side of the projection, for Python users and the CLI.

DuckDB admits one writing process per file. While a projector follows the log
(``mlineage project --follow``) it holds the file, and keeps a *snapshot* beside it fresh
(``lineage.duckdb.snapshot``, replaced atomically at most every few seconds); a store that
cannot open the live file reads the snapshot instead, and says how old it is
(``LineageStore.source`` and ``snapshot_age``). See docs/query.md for the staleness bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from duckdb import sqltypes

from mlineage import ops
from mlineage.errors import ProjectionBusyError, ProjectionError
from mlineage.log.base import EventLog
from mlineage.projection.service import AccessLock
from mlineage.projection.store import held_elsewhere, snapshot_path
from mlineage.query import catalog, lookup, search
from mlineage.query.accounts import account_view
from mlineage.query.graph import SAVED_FORMAT
from mlineage.query.lineage import LineageFilter, LineageGraph, LineageResult, query_lineage
from mlineage.query.lookup import Found
from mlineage.query.sql import Rows, run_sql
from mlineage.settings import Settings

CATCH_UP_ROWS = 10_000
CATCH_UP_SHARE = 20
"""A reader brings an earlier state's saved index up to date when the changes since number
at most :data:`CATCH_UP_ROWS` (or one in this many of its vertices); past that it opens the
index from the projection's columns and saves it."""


def graph_cache_dir(projection: Path) -> Path:
    """Where readers of a projection (or of its snapshot) keep the saved graph index."""
    name = projection.name.removesuffix(".snapshot")
    return projection.with_name(name + ".graph")


def _being_written(path: Path) -> bool:
    """Whether ``path`` is a saved index another live process is still writing
    (``<version>.<pid>.tmp``); one left by a process that died is not."""
    parts = path.name.split(".")
    if len(parts) != 3 or parts[2] != "tmp" or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _graph_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """What the graph index of the projection depends on (None: no file to keep it beside,
    or no index kept): its applied events (every batch adds some, a replay rebuilds them
    all with new times) and schema, and the index's save format."""
    try:
        count, last = con.execute("SELECT count(*), max(applied_at) FROM events").fetchall()[0]
        meta = con.execute("SELECT key, value FROM mlineage_meta ORDER BY key").fetchall()
        where = con.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchall()
    except duckdb.Error:
        return None
    if not where or not where[0][0]:
        return None
    state = [SAVED_FORMAT, count, str(last), meta]
    return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:20]


def _connect(path: Path, memory_limit: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    return con


_WALK_ROW = duckdb.struct_type(
    {
        "arn": sqltypes.VARCHAR,
        "depth": sqltypes.INTEGER,
        "lineage_type": sqltypes.VARCHAR,
        "type": sqltypes.VARCHAR,
    }
)


_walk_functions = itertools.count()


def _walk_macros(store: LineageStore) -> str:
    """On this store's connection, ``lineage_descendants`` / ``lineage_ancestors`` walk the
    in-memory index (about a millisecond) instead of the recursive CTE kept in the file
    (tens of milliseconds whatever the depth: it joins every edge), with the same rows: TEMP
    macros, which DuckDB resolves before the file's, over a Python function. Other DuckDB
    clients of the file keep the CTE's. Returns the function's name: DuckDB keeps functions
    per database, not per connection, so each store has its own, removed on close."""

    ref = weakref.ref(store)  # the connection keeps the function: no cycle through it

    def walk(start: str, max_depth: int, forward: bool) -> list[dict[str, Any]]:
        me = ref()
        if me is None:
            raise ProjectionError("the LineageStore of this connection is gone")
        # called inside a query on store.con: an index not built yet is read on a cursor
        graph = me.loaded_graph or me._graph(me.con.cursor())
        return [
            {"arn": a, "depth": d, "lineage_type": lt, "type": t}
            for a, d, lt, t in graph.reach(start, max_depth, forward)
        ]

    con = store.con
    name = f"mlineage_walk_{next(_walk_functions)}"
    con.create_function(
        name,
        walk,
        [sqltypes.VARCHAR, sqltypes.BIGINT, sqltypes.BOOLEAN],
        duckdb.list_type(_WALK_ROW),
        side_effects=False,
    )
    for macro, forward in (("lineage_descendants", "true"), ("lineage_ancestors", "false")):
        con.execute(
            f"CREATE OR REPLACE TEMP MACRO {macro}(start_arn, max_depth := 10) AS TABLE "
            f"SELECT w.arn, w.depth, w.lineage_type, w.type FROM (SELECT unnest({name}("
            f"CAST(start_arn AS VARCHAR), max_depth, {forward})) AS w)"
        )
    return name


INTERRUPTS: tuple[type[BaseException], ...] = (KeyboardInterrupt, duckdb.InterruptException)
"""What Ctrl-C raises: Python's KeyboardInterrupt, or DuckDB's error when it cut a query."""


@dataclass(frozen=True)
class VertexLabel:
    """How a vertex is shown (:meth:`LineageStore.vertex_labels`)."""

    type: str
    name: str
    lineage_type: str
    status: str | None

    @property
    def label(self) -> str:
        return f"{self.type} {self.name}"


class LineageStore:
    """Queries on a read-only connection to the projection (or its snapshot)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        path: Path,
        *,
        snapshot_taken: float | None = None,
        account: str | None = None,
        visible_accounts: list[str] | None = None,
        cleanup: Path | None = None,
        memory_limit: str = "2GB",
    ) -> None:
        self.con = con
        self.path = path
        self.snapshot_taken = snapshot_taken
        self.account = account
        """The caller this store answers for (None: the operator, who sees everything)."""
        self.visible_accounts = visible_accounts
        self._cleanup = cleanup
        self._closers: list[Callable[[], None]] = []
        self.loaded_graph: LineageGraph | None = None
        """The lineage graph index once built (the first QueryLineage builds it)."""
        self._walk_function = _walk_macros(self)
        self.memory_limit = memory_limit
        self._save_graph_to: Path | None = None

    def as_account(self, account: str, *, cache: bool = True) -> LineageStore:
        """A store answering on behalf of ``account``: its own entities and those of owners
        sharing with it, nothing else (see :mod:`mlineage.query.accounts`). Close it after
        use. It reads a copy of what the account sees, kept beside the projection and reused
        until the projection changes (``cache=False``: a private copy, deleted on close)."""
        return account_view(self, account, cache=cache)

    @classmethod
    def open(
        cls,
        path: str | Path | Settings | None = None,
        *,
        memory_limit: str = "2GB",
        sync: bool = True,
        note: Callable[[str], None] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> LineageStore:
        """Open the projection read-only: the live file, or the follower's snapshot when a
        projector (``project --follow``, ``serve``) holds the live file.

        Given :class:`Settings` (or nothing: the environment's), it first catches up with
        the log as the CLI does (the embedded log's tracker too), unless ``sync=False`` or a
        follower keeps the projection current. Processes of one home take turns: one
        catches up while the others wait for it (``note`` hears about a wait over a
        second), and readers keep a shared hold until :meth:`close`. ``progress(stage,
        done, lag)`` hears how the catch-up goes (stage ``track`` or ``project``)."""
        where = Settings.load() if path is None else path
        if isinstance(where, Settings) and (empty := where.nothing_published()) is not None:
            raise ProjectionError(empty)
        settings = where if isinstance(where, Settings) and sync else None
        db = where.db_path if isinstance(where, Settings) else Path(where)
        lock = AccessLock(db)
        lock.acquire(exclusive=settings is not None, note=note)
        try:
            if settings is not None:
                from mlineage.pipeline import sync as sync_log  # noqa: PLC0415 - cycle

                # a follower that holds the projection keeps it fresh: read its snapshot
                with contextlib.suppress(ProjectionBusyError):
                    sync_log(settings, progress=progress)
                lock.share()
            store = cls._open_file(db, memory_limit)
        except BaseException:
            lock.release()
            raise
        store._closers.append(lock.release)
        return store

    @classmethod
    def _open_file(cls, db: Path, memory_limit: str) -> LineageStore:
        if not db.exists():
            raise ProjectionError(
                f"no projection at {db} yet: publish something (or run `mlineage demo`) first"
            )
        try:
            return cls(_connect(db, memory_limit), db, memory_limit=memory_limit)
        except duckdb.Error as exc:
            if not held_elsewhere(exc):
                raise ProjectionError(f"cannot open the projection {db}: {exc}") from exc
        snap = snapshot_path(db)
        if not snap.exists():
            raise ProjectionError(
                f"{db} is held by another process and has no snapshot yet: wait for "
                "`mlineage project --follow` to write one, or stop the process holding it"
            )
        try:
            taken = snap.stat().st_mtime
            return cls(
                _connect(snap, memory_limit), snap, snapshot_taken=taken, memory_limit=memory_limit
            )
        except duckdb.Error as exc:
            raise ProjectionError(f"cannot open the snapshot {snap}: {exc}") from exc

    def refresh(self) -> bool:
        """Catch up with what the projector wrote since this store opened (or last
        refreshed); returns whether there was anything new. A store reading a follower's
        snapshot reads the newer snapshot when there is one (or the live file once no
        process holds it). Its graph index then applies the vertices and edges changed
        since (the projection's ``graph_changes``: the cost of the change, not of the
        graph), or is opened again on its next use when it cannot follow (after a replay,
        or too far behind). An account view (:meth:`as_account`) does not refresh: ask for
        a new one."""
        if self.account is not None:
            raise ValueError("an account view does not refresh: ask for a new one")
        newer = False
        if self.snapshot_taken is not None:
            newer = self._reopen()
        graph = self.loaded_graph
        if graph is None:
            return newer
        caught = graph.catch_up(self.con) if graph.persisted else None
        if caught is None:
            self.loaded_graph = None
            return True
        return newer or caught

    def _reopen(self) -> bool:
        """Read the live file if no process holds it any more, else a newer snapshot."""
        live = self.path.with_name(self.path.name.removesuffix(".snapshot"))
        try:
            taken = self.path.stat().st_mtime
        except OSError:
            taken = None
        for path, snapshot_taken in ((live, None), (self.path, taken)):
            if snapshot_taken is not None and snapshot_taken == self.snapshot_taken:
                return False  # the snapshot read is still the newest
            with contextlib.suppress(OSError, ValueError):
                self._switch_to(path, snapshot_taken)
                return True
        return False

    def _switch_to(self, path: Path, snapshot_taken: float | None) -> None:
        # DuckDB keeps one database per path in a process: for the same path (a replaced
        # snapshot) the old connection must go first, or the new one would see the old file
        if path != self.path:
            try:
                con = _connect(path, self.memory_limit)
            except duckdb.Error as exc:
                raise ValueError(f"{path} is held by another process: {exc}") from exc
            self._disconnect()
        else:
            self._disconnect()
            try:
                con = _connect(path, self.memory_limit)
            except duckdb.Error as exc:
                raise ProjectionError(f"cannot open the snapshot {path}: {exc}") from exc
        self.con = con
        self.path, self.snapshot_taken = path, snapshot_taken
        self._walk_function = _walk_macros(self)

    def _disconnect(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self.con.remove_function(self._walk_function)
        self.con.close()

    @property
    def snapshot_age(self) -> float | None:
        """Seconds since the snapshot being read was taken (None: reading the live file)."""
        return None if self.snapshot_taken is None else time.time() - self.snapshot_taken

    @property
    def graph(self) -> LineageGraph:
        """The lineage graph index of this store (built on first use)."""
        return self._graph(self.con)

    def _graph(self, con: duckdb.DuckDBPyConnection) -> LineageGraph:
        if self.loaded_graph is None:
            # the projector keeps the operator's index ready to open, SameAs links included
            # for walks on behalf of an account; an account view (whose own tables have them
            # as edges), or a projection of an older schema, is loaded from its tables
            graph = self._saved_or_opened(con) if self.account is None else None
            self.loaded_graph = graph or LineageGraph.load(con, same_as=self.account is None)
        return self.loaded_graph

    def _saved_or_opened(self, con: duckdb.DuckDBPyConnection) -> LineageGraph | None:
        """The operator's index: the copy an earlier reader of this same state of the
        projection saved beside it (mapped into memory: a few milliseconds); else a copy of
        an earlier state brought up to date from the projection's log of changes, when they
        are few; else opened from the projection's columns and saved for the next reader."""
        version = _graph_version(con)
        saved = graph_cache_dir(self.path) / version if version else None
        if saved is not None and saved.is_dir():
            try:
                return LineageGraph.from_saved(saved)
            except (OSError, ValueError, KeyError, pa.ArrowException):
                shutil.rmtree(saved, ignore_errors=True)  # damaged: made again below
        if saved is not None:
            for older in sorted(saved.parent.iterdir()) if saved.parent.is_dir() else []:
                if _being_written(older) or older.name.endswith(".tmp"):
                    continue
                try:
                    earlier = LineageGraph.from_saved(older)
                except (OSError, ValueError, KeyError, pa.ArrowException):
                    continue
                limit = max(CATCH_UP_ROWS, len(earlier.arns) // CATCH_UP_SHARE)
                if earlier.catch_up(con, limit=limit) is not None:
                    return earlier  # not saved: the next reader catches up the same way
        graph = LineageGraph.open(con)
        if graph is not None and saved is not None and _graph_version(con) == version:
            # saved when the store closes (after the answers), if the index is still as
            # opened: this state of the projection, nothing applied since
            self._save_graph_to = saved
        return graph

    def _save_graph(self) -> None:
        saved, graph = self._save_graph_to, self.loaded_graph
        self._save_graph_to = None
        if saved is None or graph is None or graph.changed or saved.is_dir():
            return
        # best effort: a read-only place or a full disk only costs the next reader time
        with contextlib.suppress(OSError, ValueError):
            graph.save(saved)
            for old in saved.parent.iterdir():
                if old != saved and not _being_written(old):
                    shutil.rmtree(old, ignore_errors=True)

    def query_lineage(
        self,
        start_arns: list[str] | str,
        direction: str = "Both",
        include_edges: bool = True,
        filters: LineageFilter | None = None,
        max_depth: int = 10,
        max_results: int | None = None,
        next_token: str | None = None,
        visible_accounts: list[str] | None = None,
    ) -> LineageResult:
        """QueryLineage with SageMaker's semantics (see :mod:`mlineage.query.lineage`).
        ``visible_accounts`` (on the operator's store): answer as a caller who sees these
        accounts would (:func:`mlineage.query.accounts.visible_accounts`), with the same
        answer as that caller's :meth:`as_account` view, without copying anything."""
        starts = [start_arns] if isinstance(start_arns, str) else list(start_arns)
        self._operator_only(visible_accounts)
        return query_lineage(
            self.graph,
            starts,
            direction=direction,
            include_edges=include_edges,
            filters=filters,
            max_depth=max_depth,
            max_results=max_results,
            next_token=next_token,
            properties_of=self.properties_of,
            visible_accounts=visible_accounts,
        )

    def properties_of(self, arns: list[str]) -> dict[str, dict[str, str]]:
        """Properties of these entities (artifacts, actions, contexts)."""
        if not arns:
            return {}
        rows = self.con.execute(
            "SELECT arn, CAST(properties AS VARCHAR) FROM (SELECT arn, properties FROM artifacts "
            "UNION ALL SELECT arn, properties FROM actions UNION ALL SELECT arn, properties "
            "FROM contexts) WHERE arn IN (SELECT unnest(?))",
            [arns],
        ).fetchall()
        return {arn: json.loads(props) if props else {} for arn, props in rows}

    def vertex_labels(self, arns: list[str]) -> dict[str, VertexLabel]:
        """How each of these live vertices is shown: type, name (an artifact's SourceUri),
        lineage type, and a job's or action's status (absent: not a live vertex)."""
        if not arns:
            return {}
        rows = self.con.execute(
            "SELECT v.arn, coalesce(v.type, v.lineage_type), coalesce(a.source_uri, v.name, "
            "v.arn), v.lineage_type, coalesce(t.status, x.status) "
            "FROM lineage_vertices v LEFT JOIN artifacts a ON a.arn = v.arn "
            "LEFT JOIN trial_components t ON t.arn = v.arn LEFT JOIN actions x ON x.arn = v.arn "
            "WHERE v.arn IN (SELECT unnest(?))",
            [arns],
        ).fetchall()
        return {arn: VertexLabel(typ, name, lt, status) for arn, typ, name, lt, status in rows}

    def graph_summary(self) -> tuple[list[tuple[str, int]], int]:
        """The live vertices per lineage type (in type order) and the number of live edges."""
        counts = self.con.execute(
            "SELECT lineage_type, count(*) FROM lineage_vertices GROUP BY 1 ORDER BY 1"
        ).fetchall()
        row = self.con.execute("SELECT count(*) FROM lineage_edges").fetchall()
        return [(str(t), int(n)) for t, n in counts], int(row[0][0])

    def shares(self) -> Rows:
        """The live lineage shares: (column names, rows of owner, grantee, created_at)."""
        return self.sql(
            "SELECT owner_account, grantee_account, created_at FROM lineage_shares "
            "WHERE live ORDER BY owner_account, grantee_account"
        )

    def match_value(self, field: str, value: str, option: str) -> str:
        """``value`` of ``field`` as the projection writes it (see
        :func:`mlineage.query.lookup.match_value`)."""
        return lookup.match_value(self.con, field, value, option)

    def history(self, log: EventLog, key: str) -> list[dict[str, Any]]:
        """Every event applied to the entity ``key``, with its body from ``log`` (see
        :func:`mlineage.ops.history`)."""
        return ops.history(self.con, log, key)

    def set_memory_limit(self, limit: str) -> None:
        """DuckDB's memory limit for this store's queries (``"1GB"``, ``"500MB"``...)."""
        self.con.execute("SET memory_limit = ?", [limit])

    def resolve(self, key: str) -> Found:
        """The live entity ``key`` names: an ARN, a name, an artifact's URI, a job's name or
        ARN (its trial component), an endpoint's ARN (see :mod:`mlineage.query.lookup`)."""
        return lookup.resolve(self.con, key)

    def describe(
        self,
        arn_or_name: str,
        kind: str | None = None,
        *,
        visible_accounts: list[str] | None = None,
    ) -> dict[str, Any]:
        """SageMaker's Describe* for one live entity (NotFoundError when there is none).
        ``visible_accounts``: as for :meth:`query_lineage`."""
        self._operator_only(visible_accounts)
        return catalog.describe(self.con, arn_or_name, kind, visible_accounts=visible_accounts)

    def list_entities(
        self, kind: str, *, visible_accounts: list[str] | None = None, **filters: Any
    ) -> dict[str, Any]:
        """SageMaker's List* for a kind, with its filters, sort and paging
        (see :func:`mlineage.query.catalog.list_entities`). ``visible_accounts``: as for
        :meth:`query_lineage`."""
        self._operator_only(visible_accounts)
        return catalog.list_entities(
            self.con, catalog.resolve_kind(kind), visible_accounts=visible_accounts, **filters
        )

    def search(
        self,
        resource: str,
        expression: Mapping[str, Any] | None = None,
        *,
        visible_accounts: list[str] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """SageMaker's Search of ``Experiment``, ``ExperimentTrial`` or
        ``ExperimentTrialComponent`` records (see :mod:`mlineage.query.search`).
        ``visible_accounts``: as for :meth:`query_lineage`."""
        self._operator_only(visible_accounts)
        return search.search(
            self.con, resource, expression, visible_accounts=visible_accounts, **options
        )

    def list_tags(
        self, arn: str, *, visible_accounts: list[str] | None = None, **options: Any
    ) -> dict[str, Any]:
        """ListTags of an entity or a job (see :func:`mlineage.query.search.list_tags`)."""
        self._operator_only(visible_accounts)
        return search.list_tags(self.con, arn, visible_accounts=visible_accounts, **options)

    def _operator_only(self, visible_accounts: list[str] | None) -> None:
        if visible_accounts is not None and self.account is not None:
            raise ValueError(
                "visible_accounts is for the operator's store; this one already "
                f"answers for {self.account}"
            )

    def list_jobs(self, **filters: Any) -> dict[str, Any]:
        """The published jobs, newest first (see :func:`mlineage.query.catalog.list_jobs`)."""
        return catalog.list_jobs(self.con, **filters)

    def sql(
        self,
        query: str,
        params: list[Any] | None = None,
        *,
        timeout: float = 30.0,
        decode_json: bool = False,
    ) -> Rows:
        """Run a read-only query; returns (column names, rows). ``decode_json``: values of
        JSON columns parsed (else the JSON text, as DuckDB returns it)."""
        return run_sql(self.con, query, params, timeout=timeout, decode_json=decode_json)

    def close(self) -> None:
        self._save_graph()
        self._disconnect()
        while self._closers:
            self._closers.pop()()
        if self._cleanup is not None:
            shutil.rmtree(self._cleanup, ignore_errors=True)

    def __enter__(self) -> LineageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
