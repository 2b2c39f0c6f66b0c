"""The EventLog contract (``mlineage.log.base``), run against every implementation.

Written against the interface only: a topic may have several partitions, so offsets are
checked per partition, and records that must stay in one order share a key.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mlineage.errors import MlineageError
from mlineage.log.base import (
    TOPIC_DLQ,
    TOPIC_ENTITIES,
    TOPIC_JOBS,
    TOPICS,
    EventLog,
    OutRecord,
    Record,
    open_log,
)

if TYPE_CHECKING:
    from tests.contract.conftest import Implementation, KnownViolation

KEY = b"one-key"  # records that must keep their relative order share a key (so a partition)
PROCESSES = 4
EVENTS_PER_PROCESS = 1_000
START_TIMEOUT_S = 60.0  # for every publishing process to import and open the log
JOIN_TIMEOUT_S = 120.0


# -- helpers ------------------------------------------------------------------------------------


def out(
    value: bytes,
    topic: str = TOPIC_JOBS,
    key: bytes | None = KEY,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> OutRecord:
    return OutRecord(topic, key, value, headers)


def read_partition(log: EventLog, topic: str, partition: int, batch: int = 700) -> list[Record]:
    """Every record of a partition, read in batches from offset 0 to the end."""
    records: list[Record] = []
    while chunk := log.read(topic, partition, records[-1].offset + 1 if records else 0, batch):
        records.extend(chunk)
    return records


def read_all(log: EventLog, topic: str) -> list[Record]:
    return [r for p in log.partitions(topic) for r in read_partition(log, topic, p)]


def the_partition(log: EventLog, topic: str) -> int:
    """The one partition of ``topic`` that holds records (tests write them under one key)."""
    used = [p for p, end in log.end_offsets(topic).items() if end > 0]
    assert len(used) == 1, f"expected records in exactly one partition of {topic}: {used}"
    return used[0]


def assert_dense(log: EventLog, topic: str) -> list[Record]:
    """Each partition's offsets are 0..n-1 in order and its end offset is n (on logs with
    ``dense_offsets``; on others, such as Kafka with its transaction markers, offsets only
    grow and the end lies past the last record); returns all."""
    ends = log.end_offsets(topic)
    assert sorted(ends) == sorted(log.partitions(topic))
    records: list[Record] = []
    for partition in log.partitions(topic):
        recs = read_partition(log, topic, partition)
        offsets = [r.offset for r in recs]
        if log.dense_offsets:
            assert offsets == list(range(len(recs))), f"partition {partition}"
            assert ends[partition] == len(recs)
        else:
            assert offsets == sorted(set(offsets)), f"partition {partition}"
            assert all(o >= 0 for o in offsets)
            assert ends[partition] > (offsets[-1] if offsets else -1)
        assert all(r.partition == partition and r.topic == topic for r in recs)
        records.extend(recs)
    return records


def count(log: EventLog, topic: str) -> int:
    """Records in ``topic`` (the end offsets' sum on dense logs, else read them)."""
    return total(log, topic) if log.dense_offsets else len(read_all(log, topic))


def values(records: Sequence[Record]) -> list[bytes]:
    return [r.value for r in records]


def total(log: EventLog, topic: str) -> int:
    return sum(log.end_offsets(topic).values())


def run_processes(target: Callable[..., None], args: Sequence[tuple[Any, ...]]) -> None:
    """Start one spawned process per args tuple, wait for all, require exit code 0."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args))
    procs = [ctx.Process(target=target, args=(*a, barrier)) for a in args]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for proc in procs:
        proc.join(max(deadline - time.monotonic(), 0.1))
    hung = [proc for proc in procs if proc.is_alive()]
    for proc in hung:
        proc.kill()
        proc.join()
    assert not hung, f"{len(hung)} publishing processes did not finish in {JOIN_TIMEOUT_S}s"
    codes = [proc.exitcode for proc in procs]
    assert codes == [0] * len(procs), f"exit codes {codes}: see the captured stderr"


# -- workers of the concurrency tests (module level, so spawned processes can import them) -----


def append_worker(url: str, proc: int, count: int, barrier: Any) -> None:
    log = open_log(url)
    try:
        barrier.wait(START_TIMEOUT_S)  # everyone has opened the log: start appending at once
        for i in range(count):
            log.append([OutRecord(TOPIC_JOBS, f"key-{proc}".encode(), f"{proc}-{i}".encode())])
    finally:
        log.close()


def recorder_worker(home: Path, url: str, proc: int, count: int, barrier: Any) -> None:
    from mlineage import Recorder, Settings

    with Recorder(Settings.load(home=home, log_url=url, environ={})) as recorder:
        recorder.log.end_offsets(TOPIC_ENTITIES)  # open the log before the start line
        barrier.wait(START_TIMEOUT_S)
        for i in range(count):
            recorder.publish(
                {
                    "event_type": "EntityUpserted",
                    "payload": {
                        "entity": {
                            "kind": "action",
                            "action_name": f"a-{proc}-{i}",
                            "action_type": "Step",
                        }
                    },
                }
            )


# -- topics and offsets -------------------------------------------------------------------------


def test_the_url_opens_the_implementation_under_test(
    event_log: EventLog, implementation: Implementation
) -> None:
    assert event_log.kind == implementation.kind


def test_a_fresh_log_is_empty(event_log: EventLog) -> None:
    for topic in TOPICS:
        partitions = event_log.partitions(topic)
        assert partitions
        assert event_log.end_offsets(topic) == dict.fromkeys(partitions, 0)
        assert all(event_log.read(topic, p, 0, 10) == [] for p in partitions)


def test_offsets_start_at_zero_and_grow_by_one(event_log: EventLog) -> None:
    for i in range(5):
        event_log.append([out(b"single-%d" % i)])
    event_log.append([out(b"batch-%d" % i) for i in range(3)])

    partition = the_partition(event_log, TOPIC_JOBS)
    records = read_partition(event_log, TOPIC_JOBS, partition)
    assert values(records) == [b"single-%d" % i for i in range(5)] + [
        b"batch-%d" % i for i in range(3)
    ]
    assert records[0].offset == 0
    if event_log.dense_offsets:
        assert [r.offset for r in records] == list(range(8))
        assert event_log.end_offsets(TOPIC_JOBS)[partition] == 8
    else:  # Kafka: one commit marker after each append; a batch's records are adjacent
        assert [r.offset for r in records] == [0, 2, 4, 6, 8, 10, 11, 12]
        assert event_log.end_offsets(TOPIC_JOBS)[partition] == 14
    assert_dense(event_log, TOPIC_JOBS)


def test_append_of_nothing_writes_nothing(event_log: EventLog) -> None:
    event_log.append([])
    assert all(total(event_log, topic) == 0 for topic in TOPICS)


def test_read_returns_records_from_an_offset_in_order_at_most_n(event_log: EventLog) -> None:
    event_log.append([out(b"v%d" % i) for i in range(10)])
    p = the_partition(event_log, TOPIC_JOBS)

    def read(offset: int, n: int) -> list[int]:
        return [r.offset for r in event_log.read(TOPIC_JOBS, p, offset, n)]

    assert read(0, 100) == list(range(10))  # one append: adjacent offsets on every log
    assert read(3, 4) == [3, 4, 5, 6]
    assert read(8, 100) == [8, 9]
    assert read(9, 1) == [9]
    assert read(0, 1) == [0]
    assert read(5, 0) == []
    assert read(10, 5) == []  # the end, for now
    assert read(1_000, 5) == []
    assert values(event_log.read(TOPIC_JOBS, p, 3, 2)) == [b"v3", b"v4"]


def test_a_bounded_read_stops_at_the_byte_budget(event_log: EventLog) -> None:
    event_log.append([out(b"%d" % i + b"x" * 99) for i in range(10)])  # 100 bytes each
    p = the_partition(event_log, TOPIC_JOBS)

    def read(offset: int, n: int, budget: int) -> list[int]:
        return [r.offset for r in event_log.read_bounded(TOPIC_JOBS, p, offset, n, budget)]

    assert read(0, 100, 250) == [0, 1]
    assert read(0, 100, 300) == [0, 1, 2]
    assert read(4, 2, 10_000) == [4, 5]  # max_records still holds
    assert read(7, 100, 1) == [7]  # one record over the budget still comes alone
    assert read(10, 5, 1_000) == []


def test_read_at_the_end_sees_later_appends(event_log: EventLog) -> None:
    event_log.append([out(b"first")])
    p = the_partition(event_log, TOPIC_JOBS)
    assert event_log.read(TOPIC_JOBS, p, 1, 10) == []
    event_log.append([out(b"second")])
    assert values(event_log.read(TOPIC_JOBS, p, 1, 10)) == [b"second"]


def test_another_instance_sees_appends(open_event_log: Callable[[], EventLog]) -> None:
    writer, reader = open_event_log(), open_event_log()
    assert total(reader, TOPIC_JOBS) == 0
    writer.append([out(b"x")])
    assert values(read_all(reader, TOPIC_JOBS)) == [b"x"]


def test_partitions_cover_end_offsets_and_reads(event_log: EventLog) -> None:
    event_log.append([out(b"%d" % i, key=b"k%d" % i) for i in range(20)])
    partitions = event_log.partitions(TOPIC_JOBS)
    assert partitions == sorted(set(partitions))
    assert all(isinstance(p, int) and p >= 0 for p in partitions)
    assert sorted(event_log.end_offsets(TOPIC_JOBS)) == partitions
    assert sorted(values(assert_dense(event_log, TOPIC_JOBS))) == sorted(
        b"%d" % i for i in range(20)
    )


def test_the_same_key_goes_to_the_same_partition_in_order(event_log: EventLog) -> None:
    keys = [b"entity-%d" % k for k in range(8)]
    for round_ in range(3):
        event_log.append([out(k + b"/%d" % round_, key=k) for k in keys])
    records = assert_dense(event_log, TOPIC_JOBS)
    for k in keys:
        mine = [r for r in records if r.key == k]
        assert len({r.partition for r in mine}) == 1
        assert values(sorted(mine, key=lambda r: r.offset)) == [k + b"/%d" % i for i in range(3)]


def test_end_offsets_are_the_record_counts(event_log: EventLog) -> None:
    event_log.append([out(b"j%d" % i) for i in range(3)])
    event_log.append([out(b"e%d" % i, topic=TOPIC_ENTITIES) for i in range(7)])
    markers = 0 if event_log.dense_offsets else 1  # Kafka: one commit marker per append
    assert total(event_log, TOPIC_JOBS) == 3 + markers
    assert total(event_log, TOPIC_ENTITIES) == 7 + markers
    assert count(event_log, TOPIC_JOBS) == 3
    assert count(event_log, TOPIC_ENTITIES) == 7
    assert event_log.end_offsets(TOPIC_DLQ) == dict.fromkeys(event_log.partitions(TOPIC_DLQ), 0)


# -- records round-trip -------------------------------------------------------------------------

ROUND_TRIP = [
    pytest.param(OutRecord(TOPIC_JOBS, b"job-key", b'{"json": true}'), id="plain"),
    pytest.param(OutRecord(TOPIC_JOBS, None, b"no key"), id="none-key"),
    pytest.param(OutRecord(TOPIC_JOBS, b"", b""), id="empty-key-and-value"),
    pytest.param(
        OutRecord(TOPIC_JOBS, bytes(range(256)), bytes(range(256))[::-1] * 4), id="all-byte-values"
    ),
    pytest.param(OutRecord(TOPIC_JOBS, b"\x00", b"\x00\x00\xff\x00"), id="nul-bytes"),
    pytest.param(OutRecord(TOPIC_JOBS, b"k", b"\x80" * 100_000), id="large-non-utf8"),
    pytest.param(
        OutRecord(
            TOPIC_DLQ,
            b"k",
            b"v",
            (
                ("error", b"validation failed"),
                ("source-offset", b"42"),
                ("error", b"a second header of the same name"),
                ("empty", b""),
                ("binary", b"\xff\xfe\x00\x80\xc3"),  # not UTF-8
                ("surrogate-bytes", b"\xed\xa0\x80"),  # UTF-8 of a lone surrogate: invalid
                ("text", "Zürich ✓".encode()),
                ("ünïcode-name", b"\x00"),
                ("", b"empty name"),
            ),
        ),
        id="headers",
    ),
]


@pytest.mark.parametrize("record", ROUND_TRIP)
def test_key_value_and_headers_round_trip_exactly(event_log: EventLog, record: OutRecord) -> None:
    before = int(time.time() * 1000)
    event_log.append([record])
    after = int(time.time() * 1000)

    (got,) = read_all(event_log, record.topic)
    assert (got.topic, got.offset) == (record.topic, 0)
    assert got.key == record.key
    assert type(got.key) is type(record.key)
    assert got.value == record.value
    assert type(got.value) is bytes
    assert got.headers == record.headers
    assert all(type(v) is bytes for _, v in got.headers)
    assert before - 1_000 <= got.timestamp_ms <= after + 1_000
    first = dict(reversed(record.headers))
    assert all(got.header(name) == value for name, value in first.items())  # first of a name
    assert got.header("no-such-header") is None


# -- append: several topics, atomic -------------------------------------------------------------


def test_append_of_several_topics_in_one_call(event_log: EventLog) -> None:
    event_log.append(
        [
            out(b"j0"),
            out(b"e0", topic=TOPIC_ENTITIES),
            out(b"j1"),
            out(b"d0", topic=TOPIC_DLQ),
            out(b"e1", topic=TOPIC_ENTITIES),
            out(b"j2"),
        ]
    )
    assert values(assert_dense(event_log, TOPIC_JOBS)) == [b"j0", b"j1", b"j2"]
    assert values(assert_dense(event_log, TOPIC_ENTITIES)) == [b"e0", b"e1"]
    assert values(assert_dense(event_log, TOPIC_DLQ)) == [b"d0"]


@pytest.mark.parametrize("position", ["first", "middle", "last"])
@pytest.mark.parametrize("bad_value", [None, object()], ids=["none", "object"])
def test_append_is_all_or_nothing(event_log: EventLog, position: str, bad_value: Any) -> None:
    event_log.append([out(b"before")])
    good = [
        out(b"j0"),
        out(b"e0", topic=TOPIC_ENTITIES),
        out(b"j1"),
        out(b"e1", topic=TOPIC_ENTITIES),
    ]
    bad = OutRecord(TOPIC_ENTITIES, KEY, bad_value)
    index = {"first": 0, "middle": 2, "last": len(good)}[position]

    with pytest.raises(MlineageError):
        event_log.append([*good[:index], bad, *good[index:]])

    assert values(read_all(event_log, TOPIC_JOBS)) == [b"before"]
    assert total(event_log, TOPIC_ENTITIES) == 0
    event_log.append(good)  # the failure left the log writable, offsets still dense
    assert values(assert_dense(event_log, TOPIC_JOBS)) == [b"before", b"j0", b"j1"]
    assert values(assert_dense(event_log, TOPIC_ENTITIES)) == [b"e0", b"e1"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param(KEY, "text", id="str-value"),
        pytest.param(KEY, 42, id="int-value"),
        pytest.param("text", b"v", id="str-key"),
    ],
)
def test_append_refuses_keys_and_values_that_are_not_bytes(
    event_log: EventLog, known_violation: KnownViolation, key: Any, value: Any
) -> None:
    with pytest.raises(MlineageError):
        event_log.append([out(b"good"), OutRecord(TOPIC_JOBS, key, value)])
    assert total(event_log, TOPIC_JOBS) == 0
    assert read_all(event_log, TOPIC_JOBS) == []


def test_append_refuses_headers_that_are_not_bytes(event_log: EventLog) -> None:
    bad = OutRecord(TOPIC_JOBS, KEY, b"v", (("h", "not bytes"),))  # type: ignore[arg-type]
    with pytest.raises((MlineageError, TypeError, AttributeError)):
        event_log.append([out(b"good"), bad])
    assert total(event_log, TOPIC_JOBS) == 0


def test_a_failed_append_leaves_a_new_topic_writable(
    event_log: EventLog, known_violation: KnownViolation
) -> None:
    topic = "contract.fresh-topic"
    with pytest.raises(MlineageError):
        event_log.append([OutRecord(topic, KEY, None)])  # type: ignore[arg-type]
    event_log.append([OutRecord(topic, KEY, b"after")])
    assert values(assert_dense(event_log, topic)) == [b"after"]


# -- transact and committed ---------------------------------------------------------------------


def test_transact_appends_and_commits_positions(event_log: EventLog) -> None:
    event_log.append([out(b"j%d" % i) for i in range(3)])
    p = the_partition(event_log, TOPIC_JOBS)
    assert event_log.committed("tracker", TOPIC_JOBS) == {}

    event_log.transact(
        "tracker",
        {(TOPIC_JOBS, p): 2},
        [out(b"e0", topic=TOPIC_ENTITIES), out(b"e1", topic=TOPIC_ENTITIES)],
    )

    assert event_log.committed("tracker", TOPIC_JOBS) == {p: 2}
    assert event_log.committed("tracker", TOPIC_ENTITIES) == {}
    assert values(assert_dense(event_log, TOPIC_ENTITIES)) == [b"e0", b"e1"]
    assert values(read_all(event_log, TOPIC_JOBS)) == [b"j0", b"j1", b"j2"]

    event_log.transact("tracker", {(TOPIC_JOBS, p): 3}, [out(b"e2", topic=TOPIC_ENTITIES)])
    assert event_log.committed("tracker", TOPIC_JOBS) == {p: 3}
    assert values(assert_dense(event_log, TOPIC_ENTITIES)) == [b"e0", b"e1", b"e2"]


def test_committed_positions_are_per_group(event_log: EventLog) -> None:
    event_log.append([out(b"j%d" % i) for i in range(5)])
    p = the_partition(event_log, TOPIC_JOBS)
    event_log.transact("a", {(TOPIC_JOBS, p): 1}, [])
    event_log.transact("b", {(TOPIC_JOBS, p): 4}, [])
    assert event_log.committed("a", TOPIC_JOBS) == {p: 1}
    assert event_log.committed("b", TOPIC_JOBS) == {p: 4}
    assert event_log.committed("c", TOPIC_JOBS) == {}
    event_log.transact("a", {(TOPIC_JOBS, p): 5}, [])
    assert event_log.committed("a", TOPIC_JOBS) == {p: 5}
    assert event_log.committed("b", TOPIC_JOBS) == {p: 4}


def test_transact_with_nothing_to_produce_still_commits(event_log: EventLog) -> None:
    event_log.append([out(b"j0"), out(b"e0", topic=TOPIC_ENTITIES)])
    pj, pe = the_partition(event_log, TOPIC_JOBS), the_partition(event_log, TOPIC_ENTITIES)
    event_log.transact("projector", {(TOPIC_JOBS, pj): 1, (TOPIC_ENTITIES, pe): 1}, [])
    assert event_log.committed("projector", TOPIC_JOBS) == {pj: 1}
    assert event_log.committed("projector", TOPIC_ENTITIES) == {pe: 1}
    assert count(event_log, TOPIC_JOBS) == count(event_log, TOPIC_ENTITIES) == 1


def test_transact_commits_positions_of_every_partition(event_log: EventLog) -> None:
    event_log.append([out(b"%d" % i, key=b"k%d" % i) for i in range(20)])
    ends = event_log.end_offsets(TOPIC_JOBS)
    event_log.transact("g", {(TOPIC_JOBS, p): end for p, end in ends.items()}, [])
    assert event_log.committed("g", TOPIC_JOBS) == ends


def test_transact_is_all_or_nothing(event_log: EventLog) -> None:
    event_log.append([out(b"j%d" % i) for i in range(3)])
    p = the_partition(event_log, TOPIC_JOBS)
    event_log.transact("tracker", {(TOPIC_JOBS, p): 1}, [out(b"e0", topic=TOPIC_ENTITIES)])

    bad = OutRecord(TOPIC_ENTITIES, KEY, None)  # type: ignore[arg-type]
    with pytest.raises(MlineageError):
        event_log.transact(
            "tracker",
            {(TOPIC_JOBS, p): 3},
            [out(b"e1", topic=TOPIC_ENTITIES), out(b"d0", topic=TOPIC_DLQ), bad],
        )

    assert event_log.committed("tracker", TOPIC_JOBS) == {p: 1}
    assert values(read_all(event_log, TOPIC_ENTITIES)) == [b"e0"]
    assert total(event_log, TOPIC_DLQ) == 0
    event_log.transact("tracker", {(TOPIC_JOBS, p): 3}, [out(b"e1", topic=TOPIC_ENTITIES)])
    assert event_log.committed("tracker", TOPIC_JOBS) == {p: 3}
    assert values(assert_dense(event_log, TOPIC_ENTITIES)) == [b"e0", b"e1"]


# -- durability: reopen, fork -------------------------------------------------------------------


def test_reopen_keeps_records_and_positions(open_event_log: Callable[[], EventLog]) -> None:
    headers = (("h", b"\xff\x00"), ("h", b"2"))
    with open_event_log() as log:
        log.append([out(b"j0", headers=headers), out(b"e0", topic=TOPIC_ENTITIES, key=None)])
        p = the_partition(log, TOPIC_JOBS)
        log.transact("tracker", {(TOPIC_JOBS, p): 1}, [out(b"e1", topic=TOPIC_ENTITIES)])

    with open_event_log() as log:
        (j0,) = read_all(log, TOPIC_JOBS)
        assert (j0.key, j0.value, j0.headers) == (KEY, b"j0", headers)
        entities = assert_dense(log, TOPIC_ENTITIES)
        # two keys may land in two partitions: no order between them
        assert {(r.key, r.value) for r in entities} == {(None, b"e0"), (KEY, b"e1")}
        assert log.committed("tracker", TOPIC_JOBS) == {p: 1}
        log.append([out(b"j1")])  # offsets carry on where they were
        assert values(assert_dense(log, TOPIC_JOBS)) == [b"j0", b"j1"]


def test_the_log_survives_fork(event_log: EventLog, open_event_log: Callable[[], EventLog]) -> None:
    event_log.append([out(b"parent-before")])
    p = the_partition(event_log, TOPIC_JOBS)

    pid = os.fork()
    if pid == 0:  # the child: append with the inherited object, never return into pytest
        status = 1
        try:
            event_log.append([out(b"child")])
            event_log.transact("child-group", {(TOPIC_JOBS, p): 2}, [])
            status = 0 if count(event_log, TOPIC_JOBS) == 2 else 2
            event_log.close()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    assert values(read_all(event_log, TOPIC_JOBS)) == [b"parent-before", b"child"]
    assert event_log.committed("child-group", TOPIC_JOBS) == {p: 2}
    event_log.append([out(b"parent-after")])  # the parent's instance still works
    expected = [b"parent-before", b"child", b"parent-after"]
    assert values(assert_dense(event_log, TOPIC_JOBS)) == expected
    event_log.close()
    with open_event_log() as reopened:  # and it was all written durably, not just cached
        assert values(assert_dense(reopened, TOPIC_JOBS)) == expected


def test_a_forked_child_keeps_appending_after_the_parent_closes(
    event_log: EventLog, open_event_log: Callable[[], EventLog], known_violation: KnownViolation
) -> None:
    event_log.append([out(b"parent")])
    child_ready_r, child_ready_w = os.pipe()
    parent_closed_r, parent_closed_w = os.pipe()

    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            event_log.append([out(b"child-1")])
            os.write(child_ready_w, b"1")
            os.read(parent_closed_r, 1)
            event_log.append([out(b"child-2")])  # returned, so it must be durable
            status = 0
        finally:
            os._exit(status)
    try:
        os.read(child_ready_r, 1)
        event_log.close()  # the parent is done with the log; the child is not
        os.write(parent_closed_w, b"1")
    finally:
        _, status = os.waitpid(pid, 0)
        for fd in (child_ready_r, child_ready_w, parent_closed_r, parent_closed_w):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    with open_event_log() as reopened:
        assert values(read_all(reopened, TOPIC_JOBS)) == [b"parent", b"child-1", b"child-2"]


# -- several processes at once ------------------------------------------------------------------


def test_processes_appending_at_once_lose_and_duplicate_nothing(
    event_log: EventLog, log_url: str
) -> None:
    run_processes(append_worker, [(log_url, proc, EVENTS_PER_PROCESS) for proc in range(PROCESSES)])

    records = assert_dense(event_log, TOPIC_JOBS)
    expected = {
        f"{proc}-{i}".encode() for proc in range(PROCESSES) for i in range(EVENTS_PER_PROCESS)
    }
    got = values(records)
    assert len(got) == PROCESSES * EVENTS_PER_PROCESS
    assert len(set(got)) == len(got)
    assert set(got) == expected
    if len(event_log.partitions(TOPIC_JOBS)) == 1:
        assert [r.offset for r in records] == list(range(PROCESSES * EVENTS_PER_PROCESS))
    for proc in range(PROCESSES):  # one process, one key: its records stay in its order
        mine = sorted(
            (r for r in records if r.key == f"key-{proc}".encode()), key=lambda r: r.offset
        )
        assert values(mine) == [f"{proc}-{i}".encode() for i in range(EVENTS_PER_PROCESS)]


@pytest.mark.slow
def test_recorders_publishing_at_once_lose_and_duplicate_nothing(
    event_log: EventLog, log_url: str, tmp_path: Path
) -> None:
    from mlineage.events.codec import decode

    run_processes(
        recorder_worker,
        [(tmp_path, log_url, proc, EVENTS_PER_PROCESS) for proc in range(PROCESSES)],
    )

    records = assert_dense(event_log, TOPIC_ENTITIES)
    assert total(event_log, TOPIC_JOBS) == 0
    names = [
        decode(r.value).payload.entity.action_name  # type: ignore[union-attr]
        for r in records
    ]
    assert len(names) == PROCESSES * EVENTS_PER_PROCESS
    assert len(set(names)) == len(names)
    assert set(names) == {
        f"a-{proc}-{i}" for proc in range(PROCESSES) for i in range(EVENTS_PER_PROCESS)
    }
    if len(event_log.partitions(TOPIC_ENTITIES)) == 1:
        assert [r.offset for r in records] == list(range(PROCESSES * EVENTS_PER_PROCESS))
