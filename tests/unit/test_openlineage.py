"""OpenLineage events: validation against the spec's rules (a clear error naming the field),
facets kept as given, dataset URIs after the naming spec, and the tracker's rules (pure,
deterministic, every derived event valid)."""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any

import pytest

from mlineage import arns
from mlineage.errors import EventValidationError
from mlineage.events import codec
from mlineage.events.models import OpenLineageEventReceived
from mlineage.events.openlineage import KAFKA_ACCOUNT_ID, MAX_EVENT_BYTES, dataset_uri
from mlineage.settings import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from mlineage.tracker.derive import derive, derive_records

ACCOUNT = "111122223333"
REGION = "us-east-1"
RUN = "0195b2a4-7c1e-7f3a-9d2b-5e8c4a1f6b07"
PARENT = "0195b2a0-11aa-7bcd-8e9f-0a1b2c3d4e5f"
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


def facet(**fields: Any) -> dict[str, Any]:
    return {"_producer": "https://example.com/p", "_schemaURL": "https://example.com/s", **fields}


def run_event(state: str = "START", when: str = "2026-02-01T10:00:00Z", **extra: Any) -> Any:
    event = {
        "eventType": state,
        "eventTime": when,
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/integration/spark",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": RUN, "facets": {}},
        "job": {"namespace": "spark-emr", "name": "features.prepare"},
        "inputs": [{"namespace": "s3://raw", "name": "events/2026"}],
        "outputs": [{"namespace": "s3://acme", "name": "prepared/train"}],
    }
    event.update(extra)
    return event


def received(ol: Any, account: str = ACCOUNT) -> OpenLineageEventReceived:
    event = codec.validate_record(codec.wrap_openlineage(ol, account, REGION))
    assert isinstance(event, OpenLineageEventReceived)
    return event


def entities(event: OpenLineageEventReceived) -> dict[str, dict[str, Any]]:
    """Derived entities by entity key (after checking every derived event validates)."""
    derived = derive(event)
    return {key: record["payload"]["entity"] for key, record in derive_records(event)} | {
        "_count": {"n": len(derived)}
    }


def error_of(ol: Any) -> str:
    with pytest.raises(EventValidationError) as info:
        received(ol)
    return str(info.value)


# --- validation -------------------------------------------------------------------------------


def _without(event: dict[str, Any], path: str) -> dict[str, Any]:
    out = copy.deepcopy(event)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    del node[int(last) if last.isdigit() else last]
    return out


