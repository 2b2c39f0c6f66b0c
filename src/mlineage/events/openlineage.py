"""OpenLineage events as mlineage receives them (spec 2.x: RunEvent, DatasetEvent, JobEvent).

Written from the OpenLineage specification (``spec/OpenLineage.json``), not generated from it:
what the spec requires is checked (``eventTime`` an RFC 3339 time with an offset,
``producer`` and ``schemaURL`` strings, ``eventType`` one of the run states, ``run.runId`` a
UUID, ``job.namespace`` and ``job.name``, each dataset's ``namespace`` and ``name``, facets
JSON objects); everything else, facets first of all, is kept exactly as given (unknown
fields too: a later spec or a custom facet must never be dropped). mlineage adds bounds the
spec leaves open, so one event cannot swamp the log: the lengths of names and namespaces,
the number of datasets, and the size of the whole event.

The three kinds are told apart by their fields: an event with a ``run`` (or an
``eventType``) is a RunEvent, one with a ``dataset`` a DatasetEvent, otherwise a JobEvent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

RunState = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]

MAX_NAME = 1000
"""The longest job or dataset name, and namespace, mlineage takes (the spec sets none; a
dataset's URI, namespace and name, stays within SageMaker's 2,048 characters)."""
MAX_DATASETS = 200
"""The most input (and output) datasets one event may name: each derives three events (the
artifact, its association with the run, the link to its "/" spelling)."""
MAX_EVENT_BYTES = 1024 * 1024
"""The largest OpenLineage event (its JSON) mlineage stores: a Kafka record's usual limit."""

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
OLName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
Facets = dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], dict[str, Any]]
_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):?[0-5]\d)"
)


