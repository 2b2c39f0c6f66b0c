"""Decode, validate and project records in DuckDB: the projector's hot path without Python
per record.

A batch's bytes go to DuckDB as one Arrow column. One statement per topic parses its records
with one lean structure (``from_json``: string fields as text, other leaves as their JSON
text), the next checks the rules of the event models for the shapes the
pipeline writes most — ``JobCreated``, ``JobStatusChanged`` and ``EntityUpserted`` of
artifacts, trial components and associations — and projects the records it accepts into the
same ``events`` / ``marks`` / ``facts`` rows as :func:`mlineage.projection.project.project`.

**SQL never rejects.** A record it cannot decide is *deferred* to the pydantic models and
``project()``, which accept it or word the dead letter's error. It decides a record only when:

- its text is valid UTF-8 with no backslash (so no escapes) and no ``null`` anywhere;
- the record, rebuilt in SQL from the parsed structure in canonical form (keys sorted, no
  spaces, string fields quoted, DuckDB's rendering of each other leaf), is byte-equal to the
  record. That one comparison
  rules out unknown or duplicated keys, keys out of order, JSON DuckDB is lenient about
  (trailing commas, whitespace) and numbers not in their shortest form, and it fixes the
  type of every object, list and string field (a number read as a string field's text would
  come back quoted). Fields this path does not handle (``job_arn``,
  ``experiment_config``, ``metadata``, metric summaries, artifacts by ``artifact_arn``, ...)
  are not in the structure, so a record carrying one is deferred by the same comparison;
- every leaf passes its field's rule (types, lengths in characters, patterns, enums, UUIDs,
  RFC 3339 times, finite numbers, map sizes, and the models' cross-field checks).

What the models accept is then exactly what is projected, whichever path a record takes:
``tests/unit/test_ingest.py`` checks it on generated events and on mutations of them (an
accepted record must give the same rows both ways). The facts' values are the canonical JSON
Python writes (``codec.dumps``); DuckDB's text of a double equals Python's ``repr`` of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from mlineage.events.codec import Rejected, decode_many
from mlineage.events.models import AnyEvent
from mlineage.log.base import Record
from mlineage.projection.project import EVENT_COLUMNS, FACT_COLUMNS, MARK_COLUMNS, project
from mlineage.projection.store import Batch

# -- the structures: what the SQL path parses, and how it rebuilds a record ---------------------


@dataclass(frozen=True)
class Leaf:
    """A scalar: a string field's text (``VARCHAR``: the rebuilt record quotes it, so a
    number, object or list given there cannot match), or another scalar kept as its JSON
    text (``JSON``: its type is checked by the field's rule)."""

    sql_type: str


@dataclass(frozen=True)
class Obj:
    fields: tuple[tuple[str, Node], ...]


@dataclass(frozen=True)
class List:
    item: Node


@dataclass(frozen=True)
class Map:
    value: Node  # a Leaf or an Obj of leaves


Node = Leaf | Obj | List | Map
J = Leaf("JSON")
S = Leaf("VARCHAR")


def _obj(**fields: Node) -> Obj:
    return Obj(tuple(sorted(fields.items())))


_DATA_REF = _obj(artifact_type=S, name=S, uri=S)
_TAG = _obj(key=S, value=S)

_ENVELOPE = {
    "account_id": S,
    "caused_by": S,
    "event_id": S,
    "event_type": S,
    "occurred_at": S,
    "producer": S,
    "region": S,
    "schema_version": J,
}
JOB_PAYLOAD = _obj(
    checkpoint_uri=S,
    end_time=S,
    failure_reason=S,
    image_uri=S,
    inputs=List(_DATA_REF),
    instance_count=J,
    instance_type=S,
    job_name=S,
    job_type=S,
    metrics=Map(J),
    model_data_uri=S,
    outputs=List(_DATA_REF),
    parameters=Map(J),
    status=S,
    tags=List(_TAG),
)
"""The fields of ``JobCreated`` and ``JobStatusChanged`` payloads this path decides."""
ENTITY = _obj(
    artifact_name=S,
    artifact_type=S,
    association_type=S,
    destination_arn=S,
    display_name=S,
    end_time=S,
    input_artifacts=Map(_obj(media_type=S, value=S)),
    kind=S,
    metrics=Map(J),
    output_artifacts=Map(_obj(media_type=S, value=S)),
    parameters=Map(_obj(number_value=J, string_value=S)),
    parameters_to_remove=List(S),
    properties=Map(S),
    properties_to_remove=List(S),
    source=_obj(source_arn=S, source_type=S, source_uri=S),
    source_arn=S,
    start_time=S,
    status=_obj(message=S, primary_status=S),
    tags=List(_TAG),
    tags_to_remove=List(S),
    trial_component_name=S,
)
"""The fields of the entities (artifact, trial component, association) this path decides."""
JOBS = _obj(**_ENVELOPE, payload=JOB_PAYLOAD)
ENTITIES = _obj(**_ENVELOPE, payload=_obj(entity=ENTITY))


def _sql_type(node: Node) -> str:
    if isinstance(node, Leaf):
        return node.sql_type
    if isinstance(node, Obj):
        return "STRUCT(" + ", ".join(f'"{n}" {_sql_type(c)}' for n, c in node.fields) + ")"
    if isinstance(node, List):
        return _sql_type(node.item) + "[]"
    return f"MAP(VARCHAR, {_sql_type(node.value)})"


def _structure(node: Node) -> object:
    """``from_json``'s structure argument for ``node``."""
    if isinstance(node, Leaf):
        return node.sql_type
    if isinstance(node, Obj):
        return {n: _structure(c) for n, c in node.fields}
    if isinstance(node, List):
        return [_structure(node.item)]
    return _sql_type(node)


def _rebuild(expr: str, node: Node, depth: int = 0) -> str:
    """SQL of the canonical JSON text of the parsed value ``expr`` (NULL when absent)."""
    if node is S:
        return f"""'"' || {expr} || '"'"""
    if isinstance(node, Leaf):
        return f"CAST({expr} AS VARCHAR)"
    var = f"x{depth}"
    if isinstance(node, Obj):
        parts = ", ".join(
            f"""'"{n}":' || {_rebuild(f'{expr}."{n}"', c, depth)}""" for n, c in node.fields
        )
        return f"CASE WHEN {expr} IS NOT NULL THEN '{{' || concat_ws(',', {parts}) || '}}' END"
    if isinstance(node, List):
        item = _rebuild(var, node.item, depth + 1)
        return (
            f"CASE WHEN {expr} IS NOT NULL THEN '[' || array_to_string(list_transform({expr}, "
            f"lambda {var}: {item}), ',') || ']' END"
        )
    value = _rebuild(f"{var}.value", node.value, depth + 1)
    return (
        f"CASE WHEN {expr} IS NOT NULL THEN '{{' || array_to_string(list_transform("
        f"""map_entries({expr}), lambda {var}: '"' || {var}.key || '":' || {value}), ','"""
        ") || '}' END"
    )


# -- rules -------------------------------------------------------------------------------------

_MACROS = (
    # a JSON leaf's text; a string field's canonical JSON (no escapes: the path takes no
    # backslash, so the text never holds a quote); a string of lo..hi characters
    "CREATE OR REPLACE TEMP MACRO t(j) AS CAST(j AS VARCHAR)",
    "CREATE OR REPLACE TEMP MACRO q(x) AS '\"' || x || '\"'",
    "CREATE OR REPLACE TEMP MACRO is_str(x, lo, hi) AS coalesce(length(x) BETWEEN lo AND hi, "
    "false)",
    # a JSON leaf that is a string of lo..hi characters
    "CREATE OR REPLACE TEMP MACRO jstr(j, lo, hi) AS coalesce(left(t(j), 1) = '\"' AND "
    "length(t(j)) - 2 BETWEEN lo AND hi, false)",
    "CREATE OR REPLACE TEMP MACRO opt_str(j, lo, hi) AS j IS NULL OR is_str(j, lo, hi)",
    "CREATE OR REPLACE TEMP MACRO is_match(x, lo, hi, pattern) AS is_str(x, lo, hi) AND "
    "regexp_full_match(x, pattern)",
    # Name: 1-120 (ResourceName: 1-63) letters, digits and inner hyphens
    "CREATE OR REPLACE TEMP MACRO is_name(j, hi) AS is_match(j, 1, hi, "
    "'[a-zA-Z0-9](-*[a-zA-Z0-9])*')",
    "CREATE OR REPLACE TEMP MACRO is_uuid(j) AS is_match(j, 36, 36, "
    "'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')",
    # a SageMaker ARN (arns.ARN_PATTERN with ASCII digits), at most 256 characters
    "CREATE OR REPLACE TEMP MACRO is_arn(j) AS is_match(j, 1, 256, "
    "'arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:[a-z-]+/[A-Za-z0-9_./:-]+')",
    "CREATE OR REPLACE TEMP MACRO arn_resource(x) AS regexp_extract(x, "
    "'^arn:[^:]*:[^:]*:[^:]*:[^:]*:([a-z-]+)/', 1)",
    # an RFC 3339 time with a zone, in years 1900-2099, as codec.canonical_time writes it
    # (NULL when it is not one, or not a real date)
    "CREATE OR REPLACE TEMP MACRO ts(x) AS CASE WHEN regexp_full_match(x, "
    "'(19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    "(\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])') THEN "
    "strftime(try_cast(x AS TIMESTAMPTZ), '%Y-%m-%dT%H:%M:%S.%fZ') END",
    "CREATE OR REPLACE TEMP MACRO opt_ts(j) AS j IS NULL OR ts(j) IS NOT NULL",
    # an integer of at most 18 digits, and a finite number (an integer literal, or a
    # decimal whose integer part has at most 18 digits)
    "CREATE OR REPLACE TEMP MACRO is_int(j, lo, hi) AS coalesce(regexp_full_match(CAST(j AS "
    "VARCHAR), '-?(0|[1-9][0-9]{0,17})') AND t(j) <> '-0' AND "
    "try_cast(t(j) AS BIGINT) BETWEEN lo AND hi, false)",
    "CREATE OR REPLACE TEMP MACRO is_num(j) AS coalesce(regexp_full_match(t(j), "
    "'-?(0|[1-9][0-9]{0,17})(\\.[0-9]+)?([eE][-+]?[0-9]+)?') AND "
    "isfinite(try_cast(t(j) AS DOUBLE)), false)",
    "CREATE OR REPLACE TEMP MACRO is_float_literal(j) AS regexp_full_match(t(j), "
    "'-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?') AND regexp_matches(t(j), '[.eE]')",
    # a float's canonical JSON (Python's repr, which DuckDB's text of a double equals)
    "CREATE OR REPLACE TEMP MACRO fnum(j) AS CAST(CAST(t(j) AS DOUBLE) AS VARCHAR)",
    "CREATE OR REPLACE TEMP MACRO all_of(l) AS coalesce(list_bool_and(l), true)",
    "CREATE OR REPLACE TEMP MACRO strs_ok(l, most, lo, hi) AS l IS NULL OR (len(l) <= most AND "
    "all_of(list_transform(l, lambda x: is_str(x, lo, hi))))",
    # a map: at most ``most`` entries, keys of lo..hi characters
    "CREATE OR REPLACE TEMP MACRO map_keys_ok(m, most, lo, hi) AS cardinality(m) <= most AND "
    "all_of(list_transform(map_keys(m), lambda x: length(x) BETWEEN lo AND hi))",
    "CREATE OR REPLACE TEMP MACRO tags_ok(l) AS l IS NULL OR (len(l) <= 50 AND "
    "all_of(list_transform(l, lambda x: is_str(x.key, 1, 128) AND is_str(x.value, 0, 256))))",
    "CREATE OR REPLACE TEMP MACRO refs_ok(l) AS l IS NULL OR (len(l) <= 60 AND "
    "all_of(list_transform(l, lambda x: is_str(x.name, 1, 128) AND is_str(x.uri, 1, 2048) AND "
    "opt_str(x.artifact_type, 1, 256))))",
    "CREATE OR REPLACE TEMP MACRO metrics_ok(m) AS m IS NULL OR (map_keys_ok(m, 300, 1, 2500) AND "
    "all_of(list_transform(map_values(m), lambda x: is_num(x))))",
    "CREATE OR REPLACE TEMP MACRO refs_json(l) AS '[' || array_to_string(list_transform(l, "
    "lambda x: '{' || concat_ws(',', '\"artifact_type\":' || q(x.artifact_type), '\"name\":' "
    "|| q(x.name), '\"uri\":' || q(x.uri)) || '}'), ',') || ']'",
)

