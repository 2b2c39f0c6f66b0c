"""The committed JSON Schemas (``schemas/*.v1.json``): generated from the models without
drift, the examples validate against them, and they reject what the models reject wherever
JSON Schema can express the rule (patterns, lengths, counts, required, enums, types)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mlineage import arns
from mlineage.errors import EventValidationError
from mlineage.events.codec import decode
from mlineage.events.models import EVENT_TYPES, SCHEMA_VERSION
from mlineage.events.schemas import render, schema_documents
from tests.unit.event_examples import (
    DROP,
    EXAMPLE_FILES,
    EXAMPLE_IDS,
    SCHEMAS,
    variant,
)

DOCUMENTS = schema_documents()
FIX = "run `mlineage schemas export` (from the repository root) and commit the result"


# --- (a) drift ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("filename", "schema"), sorted(DOCUMENTS.items()), ids=sorted(DOCUMENTS))
def test_committed_schema_matches_the_models(filename: str, schema: dict[str, Any]) -> None:
    path = SCHEMAS / filename
    assert path.is_file(), f"schemas/{filename} is missing: {FIX}"
    assert path.read_text(encoding="utf-8") == render(schema), (
        f"schemas/{filename} differs from what the models generate: {FIX}"
    )


def test_no_stale_schema_files() -> None:
    committed = {p.name for p in SCHEMAS.glob(f"*.v{SCHEMA_VERSION}.json")}
    stale = sorted(committed - set(DOCUMENTS))
    assert not stale, (
        f"schemas/ holds files the models no longer produce {stale}: delete them, then {FIX}"
    )


def test_one_schema_per_event_type() -> None:
    assert set(DOCUMENTS) == {f"{t}.v{SCHEMA_VERSION}.json" for t in EVENT_TYPES}


@pytest.mark.parametrize("filename", sorted(DOCUMENTS))
def test_committed_schema_is_a_valid_draft_2020_12_schema(filename: str) -> None:
    schema = json.loads((SCHEMAS / filename).read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{filename}")
    Draft202012Validator.check_schema(schema)


# --- (b) the examples validate against the schema and the model -------------------------------


@cache
def validator(event_type: str) -> Draft202012Validator:
    schema = json.loads(
        (SCHEMAS / f"{event_type}.v{SCHEMA_VERSION}.json").read_text(encoding="utf-8")
    )
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(record: dict[str, Any]) -> list[str]:
    errors = validator(record["event_type"]).iter_errors(record)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def model_rejects(record: dict[str, Any]) -> bool:
    try:
        decode(json.dumps(record))
    except EventValidationError:
        return True
    return False


def test_there_are_examples() -> None:
    assert len(EXAMPLE_FILES) >= 20


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=EXAMPLE_IDS)
def test_example_validates_against_schema_and_model(path: Path) -> None:
    record = json.loads(path.read_text(encoding="utf-8"))
    assert path.stem.split(".", 1)[0] == record["event_type"]
    assert schema_errors(record) == []
    event = decode(path.read_bytes())
    assert event.event_type == record["event_type"]


# --- (c) the schema and the model agree on what they both can express ---------------------------

OTHER_ACCOUNT = "999988887777"

# rejected by both: each id names the rule, the schema keyword that expresses it in brackets
BOTH_REJECT: list[tuple[str, dict[str, Any]]] = [
    ("missing job_name [required]", variant("JobCreated.training", payload__job_name=DROP)),
    ("missing event_id [required]", variant("EntityUpserted.action", event_id=DROP)),
    (
        "action name over 120 [maxLength]",
        variant("EntityUpserted.action", payload__entity__action_name="a" * 121),
    ),
    (
        "action name breaks the pattern [pattern]",
        variant("EntityUpserted.action", payload__entity__action_name="bad_name!"),
    ),
    (
        "context name breaks the pattern [pattern]",
        variant("EntityDeleted.context", payload__context_name="_pipeline"),
    ),
    (
        "job_name over 63 [maxLength]",
        variant("JobCreated.training", payload__job_name="j" * 64, payload__job_arn=DROP),
    ),
    (
        "invalid ARN in an association [pattern]",
        variant("EntityUpserted.association", payload__entity__source_arn="s3://acme-ml-data/x"),
    ),
    (
        "over 30 properties [maxProperties]",
        variant(
            "EntityUpserted.action", payload__entity__properties={f"p{i}": "v" for i in range(31)}
        ),
    ),
    (
        "artifact property value over 4096 [maxLength]",
        variant("EntityUpserted.artifact", payload__entity__properties={"schema": "x" * 4097}),
    ),
    (
        "action property value over 2500 [maxLength]",
        variant("EntityUpserted.action", payload__entity__properties={"notes": "x" * 2501}),
    ),
    (
        "SourceUri over 2048 [maxLength]",
        variant(
            "EntityUpserted.artifact",
            payload__entity__source={"source_uri": "s3://acme-ml-data/" + "k" * 2031},
        ),
    ),
    (
        "more than 50 tags [maxItems]",
        variant(
            "EntityUpserted.experiment",
            payload__entity__tags=[{"key": f"k{i}", "value": "v"} for i in range(51)],
        ),
    ),
    (
        "unknown field [additionalProperties]",
        variant("EntityUpserted.action", payload__entity__colour="blue"),
    ),
    ("unknown envelope field [additionalProperties]", variant("JobCreated.training", partition=3)),
    ("string for an int [type]", variant("JobCreated.training", payload__instance_count="5")),
    (
        "string for a metric [type]",
        variant("JobStatusChanged.completed", payload__metrics={"validation:auc": "0.91"}),
    ),
    ("instance_count 0 [minimum]", variant("JobCreated.training", payload__instance_count=0)),
    (
        "unknown job_type [enum]",
        variant("JobCreated.training", payload__job_type="TuningJob", payload__job_arn=DROP),
    ),
    ("unknown status [enum]", variant("JobStatusChanged.completed", payload__status="Done")),
    (
        "unknown entity kind [oneOf]",
        variant("EntityUpserted.action", payload__entity__kind="model"),
    ),
    ("endpoint without models [minItems]", variant("EndpointCreated", payload__models=[])),
    ("schema_version 2 [const]", variant("JobCreated.training", schema_version=2)),
    (
        "endpoint_name over 63 [maxLength]",
        variant("EndpointCreated", payload__endpoint_name="x" * 64, payload__endpoint_arn=DROP),
    ),
    ("account_id of 11 digits [pattern]", variant("JobCreated.training", account_id="12345678901")),
    ("event_id not a UUID [format uuid]", variant("JobCreated.training", event_id="job-1")),
]


@pytest.mark.parametrize("record", [pytest.param(r, id=i) for i, r in BOTH_REJECT])
def test_schema_and_model_both_reject(record: dict[str, Any]) -> None:
    assert schema_errors(record), "the JSON Schema accepts it"
    assert model_rejects(record), "the model accepts it"


BOTH_ACCEPT: list[tuple[str, dict[str, Any]]] = [
    (
        "action name of 120",
        variant("EntityUpserted.action", payload__entity__action_name="a" * 120),
    ),
    (
        "job_name of 63",
        variant("JobCreated.training", payload__job_name="j" * 63, payload__job_arn=DROP),
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
    ("schema_version left out", variant("JobCreated.training", schema_version=DROP)),
]


@pytest.mark.parametrize("record", [pytest.param(r, id=i) for i, r in BOTH_ACCEPT])
def test_schema_and_model_both_accept_at_the_limit(record: dict[str, Any]) -> None:
    assert schema_errors(record) == []
    assert not model_rejects(record)


# Rules the JSON Schema cannot express (they span fields or parse ARNs), and one gap in what
# it does express: JSON Schema counts 1.0 as an integer, the strict model does not. Producers
# that validate only with the JSON Schema can still be rejected at publish: the models are
# the authority. If the schema learns one of these rules, move the case to BOTH_REJECT.
MODEL_ONLY: list[tuple[str, dict[str, Any]]] = [
    (
        "TransformJob without model_data_uri",
        variant("JobCreated.transform", payload__model_data_uri=DROP),
    ),
    (
        "trial_name without experiment_name",
        variant(
            "JobCreated.training", payload__experiment_config={"trial_name": "churn-xgb-baseline"}
        ),
    ),
    (
        "association to a trial",
        variant(
            "EntityUpserted.association",
            payload__entity__destination_arn=arns.arn(
                "us-east-1", "123456789012", "experiment-trial", "churn-xgb-baseline"
            ),
        ),
    ),
    (
        "association to an endpoint",
        variant(
            "EntityUpserted.association",
            payload__entity__destination_arn=arns.endpoint_arn(
                "us-east-1", "123456789012", "churn-prod"
            ),
        ),
    ),
    (
        "lineage_share owner is not the event account",
        variant("EntityUpserted.lineage_share", payload__entity__owner_account=OTHER_ACCOUNT),
    ),
    (
        "artifact_arn of another account",
        variant(
            "EntityDeleted.artifact",
            payload__artifact_arn=arns.artifact_arn("us-east-1", OTHER_ACCOUNT, "s3://a/b"),
        ),
    ),
    (
        "job_arn naming another job",
        variant(
            "JobCreated.training",
            payload__job_arn=arns.job_arn("us-east-1", "123456789012", "TrainingJob", "other"),
        ),
    ),
    ("1.0 for an int", variant("JobCreated.training", payload__instance_count=1.0)),
]


@pytest.mark.parametrize("record", [pytest.param(r, id=i) for i, r in MODEL_ONLY])
def test_rules_only_the_model_enforces(record: dict[str, Any]) -> None:
    assert schema_errors(record) == []
    assert model_rejects(record)


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return own + [p for v in node.values() for p in _patterns(v)]
    if isinstance(node, list):
        return [p for v in node for p in _patterns(v)]
    return []


@pytest.mark.parametrize("filename", sorted(DOCUMENTS))
def test_schema_patterns_are_portable(filename: str) -> None:
    patterns = _patterns(json.loads((SCHEMAS / filename).read_text(encoding="utf-8")))
    assert patterns
    assert [p for p in patterns if "(?P<" in p] == []
