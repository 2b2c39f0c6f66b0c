"""Builders shared by the tests: complete events as JSON-able dicts, and a way to project
records in a chosen order and batching into a store."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlineage.log.base import TOPIC_ENTITIES, TOPIC_JOBS, EventLog, Record
from mlineage.projection.ingest import SqlIngest, project_batch
from mlineage.projection.service import ALLOWED
from mlineage.projection.store import DuckDBStore

ACCOUNT = "111122223333"
REGION = "us-east-1"


def event(
    event_type: str,
    payload: dict[str, Any],
    *,
    second: int = 0,
    event_id: str | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "event_id": event_id or str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": f"2026-03-01T10:{second // 60:02d}:{second % 60:02d}Z",
        "account_id": account,
        "region": region,
        "payload": payload,
    }


def upsert(entity: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return event("EntityUpserted", {"entity": entity}, **kw)


def delete(key: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return event("EntityDeleted", key, **kw)


def raw(e: dict[str, Any]) -> bytes:
    return json.dumps(e, sort_keys=True).encode()


def records(values: Sequence[bytes], topic: str = TOPIC_ENTITIES) -> list[Record]:
    return [Record(topic, 0, i, None, v, (), 0) for i, v in enumerate(values)]


def apply_batches(
    store: DuckDBStore,
    values: Sequence[bytes],
    batch_sizes: Sequence[int],
    topic: str = TOPIC_ENTITIES,
    ingest: SqlIngest | None = None,
) -> None:
    """Project ``values`` (in this order) into ``store``, cut into batches of these sizes
    (the last batch takes the rest); with ``ingest``, every batch goes through the SQL stage
    (whatever its size), else through the models and project()."""
    recs = records(values, topic)
    start = 0
    sizes = list(batch_sizes)
    while start < len(recs):
        size = sizes.pop(0) if sizes else len(recs) - start
        batch = recs[start : start + max(size, 1)]
        start += len(batch)
        changes = project_batch(batch, ALLOWED, ingest, sql_from=0)
        store.apply(changes, {(topic, 0): batch[-1].offset + 1}, "test")


def arn(resource: str, name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:sagemaker:{REGION}:{account}:{resource}/{name}"


__all__ = [
    "ACCOUNT",
    "REGION",
    "TOPIC_ENTITIES",
    "TOPIC_JOBS",
    "apply_batches",
    "arn",
    "delete",
    "event",
    "raw",
    "read_all",
    "records",
    "upsert",
    "wait_until",
]


def training_job_drafts(
    first: int, count: int, pool: int, rng: random.Random
) -> list[dict[str, Any]]:
    """``JobCreated`` + ``JobStatusChanged`` drafts for jobs ``first..first+count-1``: two
    datasets drawn from ``pool``, one of 5 images, a model, a metric (the fault tests' load)."""
    drafts: list[dict[str, Any]] = []
    for i in range(first, first + count):
        name = f"job-{i}"
        drafts.append(
            {
                "event_type": "JobCreated",
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": name,
                    "image_uri": f"registry/image:{rng.randrange(5)}",
                    "inputs": [
                        {"name": "train", "uri": f"s3://d/ds-{rng.randrange(pool)}"},
                        {"name": "test", "uri": f"s3://d/ds-{rng.randrange(pool)}"},
                    ],
                    "outputs": [{"name": "model", "uri": f"s3://m/{name}/model.tar.gz"}],
                },
            }
        )
        drafts.append(
            {
                "event_type": "JobStatusChanged",
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": name,
                    "status": "Completed",
                    "metrics": {"auc": rng.random()},
                },
            }
        )
    return drafts


CLI = [sys.executable, "-m", "mlineage.cli"]


def run_cli(
    home: Path,
    *args: str,
    ok: bool = True,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``mlineage --home HOME ARGS`` as a user runs it (a subprocess, in ``env``: by default
    this process's environment, reading ``stdin``); asserts it succeeded unless
    ``ok=False``."""
    proc = subprocess.run(
        [*CLI, "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=300,
        input=stdin,
        check=False,
        env=env,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout: float = 120.0,
    pause: float = 0.05,
    on_timeout: Callable[[], Exception] | None = None,
) -> None:
    """Wait for ``condition()`` to hold; fail naming ``what`` after a generous ``timeout``
    (a hang guard, never a performance bound). ``on_timeout`` makes the error raised then
    (default: an AssertionError). The one place in the tests that sleeps."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            if on_timeout is not None:
                raise on_timeout()
            raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")
        time.sleep(pause)


def read_all(log: EventLog, topic: str) -> list[Record]:
    """Every record of ``topic``, partition by partition."""
    records: list[Record] = []
    for p in log.partitions(topic):
        offset = 0
        while chunk := log.read(topic, p, offset, 20_000):
            records.extend(chunk)
            offset = chunk[-1].offset + 1
    return records


def index_of(con: Any, how: str) -> Any:
    """The projection's graph index, built from its tables (``load``) or opened from the
    ids the projector keeps (``open``)."""
    from mlineage.query.graph import LineageGraph

    if how == "load":
        return LineageGraph.load(con)
    graph = LineageGraph.open(con)
    assert graph is not None, "the projection keeps no graph index"
    return graph


def graph_state(graph: Any) -> tuple[dict[str, Any], set[Any]]:
    """What an index holds: every live vertex with its attributes, every live edge."""
    vertices = {}
    for vid, arn in enumerate(graph.arns):
        if graph.is_vertex(vid):
            vertices[arn] = (
                graph.lineage_type_of(vid),
                graph.type_of(vid),
                graph.account_names[graph.account[vid]] if graph.account[vid] >= 0 else None,
                int(graph.created[vid]) if graph.has_created[vid] else None,
                int(graph.modified[vid]) if graph.has_modified[vid] else None,
            )
    edges = {
        (graph.arns[s], graph.arns[d], graph.edge_type_of(e), bool(graph.edge_same_as[e]))
        for e, (s, d) in enumerate(
            zip(graph.edge_src.tolist(), graph.edge_dst.tolist(), strict=True)
        )
        if graph.edge_live[e]
    }
    return vertices, edges
