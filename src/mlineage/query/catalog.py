"""SageMaker's Describe* and List* over the projection: pure functions of a DuckDB connection
(``LineageStore.con``, or any connection to a projection file).

``describe(con, arn_or_name, kind=None)``
    DescribeArtifact / DescribeAction / DescribeContext / DescribeExperiment / DescribeTrial /
    DescribeTrialComponent / DescribeLineageGroup. The kind is read from the ARN's resource
    type; a plain name is looked up among the name-keyed kinds (action, context, experiment,
    trial, trial component, and the lineage group when the name is
    ``sagemaker-default-lineage-group``). Artifacts are described by ARN only, as in
    SageMaker. Trial component names (and the name part of their ARNs) are case-insensitive.

``list_entities(con, kind, **filters)``
    ListArtifacts / ListActions / ListContexts / ListExperiments / ListTrials /
    ListTrialComponents / ListAssociations / ListLineageGroups, with SageMaker's filters,
    sort keys and response key (``ArtifactSummaries``, ...).

Decisions (SageMaker leaves these open, or mlineage differs on purpose):

- Only live entities exist: a deleted entity and one that never existed give the same
  :class:`~mlineage.errors.NotFoundError` message (``"<kind> <arn or name> not found"``).
- A plain name that several kinds use raises :class:`QueryError` asking for ``kind``; a name
  that one kind uses in several accounts or regions (one projection may hold many accounts)
  raises :class:`QueryError` listing the ARNs to use instead.
- Responses use SageMaker's PascalCase field names. A field without a value is omitted: no
  ``None``, no empty map, no empty list. Timestamps are timezone-aware UTC datetimes.
  ``CreatedBy`` / ``LastModifiedBy`` are never returned (the log records no caller identity).
- ``Tags`` (``[{Key, Value}]``, sorted by key) are included in Describe* responses, although
  SageMaker returns them only through ListTags.
- ``Metrics`` of a trial component is SageMaker's list form sorted by name: ``[{MetricName,
  Max, Min, Last, Count, Avg, StdDev}]`` for a metric published with its summary (as
  ``Recorder.job`` does), ``[{MetricName, Last}]`` for one published as a final value. The
  per-step values stay in the projection (``trial_components.metrics``), not in Describe.
- ``LineageGroupArn`` (the owning account's default lineage group) is returned for artifacts,
  actions, contexts and trial components, as SageMaker does.
- ``created_after`` / ``created_before`` are inclusive ("created on or after / on or
  before", as ListArtifacts documents) and must be timezone-aware.
- Sorting: ``sort_by`` defaults to ``CreationTime`` and ``sort_order`` to ``Descending``.
  Ties are broken by ARN (associations: by source ARN, then destination ARN) in the same
  direction, so the order is total and ``Descending`` is exactly ``Ascending`` reversed. A
  missing sort value (an artifact without a name, an association end without a type) sorts
  as the least value. ``Name`` is accepted for artifacts too (SageMaker allows only
  ``CreationTime`` there).
- Filters combine with AND. SageMaker lets ListTrialComponents take only one of
  ``ExperimentName`` / ``TrialName`` / ``SourceArn``; here any combination is accepted. A
  filter that does not apply to the kind raises :class:`QueryError` naming it.
- The trial filters follow live trial-component/trial joins to live entities:
  ``trial_component_name`` on trials matches trials a live trial component (name
  case-insensitive) has joined; ``experiment_name`` / ``trial_name`` on trial components
  match components joined to a live trial of that experiment / with that name.
- Associations listed are the visible ones (the ``lineage_edges`` view: both ends live and
  the association newer than either end's deletion). ``SourceType`` / ``DestinationType``
  is the end's ArtifactType / ActionType / ContextType, ``Experiment`` for an experiment, or a
  trial component's source type (e.g. ``SageMakerTrainingJob``); ``SourceName`` /
  ``DestinationName`` the end's name.
- Paging: ``max_results`` (1..1000; ``None`` returns everything) counts summaries. The
  ``NextToken`` is base64 JSON carrying the offset and a digest of the request (kind,
  filters, sort): a token is refused with :class:`QueryError` by any other request. The page
  size is not part of the digest, so it may change between pages. Pages never repeat or
  skip a summary while the projection does not change between them (a ``LineageStore``
  reads one file or snapshot; reopen it to see newer data and start paging again).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from mlineage import arns
from mlineage.errors import NotFoundError
from mlineage.query.errors import QueryError
from mlineage.query.paging import decode_token, encode_token

# -- kinds ---------------------------------------------------------------------------------------

KINDS: tuple[str, ...] = (
    "artifact",
    "action",
    "context",
    "experiment",
    "trial",
    "trial_component",
    "association",
    "lineage_group",
)
"""The kinds :func:`list_entities` lists (every one but ``association`` can be described)."""

DESCRIBE_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k != "association")
NAME_KINDS: tuple[str, ...] = ("action", "context", "experiment", "trial", "trial_component")

SUMMARY_KEYS: dict[str, str] = {
    "artifact": "ArtifactSummaries",
    "action": "ActionSummaries",
    "context": "ContextSummaries",
    "experiment": "ExperimentSummaries",
    "trial": "TrialSummaries",
    "trial_component": "TrialComponentSummaries",
    "association": "AssociationSummaries",
    "lineage_group": "LineageGroupSummaries",
}

_TIME_KEYS = ("CreationTime", "LastModifiedTime")
SUMMARY_COLUMNS: dict[str, tuple[str, ...]] = {
    "artifact": ("ArtifactArn", "ArtifactName", "Source", "ArtifactType", *_TIME_KEYS),
    "action": ("ActionArn", "ActionName", "Source", "ActionType", "Status", *_TIME_KEYS),
    "context": ("ContextArn", "ContextName", "Source", "ContextType", *_TIME_KEYS),
    "experiment": ("ExperimentArn", "ExperimentName", "DisplayName", *_TIME_KEYS),
    "trial": ("TrialArn", "TrialName", "DisplayName", *_TIME_KEYS),
    "trial_component": (
        "TrialComponentName",
        "TrialComponentArn",
        "DisplayName",
        "TrialComponentSource",
        "Status",
        "StartTime",
        "EndTime",
        *_TIME_KEYS,
    ),
    "association": (
        "SourceArn",
        "DestinationArn",
        "SourceType",
        "DestinationType",
        "AssociationType",
        "SourceName",
        "DestinationName",
        "CreationTime",
    ),
    "lineage_group": ("LineageGroupArn", "LineageGroupName", "CreationTime"),
}
"""Every key a kind's summary can have, in order: the fixed columns of ``list`` as a table
or CSV (a summary leaves out the keys it has no value for)."""

_LABELS = {k: k.replace("_", " ") for k in KINDS}
_RESOURCE_KIND = {resource: kind for kind, resource in arns.ENTITY_RESOURCE.items()}
_RESOURCE_KIND["lineage-group"] = "lineage_group"
_TABLE = {
    "artifact": "artifacts",
    "action": "actions",
    "context": "contexts",
    "experiment": "experiments",
    "trial": "trials",
    "trial_component": "trial_components",
    "lineage_group": "lineage_groups",
}
_NAME_COLUMN = {
    "artifact": "artifact_name",
    "action": "action_name",
    "context": "context_name",
    "experiment": "experiment_name",
    "trial": "trial_name",
    "trial_component": "trial_component_name",
    "lineage_group": "lineage_group_name",
}

_ALIASES: dict[str, str] = {}
for _kind in KINDS:
    _ALIASES[_kind] = _kind
    _ALIASES[_kind + "s"] = _kind
for _resource, _kind in _RESOURCE_KIND.items():
    _ALIASES[_resource.replace("-", "_")] = _kind
    _ALIASES[_resource.replace("-", "_") + "s"] = _kind


def resolve_kind(name: str) -> str:
    """The canonical kind (``"trial_component"``) for a singular or plural name written with
    dashes, underscores, spaces or in CamelCase (``"trial-components"``, ``"TrialComponent"``,
    ``"lineage groups"``, ``"artifact"``)."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    key = re.sub(r"[-\s]+", "_", text).lower()
    kind = _ALIASES.get(key)
    if kind is None:
        plural = ", ".join(k.replace("_", "-") + "s" for k in KINDS)
        raise QueryError(
            f"unknown kind {name!r}: use one of {plural} (singular or plural, - or _ alike)"
        )
    return kind


