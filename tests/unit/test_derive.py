"""The auto-tracker's rules, one row of the reference's "What SageMaker creates
automatically" table at a time: which entities, with which names, types and edges."""

from __future__ import annotations

from typing import Any

import pytest

from mlineage import arns
from mlineage.events.codec import decode, encode
from mlineage.tracker.derive import RULESET, derive
from tests.helpers import ACCOUNT, REGION, event, raw

A = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"


def art(uri: str) -> str:
    return arns.artifact_arn(REGION, ACCOUNT, uri)


def tc(name: str) -> str:
    return f"{A}:experiment-trial-component/{name.lower()}"


def summary(source: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str, str]]]:
    """(entities by key -> their fields, {(source, destination, type)}) derived from one event."""
    entities: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str, str]] = set()
    for d in derive(decode(raw(source))):
        e = d.payload.entity
        fields = e.model_dump(exclude_none=True)
        if e.kind == "association":
            edges.add((e.source_arn, e.destination_arn, e.association_type or ""))
        elif e.kind == "artifact":
            assert e.source is not None
            entities[art(e.source.source_uri)] = fields
        elif e.kind == "trial_component_trial":
            entities[f"{e.trial_component_name}>{e.trial_name}"] = fields
        else:
            entities[arns.named_arn(e.kind, REGION, ACCOUNT, getattr(e, f"{e.kind}_name"))] = fields
    return entities, edges


TRAINING = event(
    "JobCreated",
    {
        "job_type": "TrainingJob",
        "job_name": "train-1",
        "image_uri": "img/xgb:1",
        "inputs": [
            {"name": "train", "uri": "s3://d/train"},
            {"name": "labels", "uri": "s3://d/labels", "artifact_type": "Labels"},
        ],
        "outputs": [{"name": "model", "uri": "s3://m/out/"}],
        "checkpoint_uri": "s3://c/ckpt/",
        "parameters": {"eta": 0.1, "objective": "reg", "deep": True},
        "instance_type": "ml.m5.xlarge",
        "instance_count": 2,
        "experiment_config": {
            "experiment_name": "exp",
            "trial_name": "trial-1",
            "trial_component_display_name": "Train it",
        },
    },
)


def test_training_job_created() -> None:
    entities, edges = summary(TRAINING)
    t = tc("train-1-aws-training-job")
    comp = entities[t]
    assert comp["trial_component_name"] == "train-1-aws-training-job"
    assert comp["display_name"] == "Train it"
    assert comp["source"] == {
        "source_arn": f"{A}:training-job/train-1",
        "source_type": "SageMakerTrainingJob",
    }
    assert comp["status"] == {"primary_status": "InProgress"}
    params = comp["parameters"]
    assert params["eta"] == {"number_value": 0.1}
    assert params["objective"] == {"string_value": "reg"}
    assert params["deep"] == {"string_value": "true"}
    assert params["SageMaker.ImageUri"] == {"string_value": "img/xgb:1"}
    assert params["SageMaker.InstanceType"] == {"string_value": "ml.m5.xlarge"}
    assert params["SageMaker.InstanceCount"] == {"number_value": 2.0}
    types = {
        k: v.get("artifact_type") for k, v in entities.items() if k.startswith(f"{A}:artifact")
    }
    assert types == {
        art("img/xgb:1"): "Image",
        art("s3://d/train"): "DataSet",
        art("s3://d/labels"): "Labels",
        art("s3://m/out/"): "Model",
        art("s3://c/ckpt/"): "Checkpoint",
    }
    assert edges == {
        (art("img/xgb:1"), t, "ContributedTo"),
        (art("s3://d/train"), t, "ContributedTo"),
        (art("s3://d/labels"), t, "ContributedTo"),
        (t, art("s3://m/out/"), "Produced"),
        (t, art("s3://c/ckpt/"), "Produced"),
    }
    assert entities[f"{A}:experiment/exp"] == {"kind": "experiment", "experiment_name": "exp"}
    assert entities[f"{A}:experiment-trial/trial-1"]["experiment_name"] == "exp"
    assert "train-1-aws-training-job>trial-1" in entities