_JOB_STATUS = "'InProgress', 'Completed', 'Failed', 'Stopping', 'Stopped'"
_TERMINAL = "'Completed', 'Failed', 'Stopped'"
_JOB_RESOURCE = (
    "CASE p.job_type WHEN 'TrainingJob' THEN 'training-job' WHEN 'ProcessingJob' "
    "THEN 'processing-job' ELSE 'transform-job' END"
)
_END_RESOURCES = "'artifact', 'action', 'context', 'experiment', 'experiment-trial-component'"


def _absent(prefix: str, node: Obj, allowed: set[str]) -> str:
    """The fields of ``node`` (under ``prefix``) outside ``allowed`` are all absent."""
    return " AND ".join(f'{prefix}."{n}" IS NULL' for n, _ in node.fields if n not in allowed)


_JOB_CREATED = {
    "job_type",
    "job_name",
    "image_uri",
    "inputs",
    "outputs",
    "model_data_uri",
    "checkpoint_uri",
    "parameters",
    "instance_type",
    "instance_count",
    "tags",
}
_JOB_STATUS_CHANGED = {
    "job_type",
    "job_name",
    "status",
    "outputs",
    "metrics",
    "failure_reason",
    "end_time",
}
_ENTITY_KINDS: dict[str, set[str]] = {
    "artifact": {
        "kind",
        "artifact_name",
        "source",
        "artifact_type",
        "properties",
        "properties_to_remove",
        "tags",
        "tags_to_remove",
    },
    "trial_component": {
        "kind",
        "trial_component_name",
        "display_name",
        "status",
        "start_time",
        "end_time",
        "source",
        "parameters",
        "parameters_to_remove",
        "input_artifacts",
        "output_artifacts",
        "metrics",
        "tags",
        "tags_to_remove",
    },
    "association": {"kind", "source_arn", "destination_arn", "association_type"},
}

