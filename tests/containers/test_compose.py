"""docker-compose.yml for real: the broker, tracker and projector images run under a real
container engine (scripts/containers/setup.sh provides one, and the images where no registry
answers), jobs are published from the host through the published Kafka port with the
project's CLI, and the projection the containers maintain answers SQL and QueryLineage.

Also here: the check that the Kafka tests' session broker really is a container when an
engine answers (the testcontainers path must not quietly fall back to the jar broker)."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import training_job_drafts, wait_until
from tests.kafka_broker import ENV_EXTERNAL, Broker, docker_available, free_port, skip_or_fail

pytestmark = [pytest.mark.containers, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "mlineage.cli"]
JOBS = 1000
POOL = 40  # datasets the jobs draw their two inputs from
IMAGES = 5  # training_job_drafts: one of 5 images per job
SETUP_HINT = "run scripts/containers/setup.sh (it installs and starts one)"


def compose_command() -> list[str]:
    """``docker-compose`` (v1) or the ``docker compose`` plugin, whichever this host has."""
    command: list[str] | None = None
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            command = ["docker", "compose"]
    if command is None:
        skip_or_fail(f"neither docker-compose nor `docker compose` is installed: {SETUP_HINT}")
    return command


class Stack:
    """One ``docker-compose up`` of the repository's compose file, under its own project name
    and host port, so that it meets no other stack on this machine."""

    def __init__(self, workdir: Path) -> None:
        self.compose = compose_command()
        self.project = f"mlt{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "MLINEAGE_KAFKA_PORT": str(self.port),
        }
        self.log_url = f"kafka://localhost:{self.port}?partitions=3"
        self.workdir = workdir

    def run(self, *args: str, timeout: float = 300.0, check: bool = True) -> str:
        proc = subprocess.run(
            [*self.compose, "-f", str(REPO / "docker-compose.yml"), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(self.compose)} {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{self.logs()}"
            )
        return proc.stdout

    def down_when_gone(self) -> None:
        """If this test process dies without its teardown, the stack goes down after it."""
        compose = shlex.join([*self.compose, "-f", str(REPO / "docker-compose.yml")])
        subprocess.Popen(
            [
                "sh",
                "-c",
                f'while kill -0 "$1" 2>/dev/null; do sleep 2; done; {compose} down -v -t 5',
                "watch",
                str(os.getpid()),
            ],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def logs(self) -> str:
        proc = subprocess.run(
            [*self.compose, "-f", str(REPO / "docker-compose.yml"), "logs", "--tail", "30"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return proc.stdout[-6000:]

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service).strip()

    def state(self, service: str) -> tuple[str, str]:
        """(status, health) of the service's container: ('running', 'healthy'), ..."""
        cid = self.container(service)
        if not cid:
            return ("missing", "")
        out = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                cid,
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        return (out[0], out[1] if len(out) > 1 else "") if out else ("missing", "")

    def mlineage(self, service: str, *args: str) -> str:
        """``mlineage ARGS`` inside the running service's container."""
        return self.run("exec", "-T", service, "mlineage", *args, timeout=120)

    def sql_value(self, query: str) -> Any:
        rows = json.loads(self.mlineage("projector", "sql", "--format", "json", query))
        return next(iter(rows[0].values())) if rows else None

    def host(self, *args: str, db: Path | None = None) -> str:
        """The project's CLI on the host, against the stack's Kafka port."""
        home = self.workdir / "host-home"
        cmd = [*CLI, "--log", self.log_url, "--home", str(home)]
        if db is not None:
            cmd += ["--db", str(db)]
        proc = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, f"mlineage {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if not docker_available():
        skip_or_fail(f"no container engine answers: {SETUP_HINT}")
    s = Stack(tmp_path)
    s.down_when_gone()
    try:
        s.run("up", "-d", "--build", timeout=900)
        yield s
    finally:
        s.run("down", "-v", "--remove-orphans", "-t", "10", timeout=300, check=False)