# -- helpers -------------------------------------------------------------------------------------


def _seen(visible_accounts: Sequence[str] | None) -> str | None:
    """The visible accounts as a SQL list literal (None: the operator, who sees all). Each is
    checked to be 12 digits, so the literal can only be a list of account ids."""
    if visible_accounts is None:
        return None
    bad = [a for a in visible_accounts if not arns.is_account(a)]
    if bad:
        raise QueryError(f"an account id is 12 digits, got {bad[0]!r}")
    return "[" + ", ".join(f"'{a}'" for a in sorted(set(visible_accounts))) + "]::VARCHAR[]"


def _in(seen: str, column: str) -> str:
    """``column`` (an account id) is among ``seen`` (from :func:`_seen`)."""
    return f"list_contains({seen}, {column})"


def _arn_account(column: str) -> str:
    return f"split_part({column}, ':', 5)"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:  # TIMESTAMPTZ always carries a zone; be safe anyway
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _json(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return json.loads(value)
    return value


def _prune(out: dict[str, Any]) -> dict[str, Any]:
    """Drop fields without a value (None, empty maps, empty lists)."""
    return {k: v for k, v in out.items() if v is not None and v not in ({}, [])}


def _map(value: Any) -> dict[str, Any]:
    data = _json(value)
    return dict(data) if isinstance(data, dict) else {}


METADATA_KEYS = {
    "CommitId": "commit_id",
    "Repository": "repository",
    "GeneratedBy": "generated_by",
    "ProjectId": "project_id",
}
"""MetadataProperties' members, and the fields the projection keeps them in."""


def _metadata(value: Any) -> dict[str, Any] | None:
    data = _map(value)
    out = _prune({key: data.get(field) for key, field in METADATA_KEYS.items()})
    return out or None


def _tags(value: Any) -> list[dict[str, Any]]:
    return [{"Key": k, "Value": v} for k, v in sorted(_map(value).items())]


def _artifact_source(row: Mapping[str, Any]) -> dict[str, Any] | None:
    types = [
        _prune({"SourceIdType": t.get("source_id_type"), "Value": t.get("value")})
        for t in (_json(row.get("source_types")) or [])
        if isinstance(t, dict)
    ]
    out = _prune({"SourceUri": row.get("source_uri"), "SourceTypes": types})
    return out or None


def _named_source(row: Mapping[str, Any]) -> dict[str, Any] | None:
    out = _prune(
        {
            "SourceUri": row.get("source_uri"),
            "SourceType": row.get("source_type"),
            "SourceId": row.get("source_id"),
        }
    )
    return out or None


def _tc_source(row: Mapping[str, Any]) -> dict[str, Any] | None:
    out = _prune({"SourceArn": row.get("source_arn"), "SourceType": row.get("source_type")})
    return out or None


def _tc_status(row: Mapping[str, Any]) -> dict[str, Any] | None:
    out = _prune({"PrimaryStatus": row.get("status"), "Message": row.get("status_message")})
    return out or None


def _parameters(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, param in sorted(_map(value).items()):
        if not isinstance(param, dict):
            continue
        if param.get("string_value") is not None:
            out[name] = {"StringValue": param["string_value"]}
        elif param.get("number_value") is not None:
            out[name] = {"NumberValue": param["number_value"]}
    return out


def _artifact_values(value: Any) -> dict[str, Any]:
    return {
        name: _prune({"Value": item.get("value"), "MediaType": item.get("media_type")})
        for name, item in sorted(_map(value).items())
        if isinstance(item, dict)
    }


SUMMARY_FIELDS = {
    "max": "Max",
    "min": "Min",
    "last": "Last",
    "count": "Count",
    "avg": "Avg",
    "std_dev": "StdDev",
}


def _metrics(value: Any) -> list[dict[str, Any]]:
    """SageMaker's TrialComponentMetricSummary list: the whole summary of a metric recorded
    with its values (``Recorder.job``), ``Last`` alone of one given as a final value."""
    out = []
    for name, metric in sorted(_map(value).items()):
        if isinstance(metric, dict):
            summary = {
                key: metric[field] for field, key in SUMMARY_FIELDS.items() if field in metric
            }
            out.append({"MetricName": name, **summary})
        elif metric is not None:
            out.append({"MetricName": name, "Last": metric})
    return out


def _group_arn(row: Mapping[str, Any]) -> str | None:
    account, region = row.get("account_id"), row.get("region")
    if not account or not region:
        return None
    return arns.lineage_group_arn(str(region), str(account))


def _times(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "CreationTime": _ts(row.get("created_at")),
        "LastModifiedTime": _ts(row.get("modified_at")),
    }


# -- response shapes -----------------------------------------------------------------------------


def _describe_artifact(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "ArtifactName": r.get("artifact_name"),
            "ArtifactArn": r["arn"],
            "Source": _artifact_source(r),
            "ArtifactType": r.get("artifact_type"),
            "Properties": _map(r.get("properties")),
            **_times(r),
            "MetadataProperties": _metadata(r.get("metadata")),
            "LineageGroupArn": _group_arn(r),
            "Tags": _tags(r.get("tags")),
        }
    )


def _describe_action(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "ActionName": r.get("action_name"),
            "ActionArn": r["arn"],
            "Source": _named_source(r),
            "ActionType": r.get("action_type"),
            "Description": r.get("description"),
            "Status": r.get("status"),
            "Properties": _map(r.get("properties")),
            **_times(r),
            "MetadataProperties": _metadata(r.get("metadata")),
            "LineageGroupArn": _group_arn(r),
            "Tags": _tags(r.get("tags")),
        }
    )


