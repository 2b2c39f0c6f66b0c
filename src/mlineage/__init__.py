"""mlineage: self-hosted, event-sourced ML lineage tracking with SageMaker semantics.

Publish with :class:`Recorder`; the auto-tracker derives the lineage graph and the projector
materializes it into DuckDB, which you query with SQL (and, soon, QueryLineage).
"""

from __future__ import annotations

__version__ = "0.1.0"

from mlineage.errors import (
    ConfigurationError,
    EventLogError,
    EventValidationError,
    MlineageError,
    NotFoundError,
    ProjectionBusyError,
    ProjectionError,
)
from mlineage.recorder import JobRun, Recorder
from mlineage.settings import Settings

__all__ = [
    "ConfigurationError",
    "EventLogError",
    "EventValidationError",
    "JobRun",
    "MlineageError",
    "NotFoundError",
    "ProjectionBusyError",
    "ProjectionError",
    "Recorder",
    "Settings",
    "__version__",
]
