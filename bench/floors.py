"""What one unit of work costs on this machine: the floors under the ingest and replay figures.

The MLMD comparison (``bench/compare_mlmd.py``) reports throughput; this script breaks it down,
so a target can be checked against what its parts cost before anyone tries to reach it:

- **durable commit**: one SQLite transaction in WAL mode with ``synchronous=FULL`` (what every
  ``publish`` of the embedded log does, so that a publish that returned survives a crash);
- **publish one job**: ``Recorder.publish_many`` of one job's two events (validate, encode,
  one durable append), repeated;
- per record of a real log (the workload of ``bench/embedded_pipeline.py``: source events and
  the tracker's derived events), on one batch of ``--records``:
  - **decode**: pydantic validation (``decode_many``), by event type;
  - **project**: ``project()`` (decoded events to facts, marks and event rows, in Python);
  - **arrow**: those rows as Arrow tables (``store._arrow``);
  - **SQL stage**: decode, validate and project the same batch in DuckDB instead
    (``projection/ingest.py``, what the projector does with batches of 200 or more; the
    records it defers, none on this log, would go through the three above);
  - **merge**: the DuckDB merge of the whole batch into an empty projection.

Each line prints the cost and the ceiling it implies (one unit at a time, one core).

    .venv/bin/python bench/floors.py [--jobs 5000] [--records 50000] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedded_pipeline import chunks, job_drafts
from mlineage.events.codec import decode_many
from mlineage.log.base import TOPIC_ENTITIES, TOPIC_JOBS
from mlineage.projection.ingest import SqlIngest
from mlineage.projection.project import (
    EVENT_COLUMNS,
    FACT_COLUMNS,
    MARK_COLUMNS,
    project,
)
from mlineage.projection.service import ALLOWED, PROJECTED_TOPICS
from mlineage.projection.store import DuckDBStore, _arrow
from mlineage.recorder import Recorder
from mlineage.settings import Settings
from mlineage.tracker.service import TrackerService


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def durable_commit_us(workdir: Path, n: int = 1000) -> float:
    con = sqlite3.connect(workdir / "commit.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (x INTEGER)")
    started = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t VALUES (?)", (i,))
        con.execute("COMMIT")
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed / n * 1e6


def publish_per_job_us(workdir: Path, n_jobs: int = 1000) -> float:
    recorder = Recorder(Settings.load(home=workdir / "per-job"))
    drafts = list(job_drafts(n_jobs, seed=1))
    started = time.perf_counter()
    for chunk in chunks(iter(drafts), 2):  # one job: its JobCreated and JobStatusChanged
        recorder.publish_many(chunk)
    elapsed = time.perf_counter() - started
    recorder.close()
    return elapsed / n_jobs * 1e6


def record_costs(workdir: Path, n_jobs: int, n_records: int) -> dict[str, Any]:
    settings = Settings.load(home=workdir / "log")
    recorder = Recorder(settings)
    for chunk in chunks(job_drafts(n_jobs, seed=0), 5000):
        recorder.publish_many(chunk)
    TrackerService(recorder.log).run()
    with recorder.log.consumer(
        PROJECTED_TOPICS, positions=lambda tps: dict.fromkeys(tps, 0), max_poll_records=n_records
    ) as consumer:
        records = consumer.poll(n_records, timeout=0.0)
    n = len(records)
    out: dict[str, Any] = {"records": n}
    gc.disable()  # as the projector does around a batch (mlineage._gc)
    try:
        # decode by event type: one batch per type
        by_type: dict[str, list[bytes]] = defaultdict(list)
        for r in records:
            kind = json.loads(r.value)["event_type"]
            if r.topic != TOPIC_JOBS:
                kind += "/" + json.loads(r.value)["payload"].get("entity", {}).get("kind", "")
            by_type[kind].append(r.value)
        out["decode_by_type_us"] = {
            kind: timed(decode_many, values)[0] / len(values) * 1e6
            for kind, values in sorted(by_type.items())
        }
        decode_s, decoded = timed(decode_many, [r.value for r in records])
        project_s, changes = timed(project, zip(records, decoded, strict=True), ALLOWED)
        arrow_s, _ = timed(
            lambda: (
                _arrow(changes.events, EVENT_COLUMNS),
                _arrow(changes.marks, MARK_COLUMNS),
                _arrow(changes.facts, FACT_COLUMNS),
            )
        )
        ingest = SqlIngest(TOPIC_JOBS, TOPIC_ENTITIES)
        ingest.stage(records[:1000])  # its macros and first statements, once
        stage_s, staged = timed(ingest.stage, records)
        ingest.close()
    finally:
        gc.enable()
    store = DuckDBStore(workdir / "merge.duckdb")
    merge_s, _ = timed(store.apply, changes, {}, "floors")
    store.close()
    recorder.close()
    out.update(
        {
            "facts": len(changes.facts["event_id"]),
            "decode_us": decode_s / n * 1e6,
            "project_us": project_s / n * 1e6,
            "arrow_us": arrow_s / n * 1e6,
            "sql_stage_us": stage_s / n * 1e6,
            "sql_deferred": len(staged.deferred),
            "merge_us": merge_s / n * 1e6,
        }
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs in the log (default 5000)")
    parser.add_argument(
        "--records", type=int, default=50_000, help="records in the measured batch (default 50,000)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlineage-floors-") as tmp:
        workdir = Path(tmp)
        result: dict[str, Any] = {
            "durable_commit_us": durable_commit_us(workdir),
            "publish_per_job_us": publish_per_job_us(workdir),
            **record_costs(workdir, args.jobs, args.records),
        }
    if args.json:
        print(json.dumps(result))
        return 0

    def line(label: str, us: float, unit: str) -> None:
        print(f"{label:44s} {us:9.1f} µs   ceiling {1e6 / us:12,.0f} {unit}/s")

    line("durable commit (SQLite WAL, synchronous=FULL)", result["durable_commit_us"], "commits")
    line("publish one job (publish_many of 2 events)", result["publish_per_job_us"], "jobs")
    print(f"per record, one batch of {result['records']:,} records ({result['facts']:,} facts):")
    for kind, us in result["decode_by_type_us"].items():
        line(f"  decode {kind}", us, "records")
    line("  decode (the batch, all types)", result["decode_us"], "records")
    line("  project (Python)", result["project_us"], "records")
    line("  arrow", result["arrow_us"], "records")
    python = sum(result[k] for k in ("decode_us", "project_us", "arrow_us"))
    line("  the three in Python, together", python, "records")
    line(
        f"  SQL stage instead ({result['sql_deferred']:,} deferred)",
        result["sql_stage_us"],
        "records",
    )
    line("  merge (DuckDB, into an empty projection)", result["merge_us"], "records")
    line("  SQL stage + merge", result["sql_stage_us"] + result["merge_us"], "records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