_HYPER = (
    "jstr(x, 0, 2500) OR is_int(x, -9223372036854775807, 9223372036854775807) OR "
    "(is_num(x) AND is_float_literal(x)) OR CAST(x AS VARCHAR) IN ('true', 'false')"
)


def _job_created_ok() -> str:
    return f"""e.event_type = 'JobCreated' AND {_absent("p", JOB_PAYLOAD, _JOB_CREATED)}
        AND p.job_type IN ('TrainingJob', 'ProcessingJob', 'TransformJob')
        AND is_name(p.job_name, 63)
        AND opt_str(p.image_uri, 1, 2048) AND opt_str(p.model_data_uri, 1, 2048)
        AND opt_str(p.checkpoint_uri, 1, 2048)
        AND (p.job_type <> 'TransformJob' OR p.model_data_uri IS NOT NULL)
        AND refs_ok(p.inputs) AND refs_ok(p.outputs)
        AND (p.parameters IS NULL OR (map_keys_ok(p.parameters, 297, 1, 2500)
             AND all_of(list_transform(map_values(p.parameters), lambda x: {_HYPER}))))
        AND opt_str(p.instance_type, 0, 64)
        AND (p.instance_count IS NULL OR is_int(p.instance_count, 1, 10000))
        AND tags_ok(p.tags)
        AND (p.tags IS NULL OR len(p.tags) = len(list_distinct(list_transform(p.tags,
             lambda x: x.key))))"""


