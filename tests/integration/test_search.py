"""Search (mlineage.query.search) against an oracle: random experiments, trials and trial
components in two accounts (some deleted, some joined), random SearchExpressions, and a
plain-Python evaluator of the documented semantics over the Describe* answers. The SQL
translation must return the same records, in the same order, page after page."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlineage import arns
from mlineage.events.models import canonical_time
from mlineage.projection.store import DuckDBStore
from mlineage.query import catalog, search
from mlineage.query.errors import QueryError
from tests.helpers import apply_batches, raw
from tests.helpers import event as make_event

A, B = "111111111111", "222222222222"
REGION = "us-east-1"
T0 = datetime(2026, 5, 1, tzinfo=UTC)
STATS = ("Max", "Min", "Last", "Count", "Avg", "StdDev")


def _event(entity_or_key: dict[str, Any], account: str, second: int, *, gone: bool = False) -> Any:
    e = make_event(
        "EntityDeleted" if gone else "EntityUpserted",
        entity_or_key if gone else {"entity": entity_or_key},
        account=account,
    )
    e["occurred_at"] = canonical_time(T0 + timedelta(seconds=second))
    return raw(e)


def world(seed: int) -> list[bytes]:
    """Random entities of both accounts, as the log's records, in time order."""
    rng = random.Random(seed)
    out: list[bytes] = []
    clock = iter(range(0, 10**6, 7))
    for account in (A, B):
        experiments = [f"exp-{i}" for i in range(rng.randint(1, 3))]
        for name in experiments:
            entity: dict[str, Any] = {"kind": "experiment", "experiment_name": name}
            if rng.random() < 0.7:
                entity["display_name"] = rng.choice(["Churn", "churn v2", "Vision"])
            if rng.random() < 0.5:
                entity["tags"] = [{"key": "team", "value": rng.choice(["ml", "data"])}]
            out.append(_event(entity, account, next(clock)))
        trials = [f"trial-{i}" for i in range(rng.randint(1, 4))]
        for name in trials:
            entity = {"kind": "trial", "trial_name": name}
            entity["experiment_name"] = rng.choice(experiments)
            if rng.random() < 0.5:
                entity["display_name"] = rng.choice(["Run A", "run b", "Baseline"])
            out.append(_event(entity, account, next(clock)))
        components = [f"TC-{i}" for i in range(rng.randint(3, 8))]
        for name in components:
            entity = {"kind": "trial_component", "trial_component_name": name}
            if rng.random() < 0.8:
                entity["display_name"] = rng.choice(["Training", "training step", "Eval"])
            if rng.random() < 0.7:
                entity["status"] = {"primary_status": rng.choice(["Completed", "Failed"])}
            if rng.random() < 0.5:
                entity["source"] = {
                    "source_arn": arns.job_arn(REGION, account, "TrainingJob", name.lower()),
                    "source_type": "SageMakerTrainingJob",
                }
            params: dict[str, Any] = {}
            if rng.random() < 0.7:
                params["lr"] = {"number_value": rng.choice([0.01, 0.1, 0.5, 1.0])}
            if rng.random() < 0.5:
                params["opt"] = {"string_value": rng.choice(["adam", "sgd"])}
            if params:
                entity["parameters"] = params
            metrics: dict[str, Any] = {}
            if rng.random() < 0.5:
                metrics["acc"] = rng.choice([0.5, 0.8, 0.9])
            if rng.random() < 0.5:
                values = [rng.choice([0.1, 0.2, 0.4]) for _ in range(rng.randint(1, 3))]
                mean = sum(values) / len(values)
                metrics["loss"] = {
                    "count": len(values),
                    "min": min(values),
                    "max": max(values),
                    "avg": mean,
                    "std_dev": math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)),
                    "last": values[-1],
                }
            if metrics:
                entity["metrics"] = metrics
            if rng.random() < 0.5:
                entity["input_artifacts"] = {
                    "train": {"value": rng.choice(["s3://b/train", "s3://b/train2"])}
                }
            if rng.random() < 0.5:
                entity["tags"] = [{"key": "team", "value": rng.choice(["ml", "data"])}]
            if rng.random() < 0.3:
                entity["start_time"] = canonical_time(T0 + timedelta(hours=rng.randint(0, 5)))
            out.append(_event(entity, account, next(clock)))
            for trial in rng.sample(trials, rng.randint(0, min(2, len(trials)))):
                join = {
                    "kind": "trial_component_trial",
                    "trial_component_name": name,
                    "trial_name": trial,
                }
                out.append(_event(join, account, next(clock)))
        # some deletes; a touch (new LastModifiedTime) on others
        if rng.random() < 0.5:
            gone = {"kind": "trial", "trial_name": rng.choice(trials)}
            out.append(_event(gone, account, next(clock), gone=True))
        victim = rng.choice(components)
        if rng.random() < 0.5:
            gone = {"kind": "trial_component", "trial_component_name": victim}
            out.append(_event(gone, account, next(clock), gone=True))
        for name in rng.sample(components, 2):
            touch: dict[str, Any] = {"kind": "trial_component", "trial_component_name": name}
            touch["tags_to_remove"] = ["team"]
            out.append(_event(touch, account, next(clock)))
    return out


