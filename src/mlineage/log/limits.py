"""What ends a consumer's run (the tracker's and the projector's runners share it): a
number of records, a deadline, or the caller's ``stop()``, asked between batches."""

from __future__ import annotations

import time
from collections.abc import Callable


class RunLimits:
    """The stop conditions of one run: at most ``max_events`` records (None: no limit), for
    at most ``timeout`` seconds from now (None: no deadline), until ``stop()`` says so."""

    def __init__(
        self,
        batch_size: int,
        max_events: int | None = None,
        timeout: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.max_events = max_events
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self._stop = stop

    def next_batch(self, done: int) -> int:
        """How many records the next batch may take after ``done`` (0: the run is full)."""
        if self.max_events is None:
            return self.batch_size
        return max(0, min(self.batch_size, self.max_events - done))

    def should_stop(self) -> bool:
        """The caller asked to stop, or the deadline passed."""
        if self._stop is not None and self._stop():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline
