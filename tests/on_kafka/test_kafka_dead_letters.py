"""Bad records written straight into the topics (as any raw Kafka producer could) land in the
dead letters with their reasons; everything else is projected; ``mlineage dlq`` lists them
and redrives the ones that validate once the cause is fixed; ``mlineage status`` shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from mlineage import Recorder, Settings
from mlineage.events import codec
from mlineage.log.base import TOPIC_DLQ, TOPIC_ENTITIES, TOPIC_JOBS, open_log
from mlineage.log.kafka import KafkaEventLog
from mlineage.ops import dead_letters, redrive
from mlineage.projection.service import ProjectorService
from mlineage.projection.store import DuckDBStore
from mlineage.tracker.service import TrackerService

pytestmark = pytest.mark.kafka


def job(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "JobCreated",
        "schema_version": 1,
        "occurred_at": "2026-01-01T00:00:00.000000Z",
        "account_id": "000000000000",
        "region": "us-east-1",
        "payload": {"job_type": "TrainingJob", "job_name": name, "image_uri": "reg/img:1", **extra},
    }


BAD_ON_JOBS = {
    b"\xff\xfe not json": "malformed JSON",
    json.dumps({"hello": "world"}).encode(): "event_type",
    json.dumps({**job("missing-type"), "payload": {"job_name": "x"}}).encode(): "job_type",
    json.dumps({**job("old"), "schema_version": 0}).encode(): "schema_version",
    json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "EntityUpserted",
            "schema_version": 1,
            "occurred_at": "2026-01-01T00:00:00Z",
            "account_id": "000000000000",
            "region": "us-east-1",
            "payload": {"entity": {"kind": "context", "context_name": "c", "context_type": "T"}},
        }
    ).encode(): "not a source event",
}
BAD_ON_ENTITIES = {
    b"{truncated": "malformed JSON",
    json.dumps(job("a-job-on-the-entities-topic")).encode(): "JobCreated",
}


@pytest.fixture
def injected(kafka_url: str, tmp_path: Path) -> tuple[str, Settings]:
    settings = Settings.load(home=tmp_path, log_url=kafka_url, environ={})
    with Recorder(settings) as rec:
        rec.job_created(
            "TrainingJob",
            "good-before",
            image_uri="reg/img:1",
            inputs={"train": "s3://d/train"},
            outputs={"model": "s3://m/1"},
        )
        assert rec.flush(60)
        log = rec.log
        assert isinstance(log, KafkaEventLog) or hasattr(log, "target")
    with open_log(kafka_url) as log:
        assert isinstance(log, KafkaEventLog)
        raw = KafkaProducer(bootstrap_servers=list(log.config.bootstrap))
        for value in BAD_ON_JOBS:
            raw.send(log.config.name(TOPIC_JOBS), key=b"bad", value=value)
        for value in BAD_ON_ENTITIES:
            raw.send(log.config.name(TOPIC_ENTITIES), key=b"bad", value=value)
        raw.flush()
        raw.close()
    with Recorder(settings) as rec:
        rec.job_created(
            "TrainingJob",
            "good-after",
            image_uri="reg/img:1",
            inputs={"train": "s3://d/train"},
            outputs={"model": "s3://m/2"},
        )
        assert rec.flush(60)
    return kafka_url, settings


def test_bad_records_are_dead_lettered_with_reasons_and_the_rest_is_projected(
    injected: tuple[str, Settings],
) -> None:
    url, settings = injected
    with open_log(url) as log:
        stats = TrackerService(log).run(timeout=120)
        assert stats.dead_lettered == len(BAD_ON_JOBS)
        letters = dead_letters(log)
        assert len(letters) == len(BAD_ON_JOBS)
        for letter in letters:
            assert letter.original_topic == TOPIC_JOBS
            assert letter.original_offset is not None
            assert letter.original_partition is not None
            # the original bytes, unchanged
            (original,) = log.read(TOPIC_JOBS, letter.original_partition, letter.original_offset, 1)
            assert original.value == letter.record.value
        reasons = sorted(letter.error for letter in letters)
        for needle in BAD_ON_JOBS.values():
            assert any(needle in r for r in reasons), (needle, reasons)

        with DuckDBStore(settings.db_path) as store:
            pstats = ProjectorService(log, store).run(timeout=120)
            # the projector reads both topics (source events make the jobs table)
            assert pstats.dead_lettered == len(BAD_ON_JOBS) + len(BAD_ON_ENTITIES)
            rows = store.con.execute("SELECT topic, error FROM dead_letters").fetchall()
            assert sorted(t for t, _ in rows) == sorted(
                [TOPIC_JOBS] * len(BAD_ON_JOBS) + [TOPIC_ENTITIES] * len(BAD_ON_ENTITIES)
            )
            for needle in BAD_ON_ENTITIES.values():
                assert any(needle in e for _, e in rows), (needle, rows)
            jobs = {r[0] for r in store.con.execute("SELECT job_name FROM jobs").fetchall()}
            assert jobs == {"good-before", "good-after"}


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLINEAGE_HOME": str(settings.home), "MLINEAGE_LOG": settings.log_url}
    return subprocess.run(
        [sys.executable, "-m", "mlineage.cli", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_dlq_list_redrive_and_status(
    injected: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, settings = injected
    with open_log(url) as log:
        TrackerService(log).run(timeout=120)
        with DuckDBStore(settings.db_path) as store:
            ProjectorService(log, store).run(timeout=120)

    listed = _cli(settings, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sum(e["source"] == "tracker" for e in entries) == len(BAD_ON_JOBS)
    assert sum(e["source"] == "projector" for e in entries) == len(BAD_ON_JOBS) + len(
        BAD_ON_ENTITIES
    )

    status = _cli(settings, "status", "--json")
    assert status.returncode == 0, status.stderr
    st = json.loads(status.stdout)
    assert st["dead_letters"]["topic_pending"] == len(BAD_ON_JOBS)
    assert st["dead_letters"]["projector_table"] == len(BAD_ON_JOBS) + len(BAD_ON_ENTITIES)
    assert {c["name"]: c["lag"] for c in st["consumers"]}["mlineage-tracker"] == 0

    # the fix: an upcaster for the old schema version; redrive sends that one back, once
    def upcast_v0(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "schema_version": 1}

    monkeypatch.setitem(codec.UPCASTERS, ("JobCreated", 0), upcast_v0)
    with open_log(url) as log:
        result = redrive(log)
        assert [json.loads(r.record.value)["payload"]["job_name"] for r in result.redriven] == [
            "old"
        ]
        assert len(result.still_bad) == len(BAD_ON_JOBS) - 1
        again = redrive(log)  # nothing fixed since: the rest only moves to the back again
        assert again.redriven == []  # "old" was redriven exactly once
        assert len(again.still_bad) == len(BAD_ON_JOBS) - 1
        assert len(dead_letters(log)) == len(BAD_ON_JOBS) - 1  # pending: the same four
        TrackerService(log).run(timeout=120)
        with DuckDBStore(settings.db_path) as store:
            ProjectorService(log, store).run(timeout=120)
            jobs = {r[0] for r in store.con.execute("SELECT job_name FROM jobs").fetchall()}
        assert jobs == {"good-before", "good-after", "old"}
        all_letters = dead_letters(log, pending_only=False)
        assert len(all_letters) == len(BAD_ON_JOBS) + 2 * (len(BAD_ON_JOBS) - 1)
    assert TOPIC_DLQ in _cli(settings, "dlq", "list").stdout