# -- the oracle --------------------------------------------------------------------------------

_ARN_KEY = {"experiment": "ExperimentArn", "trial": "TrialArn"}
_ARN_KEY["trial_component"] = "TrialComponentArn"


def _records(con: Any, kind: str, visible: list[str] | None) -> list[dict[str, Any]]:
    """Every record a caller sees, from Describe and List (not from Search's SQL)."""
    summaries = catalog.list_entities(con, kind, visible_accounts=visible)
    out = []
    for summary in summaries[catalog.SUMMARY_KEYS[kind]]:
        arn = summary[_ARN_KEY[kind]]
        rec = catalog.describe(con, arn, kind, visible_accounts=visible)
        if kind == "trial_component":
            trials = catalog.list_entities(
                con,
                "trial",
                trial_component_name=rec["TrialComponentName"],
                visible_accounts=visible,
            )["TrialSummaries"]
            # the listing matches by name across accounts: keep the component's own joins
            parents = []
            for t in trials:
                trial = catalog.describe(con, t["TrialArn"], "trial", visible_accounts=visible)
                members = catalog.list_entities(
                    con, "trial_component", trial_name=trial["TrialName"], visible_accounts=visible
                )["TrialComponentSummaries"]
                if any(m["TrialComponentArn"] == arn for m in members) and (
                    t["TrialArn"].split(":")[4] == arn.split(":")[4]
                ):
                    parents.append(
                        {"TrialName": trial["TrialName"], "ExperimentName": trial["ExperimentName"]}
                    )
            rec["_parents"] = parents
        if kind == "trial":
            members = catalog.list_entities(
                con, "trial_component", trial_name=rec["TrialName"], visible_accounts=visible
            )["TrialComponentSummaries"]
            rec["_members"] = [
                m for m in members if m["TrialComponentArn"].split(":")[4] == arn.split(":")[4]
            ]
        out.append(rec)
    return out


def _value(rec: dict[str, Any], name: str) -> Any:
    """The value of a scalar property in a record (None: it has none)."""
    head, _, rest = name.partition(".")
    if head == "Tags":
        return {t["Key"]: t["Value"] for t in rec.get("Tags", [])}.get(rest)
    if head == "Parameters":
        p = rec.get("Parameters", {}).get(rest)
        return None if p is None else ("param", p.get("StringValue"), p.get("NumberValue"))
    if head == "Metrics":
        metric, _, stat = rest.rpartition(".")
        for m in rec.get("Metrics", []):
            if m["MetricName"] == metric:
                return m.get(stat)
        return None
    if head == "InputArtifacts":
        artifact, _, member = rest.rpartition(".")
        return rec.get("InputArtifacts", {}).get(artifact, {}).get(member)
    if head in ("Source", "Status"):
        return (rec.get(head) or {}).get(rest)
    return rec.get(name)