@pytest.mark.parametrize(
    ("job_type", "suffix", "source_type", "output_type"),
    [
        ("ProcessingJob", "aws-processing-job", "SageMakerProcessingJob", "DataSet"),
        ("TransformJob", "aws-transform-job", "SageMakerTransformJob", "DataSet"),
    ],
)
def test_processing_and_transform_jobs(
    job_type: str, suffix: str, source_type: str, output_type: str
) -> None:
    payload: dict[str, Any] = {
        "job_type": job_type,
        "job_name": "job-7",
        "inputs": [{"name": "in", "uri": "s3://d/in"}],
        "outputs": [{"name": "out", "uri": "s3://d/out"}],
    }
    if job_type == "TransformJob":
        payload["model_data_uri"] = "s3://m/model.tar.gz"
    else:
        payload["image_uri"] = "img/proc:1"
    entities, edges = summary(event("JobCreated", payload))
    t = tc(f"job-7-{suffix}")
    assert entities[t]["source"]["source_type"] == source_type
    assert entities[art("s3://d/out")]["artifact_type"] == output_type
    assert (art("s3://d/in"), t, "ContributedTo") in edges
    assert (t, art("s3://d/out"), "Produced") in edges
    if job_type == "TransformJob":
        assert entities[art("s3://m/model.tar.gz")]["artifact_type"] == "Model"
        assert (art("s3://m/model.tar.gz"), t, "ContributedTo") in edges
    else:
        assert (art("img/proc:1"), t, "ContributedTo") in edges
    assert len(edges) == 3


@pytest.mark.parametrize(
    ("status", "end_time_set"),
    [
        ("Completed", True),
        ("Failed", True),
        ("Stopped", True),
        ("InProgress", False),
        ("Stopping", False),
    ],
)
def test_status_changes(status: str, end_time_set: bool) -> None:
    payload: dict[str, Any] = {
        "job_type": "TrainingJob",
        "job_arn": f"{A}:training-job/train-1",
        "status": status,
        "metrics": {"auc": 0.9},
    }
    if status == "Completed":
        payload["outputs"] = [{"name": "model", "uri": "s3://m/model.tar.gz"}]
    if status == "Failed":
        payload["failure_reason"] = "OOM"
    entities, edges = summary(event("JobStatusChanged", payload, second=30))
    t = tc("train-1-aws-training-job")
    comp = entities[t]
    assert comp["status"]["primary_status"] == status
    assert comp["metrics"] == {"auc": 0.9}
    assert ("end_time" in comp) == end_time_set
    if status == "Failed":
        assert comp["status"]["message"] == "OOM"
    if status == "Completed":
        assert entities[art("s3://m/model.tar.gz")]["artifact_type"] == "Model"
        assert edges == {(t, art("s3://m/model.tar.gz"), "Produced")}
    else:
        assert edges == set()
    # a status change only sets what it derives: never the parameters or inputs
    assert "parameters" not in comp
    assert "input_artifacts" not in comp


def test_model_package() -> None:
    entities, edges = summary(
        event(
            "ModelPackageCreated",
            {
                "model_package_group_name": "churn",
                "version": 3,
                "model_data_uri": "s3://m/model",
                "image_uri": "img/xgb:1",
                "approval_status": "Approved",
            },
        )
    )
    package = art(f"{A}:model-package/churn/3")
    group = f"{A}:context/churn-aws-model-package-group"
    approval = f"{A}:action/churn-3-aws-model-package"
    assert entities[group]["context_type"] == "ModelGroup"
    assert entities[group]["source"]["source_uri"] == f"{A}:model-package-group/churn"
    assert entities[package]["artifact_type"] == "ModelPackage"
    assert entities[approval]["action_type"] == "Approval"
    assert entities[approval]["properties"] == {"ApprovalStatus": "Approved"}
    assert edges == {
        (art("s3://m/model"), package, "ContributedTo"),
        (art("img/xgb:1"), package, "ContributedTo"),
        (package, group, "AssociatedWith"),
        (package, approval, "ContributedTo"),
    }


