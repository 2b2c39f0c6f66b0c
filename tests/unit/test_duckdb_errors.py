"""DuckDB's errors as mlineage reads them: one function says whether another process holds the
file (``projection.store.held_elsewhere``), and ``open_error`` turns that into the busy error
with what to do. Real DuckDB errors, each raised the way a command meets it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from mlineage.errors import ProjectionBusyError, ProjectionError
from mlineage.projection.store import held_elsewhere, open_error

HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A DuckDB file another process has open for writing (until the test ends)."""
    path = tmp_path / "held.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "holding"
        yield path
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)


def _raised(action: Callable[[], object]) -> duckdb.Error:
    with pytest.raises(duckdb.Error) as info:
        action()
    return info.value


def test_a_file_held_for_writing_by_another_process_is_held_elsewhere(held: Path) -> None:
    for read_only in (False, True):
        exc = _raised(lambda ro=read_only: duckdb.connect(str(held), read_only=ro))
        assert held_elsewhere(exc), exc
        err = open_error(held, exc)
        assert isinstance(err, ProjectionBusyError)
        assert "held by another process" in str(err)
        assert "stop it or wait" in str(err)


@pytest.mark.parametrize(
    ("case", "make"),
    [
        (
            "not a database file",
            lambda p: p.write_bytes(b"not a duckdb file, just some bytes" * 200),
        ),
        ("a directory", lambda p: p.mkdir()),
    ],
)
def test_other_io_errors_are_not_taken_for_a_lock(
    tmp_path: Path, case: str, make: Callable[[Path], object]
) -> None:
    path = tmp_path / "x.duckdb"
    make(path)
    exc = _raised(lambda: duckdb.connect(str(path)))
    assert not held_elsewhere(exc), (case, exc)
    err = open_error(path, exc)
    assert type(err) is ProjectionError
    assert str(path) in str(err)


def test_a_query_that_mentions_lock_is_not_a_lock() -> None:
    """The text alone does not decide: a catalog error about a table named ``lock`` is not
    another process holding the file (the substring test this replaced said it was)."""
    con = duckdb.connect(":memory:")
    exc = _raised(lambda: con.execute("SELECT * FROM lock_table"))
    assert "lock" in str(exc).lower()
    assert not held_elsewhere(exc)
    assert not held_elsewhere(RuntimeError("Could not set lock on file"))
