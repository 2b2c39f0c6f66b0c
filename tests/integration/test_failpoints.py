"""A crash at every named failpoint, on the embedded log and on Kafka: the command is SIGKILLed
exactly there (mid-run), restarted, and recovery is exact: nothing derived twice, nothing
lost, the projection equal to a clean replay, nothing left behind. A failpoint in the code
without a crash test here fails the suite."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from botocore.exceptions import BotoCoreError, ClientError

from mlineage import Settings, failpoints
from mlineage.errors import ConfigurationError
from mlineage.events.codec import decode
from mlineage.log.base import TOPIC_ENTITIES, open_log
from mlineage.projection.store import DuckDBStore, snapshot_path
from tests.conftest import kafka_url_on
from tests.crash import Deployment
from tests.helpers import read_all, wait_until
from tests.serve.conftest import KEYS, start_server, stop_server

JOBS = 300  # 600 source events; about 3,600 records once derived
TRACK = ("track", "--batch-size", "50")  # 12+ batches: a kill at the 5th lands mid-run
PROJECT = ("project", "--batch-size", "400")  # 9+ batches: the 4th is mid-run

SRC = Path(__file__).resolve().parents[2] / "src" / "mlineage"


def crash_tracker(d: Deployment, point: str) -> None:
    d.publish_jobs(JOBS)
    d.crash(f"{point}=kill@5", *TRACK)
    d.run(*TRACK)
    d.assert_derived_exactly_once()
    d.run(*PROJECT)
    d.assert_projection_exact()


def crash_projector(d: Deployment, point: str) -> None:
    d.publish_jobs(JOBS)
    d.run(*TRACK)
    d.crash(f"{point}=kill@4", *PROJECT)
    d.run(*PROJECT)
    d.assert_projection_exact()


def crash_replay(d: Deployment, point: str) -> None:
    d.publish_jobs(JOBS)
    d.run(*TRACK)
    d.run(*PROJECT)
    before = d.assert_projection_exact()
    d.crash(f"{point}=kill@1", "replay")
    if point == "replay.before_swap":
        assert d.checksum() == before, "the live projection changed before the swap"
        assert any(p.name.startswith(f"{d.db.name}.replay-") for p in d.db.parent.iterdir())
    else:
        assert d.checksum() == before, "the swapped-in projection differs"
    d.run("replay")
    assert d.assert_projection_exact() == before
    d.assert_nothing_left_behind()


def _copies_of(path: Path) -> bool:
    """True while some process (an orphaned ``cp`` of the killed follower) still copies
    into ``path``'s temporary files."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f"{path.name}.tmp-".encode() in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


def crash_snapshot(d: Deployment, point: str) -> None:
    d.publish_jobs(JOBS)
    d.run(*TRACK)
    follow = ("project", "--follow", "--snapshot-interval", "0.1")
    d.crash(f"{point}=kill@2", *follow)  # the first snapshot after data arrived
    snap = snapshot_path(d.db)
    wait_until(lambda: not _copies_of(snap), "the killed follower's copy ended")
    proc, out = d.popen(*follow)
    with_data = {}

    def fresh() -> bool:
        assert proc.poll() is None, out.read_text()
        if not snap.exists():
            return False
        try:
            with DuckDBStore(snap, read_only=True) as store:
                with_data.update(store.counts())
        except duckdb.Error:  # replaced while we opened it: look again
            return False
        return with_data.get("events", 0) == d.distinct_events()

    wait_until(fresh, "the restarted follower's snapshot shows every event")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, out.read_text()
    d.assert_projection_exact()
    d.assert_nothing_left_behind()


def crash_serve(d: Deployment, point: str) -> None:
    creds = d.home.parent / "credentials.json"
    creds.write_text(json.dumps(KEYS))
    env = {k: v for k, v in d.env.items() if k != "MLINEAGE_HOME"}
    server = start_server(
        d.home, "--credentials", str(creds), env={**env, "MLINEAGE_FAILPOINTS": f"{point}=kill@3"}
    )
    sm = server.client()

    def create(i: int) -> None:
        sm.create_action(
            ActionName=f"step-{i}", ActionType="Step", Source={"SourceUri": f"s3://steps/{i}"}
        )

    create(0)
    create(1)
    with pytest.raises(BotoCoreError):
        create(2)  # appended, then the server died before answering
    assert server.proc.wait(60) == -signal.SIGKILL
    server = start_server(d.home, "--credentials", str(creds), env=env)
    try:
        sm = server.client()
        assert sm.describe_action(ActionName="step-2")["ActionName"] == "step-2"
        with pytest.raises(ClientError, match="already exists"):
            create(2)  # the client's retry: the write happened once
        create(3)
    finally:
        stop_server(server)
    d.assert_projection_exact()


