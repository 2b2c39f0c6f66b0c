"""The event models and the codec: the examples validate, encoding is canonical and round
trips, and every rule of schema v1 rejects with a message naming the event type, the field
and the rule (ARCHITECTURE.md, "Events (schema v1)"; limits from the SageMaker reference)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, get_args

import pytest

from mlineage import arns
from mlineage.errors import EventValidationError
from mlineage.events import codec
from mlineage.events.codec import Rejected, decode, decode_many, encode, register_upcaster, upcast
from mlineage.events.models import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    Entity,
    EntityKey,
    EntityUpserted,
    JobCreated,
)
from tests.unit.event_examples import (
    DROP,
    EXAMPLE_FILES,
    EXAMPLE_IDS,
    EXAMPLES,
    example,
    variant,
)

OTHER_ACCOUNT = "999988887777"


def raw(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode("utf-8")


def kinds(union: Any) -> set[str]:
    """The ``kind`` tags of a discriminated union of entity (or key) models."""
    members = get_args(get_args(union)[0])
    return {get_args(m.model_fields["kind"].annotation)[0] for m in members}


def arn(resource: str, name: str, account: str = "123456789012") -> str:
    return arns.arn("us-east-1", account, resource, name)


# --- the examples --------------------------------------------------------------------------


def test_examples_cover_every_event_type_and_entity_kind() -> None:
    stems = set(EXAMPLE_IDS)
    types = {stem.split(".", 1)[0] for stem in stems}
    assert types == set(EVENT_TYPES)
    assert {
        "JobCreated.training",
        "JobCreated.processing",
        "JobCreated.transform",
        "JobStatusChanged.completed",
        "JobStatusChanged.failed",
    } <= stems
    upserted = {s.split(".", 1)[1] for s in stems if s.startswith("EntityUpserted.")}
    assert upserted == kinds(Entity)
    deleted = {s.split(".", 1)[1] for s in stems if s.startswith("EntityDeleted.")}
    assert {"artifact", "action", "association"} <= deleted <= kinds(EntityKey)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=EXAMPLE_IDS)
def test_example_is_a_complete_valid_envelope(path: Path) -> None:
    record = json.loads(path.read_text(encoding="utf-8"))
    event = decode(path.read_bytes())
    assert event.event_type == record["event_type"] == path.stem.split(".", 1)[0]
    # every envelope field is spelled out, not left to defaults
    assert {
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "account_id",
        "region",
        "payload",
    } <= set(record)
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["occurred_at"].endswith("Z")
    assert str(event.event_id) == record["event_id"]
    # ARNs name the envelope's account and region (cross-account ARNs are tested as
    # rejections below)
    for value in _strings(record["payload"]):
        parsed = arns.parse_arn(value) if value.startswith("arn:") else None
        if parsed is not None:
            assert (parsed.account, parsed.region) == (record["account_id"], record["region"])


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_example_event_ids_are_unique() -> None:
    ids = [example(stem)["event_id"] for stem in EXAMPLE_IDS]
    assert len(ids) == len(set(ids))


# --- canonical encoding and round trip -----------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=EXAMPLE_IDS)
def test_round_trip(path: Path) -> None:
    event = decode(path.read_bytes())
    encoded = encode(event)
    assert decode(encoded) == event
    assert encode(decode(encoded)) == encoded  # encoding a decoded encoding is a fixed point


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=EXAMPLE_IDS)
def test_encode_is_canonical(path: Path) -> None:
    event = decode(path.read_bytes())
    first, second = encode(event), encode(event)
    assert first == second
    # the same event parsed from differently formatted JSON has the same bytes
    reformatted = json.dumps(json.loads(path.read_bytes()), indent=4, sort_keys=False)
    assert encode(decode(reformatted)) == first
    # sorted keys at every level, no whitespace, UTF-8
    parsed = json.loads(first)
    assert first == json.dumps(
        parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    assert parsed["occurred_at"].endswith("Z")


def test_encode_normalises_occurred_at_to_utc() -> None:
    event = decode(raw(variant("JobCreated.training", occurred_at="2025-03-14T11:26:53+02:00")))
    same = decode(raw(example("JobCreated.training")))
    assert event == same
    assert encode(event) == encode(same)
    assert json.loads(encode(event))["occurred_at"] == "2025-03-14T09:26:53.000000Z"


def test_encode_drops_unset_optionals() -> None:
    minimal = {k: v for k, v in example("JobCreated.training").items() if k != "producer"}
    minimal["payload"] = {"job_type": "TrainingJob", "job_name": "minimal-job"}
    encoded = json.loads(encode(decode(raw(minimal))))
    assert "producer" not in encoded
    assert "caused_by" not in encoded
    assert "image_uri" not in encoded["payload"]


# --- rejections ----------------------------------------------------------------------------

# (id, record, event type, field as named in the message, fragment of the rule)
REJECTIONS: list[tuple[str, dict[str, Any], str, str, str]] = [
    (
        "unknown event_type",
        variant("JobCreated.training", event_type="JobDeleted"),
        "event",
        "event_type",
        "unknown event type 'JobDeleted'",
    ),
    (
        "missing job_name",
        variant("JobCreated.training", payload__job_name=DROP),
        "JobCreated",
        "payload.job_name",
        "is required",
    ),
    (
        "missing payload",
        variant("EndpointCreated", payload=DROP),
        "EndpointCreated",
        "payload",
        "is required",
    ),
    (
        "missing event_id",
        variant("JobCreated.training", event_id=DROP),
        "JobCreated",
        "event_id",
        "is required",
    ),
    (
        "action name over 120",
        variant("EntityUpserted.action", payload__entity__action_name="a" * 121),
        "EntityUpserted",
        "payload.entity.action_name",
        "at most 120 characters",
    ),
    (
        "action name breaks the pattern",
        variant("EntityUpserted.action", payload__entity__action_name="bad_name!"),
        "EntityUpserted",
        "payload.entity.action_name",
        "should match pattern",
    ),
    (
        "action name with underscore",
        variant("EntityUpserted.action", payload__entity__action_name="feature_selection"),
        "EntityUpserted",
        "payload.entity.action_name",
        "should match pattern",
    ),
    (
        "context name with double dash end",
        variant("EntityUpserted.context", payload__entity__context_name="pipeline-"),
        "EntityUpserted",
        "payload.entity.context_name",
        "should match pattern",
    ),
    (
        "trial name over 120 in a delete",
        variant("EntityDeleted.trial", payload__trial_name="t" * 121),
        "EntityDeleted",
        "payload.trial_name",
        "at most 120 characters",
    ),
    (
        "job_name over 63",
        variant("JobCreated.training", payload__job_name="j" * 64, payload__job_arn=DROP),
        "JobCreated",
        "payload.job_name",
        "at most 63 characters",
    ),
    (
        "endpoint_name over 63",
        variant("EndpointCreated", payload__endpoint_name="e" * 64, payload__endpoint_arn=DROP),
        "EndpointCreated",
        "payload.endpoint_name",
        "at most 63 characters",
    ),
    (
        "association with an invalid ARN",
        variant(
            "EntityUpserted.association",
            payload__entity__source_arn="s3://acme-ml-data/churn/2025-03-01/train/",
        ),
        "EntityUpserted",
        "payload.entity.source_arn",
        "should match pattern",
    ),
    (
        "association to a trial",
        variant(
            "EntityUpserted.association",
            payload__entity__destination_arn=arn("experiment-trial", "churn-xgb-baseline"),
        ),
        "EntityUpserted",
        "payload.entity",
        "destination_arn is a trial: associations cannot end at a trial",
    ),
    (
        "association from a trial",
        variant(
            "EntityUpserted.association",
            payload__entity__source_arn=arn("experiment-trial", "churn-xgb-baseline"),
        ),
        "EntityUpserted",
        "payload.entity",
        "source_arn is a trial",
    ),
    (
        "association to an endpoint",
        variant(
            "EntityUpserted.association",
            payload__entity__destination_arn=arn("endpoint", "churn-prod"),
        ),
        "EntityUpserted",
        "payload.entity",
        "destination_arn must be an artifact, action, context, experiment or trial component "
        "ARN, not endpoint",
    ),
    (
        "invalid association_type",
        variant("EntityUpserted.association", payload__entity__association_type="Feeds"),
        "EntityUpserted",
        "payload.entity.association_type",
        "Input should be",
    ),
    (
        "over 30 properties",
        variant(
            "EntityUpserted.action", payload__entity__properties={f"p{i}": "v" for i in range(31)}
        ),
        "EntityUpserted",
        "payload.entity.properties",
        "at most 30 items",
    ),
    (
        "over 30 artifact properties",
        variant(
            "EntityUpserted.artifact", payload__entity__properties={f"p{i}": "v" for i in range(31)}
        ),
        "EntityUpserted",
        "payload.entity.properties",
        "at most 30 items",
    ),
    (
        "artifact property value over 4096",
        variant("EntityUpserted.artifact", payload__entity__properties={"schema": "x" * 4097}),
        "EntityUpserted",
        "payload.entity.properties.schema",
        "at most 4096 characters",
    ),
    (
        "action property value over 2500",
        variant("EntityUpserted.action", payload__entity__properties={"notes": "x" * 2501}),
        "EntityUpserted",
        "payload.entity.properties.notes",
        "at most 2500 characters",
    ),
    (
        "context property value over 2500",
        variant("EntityUpserted.context", payload__entity__properties={"notes": "x" * 2501}),
        "EntityUpserted",
        "payload.entity.properties.notes",
        "at most 2500 characters",
    ),
    (
        "property key over 2500",
        variant("EntityUpserted.action", payload__entity__properties={"k" * 2501: "v"}),
        "EntityUpserted",
        f"payload.entity.properties.{'k' * 2501}.[key]",
        "at most 2500 characters",
    ),
    (
        "SourceUri over 2048",
        variant(
            "EntityUpserted.artifact",
            payload__entity__source={"source_uri": "s3://acme-ml-data/" + "k" * 2031},
        ),
        "EntityUpserted",
        "payload.entity.source.source_uri",
        "at most 2048 characters",
    ),
    (
        "job input uri over 2048",
        variant(
            "JobCreated.processing",
            payload__inputs=[{"name": "raw", "uri": "s3://acme-ml-raw/" + "k" * 2032}],
        ),
        "JobCreated",
        "payload.inputs.0.uri",
        "at most 2048 characters",
    ),
    (
        "more than 50 tags",
        variant(
            "EntityUpserted.experiment",
            payload__entity__tags=[{"key": f"k{i}", "value": "v"} for i in range(51)],
        ),
        "EntityUpserted",
        "payload.entity.tags",
        "at most 50 items",
    ),
    (
        "more than 50 job tags",
        variant(
            "JobCreated.transform",
            payload__tags=[{"key": f"k{i}", "value": "v"} for i in range(51)],
        ),
        "JobCreated",
        "payload.tags",
        "at most 50 items",
    ),
    (
        "description over 3072",
        variant("EntityUpserted.action", payload__entity__description="d" * 3073),
        "EntityUpserted",
        "payload.entity.description",
        "at most 3072 characters",
    ),
    (
        "unknown field in an entity",
        variant("EntityUpserted.action", payload__entity__colour="blue"),
        "EntityUpserted",
        "payload.entity.colour",
        "is not a field of this event (unknown field)",
    ),
    (
        "unknown field in the envelope",
        variant("JobCreated.training", partition=3),
        "JobCreated",
        "partition",
        "is not a field of this event (unknown field)",
    ),
    (
        "field of another kind",
        variant("EntityUpserted.context", payload__entity__status="Completed"),
        "EntityUpserted",
        "payload.entity.status",
        "is not a field of this event",
    ),
    (
        "string for an int (strict)",
        variant("JobCreated.training", payload__instance_count="5"),
        "JobCreated",
        "payload.instance_count",
        "Input should be a valid integer",
    ),
    (
        "string for a version (strict)",
        variant("ModelPackageCreated", payload__version="3"),
        "ModelPackageCreated",
        "payload.version",
        "Input should be a valid integer",
    ),
    (
        "float for an int (strict)",
        variant("JobCreated.training", payload__instance_count=1.0),
        "JobCreated",
        "payload.instance_count",
        "Input should be a valid integer",
    ),
    (
        "string for a metric (strict)",
        variant("JobStatusChanged.completed", payload__metrics={"validation:auc": "0.91"}),
        "JobStatusChanged",
        "payload.metrics.validation:auc",
        "Input should be a valid number",
    ),
    (
        "unknown job_type",
        variant("JobCreated.training", payload__job_type="TuningJob", payload__job_arn=DROP),
        "JobCreated",
        "payload.job_type",
        "Input should be 'TrainingJob'",
    ),
    (
        "unknown status",
        variant("JobStatusChanged.completed", payload__status="Done"),
        "JobStatusChanged",
        "payload.status",
        "Input should be 'InProgress'",
    ),
    (
        "TransformJob without model_data_uri",
        variant("JobCreated.transform", payload__model_data_uri=DROP),
        "JobCreated",
        "payload",
        "model_data_uri is required for a TransformJob",
    ),
    (
        "trial_name without experiment_name",
        variant(
            "JobCreated.training", payload__experiment_config={"trial_name": "churn-xgb-baseline"}
        ),
        "JobCreated",
        "payload.experiment_config",
        "trial_name needs experiment_name",
    ),
    (
        "job_arn of another job type",
        variant(
            "JobCreated.training",
            payload__job_arn=arn("processing-job", "churn-xgb-2025-03-14-09-26-53"),
        ),
        "JobCreated",
        "payload",
        "job_arn must be a training-job ARN for a TrainingJob",
    ),
    (
        "job_arn naming another job",
        variant("JobCreated.training", payload__job_arn=arn("training-job", "another-job")),
        "JobCreated",
        "payload",
        "job_arn and job_name name different jobs",
    ),
    (
        "status change without job_name or job_arn",
        variant("JobStatusChanged.failed", payload__job_arn=DROP),
        "JobStatusChanged",
        "payload",
        "one of job_name or job_arn is required",
    ),
    (
        "model_package_arn of another version",
        variant("ModelPackageCreated", payload__version=4),
        "ModelPackageCreated",
        "payload",
        "model_package_arn must be",
    ),
    (
        "endpoint without models",
        variant("EndpointCreated", payload__models=[]),
        "EndpointCreated",
        "payload.models",
        "at least 1 item",
    ),
    (
        "parameter with both values",
        variant(
            "EntityUpserted.trial_component",
            payload__entity__parameters={"k": {"string_value": "40", "number_value": 40}},
        ),
        "EntityUpserted",
        "payload.entity.parameters.k",
        "exactly one of string_value or number_value",
    ),
    (
        "artifact without a key",
        variant("EntityUpserted.artifact", payload__entity__source=DROP),
        "EntityUpserted",
        "payload.entity",
        "needs source.source_uri (its key) or artifact_arn",
    ),
    (
        "artifact delete by ARN and URI",
        variant("EntityDeleted.artifact", payload__source_uri="s3://acme-ml-raw/x.parquet"),
        "EntityDeleted",
        "payload",
        "exactly one of artifact_arn or source_uri",
    ),
    (
        "artifact_arn of a context",
        variant("EntityDeleted.artifact", payload__artifact_arn=arn("context", "churn_pipeline")),
        "EntityDeleted",
        "payload",
        "artifact_arn must be a SageMaker artifact ARN",
    ),
    (
        "unknown entity kind",
        variant("EntityUpserted.action", payload__entity__kind="model"),
        "EntityUpserted",
        "payload.entity",
        "does not match any of the expected tags",
    ),
    (
        "naive timestamp",
        variant("JobCreated.training", occurred_at="2025-03-14T09:26:53"),
        "JobCreated",
        "occurred_at",
        "Input should have timezone info",
    ),
    (
        "naive end_time",
        variant("JobStatusChanged.completed", payload__end_time="2025-03-14T09:41:05"),
        "JobStatusChanged",
        "payload.end_time",
        "Input should have timezone info",
    ),
    (
        "not a timestamp",
        variant("EntityUpserted.experiment", occurred_at="yesterday"),
        "EntityUpserted",
        "occurred_at",
        "Input should be a valid datetime",
    ),
    (
        "event_id not a UUID",
        variant("JobCreated.training", event_id="job-1"),
        "JobCreated",
        "event_id",
        "Input should be a valid UUID",
    ),
    (
        "account_id of 11 digits",
        variant("JobCreated.training", account_id="12345678901"),
        "JobCreated",
        "account_id",
        "should match pattern",
    ),
    (
        "schema_version 2 (newer)",
        variant("JobCreated.training", schema_version=2),
        "JobCreated",
        "schema_version",
        "version 2 is newer than this mlineage understands (1); upgrade mlineage",
    ),
    (
        "schema_version 0 without upcaster",
        variant("EntityUpserted.trial", schema_version=0),
        "EntityUpserted",
        "schema_version",
        "no upcaster from version 0",
    ),
    (
        "schema_version as a string",
        variant("JobCreated.training", schema_version="1"),
        "JobCreated",
        "schema_version",
        "Input should be 1",
    ),
    (
        "lineage_share owner is not the event account",
        variant("EntityUpserted.lineage_share", payload__entity__owner_account=OTHER_ACCOUNT),
        "EntityUpserted",
        "(event)",
        "a lineage share must be published by its owner_account",
    ),
    (
        "lineage_share delete by a grantee",
        variant(
            "EntityDeleted.lineage_share",
            payload__owner_account=OTHER_ACCOUNT,
            payload__grantee_account="123456789012",
        ),
        "EntityDeleted",
        "(event)",
        "a lineage share must be published by its owner_account",
    ),
    (
        "lineage_share with itself",
        variant("EntityUpserted.lineage_share", payload__entity__grantee_account="123456789012"),
        "EntityUpserted",
        "payload.entity",
        "cannot share its lineage group with itself",
    ),
    (
        "artifact_arn of another account",
        variant(
            "EntityDeleted.artifact",
            payload__artifact_arn=arns.artifact_arn("us-east-1", OTHER_ACCOUNT, "s3://a/b"),
        ),
        "EntityDeleted",
        "(event)",
        "artifact_arn names another account or region",
    ),
    (
        "artifact_arn of another region",
        variant(
            "EntityUpserted.artifact",
            payload__entity__source={"source_uri": "s3://a/b"},
            payload__entity__artifact_arn=arns.artifact_arn(
                "eu-west-1", "123456789012", "s3://a/b"
            ),
        ),
        "EntityUpserted",
        "(event)",
        "artifact_arn names another account or region",
    ),
]


@pytest.mark.parametrize(
    ("record", "event_type", "field", "rule"),
    [pytest.param(*case[1:], id=case[0]) for case in REJECTIONS],
)
def test_rejection_names_event_type_field_and_rule(
    record: dict[str, Any], event_type: str, field: str, rule: str
) -> None:
    with pytest.raises(EventValidationError) as info:
        decode(raw(record))
    message = str(info.value)
    assert f"{event_type}: field '{field}'" in message
    assert rule in message
    # the structured problems name the same event type and field
    assert (event_type, field) in [(t, f) for t, f, _ in info.value.problems]
    # a count limit (the server's ResourceLimitExceeded) is a list or map over its length,
    # never a string over its length nor a rule that mentions "max" (metric min and max)
    assert info.value.count_limit == ("items" in rule), rule


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        pytest.param(b'{"event_type": "JobCreated", "payload": {', "malformed JSON", id="cut"),
        pytest.param(b"", "malformed JSON", id="empty"),
        pytest.param(b"\xff\xfe{}", "malformed JSON", id="not UTF-8"),
        pytest.param(b'{"event_type": "JobCreated",}', "malformed JSON", id="trailing comma"),
    ],
)
def test_malformed_json_is_rejected(value: bytes, rule: str) -> None:
    with pytest.raises(EventValidationError) as info:
        decode(value)
    assert str(info.value).startswith(f"event: {rule}")
    assert [(t, f) for t, f, _ in info.value.problems] == [("event", "(json)")]


@pytest.mark.parametrize("value", [b"[]", b"null", b'"JobCreated"', b"42"])
def test_non_object_is_rejected(value: bytes) -> None:
    with pytest.raises(EventValidationError, match="not a JSON object"):
        decode(value)


def test_several_problems_are_all_named() -> None:
    record = variant(
        "JobCreated.training",
        payload__job_name="j" * 64,
        payload__job_arn=DROP,
        payload__instance_count="5",
        region="US East",
    )
    with pytest.raises(EventValidationError) as info:
        decode(raw(record))
    fields = {f for _, f, _ in info.value.problems}
    assert {"payload.job_name", "payload.instance_count", "region"} <= fields


# --- limits: the largest valid value passes ---------------------------------------------------

ACCEPTED_AT_LIMIT: list[tuple[str, dict[str, Any]]] = [
    (
        "action name of 120",
        variant("EntityUpserted.action", payload__entity__action_name="a" * 120),
    ),
    (
        "job_name of 63",
        variant("JobCreated.training", payload__job_name="j" * 63, payload__job_arn=DROP),
    ),
    (
        "context name with underscores",
        variant("EntityUpserted.context", payload__entity__context_name="a_b__c-d"),
    ),
    (
        "name with repeated dashes",
        variant("EntityUpserted.action", payload__entity__action_name="a--b"),
    ),
    (
        "30 properties",
        variant(
            "EntityUpserted.action", payload__entity__properties={f"p{i}": "v" for i in range(30)}
        ),
    ),
    (
        "artifact property value of 4096",
        variant("EntityUpserted.artifact", payload__entity__properties={"schema": "x" * 4096}),
    ),
    (
        "action property value of 2500",
        variant("EntityUpserted.action", payload__entity__properties={"notes": "x" * 2500}),
    ),
    (
        "SourceUri of 2048",
        variant(
            "EntityUpserted.artifact",
            payload__entity__source={"source_uri": "s3://acme-ml-data/" + "k" * 2030},
        ),
    ),
    (
        "50 tags",
        variant(
            "EntityUpserted.experiment",
            payload__entity__tags=[{"key": f"k{i}", "value": "v"} for i in range(50)],
        ),
    ),
    (
        "experiment_name without trial_name",
        variant("JobCreated.training", payload__experiment_config={"experiment_name": "churn"}),
    ),
    ("status change by job_arn only", example("JobStatusChanged.failed")),
    (
        "occurred_at with an offset",
        variant("JobCreated.training", occurred_at="2025-03-14T11:26:53.123456+02:00"),
    ),
    ("schema_version left out", variant("JobCreated.training", schema_version=DROP)),
    (
        "artifact upsert by ARN only",
        variant(
            "EntityUpserted.artifact",
            payload__entity__source=DROP,
            payload__entity__artifact_arn=arns.artifact_arn(
                "us-east-1", "123456789012", "s3://acme-ml-raw/x.parquet"
            ),
        ),
    ),
    (
        "association to an experiment",
        variant(
            "EntityUpserted.association",
            payload__entity__destination_arn=arn("experiment", "churn-prediction"),
        ),
    ),
    (
        "association to another account's artifact",
        variant(
            "EntityUpserted.association",
            payload__entity__source_arn=arns.artifact_arn("us-east-1", OTHER_ACCOUNT, "s3://a/b"),
        ),
    ),
]


@pytest.mark.parametrize("record", [pytest.param(r, id=i) for i, r in ACCEPTED_AT_LIMIT])
def test_accepted_at_the_limit(record: dict[str, Any]) -> None:
    event = decode(raw(record))
    assert decode(encode(event)) == event


# --- decode_many ---------------------------------------------------------------------------


def test_decode_many_rejects_exactly_the_bad_indices() -> None:
    good = [
        (EXAMPLES / f"{stem}.json").read_bytes()
        for stem in (
            "JobCreated.training",
            "EntityUpserted.action",
            "EntityDeleted.association",
            "JobStatusChanged.completed",
            "EndpointCreated",
        )
    ]
    batch = [
        good[0],
        b'{"event_type": "JobCreated", "payload": {',  # bad JSON in the middle
        good[1],
        raw(variant("EntityUpserted.action", payload__entity__action_name="bad_name!")),
        good[2],
        raw(variant("JobCreated.training", event_type="JobDeleted")),
        raw(variant("JobCreated.training", schema_version=2)),
        good[3],
        b"[]",
        good[4],
    ]
    bad = {
        1: "malformed JSON",
        3: "payload.entity.action_name",
        5: "unknown event type",
        6: "newer than",
        8: "not a JSON object",
    }
    result = decode_many(batch)
    assert len(result) == len(batch)
    for i, item in enumerate(result):
        if i in bad:
            assert isinstance(item, Rejected), i
            assert item.index == i
            assert bad[i] in item.error
        else:
            assert item == decode(batch[i]), i


def test_decode_many_all_good_matches_decode() -> None:
    batch = [p.read_bytes() for p in EXAMPLE_FILES]
    assert decode_many(batch) == [decode(v) for v in batch]
    assert decode_many([]) == []


@pytest.mark.parametrize("bad_index", [0, 2, 4])
def test_decode_many_single_bad_record_anywhere(bad_index: int) -> None:
    batch = [encode(decode(p.read_bytes())) for p in EXAMPLE_FILES[:5]]
    batch[bad_index] = b"not json"
    result = decode_many(batch)
    assert [i for i, r in enumerate(result) if isinstance(r, Rejected)] == [bad_index]


# --- upcasting ---------------------------------------------------------------------------------


def _v0(record: dict[str, Any]) -> dict[str, Any]:
    """A fake version 0 of JobCreated: the job's name was ``name``, the type ``type``."""
    old = copy.deepcopy(record)
    old["schema_version"] = 0
    payload = old["payload"]
    payload["name"] = payload.pop("job_name")
    payload["type"] = payload.pop("job_type")
    return old