def _typed(prop: Any, value: str) -> Any:
    if isinstance(prop, datetime):
        return datetime.fromisoformat(value)
    if isinstance(prop, float | int):
        return float(value)
    return value


def _scalar(prop: Any, op: str, value: str | None, fold: bool) -> bool:
    if op == "Exists":
        return prop is not None
    if op == "NotExists":
        return prop is None
    assert value is not None
    if op == "NotEquals":
        return not _scalar(prop, "Equals", value, fold)
    if prop is None:
        return False
    if isinstance(prop, tuple):  # a parameter
        _, text, number = prop
        if op == "Equals":
            numeric = _is_number(value)
            return text == value or (numeric and number is not None and number == float(value))
        if op in ("Contains", "In"):
            return text is not None and _scalar(text, op, value, False)
        return number is not None and _scalar(float(number), op, value, False)
    if fold:
        prop, value = prop.lower(), value.lower()
    if op == "Contains":
        return value.lower() in prop.lower()
    if op == "In":
        return prop in [v.strip() for v in value.split(",")]
    typed = _typed(prop, value)
    return bool(
        {
            "Equals": prop == typed,
            "GreaterThan": prop > typed,
            "GreaterThanOrEqualTo": prop >= typed,
            "LessThan": prop < typed,
            "LessThanOrEqualTo": prop <= typed,
        }[op]
    )


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


LISTS = {"Parents": "_parents", "TrialComponentSummaries": "_members"}
FOLD = {"TrialComponentName", "TrialComponentArn"}


def _matches(rec: dict[str, Any], expr: dict[str, Any]) -> bool:
    results = []
    for f in expr.get("Filters", []):
        head, _, member = f["Name"].partition(".")
        op = f.get("Operator", "Equals")
        if head in LISTS:
            elements = rec[LISTS[head]]
            positive = {"NotEquals": "Equals", "NotExists": "Exists"}.get(op, op)
            hit = any(
                _scalar(el.get(member), positive, f.get("Value"), member in FOLD) for el in elements
            )
            results.append(not hit if positive != op else hit)
        else:
            results.append(_scalar(_value(rec, f["Name"]), op, f.get("Value"), f["Name"] in FOLD))
    for n in expr.get("NestedFilters", []):
        elements = rec[LISTS[n["NestedPropertyName"]]]
        results.append(
            any(
                all(
                    _scalar(
                        el.get(f["Name"].partition(".")[2]),
                        f.get("Operator", "Equals"),
                        f.get("Value"),
                        f["Name"].partition(".")[2] in FOLD,
                    )
                    for f in n["Filters"]
                )
                for el in elements
            )
        )
    results += [_matches(rec, s) for s in expr.get("SubExpressions", [])]
    return all(results) if expr.get("Operator", "And") == "And" else any(results)


# -- random expressions ------------------------------------------------------------------------

TEXT = {
    "experiment": ["ExperimentName", "DisplayName", "Tags.team", "Description"],
    "trial": ["TrialName", "DisplayName", "ExperimentName", "Tags.team"],
    "trial_component": [
        "TrialComponentName",
        "DisplayName",
        "Status.PrimaryStatus",
        "Source.SourceType",
        "Tags.team",
        "InputArtifacts.train.Value",
        "Parents.TrialName",
        "Parents.ExperimentName",
    ],
}
NUMBERS = ["Parameters.lr", "Metrics.acc.Last", *(f"Metrics.loss.{s}" for s in STATS)]
WORDS = ["Churn", "churn", "Training", "training", "ml", "data", "Completed", "Failed",
         "exp-0", "exp-1", "trial-0", "trial-1", "tc-1", "TC-2", "s3://b/train", "Eval",
         "Run A", "SageMakerTrainingJob", "adam"]  # fmt: skip


