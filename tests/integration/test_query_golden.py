"""Golden QueryLineage answers on the demo workflow.

The demo (raw data -> processing -> training -> batch transform -> model package -> endpoint)
is published with the default account and region (000000000000, us-east-1), projected, and
queried from four starts: the prepared train set, the trained model (its MODEL artifact), the
endpoint context and the training job's trial component; in each direction, with and without
edges, and with a few filters and depth limits. Each answer (``LineageResult.to_dict()``, with
vertices and edges sorted, ARNs replaced by readable names) is compared with
``tests/golden/<case>.json``.

The golden files were checked by hand against the demo graph (see the edge list in
``tests/golden/README.md``). To rewrite them after an intended change, run
``MLINEAGE_UPDATE_GOLDEN=1 pytest tests/integration/test_query_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlineage import arns, demo
from mlineage.pipeline import sync
from mlineage.query.lineage import LineageFilter, LineageResult
from mlineage.query.store import LineageStore
from mlineage.recorder import Recorder
from mlineage.settings import Settings

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = os.environ.get("MLINEAGE_UPDATE_GOLDEN") == "1"
ACCOUNT, REGION = "000000000000", "us-east-1"

STARTS = {
    "train_dataset": arns.artifact_arn(REGION, ACCOUNT, demo.TRAIN),
    "model": arns.artifact_arn(REGION, ACCOUNT, demo.MODEL),
    "endpoint": arns.named_arn(
        "context", REGION, ACCOUNT, arns.endpoint_context_name(demo.ENDPOINT)
    ),
    "training_job": arns.trial_component_arn(
        REGION, ACCOUNT, arns.job_trial_component_name("TrainingJob", "churn-xgb-2026-01-15")
    ),
}


@dataclass(frozen=True)
class Case:
    start: str
    direction: str
    include_edges: bool
    filters: LineageFilter | None = None
    max_depth: int = 10
    tag: str = ""  # names the filter / depth in the file name

    @property
    def name(self) -> str:
        edges = "edges" if self.include_edges else "vertices"
        return "-".join(p for p in (self.start, self.direction, edges, self.tag) if p)


def _cases() -> list[Case]:
    out = [
        Case(start, direction, include_edges)
        for start in STARTS
        for direction in ("Both", "Ascendants", "Descendants")
        for include_edges in (False, True)
    ]
    datasets = LineageFilter(types=["DataSet"])
    jobs = LineageFilter(lineage_types=["TrialComponent"])
    out += [
        Case("endpoint", "Ascendants", False, datasets, tag="types_DataSet"),
        Case("endpoint", "Ascendants", True, datasets, tag="types_DataSet"),
        Case("endpoint", "Ascendants", False, jobs, tag="lineage_types_TrialComponent"),
        Case("endpoint", "Ascendants", True, jobs, tag="lineage_types_TrialComponent"),
        Case(
            "endpoint",
            "Ascendants",
            True,
            LineageFilter(properties={"ApprovalStatus": "Approved", "no-such": "key"}),
            tag="properties_ApprovalStatus",
        ),
        Case("endpoint", "Ascendants", True, max_depth=2, tag="max_depth_2"),
        Case("model", "Descendants", True, datasets, tag="types_DataSet"),
        Case("model", "Both", False, max_depth=1, tag="max_depth_1"),
        Case("model", "Both", True, max_depth=1, tag="max_depth_1"),
        Case("model", "Ascendants", True, datasets, max_depth=2, tag="types_DataSet-max_depth_2"),
        Case("train_dataset", "Descendants", False, jobs, tag="lineage_types_TrialComponent"),
        Case("train_dataset", "Descendants", True, jobs, tag="lineage_types_TrialComponent"),
        Case(
            "train_dataset",
            "Descendants",
            False,
            LineageFilter(created_after=datetime(2026, 1, 15, 9, 21, tzinfo=UTC)),
            tag="created_after_0921",
        ),
        Case("train_dataset", "Descendants", True, max_depth=0, tag="max_depth_0"),
        Case("training_job", "Descendants", True, jobs, tag="lineage_types_TrialComponent"),
        Case("training_job", "Both", True, datasets, tag="types_DataSet"),
        Case("training_job", "Both", False, datasets, tag="types_DataSet"),
    ]
    return out


CASES = _cases()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineageStore]:
    settings = Settings.load(home=tmp_path_factory.mktemp("demo"), environ={})
    assert (settings.account_id, settings.region) == (ACCOUNT, REGION)
    with Recorder(settings) as rec:
        rec.publish_many(demo.workflow(rec))
        assert demo.endpoint_context_arn(rec) == STARTS["endpoint"]
    sync(settings)
    with LineageStore.open(settings.db_path) as opened:
        yield opened


def labels(store: LineageStore) -> dict[str, str]:
    """ARN -> readable name: an artifact's source URI, otherwise the ARN's resource/name."""
    uris = dict(store.con.execute("SELECT arn, source_uri FROM artifacts").fetchall())
    out = {}
    for (arn,) in store.con.execute("SELECT arn FROM lineage_vertices").fetchall():
        parsed = arns.parse_arn(arn)
        assert parsed is not None
        out[arn] = f"artifact {uris[arn]}" if arn in uris else f"{parsed.resource}/{parsed.name}"
    assert len(set(out.values())) == len(out), "labels must name vertices uniquely"
    return out


def _filters_json(f: LineageFilter | None) -> dict[str, Any]:
    if f is None:
        return {}
    out: dict[str, Any] = {}
    for name, value in vars(f).items():
        if value is None:
            continue
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def render(case: Case, result: LineageResult, name: dict[str, str]) -> dict[str, Any]:
    raw = result.to_dict()
    vertices = sorted(
        ({**v, "Arn": name[v["Arn"]]} for v in raw["Vertices"]), key=lambda v: v["Arn"]
    )
    edges = sorted(
        (
            {**e, "SourceArn": name[e["SourceArn"]], "DestinationArn": name[e["DestinationArn"]]}
            for e in raw["Edges"]
        ),
        key=lambda e: (e["SourceArn"], e["DestinationArn"]),
    )
    return {
        "Query": {
            "StartArns": [name[STARTS[case.start]]],
            "Direction": case.direction,
            "IncludeEdges": case.include_edges,
            "MaxDepth": case.max_depth,
            "Filters": _filters_json(case.filters),
        },
        "Vertices": vertices,
        "Edges": edges,
        "TruncatedByDepth": raw["TruncatedByDepth"],
    }


def test_case_names_are_unique() -> None:
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_query_lineage_golden(store: LineageStore, case: Case) -> None:
    result = store.query_lineage(
        [STARTS[case.start]],
        case.direction,
        include_edges=case.include_edges,
        filters=case.filters,
        max_depth=case.max_depth,
    )
    assert result.next_token is None
    got = render(case, result, labels(store))
    path = GOLDEN / f"{case.name}.json"
    text = json.dumps(got, indent=2) + "\n"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), (
        f"no golden file {path}: run with MLINEAGE_UPDATE_GOLDEN=1, then check it by hand"
    )
    assert json.loads(path.read_text()) == got, f"{case.name} differs from {path}"


def test_no_stale_golden_files() -> None:
    if UPDATE:
        pytest.skip("rewriting the golden files")
    names = {p.stem for p in GOLDEN.glob("*.json")}
    assert names == {c.name for c in CASES}
