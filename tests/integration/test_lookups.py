"""Lookups by what users know, through the real CLI: `describe` and `query-lineage` take an
ARN, a name, an artifact's URI, a job's name or ARN (its trial component), an endpoint's
ARN; `list jobs`; kinds in any spelling; type values case-insensitively, with "did you
mean" when nothing matches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli

ACCOUNT = "000000000000"
PREFIX = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}"
TRAINING_TC = f"{PREFIX}:experiment-trial-component/churn-xgb-2026-01-15-aws-training-job"
ENDPOINT_CONTEXT = f"{PREFIX}:context/churn-prediction-aws-endpoint"
MODEL_URI = "s3://acme-ml-demo/models/churn-xgb-2026-01-15/output/model.tar.gz"


run = run_cli


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("lookups") / "home"
    run(home, "demo")
    return home


def model_arn(home: Path) -> str:
    rows = json.loads(
        run(
            home,
            "sql",
            "--format",
            "json",
            f"SELECT arn FROM artifacts WHERE source_uri = '{MODEL_URI}'",
        ).stdout
    )
    return str(rows[0]["arn"])


def described_arn(home: Path, key: str) -> str:
    found = json.loads(run(home, "describe", key, "--format", "json").stdout)
    keys = ("TrialComponentArn", "ContextArn", "ArtifactArn", "ActionArn")
    return str(next(found[k] for k in keys if k in found))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("churn-xgb-2026-01-15", TRAINING_TC),  # a job name
        (f"{PREFIX}:training-job/churn-xgb-2026-01-15", TRAINING_TC),  # a job ARN
        (TRAINING_TC, TRAINING_TC),
        ("churn-xgb-2026-01-15-aws-training-job", TRAINING_TC),  # the trial component's name
        (f"{PREFIX}:endpoint/churn-prediction", ENDPOINT_CONTEXT),  # the endpoint's ARN
        ("churn-prediction-aws-endpoint", ENDPOINT_CONTEXT),
    ],
)
def test_describe_takes_what_users_know(home: Path, key: str, expected: str) -> None:
    assert described_arn(home, key) == expected


def test_describe_an_artifact_by_its_uri(home: Path) -> None:
    proc = run(home, "describe", MODEL_URI, "--format", "json")
    assert json.loads(proc.stdout)["ArtifactArn"] == model_arn(home)
    assert f"note: {MODEL_URI} is {model_arn(home)}" in proc.stderr


def test_describe_of_nothing_says_what_it_takes(home: Path) -> None:
    proc = run(home, "describe", "s3://nobody/here", ok=False)
    assert proc.returncode == 1
    assert "not found" in proc.stderr
    assert "mlineage list" in proc.stderr
    assert "Traceback" not in proc.stderr
    job = run(home, "describe", f"{PREFIX}:training-job/never-ran", ok=False)
    assert "no trial component was derived from the job" in job.stderr


@pytest.mark.parametrize(
    "start", ["churn-xgb-2026-01-15", f"{PREFIX}:training-job/churn-xgb-2026-01-15", MODEL_URI]
)
def test_query_lineage_starts_from_what_users_know(home: Path, start: str) -> None:
    by_key = json.loads(
        run(home, "query-lineage", start, "--direction", "Both", "--format", "json").stdout
    )
    arn = TRAINING_TC if "xgb-2026-01-15" in start and "model" not in start else model_arn(home)
    by_arn = json.loads(
        run(home, "query-lineage", arn, "--direction", "Both", "--format", "json").stdout
    )
    assert by_key == by_arn
    assert by_key["Vertices"]


def test_list_jobs_with_filters_and_paging(home: Path) -> None:
    page = json.loads(run(home, "list", "jobs", "--format", "json").stdout)
    names = [j["JobName"] for j in page["JobSummaries"]]
    assert names == ["churn-batch-score-2026-01", "churn-xgb-2026-01-15", "churn-prep-2026-01-15"]
    training = json.loads(
        run(
            home,
            "list",
            "job",
            "--job-type",
            "trainingjob",
            "--status",
            "COMPLETED",
            "--format",
            "json",
        ).stdout
    )
    assert [j["JobArn"] for j in training["JobSummaries"]] == [
        f"{PREFIX}:training-job/churn-xgb-2026-01-15"
    ]
    first = run(home, "list", "jobs", "--max-results", "2", "--format", "csv")
    rest = first.stderr.split("--next-token ")[1].split()[0]
    second = run(
        home, "list", "jobs", "--max-results", "2", "--next-token", rest, "--format", "csv"
    )
    rows = first.stdout.splitlines()[1:] + second.stdout.splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == names
    bad = run(home, "list", "jobs", "--status", "Done", ok=False)
    assert bad.returncode != 0
    assert "matches nothing" in bad.stderr


@pytest.mark.parametrize(
    "spelling", ["trial-components", "trial_component", "TrialComponent", "trial components"]
)
def test_kinds_in_any_spelling(home: Path, spelling: str) -> None:
    page = json.loads(run(home, "list", spelling, "--format", "json").stdout)
    assert page["TrialComponentSummaries"]


def test_an_unknown_kind_lists_the_kinds_as_help_writes_them(home: Path) -> None:
    proc = run(home, "list", "modles", ok=False)
    assert "trial-components" in proc.stderr
    assert "trial_component," not in proc.stderr


def test_type_values_match_case_insensitively_or_say_did_you_mean(home: Path) -> None:
    exact = run(home, "list", "artifacts", "--artifact-type", "DataSet", "--format", "json")
    loose = run(home, "list", "artifacts", "--artifact-type", "dataset", "--format", "json")
    assert json.loads(exact.stdout) == json.loads(loose.stdout)
    assert json.loads(exact.stdout)["ArtifactSummaries"]
    typo = run(home, "list", "artifacts", "--artifact-type", "Datset", ok=False)
    assert "did you mean DataSet?" in typo.stderr
    # SageMaker names a training job's end SageMakerTrainingJob; TrainingJob finds it too
    short = run(
        home, "list", "associations", "--destination-type", "TrainingJob", "--format", "json"
    )
    assert json.loads(short.stdout)["AssociationSummaries"]
    walk = ["query-lineage", ENDPOINT_CONTEXT, "--direction", "Ascendants", "--no-edges"]
    typed = json.loads(run(home, *walk, "--type", "dataset", "--format", "json").stdout)
    assert {v["Type"] for v in typed["Vertices"]} == {"DataSet"}
    wrong = run(home, *walk, "--type", "Dataste", ok=False)
    assert "did you mean DataSet?" in wrong.stderr
    lineage = json.loads(run(home, *walk, "--lineage-type", "artifact", "--format", "json").stdout)
    assert {v["LineageType"] for v in lineage["Vertices"]} == {"Artifact"}