def _job_status_changed_ok() -> str:
    return f"""e.event_type = 'JobStatusChanged'
        AND {_absent("p", JOB_PAYLOAD, _JOB_STATUS_CHANGED)}
        AND p.job_type IN ('TrainingJob', 'ProcessingJob', 'TransformJob')
        AND is_name(p.job_name, 63) AND p.status IN ({_JOB_STATUS})
        AND refs_ok(p.outputs) AND metrics_ok(p.metrics)
        AND opt_str(p.failure_reason, 0, 1024) AND opt_ts(p.end_time)"""


def _entity_ok() -> str:
    artifact = f"""n.kind = 'artifact' AND {_absent("n", ENTITY, _ENTITY_KINDS["artifact"])}
        AND n.source.source_arn IS NULL AND n.source.source_type IS NULL
        AND is_str(n.source.source_uri, 1, 2048)
        AND (n.artifact_name IS NULL OR is_name(n.artifact_name, 120))
        AND opt_str(n.artifact_type, 1, 256)
        AND (n.properties IS NULL OR (map_keys_ok(n.properties, 30, 1, 2500)
             AND all_of(list_transform(map_values(n.properties), lambda x: is_str(x, 0, 4096)))))
        AND strs_ok(n.properties_to_remove, 30, 1, 2500)
        AND tags_ok(n.tags) AND strs_ok(n.tags_to_remove, 50, 1, 128)"""
    artifacts = "map_keys_ok({0}, 60, 1, 128) AND all_of(list_transform(map_values({0}), " + (
        "lambda x: is_str(x.value, 1, 2048) AND opt_str(x.media_type, 0, 64)))"
    )
    component = f"""n.kind = 'trial_component'
        AND {_absent("n", ENTITY, _ENTITY_KINDS["trial_component"])}
        AND is_name(n.trial_component_name, 120) AND opt_str(n.display_name, 1, 120)
        AND (n.status IS NULL OR (n.status.primary_status IN ({_JOB_STATUS})
             AND opt_str(n.status.message, 0, 1024)))
        AND opt_ts(n.start_time) AND opt_ts(n.end_time)
        AND (n.source IS NULL OR (n.source.source_uri IS NULL AND is_arn(n.source.source_arn)
             AND opt_str(n.source.source_type, 1, 256)))
        AND (n.parameters IS NULL OR (map_keys_ok(n.parameters, 300, 1, 2500)
             AND all_of(list_transform(map_values(n.parameters), lambda x:
                 (x.number_value IS NULL AND is_str(x.string_value, 0, 2500))
                 OR (x.string_value IS NULL AND is_num(x.number_value))))))
        AND strs_ok(n.parameters_to_remove, 300, 1, 2500)
        AND (n.input_artifacts IS NULL OR ({artifacts.format("n.input_artifacts")}))
        AND (n.output_artifacts IS NULL OR ({artifacts.format("n.output_artifacts")}))
        AND metrics_ok(n.metrics)
        AND tags_ok(n.tags) AND strs_ok(n.tags_to_remove, 50, 1, 128)"""
    association = f"""n.kind = 'association'
        AND {_absent("n", ENTITY, _ENTITY_KINDS["association"])}
        AND is_arn(n.source_arn) AND is_arn(n.destination_arn)
        AND arn_resource(n.source_arn) IN ({_END_RESOURCES})
        AND arn_resource(n.destination_arn) IN ({_END_RESOURCES})
        AND (n.association_type IS NULL OR n.association_type IN ('ContributedTo',
             'AssociatedWith', 'DerivedFrom', 'Produced', 'SameAs'))"""
    return f"""e.event_type = 'EntityUpserted'
        AND (({artifact}) OR ({component}) OR ({association}))"""