def _describe_context(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "ContextName": r.get("context_name"),
            "ContextArn": r["arn"],
            "Source": _named_source(r),
            "ContextType": r.get("context_type"),
            "Description": r.get("description"),
            "Properties": _map(r.get("properties")),
            **_times(r),
            "LineageGroupArn": _group_arn(r),
            "Tags": _tags(r.get("tags")),
        }
    )


def _describe_experiment(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "ExperimentName": r.get("experiment_name"),
            "ExperimentArn": r["arn"],
            "DisplayName": r.get("display_name"),
            "Description": r.get("description"),
            **_times(r),
            "Tags": _tags(r.get("tags")),
        }
    )


def _describe_trial(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "TrialName": r.get("trial_name"),
            "TrialArn": r["arn"],
            "DisplayName": r.get("display_name"),
            "ExperimentName": r.get("experiment_name"),
            **_times(r),
            "MetadataProperties": _metadata(r.get("metadata")),
            "Tags": _tags(r.get("tags")),
        }
    )


def _describe_trial_component(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "TrialComponentName": r.get("trial_component_name"),
            "TrialComponentArn": r["arn"],
            "DisplayName": r.get("display_name"),
            "Source": _tc_source(r),
            "Status": _tc_status(r),
            "StartTime": _ts(r.get("start_time")),
            "EndTime": _ts(r.get("end_time")),
            **_times(r),
            "Parameters": _parameters(r.get("parameters")),
            "InputArtifacts": _artifact_values(r.get("input_artifacts")),
            "OutputArtifacts": _artifact_values(r.get("output_artifacts")),
            "MetadataProperties": _metadata(r.get("metadata")),
            "Metrics": _metrics(r.get("metrics")),
            "LineageGroupArn": _group_arn(r),
            "Tags": _tags(r.get("tags")),
        }
    )


