"""Benchmark of the read side: QueryLineage latency on the in-memory index, and the SQL walk
macros, over a projected graph of N training jobs.

Workload (``embedded_pipeline.job_drafts``, plus deployments): N training jobs, each with two
input datasets drawn from a pool of N/5 dataset URIs, an image drawn from 5 images and one
model output; every 10th job's model is deployed: a ``ModelPackageCreated`` (10 model
package groups, Approved) then an ``EndpointCreated`` serving that model and package. The
log is tracked and projected with the embedded pipeline (``mlineage.pipeline.sync``).

Measured on ``LineageStore`` (time.perf_counter, one query at a time, same random starts for
every depth):

- the index open (``LineageStore.graph``: ``LineageGraph.open``, paid by the first
  ``query_lineage``), its time and the resident memory it adds;
- QueryLineage with ``include_edges=True`` (SageMaker's default) at MaxDepth 1, 3 and 10:
  Descendants from a random dataset, Ascendants from a random model, Ascendants from a random
  endpoint context (``{endpoint}-aws-endpoint``): p50 / p99 / mean latency, mean and max
  answer size (vertices, edges);
- the SQL macros ``lineage_descendants(arn, d)`` / ``lineage_ancestors(arn, d)`` for the same
  starts (fewer queries: ``--macro-queries``, default 100), whose vertex sets are checked
  against QueryLineage's;
- large walks (Both from each image at depth 10: every job uses one of 5, so the walk
  reaches the whole graph), the cold open (open + index + first query), the index's array
  bytes, ``LineageGraph.apply`` of 1,000 new vertices and edges and the compaction after it;
- the anchor: the same starts and walks on the index of an earlier revision (``--anchor``,
  default the dict-of-lists index this one replaced), loaded from git.

Targets printed next to the figures: p50 <= 1 ms and p99 <= 5 ms for answers of up to 100
vertices (a case whose answers are larger is reported with its size, not judged); issue 15's
30 ms for a walk reaching 100k+ vertices, 10 ms for applying 1,000 new edges, 100 ms for the
cold open at 100k jobs.

Usage::

    .venv/bin/python bench/query_lineage.py --jobs 10000 --seed 1 [--json]
    .venv/bin/python bench/query_lineage.py --jobs 100000 --workdir /tmp/qb  # reused next time

Building the projection takes minutes at N=100,000: with ``--workdir`` it is kept and a
later run with the same N and seed reuses it (and says so). Without ``--workdir`` a temporary
directory is used and removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from mlineage import arns
from mlineage.events.models import canonical_time
from mlineage.pipeline import sync
from mlineage.projection.schema import SCHEMA_VERSION
from mlineage.query.lineage import LineageGraph
from mlineage.query.store import LineageStore, graph_cache_dir
from mlineage.recorder import Recorder
from mlineage.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
import embedded_pipeline as ep  # the sibling benchmark: workload generator, helpers

DEFAULT_JOBS = 100_000
DEFAULT_QUERIES = 1_000
DEFAULT_MACRO_QUERIES = 100
DEFAULT_MACRO_BUDGET_S = 120.0
DEPLOY_EVERY = 10
MODEL_GROUPS = 10
DEPTHS = (1, 3, 10)
PUBLISH_CHUNK = 5_000
TARGET_P50_MS = 1.0
TARGET_P99_MS = 5.0
TARGET_MAX_VERTICES = 100
TARGET_WALK_MS = 30.0  # issue 15: a walk reaching 100k+ vertices
TARGET_APPLY_MS = 10.0  # issue 15: an incremental update of 1,000 new edges
TARGET_OPEN_MS = 100.0  # issue 15: open + first query at 100k jobs
APPLY_ROUNDS = 7
TARGET_MACRO_P50_MS = 10.0  # issue 15: the SQL walk macros at depth 10, at 100k jobs
DEFAULT_ANCHOR = "2a18cf3"  # the dict-of-lists index this one replaced
# bump when the workload changes, so an old projection in --workdir is not reused
WORKLOAD_VERSION = 1
MARKER = "query-bench.json"

Draft = dict[str, Any]


# -- workload ------------------------------------------------------------------------------------


def model_group(i: int) -> tuple[str, int]:
    """Model package group and version of deployed job ``i`` (a multiple of DEPLOY_EVERY)."""
    k = i // DEPLOY_EVERY
    return f"bench-group-{k % MODEL_GROUPS}", k // MODEL_GROUPS + 1


def endpoint_name(i: int) -> str:
    return f"bench-endpoint-{i}"


def deployed_jobs(n_jobs: int) -> range:
    return range(0, n_jobs, DEPLOY_EVERY)


def workload(n_jobs: int, seed: int, settings: Settings) -> Iterator[Draft]:
    """``embedded_pipeline.job_drafts`` with, after every 10th job, its model packaged and
    deployed to an endpoint. Ids and times come from the seed."""
    rng = random.Random(f"deploy-{seed}")
    image = ""
    for draft in ep.job_drafts(n_jobs, seed):
        yield draft
        payload = draft["payload"]
        if draft["event_type"] == "JobCreated":
            image = payload["image_uri"]
            continue
        i = int(payload["job_name"].rsplit("-", 1)[1])
        if i % DEPLOY_EVERY:
            continue
        group, version = model_group(i)
        package_arn = arns.model_package_arn(settings.region, settings.account_id, group, version)
        done_at = ep.EPOCH + timedelta(seconds=2 * i + 1)
        yield {
            "event_type": "ModelPackageCreated",
            "event_id": ep._event_id(rng),
            "occurred_at": canonical_time(done_at + timedelta(milliseconds=250)),
            "payload": {
                "model_package_group_name": group,
                "version": version,
                "model_data_uri": ep.model_uri(i),
                "image_uri": image,
                "approval_status": "Approved",
            },
        }
        yield {
            "event_type": "EndpointCreated",
            "event_id": ep._event_id(rng),
            "occurred_at": canonical_time(done_at + timedelta(milliseconds=500)),
            "payload": {
                "endpoint_name": endpoint_name(i),
                "models": [
                    {
                        "model_data_uri": ep.model_uri(i),
                        "image_uri": image,
                        "model_package_arn": package_arn,
                    }
                ],
            },
        }


def n_source_events(n_jobs: int) -> int:
    return 2 * n_jobs + 2 * len(deployed_jobs(n_jobs))


def marker_for(n_jobs: int, seed: int) -> dict[str, Any]:
    return {
        "jobs": n_jobs,
        "seed": seed,
        "workload": WORKLOAD_VERSION,
        "deploy_every": DEPLOY_EVERY,
        "projection_schema": SCHEMA_VERSION,  # another schema: the projection is rebuilt
    }


def build(settings: Settings, n_jobs: int, seed: int) -> dict[str, Any]:
    """Publish the workload and sync (track + project) it; return the build figures."""
    recorder = Recorder(settings)
    total = n_source_events(n_jobs)
    ep.note(f"N={n_jobs:,}: publish {total:,} source events")
    t0 = time.perf_counter()
    published = 0
    last = t0
    try:
        for chunk in ep.chunks(workload(n_jobs, seed, settings), PUBLISH_CHUNK):
            published += len(recorder.publish_many(chunk))
            if time.perf_counter() - last >= ep.PROGRESS_EVERY_S:
                last = time.perf_counter()
                ep.note(f"  publish: {published:,} / {total:,}")
        publish_s = time.perf_counter() - t0
        assert published == total, (published, total)

        ep.note(f"N={n_jobs:,}: track and project (mlineage.pipeline.sync)")
        last_note = [time.perf_counter()]

        def progress(stage: str, done: int, lag: int) -> None:
            if time.perf_counter() - last_note[0] >= ep.PROGRESS_EVERY_S:
                last_note[0] = time.perf_counter()
                ep.note(f"  {stage}: {done:,} records done, {lag:,} to go")

        t0 = time.perf_counter()
        stats = sync(settings, log=recorder.log, progress=progress)
        sync_s = time.perf_counter() - t0
    finally:
        recorder.close()
    assert stats.tracker.dead_lettered == 0, f"tracker dead letters: {stats.tracker}"
    assert stats.projector.dead_lettered == 0, f"projector dead letters: {stats.projector}"
    return {
        "publish_s": publish_s,
        "sync_s": sync_s,
        "source_events": total,
        "derived_events": stats.tracker.derived,
    }


def prepare(root: Path, n_jobs: int, seed: int) -> tuple[Settings, dict[str, Any]]:
    """The projection for (N, seed) under ``root``: reused when a finished one is there."""
    home = root / f"n-{n_jobs}-seed-{seed}"
    settings = Settings.load(home=home, environ={})  # never a real log or projection
    marker = home / MARKER
    want = marker_for(n_jobs, seed)
    if marker.exists() and settings.db_path.exists():
        try:
            have = json.loads(marker.read_text())
        except (OSError, ValueError):
            have = {}
        if {k: have.get(k) for k in want} == want:
            ep.note(
                f"reusing the projection in {home} (N={n_jobs:,}, seed {seed}, built "
                f"{have.get('built_at', '?')})"
            )
            return settings, {**have, "reused": True}
    if home.exists():
        ep.note(f"{home} holds no finished projection for N={n_jobs:,}, seed {seed}: rebuilding it")
        shutil.rmtree(home)
    home.mkdir(parents=True)
    figures = build(settings, n_jobs, seed)
    figures.update(want, built_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    marker.write_text(json.dumps(figures, sort_keys=True))
    return settings, {**figures, "reused": False}


# -- measuring -----------------------------------------------------------------------------------


def rss_mib() -> float:
    """Current resident set size of this process (Linux /proc; else the peak)."""
    try:
        with Path("/proc/self/statm").open() as fh:
            pages = int(fh.read().split()[1])
    except OSError:
        return ep.peak_rss_mib()
    return pages * resource.getpagesize() / (1024 * 1024)


def deep_size_mib(graph: LineageGraph) -> float:
    """Bytes held by the index's objects (sys.getsizeof over its containers and everything
    they hold, each object once): the index's own size, independent of what the process
    allocated and freed before (which the RSS difference cannot tell apart)."""
    seen: set[int] = set()
    total = 0
    stack: list[Any] = [getattr(graph, name) for name in vars(graph)]
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple):
            stack.extend(obj)
    return total / (1024 * 1024)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n q / 100)
    return sorted_values[int(rank) - 1]


@dataclass
class Case:
    method: str  # "QueryLineage" or "SQL macro"
    label: str  # e.g. "Descendants from a dataset"
    depth: int
    queries: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    mean_vertices: float = 0.0
    max_vertices: int = 0
    mean_edges: float | None = None
    truncated_share: float | None = None
    mismatches: int | None = None  # macro vertex set != QueryLineage's, for the same start
    stopped_early: bool = False
    meets_target: bool | None = None  # None: answers above TARGET_MAX_VERTICES

    def finish(self, times: list[float], sizes: list[int]) -> None:
        ms = sorted(t * 1000 for t in times)
        self.queries = len(ms)
        self.p50_ms = percentile(ms, 50)
        self.p99_ms = percentile(ms, 99)
        self.mean_ms = sum(ms) / len(ms)
        self.max_ms = ms[-1]
        self.mean_vertices = sum(sizes) / len(sizes)
        self.max_vertices = max(sizes)
        fast = all(value <= bound for _, value, bound in bounds(self))
        self.meets_target = fast if self.max_vertices <= TARGET_MAX_VERTICES else None


def bounds(case: Case) -> list[tuple[str, float, float]]:
    """(name, figure, target) of what a case is judged by: QueryLineage by its latency
    targets, the SQL macros by issue 15's p50 for them."""
    if case.method == "SQL macro":
        return [("p50", case.p50_ms, TARGET_MACRO_P50_MS)]
    return [("p50", case.p50_ms, TARGET_P50_MS), ("p99", case.p99_ms, TARGET_P99_MS)]