def _register_v0_upcaster() -> None:
    @register_upcaster("JobCreated", 0)
    def _job_created_v0(record: dict[str, Any]) -> dict[str, Any]:
        new = copy.deepcopy(record)
        payload = new["payload"]
        payload["job_name"] = payload.pop("name")
        payload["job_type"] = payload.pop("type")
        return new


def test_upcaster_is_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "UPCASTERS", dict(codec.UPCASTERS))
    _register_v0_upcaster()
    assert ("JobCreated", 0) in codec.UPCASTERS
    current = example("JobCreated.transform")
    old = _v0(current)

    assert upcast(copy.deepcopy(old)) == current
    assert decode(raw(old)) == decode(raw(current))
    # a batch with an old record falls back to one-by-one decoding, which upcasts it
    batch = [raw(current), raw(old)]
    assert decode_many(batch) == [decode(raw(current))] * 2
    # other event types at version 0 still have no upcaster
    with pytest.raises(EventValidationError, match="no upcaster from version 0"):
        decode(raw(variant("EndpointCreated", schema_version=0)))


def test_upcasters_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "UPCASTERS", {})
    seen: list[int] = []

    for version in (SCHEMA_VERSION - 2, SCHEMA_VERSION - 1):

        @register_upcaster("EntityUpserted", version)
        def _step(record: dict[str, Any], version: int = version) -> dict[str, Any]:
            seen.append(version)
            assert record["schema_version"] == version
            return dict(record)

    record = variant("EntityUpserted.experiment", schema_version=SCHEMA_VERSION - 2)
    assert upcast(record)["schema_version"] == SCHEMA_VERSION
    assert seen == [SCHEMA_VERSION - 2, SCHEMA_VERSION - 1]


