"""Reads work while `mlineage project --follow` holds the projection (two real processes):
they read the snapshot the follower keeps fresh, within the documented staleness bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlineage import Recorder, Settings
from mlineage.pipeline import sync
from tests.helpers import wait_until

CLI = [sys.executable, "-m", "mlineage.cli"]


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--home", str(home), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _jobs(home: Path) -> set[str]:
    proc = _cli(home, "sql", "SELECT job_name FROM jobs", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return {row["job_name"] for row in json.loads(proc.stdout)}


@pytest.mark.slow
def test_sql_query_lineage_while_a_projector_follows(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path, environ={})
    rec = Recorder(settings)
    rec.job_created("TrainingJob", "before-follow", inputs={"train": "s3://d/a"})
    sync(settings)
    follower = subprocess.Popen(
        [*CLI, "--home", str(tmp_path), "project", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    tracker = subprocess.Popen(
        [*CLI, "--home", str(tmp_path), "track", "--follow"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        snapshot = tmp_path / "lineage.duckdb.snapshot"

        def snapshot_written() -> bool:
            assert follower.poll() is None, follower.communicate()[1]
            return snapshot.exists()

        wait_until(snapshot_written, "the follower wrote a snapshot")
        proc = _cli(tmp_path, "sql", "SELECT count(*) AS n FROM jobs", "--format", "json")
        assert proc.returncode == 0, proc.stderr
        assert "reading its snapshot" in proc.stderr
        assert json.loads(proc.stdout) == [{"n": 1}]

        # a new job published now becomes visible (how soon is measured by the benchmarks,
        # bench/kafka_pipeline.py; here a generous time-out only guards against a hang)
        rec.job_created("TrainingJob", "during-follow", inputs={"train": "s3://d/b"})
        wait_until(lambda: "during-follow" in _jobs(tmp_path), "the new job is visible", pause=0.2)
        # ... and QueryLineage sees what the tracker derived from it
        tc = (
            "arn:aws:sagemaker:us-east-1:000000000000:experiment-trial-component/"
            "during-follow-aws-training-job"
        )
        vertices: list[dict[str, str]] = []

        def derived_visible() -> bool:
            proc = _cli(
                tmp_path, "query-lineage", tc, "--direction", "Ascendants", "--format", "json"
            )
            assert proc.returncode == 0, proc.stderr
            vertices[:] = json.loads(proc.stdout)["Vertices"]
            return len(vertices) > 1  # the start is returned too

        wait_until(derived_visible, "QueryLineage shows what the tracker derived", pause=0.2)
        assert [(v["Arn"] == tc, v["Type"]) for v in vertices] == [
            (True, "TrainingJob"),
            (False, "DataSet"),
        ]
        # the live file stays held: a second writer is refused with a clear message
        proc = _cli(tmp_path, "replay")
        assert proc.returncode == 1
    finally:
        follower.terminate()
        tracker.terminate()
        follower.wait(timeout=30)
        tracker.wait(timeout=30)
    rec.close()
    assert _jobs(tmp_path) == {"before-follow", "during-follow"}