def _observed(rng: random.Random, records: list[dict[str, Any]], name: str) -> str | None:
    """A value some record has for the property (so that filters match some records)."""
    head, _, member = name.partition(".")
    values = []
    for rec in records:
        if head in LISTS:
            values += [el.get(member) for el in rec[LISTS[head]]]
        else:
            values.append(_value(rec, name))
    texts = [v for v in values if isinstance(v, str)]
    return rng.choice(texts) if texts else None


def _random_filter(rng: random.Random, kind: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    choice = rng.random()
    if kind == "trial_component" and choice < 0.3:
        name = rng.choice([*NUMBERS, "Parameters.opt"])
        op = rng.choice(["Equals", "NotEquals", "GreaterThan", "LessThanOrEqualTo", "Exists"])
        if name == "Parameters.opt":
            op = rng.choice(["Equals", "NotEquals", "Contains", "In", "NotExists"])
            return {"Name": name, "Operator": op, "Value": rng.choice(["adam", "sgd", "ad"])}
        return {"Name": name, "Operator": op, "Value": rng.choice(["0.1", "0.5", "0.8", "2"])}
    if choice < 0.45:
        name = rng.choice(["CreationTime", "LastModifiedTime"])
        when = T0 + timedelta(seconds=rng.randint(0, 200))
        op = rng.choice(["GreaterThan", "LessThan", "GreaterThanOrEqualTo", "Equals"])
        return {"Name": name, "Operator": op, "Value": when.isoformat()}
    name = rng.choice(TEXT[kind])
    op = rng.choice(["Equals", "NotEquals", "Contains", "In", "Exists", "NotExists"])
    value = rng.choice(WORDS)
    seen = _observed(rng, records, name)
    if seen is not None and rng.random() < 0.7:
        value = seen if op != "Contains" else seen[1:4] or seen
    if op == "In":
        value = ",".join([*rng.sample(WORDS, 2), value])
    if op in ("Exists", "NotExists"):
        return {"Name": name, "Operator": op}
    return {"Name": name, "Operator": op, "Value": value}


def random_expression(
    rng: random.Random, kind: str, records: list[dict[str, Any]], depth: int = 1
) -> dict[str, Any]:
    count = rng.randint(1, 3)
    expr: dict[str, Any] = {"Filters": [_random_filter(rng, kind, records) for _ in range(count)]}
    if count > 1 or rng.random() < 0.3:
        expr["Operator"] = rng.choice(["And", "Or", "Or"])
    if kind == "trial_component" and rng.random() < 0.3:
        expr["NestedFilters"] = [
            {
                "NestedPropertyName": "Parents",
                "Filters": [
                    {
                        "Name": "Parents.TrialName",
                        "Operator": "Equals",
                        "Value": rng.choice(["trial-0", "trial-1", "trial-2"]),
                    },
                    {"Name": "Parents.ExperimentName", "Value": rng.choice(["exp-0", "exp-1"])},
                ],
            }
        ]
    if depth < 3 and rng.random() < 0.4:
        expr["SubExpressions"] = [
            random_expression(rng, kind, records, depth + 1) for _ in range(2)
        ]
    return expr


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Any]]:
    stores = {}
    for seed in range(3):
        db = DuckDBStore(Path(tmp_path_factory.mktemp(f"w{seed}")) / "lineage.duckdb")
        apply_batches(db, world(seed), [5, 17, 3])
        stores[seed] = db
    yield stores
    for db in stores.values():
        db.close()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("resource", list(search.RESOURCES))
