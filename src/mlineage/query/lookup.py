"""Finding an entity by what a user knows, and enum-like values written loosely.

SageMaker's APIs take exact ARNs, names and type strings; the CLI and the Python API also
take what users have at hand: an S3 URI (or image URI) for an artifact, a job's name or ARN
for the trial component the tracker derived from it, and ``dataset`` for ``DataSet``. The
server keeps SageMaker's exact semantics: nothing here is used there.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from mlineage import arns
from mlineage.errors import NotFoundError
from mlineage.query.errors import QueryError

_NAMED = {
    "action": ("actions", "action_name"),
    "context": ("contexts", "context_name"),
    "experiment": ("experiments", "experiment_name"),
    "trial": ("trials", "trial_name"),
    "trial_component": ("trial_components", "trial_component_name"),
}
_JOB_RESOURCES = frozenset(arns.JOB_RESOURCE.values())


@dataclass(frozen=True)
class Found:
    """An entity found by a key: its kind, its ARN, and how the key led to it."""

    kind: str
    arn: str
    how: str


def resolve(con: duckdb.DuckDBPyConnection, key: str) -> Found:
    """The live entity ``key`` names: an entity ARN (as is), a job ARN or a job name (its
    trial component), an artifact's SourceUri, or the name of an action, context,
    experiment, trial, trial component or lineage group. :class:`NotFoundError` when nothing
    matches, :class:`QueryError` when several entities do (naming them)."""
    key = key.strip()
    if not key:
        raise QueryError("give an ARN, a name, a job name or an artifact's URI")
    parsed = arns.parse_arn(key) if key.startswith("arn:") else None
    if key.startswith("arn:") and parsed is None:
        raise QueryError(f"{key!r} is not a SageMaker ARN")
    if parsed is not None and parsed.resource in _JOB_RESOURCES:
        hits = _job_components(con, "job_arn", key)
        if not hits:
            raise NotFoundError(f"no trial component was derived from the job {key}")
        return _one(key, hits)
    if parsed is not None and _kind_of(parsed.resource) is not None:
        return Found(str(_kind_of(parsed.resource)), key, "arn")
    if parsed is not None:  # an endpoint's, a model package's ARN: what has it as source
        hits = _by_source(con, key)
        if not hits:
            raise NotFoundError(
                f"{key} is a {parsed.resource} ARN and no artifact, context or action has it "
                "as its SourceUri"
            )
        return _one(key, hits)
    hits = []
    for kind, (table, column) in _NAMED.items():
        # trial component names are case-insensitive (SageMaker's rule)
        match = f"lower({column}) = lower(?)" if kind == "trial_component" else f"{column} = ?"
        rows = con.execute(f"SELECT arn FROM {table} WHERE live AND {match}", [key])
        hits += [Found(kind, arn, f"{kind.replace('_', ' ')} name") for (arn,) in rows.fetchall()]
    rows = con.execute("SELECT arn FROM lineage_groups WHERE lineage_group_name = ?", [key])
    hits += [Found("lineage_group", arn, "lineage group name") for (arn,) in rows.fetchall()]
    hits += _by_source(con, key)
    hits += _job_components(con, "job_name", key)
    unique = list({f.arn: f for f in hits}.values())
    if not unique:
        raise NotFoundError(
            f"{key} not found: it is not an ARN, and no entity, job or artifact URI has that "
            "name (names are exact; `mlineage list KIND` shows what there is)"
        )
    return _one(key, unique)


# an endpoint ARN is the source of its context and of the deployment action: the first
# kind that has the source wins
_SOURCES = (("artifact", "artifacts"), ("context", "contexts"), ("action", "actions"))


def _by_source(con: duckdb.DuckDBPyConnection, uri: str) -> list[Found]:
    for kind, table in _SOURCES:
        rows = con.execute(f"SELECT arn FROM {table} WHERE live AND source_uri = ?", [uri])
        found = [Found(kind, arn, f"{kind} SourceUri") for (arn,) in rows.fetchall()]
        if found:
            return found
    return []


def _job_components(con: duckdb.DuckDBPyConnection, column: str, key: str) -> list[Found]:
    rows = con.execute(
        "SELECT t.arn, j.job_type FROM jobs j JOIN trial_components t "
        f"ON t.source_arn = j.job_arn AND t.live WHERE j.live AND j.{column} = ?",
        [key],
    ).fetchall()
    return [Found("trial_component", arn, f"the trial component of the {typ}") for arn, typ in rows]


def _one(key: str, hits: list[Found]) -> Found:
    if len(hits) == 1:
        return hits[0]
    listed = "; ".join(f"{f.arn} ({f.how})" for f in hits)
    raise QueryError(f"{key!r} names more than one entity: {listed}. Give the ARN instead")


def _kind_of(resource: str) -> str | None:
    for kind, res in arns.ENTITY_RESOURCE.items():
        if res == resource:
            return kind
    return "lineage_group" if resource == "lineage-group" else None


# -- enum-like values ----------------------------------------------------------------------

# SageMaker's own values, accepted before anything carries them
KNOWN: dict[str, tuple[str, ...]] = {
    "artifact_type": ("DataSet", "Model", "Image", "ModelPackage", "Code"),
    "action_type": ("ModelDeployment", "Approval"),
    "context_type": ("Endpoint", "ModelGroup", "Experiment"),
    "association_type": ("ContributedTo", "AssociatedWith", "DerivedFrom", "Produced", "SameAs"),
    "type": (
        "DataSet",
        "Model",
        "Image",
        "ModelPackage",
        "Code",
        "ModelDeployment",
        "Approval",
        "Endpoint",
        "ModelGroup",
        "Experiment",
        "TrainingJob",
        "ProcessingJob",
        "TransformJob",
    ),
    "end_type": (
        "DataSet",
        "Model",
        "Image",
        "ModelPackage",
        "ModelDeployment",
        "Approval",
        "Endpoint",
        "Experiment",
        "SageMakerTrainingJob",
        "SageMakerProcessingJob",
        "SageMakerTransformJob",
    ),
}
_IN_PROJECTION = {
    "artifact_type": "SELECT DISTINCT artifact_type FROM artifacts WHERE live",
    "action_type": "SELECT DISTINCT action_type FROM actions WHERE live",
    "context_type": "SELECT DISTINCT context_type FROM contexts WHERE live",
    "association_type": "SELECT DISTINCT association_type FROM associations WHERE live",
    "type": "SELECT DISTINCT type FROM lineage_vertices",
    "end_type": (
        "SELECT DISTINCT artifact_type FROM artifacts WHERE live UNION "
        "SELECT DISTINCT action_type FROM actions WHERE live UNION "
        "SELECT DISTINCT context_type FROM contexts WHERE live UNION "
        "SELECT DISTINCT source_type FROM trial_components WHERE live"
    ),
}


def known_values(con: duckdb.DuckDBPyConnection, field: str) -> list[str]:
    """The values of ``field`` that mean something: SageMaker's and those in the projection."""
    found = [v for (v,) in con.execute(_IN_PROJECTION[field]).fetchall() if v]
    return sorted({*KNOWN[field], *found})