class _Open(BaseModel):
    """Strict types for what the spec defines; any other field is kept as given."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class Job(_Open):
    namespace: OLName
    name: OLName
    facets: Facets | None = None


def is_uuid(value: str) -> bool:
    return _UUID_RE.fullmatch(value) is not None


class Run(_Open):
    runId: str  # noqa: N815 (the spec's name)
    facets: Facets | None = None

    @field_validator("runId")
    @classmethod
    def _uuid(cls, value: str) -> str:
        if not is_uuid(value):
            raise ValueError("must be a UUID, e.g. 0191f3a4-8a4d-7e7f-9b0c-1d2e3f4a5b6c")
        return value


class Dataset(_Open):
    namespace: OLName
    name: OLName
    facets: Facets | None = None


class InputDataset(Dataset):
    inputFacets: Facets | None = None  # noqa: N815


class OutputDataset(Dataset):
    outputFacets: Facets | None = None  # noqa: N815


def parse_time(value: str) -> datetime:
    """An RFC 3339 date-time with an offset (``Z`` or ``+02:00``); ValueError otherwise."""
    if not _TIME.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with a time zone, e.g. 2026-01-01T00:00:00Z"
        )
    parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    if parsed.tzinfo is None:  # pragma: no cover - the pattern requires an offset
        raise ValueError("must carry a time zone offset")
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range in UTC (years 1 to 9999)") from None
    return parsed


class _Base(_Open):
    eventTime: str  # noqa: N815
    producer: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME * 2)]
    schemaURL: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME * 2)]  # noqa: N815

    @field_validator("eventTime")
    @classmethod
    def _time(cls, value: str) -> str:
        parse_time(value)
        return value

    @property
    def event_time(self) -> datetime:
        return parse_time(self.eventTime)

    @model_validator(mode="after")
    def _size(self) -> _Base:
        # the bytes of what was sent (not of defaults), serialized in Rust
        size = len(self.__pydantic_serializer__.to_json(self, exclude_unset=True))
        if size > MAX_EVENT_BYTES:
            raise ValueError(
                f"the OpenLineage event is {size} bytes of JSON, more than the "
                f"{MAX_EVENT_BYTES} mlineage stores; send large facets elsewhere"
            )
        return self


Inputs = Annotated[list[InputDataset], Field(max_length=MAX_DATASETS)]
Outputs = Annotated[list[OutputDataset], Field(max_length=MAX_DATASETS)]


class RunEvent(_Base):
    """A run changed state (START, RUNNING, COMPLETE, ABORT, FAIL) or says more (OTHER)."""

    eventType: RunState | None = None  # noqa: N815
    run: Run
    job: Job
    inputs: Inputs | None = None
    outputs: Outputs | None = None


class JobEvent(_Base):
    """What a job is (its facets, datasets), outside any run."""

    # as event_kind tells them apart: in the JSON Schema too, exactly one kind matches
    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "anyOf": [
                    {"required": ["run"]},
                    {"required": ["eventType"]},
                    {"required": ["dataset"]},
                ]
            }
        }
    )

    job: Job
    inputs: Inputs | None = None
    outputs: Outputs | None = None


class DatasetEvent(_Base):
    """What a dataset is (its facets), outside any run."""

    model_config = ConfigDict(
        json_schema_extra={"not": {"anyOf": [{"required": ["run"]}, {"required": ["eventType"]}]}}
    )

    dataset: Dataset


_STATE_ORDER = {"START": 0, "RUNNING": 1, "OTHER": 1, "COMPLETE": 2, "FAIL": 2, "ABORT": 2}


def occurred_at(event_time: datetime, event_type: Any) -> datetime:
    """When an event counts as having happened, for the merge: its ``eventTime``, plus one
    microsecond for RUNNING and OTHER and two for COMPLETE, FAIL and ABORT, so that a START
    and the end a client stamps with the same instant order as the run did."""
    return event_time + timedelta(microseconds=_STATE_ORDER.get(event_type, 0))


def event_kind(value: Any) -> str:
    if isinstance(value, dict):
        if "run" in value or "eventType" in value:  # a run event that lost its run says so
            return "RunEvent"
        if "dataset" in value:
            return "DatasetEvent"
        return "JobEvent"
    if isinstance(value, BaseModel):
        return type(value).__name__
    return "RunEvent"  # not an object: the RunEvent branch says what is wrong


OpenLineageEvent = Annotated[
    Annotated[RunEvent, Tag("RunEvent")]
    | Annotated[DatasetEvent, Tag("DatasetEvent")]
    | Annotated[JobEvent, Tag("JobEvent")],
    Discriminator(event_kind),
]
KINDS = frozenset({"RunEvent", "DatasetEvent", "JobEvent"})

KAFKA_ACCOUNT_ID = "000000000000"
KAFKA_REGION = "us-east-1"
"""The account and region of a bare OpenLineage event read from the log (what the client's
Kafka transport writes: no envelope, no headers) whose record key names none: mlineage's
defaults, fixed here rather than read from a consumer's environment, so every consumer and
every replay derives the same entities from it."""

_ACCOUNT_KEY = re.compile(r"account:(\d{12})(?:/([a-z0-9\-]{1,32}))?")


def account_of_key(key: bytes | None) -> tuple[str, str]:
    """The account (and region) a bare OpenLineage record is for, from its record key: the
    client's Kafka transport sets it with ``messageKey: account:111111111111`` (or
    ``account:111111111111/eu-west-1``); any other key (the client's own ``run:...``) means
    :data:`KAFKA_ACCOUNT_ID`. The key is in the log, so every read derives the same account.
    ValueError for a key that starts with ``account:`` but names no account."""
    text = (key or b"").decode("utf-8", "replace")
    if not text.startswith("account:"):
        return KAFKA_ACCOUNT_ID, KAFKA_REGION
    found = _ACCOUNT_KEY.fullmatch(text)
    if found is None:
        raise ValueError(
            f"the record key {text[:80]!r} is not account:<12 digits>[/<region>] (the Kafka "
            "transport's messageKey)"
        )
    return found.group(1), found.group(2) or KAFKA_REGION


def looks_like_openlineage(record: Any) -> bool:
    """Whether a JSON object is a bare OpenLineage event (not an mlineage envelope): what the
    OpenLineage client's Kafka transport writes."""
    return (
        isinstance(record, dict)
        and "event_type" not in record
        and "eventTime" in record
        and any(k in record for k in ("run", "job", "dataset"))
    )


def dataset_uri(namespace: str, name: str) -> str:
    """The URI of an OpenLineage dataset, after the spec's dataset naming (``Naming.md``):
    ``s3://bucket`` + ``path/x`` -> ``s3://bucket/path/x``; ``postgres://host:5432`` +
    ``db.schema.table`` -> ``postgres://host:5432/db.schema.table``; ``file`` + ``/tmp/x`` ->
    ``file:///tmp/x``; a namespace with no ``://`` (``bigquery``, ``kafka``-less names)
    becomes the scheme. Normalized: ``s3a://`` and ``s3n://`` are ``s3://``, one ``/``
    between namespace and name, no trailing ``/`` on object-store paths."""
    ns = namespace.strip()
    for alias in ("s3a://", "s3n://"):
        if ns.startswith(alias):
            ns = "s3://" + ns[len(alias) :]
    # a namespace without "://" (file, bigquery) is the scheme
    uri = ns.rstrip("/") + "/" + name.lstrip("/") if "://" in ns else ns.rstrip(":/") + "://" + name
    scheme, sep, path = uri.partition("://")
    if scheme.lower() in OBJECT_STORES:
        path = path.rstrip("/") or path
    return scheme + sep + path


OBJECT_STORES = frozenset({"s3", "gs", "wasbs", "abfss", "abfs", "hdfs", "dbfs", "file", "oss"})
"""Schemes whose names are paths: a prefix may also be written with a trailing ``/``."""
