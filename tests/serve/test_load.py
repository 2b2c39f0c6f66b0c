"""20 concurrent boto3 clients for 60 s against a real server (bench/serve_load.py): no
errors, and everything a client was told it created is there afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_twenty_clients_for_sixty_seconds_lose_nothing(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "serve_load.py"),
            "--clients",
            "20",
            "--seconds",
            "60",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(proc.stdout)  # the latency table, in the test log
    figures = json.loads(out.read_text())
    assert figures["errors"] == []
    assert figures["missing"] == []
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ops = figures["operations"]
    assert {
        "create_artifact",
        "create_action",
        "add_association",
        "list_artifacts",
        "query_lineage",
        "describe_artifact",
    } <= set(ops)
    assert all(op["calls"] > 20 for op in ops.values())