def test_endpoint() -> None:
    pkg = f"{A}:model-package/churn/3"
    entities, edges = summary(
        event(
            "EndpointCreated",
            {
                "endpoint_name": "churn-ep",
                "models": [
                    {
                        "model_data_uri": "s3://m/model",
                        "image_uri": "img/xgb:1",
                        "model_package_arn": pkg,
                    },
                    {"model_data_uri": "s3://m/other"},
                ],
            },
        )
    )
    endpoint = f"{A}:context/churn-ep-aws-endpoint"
    deployment = f"{A}:action/churn-ep-aws-model-deployment"
    assert entities[endpoint]["context_type"] == "Endpoint"
    assert entities[endpoint]["source"]["source_uri"] == f"{A}:endpoint/churn-ep"
    assert entities[deployment]["action_type"] == "ModelDeployment"
    assert edges == {
        (art("s3://m/model"), deployment, "ContributedTo"),
        (art("img/xgb:1"), deployment, "ContributedTo"),
        (art(pkg), deployment, "ContributedTo"),
        (f"{A}:action/churn-3-aws-model-package", deployment, "ContributedTo"),
        (art("s3://m/other"), deployment, "ContributedTo"),
        (deployment, endpoint, "AssociatedWith"),
    }


def test_entity_events_derive_nothing() -> None:
    assert (
        derive(
            decode(raw(event("EntityUpserted", {"entity": {"kind": "action", "action_name": "x"}})))
        )
        == []
    )


def test_derived_events_are_deterministic_and_traceable() -> None:
    source = decode(raw(TRAINING))
    first = [encode(d) for d in derive(source)]
    assert first == [encode(d) for d in derive(decode(raw(TRAINING)))]
    ids = set()
    for d in derive(source):
        assert d.caused_by == source.event_id
        assert d.occurred_at == source.occurred_at
        assert (d.account_id, d.region) == (source.account_id, source.region)
        assert d.producer == RULESET
        ids.add(d.event_id)
    assert len(ids) == len(first)
    # a different source event derives different ids for the same entities
    other = decode(raw({**TRAINING, "event_id": "00000000-0000-4000-8000-000000000001"}))
    assert ids.isdisjoint({d.event_id for d in derive(other)})


def test_duplicate_uris_derive_one_entity() -> None:
    e = event(
        "JobCreated",
        {
            "job_type": "TrainingJob",
            "job_name": "j",
            "inputs": [{"name": "a", "uri": "s3://same"}, {"name": "b", "uri": "s3://same"}],
        },
    )
    derived = derive(decode(raw(e)))
    assert len({d.event_id for d in derived}) == len(derived)


def _all_sources() -> list[dict[str, Any]]:
    import json
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "schemas" / "examples"
    found = [json.loads(p.read_text()) for p in sorted(examples.glob("*.json"))]
    return [
        TRAINING,
        *[e for e in found if e["event_type"] not in ("EntityUpserted", "EntityDeleted")],
    ]


@pytest.mark.parametrize("source", _all_sources(), ids=lambda e: e["event_type"])
def test_runner_records_are_the_bytes_of_the_validated_models(source: dict[str, Any]) -> None:
    """The tracker writes derive_records() as they are; derive() validates the same dicts:
    every derived record is a valid event and encodes to exactly the same bytes."""
    from mlineage.arns import entity_key
    from mlineage.events.codec import dumps
    from mlineage.tracker.derive import derive_records

    event = decode(raw(source))
    records = derive_records(event)
    models = derive(event)
    assert records
    assert len(records) == len(models)
    for (key, record), model in zip(records, models, strict=True):
        assert dumps(record).encode() == encode(model)
        assert key == entity_key(model.payload.entity, model.account_id, model.region)
