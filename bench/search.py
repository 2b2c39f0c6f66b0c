"""Benchmark SageMaker's Search (``mlineage.query.search``) over the trial components of N
training jobs, beside its floor: the same question written by hand in SQL on the same
connection, in the same run.

    python bench/search.py --jobs 100000 --workdir /tmp/qb

The projection is ``bench/query_lineage.py``'s (the same workload, reused from ``--workdir``
when it is there). Each case runs ``--queries`` times (after one warm-up); the table shows
p50 / p99 of Search (first page of 10, as SageMaker's default) and of the hand-written SQL
returning the same ARNs, which the benchmark checks.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import query_lineage as ql  # the sibling benchmark: its workload and projection
from mlineage.query import search
from mlineage.query.store import LineageStore

TC = "ExperimentTrialComponent"
ACCURACY = "validation:accuracy"


@dataclass
class Case:
    name: str
    sort_by: str | None
    floor_sql: str  # the same answer (ARNs, in order, first page) in plain SQL; ? = arguments
    args: Callable[[random.Random], tuple[dict[str, Any], list[Any]]]


def _name(i: int) -> str:
    return f"bench-job-{i}-aws-training-job"


def cases(n_jobs: int) -> list[Case]:
    metric = f"TRY_CAST(json_extract_string(metrics, '/{ACCURACY}') AS DOUBLE)"
    images = [ql.ep.IMAGES[0]]

    def by_name(rng: random.Random) -> tuple[dict[str, Any], list[Any]]:
        name = _name(rng.randrange(n_jobs))
        return {"Filters": [{"Name": "TrialComponentName", "Value": name}]}, [name]

    def three_names(rng: random.Random) -> tuple[dict[str, Any], list[Any]]:
        names = [_name(rng.randrange(n_jobs)) for _ in range(3)]
        filters = [{"Name": "TrialComponentName", "Value": n} for n in names]
        return {"Operator": "Or", "Filters": filters}, [names]

    def accurate(rng: random.Random) -> tuple[dict[str, Any], list[Any]]:
        floor = round(rng.uniform(0.990, 0.999), 3)
        flt = {"Name": f"Metrics.{ACCURACY}.Last", "Operator": "GreaterThan", "Value": str(floor)}
        return {"Filters": [flt]}, [floor]

    def image_and_status(rng: random.Random) -> tuple[dict[str, Any], list[Any]]:
        image = rng.choice(images)
        expr = {
            "Filters": [
                {"Name": "Parameters.SageMaker.ImageUri", "Value": image},
                {"Name": "Status.PrimaryStatus", "Value": "Completed"},
            ]
        }
        return expr, [image]

    def contains(rng: random.Random) -> tuple[dict[str, Any], list[Any]]:
        text = f"job-{rng.randrange(n_jobs)}-"
        flt = {"Name": "TrialComponentName", "Operator": "Contains", "Value": text}
        return {"Filters": [flt]}, [text]

    live = "live"
    newest = "ORDER BY modified_at DESC NULLS LAST, arn DESC LIMIT 10"
    return [
        Case(
            "TrialComponentName Equals (one of N)",
            None,
            f"SELECT arn FROM trial_components WHERE {live} AND lower(trial_component_name) = "
            f"lower(?) {newest}",
            by_name,
        ),
        Case(
            "3 names, Or (the SDK's downstream_trials)",
            None,
            f"SELECT arn FROM trial_components WHERE {live} AND list_contains(?, "
            f"lower(trial_component_name)) {newest}",
            three_names,
        ),
        Case(
            f"Metrics.{ACCURACY}.Last GreaterThan x, sorted by it",
            f"Metrics.{ACCURACY}.Last",
            f"SELECT arn FROM trial_components WHERE {live} AND {metric} > ? "
            f"ORDER BY {metric} DESC NULLS LAST, arn DESC LIMIT 10",
            accurate,
        ),
        Case(
            "Parameters.SageMaker.ImageUri Equals x And Status Completed (1 in 5)",
            None,
            f"SELECT arn FROM trial_components WHERE {live} AND json_extract_string(parameters, "
            f"'/SageMaker.ImageUri/string_value') = ? AND status = 'Completed' {newest}",
            image_and_status,
        ),
        Case(
            "TrialComponentName Contains x",
            None,
            f"SELECT arn FROM trial_components WHERE {live} AND contains(lower("
            f"trial_component_name), lower(?)) {newest}",
            contains,
        ),
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="training jobs (default 100k)")
    parser.add_argument("--queries", type=int, default=50, help="queries per case (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument(
        "--workdir", type=Path, help="where query_lineage.py builds (or finds) the projection"
    )
    args = parser.parse_args(argv)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="mlineage-search-bench-"))
    settings, _ = ql.prepare(root, args.jobs, args.seed)
    console = Console()
    table = Table(title=f"Search over {args.jobs:,} jobs' trial components (first page of 10)")
    for column in ("case", "matches (page)", "Search p50 / p99", "hand-written SQL p50 / p99"):
        table.add_column(column)
    with LineageStore.open(settings.db_path) as store:
        con = store.con
        for case in cases(args.jobs):
            rng = random.Random(f"{args.seed}-{case.name}")
            timings: list[float] = []
            floors: list[float] = []
            sizes = 0
            for i in range(args.queries + 1):
                expression, params = case.args(rng)
                t0 = time.perf_counter()
                result = search.search(con, TC, expression, sort_by=case.sort_by)
                t1 = time.perf_counter()
                rows = con.execute(case.floor_sql, params).fetchall()
                t2 = time.perf_counter()
                got = [r["TrialComponent"]["TrialComponentArn"] for r in result["Results"]]
                if got != [r[0] for r in rows]:
                    console.print(f"[red]{case.name}: Search and SQL disagree for {expression}")
                    return 1
                if i:  # the first is a warm-up
                    timings.append((t1 - t0) * 1000)
                    floors.append((t2 - t1) * 1000)
                    sizes += len(got)
            table.add_row(
                case.name,
                f"{sizes / args.queries:.1f}",
                f"{percentile(timings, 0.5):.1f} / {percentile(timings, 0.99):.1f} ms",
                f"{percentile(floors, 0.5):.1f} / {percentile(floors, 0.99):.1f} ms",
            )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