@pytest.mark.parametrize(
    "path",
    [
        "eventTime",
        "producer",
        "schemaURL",
        "run",
        "run.runId",
        "job",
        "job.namespace",
        "job.name",
        "inputs.0.namespace",
        "inputs.0.name",
        "outputs.0.name",
    ],
)
def test_a_required_field_left_out_is_named(path: str) -> None:
    message = error_of(_without(run_event(), path))
    assert f"field 'payload.event.{path}' is required" in message


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"eventType": "DONE"}, "payload.event.eventType", "START"),
        ({"eventTime": "2026-02-01T10:00:00"}, "payload.event.eventTime", "time zone"),
        ({"eventTime": "yesterday"}, "payload.event.eventTime", "RFC 3339"),
        ({"eventTime": 1767225600}, "payload.event.eventTime", "string"),
        ({"eventTime": "2026-02-30T00:00:00Z"}, "payload.event.eventTime", "day is out of range"),
        ({"eventTime": "9999-12-31T23:59:59-14:00"}, "payload.event.eventTime", "out of range"),
        ({"run": {"runId": "not-a-uuid"}}, "payload.event.run.runId", "UUID"),
        ({"run": {"runId": RUN + "\n"}}, "payload.event.run.runId", "UUID"),
        ({"run": {"runId": RUN, "facets": {"x": 3}}}, "payload.event.run.facets.x", "object"),
        ({"job": {"namespace": "", "name": "j"}}, "payload.event.job.namespace", "1 character"),
        ({"job": {"namespace": "n", "name": "j" * 1001}}, "payload.event.job.name", "1000"),
        ({"inputs": [{"namespace": 5, "name": "x"}]}, "payload.event.inputs.0.namespace", "str"),
        ({"outputs": "s3://x"}, "payload.event.outputs", "array"),
        ({"inputs": [{"namespace": "s", "name": "x"}] * 201}, "payload.event.inputs", "200"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(
    change: dict[str, Any], field: str, rule: str
) -> None:
    message = error_of(run_event(**change))
    assert f"'{field}'" in message, message
    assert rule in message, message


def test_nan_and_oversized_events_are_refused() -> None:
    with pytest.raises(EventValidationError, match="NaN"):
        codec.wrap_openlineage(run_event(extra=float("nan")), ACCOUNT, REGION)
    lone = json.loads('{"name": "\\ud800"}')["name"]  # what JSON's "\ud800" parses to
    with pytest.raises(EventValidationError, match="not valid Unicode"):
        codec.wrap_openlineage(run_event(job={"namespace": "n", "name": lone}), ACCOUNT, REGION)
    big = run_event(run={"runId": RUN, "facets": {"blob": facet(text="x" * MAX_EVENT_BYTES)}})
    assert "bytes of JSON" in error_of(big)


def test_facets_and_unknown_fields_are_kept_exactly() -> None:
    ol = run_event(
        run={"runId": RUN, "facets": {"custom_acme": facet(nested={"a": [1, None, 2.5]})}},
        futureField={"kept": True},
    )
    ol["outputs"][0]["outputFacets"] = {"outputStatistics": facet(rowCount=10)}
    event = received(ol)
    stored = json.loads(codec.encode(event))["payload"]["event"]
    assert stored == ol
    # and it decodes back to the same event (the log's bytes are canonical)
    assert codec.decode(codec.encode(event)) == event


def test_event_ids_come_from_the_content_and_the_account() -> None:
    a, b = received(run_event()), received(run_event())
    assert a.event_id == b.event_id  # a client's retry is the same event
    assert received(run_event("COMPLETE")).event_id != a.event_id
    assert received(run_event(), account="999988887777").event_id != a.event_id
    assert canonical(a.occurred_at) == "2026-02-01T10:00:00.000000Z"
    # an end stamped with its START's instant still comes after it
    end = received(run_event("COMPLETE"))
    assert canonical(end.occurred_at) == "2026-02-01T10:00:00.000002Z"


def test_a_run_id_in_capitals_is_the_same_run() -> None:
    lower = entities(received(run_event()))
    upper = entities(received(run_event(run={"runId": RUN.upper()})))
    tcs = {k for k, e in lower.items() if e.get("kind") == "trial_component"}
    assert tcs == {k for k, e in upper.items() if e.get("kind") == "trial_component"}
    ol = run_event()
    ol["run"]["facets"] = {"parent": facet(run={"runId": RUN.upper()}, job=ol["job"])}
    assert (
        len([e for e in entities(received(ol)).values() if e.get("kind") == "trial_component"]) == 1
    )


def canonical(value: Any) -> str:
    from mlineage.events.models import canonical_time

    return canonical_time(value)


def test_occurred_at_must_be_the_event_time() -> None:
    draft = codec.wrap_openlineage(run_event(), ACCOUNT, REGION)
    draft["occurred_at"] = "2026-02-01T11:00:00Z"
    with pytest.raises(EventValidationError, match="eventTime"):
        codec.validate_record(draft)


def test_a_bare_openlineage_record_is_taken_for_the_default_account() -> None:
    """What the client's Kafka transport writes: no envelope; the same id on every read."""
    raw = json.dumps(run_event()).encode()
    first, again = codec.decode(raw), codec.decode(raw)
    assert isinstance(first, OpenLineageEventReceived)
    assert first == again
    assert (first.account_id, first.region) == (KAFKA_ACCOUNT_ID, "us-east-1")
    assert (KAFKA_ACCOUNT_ID, "us-east-1") == (DEFAULT_ACCOUNT_ID, DEFAULT_REGION)
    bad = json.dumps(run_event(eventType="NOPE")).encode()
    assert "payload.event.eventType" in str(codec.decode_many([bad])[0])


@pytest.mark.parametrize(
    ("key", "account", "region"),
    [
        (None, KAFKA_ACCOUNT_ID, "us-east-1"),
        (b"run:spark-emr/features.prepare", KAFKA_ACCOUNT_ID, "us-east-1"),  # the client's own
        (b"account:111111111111", "111111111111", "us-east-1"),
        (b"account:111111111111/eu-west-1", "111111111111", "eu-west-1"),
    ],
)
def test_a_bare_record_key_may_name_its_account(
    key: bytes | None, account: str, region: str
) -> None:
    event = codec.decode(json.dumps(run_event()).encode(), key)
    assert (event.account_id, event.region) == (account, region)


@pytest.mark.parametrize("key", [b"account:12", b"account:111111111111/EU", b"account:"])
def test_a_key_that_names_no_account_is_refused(key: bytes) -> None:
    raw = json.dumps(run_event()).encode()
    (rejected,) = codec.decode_many([raw], [key])
    assert isinstance(rejected, codec.Rejected)
    assert "field '(key)'" in rejected.error
    assert "account:<12 digits>" in rejected.error


# --- dataset naming ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "name", "uri"),
    [
        ("s3://bucket", "path/to/data", "s3://bucket/path/to/data"),
        ("s3://bucket/", "/path/to/data/", "s3://bucket/path/to/data"),
        ("s3a://bucket", "data", "s3://bucket/data"),
        ("s3n://bucket", "data", "s3://bucket/data"),
        ("gs://bucket", "data/x.parquet", "gs://bucket/data/x.parquet"),
        ("hdfs://namenode:8020", "/warehouse/t", "hdfs://namenode:8020/warehouse/t"),
        ("file", "/data/x.csv", "file:///data/x.csv"),
        (
            "postgres://db.internal:5432",
            "crm.public.customers",
            "postgres://db.internal:5432/crm.public.customers",
        ),
        ("bigquery", "project.dataset.table", "bigquery://project.dataset.table"),
        ("kafka://broker:9092", "clicks", "kafka://broker:9092/clicks"),
        ("snowflake://org-account", "DB.SCHEMA.TABLE", "snowflake://org-account/DB.SCHEMA.TABLE"),
    ],
)
def test_dataset_uris_follow_the_naming_spec(namespace: str, name: str, uri: str) -> None:
    assert dataset_uri(namespace, name) == uri