@dataclass(frozen=True)
class Shape:
    """What the path decides on one topic: the structure its records are parsed with, the
    rules they must pass, the name of the parsed part the facts read (``p`` the payload,
    ``n`` the entity), its entity kind and key, and its scalar facts."""

    structure: Obj
    part: str
    part_expr: str
    types: frozenset[str]
    rules: str
    kind: str
    key: str
    scalars: str


def _accept_sql(table: str, topic: str, shape: Shape) -> list[str]:
    """Statements that fill ``table`` with the records of ``topic`` this path accepts, and
    the columns their rows are made of. The parse is kept in a table of its own: in one
    statement DuckDB inlines it into every reference to it, or evaluates the check that
    rebuilds the record twice."""
    structure = json.dumps(_structure(shape.structure)).replace("'", "''")
    types = ", ".join(f"'{t}'" for t in sorted(shape.types))
    parse = f"""
CREATE OR REPLACE TEMP TABLE parsed AS
SELECT i, partition, "offset", s, from_json(s, '{structure}') AS e
FROM (SELECT *, try(decode(v)) AS s FROM recs WHERE topic = '{topic}')
WHERE s IS NOT NULL AND NOT contains(s, '\\') AND NOT contains(s, 'null') AND json_valid(s)
"""
    accept = f"""
CREATE OR REPLACE TEMP TABLE {table} AS
SELECT i, '{topic}' AS topic, partition, "offset", {shape.part_expr} AS {shape.part},
    e.event_id AS event_id, e.event_type AS event_type, ts(e.occurred_at) AS occurred,
    e.account_id AS account_id, e.region AS region, e.producer AS producer,
    e.caused_by AS caused_by, {shape.kind} AS kind,
    ts(e.occurred_at) || '|' || e.event_id AS version, {shape.key} AS entity_key
FROM (SELECT i, partition, "offset", e, {shape.part_expr} AS {shape.part} FROM parsed
      WHERE e IS NOT NULL AND e.event_type IN ({types})
          AND {_rebuild("e", shape.structure)} = s)
WHERE is_uuid(e.event_id) AND (e.caused_by IS NULL OR is_uuid(e.caused_by))
    AND (e.schema_version IS NULL OR t(e.schema_version) = '1')
    AND ts(e.occurred_at) IS NOT NULL
    AND is_match(e.account_id, 12, 12, '[0-9]{{12}}')
    AND is_match(e.region, 1, 32, '[a-z0-9-]+') AND opt_str(e.producer, 0, 256)
    AND ({shape.rules})
"""
    return [parse, accept]