def _describe_lineage_group(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "LineageGroupName": r.get("lineage_group_name"),
            "LineageGroupArn": r["arn"],
            "CreationTime": _ts(r.get("created_at")),
        }
    )


_DESCRIBE: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "artifact": _describe_artifact,
    "action": _describe_action,
    "context": _describe_context,
    "experiment": _describe_experiment,
    "trial": _describe_trial,
    "trial_component": _describe_trial_component,
    "lineage_group": _describe_lineage_group,
}


def _summary_artifact(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "ArtifactArn": r["arn"],
            "ArtifactName": r.get("artifact_name"),
            "Source": _artifact_source(r),
            "ArtifactType": r.get("artifact_type"),
            **_times(r),
        }
    )


def _summary_action(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "ActionArn": r["arn"],
            "ActionName": r.get("action_name"),
            "Source": _named_source(r),
            "ActionType": r.get("action_type"),
            "Status": r.get("status"),
            **_times(r),
        }
    )


def _summary_context(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "ContextArn": r["arn"],
            "ContextName": r.get("context_name"),
            "Source": _named_source(r),
            "ContextType": r.get("context_type"),
            **_times(r),
        }
    )


def _summary_experiment(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "ExperimentArn": r["arn"],
            "ExperimentName": r.get("experiment_name"),
            "DisplayName": r.get("display_name"),
            **_times(r),
        }
    )


def _summary_trial(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "TrialArn": r["arn"],
            "TrialName": r.get("trial_name"),
            "DisplayName": r.get("display_name"),
            **_times(r),
        }
    )


def _summary_trial_component(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "TrialComponentName": r.get("trial_component_name"),
            "TrialComponentArn": r["arn"],
            "DisplayName": r.get("display_name"),
            "TrialComponentSource": _tc_source(r),
            "Status": _tc_status(r),
            "StartTime": _ts(r.get("start_time")),
            "EndTime": _ts(r.get("end_time")),
            **_times(r),
        }
    )


def _summary_association(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "SourceArn": r["source_arn"],
            "DestinationArn": r["destination_arn"],
            "SourceType": r.get("source_type"),
            "DestinationType": r.get("destination_type"),
            "AssociationType": r.get("association_type"),
            "SourceName": r.get("source_name"),
            "DestinationName": r.get("destination_name"),
            "CreationTime": _ts(r.get("created_at")),
        }
    )


def _summary_lineage_group(r: Mapping[str, Any]) -> dict[str, Any]:
    return _prune(
        {
            "LineageGroupArn": r["arn"],
            "LineageGroupName": r.get("lineage_group_name"),
            "CreationTime": _ts(r.get("created_at")),
        }
    )