@pytest.mark.parametrize("visible", [None, [A], [A, B]], ids=["operator", "A", "A+B"])
def test_search_matches_the_oracle(
    worlds: dict[int, Any], seed: int, resource: str, visible: list[str] | None
) -> None:
    con = worlds[seed].con
    kind = search.RESOURCES[resource]
    records = _records(con, kind, visible)
    rng = random.Random(f"{seed}-{resource}-{visible}")
    for _ in range(25):
        expr = random_expression(rng, kind, records)
        sort_by = rng.choice(["CreationTime", "LastModifiedTime", None, *SORTS[kind]])
        order = rng.choice(["Ascending", "Descending"])
        got, token = [], None
        while True:
            page = search.search(
                con, resource, expr, sort_by=sort_by, sort_order=order, max_results=3,
                next_token=token, visible_accounts=visible,
            )  # fmt: skip
            got += [r[search.RECORD_KEYS[kind]] for r in page["Results"]]
            token = page.get("NextToken")
            if token is None:
                break
        expected = sorted(
            (r for r in records if _matches(r, expr)),
            key=lambda r: (*_sort_key(r, sort_by or "LastModifiedTime"), r[_ARN_KEY[kind]]),
            reverse=order == "Descending",
        )
        assert [r[_ARN_KEY[kind]] for r in got] == [r[_ARN_KEY[kind]] for r in expected], expr
        # the records are the Describe answers, with the parents / members the caller sees
        for rec, want in zip(got, expected, strict=True):
            core = {k: v for k, v in want.items() if not k.startswith("_")}
            assert {k: v for k, v in rec.items() if k not in LIST_KEYS} == core
            if kind == "trial_component":
                assert sorted(map(str, rec.get("Parents", []))) == sorted(
                    map(str, want["_parents"])
                )
            if kind == "trial":
                names = [m["TrialComponentArn"] for m in rec.get("TrialComponentSummaries", [])]
                assert sorted(names) == sorted(m["TrialComponentArn"] for m in want["_members"])


LIST_KEYS = {"Parents", "TrialComponentSummaries"}
SORTS = {
    "experiment": ["ExperimentName", "DisplayName", "Tags.team"],
    "trial": ["TrialName", "DisplayName", "ExperimentName"],
    "trial_component": [
        "DisplayName",
        "Parameters.lr",
        "Parameters.opt",
        "Metrics.acc.Last",
        "Metrics.loss.Max",
        "Status.PrimaryStatus",
        "StartTime",
    ],
}


def _sort_key(rec: dict[str, Any], name: str) -> tuple[Any, ...]:
    """The documented order: a missing value is the least; a parameter sorts by its number
    value, then by its text."""
    value = _value(rec, name)
    if name.startswith("Parameters."):
        _, text, number = value or (None, None, None)
        return ((number is not None, number or 0.0), (text is not None, text or ""))
    if isinstance(value, str) and name.partition(".")[0] in FOLD:
        value = value.lower()
    return ((value is not None, value if value is not None else 0),)


TC = "ExperimentTrialComponent"


@pytest.mark.parametrize(
    ("resource", "expression", "options", "message"),
    [
        ("Pipeline", None, {}, "Search serves the resources Experiment"),
        (TC, {"Filters": [{"Name": "Colour", "Value": "x"}]}, {}, "'Colour' is not a property"),
        (TC, {"Filters": [{"Name": "DisplayName", "Operator": "GreaterThan", "Value": "a"}]},
         {}, "GreaterThan applies to numbers and times, not to text"),
        (TC, {"Filters": [{"Name": "Metrics.acc.Max", "Operator": "Contains", "Value": "1"}]},
         {}, "Contains applies to text, not to a number"),
        (TC, {"Filters": [{"Name": "Metrics.acc.Max", "Operator": "LessThan", "Value": "low"}]},
         {}, "'low' is not a number"),
        (TC, {"Filters": [{"Name": "CreationTime", "Operator": "LessThan", "Value": "soon"}]},
         {}, "'soon' is not a time"),
        (TC, {"Filters": [{"Name": "DisplayName", "Operator": "Equals"}]}, {}, "needs a Value"),
        (TC, {"Filters": [{"Name": "Parents", "Value": "x"}]}, {}, "Parents is a list"),
        (TC, {"Filters": [{"Name": "Parents.Colour", "Value": "x"}]}, {},
         "Parents has the members"),
        (TC, {"NestedFilters": [{"NestedPropertyName": "Tags", "Filters": [
            {"Name": "Tags.a", "Value": "b"}]}]}, {}, "NestedPropertyName 'Tags'"),
        (TC, {"NestedFilters": [{"NestedPropertyName": "Parents", "Filters": [
            {"Name": "DisplayName", "Value": "b"}]}]}, {}, "in NestedFilters of Parents"),
        (TC, {}, {}, None),
        (TC, {"Operator": "And"}, {}, "needs Filters, NestedFilters or SubExpressions"),
        (TC, {"Operator": "Xor", "Filters": [{"Name": "DisplayName", "Value": "x"}]}, {},
         "Operator is And or Or"),
        (TC, None, {"sort_by": "Parents.TrialName"}, "Parents is a list"),
        (TC, None, {"sort_order": "Up"}, "SortOrder must be Ascending or Descending"),
        (TC, None, {"max_results": 101}, "MaxResults must be an integer from 1 to 100"),
        (TC, None, {"max_results": 0}, "MaxResults must be an integer from 1 to 100"),
    ],
)  # fmt: skip
def test_bad_searches_are_refused_with_what_to_do(
    worlds: dict[int, Any],
    resource: str,
    expression: dict[str, Any] | None,
    options: dict[str, Any],
    message: str | None,
) -> None:
    con = worlds[0].con
    if message is None:  # an empty expression is no filter
        assert search.search(con, resource, expression, **options)["Results"]
        return
    with pytest.raises(QueryError, match=re.escape(message)):
        search.search(con, resource, expression, **options)