def _arn(resource: str, name: str) -> str:
    return (
        "'arn:aws:sagemaker:' || e.region || ':' || e.account_id || ':' || "
        f"{resource} || '/' || {name}"
    )


_JOB_SCALARS = (
    """CASE WHEN event_type = 'JobCreated' THEN [
        {'f': 'job_type', 'v': q(p.job_type)},
        {'f': 'job_name', 'v': q(p.job_name)},
        {'f': 'status', 'v': '"InProgress"'},
        {'f': 'image_uri', 'v': q(p.image_uri)},
        {'f': 'model_data_uri', 'v': q(p.model_data_uri)},
        {'f': 'checkpoint_uri', 'v': q(p.checkpoint_uri)},
        {'f': 'instance_type', 'v': q(p.instance_type)},
        {'f': 'instance_count', 'v': t(p.instance_count)},
        {'f': 'inputs', 'v': refs_json(coalesce(p.inputs, []))},
        {'f': 'outputs', 'v': refs_json(coalesce(p.outputs, []))}]
    ELSE [
        {'f': 'job_type', 'v': q(p.job_type)},
        {'f': 'job_name', 'v': q(p.job_name)},
        {'f': 'status', 'v': q(p.status)},
        {'f': 'final_outputs', 'v': CASE WHEN len(p.outputs) > 0 THEN refs_json(p.outputs) END},
        {'f': 'failure_reason', 'v': q(p.failure_reason)},
        {'f': 'end_time', 'v': '"' || coalesce(ts(p.end_time),
            CASE WHEN p.status IN ("""
    + _TERMINAL
    + """) THEN occurred END) || '"'}]
    END"""
)

_ENTITY_SCALARS = """CASE kind WHEN 'artifact' THEN [
        {'f': 'artifact_name', 'v': q(n.artifact_name)},
        {'f': 'source', 'v': '{"source_uri":' || q(n.source.source_uri) || '}'},
        {'f': 'artifact_type', 'v': q(n.artifact_type)}]
    WHEN 'trial_component' THEN [
        {'f': 'trial_component_name', 'v': q(n.trial_component_name)},
        {'f': 'display_name', 'v': q(n.display_name)},
        {'f': 'status', 'v': CASE WHEN n.status IS NOT NULL THEN '{' || concat_ws(',',
            '"message":' || q(n.status.message), '"primary_status":' || q(n.status.primary_status))
            || '}' END},
        {'f': 'start_time', 'v': '"' || ts(n.start_time) || '"'},
        {'f': 'end_time', 'v': '"' || ts(n.end_time) || '"'},
        {'f': 'source', 'v': CASE WHEN n.source IS NOT NULL THEN '{' || concat_ws(',',
            '"source_arn":' || q(n.source.source_arn), '"source_type":' || q(n.source.source_type))
            || '}' END}]
    ELSE [
        {'f': 'source_arn', 'v': q(n.source_arn)},
        {'f': 'destination_arn', 'v': q(n.destination_arn)},
        {'f': 'association_type', 'v': q(n.association_type)}]
    END"""

JOBS_SHAPE = Shape(
    JOBS,
    "p",
    "e.payload",
    frozenset({"JobCreated", "JobStatusChanged"}),
    f"({_job_created_ok()}) OR ({_job_status_changed_ok()})",
    "'job'",
    _arn(_JOB_RESOURCE, "p.job_name"),
    _JOB_SCALARS,
)
ENTITIES_SHAPE = Shape(
    ENTITIES,
    "n",
    "e.payload.entity",
    frozenset({"EntityUpserted"}),
    _entity_ok(),
    "n.kind",
    "CASE n.kind WHEN 'artifact' THEN "
    + _arn("'artifact'", "md5(n.source.source_uri)")
    + " WHEN 'trial_component' THEN "
    + _arn("'experiment-trial-component'", "lower(n.trial_component_name)")
    + " ELSE n.source_arn || ' ' || n.destination_arn END",
    _ENTITY_SCALARS,
)


def _scalar_facts(table: str, shape: Shape) -> str:
    return f"""
SELECT event_id, entity_key, x.f AS field, '' AS item, x.v AS value, false AS removed, version
FROM (SELECT event_id, entity_key, version,
      unnest(list_filter({shape.scalars}, lambda x: x.v IS NOT NULL)) AS x FROM {table})
"""