# --- derivation -------------------------------------------------------------------------------


def _tc(derived: dict[str, dict[str, Any]]) -> dict[str, Any]:
    name = arns.openlineage_run_name("spark-emr", "features.prepare", RUN)
    return derived[arns.trial_component_arn(REGION, ACCOUNT, name)]


def test_a_run_is_a_trial_component_of_its_job_context_with_its_datasets() -> None:
    job_facets = {
        "sql": facet(query="SELECT * FROM raw"),
        "sourceCodeLocation": facet(type="git", url="https://github.com/acme/etl", version="abc1"),
        "documentation": facet(description="Builds the training set"),
    }
    ol = run_event(job={"namespace": "spark-emr", "name": "features.prepare", "facets": job_facets})
    ol["run"]["facets"] = {
        "nominalTime": facet(nominalStartTime="2026-02-01T00:00:00Z"),
        "processing_engine": facet(name="spark", version="3.5.1"),
    }
    derived = entities(received(ol))
    tc = _tc(derived)
    assert tc["status"] == {"primary_status": "InProgress"}
    assert tc["start_time"] == "2026-02-01T10:00:00Z"
    assert "end_time" not in tc
    assert tc["display_name"] == "features.prepare"
    params = {k: v["string_value"] for k, v in tc["parameters"].items()}
    assert params["OpenLineage.Sql"] == "SELECT * FROM raw"
    assert params["OpenLineage.ProcessingEngine"] == "spark"
    assert params["OpenLineage.NominalStartTime"] == "2026-02-01T00:00:00Z"
    assert params["OpenLineage.RunId"] == RUN
    assert params["OpenLineage.RunFacets"] == "nominalTime,processing_engine"
    assert tc["metadata"] == {"repository": "https://github.com/acme/etl", "commit_id": "abc1"}
    assert tc["input_artifacts"] == {"events/2026": {"value": "s3://raw/events/2026"}}
    ctx_name = arns.openlineage_job_context_name("spark-emr", "features.prepare")
    ctx_arn = arns.named_arn("context", REGION, ACCOUNT, ctx_name)
    assert derived[ctx_arn]["context_type"] == "OpenLineageJob"
    assert derived[ctx_arn]["description"] == "Builds the training set"
    tc_arn = arns.trial_component_arn(
        REGION, ACCOUNT, arns.openlineage_run_name("spark-emr", "features.prepare", RUN)
    )
    raw_arn = arns.artifact_arn(REGION, ACCOUNT, "s3://raw/events/2026")
    out_arn = arns.artifact_arn(REGION, ACCOUNT, "s3://acme/prepared/train")
    assert derived[raw_arn]["artifact_type"] == "DataSet"
    assert derived[raw_arn]["properties"] == {
        "OpenLineage.Namespace": "s3://raw",
        "OpenLineage.Name": "events/2026",
    }
    edges = {
        (e["source_arn"], e["destination_arn"]): e["association_type"]
        for e in derived.values()
        if e.get("kind") == "association"
    }
    # a prefix may be read as ".../" by a SageMaker job: SameAs that spelling, data-wise
    raw_slash = arns.artifact_arn(REGION, ACCOUNT, "s3://raw/events/2026/")
    out_slash = arns.artifact_arn(REGION, ACCOUNT, "s3://acme/prepared/train/")
    assert edges == {
        (tc_arn, ctx_arn): "AssociatedWith",
        (raw_arn, tc_arn): "ContributedTo",
        (tc_arn, out_arn): "Produced",
        (raw_slash, raw_arn): "SameAs",
        (out_arn, out_slash): "SameAs",
    }


