"""Merge semantics, checked two ways on random event sets (upserts, partial upserts, deletes
and re-creations, associations before their vertices, ties in time):

1. projecting the same records in any order, in any batches, with duplicates, gives the same
   checksum;
2. the projected state equals an independent oracle written here from ARCHITECTURE.md's
   rules (field-level last writer wins after the newest delete, tombstones, edges shown only
   when the association and both ends are live and newer than the ends' deletes).
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlineage import arns
from mlineage.log.base import TOPIC_ENTITIES, TOPIC_JOBS
from mlineage.projection import store as store_module
from mlineage.projection.ingest import SqlIngest
from mlineage.projection.store import DuckDBStore
from tests.helpers import ACCOUNT, REGION, apply_batches, delete, raw, upsert

URIS = ["s3://bucket/data/a.csv", "s3://bucket/data/b.csv", "s3://bucket/model.tar.gz"]
ACTIONS = ["step-1", "step-2"]
TCS = ["Train-Job-aws-training-job"]
PROP_KEYS = ["owner", "stage", "team"]


def artifact_arn(uri: str) -> str:
    return arns.artifact_arn(REGION, ACCOUNT, uri)


VERTICES = (
    [artifact_arn(u) for u in URIS]
    + [arns.named_arn("action", REGION, ACCOUNT, a) for a in ACTIONS]
    + [arns.trial_component_arn(REGION, ACCOUNT, t) for t in TCS]
)

seconds = st.integers(min_value=0, max_value=4)
props = st.dictionaries(st.sampled_from(PROP_KEYS), st.sampled_from(["x", "y", "z"]), max_size=3)


@st.composite
def artifact_upsert(draw: st.DrawFn) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "kind": "artifact",
        "source": {"source_uri": draw(st.sampled_from(URIS))},
    }
    if draw(st.booleans()):
        entity["artifact_type"] = draw(st.sampled_from(["DataSet", "Model"]))
    if draw(st.booleans()):
        entity["artifact_name"] = draw(st.sampled_from(["first", "second"]))
    if draw(st.booleans()):
        entity["properties"] = draw(props)
    if draw(st.booleans()):
        entity["properties_to_remove"] = draw(
            st.lists(st.sampled_from(PROP_KEYS), max_size=2, unique=True)
        )
    return entity


@st.composite
def action_upsert(draw: st.DrawFn) -> dict[str, Any]:
    entity: dict[str, Any] = {"kind": "action", "action_name": draw(st.sampled_from(ACTIONS))}
    if draw(st.booleans()):
        entity["action_type"] = draw(st.sampled_from(["Deploy", "Approve"]))
    if draw(st.booleans()):
        entity["status"] = draw(st.sampled_from(["InProgress", "Completed"]))
    return entity


@st.composite
def tc_upsert(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(TCS))
    entity: dict[str, Any] = {
        "kind": "trial_component",
        # case-insensitive names: same entity either way
        "trial_component_name": draw(st.sampled_from([name, name.lower()])),
    }
    if draw(st.booleans()):
        entity["display_name"] = draw(st.sampled_from(["Training", "Retraining"]))
    return entity


@st.composite
def association(draw: st.DrawFn) -> dict[str, Any]:
    src, dst = draw(st.lists(st.sampled_from(VERTICES), min_size=2, max_size=2, unique=True))
    entity = {"kind": "association", "source_arn": src, "destination_arn": dst}
    if draw(st.booleans()):
        entity["association_type"] = draw(st.sampled_from(["ContributedTo", "Produced"]))
    return entity


@st.composite
def deletion(draw: st.DrawFn) -> dict[str, Any]:
    which = draw(st.sampled_from(["artifact", "action", "trial_component", "association"]))
    if which == "artifact":
        return {"kind": "artifact", "source_uri": draw(st.sampled_from(URIS))}
    if which == "action":
        return {"kind": "action", "action_name": draw(st.sampled_from(ACTIONS))}
    if which == "trial_component":
        return {"kind": "trial_component", "trial_component_name": draw(st.sampled_from(TCS))}
    a = draw(association())
    return {
        "kind": "association",
        "source_arn": a["source_arn"],
        "destination_arn": a["destination_arn"],
    }


@st.composite
def event_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=30))
    out = []
    for _ in range(n):
        sec = draw(seconds)
        eid = str(draw(st.uuids()))
        op = draw(
            st.sampled_from(["artifact", "artifact", "action", "tc", "assoc", "assoc", "delete"])
        )
        if op == "delete":
            out.append(delete(draw(deletion()), second=sec, event_id=eid))
        else:
            entity = draw(
                {
                    "artifact": artifact_upsert(),
                    "action": action_upsert(),
                    "tc": tc_upsert(),
                    "assoc": association(),
                }[op]
            )
            out.append(upsert(entity, second=sec, event_id=eid))
    return out


def _project(
    values: list[bytes], batches: list[int], ingest: SqlIngest | None = None
) -> DuckDBStore:
    store = DuckDBStore(":memory:")
    apply_batches(store, values, batches, ingest=ingest)
    return store


INGEST = SqlIngest(TOPIC_JOBS, TOPIC_ENTITIES)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_sets(), data=st.data())
def test_any_order_any_batches_with_duplicates_same_checksum(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    values = [raw(e) for e in events]
    # the reference reads stored rows by joins (as a batch of many keys does), the other
    # order by literal key lists: the same tables
    with mock.patch.object(store_module, "KEYED_LIMIT", 0):
        reference = _project(values, [len(values)])
    expected = reference.checksum()
    check_oracle(reference, events)
    reference.close()

    shuffled = data.draw(st.permutations(values))
    dups = data.draw(st.lists(st.sampled_from(values), max_size=5))
    mixed = data.draw(st.permutations(shuffled + dups))
    batches = data.draw(st.lists(st.integers(min_value=1, max_value=8), max_size=10))
    # the other order decodes in DuckDB (projection/ingest.py) what it can: the same tables
    other = _project(list(mixed), batches, INGEST)
    assert other.checksum() == expected
    other.close()


# -- the oracle ---------------------------------------------------------------------------------


def _version(e: dict[str, Any]) -> str:
    return f"{e['occurred_at'][:-1]}.000000Z|{e['event_id']}"


def _key(entity: dict[str, Any]) -> str:
    kind = entity["kind"]
    if kind == "artifact":
        uri = entity["source"]["source_uri"] if "source" in entity else entity["source_uri"]
        return artifact_arn(uri)
    if kind == "association":
        return f"{entity['source_arn']} {entity['destination_arn']}"
    if kind == "trial_component":
        return arns.trial_component_arn(REGION, ACCOUNT, entity["trial_component_name"])
    return arns.named_arn(kind, REGION, ACCOUNT, entity[f"{kind}_name"])


def oracle(events: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str]]]:
    upserts: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    deletes: dict[str, str] = {}
    for e in events:
        if e["event_type"] == "EntityUpserted":
            ent = e["payload"]["entity"]
            upserts.setdefault(_key(ent), []).append((_version(e), ent))
        else:
            k = _key(e["payload"])
            deletes[k] = max(deletes.get(k, ""), _version(e))
    state: dict[str, dict[str, Any]] = {}
    for key, ups in upserts.items():
        dv = deletes.get(key, "")
        newest = max(v for v, _ in ups)
        fields: dict[str, tuple[str, Any]] = {}
        prop: dict[str, tuple[str, bool, str | None]] = {}
        for v, ent in ups:
            if v <= dv:
                continue
            for name, value in ent.items():
                if name in ("kind", "properties", "properties_to_remove"):
                    continue
                if name not in fields or v > fields[name][0]:
                    fields[name] = (v, value)
            for pk, pv in ent.get("properties", {}).items():
                cand = (v, False, pv)
                if pk not in prop or cand[:2] > prop[pk][:2]:
                    prop[pk] = cand
            for pk in ent.get("properties_to_remove", []):
                cand2: tuple[str, bool, str | None] = (v, True, None)
                if pk not in prop or cand2[:2] > prop[pk][:2]:
                    prop[pk] = cand2
        state[key] = {
            "live": newest > dv,
            "newest": newest,
            "deleted": dv,
            "fields": {k: val for k, (_, val) in fields.items()},
            "properties": {k: val for k, (_, removed, val) in prop.items() if not removed},
        }
    for key, dv in deletes.items():
        state.setdefault(
            key, {"live": False, "newest": "", "deleted": dv, "fields": {}, "properties": {}}
        )
    edges = set()
    for key, s in state.items():
        if " " not in key or not s["live"]:
            continue
        src, dst = key.split(" ")
        ends = [state.get(src), state.get(dst)]
        if all(end is not None and end["live"] and s["newest"] > end["deleted"] for end in ends):
            edges.add((src, dst))
    return state, edges


def check_oracle(store: DuckDBStore, events: list[dict[str, Any]]) -> None:
    state, edges = oracle(events)
    con = store.con
    got_edges = set(con.execute("SELECT source_arn, destination_arn FROM lineage_edges").fetchall())
    assert got_edges == edges
    rows = con.execute(
        "SELECT arn, live, artifact_type, artifact_name, properties FROM artifacts"
    ).fetchall()
    assert {r[0] for r in rows} == {k for k in state if ":artifact/" in k and " " not in k}
    for arn_, live, artifact_type, artifact_name, properties in rows:
        want = state[arn_]
        assert live == want["live"], arn_
        assert artifact_type == want["fields"].get("artifact_type")
        assert artifact_name == want["fields"].get("artifact_name")
        assert json.loads(properties) == want["properties"]
    rows = con.execute("SELECT arn, live, status FROM actions").fetchall()
    for arn_, live, status in rows:
        assert live == state[arn_]["live"]
        assert status == state[arn_]["fields"].get("status")
    vertices = {r[0] for r in con.execute("SELECT arn FROM lineage_vertices").fetchall()}
    assert vertices == {k for k, s in state.items() if s["live"] and " " not in k}
