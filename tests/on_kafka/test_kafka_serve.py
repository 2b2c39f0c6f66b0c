"""``mlineage serve`` with Kafka as the log: writes are events on the Kafka topics, and a
Describe right after a Create finds the entity."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlineage.events.codec import decode
from mlineage.log.base import TOPIC_ENTITIES, open_log
from tests.serve.conftest import start_server, stop_server

pytestmark = pytest.mark.kafka


def test_serve_writes_events_to_kafka(kafka_url: str, tmp_path: Path) -> None:
    server = start_server(tmp_path / "home", "--no-auth", env={"MLINEAGE_LOG": kafka_url})
    try:
        sm = server.client("anyone", secret="anything")
        arn = sm.create_artifact(Source={"SourceUri": "s3://kafka/served"}, ArtifactType="DataSet")[
            "ArtifactArn"
        ]
        assert sm.describe_artifact(ArtifactArn=arn)["Source"]["SourceUri"] == "s3://kafka/served"
        sm.create_action(
            ActionName="served-step", ActionType="Step", Source={"SourceUri": "s3://kafka/step"}
        )
        sm.add_association(
            SourceArn=arn, DestinationArn=sm.describe_action(ActionName="served-step")["ActionArn"]
        )
        # the start and the action it leads to
        assert len(sm.query_lineage(StartArns=[arn], Direction="Descendants")["Vertices"]) == 2
    finally:
        stop_server(server)
    with open_log(kafka_url) as log:
        kinds = []
        for p in log.partitions(TOPIC_ENTITIES):
            for record in log.read(TOPIC_ENTITIES, p, 0, 100):
                event = decode(record.value)
                assert event.producer == "mlineage-serve"
                kinds.append(event.payload.entity.kind)  # type: ignore[union-attr]
    assert sorted(kinds) == ["action", "artifact", "association"]
