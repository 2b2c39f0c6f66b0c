"""Long work shows progress and Ctrl-C is clean, through the real CLI: a catch-up and a
replay print progress on stderr (plain lines when piped), and SIGINT in either exits 130
with one line, leaves no temporary file, and loses or doubles nothing.

Ctrl-C lands at a named point: the process freezes there (a ``stop`` failpoint), the test
sends SIGINT and lets it go on, so the interrupt arrives mid-batch on every run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import CLI, run_cli, wait_until

JOBS = 300


def run(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(home, *args, env={**os.environ, **(env or {})})


def publish_jobs(home: Path, tmp_path: Path, first: int = 0) -> None:
    lines = []
    for i in range(first, first + JOBS):
        name = f"pi-{i}"
        lines.append(
            {
                "event_type": "JobCreated",
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": name,
                    "inputs": [{"name": "train", "uri": f"s3://pi/data/{i % 7}/"}],
                    "outputs": [{"name": "model", "uri": f"s3://pi/{name}/model.tar.gz"}],
                },
            }
        )
        lines.append(
            {
                "event_type": "JobStatusChanged",
                "payload": {"job_type": "TrainingJob", "job_name": name, "status": "Completed"},
            }
        )
    path = tmp_path / f"jobs-{first}.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    run(home, "publish", "--no-sync", str(path))


def interrupt_at(home: Path, point: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command, freeze it at ``point``, send SIGINT (Ctrl-C) and let it go on."""
    # The command must take SIGINT as a terminal's foreground job does. A suite started in
    # the background (nohup, `&` in a script) has SIGINT ignored, children inherit that, and
    # Python then never raises KeyboardInterrupt; a handled signal is reset to the default in
    # the child, so handle it while the child starts.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [*CLI, "--home", str(home), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MLINEAGE_FAILPOINTS": f"{point}=stop@1"},
        )
    finally:
        signal.signal(signal.SIGINT, previous)

    def frozen() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"ended before {point}: {proc.communicate()}")
        return Path(f"/proc/{proc.pid}/stat").read_text().split()[2] == "T"

    wait_until(frozen, f"the command froze at {point}", timeout=120)
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def count_jobs(home: Path) -> int:
    rows = json.loads(run(home, "sql", "--format", "json", "SELECT count(*) AS n FROM jobs").stdout)
    return int(rows[0]["n"])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    publish_jobs(home, tmp_path)
    return home


def test_a_piped_catch_up_prints_progress_lines_on_stderr(home: Path) -> None:
    proc = run(home, "sql", "SELECT 1", env={"MLINEAGE_PROGRESS_AFTER": "0"})
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("catching up:")]
    assert lines[0].startswith("catching up: starting"), proc.stderr
    assert lines[-1].startswith("catching up: done,"), proc.stderr
    assert f"track {2 * JOBS:,}/{2 * JOBS:,}" in lines[-1]
    assert "project " in lines[-1]
    assert "catching up" not in proc.stdout  # the answer stays clean for scripts


def test_replay_prints_progress_when_piped(home: Path) -> None:
    run(home, "sql", "SELECT 1")
    proc = run(home, "replay", env={"MLINEAGE_PROGRESS_AFTER": "0"})
    assert "replaying: done," in proc.stderr
    assert "checksum" in proc.stdout


def test_ctrl_c_in_a_replay_exits_130_and_leaves_the_projection_as_it_was(home: Path) -> None:
    run(home, "sql", "SELECT 1")  # caught up
    before = run(home, "checksum", "--no-sync").stdout
    proc = interrupt_at(home, "projector.before_commit", "replay")
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    said = [ln for ln in proc.stderr.splitlines() if ln.strip() and "replaying" not in ln]
    assert len(said) == 1, proc.stderr
    assert said[0].startswith("interrupted")
    db = home / "lineage.duckdb"
    assert not [p for p in home.iterdir() if p.name.startswith(f"{db.name}.replay-")]
    assert run(home, "checksum", "--no-sync").stdout == before
    # and a replay run again finishes with the same state
    assert run(home, "replay").stdout.splitlines()[-1] == f"checksum {before.strip()}"


def test_ctrl_c_in_a_catch_up_exits_130_and_the_next_command_finishes_it(
    home: Path, tmp_path: Path
) -> None:
    run(home, "sql", "SELECT 1")
    publish_jobs(home, tmp_path, first=JOBS)  # a second batch to catch up with
    proc = interrupt_at(home, "projector.before_commit", "sql", "SELECT count(*) FROM jobs")
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("interrupted")
    assert count_jobs(home) == 2 * JOBS  # caught up now, nothing lost
    state = run(home, "checksum").stdout
    assert run(home, "replay").stdout.splitlines()[-1] == f"checksum {state.strip()}"
