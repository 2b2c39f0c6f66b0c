"""The SDK-style traversals on the demo workflow, checked against the graph by hand:
raw -> [processing] -> train/validation -> [training] -> model -> package -> approval,
model/image/package/approval -> deployment -> endpoint; model -> [transform] -> output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlineage import Recorder, Settings, arns, demo
from mlineage.pipeline import sync
from mlineage.query.store import LineageStore
from mlineage.query.traversals import (
    Action,
    DatasetArtifact,
    EndpointContext,
    ImageArtifact,
    LineageTrialComponent,
    ModelArtifact,
)

R, A = "us-east-1", "000000000000"
P = f"arn:aws:sagemaker:{R}:{A}"


def art(uri: str) -> str:
    return arns.artifact_arn(R, A, uri)


ENDPOINT = f"{P}:context/churn-prediction-aws-endpoint"
TRAINING_TC = f"{P}:experiment-trial-component/churn-xgb-2026-01-15-aws-training-job"
PREP_TC = f"{P}:experiment-trial-component/churn-prep-2026-01-15-aws-processing-job"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineageStore]:
    home: Path = tmp_path_factory.mktemp("traversals")
    settings = Settings.load(home=home, environ={})
    with Recorder(settings) as rec:
        rec.publish_many(demo.workflow(rec))
    sync(settings)
    with LineageStore.open(settings) as s:
        yield s


def test_dataset_helpers(store: LineageStore) -> None:
    train = DatasetArtifact(store, art(demo.TRAIN))
    assert train.trained_models() == [art(demo.MODEL)]
    assert train.endpoint_contexts() == [ENDPOINT]
    assert train.upstream_datasets() == [art(demo.RAW)]
    # downstream of the training set: the batch-transform output (model -> transform)
    assert train.downstream_datasets() == [art(f"{demo.BUCKET}/scoring/output/")]
    assert train.downstream_trials() == [f"{P}:experiment-trial/xgb-baseline"]
    assert train.upstream_trials() == []  # the processing job joined no trial
    raw = DatasetArtifact(store, art(demo.RAW))
    assert raw.trained_models() == [art(demo.MODEL)]
    assert sorted(raw.downstream_datasets()) == sorted(
        art(u) for u in (demo.TRAIN, demo.VALIDATION, f"{demo.BUCKET}/scoring/output/")
    )


def test_model_helpers(store: LineageStore) -> None:
    model = ModelArtifact(store, art(demo.MODEL))
    assert model.endpoint_contexts() == [ENDPOINT]
    assert model.endpoints() == [f"{P}:endpoint/churn-prediction"]
    assert sorted(model.dataset_artifacts()) == sorted(
        art(u) for u in (demo.TRAIN, demo.VALIDATION, demo.RAW)
    )
    assert model.training_job_arns() == [f"{P}:training-job/churn-xgb-2026-01-15"]


def test_endpoint_helpers(store: LineageStore) -> None:
    endpoint = EndpointContext(store, ENDPOINT)
    assert endpoint.models() == [art(demo.MODEL)]
    assert sorted(endpoint.dataset_artifacts()) == sorted(
        art(u) for u in (demo.TRAIN, demo.VALIDATION, demo.RAW)
    )
    assert endpoint.training_job_arns() == [f"{P}:training-job/churn-xgb-2026-01-15"]
    assert endpoint.processing_jobs() == [f"{P}:processing-job/churn-prep-2026-01-15"]
    assert endpoint.transform_jobs() == []  # the transform consumed the model, downstream
    assert sorted(endpoint.trial_components()) == sorted([TRAINING_TC, PREP_TC])


def test_image_action_and_trial_component_helpers(store: LineageStore) -> None:
    image = ImageArtifact(store, art(demo.TRAINING_IMAGE))
    assert sorted(image.datasets()) == [art(f"{demo.BUCKET}/scoring/output/")]
    processing_image = ImageArtifact(store, art(demo.PROCESSING_IMAGE))
    assert sorted(processing_image.datasets()) == sorted(
        art(u) for u in (demo.TRAIN, demo.VALIDATION, f"{demo.BUCKET}/scoring/output/")
    )
    deployment = Action(store, f"{P}:action/churn-prediction-aws-model-deployment")
    assert sorted(deployment.artifacts()) == sorted(
        [
            art(demo.MODEL),
            art(demo.TRAINING_IMAGE),
            art(arns.model_package_arn(R, A, "churn-models", 1)),
        ]
    )
    tc = LineageTrialComponent(store, TRAINING_TC)
    assert sorted(tc.dataset_artifacts()) == sorted(
        art(u) for u in (demo.TRAIN, demo.VALIDATION, demo.RAW)
    )
    assert tc.models() == [art(demo.MODEL)]
