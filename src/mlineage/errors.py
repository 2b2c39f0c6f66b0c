"""One error root for mlineage; errors from the libraries below are translated at the boundaries."""

from __future__ import annotations


class MlineageError(Exception):
    """Root of every error mlineage raises on purpose."""


class ConfigurationError(MlineageError):
    """A setting is missing or malformed."""


class EventValidationError(MlineageError):
    """An event (or a request that becomes one) breaks a rule of the schema.

    ``problems`` lists ``(event_type, field, rule)`` triples, one per broken rule;
    ``count_limit``: one of them is a count limit of the schema (too many properties, tags,
    parameters...), which the server answers as ``ResourceLimitExceeded``.
    """

    def __init__(
        self,
        message: str,
        problems: list[tuple[str, str, str]] | None = None,
        *,
        count_limit: bool = False,
    ) -> None:
        super().__init__(message)
        self.problems = problems or []
        self.count_limit = count_limit


class EventLogError(MlineageError):
    """The event log could not be read or written (after retries). ``transient``: a
    long-running service waits for the log to answer again and goes on."""

    transient: bool = True


class InDoubtError(EventLogError):
    """A write was sent but the log did not confirm it in time: it may or may not be there.
    (A retry is safe where writes are keyed by event id: the projection applies an id once.)"""


class ProjectionError(MlineageError):
    """The DuckDB projection could not be opened or written."""


class ProjectionBusyError(ProjectionError):
    """Another process holds the projection for writing (a follower, or a replay)."""


class NotFoundError(MlineageError):
    """The entity asked for does not exist (or the caller may not see it)."""