def _map_facts(table: str, field: str, source: str, value: str, where: str = "true") -> str:
    """One fact per entry of map ``source`` (``x.key``, ``x.value``)."""
    return f"""
SELECT event_id, entity_key, '{field}' AS field, x.key AS item, {value} AS value,
    false AS removed, version
FROM (SELECT event_id, entity_key, version, unnest(map_entries({source})) AS x FROM {table}
      WHERE {where})
"""


def _list_facts(table: str, field: str, source: str, item: str, value: str, removed: bool) -> str:
    """One fact per element ``x`` of list ``source``."""
    return f"""
SELECT event_id, entity_key, '{field}' AS field, {item} AS item, {value} AS value,
    {str(removed).lower()} AS removed, version
FROM (SELECT event_id, entity_key, version, unnest({source}) AS x FROM {table}
      WHERE {source} IS NOT NULL)
"""


_ARTIFACT_VALUE = (
    "'{' || concat_ws(',', '\"media_type\":' || q(x.value.media_type), '\"value\":' || "
    "q(x.value.value)) || '}'"
)
_PARAMETER_VALUE = (
    "CASE WHEN x.value.string_value IS NOT NULL THEN '{\"string_value\":' || "
    "q(x.value.string_value) || '}' ELSE '{\"number_value\":' || "
    "fnum(x.value.number_value) || '}' END"
)
_HYPER_VALUE = (
    "CASE WHEN left(CAST(x.value AS VARCHAR), 1) <> '\"' AND is_float_literal(x.value) "
    "THEN fnum(x.value) ELSE CAST(x.value AS VARCHAR) END"
)

_FACTS = " UNION ALL ".join(
    [
        _scalar_facts("acc_jobs", JOBS_SHAPE),
        _map_facts(
            "acc_jobs", "parameters", "p.parameters", _HYPER_VALUE, "event_type = 'JobCreated'"
        ),
        _list_facts("acc_jobs", "tags", "p.tags", "x.key", "q(x.value)", False),
        _map_facts("acc_jobs", "metrics", "p.metrics", "fnum(x.value)"),
        _scalar_facts("acc_entities", ENTITIES_SHAPE),
        _map_facts("acc_entities", "metrics", "n.metrics", "fnum(x.value)"),
        _map_facts("acc_entities", "properties", "n.properties", "q(x.value)"),
        _map_facts("acc_entities", "parameters", "n.parameters", _PARAMETER_VALUE),
        _map_facts("acc_entities", "input_artifacts", "n.input_artifacts", _ARTIFACT_VALUE),
        _map_facts("acc_entities", "output_artifacts", "n.output_artifacts", _ARTIFACT_VALUE),
        _list_facts("acc_entities", "tags", "n.tags", "x.key", "q(x.value)", False),
        _list_facts("acc_entities", "properties", "n.properties_to_remove", "x", "NULL", True),
        _list_facts("acc_entities", "parameters", "n.parameters_to_remove", "x", "NULL", True),
        _list_facts("acc_entities", "tags", "n.tags_to_remove", "x", "NULL", True),
    ]
)

_ACCEPTED = """(SELECT i, topic, partition, "offset", event_id, event_type, occurred, account_id,
    region, producer, caused_by, kind, entity_key, version FROM acc_jobs UNION ALL
    SELECT i, topic, partition, "offset", event_id, event_type, occurred, account_id, region,
    producer, caused_by, kind, entity_key, version FROM acc_entities)"""
_EVENTS = f"""
SELECT event_id, event_type, CAST(1 AS INTEGER) AS schema_version, occurred AS occurred_at,
    account_id, region, producer, caused_by, kind AS entity_kind, entity_key, version, topic,
    partition, "offset" FROM {_ACCEPTED}
"""
_MARKS = f"""
SELECT event_id, entity_key, kind, account_id, region, 'upsert' AS op, version FROM {_ACCEPTED}
"""


# -- the stage ----------------------------------------------------------------------------------

STAGE_MEMORY_LIMIT = "256MB"
"""The SQL stage's DuckDB memory limit (it spills past it, like the store)."""


def records_table(records: Sequence[Record]) -> pa.Table:
    """The records' positions and bytes as Arrow columns (the bytes copied once, into one
    buffer: ``pa.array`` of a list of bytes costs several microseconds a record)."""
    n = len(records)
    values = [r.value or b"" for r in records]
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    blob = b"".join(values)
    column = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(blob)]
    )
    topics = sorted({r.topic for r in records})
    codes = {t: k for k, t in enumerate(topics)}
    topic = pa.DictionaryArray.from_arrays(
        pa.array(np.array([codes[r.topic] for r in records], dtype=np.int32)),
        pa.array(topics, pa.string()),
    )
    return pa.table(
        {
            "i": pa.array(np.arange(n, dtype=np.int64)),
            "topic": topic,
            "partition": pa.array(np.array([r.partition for r in records], dtype=np.int32)),
            "offset": pa.array(np.array([r.offset for r in records], dtype=np.int64)),
            "v": column,
        }
    )


