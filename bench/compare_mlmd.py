"""mlineage next to Google's ML Metadata (MLMD): the same workload, each in its own process.

Workload (from one seed, generated once by the parent and handed to both sides as a JSON
file): N training jobs, each with two input datasets drawn from a pool of N/5 dataset URIs,
one of 5 images and one model output; every 10th model is deployed to an endpoint. With the
same seed it is the workload of ``embedded_pipeline.py`` and ``query_lineage.py`` (same
datasets, images, event ids and times).

Each side runs in a child process of its own (this script with ``--side``), so its peak RSS
(``VmHWM``, which starts afresh at exec) is its own:

- **MLMD** (``ml-metadata`` 1.17.0, SQLite file store, ``READWRITE_OPENCREATE``): artifact
  types DataSet, Image, Model, Endpoint; execution types Training and Deploy. A job is a
  Training execution with the two datasets and the image as INPUT events and the model as
  OUTPUT (datasets and images are created at first use and reused by id after that); a
  deployment is a Deploy execution with the model as INPUT and the endpoint artifact as
  OUTPUT. Queries: ``get_lineage_subgraph`` from one artifact (``filter_query 'id = X'``),
  ``max_num_hops=4``: MLMD counts every artifact-execution event as a hop, so dataset ->
  training -> model -> deploy -> endpoint is 4 hops, and so is endpoint -> deploy -> model ->
  training -> dataset. The call is the plain one (no field mask): nodes, their types and the
  events, as a user writes it.
- **mlineage** (embedded, in a temporary ``MLINEAGE_HOME``): per job ``JobCreated`` (inputs:
  the two datasets; ``image_uri``; outputs: the model) and ``JobStatusChanged`` (Completed,
  with a metric), and per deployed model a ``ModelPackageCreated`` and an ``EndpointCreated``
  (the events of ``query_lineage.py``), published with ``Recorder.publish_many``; then
  ``TrackerService.run`` and ``ProjectorService.run`` (as ``embedded_pipeline.py``). Then
  ``replay`` (rebuild the projection from offset 0). Queries: ``LineageStore.query_lineage``
  (``include_edges=True``, ``max_depth=10``, SageMaker's default).

Ingest (jobs/s = N / the time to ingest the whole workload, deployments included) is measured
twice on each side, into separate stores:

- one call per job, as a training script that records its own job: MLMD one
  ``put_execution`` per job and per deployment; mlineage one ``publish_many`` of the job's
  events, then track + project;
- batched: MLMD ``put_lineage_subgraph`` of 1,000 jobs (and their deployments) a call;
  mlineage ``publish_many`` of 5,000 events, then track + project. mlineage's replay and
  queries run on this store, MLMD's queries on the one-call-per-job store (the batched one is
  checked to hold as many artifacts, executions and events, then removed).

Queries on both sides: Descendants from the same random datasets and Ascendants from the same
random endpoints, one at a time; p50 / p99 of the wall time of each call. "open + first
query" is timed apart: opening the store and answering one query (for mlineage this builds
its in-memory index).

Answers agree: for every query, the datasets, models and endpoints in mlineage's answer (ARNs
mapped back to the workload's URIs and names) must equal those in MLMD's subgraph (artifact
ids mapped back likewise), and both must equal what the workload says (descendants of a
dataset: the models trained on it and the endpoints serving them; ascendants of an endpoint:
its model and that model's datasets). The start itself, images and the kinds only one side
has (trial components, model packages, actions, contexts other than endpoints, executions)
are left out. Exit status 1 when they disagree, 2 when ``ml_metadata`` cannot be imported.

Usage::

    python bench/compare_mlmd.py [--jobs 10000] [--seed 0] [--queries 100] [--json out.json]

with an interpreter that has both mlineage and ``ml-metadata==1.17.0`` (which needs
``protobuf<5``); the script says how to get one when it has not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Only the standard library at module level: the MLMD child must not load mlineage, DuckDB or
# pyarrow, or its peak RSS would include theirs.

DEFAULT_JOBS = 10_000
DEFAULT_QUERIES = 100
DEPLOY_EVERY = 10
MODEL_GROUPS = 10
PUBLISH_CHUNK = 5_000  # events per publish_many, as embedded_pipeline.py
MLMD_BATCH = 1_000  # jobs per put_lineage_subgraph
MLMD_HOPS = 4  # dataset -> training -> model -> deploy -> endpoint (one hop per event)
MLINEAGE_DEPTH = 10  # SageMaker's default MaxDepth; the endpoint is 4 (direct) to 6 away
IMAGES = tuple(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/bench-train:v{k}" for k in range(5))
COMPARED = ("DataSet", "Model", "Endpoint")  # the kinds both sides have
PROGRESS_EVERY_S = 5.0
MLMD_VERSION = "1.17.0"
INSTALL_HINT = f"""\
Google ML Metadata cannot be imported by this interpreter ({{sys_executable}}):
  {{error}}

