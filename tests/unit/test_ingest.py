"""The SQL stage (projection/ingest.py) against the pydantic models and project(): for
generated events and mutations of them, a batch projected through DuckDB (with what it
defers going through the models) has exactly the rows of the all-Python path, dead letters
and their errors included; and the valid events of the shapes it handles are decided in SQL
(so the fast path is really taken)."""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlineage.events.codec import dumps
from mlineage.log.base import TOPIC_ENTITIES, TOPIC_JOBS, Record
from mlineage.projection.ingest import SqlIngest, project_batch
from mlineage.projection.service import ALLOWED
from mlineage.projection.store import Batch

ACCOUNT = "123456789012"
REGION = "us-east-1"

# -- valid events of the shapes SQL decides -------------------------------------------------------

names = st.from_regex(r"\A[a-zA-Z0-9](-?[a-zA-Z0-9]){0,20}\Z")
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
uris = st.one_of(
    st.builds(lambda k: f"s3://bucket/data/{k}/", st.integers(0, 50)),
    text,
)
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 1e-7, 1e16, 0.736123, 123456789.125]),
)
ints = st.one_of(st.integers(-(2**63) + 1, 2**63 - 1), st.integers(-5, 5))
times = st.one_of(
    st.sampled_from(
        [
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.000000Z",
            "2024-02-29T23:59:59.5+05:30",
            "2025-12-31T23:00:00-08:00",
            "1999-06-01T12:30:45.123456Z",
        ]
    ),
    st.datetimes(
        min_value=datetime(1950, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.isoformat().replace("+00:00", "Z")),
)
statuses = st.sampled_from(["InProgress", "Completed", "Failed", "Stopping", "Stopped"])
job_types = st.sampled_from(["TrainingJob", "ProcessingJob", "TransformJob"])
small_maps = st.dictionaries(text, text, max_size=3)


def arns_of(resource: str) -> st.SearchStrategy[str]:
    return names.map(lambda n: f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{resource}/{n}")


@st.composite
def data_refs(draw: st.DrawFn) -> list[dict[str, Any]]:
    refs = []
    for _ in range(draw(st.integers(0, 3))):
        ref = {"name": draw(text), "uri": draw(uris)}
        if draw(st.booleans()):
            ref["artifact_type"] = draw(text)
        refs.append(ref)
    return refs


@st.composite
def tags(draw: st.DrawFn) -> list[dict[str, str]]:
    keys = draw(st.lists(text, max_size=3, unique=True))
    return [{"key": k, "value": draw(st.text(max_size=5))} for k in keys]


@st.composite
def job_created(draw: st.DrawFn) -> dict[str, Any]:
    job_type = draw(job_types)
    payload: dict[str, Any] = {"job_type": job_type, "job_name": draw(names)}
    if job_type == "TransformJob" or draw(st.booleans()):
        payload["model_data_uri"] = draw(uris)
    for field in ("image_uri", "checkpoint_uri"):
        if draw(st.booleans()):
            payload[field] = draw(uris)
    if draw(st.booleans()):
        payload["inputs"] = draw(data_refs())
    if draw(st.booleans()):
        payload["outputs"] = draw(data_refs())
    if draw(st.booleans()):
        payload["parameters"] = draw(
            st.dictionaries(text, st.one_of(text, ints, floats, st.booleans()), max_size=4)
        )
    if draw(st.booleans()):
        payload["instance_type"] = draw(st.sampled_from(["ml.m5.xlarge", "ml.p3.2xlarge"]))
    if draw(st.booleans()):
        payload["instance_count"] = draw(st.integers(1, 10_000))
    if draw(st.booleans()):
        payload["tags"] = draw(tags())
    return envelope(draw, "JobCreated", payload)


@st.composite
def job_status_changed(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "job_type": draw(job_types),
        "job_name": draw(names),
        "status": draw(statuses),
    }
    if draw(st.booleans()):
        payload["outputs"] = draw(data_refs())
    if draw(st.booleans()):
        payload["metrics"] = draw(st.dictionaries(text, st.one_of(floats, ints), max_size=4))
    if draw(st.booleans()):
        payload["failure_reason"] = draw(st.text(max_size=20))
    if draw(st.booleans()):
        payload["end_time"] = draw(times)
    return envelope(draw, "JobStatusChanged", payload)


@st.composite
def artifact(draw: st.DrawFn) -> dict[str, Any]:
    entity: dict[str, Any] = {"kind": "artifact", "source": {"source_uri": draw(uris)}}
    if draw(st.booleans()):
        entity["artifact_name"] = draw(names)
    if draw(st.booleans()):
        entity["artifact_type"] = draw(text)
    if draw(st.booleans()):
        entity["properties"] = draw(small_maps)
    if draw(st.booleans()):
        entity["properties_to_remove"] = draw(st.lists(text, max_size=3))
    if draw(st.booleans()):
        entity["tags"] = draw(tags())
    if draw(st.booleans()):
        entity["tags_to_remove"] = draw(st.lists(text, max_size=3))
    return envelope(draw, "EntityUpserted", {"entity": entity})


@st.composite
def trial_component(draw: st.DrawFn) -> dict[str, Any]:
    entity: dict[str, Any] = {"kind": "trial_component", "trial_component_name": draw(names)}
    if draw(st.booleans()):
        entity["display_name"] = draw(text)
    if draw(st.booleans()):
        status: dict[str, Any] = {"primary_status": draw(statuses)}
        if draw(st.booleans()):
            status["message"] = draw(st.text(max_size=10))
        entity["status"] = status
    for field in ("start_time", "end_time"):
        if draw(st.booleans()):
            entity[field] = draw(times)
    if draw(st.booleans()):
        source = {"source_arn": draw(arns_of("training-job"))}
        if draw(st.booleans()):
            source["source_type"] = "SageMakerTrainingJob"
        entity["source"] = source
    if draw(st.booleans()):
        entity["parameters"] = draw(
            st.dictionaries(
                text,
                st.one_of(
                    st.builds(lambda s: {"string_value": s}, st.text(max_size=5)),
                    st.builds(lambda f: {"number_value": f}, st.one_of(floats, ints)),
                ),
                max_size=3,
            )
        )
    for field in ("input_artifacts", "output_artifacts"):
        if draw(st.booleans()):
            value = st.builds(lambda u: {"value": u}, uris) | st.builds(
                lambda u, m: {"value": u, "media_type": m}, uris, st.text(max_size=5)
            )
            entity[field] = draw(st.dictionaries(text, value, max_size=3))
    if draw(st.booleans()):
        entity["metrics"] = draw(st.dictionaries(text, st.one_of(floats, ints), max_size=3))
    if draw(st.booleans()):
        entity["parameters_to_remove"] = draw(st.lists(text, max_size=2))
    if draw(st.booleans()):
        entity["tags"] = draw(tags())
    return envelope(draw, "EntityUpserted", {"entity": entity})


@st.composite
def association(draw: st.DrawFn) -> dict[str, Any]:
    ends = st.one_of(arns_of("artifact"), arns_of("experiment-trial-component"), arns_of("context"))
    entity: dict[str, Any] = {
        "kind": "association",
        "source_arn": draw(ends),
        "destination_arn": draw(ends),
    }
    if draw(st.booleans()):
        entity["association_type"] = draw(
            st.sampled_from(["ContributedTo", "AssociatedWith", "DerivedFrom", "Produced"])
        )
    return envelope(draw, "EntityUpserted", {"entity": entity})


def envelope(draw: st.DrawFn, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": str(draw(st.uuids())),
        "event_type": event_type,
        "occurred_at": draw(times),
        "account_id": ACCOUNT,
        "region": REGION,
        "payload": payload,
    }
    if draw(st.booleans()):
        record["schema_version"] = 1
    if draw(st.booleans()):
        record["producer"] = draw(st.text(max_size=10))
    if draw(st.booleans()):
        record["caused_by"] = str(draw(st.uuids()))
    return record


valid_events = st.one_of(
    job_created(), job_status_changed(), artifact(), trial_component(), association()
)

# -- mutations: every rule, unknown fields, wrong types, nulls, text-level damage -----------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


REPLACEMENTS = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(),  # NaN and infinities too
    st.text(max_size=3),
    st.sampled_from(
        [
            "",
            "x" * 3000,
            "é" * 130,
            "1",
            "TrainingJob",
            "Completed",
            "artifact",
            "2024-01-01T24:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.1234567Z",
            "arn:aws:sagemaker:us-east-1:123456789012:experiment-trial/x",
            "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x",
            "7311D8A3-C2CE-4F44-BED4-D57B1E2FEB89",
            "not-a-uuid",
            "-x-",
            1.0,
            10_001,
            0,
            2**70,
            [],
            {},
            ["a", "a"],
            {"value": "s3://x"},
            {"unknown": 1},
        ]
    ),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    record = draw(valid_events)
    kind = draw(
        st.sampled_from(["replace", "delete", "add", "text", "dupe", "order", "many", "large"])
    )
    if kind in ("replace", "delete", "add", "many", "large"):
        record = copy.deepcopy(record)
        for _ in range(draw(st.integers(1, 3)) if kind == "many" else 1):
            paths = _paths(record)
            path = draw(st.sampled_from(paths))
            *parents, leaf = path
            node: Any = record
            for part in parents:
                node = node[part]
            if kind == "delete" and isinstance(node, dict):
                del node[leaf]
            elif kind == "add" and isinstance(node, dict):
                node[draw(st.sampled_from(["extra", "kind", "job_arn", "metadata", "Name"]))] = (
                    draw(REPLACEMENTS)
                )
            elif kind == "large" and isinstance(node, dict):
                node[leaf] = {f"k{i}": "v" for i in range(draw(st.sampled_from([30, 31, 61])))}
            else:
                node[leaf] = draw(REPLACEMENTS)
        return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    raw = dumps(record)
    if kind == "order":  # the same event with its keys in another order, or spaced out
        return json.dumps(record, indent=draw(st.sampled_from([None, 1]))).encode()
    if kind == "dupe":  # a key given twice (Python keeps the last)
        return raw.replace('"event_type":', '"event_type":"Nope","event_type":', 1).encode()
    cut = draw(st.integers(0, len(raw)))
    damage = draw(
        st.sampled_from([b"", b"\xff", b"\xed\xa0\x80", b"\\u0041", b",", b" ", b"\x00", b"}"])
    )
    data = raw.encode()
    return data[:cut] + damage + data[cut:]


# -- the comparison --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ingest() -> SqlIngest:
    return SqlIngest(TOPIC_JOBS, TOPIC_ENTITIES)


def records_of(values: list[bytes], topics: list[str]) -> list[Record]:
    return [
        Record(topic, 0, offset, None, value, (), 0)
        for offset, (value, topic) in enumerate(zip(values, topics, strict=True))
    ]


def topic_of(value: bytes) -> str:
    return TOPIC_JOBS if b'"Job' in value else TOPIC_ENTITIES


def rows(batch: Batch) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: sorted((tuple(r.values()) for r in getattr(batch, name).to_pylist()), key=repr)
        for name in ("events", "marks", "facts", "dead")
    }


def check_same(ingest: SqlIngest, values: list[bytes], topics: list[str]) -> list[int]:
    records = records_of(values, topics)
    python = project_batch(records, ALLOWED, None)
    staged = ingest.stage(records)
    rest = project_batch([records[k] for k in staged.deferred], ALLOWED, None)
    combined = Batch(
        _concat(staged.events, rest.events),
        _concat(staged.marks, rest.marks),
        _concat(staged.facts, rest.facts),
        rest.dead,
    )
    assert rows(combined) == rows(python)
    return staged.deferred


def _concat(a: pa.Table, b: pa.Table) -> pa.Table:
    return pa.concat_tables([a.cast(b.schema), b])


def diff(examples: int) -> Any:
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


@diff(60)
@given(st.lists(valid_events, min_size=1, max_size=8))
def test_valid_events_are_decided_in_sql_with_the_rows_of_the_models(
    ingest: SqlIngest, events: list[dict[str, Any]]
) -> None:
    values = [dumps(e).encode() for e in events]
    deferred = check_same(ingest, values, [topic_of(v) for v in values])
    # the canonical bytes of every valid event of these shapes take the SQL path, except
    # those that carry a "null" or a backslash in their text, a number DuckDB writes
    # otherwise than Python (1e16 -> 10000000000000000.0) or an integer of 19 digits or more
    undecidable = [
        i
        for i, v in enumerate(values)
        if b"null" in v or b"\\" in v or re.search(rb"e[+-]|[0-9]{19}", v)
    ]
    assert set(deferred) <= set(undecidable)


@diff(150)
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_mutated_events_give_the_rows_and_dead_letters_of_the_models(
    ingest: SqlIngest, values: list[bytes]
) -> None:
    check_same(ingest, values, [topic_of(v) for v in values])


@diff(20)
@given(st.lists(valid_events, min_size=1, max_size=4))
def test_events_on_the_wrong_topic_are_left_to_the_models(
    ingest: SqlIngest, events: list[dict[str, Any]]
) -> None:
    values = [dumps(e).encode() for e in events]
    wrong = [TOPIC_ENTITIES if topic_of(v) == TOPIC_JOBS else TOPIC_JOBS for v in values]
    assert check_same(ingest, values, wrong) == list(range(len(values)))


def test_a_damaged_record_among_good_ones_is_dead_lettered_by_the_models(
    ingest: SqlIngest,
) -> None:
    good = {
        "event_id": str(uuid.uuid4()),
        "event_type": "JobCreated",
        "occurred_at": "2024-01-01T00:00:00Z",
        "account_id": ACCOUNT,
        "region": REGION,
        "payload": {"job_type": "TrainingJob", "job_name": "a", "instance_count": 0},
    }
    values = [dumps(good).encode(), b"{not json", dumps({**good, "payload": {}}).encode()]
    deferred = check_same(ingest, values, [TOPIC_JOBS] * 3)
    assert deferred == [0, 1, 2]  # instance_count 0 breaks a rule: SQL leaves it to pydantic


# -- every rule at its boundary: the last value accepted is decided in SQL, the first refused
#    is dead-lettered by the models (with the same rows both ways) ------------------------------

BASES: dict[str, dict[str, Any]] = {
    "job": {
        "event_type": "JobCreated",
        "payload": {
            "job_type": "TrainingJob",
            "job_name": "j",
            "inputs": [{"name": "train", "uri": "s3://b/k/"}],
            "parameters": {"lr": 0.1},
            "instance_count": 1,
            "tags": [{"key": "team", "value": "a"}],
        },
    },
    "status": {
        "event_type": "JobStatusChanged",
        "payload": {
            "job_type": "TrainingJob",
            "job_name": "j",
            "status": "Completed",
            "metrics": {"acc": 0.5},
            "failure_reason": "r",
            "end_time": "2024-01-01T00:00:00Z",
        },
    },
    "artifact": {
        "event_type": "EntityUpserted",
        "payload": {
            "entity": {
                "kind": "artifact",
                "source": {"source_uri": "s3://b/k"},
                "artifact_name": "a",
                "artifact_type": "DataSet",
                "properties": {"p": "v"},
                "properties_to_remove": ["q"],
                "tags": [{"key": "t", "value": "v"}],
                "tags_to_remove": ["u"],
            }
        },
    },
    "tc": {
        "event_type": "EntityUpserted",
        "payload": {
            "entity": {
                "kind": "trial_component",
                "trial_component_name": "t",
                "display_name": "d",
                "status": {"primary_status": "Completed", "message": "m"},
                "start_time": "2024-01-01T00:00:00Z",
                "source": {"source_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/j"},
                "parameters": {"p": {"string_value": "s"}, "q": {"number_value": 2}},
                "parameters_to_remove": ["r"],
                "input_artifacts": {"i": {"value": "s3://b/i", "media_type": "m"}},
                "output_artifacts": {"o": {"value": "s3://b/o"}},
                "metrics": {"m": 1},
            }
        },
    },
    "assoc": {
        "event_type": "EntityUpserted",
        "payload": {
            "entity": {
                "kind": "association",
                "source_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:artifact/a",
                "destination_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:context/c",
                "association_type": "Produced",
            }
        },
    },
}
ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"


# (base, dotted path, last accepted value, first refused value); DROP_IT removes the field
DROP_IT = object()
RULES: list[tuple[str, str, Any, Any]] = [
    ("job", "event_id", "7311d8a3-c2ce-4f44-bed4-d57b1e2feb89", "7311d8a3-c2ce-4f44-bed4"),
    ("job", "account_id", "000000000000", "00000000000"),
    ("job", "region", "a" * 32, "a" * 33),
    ("job", "region", "eu-west-1", "EU-west-1"),
    ("job", "producer", "p" * 256, "p" * 257),
    ("job", "caused_by", "7311d8a3-c2ce-4f44-bed4-d57b1e2feb89", "x"),
    ("job", "schema_version", 1, 2),
    ("job", "schema_version", 1, 0),
    ("job", "occurred_at", "2024-01-01T23:59:59.999999+23:59", "2024-01-01T00:00:00"),
    ("job", "occurred_at", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z"),
    ("job", "payload.job_type", "ProcessingJob", "Job"),
    ("job", "payload.job_name", "a" * 63, "a" * 64),
    ("job", "payload.job_name", "a-b--c", "a-"),
    ("job", "payload.image_uri", "i" * 2048, "i" * 2049),
    ("job", "payload.image_uri", "i", ""),
    ("job", "payload.model_data_uri", "m" * 2048, "m" * 2049),
    ("job", "payload.checkpoint_uri", "c" * 2048, ""),
    ("job", "payload.inputs", [{"name": "n", "uri": "u"}] * 60, [{"name": "n", "uri": "u"}] * 61),
    ("job", "payload.inputs.0.name", "n" * 128, "n" * 129),
    ("job", "payload.inputs.0.uri", "u" * 2048, "u" * 2049),
    ("job", "payload.inputs.0.artifact_type", "t" * 256, ""),
    ("job", "payload.outputs", [{"name": "n", "uri": "u"}], [{"name": "n"}]),
    (
        "job",
        "payload.parameters",
        {f"k{i}": 1 for i in range(297)},
        {f"k{i}": 1 for i in range(298)},
    ),
    ("job", "payload.parameters", {"k" * 2500: "v" * 2500}, {"k": "v" * 2501}),
    ("job", "payload.parameters", {"k": True}, {"": 1}),
    ("job", "payload.parameters", {"k": -999_999_999_999_999_999}, {"k": [1]}),
    ("job", "payload.instance_type", "t" * 64, "t" * 65),
    ("job", "payload.instance_count", 10_000, 10_001),
    ("job", "payload.instance_count", 1, 0),
    ("job", "payload.instance_count", 2, 2.0),
    (
        "job",
        "payload.tags",
        [{"key": f"k{i}", "value": "v"} for i in range(50)],
        [{"key": f"k{i}", "value": "v"} for i in range(51)],
    ),
    ("job", "payload.tags.0.key", "k" * 128, "k" * 129),
    ("job", "payload.tags.0.value", "v" * 256, "v" * 257),
    ("status", "payload.status", "Stopping", "Done"),
    (
        "status",
        "payload.metrics",
        {f"m{i}": 1.5 for i in range(300)},
        {f"m{i}": 1 for i in range(301)},
    ),
    ("status", "payload.metrics", {"m" * 2500: -0.0}, {"m": "1"}),
    ("status", "payload.metrics", {"m": 1.5e15}, {"m": True}),
    ("status", "payload.failure_reason", "f" * 1024, "f" * 1025),
    ("status", "payload.end_time", "2024-01-01T00:00:00.5-01:00", "2024-01-01T25:00:00Z"),
    ("status", "payload.job_name", "j", DROP_IT),
    ("artifact", "payload.entity.source.source_uri", "s" * 2048, "s" * 2049),
    ("artifact", "payload.entity.source", {"source_uri": "s"}, {}),
    ("artifact", "payload.entity.artifact_name", "a" * 120, "a" * 121),
    ("artifact", "payload.entity.artifact_type", "t" * 256, "t" * 257),
    (
        "artifact",
        "payload.entity.properties",
        {f"p{i}": "v" for i in range(30)},
        {f"p{i}": "v" for i in range(31)},
    ),
    ("artifact", "payload.entity.properties", {"p": "v" * 4096}, {"p": "v" * 4097}),
    ("artifact", "payload.entity.properties", {"p" * 2500: ""}, {"p" * 2501: ""}),
    ("artifact", "payload.entity.properties_to_remove", ["p"] * 30, ["p"] * 31),
    ("artifact", "payload.entity.properties_to_remove", ["p" * 2500], [""]),
    ("artifact", "payload.entity.tags_to_remove", ["t" * 128], ["t" * 129]),
    ("artifact", "payload.entity.tags_to_remove", ["t"] * 50, ["t"] * 51),
    ("tc", "payload.entity.trial_component_name", "T" * 120, "T" * 121),
    ("tc", "payload.entity.display_name", "d" * 120, ""),
    ("tc", "payload.entity.status.primary_status", "InProgress", "Unknown"),
    ("tc", "payload.entity.status.message", "m" * 1024, "m" * 1025),
    ("tc", "payload.entity.start_time", "2024-01-01T00:00:00Z", "2024-01-01"),
    (
        "tc",
        "payload.entity.source.source_arn",
        ARN + "training-job/" + "j" * 200,
        ARN + "training-job/" + "j" * 300,
    ),
    ("tc", "payload.entity.source.source_arn", ARN + "processing-job/j", "arn:aws:s3:::b"),
    ("tc", "payload.entity.source.source_type", "t" * 256, "t" * 257),
    (
        "tc",
        "payload.entity.parameters",
        {f"p{i}": {"number_value": 1} for i in range(300)},
        {f"p{i}": {"number_value": 1} for i in range(301)},
    ),
    (
        "tc",
        "payload.entity.parameters",
        {"p": {"string_value": "s" * 2500}},
        {"p": {"string_value": "s" * 2501}},
    ),
    (
        "tc",
        "payload.entity.parameters",
        {"p": {"number_value": 1.5}},
        {"p": {"number_value": 1, "string_value": "s"}},
    ),
    ("tc", "payload.entity.parameters", {"p": {"string_value": ""}}, {"p": {}}),
    ("tc", "payload.entity.parameters_to_remove", ["p"] * 300, ["p"] * 301),
    (
        "tc",
        "payload.entity.input_artifacts",
        {f"i{i}": {"value": "v"} for i in range(60)},
        {f"i{i}": {"value": "v"} for i in range(61)},
    ),
    (
        "tc",
        "payload.entity.input_artifacts",
        {"i" * 128: {"value": "v" * 2048}},
        {"i" * 129: {"value": "v"}},
    ),
    (
        "tc",
        "payload.entity.output_artifacts",
        {"o": {"value": "v", "media_type": "m" * 64}},
        {"o": {"value": "v", "media_type": "m" * 65}},
    ),
    ("tc", "payload.entity.output_artifacts", {"o": {"value": "v"}}, {"o": {"value": ""}}),
    (
        "tc",
        "payload.entity.metrics",
        {f"m{i}": 0 for i in range(300)},
        {f"m{i}": 0 for i in range(301)},
    ),
    (
        "assoc",
        "payload.entity.source_arn",
        ARN + "experiment-trial-component/t",
        ARN + "experiment-trial/t",
    ),
    ("assoc", "payload.entity.destination_arn", ARN + "action/a", ARN + "endpoint/e"),
    (
        "assoc",
        "payload.entity.destination_arn",
        ARN + "experiment/" + "e" * 200,
        ARN + "experiment/" + "e" * 250,
    ),
    ("assoc", "payload.entity.association_type", "SameAs", "Same"),
    ("assoc", "payload.entity.kind", "association", "associations"),
]


def _event(base: str, path: str, value: Any) -> bytes:
    record: dict[str, Any] = {
        "event_id": "1027c4d1-c386-4bc4-8d61-3e30d8f16adf",
        "occurred_at": "2024-01-01T00:00:00.000000Z",
        "account_id": ACCOUNT,
        "region": REGION,
        **copy.deepcopy(BASES[base]),
    }
    *parents, leaf = path.split(".")
    node: Any = record
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is DROP_IT:
        del node[leaf]
    elif isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return dumps(record).encode()


@pytest.mark.parametrize(
    ("base", "path", "accepted", "refused"),
    RULES,
    ids=[f"{b}:{p}:{k}" for k, (b, p, _, _) in enumerate(RULES)],
)
def test_each_rule_at_its_boundary(
    ingest: SqlIngest, base: str, path: str, accepted: Any, refused: Any
) -> None:
    good, bad = _event(base, path, accepted), _event(base, path, refused)
    topic = topic_of(good)
    assert check_same(ingest, [good, bad], [topic, topic]) == [1]
    dead = project_batch(records_of([bad], [topic]), ALLOWED, None).dead
    assert dead.num_rows == 1, "the refused value must break a rule of the models"
