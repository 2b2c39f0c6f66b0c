"""The real OpenLineage client's Kafka transport writing straight into
``mlineage.openlineage.v1`` on a real broker (bare OpenLineage JSON, keyed as the client keys
it): the tracker derives each event once, dead-letters what fails to validate with the
reason, the projection joins the SageMaker training job that reads the Spark task's output,
and a replay from the earliest offsets gives the same checksum."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka import KafkaProducer

from mlineage import Recorder, Settings
from mlineage.events.openlineage import KAFKA_ACCOUNT_ID
from mlineage.log.base import TOPIC_OPENLINEAGE, open_log
from mlineage.log.kafka import KafkaEventLog
from mlineage.ops import dead_letters
from mlineage.projection.service import ProjectorService, replay
from mlineage.projection.store import DuckDBStore
from mlineage.query.store import LineageStore
from mlineage.tracker.service import TrackerService
from tests.kafka_broker import Broker
from tests.openlineage_client import Pipeline

pytestmark = pytest.mark.kafka
TEAM = "111111111111"


def test_the_client_kafka_transport_feeds_the_tracker_exactly_once(
    kafka_url: str, kafka_broker: Broker, tmp_path: Path
) -> None:
    settings = Settings.load(home=tmp_path / "home", log_url=kafka_url, environ={})
    assert settings.account_id == KAFKA_ACCOUNT_ID  # bare events belong to the default account
    p = Pipeline()
    with open_log(kafka_url) as log:
        assert isinstance(log, KafkaEventLog)
        log.ensure_topics()
        topic = log.config.name(TOPIC_OPENLINEAGE)
    p.emit(
        {
            "type": "kafka",
            "topic": topic,
            "config": {"bootstrap.servers": kafka_broker.bootstrap, "acks": "all"},
            "flush": True,
        }
    )
    # another team's pipeline names its account in the transport's messageKey
    theirs = Pipeline()
    theirs.emit(
        {
            "type": "kafka",
            "topic": topic,
            "config": {"bootstrap.servers": kafka_broker.bootstrap, "acks": "all"},
            "messageKey": f"account:{TEAM}",
            "flush": True,
        }
    )
    # what a misconfigured producer could write there too
    bad = {
        b"{broken": "malformed JSON",
        json.dumps({**json.loads(_first(p)), "eventType": "DONE"}).encode(): "eventType",
        json.dumps({"eventTime": "2026-01-01T00:00:00Z", "run": {"runId": "x"}}).encode(): "runId",
    }
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for value in bad:
        producer.send(topic, value)
    producer.send(topic, _first(p).encode(), key=b"account:12")  # names no account
    bad[b"(a good event under a bad key)"] = "record key"
    producer.flush()
    producer.close()
    with Recorder(settings) as rec:
        rec.publish_many(p.sagemaker_events())
        assert rec.flush(60)

    with open_log(kafka_url) as log:
        stats = TrackerService(log).run(timeout=120)
        events = len(p.events()) + len(theirs.events())
        assert stats.consumed == events + len(bad) + len(p.sagemaker_events())
        assert stats.dead_lettered == len(bad)
        letters = [x for x in dead_letters(log) if x.original_topic == TOPIC_OPENLINEAGE]
        assert len(letters) == len(bad)
        for needle in bad.values():
            assert any(needle in x.error for x in letters), (needle, [x.error for x in letters])
        # exactly once: a second run finds nothing new
        assert TrackerService(log).run(timeout=60).consumed == 0

        with DuckDBStore(settings.db_path) as store:
            pstats = ProjectorService(log, store).run(timeout=120)
            assert pstats.dead_lettered == len(bad)
            expected = store.checksum()
            rows = store.con.execute(
                "SELECT count(*), count(DISTINCT job_name) FROM openlineage_events"
            ).fetchone()
            assert rows == (events, 6)
        rebuilt = replay(log, tmp_path / "replayed.duckdb")
        assert rebuilt.dead_lettered == len(bad)
    with DuckDBStore(tmp_path / "replayed.duckdb", read_only=True) as store:
        assert store.checksum() == expected

    account = KAFKA_ACCOUNT_ID
    with LineageStore.open(settings.db_path) as reader:
        walked = reader.query_lineage([p.endpoint_context(account)], direction="Ascendants")
        reached = {v.arn for v in walked.vertices}
        assert p.run_arn(account, "spark") in reached
        assert p.raw_arns(account) <= reached
        failed = reader.describe(p.run_arn(account, "dbt"), "trial_component")
        assert failed["Status"]["PrimaryStatus"] == "Failed"
        # the other team's runs are in its account, which the messageKey named
        _, owners = reader.sql(
            "SELECT DISTINCT account_id FROM openlineage_events WHERE job_name LIKE ?",
            [f"%{theirs.tag}%"],
        )
        assert owners == [(TEAM,)]
        reader.describe(theirs.run_arn(TEAM, "spark"), "trial_component")


def _first(p: Pipeline) -> str:
    from openlineage.client.serde import Serde

    return str(Serde.to_json(p.events()[0]))