@dataclass
class RunResult:
    jobs: int
    seed: int
    queries: int
    macro_queries: int
    build: dict[str, Any] = field(default_factory=dict)
    vertices: int = 0
    edges: int = 0
    vertices_by_type: dict[str, int] = field(default_factory=dict)
    db_mib: float = 0.0
    open_s: float = 0.0
    index_s: float = 0.0
    index_from_tables_s: float = 0.0  # LineageGraph.load: numbering and joining in DuckDB
    index_saved_s: float = 0.0  # LineageGraph.from_saved: the copy a reader saved
    index_rss_mib: float = 0.0
    index_objects_mib: float = 0.0
    rss_before_index_mib: float = 0.0
    rss_after_index_mib: float = 0.0
    first_query_ms: float = 0.0
    cases: list[Case] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    isolation_view_s: float = 0.0  # LineageStore.as_account: copy what the account sees
    isolation_index_s: float = 0.0
    index_array_mib: float = 0.0  # numpy arrays of the index (ARN strings not counted)
    open_first_query_ms: float = 0.0  # LineageStore.open + index + one query, cold
    open_saved_first_query_ms: float = 0.0  # the same for the next reader (saved index)
    walks: list[Walk] = field(default_factory=list)
    apply_1000_edges_ms: float = 0.0  # LineageGraph.apply: 1,000 new vertices and edges (p50)
    apply_1000_edges_max_ms: float = 0.0
    compact_ms: float = 0.0
    anchor: dict[str, Any] = field(default_factory=dict)


