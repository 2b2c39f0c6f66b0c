"""Faults on a real broker: the tracker and the projector are SIGKILLed at random points of
the publishing and restarted; afterwards nothing is missing or doubled. The broker itself
crashes in the middle of a tracker's transaction: the services ride it out. And the broker
stops while producers publish: they spool, and forward once it is back."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlineage import Recorder, Settings
from mlineage.events.codec import decode
from mlineage.log.base import TOPIC_ENTITIES, TOPIC_JOBS, open_log
from mlineage.projection.service import PROJECTED_TOPICS, ProjectorService, replay
from mlineage.projection.store import DuckDBStore
from mlineage.tracker.derive import derive
from mlineage.tracker.service import GROUP
from tests.conftest import kafka_url_on
from tests.crash import Deployment, stopped
from tests.helpers import read_all, training_job_drafts, wait_until
from tests.kafka_broker import Broker, own_broker_or_skip
from tests.serve.conftest import KEYS, start_server, stop_server

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
JOBS = 20_000
CHUNK = 500
KILLS = 5


def job_events(first: int, count: int, seed: int) -> list[dict[str, Any]]:
    return training_job_drafts(first, count, JOBS // 5, random.Random(seed + first))


class Service:
    """A CLI service run as a subprocess, killed and restarted by the test."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.logs = logs
        self.kills = 0
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts += 1
        out = (self.logs / f"{self.name}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=out)

    def kill(self) -> None:
        assert self.proc is not None
        assert self.proc.poll() is None, f"{self.name} died by itself: see {self.logs}"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def close(self) -> None:
        """Kill it if it still runs (a failed test must not leave services behind)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        assert self.proc is not None
        assert self.proc.poll() is None, f"{self.name} died by itself: see {self.logs}"
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0, f"{self.name} did not stop cleanly: see {self.logs}"


def test_sigkill_tracker_and_projector_during_a_run_loses_and_doubles_nothing(
    kafka_broker: Broker, tmp_path: Path
) -> None:
    """Jobs are published chunk by chunk while both services follow; after randomly drawn
    chunks (progress, not a clock) one of them is SIGKILLed and restarted, so every kill
    lands while jobs are still arriving."""
    url = kafka_url_on(kafka_broker)
    home = tmp_path / "home"
    settings = Settings.load(home=home, log_url=url, environ={})
    env = {
        **os.environ,
        "MLINEAGE_HOME": str(home),
        "MLINEAGE_LOG": url,
        "MLINEAGE_INSTANCE_ID": "fault-test",
    }
    cli = [sys.executable, "-m", "mlineage.cli"]
    logs = tmp_path / "logs"
    logs.mkdir()
    tracker = Service("tracker", [*cli, "track", "--follow", "--batch-size", "500"], env, logs)
    projector = Service(
        "projector",
        [*cli, "project", "--follow", "--batch-size", "5000", "--snapshot-interval", "5"],
        env,
        logs,
    )
    rng = random.Random(5)
    chunks = JOBS // CHUNK
    kill_after = sorted(rng.sample(range(1, chunks - 1), 2 * KILLS))
    victims = [tracker, projector] * KILLS
    rng.shuffle(victims)

    try:
        tracker.start()
        projector.start()
        with Recorder(settings) as rec, open_log(url) as log:
            for chunk in range(chunks):
                rec.publish_many(job_events(chunk * CHUNK, CHUNK, seed=3))
                if chunk in kill_after:
                    # wait until the victim has work in hand (the tracker: this chunk reached
                    # the log; both: the run is under way), then kill it there
                    assert rec.flush(120)
                    victim = victims[kill_after.index(chunk)]
                    victim.kill()
                    victim.start()
            assert rec.flush(120), "the publisher did not finish"

            wait_until(
                lambda: log.committed(GROUP, TOPIC_JOBS) == log.end_offsets(TOPIC_JOBS),
                "the tracker caught up",
                timeout=300,
            )
            tracker.stop()
            # (a partition nothing was written to has no stored position: the OpenLineage
            # topic's, here)
            ends = {(t, p): e for t in PROJECTED_TOPICS for p, e in log.end_offsets(t).items() if e}
            projector.stop()  # then catch up the rest in-process and compare with a clean replay
            with DuckDBStore(settings.db_path) as store:
                ProjectorService(log, store).run(timeout=240)
                assert store.positions("mlineage-projector") == ends
                live = store.checksum()
                jobs = store.con.execute("SELECT count(*) FROM jobs").fetchall()[0][0]
            replay(log, tmp_path / "clean.duckdb")
            with DuckDBStore(tmp_path / "clean.duckdb", read_only=True) as clean:
                assert clean.checksum() == live
            assert jobs == JOBS

            # no derived event twice among the committed records, none missing
            sources = [decode(r.value) for r in read_all(log, TOPIC_JOBS)]
            assert len(sources) == 2 * JOBS
            assert len({s.event_id for s in sources}) == 2 * JOBS
            derived = [str(decode(r.value).event_id) for r in read_all(log, TOPIC_ENTITIES)]
            assert len(derived) == len(set(derived)), "a derived event was committed twice"
            expected = {str(d.event_id) for s in sources for d in derive(s)}
            assert set(derived) == expected
    finally:
        for service in (tracker, projector):
            service.close()
    assert tracker.kills == KILLS
    assert projector.kills == KILLS


def test_the_tracker_rides_out_a_broker_crash_in_the_middle_of_a_transaction(
    tmp_path: Path,
) -> None:
    """The tracker is frozen (a failpoint) between sending a batch's offsets and committing
    it; the broker is SIGKILLed, the tracker thawed: its commit fails or stays in doubt. It
    must say so, keep retrying while the broker is down, resume by itself once it is back,
    and derive every record exactly once. The projector follows throughout, and a server on
    the same log answers writes 503 while the broker is away and serves them once it is
    back."""
    with own_broker_or_skip(tmp_path / "broker") as broker:
        url = kafka_url_on(broker)
        with Deployment(tmp_path / "home", url) as d:
            d.publish_jobs(300)
            tracker_proc, tracker_log = d.popen(
                "track", "--follow", "--batch-size", "50", failpoints="kafka.before_commit=stop@3"
            )
            projector_proc, projector_log = d.popen("project", "--follow")
            creds = tmp_path / "credentials.json"
            creds.write_text(json.dumps(KEYS))
            server = start_server(
                d.home,
                "--credentials",
                str(creds),
                env={
                    **{k: v for k, v in d.env.items() if k != "MLINEAGE_HOME"},
                    "MLINEAGE_DB": str(tmp_path / "serve.duckdb"),
                },
            )
            d.procs.append(server.proc)
            sm = server.client()
            wait_until(lambda: stopped(tracker_proc.pid), "the tracker froze before a commit")
            broker.kill()
            os.kill(tracker_proc.pid, signal.SIGCONT)

            def says(proc: subprocess.Popen[bytes], log: Path, words: str) -> Callable[[], bool]:
                def check() -> bool:
                    assert proc.poll() is None, f"it died: {log.read_text()[-3000:]}"
                    return words in log.read_text(errors="replace")

                return check

            wait_until(
                says(tracker_proc, tracker_log, "is not answering"),
                "the tracker reported the outage",
                timeout=180,
            )
            with pytest.raises(ClientError) as refused:
                sm.create_action(
                    ActionName="in-the-outage",
                    ActionType="Step",
                    Source={"SourceUri": "s3://steps/outage"},
                )
            assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
            serve_log = d.home / "serve.log"
            wait_until(
                says(server.proc, serve_log, "is not answering"),
                "the server reported the outage",
                timeout=180,
            )
            # more jobs while the broker is down: they wait in the spool, adopted and forwarded
            # by the next producer on this home once the broker is back
            d.publish_jobs(100, seed=9, first=300, wait=False)
            broker.start()
            wait_until(
                says(tracker_proc, tracker_log, "answers again"),
                "the tracker reported the log is back",
                timeout=180,
            )
            wait_until(
                says(server.proc, serve_log, "answers again"),
                "the server reported the log is back",
                timeout=180,
            )

            def written() -> bool:
                try:
                    sm.create_action(
                        ActionName="after-the-outage",
                        ActionType="Step",
                        Source={"SourceUri": "s3://steps/after"},
                    )
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "ServiceUnavailable":
                        raise
                    return False
                return True

            wait_until(written, "the server took a write again", timeout=180)
            assert sm.describe_action(ActionName="after-the-outage")["ActionName"]
            stop_server(server)

            d.publish_jobs(10, first=400)  # a producer on this home: adopts the spool too
            with open_log(url) as log:
                wait_until(
                    lambda: len(read_all(log, TOPIC_JOBS)) == 2 * 410,
                    "the spooled jobs reached Kafka",
                    timeout=300,
                )
                wait_until(
                    lambda: log.committed(GROUP, TOPIC_JOBS) == log.end_offsets(TOPIC_JOBS),
                    "the tracker caught up",
                    timeout=300,
                )
            for proc, log_path in ((tracker_proc, tracker_log), (projector_proc, projector_log)):
                assert proc.poll() is None, log_path.read_text()[-3000:]
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(60) == 0, log_path.read_text()[-3000:]
            d.assert_derived_exactly_once()
            d.run("project")
            d.assert_projection_exact()
            assert len(d.source_records()) == 2 * 410


def test_producers_spool_while_the_broker_is_down_and_lose_nothing(tmp_path: Path) -> None:
    with own_broker_or_skip(tmp_path / "broker") as broker:
        url = kafka_url_on(broker)
        settings = Settings.load(home=tmp_path / "home", log_url=url, environ={})
        rec = Recorder(settings)
        published = []

        def publish(first: int, count: int) -> None:
            for i in range(first, first + count):
                entity = {"kind": "action", "action_name": f"step-{i}", "action_type": "Step"}
                event = rec.publish(rec.build("EntityUpserted", {"entity": entity}))
                published.append(str(event.event_id))

        publish(0, 200)
        assert rec.flush(60)
        broker.stop()
        # the broker is down: publishing must neither fail nor block (a publish that
        # blocked would hold the test past its time-out)
        publish(200, 300)
        assert not rec.flush(2), "nothing can have reached a stopped broker"
        assert rec.log.pending() > 0  # type: ignore[attr-defined]
        broker.start()
        publish(500, 100)
        assert rec.flush(120), "the spool was not forwarded once the broker was back"
        rec.close()

        with open_log(url) as log:
            got = [str(decode(r.value).event_id) for r in read_all(log, TOPIC_ENTITIES)]
        assert set(got) == set(published)  # nothing lost (a chunk in doubt when the broker
        # stopped may have been forwarded twice: same event ids, applied once by the projector)