@dataclass(frozen=True)
class Staged:
    """The rows of the records SQL accepted, and the indexes of those it deferred."""

    events: pa.Table
    marks: pa.Table
    facts: pa.Table
    deferred: list[int]


class SqlIngest:
    """The SQL stage on a DuckDB connection of its own (in memory; one per thread: the
    projector runs it on its prefetch thread while the store merges the previous batch).
    It decides the source events of ``jobs_topic`` and the entity events of
    ``entities_topic`` (an event of another type there, or a record of another topic, is
    deferred: project() dead-letters what does not belong)."""

    def __init__(self, jobs_topic: str, entities_topic: str) -> None:
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        # a batch's parse is a few hundred bytes a record; DuckDB's default limit (80% of
        # the machine) would let this buffer pool keep what the projection's needs
        self.con.execute("SET memory_limit = ?", [STAGE_MEMORY_LIMIT])
        for macro in _MACROS:
            self.con.execute(macro)
        self._accept = _accept_sql("acc_jobs", jobs_topic, JOBS_SHAPE) + _accept_sql(
            "acc_entities", entities_topic, ENTITIES_SHAPE
        )

    def stage(self, records: Sequence[Record]) -> Staged:
        con = self.con
        con.register("recs", records_table(records))
        try:
            for sql in self._accept:
                con.execute(sql)
            events = con.sql(_EVENTS).to_arrow_table()
            marks = con.sql(_MARKS).to_arrow_table()
            facts = con.sql(_FACTS).to_arrow_table()
            deferred = con.execute(
                "SELECT i FROM recs ANTI JOIN (SELECT i FROM acc_jobs UNION ALL "
                "SELECT i FROM acc_entities) USING (i) ORDER BY i"
            ).fetchnumpy()["i"]
        finally:
            con.unregister("recs")
            # the batch's tables go now, not when the next batch replaces them
            for table in ("parsed", "acc_jobs", "acc_entities"):
                con.execute(f"DROP TABLE IF EXISTS {table}")
        return Staged(
            events.select(list(EVENT_COLUMNS)),
            marks.select(list(MARK_COLUMNS)),
            facts.select(list(FACT_COLUMNS)),
            [int(k) for k in deferred],
        )

    def close(self) -> None:
        self.con.close()


SQL_INGEST_FROM = 200
"""Records from which a batch is decoded in DuckDB: below it the statements' fixed cost
(a few ms) is more than the ~35 us a record of pydantic and project()."""
DECODE_CHUNK = 5000


def decoded(records: Sequence[Record]) -> Iterator[tuple[Record, AnyEvent | Rejected]]:
    """Records with their decoded events, decoded a chunk at a time: the validated models of
    a whole batch held at once were most of the projector's memory (they are dropped as soon
    as their chunk is projected)."""
    for start in range(0, len(records), DECODE_CHUNK):
        chunk = records[start : start + DECODE_CHUNK]
        decoded = decode_many([r.value for r in chunk], [r.key for r in chunk])
        yield from zip(chunk, decoded, strict=True)


def project_batch(
    records: Sequence[Record],
    allowed: Mapping[str, frozenset[str]],
    ingest: SqlIngest | None,
    *,
    sql_from: int = SQL_INGEST_FROM,
) -> Batch:
    """Decode, validate and project a batch: in DuckDB through ``ingest`` when the batch has
    at least ``sql_from`` records, the records it defers (or the whole of a smaller batch,
    or every batch without ``ingest``) through the models and project()."""
    if ingest is None or len(records) < sql_from:
        return Batch.of(project(decoded(records), dict(allowed)))
    staged = ingest.stage(records)
    rest = Batch.of(project(decoded([records[k] for k in staged.deferred]), dict(allowed)))
    return Batch(
        pa.concat_tables([staged.events.cast(rest.events.schema), rest.events]),
        pa.concat_tables([staged.marks.cast(rest.marks.schema), rest.marks]),
        pa.concat_tables([staged.facts.cast(rest.facts.schema), rest.facts]),
        rest.dead,
    )
