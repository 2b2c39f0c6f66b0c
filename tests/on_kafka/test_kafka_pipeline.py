"""The whole pipeline on a real Kafka broker: the same events give the same projection as
on the embedded log, tracker instances share the partitions without deriving anything
twice, and a replay from the earliest offsets matches the live projection."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from mlineage import Recorder, Settings, ops
from mlineage.events.codec import decode
from mlineage.log.base import TOPIC_ENTITIES, TOPIC_JOBS, open_log
from mlineage.log.kafka import KafkaEventLog
from mlineage.pipeline import sync
from mlineage.projection.service import ProjectorService, replay
from mlineage.projection.store import DuckDBStore
from mlineage.recorder import complete
from mlineage.tracker.service import GROUP, TrackerService
from tests.helpers import read_all, wait_until

pytestmark = pytest.mark.kafka


def workload(jobs: int, seed: int = 7) -> list[dict[str, Any]]:
    """Complete events (fixed ids and times), so two logs can be given exactly the same."""
    settings = Settings.load(environ={})
    drafts: list[dict[str, Any]] = []
    for i in range(jobs):
        name = f"job-{seed}-{i}"
        drafts.append(
            {
                "event_type": "JobCreated",
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": name,
                    "image_uri": f"reg/img:{i % 5}",
                    "inputs": [{"name": "train", "uri": f"s3://d/ds-{i % 17}"}],
                    "outputs": [{"name": "model", "uri": f"s3://m/{name}/model.tar.gz"}],
                },
            }
        )
        drafts.append(
            {
                "event_type": "JobStatusChanged",
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": name,
                    "status": "Completed",
                    "metrics": {"auc": (i % 100) / 100},
                },
            }
        )
    drafts.append(
        {
            "event_type": "EntityUpserted",
            "payload": {
                "entity": {
                    "kind": "context",
                    "context_name": "prod",
                    "context_type": "Endpoint",
                    "properties": {"team": "search"},
                }
            },
        }
    )
    drafts.append(
        {
            "event_type": "EntityDeleted",
            "payload": {"kind": "artifact", "source_uri": "s3://d/ds-3"},
        }
    )
    out = []
    for n, drafted in enumerate(drafts):
        draft = {
            **drafted,
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{n}")),
            "occurred_at": f"2026-01-01T00:{n // 600 % 60:02d}:{n // 10 % 60:02d}.{n % 10:03d}000Z",
        }
        out.append(complete(draft, settings))
    return out


def test_same_events_give_the_same_projection_as_the_embedded_log(
    kafka_url: str, tmp_path: Path
) -> None:
    events = workload(150)
    embedded = Settings.load(home=tmp_path / "embedded", environ={})
    with Recorder(embedded) as rec:
        rec.publish_many(events)
    sync(embedded)
    tc = (
        "arn:aws:sagemaker:us-east-1:000000000000:experiment-trial-component/"
        "job-7-3-aws-training-job"
    )
    with DuckDBStore(embedded.db_path, read_only=True) as store, open_log(embedded.log_url) as log:
        expected = store.checksum()
        embedded_history = [h["event"] for h in ops.history(store.con, log, tc)]
    assert len(embedded_history) == 2

    kafka = Settings.load(home=tmp_path / "kafka", log_url=kafka_url, environ={})
    with Recorder(kafka) as rec:
        for start in range(0, len(events), 64):  # several spool chunks, several partitions
            rec.publish_many(events[start : start + 64])
        assert rec.flush(60)
    with open_log(kafka_url) as log:
        assert len(log.partitions(TOPIC_JOBS)) == 3
        stats = TrackerService(log, batch_size=50).run(timeout=120)
        assert stats.consumed == 300
        with DuckDBStore(kafka.db_path) as store:
            ProjectorService(log, store, batch_size=100).run(timeout=120)
            assert store.checksum() == expected
            # the bodies are read back from Kafka by position: the same events as embedded
            assert [h["event"] for h in ops.history(store.con, log, tc)] == embedded_history
        rebuilt = replay(log, tmp_path / "replayed.duckdb")
        assert rebuilt.dead_lettered == 0
    with DuckDBStore(tmp_path / "replayed.duckdb", read_only=True) as store:
        assert store.checksum() == expected


def _members(bootstrap: str, group: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        try:
            desc = admin.describe_groups([group])[group]
        except KafkaError:  # the coordinator is still loading
            return 0
        return len(desc["members"]) if desc["group_state"] == "Stable" else 0
    finally:
        admin.close()


def test_two_tracker_instances_share_the_partitions_and_derive_once(
    kafka_url: str, tmp_path: Path
) -> None:
    stop = threading.Event()
    stats: dict[str, Any] = {}

    def run(instance: str) -> None:
        with open_log(kafka_url) as log:
            stats[instance] = TrackerService(log, batch_size=40, instance=instance).run(
                follow=True, timeout=180, stop=stop.is_set
            )

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    with open_log(kafka_url) as log:
        assert isinstance(log, KafkaEventLog)
        group = log.config.name(GROUP)
        wait_until(
            lambda: _members(",".join(log.config.bootstrap), group) >= 2,
            "the two trackers formed a group",
        )
        settings = Settings.load(home=tmp_path, log_url=kafka_url, environ={})
        with Recorder(settings) as rec:
            rec.publish_many(workload(300, seed=11))
            assert rec.flush(60)
        ends = log.end_offsets(TOPIC_JOBS)
        wait_until(lambda: log.committed(GROUP, TOPIC_JOBS) == ends, "the trackers caught up")
        stop.set()
        for t in threads:
            t.join(60)
        entities = read_all(log, TOPIC_ENTITIES)
    a, b = stats["a"], stats["b"]
    assert a.consumed > 0, "instance b did all the work"
    assert b.consumed > 0, "instance a did all the work"
    assert a.consumed + b.consumed == 600  # the jobs topic: 2 events per job
    ids = [decode(r.value).event_id for r in entities]
    assert len(ids) == len(set(ids)) == a.derived + b.derived + 2  # + 2 published directly
