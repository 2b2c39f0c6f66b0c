"""Records as SQLite rows, shared by the SQLite log and the producer spool: headers as JSON
text (values kept byte for byte through ``surrogateescape``), and bulk inserts as multi-row
``VALUES`` statements."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from mlineage.log.base import Headers

ROWS_PER_STATEMENT = 500
"""Rows per INSERT: x 5 columns stays far below SQLite's 32,766 bound parameters."""


def encode_headers(headers: Headers) -> str | None:
    if not headers:
        return None
    return json.dumps([[k, v.decode("utf-8", "surrogateescape")] for k, v in headers])


def decode_headers(text: str | None) -> Headers:
    if not text:
        return ()
    return tuple((k, v.encode("utf-8", "surrogateescape")) for k, v in json.loads(text))


def insert_rows(
    conn: sqlite3.Connection, insert: str, rows: Sequence[tuple[object, ...]], suffix: str = ""
) -> None:
    """Bulk insert as multi-row ``VALUES`` statements, a chunk of rows per statement."""
    if not rows:
        return
    width = len(rows[0])
    one = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        params = [value for row in chunk for value in row]
        conn.execute(f"{insert} VALUES {', '.join([one] * len(chunk))}{suffix}", params)