def match_choice(value: str, choices: Iterable[str], option: str) -> str:
    """``value`` as one of a fixed set of ``choices``, case-insensitively, else a
    :class:`QueryError` with the closest ones."""
    options = list(choices)
    folded = {c.lower(): c for c in options}
    if value.lower() in folded:
        return folded[value.lower()]
    raise QueryError(f"{option} {value!r} matches nothing{_did_you_mean(value, options)}")


def match_value(con: duckdb.DuckDBPyConnection, field: str, value: str, option: str) -> str:
    """``value`` as it is written in the projection: exact, else case-insensitively (a job
    type also with or without SageMaker's ``SageMaker`` prefix). A value that matches
    nothing raises :class:`QueryError` with the closest known values."""
    known = known_values(con, field)
    if value in known:
        return value
    folded = {v.lower(): v for v in known}
    for candidate in (value, f"SageMaker{value}", value.removeprefix("SageMaker")):
        if candidate.lower() in folded:
            return folded[candidate.lower()]
    raise QueryError(f"{option} {value!r} matches nothing{_did_you_mean(value, known)}")


def _did_you_mean(value: str, known: Iterable[str]) -> str:
    options = list(known)
    close = difflib.get_close_matches(value.lower(), [v.lower() for v in options], n=3, cutoff=0.5)
    by_lower = {v.lower(): v for v in options}
    if close:
        return ": did you mean " + " or ".join(by_lower[c] for c in close) + "?"
    return f" (known: {', '.join(options)})"
