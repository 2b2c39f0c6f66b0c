"""The EventLog implementations the contract suite (``test_event_log.py``) runs against.

Each implementation is a kind and a factory: given a fresh temporary directory and the test's
request (for fixtures such as the Kafka broker), the factory returns the URL of an *empty*
log, which :func:`mlineage.log.base.open_log` opens, in this process or in a spawned one.
Kafka's URL names a fresh namespace on the session's broker (``tests/conftest.py``).

``spooled`` is the producer spool (:class:`mlineage.log.spool.SpooledLog`) in front of a
SQLite log, flushed after every append: a spooled append reaches the log later, on the
forwarder thread, and what the contract asks of a log holds once it has. Its URL is the
SQLite log's (other processes in the suite open that log itself); ``open`` builds the spool.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlineage.log.base import EventLog, OutRecord, open_log
from mlineage.log.spool import SpooledLog
from mlineage.settings import sqlite_url
from tests.conftest import kafka_url_on


@dataclass(frozen=True)
class Implementation:
    kind: str
    url: Callable[[Path, pytest.FixtureRequest], str]
    marks: tuple[pytest.MarkDecorator, ...] = ()
    # how this process opens an instance on the log at the URL (default: open_log(url))
    open: Callable[[str, Path], EventLog] | None = None


FLUSH_S = 60.0


class FlushedSpool(SpooledLog):
    """A spool whose appends return once the forwarder has put them in the log."""

    def append(self, records: Sequence[OutRecord]) -> None:
        super().append(records)
        if not self.flush(FLUSH_S):
            raise AssertionError(f"the spool did not forward {self.pending()} records")


def open_spooled(url: str, tmp_path: Path) -> EventLog:
    return FlushedSpool(
        lambda: open_log(url), tmp_path / "spool", target_url=url, dense_offsets=True
    )


def sqlite_log_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    # the file Settings.load(home=tmp_path) points at, so a Recorder finds the same log
    return sqlite_url(tmp_path / "events.sqlite")


def kafka_log_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return kafka_url_on(request.getfixturevalue("kafka_broker"))


IMPLEMENTATIONS = [
    Implementation("sqlite", sqlite_log_url),
    Implementation("spooled", sqlite_log_url, open=open_spooled),
    Implementation("kafka", kafka_log_url, marks=(pytest.mark.kafka,)),
]


@pytest.fixture(params=[pytest.param(i, id=i.kind, marks=i.marks) for i in IMPLEMENTATIONS])
def implementation(request: pytest.FixtureRequest) -> Implementation:
    impl: Implementation = request.param
    return impl


@pytest.fixture
def log_url(implementation: Implementation, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty log of the implementation under test."""
    return implementation.url(tmp_path, request)


@pytest.fixture
def open_event_log(
    log_url: str, implementation: Implementation, tmp_path: Path
) -> Iterator[Callable[[], EventLog]]:
    """Opens another instance on the same log (closed at teardown, if the test did not)."""
    opened: list[EventLog] = []

    def _open() -> EventLog:
        log = (
            open_log(log_url)
            if implementation.open is None
            else implementation.open(log_url, tmp_path)
        )
        opened.append(log)
        return log

    yield _open
    for log in opened:
        log.close()


@pytest.fixture
def event_log(open_event_log: Callable[[], EventLog]) -> EventLog:
    """An open instance of the implementation under test, on an empty log."""
    return open_event_log()


KnownViolation = Callable[[Collection[str], str], None]


@pytest.fixture
def known_violation(
    request: pytest.FixtureRequest, implementation: Implementation
) -> KnownViolation:
    """``known_violation({"sqlite"}, reason)``: this test is expected to fail for those kinds
    (strict, so fixing the implementation turns it into a failure: remove the call then)."""

    def _mark(kinds: Collection[str], reason: str) -> None:
        if implementation.kind in kinds:
            request.applymarker(pytest.mark.xfail(strict=True, reason=reason))

    return _mark
