"""A crash at any point loses no event and applies none twice: the tracker and the
projector run as real subprocesses, are SIGKILLed at random moments and restarted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlineage import Recorder, Settings
from mlineage.events.codec import decode
from mlineage.log.base import TOPIC_ENTITIES, TOPIC_JOBS, open_log
from mlineage.projection.service import replay
from mlineage.projection.store import DuckDBStore
from mlineage.tracker.derive import derive

pytestmark = pytest.mark.slow
JOBS = 3000


def _publish(settings: Settings, jobs: int, seed: int) -> None:
    rng = random.Random(seed)
    drafts = []
    for i in range(jobs):
        name = f"job-{i}"
        drafts.append({"event_type": "JobCreated", "payload": {
            "job_type": "TrainingJob", "job_name": name,
            "image_uri": f"registry/image:{rng.randrange(5)}",
            "inputs": [{"name": "train", "uri": f"s3://d/ds-{rng.randrange(jobs // 5)}"},
                       {"name": "test", "uri": f"s3://d/ds-{rng.randrange(jobs // 5)}"}],
            "outputs": [{"name": "model", "uri": f"s3://m/{name}/model.tar.gz"}],
        }})
        drafts.append({"event_type": "JobStatusChanged", "payload": {
            "job_type": "TrainingJob", "job_name": name, "status": "Completed",
            "metrics": {"auc": rng.random()}}})
    with Recorder(settings) as rec:
        for start in range(0, len(drafts), 2000):
            rec.publish_many(drafts[start:start + 2000])


def _run_killed(args: list[str], env: dict[str, str], rng: random.Random, kills: int,
                min_delay: float, max_delay: float) -> int:
    """Start the command, SIGKILL it after a random delay, ``kills`` times; return how many
    kills hit a live process. Then run it once more to completion."""
    hits = 0
    for _ in range(kills):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        time.sleep(rng.uniform(min_delay, max_delay))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            hits += 1
        proc.wait()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    return hits


def test_sigkill_tracker_and_projector_then_same_checksum_as_clean_replay(tmp_path: Path
                                                                          ) -> None:
    home = tmp_path / "home"
    settings = Settings.load(home=home, environ={})
    _publish(settings, JOBS, seed=7)
    env = {**os.environ, "MLINEAGE_HOME": str(home)}
    cli = [sys.executable, "-m", "mlineage.cli"]
    rng = random.Random(11)

    hits = _run_killed([*cli, "track"], env, rng, kills=5, min_delay=0.6, max_delay=1.6)
    assert hits >= 3, "the tracker finished before it could be killed: use more jobs"

    with open_log(settings.log_url) as log:
        # nothing derived twice, nothing skipped: exactly what derive() gives for the log
        sources = log.read(TOPIC_JOBS, 0, 0, 10**9)
        expected = [str(d.event_id) for r in sources for d in derive(decode(r.value))]
        derived = [decode(r.value) for r in log.read(TOPIC_ENTITIES, 0, 0, 10**9)]
        ids = [str(e.event_id) for e in derived]
        assert len(ids) == len(set(ids)), "a derived event was appended twice"
        assert sorted(ids) == sorted(expected)

    hits = _run_killed([*cli, "project", "--batch-size", "2000"], env, rng, kills=6,
                       min_delay=0.8, max_delay=2.5)
    assert hits >= 3, "the projector finished before it could be killed: use more jobs"

    with DuckDBStore(settings.db_path, read_only=True) as store:
        live = store.checksum()
        n_events = store.counts()["events"]
    with open_log(settings.log_url) as log:
        total = sum(sum(log.end_offsets(t).values()) for t in (TOPIC_JOBS, TOPIC_ENTITIES))
        clean = tmp_path / "clean.duckdb"
        replay(log, clean)
    with DuckDBStore(clean, read_only=True) as store:
        assert store.checksum() == live
    assert n_events == total  # every record applied exactly once (no duplicates published)
