"""How a long-running service (tracker, projector) lives through its log's outages: it
warns once when the log stops answering, retries with a growing back-off while it is away,
and says when it answers again; the caller rewinds to what the log has committed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mlineage.errors import EventLogError

log = logging.getLogger("mlineage.outage")


class Outage:
    """A long-running service's view of a dependency that stopped answering: warns once
    when it starts (and what happens meanwhile), waits with a growing back-off between
    tries, and says when it answers again."""

    def __init__(self, what: str, *, first_wait: float = 0.5, longest_wait: float = 5.0) -> None:
        self.what = what
        self.first_wait = first_wait
        self.longest_wait = longest_wait
        self.since: float | None = None
        self.tries = 0

    def failed(self, exc: BaseException) -> None:
        """Note a failure: a warning when it starts an outage."""
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "%s is not answering (%s); retrying until it does: nothing is lost "
                "and nothing is applied twice",
                self.what,
                exc,
            )
        else:
            log.debug("%s still not answering: %s", self.what, exc)

    def wait(self, exc: BaseException, stop: Callable[[], bool]) -> None:
        """Note a failure and wait before the next try (returns early when ``stop()``)."""
        self.failed(exc)
        pause = min(self.longest_wait, self.first_wait * 2 ** min(self.tries, 10))
        self.tries += 1
        end = time.monotonic() + pause
        while not stop() and time.monotonic() < end:
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))

    def recover(
        self, exc: BaseException, step: Callable[[], None], stop: Callable[[], bool]
    ) -> bool:
        """After ``exc``: wait, then try ``step`` (the caller's way back to what the log has
        committed) until it succeeds; False when ``stop()`` ended the wait first. Raises
        what ``step`` raises unless it is a transient :class:`EventLogError`."""
        while True:
            self.wait(exc, stop)
            if stop():
                return False
            try:
                step()
            except EventLogError as again:
                if not again.transient:
                    raise
                exc = again
            else:
                return True

    def over(self, done: int | None = None) -> None:
        """The dependency answered: report the end of an outage, if one was under way."""
        if self.since is not None:
            so_far = "" if done is None else f" ({done} events so far)"
            log.warning(
                "%s answers again after %.0f s; resumed%s",
                self.what,
                time.monotonic() - self.since,
                so_far,
            )
            self.since = None
            self.tries = 0