It needs ml-metadata=={MLMD_VERSION} (a manylinux x86_64 wheel for CPython 3.11) with
protobuf<5 (and attrs<24), next to mlineage. One command builds that environment
(.venv-mlmd, the project's [mlmd] extra) and runs this script:

    make compare              # N = 10,000;  make compare JOBS=100000

or by hand:

    python3.11 -m venv .venv-mlmd
    .venv-mlmd/bin/pip install -e '.[mlmd]'
    .venv-mlmd/bin/python bench/compare_mlmd.py
"""


# -- workload ------------------------------------------------------------------------------------
# Names as embedded_pipeline.py / query_lineage.py spell them.


def dataset_uri(k: int) -> str:
    return f"s3://bench-data/datasets/ds-{k}/"


def model_uri(i: int) -> str:
    return f"s3://bench-models/job-{i}/model.tar.gz"


def job_name(i: int) -> str:
    return f"bench-job-{i}"


def endpoint_name(i: int) -> str:
    return f"bench-endpoint-{i}"


def model_group(i: int) -> tuple[str, int]:
    """Model package group and version of deployed job ``i``."""
    k = i // DEPLOY_EVERY
    return f"bench-group-{k % MODEL_GROUPS}", k // MODEL_GROUPS + 1


def key(kind: str, name: str) -> str:
    """How both sides name a compared entity: ``DataSet:<uri>``, ``Model:<uri>``,
    ``Endpoint:<endpoint name>``."""
    return f"{kind}:{name}"


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Job:
    datasets: tuple[int, int]  # indices into the dataset pool
    image: int  # index into IMAGES
    created_id: str  # event ids and the metric, for mlineage's events
    status_id: str
    metric: float
    deploy_ids: tuple[str, str] | None = None  # ModelPackageCreated, EndpointCreated


@dataclass
class Workload:
    n_jobs: int
    seed: int
    jobs: list[Job]
    dataset_starts: list[int]  # dataset pool indices
    endpoint_starts: list[int]  # job indices (deployed ones)

    @classmethod
    def generate(cls, n_jobs: int, seed: int, queries: int) -> Workload:
        """Draws in the order of ``embedded_pipeline.job_drafts`` and ``query_lineage.workload``
        so that the same seed gives the same datasets, images, event ids and metrics."""
        rng = random.Random(seed)
        deploy_rng = random.Random(f"deploy-{seed}")
        pool = max(2, n_jobs // 5)
        jobs: list[Job] = []
        for i in range(n_jobs):
            train, validation = rng.sample(range(pool), 2)
            created_id = _event_id(rng)
            image = IMAGES.index(rng.choice(IMAGES))
            status_id = _event_id(rng)
            metric = round(rng.uniform(0.5, 1.0), 6)
            job = Job((train, validation), image, created_id, status_id, metric)
            if i % DEPLOY_EVERY == 0:
                job.deploy_ids = (_event_id(deploy_rng), _event_id(deploy_rng))
            jobs.append(job)
        used = sorted({k for job in jobs for k in job.datasets})
        deployed = [i for i, job in enumerate(jobs) if job.deploy_ids is not None]
        start_rng = random.Random(f"starts-{seed}")
        return cls(
            n_jobs,
            seed,
            jobs,
            [start_rng.choice(used) for _ in range(queries)],
            [start_rng.choice(deployed) for _ in range(queries)],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "n_jobs": self.n_jobs,
            "seed": self.seed,
            "jobs": [
                [
                    *j.datasets,
                    j.image,
                    j.created_id,
                    j.status_id,
                    j.metric,
                    list(j.deploy_ids) if j.deploy_ids else None,
                ]
                for j in self.jobs
            ],
            "dataset_starts": self.dataset_starts,
            "endpoint_starts": self.endpoint_starts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Workload:
        jobs = [
            Job((a, b), image, cid, sid, metric, (dep[0], dep[1]) if dep else None)
            for a, b, image, cid, sid, metric, dep in data["jobs"]
        ]
        return cls(
            data["n_jobs"], data["seed"], jobs, data["dataset_starts"], data["endpoint_starts"]
        )

    def deployed(self) -> Iterator[int]:
        return (i for i, job in enumerate(self.jobs) if job.deploy_ids is not None)

    def expected(self) -> tuple[list[set[str]], list[set[str]]]:
        """What the answers must be, from the workload alone (the start left out)."""
        trained_on: dict[int, list[int]] = {}
        for i, job in enumerate(self.jobs):
            for k in job.datasets:
                trained_on.setdefault(k, []).append(i)
        descendants = []
        for k in self.dataset_starts:
            answer = set()
            for i in trained_on[k]:
                answer.add(key("Model", model_uri(i)))
                if self.jobs[i].deploy_ids is not None:
                    answer.add(key("Endpoint", endpoint_name(i)))
            descendants.append(answer)
        ascendants = [
            {
                key("Model", model_uri(i)),
                *(key("DataSet", dataset_uri(k)) for k in self.jobs[i].datasets),
            }
            for i in self.endpoint_starts
        ]
        return descendants, ascendants


# -- measuring (both sides) ----------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far: VmHWM on Linux, which starts afresh at
    exec (ru_maxrss does not: a child forked from a large parent reports the parent's peak)."""
    with contextlib.suppress(OSError, ValueError), Path("/proc/self/status").open() as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def latency(times: list[float], sizes: list[int]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {
        "queries": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / len(ms),
        "max_ms": ms[-1],
        "mean_answer": sum(sizes) / len(sizes),
    }


def run_queries(
    label: str,
    starts: Sequence[Any],
    query: Callable[[Any], Any],
    size: Callable[[Any], int],
    answer: Callable[[Any, Any], set[str]],
) -> tuple[dict[str, float], list[set[str]]]:
    """Time ``query(start)`` for each start, one at a time; map the answers afterwards."""
    note(f"  {label}: {len(starts):,} queries")
    times: list[float] = []
    results = []
    for start in starts:
        t0 = time.perf_counter()
        result = query(start)
        times.append(time.perf_counter() - t0)
        results.append(result)
    answers = [answer(start, result) for start, result in zip(starts, results, strict=True)]
    return latency(times, [size(r) for r in results]), answers


class Ticker:
    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.last = label, total, time.perf_counter()

    def __call__(self, done: int) -> None:
        if time.perf_counter() - self.last >= PROGRESS_EVERY_S:
            self.last = time.perf_counter()
            note(f"  {self.label}: {done:,} / {self.total:,}")


def dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / (1024 * 1024)


# -- the MLMD side -------------------------------------------------------------------------------


def query_results(
    workdir: Path,
    first_ms: float,
    desc: dict[str, float],
    asc: dict[str, float],
    desc_answers: Sequence[set[str]],
    asc_answers: Sequence[set[str]],
    peaks: dict[str, float],
) -> dict[str, Any]:
    """The part of a side's result both sides report the same way."""
    return {
        "open_first_query_ms": first_ms,
        "descendants": desc,
        "ascendants": asc,
        "disk_mib": dir_mib(workdir),
        "peak_rss_mib": peak_rss_mib(),
        "peak_rss_after_mib": peaks,
        "answers": {
            "descendants": [sorted(a) for a in desc_answers],
            "ascendants": [sorted(a) for a in asc_answers],
        },
    }


def run_mlmd(w: Workload, workdir: Path) -> dict[str, Any]:
    import google.protobuf
    import ml_metadata
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    def connect(path: Path) -> Any:
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return config

    def register_types(store: Any) -> tuple[dict[str, int], int, int]:
        type_id = {
            name: store.put_artifact_type(pb.ArtifactType(name=name))
            for name in ("DataSet", "Image", "Model", "Endpoint")
        }
        return (
            type_id,
            store.put_execution_type(pb.ExecutionType(name="Training")),
            store.put_execution_type(pb.ExecutionType(name="Deploy")),
        )

    def training_execution(training: int, i: int, job: Job) -> Any:
        execution = pb.Execution(
            type_id=training, name=job_name(i), last_known_state=pb.Execution.COMPLETE
        )
        execution.custom_properties["validation:accuracy"].double_value = job.metric
        return execution

    def deploy_execution(deploy: int, i: int) -> Any:
        return pb.Execution(
            type_id=deploy,
            name=f"deploy-{endpoint_name(i)}",
            last_known_state=pb.Execution.COMPLETE,
        )

    def inputs_of(job: Job) -> list[tuple[str, str]]:
        return [*(("DataSet", dataset_uri(k)) for k in job.datasets), ("Image", IMAGES[job.image])]

    n_deploy = sum(1 for _ in w.deployed())
    peaks: dict[str, float] = {}

    # 1. one put_execution per job and per deployment: the store the queries run on
    path = workdir / "mlmd.sqlite"
    note(
        f"MLMD: ingest {w.n_jobs:,} training + {n_deploy:,} deploy executions, one "
        "put_execution each"
    )
    key_of: dict[int, str] = {}  # artifact id -> key
    id_of: dict[str, int] = {}  # key -> artifact id (datasets, endpoints)
    t0 = time.perf_counter()
    store = metadata_store.MetadataStore(connect(path))
    type_id, training, deploy = register_types(store)
    # Reused artifacts are passed whole (id, type and uri): put_execution writes the artifact
    # it is given, so one with only an id would lose its uri.
    shared: dict[str, Any] = {}
    tick = Ticker("put_execution", w.n_jobs)
    for i, job in enumerate(w.jobs):
        inputs = inputs_of(job)
        pairs = []
        for kind, uri in inputs:
            artifact = shared.get(uri)
            if artifact is None:
                artifact = pb.Artifact(type_id=type_id[kind], uri=uri)
            pairs.append((artifact, pb.Event(type=pb.Event.INPUT)))
        model = pb.Artifact(type_id=type_id["Model"], uri=model_uri(i))
        pairs.append((model, pb.Event(type=pb.Event.OUTPUT)))
        _, ids, _ = store.put_execution(training_execution(training, i, job), pairs, [])
        for (kind, uri), (artifact, _), artifact_id in zip(inputs, pairs, ids, strict=False):
            if not artifact.HasField("id"):
                artifact.id = artifact_id
                shared[uri] = artifact
                key_of[artifact_id] = key(kind, uri)
                id_of[key(kind, uri)] = artifact_id
        model.id = ids[-1]
        key_of[model.id] = key("Model", model.uri)
        if job.deploy_ids is not None:
            name = endpoint_name(i)
            endpoint = pb.Artifact(type_id=type_id["Endpoint"], uri=name, name=name)
            _, ids, _ = store.put_execution(
                deploy_execution(deploy, i),
                [
                    (model, pb.Event(type=pb.Event.INPUT)),
                    (endpoint, pb.Event(type=pb.Event.OUTPUT)),
                ],
                [],
            )
            key_of[ids[1]] = key("Endpoint", name)
            id_of[key("Endpoint", name)] = ids[1]
        tick(i + 1)
    per_job_s = time.perf_counter() - t0
    del store
    peaks["ingest, one call per job"] = peak_rss_mib()

    # 2. batched: put_lineage_subgraph with MLMD_BATCH jobs (and their deployments) a call
    batch_path = workdir / "mlmd-batched.sqlite"
    note(f"MLMD: ingest again, put_lineage_subgraph with {MLMD_BATCH:,} jobs a call")
    t0 = time.perf_counter()
    store = metadata_store.MetadataStore(connect(batch_path))
    type_id, training, deploy = register_types(store)
    stored: dict[str, int] = {}  # uri of a shared artifact -> id

    class Batch:
        """One put_lineage_subgraph call: executions, new artifacts and the events between
        them (artifacts stored by an earlier call are named by id)."""

        def __init__(self) -> None:
            self.executions: list[Any] = []
            self.artifacts: list[Any] = []
            self.new: dict[str, int] = {}  # uri -> index in artifacts
            self.edges: list[tuple[int, int | None, Any]] = []

        def edge(self, execution: int, kind: str, uri: str, event_type: int) -> None:
            event = pb.Event(type=event_type)
            if uri in stored:
                event.artifact_id = stored[uri]
                self.edges.append((execution, None, event))
                return
            if uri not in self.new:
                self.new[uri] = len(self.artifacts)
                artifact = pb.Artifact(type_id=type_id[kind], uri=uri)
                if kind == "Endpoint":
                    artifact.name = uri  # as in the per-job store
                self.artifacts.append(artifact)
            self.edges.append((execution, self.new[uri], event))

    for lo in range(0, w.n_jobs, MLMD_BATCH):
        batch = Batch()
        for i in range(lo, min(lo + MLMD_BATCH, w.n_jobs)):
            job = w.jobs[i]
            x = len(batch.executions)
            batch.executions.append(training_execution(training, i, job))
            for kind, uri in inputs_of(job):
                batch.edge(x, kind, uri, pb.Event.INPUT)
            batch.edge(x, "Model", model_uri(i), pb.Event.OUTPUT)
            if job.deploy_ids is not None:
                x = len(batch.executions)
                batch.executions.append(deploy_execution(deploy, i))
                batch.edge(x, "Model", model_uri(i), pb.Event.INPUT)
                batch.edge(x, "Endpoint", endpoint_name(i), pb.Event.OUTPUT)
        _, ids, _ = store.put_lineage_subgraph(batch.executions, batch.artifacts, [], batch.edges)
        for uri, index in batch.new.items():
            if not uri.startswith("s3://bench-models/"):
                stored[uri] = ids[index]
    batched_s = time.perf_counter() - t0
    del store
    peaks["ingest, batched"] = peak_rss_mib()
    rows = {}
    for p in (path, batch_path):
        with sqlite3.connect(p) as con:
            rows[p] = [
                con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("Artifact", "Execution", "Event")
            ]
        con.close()
    assert rows[path] == rows[batch_path], f"the batched store differs: {rows}"
    batch_path.unlink()

    def subgraph(start: int, direction: int) -> Any:
        return reader.get_lineage_subgraph(
            pb.LineageSubgraphQueryOptions(
                starting_artifacts=pb.LineageSubgraphQueryOptions.StartingNodes(
                    filter_query=f"id = {start}"
                ),
                max_num_hops=MLMD_HOPS,
                direction=direction,
            )
        )

    def answer(start: int, graph: Any) -> set[str]:
        out = set()
        for artifact in graph.artifacts:
            if artifact.id == start:
                continue
            name = key_of.get(artifact.id, f"?:unknown MLMD artifact {artifact.id}")
            if not name.startswith("Image:"):
                out.add(name)
        return out

    def size(graph: Any) -> int:  # nodes, the start not counted (as QueryLineage's vertices)
        return len(graph.artifacts) + len(graph.executions) - 1

    down, up = pb.LineageSubgraphQueryOptions.DOWNSTREAM, pb.LineageSubgraphQueryOptions.UPSTREAM
    datasets = [id_of[key("DataSet", dataset_uri(k))] for k in w.dataset_starts]
    endpoints = [id_of[key("Endpoint", endpoint_name(i))] for i in w.endpoint_starts]
    note("MLMD: queries (get_lineage_subgraph)")
    t0 = time.perf_counter()
    reader = metadata_store.MetadataStore(connect(path))
    subgraph(datasets[0], down)
    first_ms = (time.perf_counter() - t0) * 1000
    desc, desc_answers = run_queries(
        "Descendants from a dataset", datasets, lambda s: subgraph(s, down), size, answer
    )
    asc, asc_answers = run_queries(
        "Ascendants from an endpoint", endpoints, lambda s: subgraph(s, up), size, answer
    )
    peaks["queries"] = peak_rss_mib()
    return {
        "side": "mlmd",
        "versions": {
            "ml_metadata": ml_metadata.__version__,
            "protobuf": google.protobuf.__version__,
        },
        "ingest_per_job": {
            "s": per_job_s,
            "jobs_per_s": w.n_jobs / per_job_s,
            "calls": w.n_jobs + n_deploy,
        },
        "ingest_batched": {
            "s": batched_s,
            "jobs_per_s": w.n_jobs / batched_s,
            "calls": -(-w.n_jobs // MLMD_BATCH),
        },
        "store_rows": dict(zip(("artifacts", "executions", "events"), rows[path], strict=True)),
        "replay": None,
        **query_results(workdir, first_ms, desc, asc, desc_answers, asc_answers, peaks),
    }


# -- the mlineage side ---------------------------------------------------------------------------


def run_mlineage(w: Workload, workdir: Path) -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    import duckdb

    from mlineage import __version__, arns
    from mlineage.events.models import canonical_time
    from mlineage.projection.service import ProjectorService, replay
    from mlineage.projection.store import DuckDBStore
    from mlineage.query.store import LineageStore
    from mlineage.recorder import Recorder
    from mlineage.settings import Settings
    from mlineage.tracker.service import TrackerService

    region, account = "us-east-1", "000000000000"  # the defaults; Settings are checked below
    epoch = datetime(2024, 1, 1, tzinfo=UTC)

    def job_events(i: int, job: Job) -> list[dict[str, Any]]:
        """Job ``i``'s events as query_lineage.workload has them, from the handed workload."""
        name, image = job_name(i), IMAGES[job.image]
        created_at = epoch + timedelta(seconds=2 * i)
        events: list[dict[str, Any]] = [
            {
                "event_type": "JobCreated",
                "event_id": job.created_id,
                "occurred_at": canonical_time(created_at),
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": name,
                    "image_uri": image,
                    "inputs": [
                        {"name": "train", "uri": dataset_uri(job.datasets[0])},
                        {"name": "validation", "uri": dataset_uri(job.datasets[1])},
                    ],
                    "outputs": [{"name": "model", "uri": model_uri(i)}],
                },
            },
            {
                "event_type": "JobStatusChanged",
                "event_id": job.status_id,
                "occurred_at": canonical_time(created_at + timedelta(seconds=1)),
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": name,
                    "status": "Completed",
                    "metrics": {"validation:accuracy": job.metric},
                },
            },
        ]
        if job.deploy_ids is None:
            return events
        group, version = model_group(i)
        done_at = created_at + timedelta(seconds=1)
        events.append(
            {
                "event_type": "ModelPackageCreated",
                "event_id": job.deploy_ids[0],
                "occurred_at": canonical_time(done_at + timedelta(milliseconds=250)),
                "payload": {
                    "model_package_group_name": group,
                    "version": version,
                    "model_data_uri": model_uri(i),
                    "image_uri": image,
                    "approval_status": "Approved",
                },
            }
        )
        events.append(
            {
                "event_type": "EndpointCreated",
                "event_id": job.deploy_ids[1],
                "occurred_at": canonical_time(done_at + timedelta(milliseconds=500)),
                "payload": {
                    "endpoint_name": endpoint_name(i),
                    "models": [
                        {
                            "model_data_uri": model_uri(i),
                            "image_uri": image,
                            "model_package_arn": arns.model_package_arn(
                                region, account, group, version
                            ),
                        }
                    ],
                },
            }
        )
        return events

    def batches(per_job: bool) -> Iterator[list[dict[str, Any]]]:
        if per_job:
            yield from (job_events(i, job) for i, job in enumerate(w.jobs))
            return
        chunk: list[dict[str, Any]] = []
        for i, job in enumerate(w.jobs):
            chunk.extend(job_events(i, job))
            if len(chunk) >= PUBLISH_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    n_events = 2 * w.n_jobs + 2 * sum(1 for _ in w.deployed())
    peaks: dict[str, float] = {}

    def ingest(label: str, home: Path, per_job: bool) -> tuple[Any, dict[str, Any]]:
        """Publish (one publish_many per job, or in chunks), track and project into ``home``;
        return the settings and the figures."""
        # environ={} so MLINEAGE_* in the caller's environment cannot point at a real log
        settings = Settings.load(home=home, environ={})
        assert (settings.region, settings.account_id) == (region, account), settings
        recorder = Recorder(settings)
        log = recorder.log
        how = "one publish_many per job" if per_job else f"publish_many of {PUBLISH_CHUNK:,}"
        note(f"mlineage: {label}: publish {n_events:,} events ({how})")
        tick = Ticker("publish", n_events)
        t0 = time.perf_counter()
        published = 0
        for batch in batches(per_job):
            published += len(recorder.publish_many(batch))
            tick(published)
        publish_s = time.perf_counter() - t0
        assert published == n_events, (published, n_events)
        note(f"mlineage: {label}: track (TrackerService.run)")
        t0 = time.perf_counter()
        tstats = TrackerService(log).run()
        track_s = time.perf_counter() - t0
        assert tstats.dead_lettered == 0, f"tracker dead letters: {tstats}"
        note(f"mlineage: {label}: project (ProjectorService.run)")
        t0 = time.perf_counter()
        store = DuckDBStore(settings.db_path)
        try:
            pstats = ProjectorService(log, store).run()
        finally:
            store.close()
        project_s = time.perf_counter() - t0
        assert pstats.dead_lettered == 0, f"projector dead letters: {pstats}"
        recorder.close()
        log.close()
        total = publish_s + track_s + project_s
        peaks[label] = peak_rss_mib()
        return settings, {
            "s": total,
            "jobs_per_s": w.n_jobs / total,
            "publish_s": publish_s,
            "track_s": track_s,
            "project_s": project_s,
            "source_events": n_events,
            "derived_events": tstats.derived,
            "records": pstats.consumed,
        }

    # 1. one publish_many per job (like a training script that publishes its own job)
    _, per_job = ingest("ingest, one call per job", workdir / "per-job", per_job=True)
    shutil.rmtree(workdir / "per-job")
    # 2. batched: the store that replay and the queries run on
    settings, batched = ingest("ingest, batched", workdir / "home", per_job=False)

    note(f"mlineage: replay {batched['records']:,} records")
    recorder = Recorder(settings)
    t0 = time.perf_counter()
    rstats = replay(recorder.log, settings.db_path)
    replay_s = time.perf_counter() - t0
    assert rstats.consumed == batched["records"], (rstats, batched)
    recorder.log.close()
    recorder.close()
    peaks["replay"] = peak_rss_mib()

    key_of: dict[str, str] = {}
    for i, job in enumerate(w.jobs):
        for k in job.datasets:
            key_of[arns.artifact_arn(region, account, dataset_uri(k))] = key(
                "DataSet", dataset_uri(k)
            )
        key_of[arns.artifact_arn(region, account, model_uri(i))] = key("Model", model_uri(i))
        if job.deploy_ids is not None:
            context = arns.endpoint_context_name(endpoint_name(i))
            key_of[arns.named_arn("context", region, account, context)] = key(
                "Endpoint", endpoint_name(i)
            )

    def answer(start: str, result: Any) -> set[str]:
        out = set()
        for vertex in result.vertices:
            if vertex.arn == start:
                continue
            name = key_of.get(vertex.arn)
            if name is not None:
                out.add(name)
            elif vertex.type in COMPARED:
                out.add(f"?:unknown mlineage {vertex.type} {vertex.arn}")
        return out

    def size(result: Any) -> int:
        return len(result.vertices)

    datasets = [arns.artifact_arn(region, account, dataset_uri(k)) for k in w.dataset_starts]
    endpoints = [
        arns.named_arn("context", region, account, arns.endpoint_context_name(endpoint_name(i)))
        for i in w.endpoint_starts
    ]
    note("mlineage: queries (LineageStore.query_lineage)")
    t0 = time.perf_counter()
    reader = LineageStore.open(settings.db_path)
    try:
        reader.query_lineage(datasets[0], direction="Descendants", max_depth=MLINEAGE_DEPTH)
        first_ms = (time.perf_counter() - t0) * 1000
        desc, desc_answers = run_queries(
            "Descendants from a dataset",
            datasets,
            lambda s: reader.query_lineage(
                s, direction="Descendants", include_edges=True, max_depth=MLINEAGE_DEPTH
            ),
            size,
            answer,
        )
        asc, asc_answers = run_queries(
            "Ascendants from an endpoint",
            endpoints,
            lambda s: reader.query_lineage(
                s, direction="Ascendants", include_edges=True, max_depth=MLINEAGE_DEPTH
            ),
            size,
            answer,
        )
    finally:
        reader.close()
    peaks["queries"] = peak_rss_mib()
    return {
        "side": "mlineage",
        "versions": {"mlineage": __version__, "duckdb": duckdb.__version__},
        "ingest_per_job": per_job,
        "ingest_batched": batched,
        "replay": {
            "s": replay_s,
            "events_per_s": rstats.consumed / replay_s,
            "records": rstats.consumed,
        },
        **query_results(workdir, first_ms, desc, asc, desc_answers, asc_answers, peaks),
    }


def child(side: str, workload_path: Path, out_path: Path, workdir: Path) -> int:
    w = Workload.from_json(json.loads(workload_path.read_text()))
    workdir.mkdir(parents=True, exist_ok=True)
    result = run_mlmd(w, workdir) if side == "mlmd" else run_mlineage(w, workdir)
    out_path.write_text(json.dumps(result))
    return 0


# -- the parent: run both, compare, print ----------------------------------------------------------


def mlmd_import_error() -> str | None:
    try:
        from ml_metadata.metadata_store import metadata_store  # noqa: F401
    except Exception as exc:  # ImportError, or protobuf>=5's TypeError at import
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass
class Agreement:
    queries: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def compare(w: Workload, results: dict[str, dict[str, Any]]) -> Agreement:
    expected_desc, expected_asc = w.expected()
    agreement = Agreement()
    for direction, expected, starts in (
        ("descendants", expected_desc, [key("DataSet", dataset_uri(k)) for k in w.dataset_starts]),
        (
            "ascendants",
            expected_asc,
            [key("Endpoint", endpoint_name(i)) for i in w.endpoint_starts],
        ),
    ):
        mlmd = results["mlmd"]["answers"][direction]
        mine = results["mlineage"]["answers"][direction]
        for n, start in enumerate(starts):
            agreement.queries += 1
            a, b, want = set(mlmd[n]), set(mine[n]), expected[n]
            if a == b == want:
                continue
            parts = [f"{direction} of {start}:"]
            if a != b:
                parts.append(f"only MLMD {sorted(a - b)}, only mlineage {sorted(b - a)};")
            for side, got in (("MLMD", a), ("mlineage", b)):
                if got != want:
                    parts.append(
                        f"{side} vs workload: missing {sorted(want - got)}, "
                        f"extra {sorted(got - want)};"
                    )
            agreement.mismatches.append(" ".join(parts))
    return agreement


def advantage(
    mlineage: float | None,
    mlmd: float | None,
    higher_is_better: bool,
    better: str = "faster",
    worse: str = "slower",
) -> str:
    if not mlineage or not mlmd:
        return "–"
    r = mlineage / mlmd if higher_is_better else mlmd / mlineage
    if 1 / 1.05 < r < 1.05:
        return f"about even ({r:.2f}x)"
    return f"{r:.1f}x {better}" if r >= 1 else f"{1 / r:.1f}x {worse}"


def render(
    w: Workload, results: dict[str, dict[str, Any]], agreement: Agreement, info: dict[str, Any]
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    mlmd, mine = results["mlmd"], results["mlineage"]
    batched = mine["ingest_batched"]
    n_endpoints = sum(1 for _ in w.deployed())
    console.print(
        f"machine: {info['cpu_count']} CPUs, {info['platform']}; Python {info['python']}, "
        f"SQLite {info['sqlite']}; ml-metadata {mlmd['versions']['ml_metadata']} (protobuf "
        f"{mlmd['versions']['protobuf']}); mlineage {mine['versions']['mlineage']} (DuckDB "
        f"{mine['versions']['duckdb']})"
    )
    console.print(
        f"workload: N = {w.n_jobs:,} training jobs (seed {w.seed}), 2 of {max(2, w.n_jobs // 5):,}"
        f" datasets + 1 of {len(IMAGES)} images in, 1 model out; every {DEPLOY_EVERY}th model "
        f"deployed ({n_endpoints:,} endpoints); {len(w.dataset_starts):,} queries per direction"
    )
    table = Table(
        title=f"mlineage vs Google ML Metadata — N = {w.n_jobs:,} jobs, each side in its own "
        "process",
        title_justify="left",
        caption=(
            "ingest, one call per job: MLMD put_execution per job and per deployment; mlineage "
            "publish_many of one job's events, then track + project.\n"
            f"ingest, batched: MLMD put_lineage_subgraph of {MLMD_BATCH:,} jobs; mlineage "
            f"publish_many of {PUBLISH_CHUNK:,} events "
            f"({batched['source_events']:,} in all, {batched['publish_s']:.1f} s) + track "
            f"({batched['derived_events']:,} derived, {batched['track_s']:.1f} s) + project "
            f"({batched['project_s']:.1f} s). Replay and queries run on this store.\n"
            f"queries: MLMD get_lineage_subgraph, max_num_hops={MLMD_HOPS}, no field mask; "
            f"mlineage query_lineage, max_depth={MLINEAGE_DEPTH}, include_edges=True; one at a "
            "time, wall time per call.\n"
            "open + first query: a new store object and one query (mlineage builds its "
            "in-memory index there). Peak RSS: VmHWM of the side's process (all stages)."
        ),
        caption_justify="left",
    )
    table.add_column("")
    table.add_column("MLMD", justify="right")
    table.add_column("mlineage", justify="right")
    table.add_column("mlineage advantage", justify="right")

    def ms(x: float) -> str:
        return f"{x:.3f} ms"

    for label, name in (
        ("ingest, one call per job", "ingest_per_job"),
        ("ingest, batched", "ingest_batched"),
    ):
        a, b = mlmd[name], mine[name]
        table.add_row(
            label,
            f"{a['jobs_per_s']:,.0f} jobs/s ({a['s']:.1f} s)",
            f"{b['jobs_per_s']:,.0f} jobs/s ({b['s']:.1f} s)",
            advantage(b["jobs_per_s"], a["jobs_per_s"], True),
        )
    replay = mine["replay"]
    table.add_row(
        "replay",
        "n/a (MLMD has no event log)",
        f"{replay['events_per_s']:,.0f} events/s ({replay['s']:.1f} s)",
        "–",
    )
    for label, name in (
        ("Descendants from a dataset", "descendants"),
        ("Ascendants from an endpoint", "ascendants"),
    ):
        for q in ("p50", "p99"):
            table.add_row(
                f"{label} {q}",
                ms(mlmd[name][f"{q}_ms"]),
                ms(mine[name][f"{q}_ms"]),
                advantage(mine[name][f"{q}_ms"], mlmd[name][f"{q}_ms"], False),
            )
    table.add_row(
        "open + first query",
        ms(mlmd["open_first_query_ms"]),
        ms(mine["open_first_query_ms"]),
        advantage(mine["open_first_query_ms"], mlmd["open_first_query_ms"], False),
    )
    table.add_row(
        "on disk",
        f"{mlmd['disk_mib']:,.0f} MiB",
        f"{mine['disk_mib']:,.0f} MiB",
        advantage(mine["disk_mib"], mlmd["disk_mib"], False, "smaller", "larger"),
    )
    table.add_row(
        "peak RSS",
        f"{mlmd['peak_rss_mib']:,.0f} MiB",
        f"{mine['peak_rss_mib']:,.0f} MiB",
        advantage(mine["peak_rss_mib"], mlmd["peak_rss_mib"], False, "less", "more"),
    )
    console.print(table)
    sizes = ", ".join(
        f"{label} MLMD {mlmd[name]['mean_answer']:.1f} nodes / mlineage "
        f"{mine[name]['mean_answer']:.1f} vertices"
        for label, name in (("Descendants", "descendants"), ("Ascendants", "ascendants"))
    )
    console.print(f"mean answer size (the start not counted): {sizes}")
    if agreement.ok:
        console.print(
            f"answers agree: [bold green]PASS[/bold green] — {agreement.queries:,} queries, "
            "the same datasets, models and endpoints on both sides, as the workload says"
        )
    else:
        console.print(
            f"answers agree: [bold red]FAIL[/bold red] — {len(agreement.mismatches):,} of "
            f"{agreement.queries:,} queries differ; the first ones:"
        )
        for line in agreement.mismatches[:5]:
            console.print(f"  {line}", markup=False)


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark mlineage next to Google ML Metadata on one workload: ingest, "
        "replay, lineage queries, peak RSS; checks that the answers agree."
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"training jobs (default {DEFAULT_JOBS:,})",
    )
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument(
        "--queries",
        type=int,
        default=DEFAULT_QUERIES,
        help=f"queries per direction (default {DEFAULT_QUERIES})",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (the stores) and say where"
    )
    parser.add_argument("--side", choices=("mlmd", "mlineage"), help=argparse.SUPPRESS)
    parser.add_argument("--workload", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs < DEPLOY_EVERY:
        parser.error(f"--jobs must be at least {DEPLOY_EVERY} (one endpoint)")
    if args.queries < 1:
        parser.error("--queries must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.side:
        return child(args.side, args.workload, args.out, args.workdir)
    error = mlmd_import_error()
    if error is not None:
        print(INSTALL_HINT.format(sys_executable=sys.executable, error=error), file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="mlineage-vs-mlmd-"))
    try:
        note(f"workload: N={args.jobs:,}, seed {args.seed}")
        w = Workload.generate(args.jobs, args.seed, args.queries)
        workload_path = root / "workload.json"
        workload_path.write_text(json.dumps(w.to_json()))
        results: dict[str, dict[str, Any]] = {}
        wall: dict[str, float] = {}
        for side in ("mlmd", "mlineage"):
            out = root / f"{side}.json"
            t0 = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--side",
                    side,
                    "--workload",
                    str(workload_path),
                    "--out",
                    str(out),
                    "--workdir",
                    str(root / side),
                ],
                check=False,
            )
            wall[side] = time.perf_counter() - t0
            if proc.returncode != 0:
                note(f"the {side} side failed (exit {proc.returncode})")
                return 1
            results[side] = json.loads(out.read_text())
            note(f"{side} side done in {wall[side]:.1f} s")
        agreement = compare(w, results)
        info = machine()
        render(w, results, agreement, info)
        if args.json:
            figures = {
                "jobs": w.n_jobs,
                "seed": w.seed,
                "queries": args.queries,
                "endpoints": sum(1 for _ in w.deployed()),
                "mlmd_max_num_hops": MLMD_HOPS,
                "mlineage_max_depth": MLINEAGE_DEPTH,
                "machine": info,
                "side_wall_s": wall,
                "answers_agree": agreement.ok,
                "mismatches": agreement.mismatches,
                **{
                    side: {k: v for k, v in r.items() if k != "answers"}
                    for side, r in results.items()
                },
            }
            args.json.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
            note(f"figures written to {args.json}")
        return 0 if agreement.ok else 1
    finally:
        if args.keep:
            note(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
