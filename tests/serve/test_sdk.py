"""The SageMaker Python SDK v2 (``sagemaker.lineage``) against ``mlineage serve``, unchanged:
``Artifact.create``, ``Association.create``, ``LineageQuery.query`` and the helpers
docs/serve.md lists as supported. The SDK runs in a venv of its own (``.venv-sdk``, built by
``make test``: it pins numpy<2, which the projection's pyarrow cannot use)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from mlineage import Recorder, Settings, arns
from mlineage import demo as wf
from tests.helpers import wait_until
from tests.kafka_broker import skip_or_fail
from tests.serve.conftest import ACCOUNT_A, KEYS, Server

REPO = Path(__file__).resolve().parents[2]
SDK_PYTHON = Path(os.environ.get("MLINEAGE_TEST_SDK_PYTHON", REPO / ".venv-sdk/bin/python"))


def test_the_sagemaker_sdk_works_unchanged(server: Server, sm: Any) -> None:
    if not SDK_PYTHON.exists():
        skip_or_fail(f"no SageMaker SDK venv at {SDK_PYTHON}: `make .venv-sdk/.installed`")
    settings = Settings.load(home=server.home, account_id=ACCOUNT_A, environ={})
    with Recorder(settings) as rec:
        rec.publish_many(wf.workflow(rec))
        endpoint = wf.endpoint_context_arn(rec)
    region = settings.region
    model = arns.artifact_arn(region, ACCOUNT_A, wf.MODEL)
    datasets = {arns.artifact_arn(region, ACCOUNT_A, u) for u in (wf.RAW, wf.TRAIN, wf.VALIDATION)}
    training_job = arns.job_arn(region, ACCOUNT_A, "TrainingJob", "churn-xgb-2026-01-15")
    wait_until(
        lambda: endpoint in json.dumps(sm.list_contexts(ContextType="Endpoint"), default=str),
        "the server picked up the published job",
    )

    key = "AKIDACCOUNTA0000001"
    given = {
        "run": str(time.monotonic_ns())[-8:],
        "endpoint_context": endpoint,
        "model": model,
        "dataset": arns.artifact_arn(region, ACCOUNT_A, wf.TRAIN),
    }
    proc = subprocess.run(
        [
            str(SDK_PYTHON),
            str(Path(__file__).with_name("sdk_client.py")),
            server.url,
            key,
            KEYS[key]["secret_access_key"],
            json.dumps(given),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    failed = {k: v["error"] + v.get("trace", "")[-1500:] for k, v in out.items() if not v["ok"]}
    assert not failed, failed
    got = {k: v["value"] for k, v in out.items()}
    data, model_arn = got["Artifact.create"], got["Artifact.create model"]
    assert got["LineageQuery.query"] == sorted([data, model_arn])  # the start is a vertex
    assert set(got["LineageQuery.query with LineageFilter"]) == datasets
    assert got["Artifact.load/save"]["properties"] == {"stage": "clean"}
    assert got["Context.load"] == "Endpoint"
    assert set(got["EndpointContext.dataset_artifacts"]) == datasets
    assert got["EndpointContext.training_job_arns"] == [training_job]
    assert len(got["EndpointContext.trial_components"]) == 2  # processing and training
    assert got["ModelArtifact.endpoint_contexts"] == [endpoint]
    assert set(got["ModelArtifact.dataset_artifacts"]) == datasets
    assert got["DatasetArtifact.endpoint_contexts"] == [endpoint]
    assert got["Artifact.delete(disassociate=True)"] == []
    assert got["Artifact.set_tag/set_tags"] == [
        {"Key": "stage", "Value": "prod"},
        {"Key": "team", "Value": "ml"},
    ]
    assert got["Action/Context.set_tag(s)"] == [
        [{"Key": "k", "Value": "a"}],
        [{"Key": "k", "Value": "c"}],
    ]
    trial = f"sdk-trial-{given['run']}"
    assert got["Artifact trials"] == {
        "downstream_trials": [trial],
        "downstream_trials_v2": [trial],
        "upstream_trials": [trial],
        "TrialComponent.search": [f"sdk-tc-{given['run']}"],
    }
    with pytest.raises(Exception, match="ResourceNotFound"):
        sm.describe_artifact(ArtifactArn=data)