# -- describe ------------------------------------------------------------------------------------


def _live_rows(
    con: duckdb.DuckDBPyConnection, kind: str, column: str, value: str, seen: str | None
) -> list[dict[str, Any]]:
    """Live rows of ``kind`` whose ``column`` (a fixed identifier) equals ``value``, of the
    ``seen`` accounts (None: any); for trial components names and ARNs compare
    case-insensitively (their stored ARNs are lower case)."""
    table = _TABLE[kind]
    live = "" if kind == "lineage_group" else "t.live AND "
    if seen is not None:
        live += _in(seen, "t.account_id") + " AND "
    expr = f"t.{column}"
    if kind == "trial_component":
        value = value.lower()
        if column != "arn":
            expr = f"lower(t.{column})"
    return _rows(con, f"SELECT * FROM {table} t WHERE {live}{expr} = ? ORDER BY t.arn", [value])


def _one(rows: list[dict[str, Any]], kind: str, key: str) -> dict[str, Any]:
    if not rows:
        raise NotFoundError(f"{_LABELS[kind]} {key} not found")
    if len(rows) > 1:
        raise QueryError(
            f"{_LABELS[kind]} name {key!r} is used in {len(rows)} accounts or regions: pass the "
            f"ARN instead, one of {', '.join(str(r['arn']) for r in rows)}"
        )
    return rows[0]


