"""SageMaker's Search for experiments, trials and trial components, and ListTags: pure
functions of a DuckDB connection, translated to one SQL query each (no per-record Python:
only the page returned is shaped into records).

``search(con, resource, expression, ...)``
    ``resource``: ``Experiment``, ``ExperimentTrial`` or ``ExperimentTrialComponent``.
    ``expression``: SageMaker's ``SearchExpression`` (``Filters``, ``NestedFilters``,
    ``SubExpressions``, ``Operator`` ``And`` / ``Or``). Returns ``{"Results": [{"Experiment" |
    "Trial" | "TrialComponent": record}], "NextToken": ...}``.

``list_tags(con, arn, ...)``
    ListTags of a lineage or experiment entity, or of a job (its ``JobCreated`` tags).

Property names (a filter's ``Name``, and ``SortBy``), per resource:

- every resource: its name and ARN (``ExperimentName`` / ``TrialName`` /
  ``TrialComponentName``, ``...Arn``), ``DisplayName``, ``CreationTime``,
  ``LastModifiedTime``, ``Tags.<key>``; experiments ``Description``; trials
  ``ExperimentName`` and ``MetadataProperties.<CommitId|Repository|GeneratedBy|ProjectId>``;
- trial components: ``Source.SourceArn``, ``Source.SourceType``, ``Status.PrimaryStatus``,
  ``Status.Message``, ``StartTime``, ``EndTime``, ``Parameters.<name>``,
  ``Metrics.<name>.<Max|Min|Last|Count|Avg|StdDev>`` (``Metrics.<name>`` alone: ``Last``),
  ``InputArtifacts.<name>.<Value|MediaType>`` / ``OutputArtifacts...`` (``.Value`` when left
  out), ``MetadataProperties.*``, and the list ``Parents`` (``Parents.TrialName``,
  ``Parents.ExperimentName``);
- trials: the list ``TrialComponentSummaries`` (``.TrialComponentName``,
  ``.TrialComponentArn``).

Decisions (SageMaker leaves these open, or mlineage differs on purpose):

- Operators follow SageMaker's table: ``Equals``, ``NotEquals``, ``Exists``, ``NotExists``
  on every property; ``GreaterThan``, ``GreaterThanOrEqualTo``, ``LessThan``,
  ``LessThanOrEqualTo`` on numbers and times only; ``Contains`` and ``In`` (comma-separated
  values) on text only. An operator a property does not take is refused, naming both. A
  filter with a ``Value`` and no ``Operator`` means ``Equals``.
- ``NotEquals`` also matches a record without the property (``Tags.team NotEquals a``
  matches untagged records); on a list (``Parents``) it means no element equals.
- ``Contains`` is case-insensitive; ``Equals`` and ``In`` are exact (trial component ARNs
  and names compare case-insensitively, as they are everywhere else). ``Contains`` may be
  used any number of times.
- Times in a ``Value`` are ISO 8601 (a time without a zone is UTC) or epoch seconds.
  Numbers compare as numbers; ``Parameters.<name>`` compares a number parameter with a
  numeric ``Value`` as a number and a string parameter as text.
- ``NestedFilters`` apply to a list property (``Parents``, ``TrialComponentSummaries``):
  all their filters must hold for one element. ``SubExpressions`` nest at most
  :data:`MAX_DEPTH` levels deep, and an expression holds at most :data:`MAX_FILTERS`
  filters in all (SageMaker's per-list limits of 20 allow millions).
- ``Metrics.<name>.<Stat>`` reads the last dotted part as the statistic when it is one, so
  a metric whose own name ends in ``.Max`` (or another statistic) is reached only as
  ``Metrics.<name>.Max.Last``.
- ``SortBy`` takes any property but the lists (default ``LastModifiedTime``,
  ``Descending``); ties are broken by ARN. A missing sort value sorts as the least value; a
  parameter sorts by its number value, then by its text.
- ``MaxResults`` is 1..100 (default 10; ``max_results_cap`` lifts the cap); ``NextToken``
  carries the offset and a digest of the request, as in List*.
- A caller sees only the records of the accounts it sees (``visible_accounts``), and among
  a trial component's ``Parents`` (and a trial's ``TrialComponentSummaries``) only those
  of accounts it sees; filters on them see the same.
- ``ListTags`` returns the tags sorted by key, at most ``max_results`` (>= 50) a page.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from mlineage import arns
from mlineage.errors import NotFoundError
from mlineage.query import catalog
from mlineage.query.errors import QueryError
from mlineage.query.paging import decode_token, encode_token

RESOURCES: dict[str, str] = {
    "Experiment": "experiment",
    "ExperimentTrial": "trial",
    "ExperimentTrialComponent": "trial_component",
}
"""Search resources served, and the kind each returns."""
RECORD_KEYS = {"experiment": "Experiment", "trial": "Trial", "trial_component": "TrialComponent"}
OPERATORS = (
    "Equals",
    "NotEquals",
    "GreaterThan",
    "GreaterThanOrEqualTo",
    "LessThan",
    "LessThanOrEqualTo",
    "Contains",
    "Exists",
    "NotExists",
    "In",
)
MAX_DEPTH = 5
MAX_FILTERS = 100
MAX_RESULTS = 100
DEFAULT_RESULTS = 10

_COMPARE = {
    "GreaterThan": ">",
    "GreaterThanOrEqualTo": ">=",
    "LessThan": "<",
    "LessThanOrEqualTo": "<=",
}
# a metric summary's statistics (Max -> max, ...) and MetadataProperties' members, as
# Describe names them
_STATS = {key: field for field, key in catalog.SUMMARY_FIELDS.items()}
_METADATA = catalog.METADATA_KEYS


def _pointer(*keys: str) -> str:
    """A JSON pointer to ``keys`` (any characters: ``~`` and ``/`` escaped), as a SQL string
    literal: a constant path lets DuckDB parse it once, where a bound one was parsed per row
    (a third of a search's time)."""
    path = "".join("/" + k.replace("~", "~0").replace("/", "~1") for k in keys)
    if "\x00" in path or any(0xD800 <= ord(c) <= 0xDFFF for c in path):
        raise QueryError("a property name cannot hold NUL or a lone surrogate")
    return "'" + path.replace("'", "''") + "'"


@dataclass
class _Sql:
    """A SQL fragment and its parameters, in the order of its ``?``."""

    text: str
    params: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class _Prop:
    """A property of a record: a SQL expression over ``t`` (or a list element's alias) of a
    type: ``text``, ``number``, ``time`` or ``parameter`` (text or number)."""

    type: str
    expr: str
    fold: bool = False  # compare in lower case (trial component names and ARNs)
    number: _Prop | None = None  # a parameter's number value


@dataclass(frozen=True)
class _ListProp:
    """A list property (``Parents``): the elements of each record as one list of structs,
    joined to the records once (as ``alias.items``), each filter a lambda over the list
    (``e`` an element). One EXISTS subquery per filter made a few hundred filters under
    ``Or`` take minutes."""

    alias: str
    aggregate: str  # SELECT k (the record's ARN), items (the list) ...; {scope}: visibility
    owner: str  # the element table alias whose account a caller must see
    members: Mapping[str, _Prop]

    def join(self, seen: str | None) -> str:
        scope = "" if seen is None else f" AND list_contains({seen}, {self.owner}.account_id)"
        return (
            f" LEFT JOIN ({self.aggregate.format(scope=scope)}) {self.alias} "
            f"ON {self.alias}.k = t.arn"
        )


_TC_PARENTS = _ListProp(
    "l_parents",
    "SELECT j.trial_component_arn AS k, list({{'trial_name': r.trial_name, "
    "'experiment_name': r.experiment_name}}) AS items FROM trial_component_trials j "
    "JOIN trials r ON r.arn = j.trial_arn AND r.live WHERE j.live{scope} GROUP BY 1",
    "r",
    {
        "TrialName": _Prop("text", "e.trial_name"),
        "ExperimentName": _Prop("text", "e.experiment_name"),
    },
)
_TRIAL_COMPONENTS = _ListProp(
    "l_components",
    "SELECT j.trial_arn AS k, list({{'trial_component_name': c.trial_component_name, "
    "'arn': c.arn}}) AS items FROM trial_component_trials j JOIN trial_components c "
    "ON c.arn = j.trial_component_arn AND c.live WHERE j.live{scope} GROUP BY 1",
    "c",
    {
        "TrialComponentName": _Prop("text", "e.trial_component_name", fold=True),
        "TrialComponentArn": _Prop("text", "e.arn", fold=True),
    },
)
_LISTS: dict[str, dict[str, _ListProp]] = {
    "experiment": {},
    "trial": {"TrialComponentSummaries": _TRIAL_COMPONENTS},
    "trial_component": {"Parents": _TC_PARENTS},
}

_TIMES = {
    "CreationTime": _Prop("time", "t.created_at"),
    "LastModifiedTime": _Prop("time", "t.modified_at"),
}
_FIXED: dict[str, dict[str, _Prop]] = {
    "experiment": {
        "ExperimentName": _Prop("text", "t.experiment_name"),
        "ExperimentArn": _Prop("text", "t.arn"),
        "DisplayName": _Prop("text", "t.display_name"),
        "Description": _Prop("text", "t.description"),
        **_TIMES,
    },
    "trial": {
        "TrialName": _Prop("text", "t.trial_name"),
        "TrialArn": _Prop("text", "t.arn"),
        "DisplayName": _Prop("text", "t.display_name"),
        "ExperimentName": _Prop("text", "t.experiment_name"),
        **_TIMES,
    },
    "trial_component": {
        "TrialComponentName": _Prop("text", "t.trial_component_name", fold=True),
        "TrialComponentArn": _Prop("text", "t.arn", fold=True),
        "DisplayName": _Prop("text", "t.display_name"),
        "Source.SourceArn": _Prop("text", "t.source_arn"),
        "Source.SourceType": _Prop("text", "t.source_type"),
        "Status.PrimaryStatus": _Prop("text", "t.status"),
        "Status.Message": _Prop("text", "t.status_message"),
        "StartTime": _Prop("time", "t.start_time"),
        "EndTime": _Prop("time", "t.end_time"),
        **_TIMES,
    },
}
_HAS_METADATA = {"trial", "trial_component"}


def _json_text(column: str, *keys: str) -> _Prop:
    return _Prop("text", f"json_extract_string({column}, {_pointer(*keys)})")


def _json_number(column: str, *keys: str) -> str:
    """The number at ``keys`` in ``column`` (NULL when it is not one)."""
    return f"TRY_CAST(json_extract_string({column}, {_pointer(*keys)}) AS DOUBLE)"


def _property(kind: str, name: str) -> _Prop:
    """The scalar property ``name`` of ``kind``'s records (QueryError when there is none)."""
    fixed = _FIXED[kind].get(name)
    if fixed is not None:
        return fixed
    head, _, rest = name.partition(".")
    if head == "Tags" and rest:
        return _json_text("t.tags", rest)
    if head == "MetadataProperties" and kind in _HAS_METADATA and rest in _METADATA:
        return _Prop("text", f"json_extract_string(t.metadata, '$.{_METADATA[rest]}')")
    if kind == "trial_component" and rest:
        if head == "Parameters":
            number = _Prop("number", _json_number("t.parameters", rest, "number_value"))
            text = _json_text("t.parameters", rest, "string_value")
            return _Prop("parameter", text.expr, number=number)
        if head == "Metrics":
            metric, _, stat = rest.rpartition(".")
            if stat not in _STATS or not metric:
                metric, stat = rest, "Last"
            if stat == "Last":
                # a metric given as a final value is a plain number: its Last
                last = _json_number("t.metrics", metric, "last")
                return _Prop("number", f"coalesce({last}, {_json_number('t.metrics', metric)})")
            return _Prop("number", _json_number("t.metrics", metric, _STATS[stat]))
        if head in ("InputArtifacts", "OutputArtifacts"):
            column = "t.input_artifacts" if head == "InputArtifacts" else "t.output_artifacts"
            artifact, _, member = rest.rpartition(".")
            if member not in ("Value", "MediaType") or not artifact:
                artifact, member = rest, "Value"
            return _json_text(column, artifact, "value" if member == "Value" else "media_type")
    lists = _LISTS[kind]
    if head in lists:
        raise QueryError(
            f"{name}: {head} is a list: filter it with a Name of {head}.<member> "
            f"({', '.join(lists[head].members)}); it cannot sort"
        )
    known = [*_FIXED[kind], "Tags.<key>"]
    if kind in _HAS_METADATA:
        known.append("MetadataProperties.<CommitId|Repository|GeneratedBy|ProjectId>")
    if kind == "trial_component":
        known += [
            "Parameters.<name>",
            "Metrics.<name>.<Max|Min|Last|Count|Avg|StdDev>",
            "InputArtifacts.<name>.Value",
            "OutputArtifacts.<name>.Value",
        ]
    known += [f"{h}.<{'|'.join(lp.members)}>" for h, lp in lists.items()]
    raise QueryError(
        f"{name!r} is not a property mlineage searches for {RECORD_KEYS[kind]}: use one of "
        + ", ".join(known)
    )


# -- values ------------------------------------------------------------------------------------


def _number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise QueryError(f"{name}: {value!r} is not a number")
    return number


def _time(value: str, name: str) -> datetime:
    text = value.strip()
    try:
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return datetime.fromtimestamp(float(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise QueryError(
            f"{name}: {value!r} is not a time (ISO 8601, such as 2026-01-31T12:00:00Z, or "
            "epoch seconds)"
        ) from exc


def _compare(prop: _Prop, operator: str, value: str, name: str) -> _Sql:
    """``prop <operator> value`` as SQL for one value (not Exists/NotExists)."""
    e = prop.expr
    if prop.type == "parameter" and prop.number is not None:
        if operator in _COMPARE:
            return _compare(prop.number, operator, value, name)
        if operator == "Equals":
            text = _Sql(f"{e} = ?", [value])
            try:
                number = _number(value, name)
            except QueryError:
                return text
            n = prop.number
            return _Sql(f"({text.text} OR {n.expr} = ?)", [*text.params, number])
        return _compare(_Prop("text", e), operator, value, name)
    if operator in ("Contains", "In") and prop.type != "text":
        raise QueryError(f"{name}: {operator} applies to text, not to a {prop.type}")
    if operator in _COMPARE and prop.type == "text":
        raise QueryError(
            f"{name}: {operator} applies to numbers and times, not to text: use Equals, "
            "NotEquals, Contains or In"
        )
    if operator == "Contains":
        return _Sql(f"contains(lower({e}), ?)", [value.lower()])
    if operator == "In":
        values = [v.strip() for v in value.split(",") if v.strip()]
        if prop.fold:
            values = [v.lower() for v in values]
        column = f"lower({e})" if prop.fold else e
        return _Sql(f"list_contains(?::VARCHAR[], {column})", [values])
    typed: Any
    if prop.type == "number":
        typed = _number(value, name)
    elif prop.type == "time":
        typed = _time(value, name)
    else:
        typed = value.lower() if prop.fold else value
    column = f"lower({e})" if prop.fold else e
    symbol = _COMPARE.get(operator, "=")
    return _Sql(f"{column} {symbol} ?", [typed])


def _filter(prop: _Prop, flt: Mapping[str, Any], name: str) -> _Sql:
    operator = flt.get("Operator") or "Equals"
    if operator not in OPERATORS:
        raise QueryError(f"{name}: Operator must be one of {', '.join(OPERATORS)}")
    exists = _Sql(f"{prop.expr} IS NOT NULL")
    if prop.number is not None:  # a parameter: a string or a number value
        n = prop.number
        exists = _Sql(f"({exists.text} OR {n.expr} IS NOT NULL)")
    if operator == "Exists":
        return exists
    if operator == "NotExists":
        return _Sql(f"NOT {exists.text}", exists.params)
    value = flt.get("Value")
    if not isinstance(value, str) or not value:
        raise QueryError(f"{name}: {operator} needs a Value")
    if operator == "NotEquals":
        eq = _compare(prop, "Equals", value, name)
        return _Sql(f"NOT coalesce({eq.text}, false)", eq.params)
    return _compare(prop, operator, value, name)


class _Builder:
    """Turns a SearchExpression into a WHERE condition for ``kind``'s records ``t``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.lists: dict[str, _ListProp] = {}  # the list properties the expression uses
        self.filters = 0

    def _element(self, lp: _ListProp, conditions: list[_Sql]) -> _Sql:
        self.lists[lp.alias] = lp
        where = " AND ".join(f"({c.text})" for c in conditions)
        params = [p for c in conditions for p in c.params]
        return _Sql(
            f"coalesce(len(list_filter({lp.alias}.items, lambda e: {where})), 0) > 0", params
        )

    def _list_filter(self, head: str, member: str, flt: Mapping[str, Any], name: str) -> _Sql:
        lp = _LISTS[self.kind][head]
        prop = lp.members.get(member)
        if prop is None:
            raise QueryError(f"{name}: {head} has the members {', '.join(lp.members)}")
        operator = flt.get("Operator") or "Equals"
        # on a list, the negative operators mean "no element ..."
        if operator in ("NotEquals", "NotExists"):
            positive = {"NotEquals": "Equals", "NotExists": "Exists"}[operator]
            inner = self._element(lp, [_filter(prop, {**flt, "Operator": positive}, name)])
            return _Sql(f"NOT {inner.text}", inner.params)
        return self._element(lp, [_filter(prop, flt, name)])

    def _count(self) -> None:
        self.filters += 1
        if self.filters > MAX_FILTERS:
            raise QueryError(
                f"a SearchExpression has at most {MAX_FILTERS} filters in all (mlineage's "
                "limit: each is a condition of one query)"
            )

    def filter(self, flt: Mapping[str, Any]) -> _Sql:
        self._count()
        name = flt.get("Name")
        if not isinstance(name, str) or not name:
            raise QueryError("a filter needs a Name")
        head, _, member = name.partition(".")
        if head in _LISTS[self.kind] and member:
            return self._list_filter(head, member, flt, name)
        return _filter(_property(self.kind, name), flt, name)

    def _equal_any(self, filters: list[Any]) -> list[_Sql]:
        """Under ``Or``, the ``Equals`` filters of one text property as one condition
        (``Name`` is one of the values), taken out of ``filters``: the SDK asks for trial
        components by ARN that way, and one list test is cheaper than a comparison each."""
        groups: dict[str, tuple[_Prop, list[str]]] = {}
        for flt in list(filters):
            name, value = flt.get("Name"), flt.get("Value")
            if (flt.get("Operator") or "Equals") != "Equals" or not isinstance(value, str):
                continue
            if (
                not isinstance(name, str)
                or not value
                or name.partition(".")[0] in _LISTS[self.kind]
            ):
                continue
            prop = _property(self.kind, name)
            if prop.type != "text":
                continue
            self._count()
            filters.remove(flt)
            groups.setdefault(name, (prop, []))[1].append(value.lower() if prop.fold else value)
        out = []
        for prop, values in groups.values():
            column = f"lower({prop.expr})" if prop.fold else prop.expr
            out.append(_Sql(f"list_contains(?::VARCHAR[], {column})", [values]))
        return out

    def nested(self, nested: Mapping[str, Any]) -> _Sql:
        head = nested.get("NestedPropertyName")
        lists = _LISTS[self.kind]
        if head not in lists:
            raise QueryError(
                f"NestedPropertyName {head!r}: {RECORD_KEYS[self.kind]} has "
                + (f"the list {', '.join(lists)}" if lists else "no list to nest filters on")
            )
        lp = lists[head]
        conditions = []
        for flt in nested.get("Filters") or []:
            name = flt.get("Name")
            prefix, _, member = str(name).partition(".")
            if prefix != head or member not in lp.members:
                raise QueryError(
                    f"{name!r} in NestedFilters of {head}: use "
                    + ", ".join(f"{head}.{m}" for m in lp.members)
                )
            self._count()
            conditions.append(_filter(lp.members[member], flt, str(name)))
        if not conditions:
            raise QueryError(f"NestedFilters of {head} need at least one filter")
        return self._element(lp, conditions)

    def expression(self, expr: Mapping[str, Any], depth: int = 1) -> _Sql:
        if depth > MAX_DEPTH:
            raise QueryError(f"SubExpressions nest at most {MAX_DEPTH} levels deep")
        operator = expr.get("Operator") or "And"
        if operator not in ("And", "Or"):
            raise QueryError(f"a SearchExpression's Operator is And or Or, not {operator!r}")
        filters = list(expr.get("Filters") or [])
        parts = self._equal_any(filters) if operator == "Or" else []
        parts += [self.filter(f) for f in filters]
        parts += [self.nested(n) for n in expr.get("NestedFilters") or []]
        parts += [self.expression(s, depth + 1) for s in expr.get("SubExpressions") or []]
        if not parts:
            raise QueryError("a SearchExpression needs Filters, NestedFilters or SubExpressions")
        joined = f" {operator.upper()} ".join(f"({p.text})" for p in parts)
        return _Sql(f"({joined})", [v for p in parts for v in p.params])


# -- records -----------------------------------------------------------------------------------


def _members(
    con: duckdb.DuckDBPyConnection, sql: str, page: list[str], seen: str | None, owner: str
) -> dict[str, list[dict[str, Any]]]:
    """Rows of ``sql`` (its first column the page's ARN, ``{scope}`` where the caller's
    visibility of ``owner`` goes) grouped by that ARN, as dicts without empty values."""
    scope = "" if seen is None else f" AND list_contains({seen}, {owner}.account_id)"
    cur = con.execute(sql.format(scope=scope), [page])
    names = [d[0] for d in cur.description or []][1:]
    out: dict[str, list[dict[str, Any]]] = {}
    for key, *values in cur.fetchall():
        row = {n: v for n, v in zip(names, values, strict=True) if v is not None}
        out.setdefault(str(key), []).append(row)
    return out


def _parents(
    con: duckdb.DuckDBPyConnection, page: list[str], seen: str | None
) -> dict[str, list[dict[str, Any]]]:
    return _members(
        con,
        'SELECT j.trial_component_arn, r.trial_name AS "TrialName", r.experiment_name AS '
        '"ExperimentName" FROM trial_component_trials j JOIN trials r ON r.arn = j.trial_arn '
        "AND r.live WHERE j.live AND j.trial_component_arn IN (SELECT unnest(?)){scope} "
        "ORDER BY r.trial_name, r.arn",
        page,
        seen,
        "r",
    )


def _components(
    con: duckdb.DuckDBPyConnection, page: list[str], seen: str | None
) -> dict[str, list[dict[str, Any]]]:
    rows = _members(
        con,
        'SELECT j.trial_arn, c.trial_component_name AS "TrialComponentName", c.arn AS '
        '"TrialComponentArn", c.source_arn AS "SourceArn", c.source_type AS "SourceType", '
        'c.created_at AS "CreationTime" FROM trial_component_trials j JOIN trial_components c '
        "ON c.arn = j.trial_component_arn AND c.live WHERE j.live AND j.trial_arn IN "
        "(SELECT unnest(?)){scope} ORDER BY c.created_at, c.arn",
        page,
        seen,
        "c",
    )
    for summaries in rows.values():
        for summary in summaries:
            source = {k: summary.pop(k) for k in ("SourceArn", "SourceType") if k in summary}
            if source:
                summary["TrialComponentSource"] = source
            if "CreationTime" in summary:
                summary["CreationTime"] = catalog.timestamp(summary["CreationTime"])
    return rows


def search(
    con: duckdb.DuckDBPyConnection,
    resource: str,
    expression: Mapping[str, Any] | None = None,
    *,
    sort_by: str | None = None,
    sort_order: str | None = None,
    max_results: int | None = None,
    next_token: str | None = None,
    visible_accounts: Sequence[str] | None = None,
    max_results_cap: int = MAX_RESULTS,
) -> dict[str, Any]:
    """SageMaker's Search (see the module docstring). Raises :class:`QueryError` for a
    resource it does not serve, a property or operator it does not know, a bad value, sort
    or token."""
    kind = RESOURCES.get(resource)
    if kind is None:
        raise QueryError(
            f"Search serves the resources {', '.join(RESOURCES)}; mlineage keeps no {resource}"
        )
    seen = catalog.accounts_literal(visible_accounts)
    order = sort_order or "Descending"
    if order not in catalog.SORT_ORDERS:
        raise QueryError(f"SortOrder must be Ascending or Descending, got {order!r}")
    limit = DEFAULT_RESULTS if max_results is None else max_results
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= max_results_cap:
        raise QueryError(f"MaxResults must be an integer from 1 to {max_results_cap}")
    sort = _property(kind, sort_by or "LastModifiedTime")

    conditions = [_Sql("t.live")]
    if seen is not None:
        conditions.append(_Sql(f"list_contains({seen}, t.account_id)"))
    builder = _Builder(kind)
    if expression:
        conditions.append(builder.expression(expression))
    joins = "".join(lp.join(seen) for lp in builder.lists.values())
    digest = hashlib.sha256(
        json.dumps([resource, expression, sort_by, order], sort_keys=True, default=str).encode()
    ).hexdigest()[:24]
    offset = decode_token(next_token, digest) if next_token else 0

    direction = "ASC NULLS FIRST" if order == "Ascending" else "DESC NULLS LAST"
    where = " AND ".join(c.text for c in conditions)
    # a parameter sorts by its number value, then (for string parameters) by its text
    keys = [k for k in (sort.number, sort) if k is not None]
    order_by = "".join(f"{k.expr} {direction}, " for k in keys)
    # LIMIT and OFFSET as constants (checked integers): DuckDB then sorts only the filter's
    # and sort's columns and reads the rest for the page alone (with bound ones it read
    # every column of every match, most of a search's time)
    sql = (
        f"SELECT t.* FROM {catalog.table(kind)} t{joins} WHERE {where} "
        f"ORDER BY {order_by} t.arn {direction} "
        f"LIMIT {int(limit) + 1} OFFSET {int(offset)}"
    )
    params = [p for c in conditions for p in c.params]
    try:
        rows = catalog.fetch_rows(con, sql, params)
    except duckdb.ConversionException as exc:
        raise QueryError(f"a filter's Value cannot be compared: {exc}") from exc
    except duckdb.BinderException as exc:  # a limit of DuckDB's (the filters cap keeps clear)
        raise QueryError(f"the SearchExpression is too complex: {exc}") from exc
    page = [str(r["arn"]) for r in rows[:limit]]
    records = [catalog.record(kind, r) for r in rows[:limit]]
    if page:
        extra: dict[str, list[dict[str, Any]]] = {}
        if kind == "trial_component":
            extra = _parents(con, page, seen)
            member = "Parents"
        elif kind == "trial":
            extra = _components(con, page, seen)
            member = "TrialComponentSummaries"
        for arn, rec in zip(page, records, strict=True):
            if extra.get(arn):
                rec[member] = extra[arn]
    out: dict[str, Any] = {"Results": [{RECORD_KEYS[kind]: rec} for rec in records]}
    if len(rows) > limit:
        out["NextToken"] = encode_token(offset + limit, digest)
    return out


# -- tags --------------------------------------------------------------------------------------

_TAGGED = {resource: kind for kind, resource in arns.ENTITY_RESOURCE.items()}
_JOB_RESOURCES = frozenset(arns.JOB_RESOURCE.values())


def tagged_kind(arn: str) -> str | None:
    """The kind of entity an ARN names for tags (``job`` for a job; None: no such kind)."""
    parsed = arns.parse_arn(arn)
    if parsed is None:
        return None
    if parsed.resource in _JOB_RESOURCES:
        return "job"
    return _TAGGED.get(parsed.resource)


def tag_keys(con: duckdb.DuckDBPyConnection, kind: str, arn: str) -> list[str]:
    """The tag keys of the live entity (empty when there is none)."""
    table, column = ("jobs", "job_arn") if kind == "job" else (catalog.table(kind), "arn")
    rows = con.execute(
        f"SELECT json_keys(tags) FROM {table} WHERE live AND {column} = ?", [arn]
    ).fetchall()
    return sorted(rows[0][0] or []) if rows else []


def stored_name(con: duckdb.DuckDBPyConnection, kind: str, arn: str) -> str | None:
    """The name of the live entity ``arn`` as it was written (None: there is none)."""
    rows = con.execute(
        f"SELECT {catalog.name_column(kind)} FROM {catalog.table(kind)} WHERE live AND arn = ?",
        [arn],
    ).fetchall()
    return str(rows[0][0]) if rows and rows[0][0] is not None else None


def list_tags(
    con: duckdb.DuckDBPyConnection,
    arn: str,
    *,
    max_results: int | None = None,
    next_token: str | None = None,
    visible_accounts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """ListTags: ``{"Tags": [{"Key", "Value"}], "NextToken"?}`` of the live entity or job
    ``arn`` (NotFoundError when there is none the caller sees)."""
    kind = tagged_kind(arn)
    if kind is None:
        raise NotFoundError(
            f"{arn}: mlineage keeps tags of artifacts, actions, contexts, experiments, "
            "trials, trial components and jobs"
        )
    seen = catalog.accounts_literal(visible_accounts)
    lookup = arn.lower() if kind == "trial_component" else arn
    table, column = ("jobs", "job_arn") if kind == "job" else (catalog.table(kind), "arn")
    scope = "" if seen is None else f" AND list_contains({seen}, account_id)"
    rows = con.execute(
        f"SELECT CAST(tags AS VARCHAR) FROM {table} WHERE live AND {column} = ?{scope}",
        [lookup],
    ).fetchall()
    if not rows:
        raise NotFoundError(f"{arn} not found")
    limit = 50 if max_results is None else max_results
    if limit < 1:
        raise QueryError("MaxResults must be at least 1")
    digest = hashlib.sha256(json.dumps(["tags", arn]).encode()).hexdigest()[:24]
    offset = decode_token(next_token, digest) if next_token else 0
    tags = catalog.tag_list(rows[0][0])
    out: dict[str, Any] = {"Tags": tags[offset : offset + limit]}
    if offset + limit < len(tags):
        out["NextToken"] = encode_token(offset + limit, digest)
    return out


__all__ = [
    "MAX_DEPTH",
    "RESOURCES",
    "list_tags",
    "search",
    "stored_name",
    "tag_keys",
    "tagged_kind",
]
