"""Read-only SQL on the projection, with a time limit and a memory limit."""

from __future__ import annotations

import json
import threading
from typing import Any

import duckdb

from mlineage.errors import MlineageError

Rows = tuple[list[str], list[tuple[Any, ...]]]


class SqlError(MlineageError):
    """A query failed, was refused (writes) or was cancelled (time limit)."""


def run_sql(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: list[Any] | None = None,
    *,
    timeout: float = 30.0,
    decode_json: bool = False,
) -> Rows:
    """Run ``query`` on a read-only connection; cancel it after ``timeout`` seconds. With
    ``decode_json`` the values of JSON columns are parsed (DuckDB returns them as text)."""
    _check_read_only(query)
    timer = threading.Timer(timeout, con.interrupt)
    timer.start()
    try:
        cur = con.execute(query, params or [])
        rows = cur.fetchall()
        names = [d[0] for d in cur.description or []]
    except duckdb.InterruptException as exc:
        raise SqlError(f"query cancelled after {timeout:g}s (raise --timeout)") from exc
    except duckdb.Error as exc:
        text = str(exc)
        if "read-only" in text or "read only" in text:
            raise SqlError(
                "SQL here is read-only: the projection is rebuilt from the event "
                "log; publish events to change it"
            ) from exc
        raise SqlError(f"SQL error: {text}") from exc
    finally:
        timer.cancel()
    if decode_json:
        parsed = [i for i, d in enumerate(cur.description or []) if str(d[1]) == "JSON"]
        if parsed:
            rows = [_decoded(row, parsed) for row in rows]
    return names, rows


def _decoded(row: tuple[Any, ...], columns: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in columns:
        if isinstance(values[i], str):
            values[i] = json.loads(values[i])
    return tuple(values)


_READ_ONLY = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


def _check_read_only(query: str) -> None:
    """One SELECT (or EXPLAIN) statement: anything else is refused before it runs — even
    temp tables, which DuckDB allows on a read-only database."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise SqlError(f"SQL error: {exc}") from exc
    if len(statements) != 1:
        raise SqlError(f"run one statement at a time (got {len(statements)})")
    if statements[0].type not in _READ_ONLY:
        raise SqlError(
            "SQL here is read-only: the projection is rebuilt from the event log; "
            "publish events to change it (only SELECT and EXPLAIN are accepted)"
        )