def describe(
    con: duckdb.DuckDBPyConnection,
    arn_or_name: str,
    kind: str | None = None,
    *,
    visible_accounts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """SageMaker's Describe* for the live entity with this ARN or name (see the module
    docstring). Raises :class:`NotFoundError` when there is none, :class:`QueryError` when the
    request is malformed or a name is ambiguous. ``visible_accounts``: as a caller who sees
    only these accounts' entities (the same answer as its account view)."""
    seen = _seen(visible_accounts)
    wanted = resolve_kind(kind) if kind is not None else None
    if wanted == "association":
        raise QueryError(
            "associations cannot be described: list them with "
            "list_entities(con, 'association', source_arn=..., "
            "destination_arn=...)"
        )
    key = arn_or_name.strip()
    if not key:
        raise QueryError("arn_or_name must not be empty")
    if key.startswith("arn:"):
        parsed = arns.parse_arn(key)
        if parsed is None:
            raise QueryError(f"{key!r} is not a SageMaker ARN")
        found = _RESOURCE_KIND.get(parsed.resource)
        if found is None:
            raise QueryError(
                f"cannot describe a {parsed.resource} ARN: describe an artifact, action, "
                "context, experiment, trial, trial component or lineage group"
            )
        if wanted is not None and wanted != found:
            raise QueryError(f"{key} is a {_LABELS[found]} ARN, not a {_LABELS[wanted]}")
        row = _one(_live_rows(con, found, "arn", key, seen), found, key)
        return _DESCRIBE[found](row)

    if wanted == "artifact":
        raise QueryError(
            "artifacts are described by ARN (artifact names are not unique): "
            "list them with list_entities(con, 'artifact', ...) to find it"
        )
    if wanted is not None:
        row = _one(_live_rows(con, wanted, _NAME_COLUMN[wanted], key, seen), wanted, key)
        return _DESCRIBE[wanted](row)

    candidates = list(NAME_KINDS)
    if key == arns.LINEAGE_GROUP_NAME:
        candidates.append("lineage_group")
    hits = {k: rows for k in candidates if (rows := _live_rows(con, k, _NAME_COLUMN[k], key, seen))}
    if not hits:
        raise NotFoundError(
            f"{key} not found: no action, context, experiment, trial or trial "
            "component has that name"
        )
    if len(hits) > 1:
        raise QueryError(
            f"name {key!r} is used by more than one kind ({', '.join(hits)}): "
            "pass kind to say which one"
        )
    found, rows = next(iter(hits.items()))
    return _DESCRIBE[found](_one(rows, found, key))


# -- list ----------------------------------------------------------------------------------------

MAX_RESULTS = 1000
SORT_ORDERS = ("Ascending", "Descending")

_ENDS = (
    "SELECT arn, artifact_type AS type, artifact_name AS name FROM artifacts WHERE live "
    "UNION ALL SELECT arn, action_type, action_name FROM actions WHERE live "
    "UNION ALL SELECT arn, context_type, context_name FROM contexts WHERE live "
    "UNION ALL SELECT arn, 'Experiment', experiment_name FROM experiments WHERE live "
    "UNION ALL SELECT arn, source_type, trial_component_name FROM trial_components WHERE live"
)
_ASSOCIATIONS = (
    f"WITH ends AS ({_ENDS}) "
    "SELECT e.source_arn, e.destination_arn, e.association_type, a.created_at, "
    "s.type AS source_type, s.name AS source_name, "
    "d.type AS destination_type, d.name AS destination_name "
    "FROM lineage_edges e "
    "JOIN associations a ON a.source_arn = e.source_arn AND a.destination_arn = e.destination_arn "
    "AND a.live AND a.association_type IS NOT DISTINCT FROM e.association_type "
    "LEFT JOIN ends s ON s.arn = e.source_arn LEFT JOIN ends d ON d.arn = e.destination_arn"
)
# __SEEN__(x): "AND x's account is visible" for a caller, nothing for the operator
_TC_TRIALS = (
    "EXISTS (SELECT 1 FROM trial_component_trials j JOIN trials r ON r.arn = j.trial_arn "
    "AND r.live WHERE j.live AND j.trial_component_arn = t.arn AND {} __SEEN__(r))"
)
_TRIAL_TCS = (
    "EXISTS (SELECT 1 FROM trial_component_trials j JOIN trial_components c "
    "ON c.arn = j.trial_component_arn AND c.live WHERE j.live AND j.trial_arn = t.arn "
    "AND lower(c.trial_component_name) = ? __SEEN__(c))"
)
_SEEN_MARK = re.compile(r"__SEEN__\((\w+)\)")


def _scoped(condition: str, seen: str | None) -> str:
    return _SEEN_MARK.sub(
        lambda m: "" if seen is None else f"AND {_in(seen, m[1] + '.account_id')}", condition
    )


@dataclass(frozen=True)
class _ListSpec:
    source: str  # FROM clause (fixed SQL), aliased t
    where: str  # fixed condition, "" for none
    columns: str  # selected columns
    filters: dict[str, str]  # parameter name -> condition with one ?
    sorts: dict[str, str]  # SortBy -> column of t
    tiebreak: tuple[str, ...]
    summary: Callable[[Mapping[str, Any]], dict[str, Any]]
    owners: tuple[str, ...] = ("t.account_id",)  # account columns a caller must see, all


_CREATED = {"created_after": "t.created_at >= ?", "created_before": "t.created_at <= ?"}
_TIMES = "t.created_at, t.modified_at"


def _entity_spec(
    kind: str,
    columns: str,
    filters: dict[str, str],
    summary: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> _ListSpec:
    return _ListSpec(
        source=f"{_TABLE[kind]} t",
        where="t.live",
        columns=f"t.arn, {columns}, {_TIMES}",
        filters={**filters, **_CREATED},
        sorts={"Name": f"t.{_NAME_COLUMN[kind]}", "CreationTime": "t.created_at"},
        tiebreak=("t.arn",),
        summary=summary,
    )


_SPECS: dict[str, _ListSpec] = {
    "artifact": _entity_spec(
        "artifact",
        "t.artifact_name, t.source_uri, t.source_types, t.artifact_type",
        {"source_uri": "t.source_uri = ?", "artifact_type": "t.artifact_type = ?"},
        _summary_artifact,
    ),
    "action": _entity_spec(
        "action",
        "t.action_name, t.source_uri, t.source_type, t.source_id, t.action_type, t.status",
        {"source_uri": "t.source_uri = ?", "action_type": "t.action_type = ?"},
        _summary_action,
    ),
    "context": _entity_spec(
        "context",
        "t.context_name, t.source_uri, t.source_type, t.source_id, t.context_type",
        {"source_uri": "t.source_uri = ?", "context_type": "t.context_type = ?"},
        _summary_context,
    ),
    "experiment": _entity_spec(
        "experiment", "t.experiment_name, t.display_name", {}, _summary_experiment
    ),
    "trial": _entity_spec(
        "trial",
        "t.trial_name, t.display_name",
        {"experiment_name": "t.experiment_name = ?", "trial_component_name": _TRIAL_TCS},
        _summary_trial,
    ),
    "trial_component": _entity_spec(
        "trial_component",
        "t.trial_component_name, t.display_name, t.source_arn, "
        "t.source_type, t.status, t.status_message, t.start_time, t.end_time",
        {
            "experiment_name": _TC_TRIALS.format("r.experiment_name = ?"),
            "trial_name": _TC_TRIALS.format("r.trial_name = ?"),
            "source_arn": "t.source_arn = ?",
        },
        _summary_trial_component,
    ),
    "association": _ListSpec(
        source=f"({_ASSOCIATIONS}) t",
        where="",
        columns="t.*",
        filters={
            "source_arn": "t.source_arn = ?",
            "destination_arn": "t.destination_arn = ?",
            "source_type": "t.source_type = ?",
            "destination_type": "t.destination_type = ?",
            "association_type": "t.association_type = ?",
            **_CREATED,
        },
        sorts={
            "SourceArn": "t.source_arn",
            "DestinationArn": "t.destination_arn",
            "SourceType": "t.source_type",
            "DestinationType": "t.destination_type",
            "CreationTime": "t.created_at",
        },
        tiebreak=("t.source_arn", "t.destination_arn"),
        summary=_summary_association,
        owners=(_arn_account("t.source_arn"), _arn_account("t.destination_arn")),
    ),
    "lineage_group": _ListSpec(
        source="lineage_groups t",
        where="",
        columns="t.arn, t.lineage_group_name, t.created_at",
        filters=dict(_CREATED),
        sorts={"Name": "t.lineage_group_name", "CreationTime": "t.created_at"},
        tiebreak=("t.arn",),
        summary=_summary_lineage_group,
    ),
}

FILTERS: dict[str, tuple[str, ...]] = {k: tuple(s.filters) for k, s in _SPECS.items()}
"""The filters :func:`list_entities` accepts for each kind."""
SORT_KEYS: dict[str, tuple[str, ...]] = {k: tuple(s.sorts) for k, s in _SPECS.items()}
"""The ``sort_by`` values :func:`list_entities` accepts for each kind."""


def _param(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def list_entities(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    *,
    source_uri: str | None = None,
    artifact_type: str | None = None,
    action_type: str | None = None,
    context_type: str | None = None,
    experiment_name: str | None = None,
    trial_name: str | None = None,
    trial_component_name: str | None = None,
    source_arn: str | None = None,
    destination_arn: str | None = None,
    source_type: str | None = None,
    destination_type: str | None = None,
    association_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    sort_by: str | None = None,
    sort_order: str = "Descending",
    max_results: int | None = None,
    next_token: str | None = None,
    visible_accounts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """SageMaker's List* for ``kind``: ``{"<Kind>Summaries": [...], "NextToken": ...}``
    (``NextToken`` only when there are more). Filters that do not apply to ``kind`` (see
    :data:`FILTERS`) raise :class:`QueryError`, as do a bad ``sort_by`` (see
    :data:`SORT_KEYS`), ``sort_order``, ``max_results`` (1..1000) or ``next_token``.
    ``visible_accounts``: as a caller who sees only these accounts' entities, and the
    associations and trial memberships between two of them (the same answer as its account
    view), filtered in the query."""
    seen = _seen(visible_accounts)
    canonical = resolve_kind(kind)
    spec = _SPECS[canonical]
    given: dict[str, Any] = {
        name: value
        for name, value in {
            "source_uri": source_uri,
            "artifact_type": artifact_type,
            "action_type": action_type,
            "context_type": context_type,
            "experiment_name": experiment_name,
            "trial_name": trial_name,
            "trial_component_name": trial_component_name,
            "source_arn": source_arn,
            "destination_arn": destination_arn,
            "source_type": source_type,
            "destination_type": destination_type,
            "association_type": association_type,
            "created_after": created_after,
            "created_before": created_before,
        }.items()
        if value is not None
    }
    for name, value in given.items():
        if name not in spec.filters:
            raise QueryError(
                f"{name} does not filter {_LABELS[canonical]}s: use {', '.join(spec.filters)}"
            )
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise QueryError(f"{name} must be a timezone-aware datetime")
        elif not isinstance(value, str):
            raise QueryError(f"{name} must be a string, got {type(value).__name__}")
    sort = "CreationTime" if sort_by is None else sort_by
    if sort not in spec.sorts:
        raise QueryError(
            f"sort_by must be one of {', '.join(spec.sorts)} for "
            f"{_LABELS[canonical]}s, got {sort_by!r}"
        )
    if sort_order not in SORT_ORDERS:
        raise QueryError(f"sort_order must be Ascending or Descending, got {sort_order!r}")
    if max_results is not None and (
        isinstance(max_results, bool)
        or not isinstance(max_results, int)
        or not 1 <= max_results <= MAX_RESULTS
    ):
        raise QueryError(
            f"max_results must be an integer from 1 to {MAX_RESULTS}, got {max_results!r}"
        )

    digest = hashlib.sha256(
        json.dumps(
            [canonical, sorted((k, _param(v)) for k, v in given.items()), sort, sort_order],
        ).encode()
    ).hexdigest()[:24]
    offset = decode_token(next_token, digest) if next_token else 0

    conditions = [spec.where] if spec.where else []
    if seen is not None:
        conditions += [_in(seen, column) for column in spec.owners]
    params: list[Any] = []
    for name, value in given.items():
        conditions.append(_scoped(spec.filters[name], seen))
        # trial component names are case-insensitive
        params.append(value.lower() if name == "trial_component_name" else value)
    direction = "ASC NULLS FIRST" if sort_order == "Ascending" else "DESC NULLS LAST"
    order = ", ".join(f"{col} {direction}" for col in (spec.sorts[sort], *spec.tiebreak))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT {spec.columns} FROM {spec.source}{where} ORDER BY {order}"
    if max_results is not None:
        sql += " LIMIT ?"
        params.append(max_results + 1)
    sql += " OFFSET ?"
    params.append(offset)
    rows = _rows(con, sql, params)

    out: dict[str, Any] = {}
    more = max_results is not None and len(rows) > max_results
    page = rows[:max_results] if max_results is not None else rows
    out[SUMMARY_KEYS[canonical]] = [spec.summary(r) for r in page]
    if more:
        out["NextToken"] = encode_token(offset + len(page), digest)
    return out


# -- jobs (mlineage's own: SageMaker lists each job type with its own API) ------------------

JOB_COLUMNS = (
    "JobName",
    "JobType",
    "JobArn",
    "Status",
    "FailureReason",
    "CreationTime",
    "LastModifiedTime",
    "EndTime",
)


def list_jobs(
    con: duckdb.DuckDBPyConnection,
    *,
    job_type: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    sort_order: str = "Descending",
    max_results: int | None = None,
    next_token: str | None = None,
) -> dict[str, Any]:
    """The published jobs, newest first: ``{"JobSummaries": [...], "NextToken": ...}`` with
    :data:`JOB_COLUMNS` (a key without a value left out), paged like the List* calls."""
    if sort_order not in SORT_ORDERS:
        raise QueryError(f"sort_order must be one of {', '.join(SORT_ORDERS)}")
    if max_results is not None and not 1 <= max_results <= MAX_RESULTS:
        raise QueryError(f"max_results must be between 1 and {MAX_RESULTS}")
    given = {"job_type": job_type, "status": status, "created_after": created_after}
    given["created_before"] = created_before
    given = {k: v for k, v in given.items() if v is not None}
    digest = hashlib.sha256(
        json.dumps(["jobs", sorted((k, _param(v)) for k, v in given.items()), sort_order]).encode()
    ).hexdigest()[:24]
    offset = decode_token(next_token, digest) if next_token else 0
    conditions = ["live"]
    params: list[Any] = []
    for name, value in given.items():
        conditions.append(
            {"created_after": "created_at >= ?", "created_before": "created_at <= ?"}.get(
                name, f"{name} = ?"
            )
        )
        params.append(value)
    direction = "ASC" if sort_order == "Ascending" else "DESC"
    sql = (
        "SELECT job_name, job_type, job_arn, status, failure_reason, created_at, modified_at, "
        f"end_time FROM jobs WHERE {' AND '.join(conditions)} "
        f"ORDER BY created_at {direction}, job_arn {direction}"
    )
    if max_results is not None:
        sql += " LIMIT ?"
        params.append(max_results + 1)
    sql += " OFFSET ?"
    params.append(offset)
    rows = con.execute(sql, params).fetchall()
    more = max_results is not None and len(rows) > max_results
    page = rows[:max_results] if max_results is not None else rows
    out: dict[str, Any] = {
        "JobSummaries": [
            _prune(
                dict(
                    zip(
                        JOB_COLUMNS,
                        (name, typ, arn, st, reason, _ts(c), _ts(m), _ts(e)),
                        strict=True,
                    )
                )
            )
            for name, typ, arn, st, reason, c, m, e in page
        ]
    }
    if more:
        out["NextToken"] = encode_token(offset + len(page), digest)
    return out


# -- for the other query modules (search) ------------------------------------------------------

accounts_literal = _seen
fetch_rows = _rows
timestamp = _ts
tag_list = _tags


def table(kind: str) -> str:
    """The table of ``kind``'s entities."""
    return _TABLE[kind]


def name_column(kind: str) -> str:
    """The column holding ``kind``'s entity names."""
    return _NAME_COLUMN[kind]


def record(kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` of ``kind``'s table as its Describe* response."""
    return _DESCRIBE[kind](row)


__all__ = [
    "DESCRIBE_KINDS",
    "FILTERS",
    "JOB_COLUMNS",
    "KINDS",
    "NAME_KINDS",
    "SORT_KEYS",
    "SUMMARY_COLUMNS",
    "SUMMARY_KEYS",
    "describe",
    "list_entities",
    "list_jobs",
    "resolve_kind",
]
