"""The only place bytes become events and events become bytes.

Encoding is canonical (sorted keys, no spaces, UTC timestamps), so the same event always
has the same bytes: the tracker's derived events are byte-identical on every run.

Decoding upcasts older ``schema_version`` records before validation: an upcaster is a
function ``dict -> dict`` registered for ``(event_type, from_version)``; it must return the
record at ``from_version + 1``. Only v1 exists today, so the registry is empty.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from mlineage import arns
from mlineage.errors import EventValidationError
from mlineage.events import models, openlineage
from mlineage.events.models import (
    EVENT_ADAPTER,
    EVENT_LIST_ADAPTER,
    EVENT_TYPES,
    SCHEMA_VERSION,
    AnyEvent,
    canonical_time,
)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: register an upcaster from ``from_version`` to ``from_version + 1``."""

    def wrap(fn: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = fn
        return fn

    return wrap


def to_jsonable(event: AnyEvent) -> dict[str, Any]:
    data = event.model_dump(mode="json", exclude_none=True)
    data["occurred_at"] = _utc(event.occurred_at.isoformat())
    return data


def _utc(value: str) -> str:
    return canonical_time(datetime.fromisoformat(value))


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


# re-serializes a parsed record for validation: NaN/Infinity pass through to the models,
# which reject them naming the field
_PASS_THROUGH = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(data: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, UTF-8 as is, no NaN."""
    return _ENCODER.encode(data)


def encode(event: AnyEvent) -> bytes:
    """Canonical bytes of an event."""
    return dumps(to_jsonable(event)).encode("utf-8")


def format_errors(
    exc: ValidationError, fallback_type: str = "event"
) -> tuple[str, list[tuple[str, str, str]]]:
    """One readable message naming the event type, the field and the rule, per problem."""
    problems: list[tuple[str, str, str]] = []
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        event_type = fallback_type
        if loc and loc[0] in EVENT_TYPES:
            event_type = loc.pop(0)
        # drop discriminator tags (entity kinds) from the path: they are not fields. A tag
        # follows "entity" (upserts) or "payload" (deletes); a map key never does.
        kept = [
            part
            for i, part in enumerate(loc)
            if not (_is_kind_tag(part) and i > 0 and loc[i - 1] in ("entity", "payload"))
            and not (part in models.METRIC_TAGS and i > 1 and loc[i - 2] == "metrics")
            and not (part in openlineage.KINDS and i > 0 and loc[i - 1] == "event")
        ]
        path = ".".join(kept) or "(event)"
        rule = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            rule = "is required"
        elif err["type"] == "extra_forbidden":
            rule = "is not a field of this event (unknown field)" + _did_you_mean(kept[-1])
        problems.append((event_type, path, rule))
    text = "; ".join(
        f"{t}: field '{f}' {r}" if r.startswith("is ") else f"{t}: field '{f}': {r}"
        for t, f, r in problems
    )
    return text, problems


def validation_error(exc: ValidationError, fallback_type: str = "event") -> EventValidationError:
    """pydantic's error as mlineage's: the message and problems of :func:`format_errors`, and
    whether a count limit broke (pydantic's ``too_long`` is a list or map over its
    ``max_length``; a string over its length is ``string_too_long``, a plain validation error)."""
    message, problems = format_errors(exc, fallback_type)
    count_limit = any(err["type"] == "too_long" for err in exc.errors(include_url=False))
    return EventValidationError(message, problems, count_limit=count_limit)


@functools.cache
def _field_names() -> tuple[str, ...]:
    """Every field name of the event models (the words a misspelt key is compared with)."""
    return tuple(
        sorted(
            {
                name
                for m in vars(models).values()
                if isinstance(m, type) and issubclass(m, BaseModel)
                for name in m.model_fields
            }
        )
    )


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, _field_names(), n=1, cutoff=0.75)
    return f": did you mean '{close[0]}'?" if close else ""


_KIND_TAGS = frozenset(
    {
        "artifact",
        "action",
        "context",
        "experiment",
        "trial",
        "trial_component",
        "association",
        "trial_component_trial",
        "lineage_share",
    }
)


def _is_kind_tag(part: str) -> bool:
    return part in _KIND_TAGS


def upcast(record: dict[str, Any]) -> dict[str, Any]:
    version = record.get("schema_version", SCHEMA_VERSION)
    event_type = record.get("event_type")
    while isinstance(version, int) and not isinstance(version, bool) and version < SCHEMA_VERSION:
        fn = UPCASTERS.get((str(event_type), version))
        if fn is None:
            raise EventValidationError(
                f"{event_type}: field 'schema_version': no upcaster from version {version}",
                [(str(event_type), "schema_version", f"no upcaster from version {version}")],
            )
        record = fn(record)
        version += 1
        record["schema_version"] = version
    return record


def wrap_openlineage(
    event: Any, account_id: str, region: str, producer: str | None = None
) -> dict[str, Any]:
    """The ``OpenLineageEventReceived`` draft of a bare OpenLineage event received for an
    account: its id from its content (:func:`mlineage.arns.openlineage_event_id`), its
    ``occurred_at`` its ``eventTime`` (when that is a time; else validation says why)."""
    try:
        text = dumps(event)
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800") has no UTF-8 form
        raise EventValidationError(
            "OpenLineageEventReceived: field 'payload.event': text that is not valid Unicode "
            f"({exc.reason}: {exc.object[exc.start : exc.end]!a})",
            [("OpenLineageEventReceived", "payload.event", "not valid Unicode")],
        ) from exc
    except ValueError as exc:  # NaN or Infinity somewhere in it
        raise EventValidationError(
            f"OpenLineageEventReceived: field 'payload.event': {exc} (JSON has no NaN/Infinity)",
            [("OpenLineageEventReceived", "payload.event", str(exc))],
        ) from exc
    # a time that does not parse is the model's to word (at payload.event.eventTime); the
    # envelope's time stands in meanwhile, so that is the one error
    occurred: Any = "1970-01-01T00:00:00.000000Z"
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        when = openlineage.parse_time(event.get("eventTime"))
        occurred = canonical_time(openlineage.occurred_at(when, event.get("eventType")))
    out: dict[str, Any] = {
        "event_type": "OpenLineageEventReceived",
        "event_id": arns.openlineage_event_id(account_id, region, text),
        "schema_version": SCHEMA_VERSION,
        "occurred_at": occurred,
        "account_id": account_id,
        "region": region,
        "payload": {"event": event},
    }
    if producer is not None:
        out["producer"] = producer
    return out


def validate_record(record: Any, key: bytes | None = None) -> AnyEvent:
    """Validate an already-parsed JSON object (after upcasting) into an event. A bare
    OpenLineage event (what the client's Kafka transport writes) is taken as an
    ``OpenLineageEventReceived`` of the account its record ``key`` names
    (:func:`~mlineage.events.openlineage.account_of_key`)."""
    if openlineage.looks_like_openlineage(record):
        try:
            account, region = openlineage.account_of_key(key)
        except ValueError as exc:
            raise EventValidationError(
                f"OpenLineageEventReceived: field '(key)': {exc}",
                [("OpenLineageEventReceived", "(key)", str(exc))],
            ) from exc
        record = wrap_openlineage(record, account, region, "openlineage-kafka")
    if not isinstance(record, dict):
        raise EventValidationError(
            "event: not a JSON object", [("event", "(event)", "must be a JSON object")]
        )
    event_type = record.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        known = ", ".join(sorted(EVENT_TYPES))
        raise EventValidationError(
            f"event: field 'event_type': unknown event type {event_type!r} (known: {known})",
            [("event", "event_type", f"unknown event type {event_type!r}")],
        )
    version = record.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise EventValidationError(
            f"{event_type}: field 'schema_version': version {version} is newer than this "
            f"mlineage understands ({SCHEMA_VERSION}); upgrade mlineage",
            [(str(event_type), "schema_version", "newer than supported")],
        )
    try:
        # validate as JSON, exactly like the batch path: strict JSON mode takes UUIDs and
        # RFC 3339 timestamps as strings
        return EVENT_ADAPTER.validate_json(_PASS_THROUGH.encode(upcast(record)))
    except ValidationError as exc:
        raise validation_error(exc, str(event_type)) from exc


def parse_json(raw: bytes | str) -> Any:
    try:
        # NaN/Infinity parse here and are rejected by the models, which name the field
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise EventValidationError(
            f"event: malformed JSON: {exc}", [("event", "(json)", f"malformed JSON: {exc}")]
        ) from exc


def decode(raw: bytes | str, key: bytes | None = None) -> AnyEvent:
    """Bytes from the log -> a validated event, or EventValidationError naming the field
    (``key``: the record's key, which a bare OpenLineage record's account may be in)."""
    return validate_record(parse_json(raw), key)


@dataclass(frozen=True)
class Rejected:
    """A record that failed to decode or validate, with the reason."""

    index: int
    error: str


def decode_many(
    values: Sequence[bytes], keys: Sequence[bytes | None] | None = None
) -> list[AnyEvent | Rejected]:
    """Decode a batch. The fast path validates the whole batch in one call (pydantic-core,
    no Python per record); a batch with any bad or old record falls back to one by one."""
    if not values:
        return []
    try:
        blob = b"[" + b",".join(values) + b"]"
        events: list[AnyEvent | Rejected] = list(EVENT_LIST_ADAPTER.validate_json(blob))
        # a value holding two comma-separated objects would shift every index after it
        if len(events) == len(values):
            return events
    except (ValidationError, ValueError, RecursionError):
        pass
    out: list[AnyEvent | Rejected] = []
    for i, value in enumerate(values):
        try:
            out.append(decode(value, keys[i] if keys is not None else None))
        except EventValidationError as exc:
            out.append(Rejected(i, str(exc)))
    return out
