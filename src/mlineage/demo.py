"""The demo workflow: raw data -> processing -> training (with an experiment) -> batch
transform -> model package -> endpoint. Event ids and timestamps are fixed, so running the
demo again publishes the same events, which the projection applies only once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from mlineage import arns
from mlineage.events.models import canonical_time
from mlineage.recorder import Recorder

_NS = uuid.UUID("1d5a0f8e-3c2b-4a69-8e7d-6b5c4a3f2e10")
_T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)

BUCKET = "s3://acme-ml-demo"
RAW = f"{BUCKET}/raw/customers-2026-01.csv"
TRAIN = f"{BUCKET}/prepared/train/"
VALIDATION = f"{BUCKET}/prepared/validation/"
PROCESSING_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sklearn-processing:1.2-1"
TRAINING_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
MODEL = f"{BUCKET}/models/churn-xgb-2026-01-15/output/model.tar.gz"
ENDPOINT = "churn-prediction"


def _env(step: int, name: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(_NS, name)),
        "occurred_at": canonical_time(_T0 + timedelta(minutes=7 * step)),
    }


def workflow(rec: Recorder) -> list[dict[str, Any]]:
    """The demo's events, as drafts (envelope account/region come from the recorder)."""
    region, account = rec.settings.region, rec.settings.account_id
    package_arn = arns.model_package_arn(region, account, "churn-models", 1)
    return [
        {
            **_env(0, "prep-created"),
            "event_type": "JobCreated",
            "payload": {
                "job_type": "ProcessingJob",
                "job_name": "churn-prep-2026-01-15",
                "image_uri": PROCESSING_IMAGE,
                "inputs": [{"name": "raw", "uri": RAW}],
                "outputs": [
                    {"name": "train", "uri": TRAIN},
                    {"name": "validation", "uri": VALIDATION},
                ],
                "instance_type": "ml.m5.xlarge",
                "instance_count": 1,
                "metadata": {"repository": "https://github.com/acme/churn", "commit_id": "4f2a9c1"},
            },
        },
        {
            **_env(1, "prep-completed"),
            "event_type": "JobStatusChanged",
            "payload": {
                "job_type": "ProcessingJob",
                "job_name": "churn-prep-2026-01-15",
                "status": "Completed",
            },
        },
        {
            **_env(2, "train-created"),
            "event_type": "JobCreated",
            "payload": {
                "job_type": "TrainingJob",
                "job_name": "churn-xgb-2026-01-15",
                "image_uri": TRAINING_IMAGE,
                "inputs": [
                    {"name": "train", "uri": TRAIN},
                    {"name": "validation", "uri": VALIDATION},
                ],
                "checkpoint_uri": f"{BUCKET}/checkpoints/churn-xgb-2026-01-15/",
                "parameters": {"max_depth": 6, "eta": 0.2, "objective": "binary:logistic"},
                "instance_type": "ml.m5.2xlarge",
                "instance_count": 2,
                "experiment_config": {
                    "experiment_name": "churn-prediction",
                    "trial_name": "xgb-baseline",
                    "trial_component_display_name": "XGBoost baseline",
                },
                "metadata": {"repository": "https://github.com/acme/churn", "commit_id": "4f2a9c1"},
            },
        },
        {
            **_env(3, "train-completed"),
            "event_type": "JobStatusChanged",
            "payload": {
                "job_type": "TrainingJob",
                "job_name": "churn-xgb-2026-01-15",
                "status": "Completed",
                "outputs": [{"name": "model", "uri": MODEL}],
                "metrics": {"validation:auc": 0.912, "train:auc": 0.947},
            },
        },
        {
            **_env(4, "transform-created"),
            "event_type": "JobCreated",
            "payload": {
                "job_type": "TransformJob",
                "job_name": "churn-batch-score-2026-01",
                "model_data_uri": MODEL,
                "image_uri": TRAINING_IMAGE,
                "inputs": [{"name": "input", "uri": f"{BUCKET}/scoring/input/"}],
                "outputs": [{"name": "output", "uri": f"{BUCKET}/scoring/output/"}],
            },
        },
        {
            **_env(5, "transform-completed"),
            "event_type": "JobStatusChanged",
            "payload": {
                "job_type": "TransformJob",
                "job_name": "churn-batch-score-2026-01",
                "status": "Completed",
            },
        },
        {
            **_env(6, "package"),
            "event_type": "ModelPackageCreated",
            "payload": {
                "model_package_group_name": "churn-models",
                "version": 1,
                "model_data_uri": MODEL,
                "image_uri": TRAINING_IMAGE,
                "approval_status": "Approved",
            },
        },
        {
            **_env(7, "endpoint"),
            "event_type": "EndpointCreated",
            "payload": {
                "endpoint_name": ENDPOINT,
                "models": [
                    {
                        "model_data_uri": MODEL,
                        "image_uri": TRAINING_IMAGE,
                        "model_package_arn": package_arn,
                    }
                ],
            },
        },
    ]


def endpoint_context_arn(rec: Recorder) -> str:
    return arns.named_arn(
        "context",
        rec.settings.region,
        rec.settings.account_id,
        arns.endpoint_context_name(ENDPOINT),
    )
