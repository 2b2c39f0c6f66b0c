"""Many `mlineage` commands at once on one embedded home, as a team's scripts run them:
reads, publishes and shares side by side, alone, beside `project --follow` and beside
`serve`. Every command must succeed (exit 0), and nothing may be published or derived twice.

Before: four parallel `mlineage sql` failed about half the time ("held by another process
and has no snapshot yet"), and `publish` / `share` printed success, then exited 1 while a
follower ran. Now the processes of one home take turns (``AccessLock``): one catches up while
the others wait for it, and while a follower holds the projection they read its snapshot
and leave the new events to it (it tracks them too)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlineage.log.base import TOPIC_ENTITIES, TOPIC_JOBS
from mlineage.log.sqlite import SqliteEventLog
from mlineage.projection.service import AccessLock
from mlineage.projection.store import DuckDBStore
from mlineage.query.store import LineageStore
from tests.helpers import read_all, wait_until
from tests.kafka_broker import free_port

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "mlineage.cli"]
ROUNDS = int(os.environ.get("MLINEAGE_TEST_ROUNDS", "20"))  # fewer for a quick look
PUBLISHES_PER_ROUND = 2
OWNER, GRANTEE = "000000000000", "111122223333"


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def job_file(home: Path, name: str) -> Path:
    path = home.parent / f"{name}.jsonl"
    created = {
        "event_type": "JobCreated",
        "payload": {
            "job_type": "TrainingJob",
            "job_name": name,
            "inputs": [{"name": "train", "uri": f"s3://cc/{name}/train"}],
            "outputs": [{"name": "model", "uri": f"s3://cc/{name}/model.tar.gz"}],
        },
    }
    done = {
        "event_type": "JobStatusChanged",
        "payload": {"job_type": "TrainingJob", "job_name": name, "status": "Completed"},
    }
    path.write_text(json.dumps(created) + "\n" + json.dumps(done) + "\n")
    return path


def round_commands(home: Path, r: int) -> list[list[str]]:
    """Eight commands: two publishes, a share or an unshare, and five reads."""
    publishes = [
        ["publish", str(job_file(home, f"cc-{r}-{i}"))] for i in range(PUBLISHES_PER_ROUND)
    ]
    share = ["share" if r % 2 == 0 else "unshare", "--owner", OWNER, "--with", GRANTEE]
    reads = [
        ["sql", "--format", "csv", "SELECT count(*) FROM jobs"],
        ["sql", "--format", "json", "SELECT count(*) AS n FROM lineage_edges"],
        ["list", "artifacts", "--max-results", "5"],
        ["status", "--json"],
        ["checksum"],
    ]
    return [*publishes, share, *reads]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    proc = run(home, "demo")
    assert proc.returncode == 0, proc.stderr
    return home


@pytest.fixture(params=["alone", "follower", "serve"])
def beside(request: pytest.FixtureRequest, home: Path) -> Iterator[str]:
    """What runs beside the commands: nothing, `project --follow`, or `serve`."""
    mode: str = request.param
    if mode == "alone":
        yield mode
        return
    args = (
        ["project", "--follow"]
        if mode == "follower"
        else ["serve", "--no-auth", "--port", str(free_port())]
    )
    service = subprocess.Popen(
        [*CLI, "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    snapshot = home / "lineage.duckdb.snapshot"
    try:
        wait_until(
            lambda: snapshot.exists() or service.poll() is not None,
            f"{mode} wrote its first snapshot",
            timeout=120,
        )
        assert service.poll() is None, service.communicate()[1]
        yield mode
        assert service.poll() is None, f"{mode} died: {service.communicate()[1]}"
    finally:
        service.terminate()
        service.wait(timeout=60)


def test_concurrent_commands_all_succeed_and_nothing_is_published_twice(
    home: Path, beside: str
) -> None:
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for r in range(ROUNDS):
            commands = round_commands(home, r)
            for args, proc in zip(
                commands, pool.map(lambda a: run(home, *a), commands), strict=True
            ):
                if proc.returncode != 0:
                    failures.append(f"round {r} {' '.join(args)}: {proc.returncode} {proc.stderr}")
    assert not failures, "\n".join(failures[:10])

    # everything published is projected (by the follower, the server, or the next command),
    # the tracker derived it once, and the log holds each publish once
    expected_jobs = ROUNDS * PUBLISHES_PER_ROUND

    counts: dict[str, int] = {}

    def projected() -> bool:
        # jobs and the trial components the tracker derives from them: a job can be
        # projected a pass before its trial component (the tracker derives it on the pass
        # after the job reached the log), so both are waited for
        proc = run(
            home,
            "sql",
            "--format",
            "json",
            "SELECT (SELECT count(*) FROM jobs WHERE status = 'Completed' AND job_name LIKE "
            "'cc-%') AS jobs, (SELECT count(*) FROM trial_components WHERE "
            "trial_component_name LIKE 'cc-%') AS tcs",
        )
        if proc.returncode != 0:
            return False
        counts.update(json.loads(proc.stdout)[0])
        return counts["jobs"] == expected_jobs and counts["tcs"] >= expected_jobs

    wait_until(projected, f"all {expected_jobs} jobs and their trial components are projected")
    assert counts == {"jobs": expected_jobs, "tcs": expected_jobs}
    log = SqliteEventLog(home / "events.sqlite")
    try:
        published = [json.loads(rec.value) for rec in read_all(log, TOPIC_JOBS)]
        ours = [e for e in published if str(e["payload"].get("job_name", "")).startswith("cc-")]
        assert len(ours) == 2 * ROUNDS * PUBLISHES_PER_ROUND
        derived = [json.loads(rec.value)["event_id"] for rec in read_all(log, TOPIC_ENTITIES)]
        assert len(derived) == len(set(derived)), "an event was derived twice"
    finally:
        log.close()


def test_a_starting_follower_waits_for_a_reader_instead_of_failing(home: Path) -> None:
    """A reader holding the projection (here a LineageStore of this process) makes a
    starting `project --follow` wait, saying so, and it takes over once the reader is done
    (it used to exit 1, "held by another process")."""
    reader = LineageStore.open(home / "lineage.duckdb")
    follower = subprocess.Popen(
        [*CLI, "--home", str(home), "project", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stderr: list[str] = []
        assert follower.stderr is not None
        wait_until(
            lambda: bool(stderr.append(follower.stderr.readline()) or "waiting" in stderr[-1]),
            "the follower says it waits for the reader",
            timeout=120,
        )
        assert follower.poll() is None
        reader.close()
        wait_until(
            lambda: "following" in follower.stderr.readline(),
            "the follower took over the projection",
            timeout=120,
        )
        assert (home / "lineage.duckdb.snapshot").exists()
        assert follower.poll() is None
    finally:
        reader.close()
        follower.terminate()
        follower.wait(timeout=60)


def _holds_open(pid: int, path: Path) -> bool:
    """True when process ``pid`` has ``path`` open (it is at the lock on it, or past it)."""
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        return any(os.path.realpath(fd) == str(path) for fd in fds.iterdir())
    return False


@pytest.mark.parametrize(
    "args", [["status", "--json"], ["dlq", "list", "--json"], ["checksum", "--no-sync"]]
)
def test_a_short_read_waits_for_a_catch_up_instead_of_racing_it(
    home: Path, args: list[str]
) -> None:
    """While a command catches up (it holds the access lock and the file for writing),
    `status`, `dlq list` and `checksum` wait for it and then read the live file. `status`
    and `dlq list` used to open the file without the lock: they read around a catch-up, and
    a catch-up that began while they read failed ("held by another process")."""
    db = home / "lineage.duckdb"
    access = AccessLock(db)
    access.acquire(exclusive=True)
    writer = DuckDBStore(db)  # what a catch-up holds
    reader = subprocess.Popen(
        [*CLI, "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: _holds_open(reader.pid, access.path.resolve()) or reader.poll() is not None,
            f"{args[0]} is at the access lock",
            timeout=120,
        )
        assert reader.poll() is None, f"{args[0]} did not wait: {reader.communicate()}"
        writer.close()
        access.release()
        stdout, stderr = reader.communicate(timeout=120)
        assert reader.returncode == 0, stderr
        if args[0] == "status":
            projector = json.loads(stdout)["consumers"][1]
            assert projector["where"] == str(db), projector  # the live file, not a fallback
            assert sum(projector["positions"].values()) > 0
        elif args[0] == "checksum":
            assert len(stdout.strip()) == 64
    finally:
        writer.close()
        access.release()
        reader.kill()
        reader.communicate()
