"""mlineage: self-hosted, event-sourced ML lineage tracking with SageMaker semantics.

Publish with :class:`Recorder`; the auto-tracker derives the lineage graph and the projector
materializes it into DuckDB. Read it with :class:`LineageStore`: QueryLineage
(:meth:`LineageStore.query_lineage`, filtered with :class:`LineageFilter`), describe, list,
SQL, and the SageMaker SDK's traversals (:class:`DatasetArtifact`, :class:`EndpointContext`,
...). Every error raised on purpose is a :class:`MlineageError`.

The query side (DuckDB, Arrow) is imported on first use, so a training script that only
records pays for the recorder alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from mlineage.errors import (
    ConfigurationError,
    EventLogError,
    EventValidationError,
    InDoubtError,
    MlineageError,
    NotFoundError,
    ProjectionBusyError,
    ProjectionError,
)
from mlineage.recorder import JobRun, Recorder, Terminated
from mlineage.settings import Settings

if TYPE_CHECKING:
    from mlineage.query.errors import QueryError
    from mlineage.query.lineage import Edge, LineageFilter, LineageResult, Vertex
    from mlineage.query.sql import SqlError
    from mlineage.query.store import LineageStore
    from mlineage.query.traversals import (
        Action,
        Artifact,
        DatasetArtifact,
        EndpointContext,
        ImageArtifact,
        LineageTrialComponent,
        ModelArtifact,
    )

_LAZY = {
    "LineageStore": "mlineage.query.store",
    "LineageFilter": "mlineage.query.lineage",
    "LineageResult": "mlineage.query.lineage",
    "Vertex": "mlineage.query.lineage",
    "Edge": "mlineage.query.lineage",
    "QueryError": "mlineage.query.errors",
    "SqlError": "mlineage.query.sql",
    "Action": "mlineage.query.traversals",
    "Artifact": "mlineage.query.traversals",
    "DatasetArtifact": "mlineage.query.traversals",
    "EndpointContext": "mlineage.query.traversals",
    "ImageArtifact": "mlineage.query.traversals",
    "LineageTrialComponent": "mlineage.query.traversals",
    "ModelArtifact": "mlineage.query.traversals",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlineage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Action",
    "Artifact",
    "ConfigurationError",
    "DatasetArtifact",
    "Edge",
    "EndpointContext",
    "EventLogError",
    "EventValidationError",
    "ImageArtifact",
    "InDoubtError",
    "JobRun",
    "LineageFilter",
    "LineageResult",
    "LineageStore",
    "LineageTrialComponent",
    "MlineageError",
    "ModelArtifact",
    "NotFoundError",
    "ProjectionBusyError",
    "ProjectionError",
    "QueryError",
    "Recorder",
    "Settings",
    "SqlError",
    "Terminated",
    "Vertex",
    "__version__",
]
