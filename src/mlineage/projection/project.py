"""The pure half of the projector: decoded records -> column batches for the store.

Every upsert becomes *facts*: one row per field it sets (maps such as ``properties``,
``parameters``, ``metrics`` and ``tags`` give one row per key, ``*_to_remove`` gives removal
rows), each stamped with the event's merge version ``"{occurred_at UTC}|{event_id}"``.
Every upsert or delete becomes a *mark* on its entity (what exists, and when it was last
upserted and deleted). The store merges facts and marks set-based with "greatest version
wins", which is what makes the projection independent of record order and of duplicates.

Source events are projected too: ``JobCreated`` / ``JobStatusChanged`` become facts and
marks of the ``job`` kind (the ``jobs`` table), ``OpenLineageEventReceived`` one row of the
``openlineage_event`` kind each (the ``openlineage_events`` table, keyed by event id); every
event goes into ``events``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from mlineage import arns
from mlineage.events.codec import Rejected, dumps
from mlineage.events.models import (
    AnyEvent,
    EntityDeleted,
    EntityUpserted,
    JobCreated,
    JobStatusChanged,
    OpenLineageEventReceived,
    canonical_time,
)
from mlineage.log.base import Record

MAP_FIELDS = frozenset(
    {"properties", "parameters", "metrics", "input_artifacts", "output_artifacts", "tags"}
)
REMOVE_FIELDS = {
    "properties_to_remove": "properties",
    "parameters_to_remove": "parameters",
    "tags_to_remove": "tags",
}
SKIP_FIELDS = frozenset({"kind", "artifact_arn"})
_TERMINAL = frozenset({"Completed", "Failed", "Stopped"})

# Columns of each batch, in order (the store turns them into Arrow tables).
EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "account_id",
    "region",
    "producer",
    "caused_by",
    "entity_kind",
    "entity_key",
    "version",
    "topic",
    "partition",
    "offset",
)
MARK_COLUMNS = ("event_id", "entity_key", "kind", "account_id", "region", "op", "version")
FACT_COLUMNS = ("event_id", "entity_key", "field", "item", "value", "removed", "version")
DEAD_COLUMNS = ("topic", "partition", "offset", "key", "value", "error")


_dumps = dumps


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, datetime):
        return canonical_time(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class Changes:
    """Column batches: ``events``, ``marks``, ``facts``, ``dead`` (dicts of column -> list)."""

    events: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in EVENT_COLUMNS})
    marks: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in MARK_COLUMNS})
    facts: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in FACT_COLUMNS})
    dead: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in DEAD_COLUMNS})

    def fact(
        self,
        event_id: str,
        key: str,
        name: str,
        item: str,
        value: str | None,
        removed: bool,
        version: str,
    ) -> None:
        f = self.facts
        f["event_id"].append(event_id)
        f["entity_key"].append(key)
        f["field"].append(name)
        f["item"].append(item)
        f["value"].append(value)
        f["removed"].append(removed)
        f["version"].append(version)

    def mark(
        self, event_id: str, key: str, kind: str, event: AnyEvent, op: str, version: str
    ) -> None:
        m = self.marks
        m["event_id"].append(event_id)
        m["entity_key"].append(key)
        m["kind"].append(kind)
        m["account_id"].append(event.account_id)
        m["region"].append(event.region)
        m["op"].append(op)
        m["version"].append(version)

    def dead_letter(self, record: Record, error: str) -> None:
        d = self.dead
        d["topic"].append(record.topic)
        d["partition"].append(record.partition)
        d["offset"].append(record.offset)
        d["key"].append(record.key)
        d["value"].append(record.value)
        d["error"].append(error)


def _entity_facts(
    changes: Changes, event_id: str, key: str, entity: BaseModel, version: str
) -> None:
    for name in entity.model_fields_set:
        if name in SKIP_FIELDS:
            continue
        value = getattr(entity, name)
        if value is None:
            continue  # an explicit null sets nothing
        if name in REMOVE_FIELDS:
            for item in value:
                changes.fact(event_id, key, REMOVE_FIELDS[name], item, None, True, version)
        elif name == "tags":
            for tag in value:
                changes.fact(event_id, key, "tags", tag.key, _dumps(tag.value), False, version)
        elif name in MAP_FIELDS:
            for item, item_value in value.items():
                changes.fact(
                    event_id, key, name, item, _dumps(_jsonable(item_value)), False, version
                )
        else:
            changes.fact(event_id, key, name, "", _dumps(_jsonable(value)), False, version)


def _job_facts(
    changes: Changes, event_id: str, event: JobCreated | JobStatusChanged, version: str
) -> str:
    p = event.payload
    name, key = arns.job_identity(event.region, event.account_id, p.job_type, p.job_name, p.job_arn)
    scalars: dict[str, Any] = {"job_type": p.job_type, "job_name": name}
    maps: dict[str, dict[str, Any]] = {}
    if isinstance(event, JobCreated):
        c = event.payload
        scalars["status"] = "InProgress"
        for fname in (
            "image_uri",
            "model_data_uri",
            "checkpoint_uri",
            "instance_type",
            "instance_count",
            "experiment_config",
            "metadata",
        ):
            if getattr(c, fname) is not None:
                scalars[fname] = _jsonable(getattr(c, fname))
        scalars["inputs"] = _jsonable(c.inputs)
        scalars["outputs"] = _jsonable(c.outputs)
        maps["parameters"] = dict(c.parameters)
        maps["tags"] = {t.key: t.value for t in c.tags or []}
    else:
        s = event.payload
        scalars["status"] = s.status
        if s.outputs:
            scalars["final_outputs"] = _jsonable(s.outputs)
        if s.failure_reason is not None:
            scalars["failure_reason"] = s.failure_reason
        end = s.end_time or (event.occurred_at if s.status in _TERMINAL else None)
        if end is not None:
            scalars["end_time"] = canonical_time(end)
        maps["metrics"] = {name: _jsonable(value) for name, value in s.metrics.items()}
    for fname, value in scalars.items():
        changes.fact(event_id, key, fname, "", _dumps(value), False, version)
    for fname, entries in maps.items():
        for item, value in entries.items():
            changes.fact(event_id, key, fname, item, _dumps(value), False, version)
    return key


def _openlineage_fields(event: OpenLineageEventReceived) -> list[tuple[str, Any]]:
    """The fields of an ``openlineage_event_rows`` row (its main fields one by one)."""
    ol = event.payload.event
    job = getattr(ol, "job", None)
    run = getattr(ol, "run", None)
    dataset = getattr(ol, "dataset", None)
    fields: list[tuple[str, Any]] = [
        ("event_kind", type(ol).__name__),
        ("event_type", getattr(ol, "eventType", None)),
        ("event_time", canonical_time(ol.event_time)),
        ("run_id", run.runId if run is not None else None),
        ("job_namespace", job.namespace if job is not None else None),
        ("job_name", job.name if job is not None else None),
        ("dataset_namespace", dataset.namespace if dataset is not None else None),
        ("dataset_name", dataset.name if dataset is not None else None),
        ("producer", ol.producer),
        ("schema_url", ol.schemaURL),
        ("event", ol.model_dump(mode="json", exclude_unset=True)),
    ]
    return [(name, value) for name, value in fields if value is not None]


def project(
    decoded: Iterable[tuple[Record, AnyEvent | Rejected]],
    allowed: dict[str, frozenset[str]] | None = None,
) -> Changes:
    """Turn decoded records into column batches. ``allowed`` maps a topic to the event types
    that belong on it; any other event there is dead-lettered."""
    changes = Changes()
    events = changes.events
    for record, event in decoded:
        if isinstance(event, Rejected):
            changes.dead_letter(record, event.error)
            continue
        if allowed is not None and event.event_type not in allowed.get(record.topic, frozenset()):
            changes.dead_letter(
                record, f"{event.event_type}: does not belong on topic {record.topic}"
            )
            continue
        event_id = str(event.event_id)
        occurred = canonical_time(event.occurred_at)
        version = f"{occurred}|{event_id}"
        kind: str | None = None
        key: str | None = None
        if isinstance(event, EntityUpserted):
            entity = event.payload.entity
            kind = entity.kind
            key = arns.entity_key(entity, event.account_id, event.region)
            _entity_facts(changes, event_id, key, entity, version)
            changes.mark(event_id, key, kind, event, "upsert", version)
        elif isinstance(event, EntityDeleted):
            kind = event.payload.kind
            key = arns.entity_key(event.payload, event.account_id, event.region)
            changes.mark(event_id, key, kind, event, "delete", version)
        elif isinstance(event, JobCreated | JobStatusChanged):
            kind = "job"
            key = _job_facts(changes, event_id, event, version)
            changes.mark(event_id, key, kind, event, "upsert", version)
        elif isinstance(event, OpenLineageEventReceived):
            kind, key = "openlineage_event", event_id
            for name, value in _openlineage_fields(event):
                changes.fact(event_id, key, name, "", _dumps(value), False, version)
            changes.mark(event_id, key, kind, event, "upsert", version)
        events["event_id"].append(event_id)
        events["event_type"].append(event.event_type)
        events["schema_version"].append(event.schema_version)
        events["occurred_at"].append(occurred)
        events["account_id"].append(event.account_id)
        events["region"].append(event.region)
        events["producer"].append(event.producer)
        events["caused_by"].append(str(event.caused_by) if event.caused_by else None)
        events["entity_kind"].append(kind)
        events["entity_key"].append(key)
        events["version"].append(version)
        events["topic"].append(record.topic)
        events["partition"].append(record.partition)
        events["offset"].append(record.offset)
    return changes
