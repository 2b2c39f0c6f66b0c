"""A crash at any point loses no event and applies none twice: the tracker and the
projector run as real subprocesses, are SIGKILLed at random moments and restarted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mlineage import Recorder, Settings
from mlineage.events.codec import decode
from mlineage.log.base import TOPIC_ENTITIES, TOPIC_JOBS, open_log
from mlineage.projection.service import replay
from mlineage.projection.store import DuckDBStore
from mlineage.tracker.derive import derive
from tests.helpers import training_job_drafts

pytestmark = pytest.mark.slow
JOBS = 8_000


def _publish(settings: Settings, jobs: int, seed: int) -> None:
    drafts = training_job_drafts(0, jobs, jobs // 5, random.Random(seed))
    with Recorder(settings) as rec:
        for start in range(0, len(drafts), 2000):
            rec.publish_many(drafts[start:start + 2000])


def _run_killed(args: list[str], env: dict[str, str], rng: random.Random, kills: int,
                progress: Callable[[], tuple[int, int]]) -> int:
    """Start the command and SIGKILL it at a random moment, ``kills`` times, aiming each kill
    at a random point of the estimated rest of the run (from the progress measured so far,
    so the test stays meaningful however fast the machine is); then run it to completion.
    Returns how many kills landed while the run was unfinished."""
    hits = 0
    startup, rate = 0.7, 20_000.0  # first guesses: seconds to start, records per second
    for _ in range(kills):
        done, total = progress()
        if done >= total:
            break
        delay = startup + rng.uniform(0.05, 0.35) * (total - done) / rate
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        time.sleep(delay)
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        after, _ = progress()
        if alive and after < total:
            hits += 1
        if after > done and delay > startup:
            rate = (after - done) / (delay - startup)
    done_proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600,
                               check=False)
    assert done_proc.returncode == 0, done_proc.stderr
    return hits


def test_sigkill_tracker_and_projector_then_same_checksum_as_clean_replay(tmp_path: Path
                                                                          ) -> None:
    home = tmp_path / "home"
    settings = Settings.load(home=home, environ={})
    _publish(settings, JOBS, seed=7)
    env = {**os.environ, "MLINEAGE_HOME": str(home)}
    cli = [sys.executable, "-m", "mlineage.cli"]
    rng = random.Random(11)

    def tracked() -> tuple[int, int]:
        with open_log(settings.log_url) as log:
            return (sum(log.committed("mlineage-tracker", TOPIC_JOBS).values()),
                    sum(log.end_offsets(TOPIC_JOBS).values()))

    hits = _run_killed([*cli, "track", "--batch-size", "500"], env, rng, kills=6,
                       progress=tracked)
    assert hits >= 3, "the tracker finished before it could be killed: use more jobs"

    with open_log(settings.log_url) as log:
        # nothing derived twice, nothing skipped: exactly what derive() gives for the log
        sources = log.read(TOPIC_JOBS, 0, 0, 10**9)
        expected = [str(d.event_id) for r in sources for d in derive(decode(r.value))]
        derived = [decode(r.value) for r in log.read(TOPIC_ENTITIES, 0, 0, 10**9)]
        ids = [str(e.event_id) for e in derived]
        assert len(ids) == len(set(ids)), "a derived event was appended twice"
        assert sorted(ids) == sorted(expected)

    def projected() -> tuple[int, int]:
        with open_log(settings.log_url) as log:
            total = sum(sum(log.end_offsets(t).values()) for t in (TOPIC_JOBS, TOPIC_ENTITIES))
        if not settings.db_path.exists():
            return 0, total
        with DuckDBStore(settings.db_path, read_only=True) as store:
            return sum(store.positions("mlineage-projector").values()), total

    hits = _run_killed([*cli, "project", "--batch-size", "5000"], env, rng, kills=6,
                       progress=projected)
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