@pytest.mark.parametrize(
    ("state", "status", "ends"),
    [
        ("RUNNING", "InProgress", False),
        ("COMPLETE", "Completed", True),
        ("FAIL", "Failed", True),
        ("ABORT", "Stopped", True),
        ("OTHER", None, False),
        (None, None, False),
    ],
)
def test_run_states_set_status_and_times(state: str | None, status: str | None, ends: bool) -> None:
    ol = run_event(state or "OTHER", "2026-02-01T10:05:00.250+01:00")
    if state is None:
        del ol["eventType"]
    ol["run"]["facets"] = {"errorMessage": facet(message="OOM", programmingLanguage="python")}
    tc = _tc(entities(received(ol)))
    assert tc.get("status", {}).get("primary_status") == status
    assert ("end_time" in tc) == ends
    if ends:
        assert tc["end_time"] == "2026-02-01T09:05:00.250000Z"
    assert "start_time" not in tc
    assert (tc.get("status", {}).get("message") == "OOM") == (state == "FAIL")


def test_a_parent_run_is_associated_and_named_like_the_parent_itself() -> None:
    ol = run_event()
    ol["run"]["facets"] = {
        "parent": facet(
            run={"runId": PARENT}, job={"namespace": "airflow", "name": "dag.task_group"}
        )
    }
    derived = entities(received(ol))
    parent_arn = arns.trial_component_arn(
        REGION, ACCOUNT, arns.openlineage_run_name("airflow", "dag.task_group", PARENT)
    )
    assert derived[parent_arn]["display_name"] == "dag.task_group"
    child = arns.trial_component_arn(
        REGION, ACCOUNT, arns.openlineage_run_name("spark-emr", "features.prepare", RUN)
    )
    assert derived[arns.association_key(child, parent_arn)]["association_type"] == "AssociatedWith"
    # the parent's own events land on the same trial component
    parent_event = run_event(
        run={"runId": PARENT}, job={"namespace": "airflow", "name": "dag.task_group"}
    )
    assert parent_arn in entities(received(parent_event))
    # a malformed parent facet derives nothing (it is still kept in the event)
    for bad in ({"run": {"runId": "x"}, "job": {"namespace": "a", "name": "b"}}, {"run": 3}):
        ol["run"]["facets"] = {"parent": facet(**bad)}
        assert not any(k.startswith(parent_arn) for k in entities(received(ol)))


def test_dataset_and_job_events() -> None:
    dataset = {
        "eventTime": "2026-02-01T10:00:00Z",
        "producer": "p",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
        "dataset": {"namespace": "postgres://db:5432", "name": "crm.public.customers"},
    }
    derived = entities(received(dataset))
    uri = "postgres://db:5432/crm.public.customers"
    assert derived[arns.artifact_arn(REGION, ACCOUNT, uri)]["source"] == {"source_uri": uri}
    assert derived["_count"]["n"] == 1  # no twin for a table
    job = {
        "eventTime": "2026-02-01T10:00:00Z",
        "producer": "p",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
        "job": {"namespace": "dbt", "name": "analytics.labels"},
        "inputs": [{"namespace": "postgres://db:5432", "name": "crm.public.customers"}],
        "outputs": [{"namespace": "postgres://db:5432", "name": "analytics.public.labels"}],
    }
    derived = entities(received(job))
    ctx = arns.named_arn(
        "context", REGION, ACCOUNT, arns.openlineage_job_context_name("dbt", "analytics.labels")
    )
    src = arns.artifact_arn(REGION, ACCOUNT, uri)
    dst = arns.artifact_arn(REGION, ACCOUNT, "postgres://db:5432/analytics.public.labels")
    assert derived[arns.association_key(src, ctx)]["association_type"] == "ContributedTo"
    assert derived[arns.association_key(ctx, dst)]["association_type"] == "Produced"
    assert not any(e.get("kind") == "trial_component" for e in derived.values())


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("n" * 1000, "j" * 1000),
        ("---", "***"),
        ("airflow://prod", "dag.task.with spaces/and:colons"),
        ("é", "日本語"),
    ],
)
def test_names_fit_sagemaker_for_any_job(namespace: str, name: str) -> None:
    run_id = str(uuid.uuid4()).upper()
    tc = arns.openlineage_run_name(namespace, name, run_id)
    ctx = arns.openlineage_job_context_name(namespace, name)
    assert len(tc) <= 120
    assert NAME_RE.fullmatch(tc), tc
    assert len(ctx) <= 120
    assert re.fullmatch(r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9])*$", ctx), ctx
    ol = run_event(run={"runId": run_id}, job={"namespace": namespace, "name": name})
    derive(received(ol))  # every derived event validates
    # distinct jobs whose slugs agree still get distinct names
    assert arns.openlineage_run_name(namespace + "!", name, run_id) != tc


def test_derivation_is_deterministic() -> None:
    ol = run_event("COMPLETE")
    assert derive_records(received(ol)) == derive_records(received(copy.deepcopy(ol)))
