"""The `mlineage` command as a user runs it: real subprocesses, a real DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import CLI, run_cli, wait_until


def run(
    home: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(home, *args, ok=check, env=env)


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("demo")
    run(home, "demo")
    return home


def test_demo_prints_the_endpoint_lineage_and_sql(tmp_path: Path) -> None:
    proc = run(tmp_path, "demo")
    text = proc.stdout
    assert "Published 8 events" in text
    assert "Endpoint churn-prediction-aws-endpoint" in text
    for expected in (
        "ModelDeployment",
        "Approval",
        "TrainingJob churn-xgb-2026-01-15",
        "DataSet s3://acme-ml-demo/raw/customers-2026-01.csv",
        "ProcessingJob churn-prep-2026-01-15",
        "Try next",
    ):
        assert expected in text
    assert "churn-xgb-2026-01-15" in text
    assert "Completed" in text


def test_demo_twice_applies_nothing_twice(demo_home: Path) -> None:
    before = run(demo_home, "checksum").stdout.strip()
    run(demo_home, "demo")
    assert run(demo_home, "checksum").stdout.strip() == before


def test_replay_gives_the_live_checksum(demo_home: Path) -> None:
    live = run(demo_home, "checksum").stdout.strip()
    proc = run(demo_home, "replay")
    assert f"checksum {live}" in proc.stdout
    assert not (demo_home / "lineage.duckdb.wal").exists()
    assert not list(demo_home.glob("*.replay-*"))


def test_sql_formats_and_refuses_writes(demo_home: Path) -> None:
    rows = json.loads(
        run(
            demo_home, "sql", "SELECT job_name, status FROM jobs ORDER BY 1", "--format", "json"
        ).stdout
    )
    assert rows == [
        {"job_name": "churn-batch-score-2026-01", "status": "Completed"},
        {"job_name": "churn-prep-2026-01-15", "status": "Completed"},
        {"job_name": "churn-xgb-2026-01-15", "status": "Completed"},
    ]
    csv_out = run(
        demo_home, "sql", "SELECT count(*) AS n FROM lineage_edges", "--format", "csv"
    ).stdout
    assert csv_out.splitlines()[0] == "n"
    assert int(csv_out.splitlines()[1]) > 10
    for statement in (
        "DELETE FROM artifacts",
        "CREATE TABLE x (a INT)",
        "INSERT INTO events SELECT * FROM events",
    ):
        proc = run(demo_home, "sql", statement, check=False)
        assert proc.returncode == 1
        assert "read-only" in proc.stderr
    proc = run(demo_home, "sql", "SELECT nope FROM artifacts", check=False)
    assert proc.returncode == 1
    assert "SQL error" in proc.stderr


def test_replay_refuses_while_a_projector_follows(tmp_path: Path) -> None:
    run(tmp_path, "demo")
    follower = subprocess.Popen(
        [*CLI, "--home", str(tmp_path), "project", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = tmp_path / "lineage.duckdb.lock"
        wait_until(
            lambda: lock.exists() and bool(lock.read_text()), "the follower took the writer lock"
        )
        proc = run(tmp_path, "replay", check=False)
        assert proc.returncode == 1
        assert "project --follow" in proc.stderr or "held by" in proc.stderr
    finally:
        follower.terminate()
        follower.wait(timeout=30)
    run(tmp_path, "replay")


def test_help_and_configuration_errors(tmp_path: Path) -> None:
    top = run(tmp_path, "--help").stdout
    for command in ("demo", "publish", "track", "project", "replay", "checksum", "sql", "schemas"):
        assert command in top
    assert "MLINEAGE_HOME" in top
    env = {**os.environ, "MLINEAGE_ACCOUNT_ID": "12"}
    proc = run(tmp_path, "checksum", check=False, env=env)
    assert proc.returncode == 1
    assert "MLINEAGE_ACCOUNT_ID must be 12 digits" in proc.stderr
    proc = run(tmp_path, "--log", "redis://x", "checksum", check=False)
    assert proc.returncode == 1
    assert "MLINEAGE_LOG" in proc.stderr


def test_flags_override_environment(tmp_path: Path) -> None:
    env = {**os.environ, "MLINEAGE_ACCOUNT_ID": "999999999999"}
    events = tmp_path / "e.jsonl"
    events.write_text(
        json.dumps(
            {
                "event_type": "EntityUpserted",
                "payload": {
                    "entity": {"kind": "action", "action_name": "a1", "action_type": "Step"}
                },
            }
        )
        + "\n"
    )
    run(tmp_path, "--account-id", "123456789012", "publish", str(events), env=env)
    rows = json.loads(
        run(
            tmp_path, "sql", "SELECT arn, account_id FROM actions", "--format", "json", env=env
        ).stdout
    )
    assert rows == [
        {"arn": "arn:aws:sagemaker:us-east-1:123456789012:action/a1", "account_id": "123456789012"}
    ]


ENDPOINT = "arn:aws:sagemaker:us-east-1:000000000000:context/churn-prediction-aws-endpoint"


def test_query_lineage_formats(demo_home: Path) -> None:
    data = json.loads(
        run(
            demo_home,
            "query-lineage",
            ENDPOINT,
            "--direction",
            "Ascendants",
            "--type",
            "DataSet",
            "--no-edges",
            "--format",
            "json",
        ).stdout
    )
    assert {v["Type"] for v in data["Vertices"]} == {"DataSet"}
    assert len(data["Vertices"]) == 3
    assert data["Edges"] == []
    dot = run(
        demo_home,
        "query-lineage",
        ENDPOINT,
        "--direction",
        "Ascendants",
        "--max-depth",
        "1",
        "--format",
        "dot",
    ).stdout
    assert dot.startswith("digraph lineage {")
    assert '-> n0 [label="AssociatedWith"' in dot
    mermaid = run(
        demo_home,
        "query-lineage",
        ENDPOINT,
        "--direction",
        "Ascendants",
        "--max-depth",
        "1",
        "--format",
        "mermaid",
    ).stdout
    assert mermaid.startswith("graph LR")
    assert "-->|AssociatedWith| n0" in mermaid
    table = run(demo_home, "query-lineage", ENDPOINT, "--max-depth", "1").stdout
    assert "cut short by --max-depth" in table
    paged = json.loads(
        run(
            demo_home,
            "query-lineage",
            ENDPOINT,
            "--direction",
            "Ascendants",
            "--max-results",
            "2",
            "--format",
            "json",
        ).stdout
    )
    assert len(paged["Vertices"]) == 2
    assert "NextToken" in paged
    proc = run(demo_home, "query-lineage", ENDPOINT, "--direction", "Sideways", check=False)
    assert proc.returncode == 2
    proc = run(demo_home, "query-lineage", ENDPOINT, "--property", "novalue", check=False)
    assert proc.returncode == 2
    assert "KEY=VALUE" in proc.stderr


def test_describe_and_list(demo_home: Path) -> None:
    found = json.loads(
        run(
            demo_home, "describe", "CHURN-XGB-2026-01-15-aws-training-job", "--format", "json"
        ).stdout
    )
    assert found["Source"]["SourceType"] == "SageMakerTrainingJob"
    assert found["Status"]["PrimaryStatus"] == "Completed"
    proc = run(demo_home, "describe", "no-such-thing", check=False)
    assert proc.returncode == 1
    assert "not found" in proc.stderr
    listed = json.loads(
        run(demo_home, "list", "artifacts", "--artifact-type", "Model", "--format", "json").stdout
    )
    assert [s["Source"]["SourceUri"] for s in listed["ArtifactSummaries"]] == [
        "s3://acme-ml-demo/models/churn-xgb-2026-01-15/output/model.tar.gz"
    ]
    csv_out = run(
        demo_home,
        "list",
        "trial-components",
        "--sort-by",
        "Name",
        "--sort-order",
        "Ascending",
        "--format",
        "csv",
    ).stdout.splitlines()
    assert len(csv_out) == 4  # header + 3 jobs
    proc = run(demo_home, "list", "artifacts", "--trial-name", "x", check=False)
    assert proc.returncode == 1
    assert "trial_name" in proc.stderr


def test_history_reads_each_event_back_from_the_log(demo_home: Path) -> None:
    """The projection keeps where each event was read, not its body: `history` joins the
    two, oldest first in merge order, with the bodies exactly as the log holds them."""
    rows = json.loads(
        run(
            demo_home,
            "sql",
            "SELECT entity_key, list(event_id ORDER BY version) AS ids FROM events "
            "WHERE entity_kind = 'trial_component' GROUP BY ALL HAVING count(*) > 1 "
            "ORDER BY entity_key LIMIT 1",
            "--format",
            "json",
        ).stdout
    )
    key, ids = rows[0]["entity_key"], rows[0]["ids"]
    lines = run(demo_home, "history", key, "--json").stdout.splitlines()
    found = [json.loads(line) for line in lines]
    assert [f["event"]["event_id"] for f in found] == ids
    assert [f["version"] for f in found] == sorted(f["version"] for f in found)
    name = key.rsplit("/", 1)[1]
    for f in found:
        assert f["event_type"] == f["event"]["event_type"] == "EntityUpserted"
        assert f["event"]["payload"]["entity"]["trial_component_name"] == name
        assert f["version"].endswith(f["event"]["event_id"])
    table = run(demo_home, "history", key).stdout
    assert "mlineage.entities.v1" in table
    proc = run(demo_home, "history", "arn:aws:sagemaker:us-east-1:0:artifact/none", check=False)
    assert proc.returncode == 1
    assert "no events for" in proc.stderr