def test_no_upcaster_registered_by_default() -> None:
    # only v1 exists: an old record is an error, never silently accepted
    with pytest.raises(EventValidationError) as info:
        decode(raw(_v0(example("JobCreated.training"))))
    assert info.value.problems == [("JobCreated", "schema_version", "no upcaster from version 0")]


# --- models directly ---------------------------------------------------------------------


def test_models_are_frozen_and_strict() -> None:
    event = decode(raw(example("JobCreated.training")))
    assert isinstance(event, JobCreated)
    with pytest.raises(ValueError, match="frozen"):
        event.region = "eu-west-1"  # type: ignore[misc]
    assert EntityUpserted.model_config.get("strict") is True
    assert EntityUpserted.model_config.get("extra") == "forbid"


# --- regressions: defects found in src and fixed ---------------------------------------------
# A consumer must survive anything a raw Kafka producer writes: every bad record must become
# an EventValidationError (decode) or a Rejected at its own index (decode_many), never an
# exception of another type and never a shifted index.


@pytest.mark.parametrize("event_type", [[], {}], ids=["list", "object"])
def test_unhashable_event_type_is_rejected(event_type: Any) -> None:
    record = variant("JobCreated.training", event_type=event_type)
    with pytest.raises(EventValidationError, match="event_type"):
        decode(raw(record))
    assert isinstance(decode_many([raw(example("EndpointCreated")), raw(record)])[1], Rejected)


def test_deeply_nested_json_is_rejected() -> None:
    value = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(EventValidationError):
        decode(value)
    assert isinstance(decode_many([raw(example("EndpointCreated")), value])[1], Rejected)


def test_decode_many_keeps_one_result_per_value() -> None:
    first, second = raw(example("JobCreated.training")), raw(example("EndpointCreated"))
    with pytest.raises(EventValidationError):
        decode(first + b"," + second)  # on its own the value is rejected ...
    result = decode_many([first + b"," + second, second])
    assert len(result) == 2  # ... but in a batch it yields three events
    assert isinstance(result[0], Rejected)


def test_nan_metric_is_rejected() -> None:
    record = variant("JobStatusChanged.completed", payload__metrics={"loss": float("nan")})
    with pytest.raises(EventValidationError, match=r"payload\.metrics"):
        decode(raw(record))


def test_property_named_like_a_kind_is_named_in_the_error() -> None:
    record = variant("EntityUpserted.action", payload__entity__properties={"trial": "x" * 2501})
    with pytest.raises(EventValidationError) as info:
        decode(raw(record))
    assert "field 'payload.entity.properties.trial'" in str(info.value)