def test_sub_expressions_nest_five_levels_deep_and_no_deeper(worlds: dict[int, Any]) -> None:
    con = worlds[0].con
    expr: dict[str, Any] = {"Filters": [{"Name": "DisplayName", "Operator": "Exists"}]}
    for _ in range(search.MAX_DEPTH - 1):
        expr = {"SubExpressions": [expr]}
    search.search(con, TC, expr)
    with pytest.raises(QueryError, match="at most 5 levels"):
        search.search(con, TC, {"SubExpressions": [expr]})


def test_a_token_serves_only_its_own_search(worlds: dict[int, Any]) -> None:
    con = worlds[0].con
    page = search.search(con, TC, None, max_results=1)
    assert "NextToken" in page
    with pytest.raises(QueryError, match="different request"):
        search.search(con, TC, None, sort_by="CreationTime", next_token=page["NextToken"])


def test_a_hundred_filters_and_no_more(worlds: dict[int, Any]) -> None:
    con = worlds[0].con
    parents = [{"Name": "Parents.TrialName", "Value": f"trial-{i}"} for i in range(100)]
    # a hundred list filters, under Or, in sub-expressions: one query, lists joined once
    expr = {"Operator": "Or", "SubExpressions": [{"Operator": "Or", "Filters": parents[i::5]}
                                                  for i in range(5)]}  # fmt: skip
    assert search.search(con, TC, expr)["Results"]
    nested = {"NestedPropertyName": "Parents", "Filters": [{"Name": "Parents.TrialName",
                                                            "Value": "trial-0"}]}  # fmt: skip
    with pytest.raises(QueryError, match="at most 100 filters"):
        search.search(con, TC, {**expr, "NestedFilters": [nested]})


def test_tag_keys_of_any_characters_are_found(tmp_path: Path) -> None:
    keys = ["it's", "a/b", "c~d", "~1", 'say "hi"', "$.x", "日本", "back\\slash"]
    db = DuckDBStore(tmp_path / "lineage.duckdb")
    try:
        entity = {"kind": "experiment", "experiment_name": "odd"}
        entity["tags"] = [{"key": k, "value": f"v-{i}"} for i, k in enumerate(keys)]
        apply_batches(db, [_event(entity, A, 1)], [1])
        for i, key in enumerate(keys):
            found = search.search(
                db.con, "Experiment", {"Filters": [{"Name": f"Tags.{key}", "Value": f"v-{i}"}]}
            )
            assert [r["Experiment"]["ExperimentName"] for r in found["Results"]] == ["odd"], key
        with pytest.raises(QueryError, match="NUL"):
            search.search(db.con, "Experiment", {"Filters": [{"Name": "Tags.a\x00b"}]})
    finally:
        db.close()