@dataclass
class Walk:
    """A query reaching most of the graph (Both from an image: every job uses one)."""

    label: str
    queries: int
    p50_ms: float
    max_ms: float
    reached: int


@dataclass
class Start:
    label: str
    direction: str
    macro: str
    noun: str
    arns: list[str]


def pick_starts(
    store: LineageStore, settings: Settings, n_jobs: int, seed: int, count: int
) -> list[Start]:
    """Random starts (with replacement) among the datasets, models and endpoints that exist."""
    rng = random.Random(f"starts-{seed}")
    region, account = settings.region, settings.account_id
    graph = store.graph

    def existing(candidates: Iterator[str]) -> list[str]:
        pool = [a for a in candidates if graph.vid(a) is not None]
        assert pool, "no start vertex of this kind in the graph"
        return [rng.choice(pool) for _ in range(count)]

    pool = max(2, n_jobs // 5)
    datasets = existing(arns.artifact_arn(region, account, ep.dataset_uri(k)) for k in range(pool))
    models = existing(arns.artifact_arn(region, account, ep.model_uri(i)) for i in range(n_jobs))
    endpoints = existing(
        arns.named_arn("context", region, account, arns.endpoint_context_name(endpoint_name(i)))
        for i in deployed_jobs(n_jobs)
    )
    return [
        Start(
            "Descendants from a dataset", "Descendants", "lineage_descendants", "dataset", datasets
        ),
        Start("Ascendants from a model", "Ascendants", "lineage_ancestors", "model", models),
        Start(
            "Ascendants from an endpoint", "Ascendants", "lineage_ancestors", "endpoint", endpoints
        ),
    ]


class _Walker:
    """``query_lineage`` of a store, on behalf of a caller seeing these accounts."""

    def __init__(self, store: LineageStore, sees: list[str]) -> None:
        self.store, self.sees = store, sees

    def query_lineage(self, arn: str, **kwargs: Any) -> Any:
        return self.store.query_lineage(arn, visible_accounts=self.sees, **kwargs)


def run_query_lineage(
    store: LineageStore, start: Start, depth: int, answers: dict[tuple[str, int], set[str]]
) -> Case:
    case = Case("QueryLineage", start.label, depth)
    times: list[float] = []
    sizes: list[int] = []
    edges: list[int] = []
    truncated = 0
    for arn in start.arns:
        t0 = time.perf_counter()
        result = store.query_lineage(
            arn, direction=start.direction, include_edges=True, max_depth=depth
        )
        times.append(time.perf_counter() - t0)
        sizes.append(len(result.vertices))
        edges.append(len(result.edges))
        truncated += result.truncated_by_depth
        # the macros walk away from the start; QueryLineage returns the start too
        answers.setdefault((arn, depth), {v.arn for v in result.vertices if v.arn != arn})
    case.finish(times, sizes)
    case.mean_edges = sum(edges) / len(edges)
    case.truncated_share = truncated / len(start.arns)
    return case


def run_macro(
    store: LineageStore,
    start: Start,
    depth: int,
    count: int,
    budget_s: float,
    answers: dict[tuple[str, int], set[str]],
    *,
    in_file: bool = False,
) -> Case:
    """The macro through the store (TEMP macros over the index), or ``in_file``: as the
    file defines it (a recursive CTE), on a connection without the store's macros."""
    where = " [CTE in the file]" if in_file else ""
    case = Case("SQL macro", f"{start.macro}({start.noun}, {depth}){where}", depth)
    sql = f"SELECT arn FROM {start.macro}(?, max_depth := ?)"
    plain = store.con.cursor() if in_file else None
    times: list[float] = []
    sizes: list[int] = []
    mismatches = 0
    began = time.perf_counter()
    for arn in start.arns[:count]:
        t0 = time.perf_counter()
        if plain is not None:
            rows = plain.execute(sql, [arn, depth]).fetchall()
        else:
            _, rows = store.sql(sql, [arn, depth], timeout=max(30.0, budget_s))
        times.append(time.perf_counter() - t0)
        sizes.append(len(rows))
        mismatches += {r[0] for r in rows} != answers[(arn, depth)]
        if time.perf_counter() - began > budget_s and len(times) < count:
            case.stopped_early = True
            break
    case.finish(times, sizes)
    case.mismatches = mismatches
    return case


def image_arns(settings: Settings, n_jobs: int, store: LineageStore) -> list[str]:
    rows = store.sql("SELECT arn FROM lineage_vertices WHERE type = 'Image' ORDER BY arn")[1]
    return [r[0] for r in rows]


def run_walks(query: Any, images: list[str], label: str) -> list[Walk]:
    """Both from every image at depth 10: the walk reaches (nearly) everything. Paged to 100
    vertices (the walk, not building answer objects), then whole without edges."""
    walks = []
    for name, kwargs in (
        (
            f"{label}: Both from an image, first page of 100",
            {"include_edges": True, "max_results": 100},
        ),
        (f"{label}: Both from an image, whole answer, no edges", {"include_edges": False}),
    ):
        times, reached = [], 0
        for arn in images:
            t0 = time.perf_counter()
            answer = query(arn, direction="Both", max_depth=10, **kwargs)
            times.append(time.perf_counter() - t0)
            reached = max(reached, len(answer.vertices))
        ms = sorted(t * 1000 for t in times)
        walks.append(Walk(name, len(ms), percentile(ms, 50), ms[-1], reached))
    return walks


def measure_apply(graph: LineageGraph, result: RunResult) -> None:
    """1,000 new artifacts, each associated with an existing vertex: the index follows
    (after a warm-up apply of 10, so first-call costs are not counted)."""

    def change(first: int, count: int) -> tuple[pa.Table, pa.Table]:
        live = np.flatnonzero(graph.lineage_type >= 0)[first : first + count]
        olds = [graph.arns[int(v)] for v in live]
        new = [
            f"arn:aws:sagemaker:us-east-1:000000000000:artifact/bench-new-{first + i:06d}"
            for i in range(count)
        ]
        vertices = pa.table(
            {
                "arn": new,
                "lineage_type": ["Artifact"] * count,
                "type": ["DataSet"] * count,
                "c": [0] * count,
                "m": [0] * count,
                "account_id": ["000000000000"] * count,
            }
        )
        edges = pa.table(
            {
                "source_arn": new,
                "destination_arn": olds,
                "association_type": ["ContributedTo"] * count,
            }
        )
        return vertices, edges

    vertices, edges = change(0, 10)
    graph.apply(vertices, [], edges, [])
    times = []
    for round_ in range(APPLY_ROUNDS):  # the median of a few: one apply is a few ms
        vertices, edges = change(10 + 1000 * round_, 1000)
        t0 = time.perf_counter()
        graph.apply(vertices, [], edges, [])
        times.append((time.perf_counter() - t0) * 1000)
    result.apply_1000_edges_ms = percentile(sorted(times), 50)
    result.apply_1000_edges_max_ms = max(times)
    t0 = time.perf_counter()
    graph.compact()
    result.compact_ms = (time.perf_counter() - t0) * 1000


def measure_anchor(
    settings: Settings,
    rev: str,
    starts: list[Start],
    queries: int,
    images: list[str],
    result: RunResult,
) -> None:
    """The same store read by the index of an earlier revision (its lineage.py, from git)."""
    anchor = load_anchor(rev)
    if anchor is None:
        return
    store = LineageStore.open(settings.db_path)
    try:
        t0 = time.perf_counter()
        graph = anchor.LineageGraph.load(store.con)
        load_s = time.perf_counter() - t0
        size = deep_size_mib(graph)

        def query(arn: str, **kwargs: Any) -> Any:
            return anchor.query_lineage(graph, [arn], properties_of=store.properties_of, **kwargs)

        cases = []
        for start in starts:
            times = []
            for arn in start.arns[:queries]:
                t0 = time.perf_counter()
                query(arn, direction=start.direction, include_edges=True, max_depth=10)
                times.append(time.perf_counter() - t0)
            ms = sorted(t * 1000 for t in times)
            cases.append(
                {
                    "label": start.label,
                    "depth": 10,
                    "p50_ms": percentile(ms, 50),
                    "p99_ms": percentile(ms, 99),
                }
            )
        walks = run_walks(query, images, f"anchor {rev}")
        result.anchor = {
            "rev": rev,
            "index_s": load_s,
            "index_objects_mib": size,
            "cases": cases,
            "walks": [asdict(w) for w in walks],
        }
    finally:
        store.close()


def load_anchor(rev: str) -> Any:
    """``mlineage.query.lineage`` as of ``rev`` (None, with a note, outside a git checkout)."""
    git = ["git", "show", f"{rev}:src/mlineage/query/lineage.py"]
    proc = subprocess.run(
        git, cwd=Path(__file__).resolve().parent, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        ep.note(f"no anchor: cannot read {rev}'s lineage.py from git ({proc.stderr.strip()})")
        return None
    module = types.ModuleType(f"anchor_lineage_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(  # noqa: S102 - the anchor's own source, from git
        compile(proc.stdout, f"{rev}:src/mlineage/query/lineage.py", "exec"),
        module.__dict__,
    )
    return module


def measure(
    settings: Settings,
    n_jobs: int,
    seed: int,
    queries: int,
    macro_queries: int,
    macro_budget_s: float,
    result: RunResult,
    anchor: str | None = None,
) -> None:
    with LineageStore.open(settings.db_path) as first:
        images = image_arns(settings, n_jobs, first)
    del first
    gc.collect()
    # cold: open, the index, one query (what a one-shot CLI command pays; the file is in the
    # page cache, as it is after any earlier use): the first reader of this state of the
    # projection opens the index from its columns and saves it, the next maps the copy
    shutil.rmtree(graph_cache_dir(settings.db_path), ignore_errors=True)
    for attr in ("open_first_query_ms", "open_saved_first_query_ms"):
        t0 = time.perf_counter()
        with LineageStore.open(settings.db_path) as cold:
            cold.query_lineage(images[0], direction="Ascendants", max_depth=1)
            setattr(result, attr, (time.perf_counter() - t0) * 1000)
        del cold
        gc.collect()
    gc.collect()
    t0 = time.perf_counter()
    store = LineageStore.open(settings.db_path)
    result.open_s = time.perf_counter() - t0
    try:
        gc.collect()
        result.rss_before_index_mib = rss_mib()
        ep.note(f"N={n_jobs:,}: opening the in-memory index from the projection's columns")
        t0 = time.perf_counter()
        opened = LineageGraph.open(store.con)
        result.index_s = time.perf_counter() - t0
        assert opened is not None, "the projection keeps no graph index (an older schema?)"
        store.loaded_graph = graph = opened  # the queries below walk this one
        t0 = time.perf_counter()
        LineageGraph.load(store.con)
        result.index_from_tables_s = time.perf_counter() - t0
        saved = next(graph_cache_dir(settings.db_path).iterdir(), None)
        if saved is not None:
            t0 = time.perf_counter()
            LineageGraph.from_saved(saved)
            result.index_saved_s = time.perf_counter() - t0
        gc.collect()
        result.rss_after_index_mib = rss_mib()
        result.index_rss_mib = result.rss_after_index_mib - result.rss_before_index_mib
        result.index_objects_mib = deep_size_mib(graph)
        result.index_array_mib = graph.nbytes() / (1024 * 1024)

        # counted after the index, so the RSS difference above holds no DuckDB cache of these
        counts = store.sql(
            "SELECT lineage_type || ' ' || coalesce(type, '?'), count(*) "
            "FROM lineage_vertices GROUP BY ALL ORDER BY 2 DESC"
        )[1]
        result.vertices_by_type = dict(counts)
        result.vertices = sum(result.vertices_by_type.values())
        result.edges = store.sql("SELECT count(*) FROM lineage_edges")[1][0][0]
        assert graph.vertex_count == result.vertices, (graph.vertex_count, result.vertices)
        assert graph.edge_count == result.edges, (graph.edge_count, result.edges)

        starts = pick_starts(store, settings, n_jobs, seed, queries)
        t0 = time.perf_counter()
        store.query_lineage(starts[0].arns[0], direction=starts[0].direction, max_depth=1)
        result.first_query_ms = (time.perf_counter() - t0) * 1000

        answers: dict[tuple[str, int], set[str]] = {}
        for start in starts:
            for depth in DEPTHS:
                ep.note(f"  QueryLineage {start.label}, depth {depth}: {queries:,} queries")
                result.cases.append(run_query_lineage(store, start, depth, answers))
        ep.note(f"  large walks: Both from each of the {len(images)} images")
        result.walks = run_walks(store.query_lineage, images, "QueryLineage")
        # isolation on: the same queries on behalf of the (only) account, which sees it all
        ep.note(f"  isolation: LineageStore.as_account({settings.account_id})")
        t0 = time.perf_counter()
        view = store.as_account(settings.account_id)
        result.isolation_view_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            _ = view.graph
            result.isolation_index_s = time.perf_counter() - t0
            for start in starts:
                for depth in DEPTHS:
                    ep.note(f"  QueryLineage as account, {start.label}, depth {depth}")
                    case = run_query_lineage(view, start, depth, {})
                    case.method = "QueryLineage, isolation on"
                    case.label = f"{start.label} (as account)"
                    result.cases.append(case)
        finally:
            view.close()
        # isolation by filtering: the operator's index walked with the accounts one sees
        sees = [settings.account_id]
        walker = _Walker(store, sees)
        for start in starts:
            for depth in DEPTHS:
                ep.note(f"  QueryLineage visible_accounts={sees}, {start.label}, depth {depth}")
                case = run_query_lineage(walker, start, depth, {})  # type: ignore[arg-type]
                case.method = "QueryLineage, visible_accounts"
                case.label = f"{start.label} (filtered)"
                result.cases.append(case)
        for start in starts:
            for depth in DEPTHS:
                ep.note(f"  {start.macro}({start.noun}, {depth}): up to {macro_queries:,} queries")
                result.cases.append(
                    run_macro(store, start, depth, macro_queries, macro_budget_s, answers)
                )
            # the same macros as the file keeps them (a recursive CTE), for any DuckDB client
            ep.note(f"  {start.macro}({start.noun}, 10) in the file: up to {macro_queries:,}")
            result.cases.append(
                run_macro(store, start, 10, macro_queries, macro_budget_s, answers, in_file=True)
            )
        ep.note("  the index follows writes: 1,000 new vertices and edges (LineageGraph.apply)")
        measure_apply(graph, result)
    finally:
        store.close()
    result.peak_rss_mib = ep.peak_rss_mib()
    if anchor:
        ep.note(f"  anchor: the index of {anchor}, same store and starts")
        measure_anchor(settings, anchor, starts, min(queries, 200), images, result)


# -- output --------------------------------------------------------------------------------------


def verdict(case: Case) -> str:
    if case.meets_target is None:
        fast = all(value <= bound for _, value, bound in bounds(case))
        return (
            f"n/a: answers up to {case.max_vertices:,} vertices (> {TARGET_MAX_VERTICES})"
            f"; {'within' if fast else 'outside'} the latency targets"
        )
    if case.meets_target:
        return "[green]meets[/green]"
    missed = [name for name, value, bound in bounds(case) if value > bound]
    return f"[red]MISS ({', '.join(missed)})[/red]"


def render(console: Console, result: RunResult, info: dict[str, Any]) -> None:
    mem = info["mem_total_gib"]
    console.print(
        f"machine: {info['cpu_count']} CPUs, "
        f"{f'{mem:.1f} GiB' if mem is not None else 'unknown'} RAM, {info['platform']}; "
        f"Python {info['python']}, DuckDB {info['duckdb']}, mlineage {info['mlineage']}"
    )
    b = result.build
    how = (
        f"publish {b['publish_s']:.1f} s, track+project {b['sync_s']:.1f} s "
        f"({b['source_events']:,} source events, {b['derived_events']:,} derived)"
    )
    how = (
        f"reused, built {b.get('built_at', '?')}: {how}" if b.get("reused") else f"built now: {how}"
    )
    console.print(
        f"graph: N = {result.jobs:,} training jobs (seed {result.seed}, every "
        f"{DEPLOY_EVERY}th deployed: {len(deployed_jobs(result.jobs)):,} endpoints), "
        f"{result.vertices:,} vertices, {result.edges:,} edges "
        f"({result.vertices + result.edges:,} in all); projection {result.db_mib:,.1f} MiB, "
        f"{how}"
    )
    console.print(
        "vertices: " + ", ".join(f"{k} {v:,}" for k, v in result.vertices_by_type.items())
    )
    console.print(
        f"index (LineageStore.graph, paid by the first query_lineage, opened from the ids "
        f"the projector keeps): [bold]{result.index_s:.3f} s[/bold] (mapped from the copy a "
        f"reader saved: {result.index_saved_s * 1000:.0f} ms; built from the tables instead, "
        f"LineageGraph.load: {result.index_from_tables_s:.2f} s); its objects hold "
        f"[bold]{result.index_objects_mib:,.0f} MiB[/bold] (getsizeof, deep); resident "
        f"{result.index_rss_mib:+,.0f} MiB ({result.rss_before_index_mib:,.0f} -> "
        f"{result.rss_after_index_mib:,.0f} MiB, with DuckDB's reads"
        + (
            ""
            if b.get("reused")
            else "; understated: the build in this process left freed memory the index reused"
        )
        + f"); store open {result.open_s * 1000:.0f} ms; first query after the index "
        f"{result.first_query_ms:.2f} ms; peak RSS {result.peak_rss_mib:,.0f} MiB"
        + ("" if b.get("reused") else " (includes the build)")
    )

    table = Table(
        title=f"QueryLineage and SQL walk macros — N = {result.jobs:,}, include_edges=True; "
        f"target p50 <= {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms for answers "
        f"<= {TARGET_MAX_VERTICES} vertices (macros: p50 <= {TARGET_MACRO_P50_MS:g} ms)",
        title_justify="left",
        caption="latency per query, one at a time, same random starts for every depth "
        "(with replacement); size = vertices returned (the start included); "
        "trunc = share of answers with TruncatedByDepth; macro ≠ = starts whose macro "
        "vertex set differs from QueryLineage's",
        caption_justify="left",
    )
    for name, justify in (
        ("method / case", "left"),
        ("depth", "right"),
        ("queries", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("mean ms", "right"),
        ("max ms", "right"),
        ("mean size", "right"),
        ("max size", "right"),
        ("mean edges", "right"),
        ("trunc / ≠", "right"),
        ("vs target", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    previous = None
    for case in result.cases:
        if previous is not None and case.method != previous:
            table.add_section()
        previous = case.method
        queries = f"{case.queries:,}" + ("*" if case.stopped_early else "")
        if case.truncated_share is not None:
            extra = f"{100 * case.truncated_share:.0f}%"
        else:
            extra = f"{case.mismatches} ≠"
        table.add_row(
            case.label,
            str(case.depth),
            queries,
            f"{case.p50_ms:.3f}",
            f"{case.p99_ms:.3f}",
            f"{case.mean_ms:.3f}",
            f"{case.max_ms:.2f}",
            f"{case.mean_vertices:,.1f}",
            f"{case.max_vertices:,}",
            f"{case.mean_edges:,.1f}" if case.mean_edges is not None else "–",
            extra,
            verdict(case),
        )
    console.print(table)
    plain = {(c.label, c.depth): c for c in result.cases if c.method == "QueryLineage"}
    ratios = []
    for c in result.cases:
        if c.method == "QueryLineage, isolation on":
            base = plain[(c.label.removesuffix(" (as account)"), c.depth)]
            ratios.append((c.p50_ms / base.p50_ms, c.p99_ms / base.p99_ms))
    filtered = []
    for c in result.cases:
        if c.method == "QueryLineage, visible_accounts":
            base = plain[(c.label.removesuffix(" (filtered)"), c.depth)]
            filtered.append(c.p50_ms / base.p50_ms)
    if filtered:
        console.print(
            "isolation by filtering (the operator's index walked with visible_accounts = the "
            f"one account) vs off: p50 ratio {min(filtered):.2f}-{max(filtered):.2f} "
            f"(issue-15 target <= 1.2: {'meets' if max(filtered) <= 1.2 else 'MISS'}); "
            "nothing copied"
        )
    if ratios:
        worst50 = max(r[0] for r in ratios)
        worst99 = max(r[1] for r in ratios)
        console.print(
            f"isolation on vs off (same queries on behalf of the account): p50 ratio "
            f"{min(r[0] for r in ratios):.2f}-{worst50:.2f}, p99 ratio "
            f"{min(r[1] for r in ratios):.2f}-{worst99:.2f} (target <= 1.5: "
            f"{'meets' if worst50 <= 1.5 else 'MISS'}); building the account view "
            f"{result.isolation_view_s:.1f} s + its index {result.isolation_index_s:.1f} s, "
            "paid once per as_account()"
        )
    for w in result.walks + [Walk(**w) for w in result.anchor.get("walks", [])]:
        console.print(
            f"{w.label}: p50 {w.p50_ms:,.1f} ms, max {w.max_ms:,.1f} ms over "
            f"{w.queries} starts, up to {w.reached:,} vertices returned "
            f"(target: a walk reaching 100k+ vertices under {TARGET_WALK_MS:g} ms)"
        )
    console.print(
        f"index follows writes: 1,000 new vertices + edges applied in "
        f"[bold]{result.apply_1000_edges_ms:.1f} ms[/bold] (p50 of {APPLY_ROUNDS}, max "
        f"{result.apply_1000_edges_max_ms:.1f} ms; target {TARGET_APPLY_MS:g} ms); "
        f"compaction (overlay folded in) {result.compact_ms:.0f} ms; index arrays "
        f"{result.index_array_mib:,.1f} MiB; cold open + index + first query "
        f"[bold]{result.open_first_query_ms:,.0f} ms[/bold] for the first reader of this state "
        f"(opens the index from the columns and saves it), [bold]"
        f"{result.open_saved_first_query_ms:,.0f} ms[/bold] for the next (maps the saved "
        f"copy) (target {TARGET_OPEN_MS:g} ms at 100k jobs)"
    )
    if result.anchor:
        a = result.anchor
        console.print(
            f"anchor (the index of {a['rev']}, same store, same starts, depth 10): load "
            f"{a['index_s']:.2f} s (now {result.index_s:.2f} s), objects "
            f"{a['index_objects_mib']:,.0f} MiB (now {result.index_objects_mib:,.0f} MiB); "
            + "; ".join(
                f"{c['label']}: p50 {c['p50_ms']:.3f} / p99 {c['p99_ms']:.3f} ms"
                for c in a["cases"]
            )
        )
    big = [c for c in result.cases if c.max_vertices > TARGET_MAX_VERTICES]
    if big:
        console.print(
            "answers above 100 vertices (the targets do not apply; sizes as found): "
            + "; ".join(
                f"{c.method} {c.label} depth {c.depth}: mean "
                f"{c.mean_vertices:,.1f}, max {c.max_vertices:,}"
                for c in big
            )
        )
    else:
        console.print(
            f"every answer has at most {TARGET_MAX_VERTICES} vertices: the targets "
            "apply to every row"
        )
    if any(c.stopped_early for c in result.cases):
        console.print("* stopped at the time budget (--macro-budget) before --macro-queries")
    missed = [c for c in result.cases if c.meets_target is False]
    console.print(
        f"rows missing the targets: {len(missed)} of "
        f"{sum(c.meets_target is not None for c in result.cases)} judged"
        + (
            ": "
            + "; ".join(
                c.label if c.method == "SQL macro" else f"{c.label} d{c.depth}" for c in missed
            )
            if missed
            else ""
        )
    )


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark QueryLineage (in-memory index) and the SQL walk macros on a "
        "projected graph of N training jobs.",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"number of training jobs (default {DEFAULT_JOBS:,})",
    )
    parser.add_argument(
        "--queries",
        type=int,
        default=DEFAULT_QUERIES,
        help=f"QueryLineage queries per case (default {DEFAULT_QUERIES:,})",
    )
    parser.add_argument(
        "--macro-queries",
        type=int,
        default=DEFAULT_MACRO_QUERIES,
        help=f"SQL macro queries per case, at most --queries (default {DEFAULT_MACRO_QUERIES})",
    )
    parser.add_argument(
        "--macro-budget",
        type=float,
        default=DEFAULT_MACRO_BUDGET_S,
        metavar="SECONDS",
        help=f"stop a macro case after this long (default {DEFAULT_MACRO_BUDGET_S:g} s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where to build (or find) the projection, in n-<N>-seed-<seed>; "
        "kept, and reused by a later run with the same N and seed "
        "(default: a temporary directory, removed unless --keep)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (without --workdir)"
    )
    parser.add_argument(
        "--anchor",
        default=DEFAULT_ANCHOR,
        metavar="REV",
        help="also measure the index of this git revision on the same store "
        f"(default {DEFAULT_ANCHOR}, the one before the CSR index; "
        "'' for none)",
    )
    parser.add_argument(
        "--json", action="store_true", help="also print one JSON line of the figures"
    )
    args = parser.parse_args(argv)
    if args.jobs < DEPLOY_EVERY:
        parser.error(f"--jobs must be at least {DEPLOY_EVERY}")
    if args.queries < 1 or args.macro_queries < 0:
        parser.error("--queries must be >= 1 and --macro-queries >= 0")
    args.macro_queries = min(args.macro_queries, args.queries)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # a wide table even when the output is a pipe or a file (rich falls back to 80 columns)
    console = Console(width=None if sys.stdout.isatty() else 180)
    info = ep.machine()
    temp = args.workdir is None
    root = Path(tempfile.mkdtemp(prefix="mlineage-qbench-")) if temp else args.workdir
    try:
        settings, built = prepare(root, args.jobs, args.seed)
        result = RunResult(
            jobs=args.jobs,
            seed=args.seed,
            queries=args.queries,
            macro_queries=args.macro_queries,
            build=built,
        )
        result.db_mib = ep.dir_size_mib(settings.home, "lineage.duckdb")
        measure(
            settings,
            args.jobs,
            args.seed,
            args.queries,
            args.macro_queries,
            args.macro_budget,
            result,
            anchor=args.anchor or None,
        )
        render(console, result, info)
        if args.json:
            figures = asdict(result)
            figures["machine"] = info
            figures["targets"] = {
                "p50_ms": TARGET_P50_MS,
                "p99_ms": TARGET_P99_MS,
                "max_vertices": TARGET_MAX_VERTICES,
            }
            print(json.dumps(figures, sort_keys=True, default=str), flush=True)
    finally:
        if temp and args.keep:
            ep.note(f"kept the files under {root}")
        elif temp:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
