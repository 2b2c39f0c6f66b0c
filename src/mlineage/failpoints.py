"""Failpoints: named instants where a test makes this process crash, freeze or fail.

Set ``MLINEAGE_FAILPOINTS`` to a comma-separated list of ``point=action@N``:

- ``kill@N``: SIGKILL this process on the N-th hit of the point (a crash: no clean-up, no
  ``finally``, no atexit);
- ``stop@N``: SIGSTOP it there (frozen: a test can then SIGKILL it at leisure, so a kill
  drawn at random is sure to land before the run could end);
- ``raise@N``: raise :class:`FailpointError` there (a transient fault of the dependency the
  point talks to; the caller's error handling takes over);
- ``N`` counts hits from 1 in this process; ``@N+`` acts on the N-th and every later hit.

The variable is read once, at import; unset (the normal case) a point costs one global
lookup and a truth test. Each point and what recovery must guarantee there is listed in
:data:`POINTS` (and in docs/design.md); ``tests/integration/test_failpoints.py`` crashes at
every one and fails when a point in the code has no crash test.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass

from mlineage.errors import ConfigurationError, EventLogError

ENV = "MLINEAGE_FAILPOINTS"

POINTS: dict[str, str] = {
    "tracker.before_transact": (
        "the batch is derived, nothing written: the restart derives it again, once"
    ),
    "tracker.after_transact": (
        "derived records and the tracker's position are committed together: the restart "
        "resumes after the batch, nothing derived twice"
    ),
    "kafka.before_commit": (
        "Kafka: records sent and offsets added to the transaction (send_offsets_to_transaction), "
        "not committed: the restarted instance's producer (same transactional id) fences and "
        "aborts it, read_committed readers never see it, the batch is derived again once"
    ),
    "projector.before_commit": (
        "the batch's rows are written inside the DuckDB transaction, not committed: DuckDB "
        "drops them on open and the restart projects the batch from the stored positions"
    ),
    "projector.after_commit": (
        "rows and positions are committed together: the restart resumes after the batch"
    ),
    "spool.after_forward": (
        "a spooled chunk is committed in Kafka but still in the spool: whoever adopts the "
        "spool forwards it again; the copies share event ids and the projector applies each "
        "id once"
    ),
    "replay.before_swap": (
        "the rebuilt file is complete beside the live one, which is untouched; the next "
        "replay (or follower) removes the leftover"
    ),
    "replay.after_swap": (
        "the rebuilt file is in place (same checksum as a clean replay); nothing is left "
        "beside it once a replay or follower runs again"
    ),
    "serve.after_append": (
        "the write is in the log but unanswered: the restarted server projects it, the write "
        "happened once, and a retried create answers that it exists"
    ),
    "snapshot.mid_copy": (
        "the snapshot is being copied to a temporary file: readers keep the previous "
        "snapshot; the restarted follower removes the temporary file and writes a new one"
    ),
}

ACTIONS = ("kill", "stop", "raise")


class FailpointError(EventLogError):
    """Raised by a ``raise`` failpoint: stands for a transient fault at that instant."""


@dataclass
class _Plan:
    action: str
    at: int
    onward: bool
    hits: int = 0


_SPEC = re.compile(r"^(?P<point>[a-z_.]+)=(?P<action>[a-z]+)@(?P<at>[0-9]+)(?P<onward>\+?)$")


def parse(text: str) -> dict[str, _Plan]:
    """The plans of a ``MLINEAGE_FAILPOINTS`` value; a clear error for anything else."""
    plans: dict[str, _Plan] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        m = _SPEC.match(item)
        if m is None:
            raise ConfigurationError(
                f"{ENV}: {item!r} is not point=action@N (for example projector.after_commit=kill@3)"
            )
        point, action, at = m["point"], m["action"], int(m["at"])
        if point not in POINTS:
            raise ConfigurationError(
                f"{ENV}: no failpoint {point!r}; the points are {', '.join(sorted(POINTS))}"
            )
        if action not in ACTIONS:
            raise ConfigurationError(
                f"{ENV}: {action!r} is not an action; use one of {', '.join(ACTIONS)}"
            )
        if at < 1:
            raise ConfigurationError(f"{ENV}: {item!r}: hits count from 1")
        plans[point] = _Plan(action, at, bool(m["onward"]))
    return plans


_ARMED: dict[str, _Plan] = parse(os.environ.get(ENV, ""))


def hit(point: str) -> None:
    """Mark that this process reached ``point``; acts only when ``MLINEAGE_FAILPOINTS``
    arms it."""
    if _ARMED:
        _trigger(point)


def _trigger(point: str) -> None:
    plan = _ARMED.get(point)
    if plan is None:
        return
    plan.hits += 1
    if plan.hits < plan.at or (plan.hits > plan.at and not plan.onward):
        return
    if plan.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif plan.action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    else:
        raise FailpointError(f"failpoint {point} (hit {plan.hits})")