def publish_jobs(stack: Stack, first: int, count: int, rng: random.Random) -> None:
    path = stack.workdir / f"jobs-{first}.jsonl"
    drafts = training_job_drafts(first, count, POOL, rng)
    path.write_text("".join(json.dumps(d) + "\n" for d in drafts))
    out = stack.host("publish", str(path))
    assert f"published {2 * count} events" in out


def caught_up(stack: Stack) -> bool:
    """Tracker and projector have read everything in the log (the projector's snapshot too)."""
    status = json.loads(stack.mlineage("projector", "status", "--json"))
    consumers = {c["name"]: c for c in status["consumers"]}
    return all(
        consumers.get(name, {}).get("lag") == 0 and consumers[name]["positions"]
        for name in ("mlineage-tracker", "mlineage-projector")
    )


def test_compose_stack_tracks_and_projects_jobs_published_from_the_host(stack: Stack) -> None:
    wait_until(
        lambda: (
            stack.state("kafka") == ("running", "healthy")
            and all(stack.state(s)[0] == "running" for s in ("tracker", "projector"))
        ),
        "the broker is healthy and the tracker and projector run",
        timeout=180,
        pause=1.0,
    )
    rng = random.Random(18)
    publish_jobs(stack, 0, JOBS // 2, rng)
    # the projector crashes (SIGKILL) once it has applied some of the first half, and comes
    # back while the second half is published
    wait_until(
        lambda: (stack.sql_value("SELECT count(*) FROM jobs") or 0) > 0,
        "the projector applied its first jobs",
        timeout=300,
        pause=1.0,
    )
    stack.run("kill", "-s", "SIGKILL", "projector")
    publish_jobs(stack, JOBS // 2, JOBS - JOBS // 2, rng)
    stack.run("start", "projector")
    wait_until(
        lambda: (
            caught_up(stack)
            and stack.sql_value("SELECT count(*) FROM jobs WHERE status = 'Completed'") == JOBS
        ),
        f"the containers projected all {JOBS} jobs",
        timeout=600,
        pause=2.0,
    )

    assert stack.sql_value("SELECT count(*) FROM trial_components WHERE live") == JOBS
    models = stack.sql_value("SELECT count(*) FROM artifacts WHERE artifact_type = 'Model'")
    assert models == JOBS
    datasets = stack.sql_value(
        "SELECT count(DISTINCT source_uri) FROM artifacts WHERE artifact_type = 'DataSet'"
    )
    assert 0 < datasets <= POOL
    assert stack.sql_value("SELECT count(*) FROM dead_letters") == 0
    model_arn = stack.sql_value(
        "SELECT arn FROM artifacts WHERE source_uri = 's3://m/job-777/model.tar.gz'"
    )
    lineage = json.loads(
        stack.mlineage(
            "projector",
            "query-lineage",
            model_arn,
            "--direction",
            "Ascendants",
            "--format",
            "json",
        )
    )
    types = sorted(v["Type"] for v in lineage["Vertices"])
    assert types.count("TrainingJob") == 1, types
    assert types.count("Image") == 1, types
    assert 1 <= types.count("DataSet") <= 2, types

    # nothing lost or applied twice across the crash: the containers' projection has the
    # checksum of a clean replay of the same log (here, on the host, through the Kafka port)
    stack.run("stop", "-t", "30", "projector")
    live = (
        stack.run("run", "--rm", "--no-deps", "projector", "checksum", "--no-sync", timeout=120)
        .strip()
        .splitlines()[-1]
    )
    replayed_db = stack.workdir / "replayed.duckdb"
    stack.host("replay", db=replayed_db)
    clean = stack.host("checksum", "--no-sync", db=replayed_db).strip().splitlines()[-1]
    assert live == clean


def test_kafka_tests_use_a_container_broker_when_an_engine_answers(
    kafka_broker: Broker,
) -> None:
    """CI runs the Kafka tests on a testcontainers broker (and the fault tests, which stop
    and kill their own, on the jar broker): both paths stay honest."""
    if os.environ.get(ENV_EXTERNAL):
        pytest.skip(f"{ENV_EXTERNAL} names a broker somebody else runs")
    if not docker_available():
        skip_or_fail(f"no container engine answers: {SETUP_HINT}")
    assert kafka_broker.kind == "container", kafka_broker
