"""A crash at a random point loses no event and applies none twice: the tracker and the
projector run as real subprocesses, are SIGKILLed at random moments of their progress and
restarted. Every kill lands mid-run by construction (nothing here depends on how fast the
machine is): the run freezes itself (a ``stop`` failpoint) at the latest before its last
batch, so it cannot end before the kill; the kill itself is aimed from progress."""

from __future__ import annotations

import math
import os
import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from mlineage import Settings
from mlineage.log.base import TOPIC_JOBS, open_log
from mlineage.projection.service import PROJECTED_TOPICS
from mlineage.projection.store import DuckDBStore
from tests.crash import Deployment, stopped
from tests.helpers import wait_until

pytestmark = pytest.mark.slow
JOBS = 2_000
KILLS = 6
TRACK_BATCH = 100
PROJECT_BATCH = 1_000


def kill_mid_run(
    d: Deployment,
    args: list[str],
    guard: str,
    kills: int,
    progress: Callable[[], tuple[int, int]],
    aim: Callable[[int, int, int], Callable[[], bool] | None],
    rng: random.Random,
) -> int:
    """Run ``args`` ``kills`` times, each killed mid-run, then once to completion. ``guard``
    is the point where the run freezes itself: at the hit given by ``aim`` (or, when it
    returns a condition, at the last batch, the kill then landing once the condition holds).
    Returns the kills made."""
    made = 0
    for _ in range(kills):
        done, total = progress()
        if done >= total:
            break
        remaining = math.ceil((total - done) / int(args[args.index("--batch-size") + 1]))
        if remaining < 2:
            break
        # aim within the first third of what is left, so every kill leaves room for more
        hit = rng.randint(1, max(1, remaining // 3))
        condition = aim(done, total, hit)
        at = remaining if condition is not None else hit
        proc, out = d.popen(*args, failpoints=f"{guard}=stop@{at}")

        def reached(pid: int = proc.pid, condition: Callable[[], bool] | None = condition) -> bool:
            return stopped(pid) or (condition is not None and condition())

        wait_until(reached, "the run reached the aimed point", timeout=300, pause=0.002)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL, out.read_text()[-2000:]
        after, _ = progress()
        assert after < total, "a kill landed after the run had ended"
        made += 1
    d.run(*args)
    return made


def test_sigkill_tracker_and_projector_then_same_checksum_as_clean_replay(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Deployment(home, Settings.load(home=home, environ={}).log_url) as d:
        _kill_tracker_then_projector(d)


def _kill_tracker_then_projector(d: Deployment) -> None:
    d.publish_jobs(JOBS)
    rng = random.Random(11)

    def tracked() -> tuple[int, int]:
        with open_log(d.log_url) as log:
            return (
                sum(log.committed("mlineage-tracker", TOPIC_JOBS).values()),
                sum(log.end_offsets(TOPIC_JOBS).values()),
            )

    def aim_tracker(done: int, total: int, hit: int) -> Callable[[], bool]:
        # the committed position is polled: kill once it passes a random offset inside
        # the run (the run freezes before its last batch, so it cannot end first)
        target = rng.randint(done + 1, done + max(1, (total - done) // 3))
        return lambda: tracked()[0] >= target

    kills = kill_mid_run(
        d,
        ["track", "--batch-size", str(TRACK_BATCH)],
        "tracker.before_transact",
        KILLS,
        tracked,
        aim_tracker,
        rng,
    )
    assert kills == KILLS
    d.assert_derived_exactly_once()

    def projected() -> tuple[int, int]:
        with open_log(d.log_url) as log:
            total = sum(sum(log.end_offsets(t).values()) for t in PROJECTED_TOPICS)
        if not d.db.exists():
            return 0, total
        with DuckDBStore(d.db, read_only=True) as store:
            return sum(store.positions("mlineage-projector").values()), total

    def aim_projector(done: int, total: int, hit: int) -> None:
        # DuckDB admits no reader beside the writing projector, so its position cannot be
        # polled: the run freezes at a random batch before its last one instead
        return None

    kills = kill_mid_run(
        d,
        ["project", "--batch-size", str(PROJECT_BATCH)],
        "projector.before_commit",
        KILLS,
        projected,
        aim_projector,
        rng,
    )
    assert kills == KILLS
    d.assert_projection_exact()
