"""Benchmark of OpenLineage in, on the embedded path: ingest -> track -> project -> replay.

A seeded workload of N OpenLineage runs, as Spark tasks of Airflow DAG runs report them:
each run a START and a COMPLETE RunEvent (one in ten a FAIL instead) with a parent run
facet (ten tasks per DAG run), two input datasets drawn from a pool of N/5 and one output,
and the facets a Spark integration sends (processing engine, SQL, schema). Stages:

1. ingest:  wrap, validate and append the bare events (what ``publish --openlineage`` and
   ``POST /api/v1/lineage`` do per event), in chunks of 5,000 (one durable commit each);
2. track:   ``TrackerService(log).run()``: the derived trial components, contexts,
   artifacts and associations (events derived per second);
3. project: ``ProjectorService`` over all three topics (records per second);
4. replay:  ``replay(log, db)``; the checksum after replay must equal the one before.

Usage::

    .venv/bin/python bench/openlineage_pipeline.py --runs 10000 --seed 1 [--json]

A benchmark, not a test: it prints figures and fails only when the pipeline misbehaves
(dead letters, a checksum that changes across replay).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mlineage.events.codec import validate_record, wrap_openlineage
from mlineage.log.base import open_log
from mlineage.projection.service import ProjectorService, replay
from mlineage.projection.store import DuckDBStore
from mlineage.recorder import route
from mlineage.settings import Settings
from mlineage.tracker.service import TrackerService

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 5_000
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/integration/spark"


def _facet(**fields: Any) -> dict[str, Any]:
    return {
        "_producer": PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/x.json",
        **fields,
    }


def workload(runs: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    pool = max(1, runs // 5)
    events: list[dict[str, Any]] = []
    for i in range(runs):
        dag = i // 10
        dag_run = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        job = {
            "namespace": "spark-emr",
            "name": f"dag_{dag % 100}.task_{i % 10}",
            "facets": {"sql": _facet(query=f"INSERT INTO t{i} SELECT * FROM src")},
        }
        inputs = [
            {"namespace": "s3://bench-raw", "name": f"events/part-{rng.randrange(pool)}"}
            for _ in range(2)
        ]
        outputs = [
            {
                "namespace": "s3://bench-data",
                "name": f"prepared/run-{i}",
                "facets": {"schema": _facet(fields=[{"name": "id", "type": "long"}])},
            }
        ]
        facets = {
            "parent": _facet(
                run={"runId": dag_run}, job={"namespace": "airflow", "name": f"dag_{dag % 100}"}
            ),
            "processing_engine": _facet(name="spark", version="3.5.1"),
        }
        start = EPOCH + timedelta(seconds=i)
        end_state = "FAIL" if i % 10 == 9 else "COMPLETE"
        for state, when, extra in (
            ("START", start, {"inputs": inputs}),
            (end_state, start + timedelta(minutes=5), {"inputs": inputs, "outputs": outputs}),
        ):
            events.append(
                {
                    "eventType": state,
                    "eventTime": when.isoformat().replace("+00:00", "Z"),
                    "producer": PRODUCER,
                    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                    "run": {"runId": run_id, "facets": facets},
                    "job": job,
                    **extra,
                }
            )
    return events


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(runs: int, seed: int, workdir: Path) -> dict[str, Any]:
    settings = Settings.load(home=workdir / f"ol-{runs}", environ={})
    events = workload(runs, seed)
    figures: dict[str, Any] = {"runs": runs, "events": len(events)}
    log = open_log(settings.log_url)
    try:
        t0 = time.perf_counter()
        for k in range(0, len(events), CHUNK):
            chunk = events[k : k + CHUNK]
            records = [
                route(validate_record(wrap_openlineage(e, settings.account_id, settings.region)))
                for e in chunk
            ]
            log.append(records)
        figures["ingest_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        tracked = TrackerService(log).run()
        figures["track_s"] = time.perf_counter() - t0
        figures["derived"] = tracked.derived
        if tracked.dead_lettered:
            raise SystemExit(f"the tracker dead-lettered {tracked.dead_lettered} events")
        t0 = time.perf_counter()
        with DuckDBStore(settings.db_path) as store:
            projected = ProjectorService(log, store).run()
            checksum = store.checksum()
        figures["project_s"] = time.perf_counter() - t0
        figures["projected"] = projected.consumed
        if projected.dead_lettered:
            raise SystemExit(f"the projector dead-lettered {projected.dead_lettered} records")
        t0 = time.perf_counter()
        replay(log, settings.db_path)
        figures["replay_s"] = time.perf_counter() - t0
        with DuckDBStore(settings.db_path, read_only=True) as store:
            if store.checksum() != checksum:
                raise SystemExit("the checksum changed across replay")
    finally:
        log.close()
    figures["peak_rss_mib"] = _rss_mib()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="10000", help="OpenLineage runs (comma-separated)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON line per size")
    args = parser.parse_args()
    console = Console()
    for runs in (int(n) for n in args.runs.split(",")):
        with tempfile.TemporaryDirectory(prefix="mlineage-ol-bench-") as tmp:
            f = bench(runs, args.seed, Path(tmp))
        if args.json:
            print(json.dumps(f))
            continue
        table = Table(title=f"OpenLineage in: {runs:,} runs, {f['events']:,} events")
        for col in ("stage", "records", "seconds", "per second"):
            table.add_column(col, justify="right" if col != "stage" else "left")
        for stage, n, secs in (
            ("ingest (wrap, validate, append)", f["events"], f["ingest_s"]),
            ("track (events derived)", f["derived"], f["track_s"]),
            ("project (all topics)", f["projected"], f["project_s"]),
            ("replay", f["projected"], f["replay_s"]),
        ):
            table.add_row(stage, f"{n:,}", f"{secs:.2f}", f"{n / secs:,.0f}")
        console.print(table)
        console.print(f"peak RSS {f['peak_rss_mib']:.0f} MiB; checksum equal after replay")


if __name__ == "__main__":
    main()
