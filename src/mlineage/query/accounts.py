"""Queries on behalf of an account: cross-account visibility with strict isolation.

An account sees its own entities and those of every owner that shares its lineage group with
it (a live ``lineage_share``); sharing is not transitive. An association is visible when both
its ends are. Artifacts with the same id (the same SourceUri) in two visible accounts are
linked by ``SameAs`` — computed here, for this caller, never stored — as a pair of edges, one
each way, so every direction of QueryLineage crosses them.

Isolation by construction: :func:`account_view` copies exactly the visible rows into a
private DuckDB file, then reopens it read-only with external access disabled and the
configuration locked, and hands back an ordinary :class:`LineageStore` on it. Everything —
QueryLineage, describe, list, the SDK traversals and user SQL — runs on that file, which
holds nothing the caller may not see: there is no other table to qualify, no database to
ATTACH, no file to read. The copy costs time and memory proportional to what the account
sees (documented in docs/accounts.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from mlineage import __version__, arns
from mlineage.errors import ConfigurationError
from mlineage.projection.schema import OPENLINEAGE_VIEW, TABLES, view_statements

if TYPE_CHECKING:
    from mlineage.query.store import LineageStore


def _acct(column: str) -> str:
    """The account inside an ARN column (the fifth ':'-separated field)."""
    return f"split_part({column}, ':', 5)"


def visible_accounts(con: duckdb.DuckDBPyConnection, account: str) -> list[str]:
    """The caller and every owner with a live share to it (not transitive)."""
    rows = con.execute(
        "SELECT DISTINCT owner_account FROM lineage_shares WHERE live AND grantee_account = ? "
        "ORDER BY 1",
        [account],
    ).fetchall()
    return sorted({account, *(r[0] for r in rows)})


def _predicates(account: str) -> dict[str, str]:
    """WHERE clauses (over the projection) keeping what the caller may see; ``$v`` is the
    list of visible accounts, ``$a`` the caller."""
    v = "list_contains($v, {})"
    pair = "{0} AND {1}"
    preds = {spec.table: v.format("account_id") for spec in TABLES}
    preds["associations"] = pair.format(
        v.format(_acct("source_arn")), v.format(_acct("destination_arn"))
    )
    preds["trial_component_trials"] = pair.format(
        v.format(_acct("trial_component_arn")), v.format(_acct("trial_arn"))
    )
    preds["lineage_shares"] = "(owner_account = $a OR grantee_account = $a)"
    preds["lineage_groups"] = v.format("account_id")
    first, second = "split_part(entity_key, ' ', 1)", "split_part(entity_key, ' ', 2)"
    # an event is shown when its account is visible and so is everything its key names
    preds["events"] = (
        f"{v.format('account_id')} AND CASE "
        "WHEN entity_key IS NULL OR entity_kind = 'openlineage_event' THEN true "
        f"WHEN entity_kind = 'lineage_share' THEN {first} = $a OR {second} = $a "
        "WHEN entity_kind IN ('association', 'trial_component_trial') THEN "
        f"{v.format(_acct(first))} AND {v.format(_acct(second))} "
        f"ELSE {v.format(_acct('entity_key'))} END"
    )
    # operator-only: dead letters hold records no account vouches for; positions are ours
    preds["dead_letters"] = "false"
    preds["positions"] = "false"
    preds["lineage_vertices"] = v.format("account_id")
    preds["lineage_edges"] = pair.format(
        v.format(_acct("source_arn")), v.format(_acct("destination_arn"))
    )
    return preds


_SAME_AS = (
    "SELECT a.arn AS source_arn, b.arn AS destination_arn, 'SameAs' AS association_type, "
    "a.account_id FROM lineage_vertices a JOIN lineage_vertices b "
    "ON a.lineage_type = 'Artifact' AND b.lineage_type = 'Artifact' "
    "AND split_part(a.arn, '/', 2) = split_part(b.arn, '/', 2) AND a.arn <> b.arn "
    "WHERE list_contains($v, a.account_id) AND list_contains($v, b.account_id)"
)


# Rows whose ends are visible may have been published by an account that is not: show the
# source end's account instead of the publisher's there.
_PUBLISHER_HIDDEN = {
    "associations": "source_arn",
    "trial_component_trials": "trial_component_arn",
    "lineage_edges": "source_arn",
}


def _select(table: str, where: str) -> str:
    end = _PUBLISHER_HIDDEN.get(table)
    if end is None:
        return f"SELECT * FROM {table} WHERE {where}"
    return (
        f"SELECT * REPLACE (CASE WHEN list_contains($v, account_id) THEN account_id "
        f"ELSE {_acct(end)} END AS account_id) FROM {table} WHERE {where}"
    )


VIEW_FORMAT = 1
"""Bump when what a view holds changes: cached views of another format are not reused."""


def cache_dir(projection: Path) -> Path:
    """Where the account views of a projection (or of its snapshot) are cached."""
    name = projection.name.removesuffix(".snapshot")
    return projection.with_name(name + ".views")


def _version(src: duckdb.DuckDBPyConnection, account: str, visible: list[str]) -> str:
    """What a view's rows depend on: the projection's applied events (every batch adds some,
    a replay rebuilds them all with new times) and schema, and the accounts it sees."""
    count, last = src.execute("SELECT count(*), max(applied_at) FROM events").fetchall()[0]
    meta = src.execute("SELECT key, value FROM mlineage_meta ORDER BY key").fetchall()
    state = [VIEW_FORMAT, __version__, account, visible, count, str(last), meta]
    return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:20]


def account_view(
    store: LineageStore, account: str, *, memory_limit: str = "1GB", cache: bool = True
) -> LineageStore:
    """A :class:`LineageStore` holding exactly what ``account`` may see. With ``cache``, the
    copy is kept beside the projection (:func:`cache_dir`) under a version of what it was
    made from, and reused by later views of the same account until the projection changes:
    one copy per account and version, made by whichever process needs it first."""

    if not arns.is_account(account):
        raise ConfigurationError(f"an account id is 12 digits, got {account!r}")
    src = store.con
    # one read transaction: every table copied from the same committed state, even while a
    # writer in this process commits meanwhile (mlineage serve)
    src.execute("BEGIN TRANSACTION")
    try:
        visible = visible_accounts(src, account)
        cached: Path | None = None
        if cache:
            folder = cache_dir(store.path)
            with contextlib.suppress(OSError):
                folder.mkdir(exist_ok=True)
            if folder.is_dir() and os.access(folder, os.W_OK):
                cached = folder / f"{account}-{_version(src, account, visible)}.duckdb"
        return _account_view(store, src, account, visible, memory_limit, cached)
    finally:
        src.execute("COMMIT")


def _open_view(
    path: Path, store: LineageStore, account: str, visible: list[str], memory_limit: str,
    cleanup: Path | None,
) -> LineageStore:  # fmt: skip
    from mlineage.query.store import LineageStore  # noqa: PLC0415 - circular at import time

    con = duckdb.connect(
        str(path),
        read_only=True,
        config={"enable_external_access": False, "memory_limit": memory_limit},
    )
    # nothing above can be undone (a second view of the same file in this process shares
    # the database, already locked)
    locked = con.execute("SELECT current_setting('lock_configuration')").fetchall()[0][0]
    if not locked:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
    return LineageStore(
        con,
        path,
        snapshot_taken=store.snapshot_taken,
        account=account,
        visible_accounts=visible,
        cleanup=cleanup,
    )


def _account_view(
    store: LineageStore,
    src: duckdb.DuckDBPyConnection,
    account: str,
    visible: list[str],
    memory_limit: str,
    cached: Path | None,
) -> LineageStore:
    if cached is not None and cached.exists():
        # gone meanwhile (a newer version replaced it) or unreadable: made again below
        with contextlib.suppress(duckdb.IOException, duckdb.SerializationException):
            return _open_view(cached, store, account, visible, memory_limit, None)
    params: dict[str, object] = {"v": visible, "a": account}
    tmpdir = Path(tempfile.mkdtemp(prefix="mlineage-account-", dir=cached and cached.parent))
    path = tmpdir / f"{account}.duckdb"
    try:
        out = duckdb.connect(str(path))
        try:
            out.execute("SET TimeZone = 'UTC'")
            for table, where in _predicates(account).items():
                if table in ("lineage_vertices", "lineage_edges"):
                    continue
                ddl = src.execute(
                    "SELECT sql FROM duckdb_tables() WHERE table_name = ? "
                    "AND database_name = current_database()",
                    [table],
                ).fetchall()
                out.execute(ddl[0][0])
                _copy(src, out, _select(table, where), params, table)
            # the views become tables of what this caller sees, SameAs computed for it
            out.execute(
                "CREATE TABLE lineage_vertices (arn VARCHAR, lineage_type VARCHAR, "
                "type VARCHAR, name VARCHAR, account_id VARCHAR, created_at "
                "TIMESTAMPTZ, modified_at TIMESTAMPTZ)"
            )
            _copy(
                src,
                out,
                "SELECT * FROM lineage_vertices WHERE " + _predicates(account)["lineage_vertices"],
                params,
                "lineage_vertices",
            )
            out.execute(
                "CREATE TABLE lineage_edges (source_arn VARCHAR, destination_arn "
                "VARCHAR, association_type VARCHAR, account_id VARCHAR)"
            )
            _copy(
                src,
                out,
                _select("lineage_edges", _predicates(account)["lineage_edges"]),
                params,
                "lineage_edges",
            )
            _copy(src, out, _SAME_AS, params, "lineage_edges")
            out.execute(
                "DELETE FROM lineage_edges WHERE association_type = 'SameAs' AND "
                "rowid NOT IN (SELECT min(rowid) FROM lineage_edges GROUP BY "
                "source_arn, destination_arn)"
            )
            for stmt in view_statements():
                if stmt.startswith("CREATE OR REPLACE MACRO") or stmt == OPENLINEAGE_VIEW:
                    out.execute(stmt)
            out.execute("CHECKPOINT")
        finally:
            out.close()
        if cached is None:
            return _open_view(path, store, account, visible, memory_limit, tmpdir)
        # complete before it has its name (another process may be opening it); older
        # versions of this account's view go (a process reading one keeps its open file)
        path.replace(cached)
        for old in cached.parent.glob(f"{account}-*.duckdb"):
            if old != cached:
                with contextlib.suppress(OSError):
                    old.unlink()
        return _open_view(cached, store, account, visible, memory_limit, None)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    finally:
        if cached is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _copy(
    src: duckdb.DuckDBPyConnection,
    out: duckdb.DuckDBPyConnection,
    query: str,
    params: dict[str, object],
    table: str,
) -> None:
    """Rows of ``query`` on the projection into ``table`` of the private file (via Arrow)."""
    used = {k: v for k, v in params.items() if f"${k}" in query}
    rows = src.sql(query, params=used).to_arrow_table()
    out.register("_rows", rows)
    try:
        out.execute(f"INSERT INTO {table} SELECT * FROM _rows")
    finally:
        out.unregister("_rows")