def crash_spool(d: Deployment, point: str) -> None:
    """A producer dies after Kafka committed a spooled chunk and before the spool dropped it;
    the next producer on the same home adopts the spool and forwards the rest."""
    script = (
        "import sys\n"
        "from mlineage import Recorder, Settings\n"
        "rec = Recorder(Settings.load())\n"
        "for batch in range(int(sys.argv[1])):\n"
        "    events = rec.publish_many([{'event_type': 'EntityUpserted', 'payload': {'entity':\n"
        "        {'kind': 'action', 'action_name': f'{sys.argv[2]}-{batch}-{i}',\n"
        "         'action_type': 'Step'}}} for i in range(50)])\n"
        "    print(*(e.event_id for e in events), flush=True)\n"
        "rec.close()\n"
    )

    def publisher(
        batches: int, tag: str, failpoint: str | None
    ) -> subprocess.CompletedProcess[str]:
        env = {**d.env}
        if failpoint:
            env["MLINEAGE_FAILPOINTS"] = failpoint
        return subprocess.run(
            [sys.executable, "-c", script, str(batches), tag],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    first = publisher(6, "a", f"{point}=kill@2")
    assert first.returncode == -signal.SIGKILL, first.stderr
    published = first.stdout.split()
    assert len(published) >= 100, "the producer died before it published"
    second = publisher(1, "b", None)
    assert second.returncode == 0, second.stderr
    published += second.stdout.split()

    def all_in_kafka() -> bool:
        with open_log(d.log_url) as log:
            got = {str(decode(r.value).event_id) for r in read_all(log, TOPIC_ENTITIES)}
        return set(published) <= got

    wait_until(all_in_kafka, "every published event is in Kafka")
    d.run(*PROJECT)
    d.assert_projection_exact()
    d.assert_nothing_left_behind()


SCENARIOS: dict[str, Callable[[Deployment, str], None]] = {
    "tracker.before_transact": crash_tracker,
    "tracker.after_transact": crash_tracker,
    "kafka.before_commit": crash_tracker,
    "projector.before_commit": crash_projector,
    "projector.after_commit": crash_projector,
    "spool.after_forward": crash_spool,
    "replay.before_swap": crash_replay,
    "replay.after_swap": crash_replay,
    "serve.after_append": crash_serve,
    "snapshot.mid_copy": crash_snapshot,
}
KAFKA_ONLY = {"kafka.before_commit", "spool.after_forward"}
CASES = [
    pytest.param("sqlite", p, id=f"sqlite-{p}", marks=pytest.mark.slow)
    for p in SCENARIOS
    if p not in KAFKA_ONLY
] + [
    pytest.param("kafka", p, id=f"kafka-{p}", marks=[pytest.mark.slow, pytest.mark.kafka])
    for p in SCENARIOS
]


def deployment(log: str, tmp_path: Path, request: pytest.FixtureRequest) -> Deployment:
    """A deployment on the embedded log, or on the session's broker (a namespace of its own)."""
    home = tmp_path / "home"
    if log == "kafka":
        return Deployment(home, kafka_url_on(request.getfixturevalue("kafka_broker")))
    return Deployment(home, Settings.load(home=home, environ={}).log_url)


@pytest.mark.parametrize(("log", "point"), CASES)
def test_crash_at_failpoint_then_recover_exactly(
    log: str, point: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with deployment(log, tmp_path, request) as d:
        SCENARIOS[point](d, point)


def test_every_failpoint_in_the_code_is_listed_and_crash_tested() -> None:
    in_code = {
        m
        for path in SRC.rglob("*.py")
        for m in re.findall(r'failpoints\.hit\("([a-z_.]+)"\)', path.read_text())
    }
    assert in_code == set(failpoints.POINTS), "failpoints.POINTS and the code disagree"
    assert set(SCENARIOS) == set(failpoints.POINTS), "a failpoint has no crash test"
    design = (SRC.parents[1] / "docs" / "design.md").read_text()
    missing = [p for p in failpoints.POINTS if f"`{p}`" not in design]
    assert not missing, f"docs/design.md does not list {missing}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("projector.after_commit=kill", "is not point=action@N"),
        ("projector.after_comit=kill@1", "no failpoint 'projector.after_comit'"),
        ("projector.after_commit=explode@1", "'explode' is not an action"),
        ("projector.after_commit=kill@0", "hits count from 1"),
    ],
)
def test_a_bad_failpoint_setting_is_refused_with_what_to_write(text: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        failpoints.parse(text)


def test_failpoint_plans_count_hits() -> None:
    plans = failpoints.parse(" tracker.after_transact=raise@2+ , serve.after_append=stop@3")
    assert plans["tracker.after_transact"].action == "raise"
    assert plans["tracker.after_transact"].onward
    assert plans["serve.after_append"].at == 3
    saved = dict(failpoints._ARMED)
    failpoints._ARMED.clear()
    failpoints._ARMED.update({"tracker.after_transact": plans["tracker.after_transact"]})
    try:
        failpoints.hit("tracker.after_transact")  # the first hit passes
        for _ in range(2):  # the second, and every later one, raises
            with pytest.raises(failpoints.FailpointError, match="hit"):
                failpoints.hit("tracker.after_transact")
        failpoints.hit("projector.after_commit")  # not armed: nothing happens
    finally:
        failpoints._ARMED.clear()
        failpoints._ARMED.update(saved)


@pytest.mark.parametrize(
    ("log", "point"),
    [
        pytest.param("sqlite", "tracker.before_transact", id="sqlite", marks=pytest.mark.slow),
        pytest.param(
            "kafka", "kafka.before_commit", id="kafka", marks=[pytest.mark.slow, pytest.mark.kafka]
        ),
    ],
)
def test_a_following_tracker_rides_out_a_failing_log(
    log: str, point: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The log fails the tracker's 3rd and 4th transactions (a ``raise`` failpoint): the
    tracker says the log is not answering, rewinds, goes on when it answers, and derives
    every record exactly once."""
    with deployment(log, tmp_path, request) as d:
        url = d.log_url
        d.publish_jobs(JOBS)
        proc, out = d.popen(*TRACK, "--follow", failpoints=f"{point}=raise@3")

        def caught_up() -> bool:
            assert proc.poll() is None, out.read_text()[-3000:]
            with open_log(url) as opened:
                return opened.committed(
                    "mlineage-tracker", "mlineage.jobs.v1"
                ) == opened.end_offsets("mlineage.jobs.v1")

        wait_until(caught_up, "the tracker caught up after the fault")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, out.read_text()[-3000:]
        text = out.read_text()
        assert "is not answering" in text, text[-3000:]
        assert "answers again" in text, text[-3000:]
        d.assert_derived_exactly_once()
