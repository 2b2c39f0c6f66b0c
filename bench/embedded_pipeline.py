"""Benchmark of the embedded path: publish -> track -> project -> replay on SQLite + DuckDB.

A seeded workload of N training jobs, each with two input datasets drawn from a shared
pool of N/5 dataset URIs, an image drawn from 5 images and one model output; every job is
one ``JobCreated`` and one ``JobStatusChanged`` (``Completed``, with a metric). Stages:

1. publish: ``Recorder.publish_many`` in chunks (validated at publish, atomic per chunk);
2. track:   ``TrackerService(log).run()`` up to the end of the jobs topic;
3. project: ``ProjectorService(log, DuckDBStore(db)).run()`` up to the end of both topics;
4. replay:  ``replay(log, db)``; the checksum after replay must equal the one before;
5. small batches: 400 more jobs published and tracked, then projected 100 records a batch
   into the projection of N jobs (p50 and p99 of a batch, as a follower or ``serve`` pays).

Usage::

    .venv/bin/python bench/embedded_pipeline.py --jobs 10000 --seed 1 [--json] [--keep]
    .venv/bin/python bench/embedded_pipeline.py --jobs 1000,10000 --workdir /tmp/bench
    .venv/bin/python bench/embedded_pipeline.py --jobs 20000 --anchor 4d9ecb2

``--anchor REV`` also runs the same workload on the code of an earlier revision (its ``src``
and this script as they were there, from ``git archive``, in a child process of their own)
first, and prints the two side by side: the figures of one run on one
machine, so a change to the engine is measured against what it replaced. The anchor runs
this script (the workload and the measuring are the same) on the anchor's ``src``.

This is a benchmark, not a test: it prints figures (a table per N, and with ``--json`` one
JSON line per N), and fails only when the pipeline itself misbehaves (dead letters, wrong
counts, a checksum that changes across replay).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
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
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

from mlineage import __version__
from mlineage.events.models import canonical_time
from mlineage.log.base import TOPIC_ENTITIES, TOPIC_JOBS
from mlineage.projection.service import ProjectorService, replay
from mlineage.projection.store import DuckDBStore
from mlineage.recorder import Recorder
from mlineage.settings import Settings
from mlineage.tracker.service import TrackerService

DEFAULT_JOBS = 10_000
DEFAULT_CHUNK = 5_000
IMAGES = tuple(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/bench-train:v{k}" for k in range(5))
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
PROGRESS_EVERY_S = 5.0
SMALL_BATCH = 100
SMALL_BATCH_JOBS = 400  # 4,800 records: 48 batches of 100

Draft = dict[str, Any]


# -- workload ------------------------------------------------------------------------------------


def dataset_uri(i: int) -> str:
    return f"s3://bench-data/datasets/ds-{i}/"


def model_uri(i: int) -> str:
    return f"s3://bench-models/job-{i}/model.tar.gz"


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def job_drafts(n_jobs: int, seed: int, first: int = 0, pool: int | None = None) -> Iterator[Draft]:
    """The draft events of the workload, in publish order: per job a ``JobCreated`` then its
    ``JobStatusChanged``. Event ids and times come from the seed, so equal arguments give
    equal logs (and equal checksums). ``first``: the number of the first job (jobs after a
    workload of that many, reading its pool of datasets)."""
    rng = random.Random(seed)
    pool = pool or max(2, n_jobs // 5)
    for i in range(first, first + n_jobs):
        name = f"bench-job-{i}"
        train, validation = rng.sample(range(pool), 2)
        created_at = EPOCH + timedelta(seconds=2 * i)
        yield {
            "event_type": "JobCreated",
            "event_id": _event_id(rng),
            "occurred_at": canonical_time(created_at),
            "payload": {
                "job_type": "TrainingJob",
                "job_name": name,
                "image_uri": rng.choice(IMAGES),
                "inputs": [
                    {"name": "train", "uri": dataset_uri(train)},
                    {"name": "validation", "uri": dataset_uri(validation)},
                ],
                "outputs": [{"name": "model", "uri": model_uri(i)}],
            },
        }
        yield {
            "event_type": "JobStatusChanged",
            "event_id": _event_id(rng),
            "occurred_at": canonical_time(created_at + timedelta(seconds=1)),
            "payload": {
                "job_type": "TrainingJob",
                "job_name": name,
                "status": "Completed",
                "metrics": {"validation:accuracy": round(rng.uniform(0.5, 1.0), 6)},
            },
        }


def chunks(drafts: Iterator[Draft], size: int) -> Iterator[list[Draft]]:
    chunk: list[Draft] = []
    for draft in drafts:
        chunk.append(draft)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- measuring -----------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far: VmHWM on Linux, which starts afresh at
    exec (ru_maxrss does not: a child forked from a large parent reports the parent's peak)."""
    with contextlib.suppress(OSError, ValueError), Path("/proc/self/status").open() as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def mem_total_gib() -> float | None:
    try:
        with Path("/proc/meminfo").open() as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        return None
    return None


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "mem_total_gib": mem_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "duckdb": duckdb.__version__,
        "mlineage": __version__,
    }


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Progress:
    """A ``progress(done, lag)`` callback for the services: prints at most every few seconds
    and remembers the peak RSS when the last batch was written (so a peak reached after the
    batches, e.g. by replay's checkpoint, shows up as a difference)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.last = time.perf_counter()
        self.rss_at_last_batch_mib: float | None = None

    def __call__(self, done: int, lag: int) -> None:
        self.rss_at_last_batch_mib = peak_rss_mib()
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            note(f"  {self.stage}: {done:,} records done, {lag:,} to go")


def quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values (nearest rank)."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def dir_size_mib(path: Path, prefix: str) -> float:
    return sum(p.stat().st_size for p in path.glob(f"{prefix}*") if p.is_file()) / (1024 * 1024)


@dataclass
class Stage:
    name: str
    seconds: float
    rates: dict[str, float]
    counts: dict[str, int]
    peak_rss_mib: float
    peak_rss_at_last_batch_mib: float | None = None
    timed: bool = True  # part of the four stages (the checksum row is not)


@dataclass
class RunResult:
    jobs: int
    seed: int
    chunk: int
    stages: list[Stage] = field(default_factory=list)
    end_to_end_s: float = 0.0
    end_to_end_jobs_per_s: float = 0.0
    checksum: str = ""
    checksum_s: float = 0.0
    table_counts: dict[str, int] = field(default_factory=dict)
    log_mib: float = 0.0
    db_mib: float = 0.0
    peak_rss_mib: float = 0.0


# -- the run -------------------------------------------------------------------------------------


def run_once(n_jobs: int, seed: int, chunk_size: int, home: Path) -> RunResult:
    result = RunResult(jobs=n_jobs, seed=seed, chunk=chunk_size)
    # environ={} so MLINEAGE_LOG / MLINEAGE_DB in the caller's environment cannot redirect
    # the benchmark to a real log or projection.
    settings = Settings.load(home=home, environ={})
    recorder = Recorder(settings)
    log = recorder.log
    db = settings.db_path
    n_events = 2 * n_jobs

    # 1. publish
    note(f"N={n_jobs:,}: publish {n_events:,} events in chunks of {chunk_size:,}")
    t0 = time.perf_counter()
    published = 0
    last_note = t0
    for chunk in chunks(job_drafts(n_jobs, seed), chunk_size):
        published += len(recorder.publish_many(chunk))
        if time.perf_counter() - last_note >= PROGRESS_EVERY_S:
            last_note = time.perf_counter()
            note(f"  publish: {published:,} / {n_events:,} events")
    publish_s = time.perf_counter() - t0
    assert published == n_events, (published, n_events)
    assert log.end_offsets(TOPIC_JOBS) == {0: n_events}
    result.stages.append(
        Stage(
            "publish",
            publish_s,
            {"jobs/s": rate(n_jobs, publish_s), "events/s": rate(n_events, publish_s)},
            {"jobs": n_jobs, "events": n_events},
            peak_rss_mib(),
        )
    )

    # 2. track
    note(f"N={n_jobs:,}: track")
    t0 = time.perf_counter()
    tprogress = Progress("track")
    tstats = TrackerService(log).run(progress=tprogress)
    track_s = time.perf_counter() - t0
    assert tstats.consumed == n_events, tstats
    assert tstats.dead_lettered == 0, f"the tracker dead-lettered {tstats.dead_lettered} records"
    derived_in_log = log.end_offsets(TOPIC_ENTITIES)[0]
    assert derived_in_log == tstats.derived, (derived_in_log, tstats)
    result.stages.append(
        Stage(
            "track",
            track_s,
            {
                "source events/s": rate(tstats.consumed, track_s),
                "derived events/s": rate(tstats.derived, track_s),
            },
            {"source events": tstats.consumed, "derived events": tstats.derived},
            peak_rss_mib(),
            tprogress.rss_at_last_batch_mib,
        )
    )

    # 3. project
    total_records = n_events + tstats.derived
    note(f"N={n_jobs:,}: project {total_records:,} records")
    t0 = time.perf_counter()
    pprogress = Progress("project")
    store = DuckDBStore(db)
    try:
        pstats = ProjectorService(log, store).run(progress=pprogress)
    finally:
        store.close()
    project_s = time.perf_counter() - t0
    assert pstats.consumed == total_records, (pstats, total_records)
    assert pstats.dead_lettered == 0, f"the projector dead-lettered {pstats.dead_lettered}"
    result.stages.append(
        Stage(
            "project",
            project_s,
            {"events/s": rate(pstats.consumed, project_s), "jobs/s": rate(n_jobs, project_s)},
            {"records": pstats.consumed, "batches": pstats.batches},
            peak_rss_mib(),
            pprogress.rss_at_last_batch_mib,
        )
    )
    result.end_to_end_s = publish_s + track_s + project_s
    result.end_to_end_jobs_per_s = rate(n_jobs, result.end_to_end_s)

    note(f"N={n_jobs:,}: checksum before replay")
    t0 = time.perf_counter()
    with DuckDBStore(db, read_only=True) as ro:
        before = ro.checksum()
        result.table_counts = ro.counts()
    result.checksum_s = time.perf_counter() - t0
    result.stages.append(
        Stage(
            "checksum",
            result.checksum_s,
            {"events/s": rate(result.table_counts["events"], result.checksum_s)},
            {"events": result.table_counts["events"]},
            peak_rss_mib(),
            timed=False,
        )
    )

    # 4. replay
    note(f"N={n_jobs:,}: replay {total_records:,} records")
    t0 = time.perf_counter()
    rprogress = Progress("replay")
    rstats = replay(log, db, progress=rprogress)
    replay_s = time.perf_counter() - t0
    assert rstats.consumed == total_records, (rstats, total_records)
    result.stages.append(
        Stage(
            "replay",
            replay_s,
            {"events/s": rate(rstats.consumed, replay_s)},
            {"records": rstats.consumed, "batches": rstats.batches},
            peak_rss_mib(),
            rprogress.rss_at_last_batch_mib,
        )
    )

    with DuckDBStore(db, read_only=True) as ro:
        after = ro.checksum()
    assert after == before, f"checksum changed across replay: {before} -> {after}"
    result.checksum = after
    note(f"N={n_jobs:,}: checksum OK")

    # 5. small batches: more jobs, projected SMALL_BATCH records a batch into the projection
    #    of N jobs (what a follower or `serve` pays per write)
    note(f"N={n_jobs:,}: {SMALL_BATCH_JOBS} more jobs, projected {SMALL_BATCH} records a batch")
    extra = list(job_drafts(SMALL_BATCH_JOBS, seed + 1, first=n_jobs, pool=max(2, n_jobs // 5)))
    recorder.publish_many(extra)
    TrackerService(log).run()
    marks: list[float] = []
    store = DuckDBStore(db)
    try:
        sstats = ProjectorService(log, store, batch_size=SMALL_BATCH).run(
            progress=lambda _done, _lag: marks.append(time.perf_counter())
        )
    finally:
        store.close()
    assert sstats.dead_lettered == 0, sstats
    per_batch = sorted(b - a for a, b in itertools.pairwise(marks))
    result.stages.append(
        Stage(
            "small batches",
            sum(per_batch),
            {
                f"ms p50 per {SMALL_BATCH}-record batch": 1000 * quantile(per_batch, 0.5),
                "ms p99": 1000 * quantile(per_batch, 0.99),
            },
            {"records": sstats.consumed, "batches": sstats.batches},
            peak_rss_mib(),
        )
    )

    recorder.close()
    log.close()
    result.log_mib = dir_size_mib(home, "events.sqlite")
    result.db_mib = dir_size_mib(home, "lineage.duckdb")
    result.peak_rss_mib = peak_rss_mib()
    return result


# -- output --------------------------------------------------------------------------------------


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def render(console: Console, result: RunResult) -> None:
    table = Table(
        title=f"embedded pipeline — N = {result.jobs:,} jobs ({2 * result.jobs:,} source "
        f"events), seed {result.seed}, publish chunk {result.chunk:,}",
        title_justify="left",
        caption="peak RSS = VmHWM of this process after the stage (it never goes down, so "
        "a later N inherits the peaks of earlier ones); '…at last batch' = the same "
        "when the stage wrote its last batch",
        caption_justify="left",
    )
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("share", justify="right")
    table.add_column("throughput", justify="left")
    table.add_column("counts", justify="left")
    table.add_column("peak RSS MiB", justify="right")
    table.add_column("…at last batch", justify="right")
    pipeline_s = result.end_to_end_s
    for stage in result.stages:
        in_pipeline = stage.name in ("publish", "track", "project")
        share = f"{100 * stage.seconds / pipeline_s:.0f}%" if in_pipeline else "–"
        name = stage.name if stage.timed else f"({stage.name})"
        at_last = stage.peak_rss_at_last_batch_mib
        table.add_row(
            name,
            f"{stage.seconds:.2f}",
            share,
            "\n".join(f"{_fmt_rate(v)} {k}" for k, v in stage.rates.items()),
            "\n".join(f"{v:,} {k}" for k, v in stage.counts.items()),
            f"{stage.peak_rss_mib:,.0f}",
            f"{at_last:,.0f}" if at_last is not None else "",
        )
    table.add_section()
    table.add_row(
        "end-to-end",
        f"{pipeline_s:.2f}",
        "100%",
        f"{_fmt_rate(result.end_to_end_jobs_per_s)} jobs/s",
        "publish+track+project",
        f"{result.peak_rss_mib:,.0f}",
        "",
    )
    console.print(table)
    slowest = max(
        (s for s in result.stages if s.name in ("publish", "track", "project")),
        key=lambda s: s.seconds,
    )
    console.print(
        f"checksum OK ({result.checksum[:16]}…, before = after replay); "
        f"log {result.log_mib:,.1f} MiB, projection {result.db_mib:,.1f} MiB; "
        f"dominant stage: {slowest.name}"
    )
    counts = ", ".join(f"{k} {v:,}" for k, v in result.table_counts.items() if v)
    console.print(f"projected rows: {counts}")


REPO = Path(__file__).resolve().parent.parent


def run_anchor(rev: str, n_jobs: int, seed: int, chunk: int, root: Path) -> dict[str, Any]:
    """The figures of ``rev``'s code on the same workload (its own child process)."""
    tree = root / f"anchor-{rev}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev, "src", "bench"],  # noqa: S607
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            raise SystemExit(f"--anchor {rev}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)  # noqa: S607
    note(f"N={n_jobs:,}: the anchor {rev}")
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            f"--jobs={n_jobs}",
            f"--seed={seed}",
            f"--chunk={chunk}",
            f"--workdir={root / f'anchor-run-{rev}-{n_jobs}'}",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the anchor {rev} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def render_side_by_side(
    console: Console, result: RunResult, anchor: dict[str, Any], rev: str
) -> None:
    table = Table(
        title=f"N = {result.jobs:,} jobs: this code next to the anchor {rev} (one run)",
        title_justify="left",
    )
    for name in ("stage", "figure", "this", rev, "this / anchor"):
        table.add_column(name, justify="left" if name in ("stage", "figure") else "right")
    theirs = {s["name"]: s for s in anchor["stages"]}
    for stage in result.stages:
        other = theirs.get(stage.name)
        if other is None:
            continue
        for key, value in stage.rates.items():
            was = other["rates"].get(key)
            if was:
                table.add_row(
                    stage.name, key, _fmt_rate(value), _fmt_rate(was), f"{value / was:.2f}x"
                )
        table.add_row(
            stage.name,
            "peak RSS MiB",
            f"{stage.peak_rss_mib:,.0f}",
            f"{other['peak_rss_mib']:,.0f}",
            f"{stage.peak_rss_mib / other['peak_rss_mib']:.2f}x",
        )
    table.add_section()
    for label, mine, was in (
        ("projection MiB", result.db_mib, anchor["db_mib"]),
        ("log MiB", result.log_mib, anchor["log_mib"]),
        ("end-to-end jobs/s", result.end_to_end_jobs_per_s, anchor["end_to_end_jobs_per_s"]),
    ):
        table.add_row("", label, f"{mine:,.1f}", f"{was:,.1f}", f"{mine / was:.2f}x" if was else "")
    console.print(table)
    same = "equal" if anchor["checksum"] == result.checksum else "different (the schema changed)"
    rows = "equal" if anchor["table_counts"] == result.table_counts else "DIFFERENT"
    console.print(f"checksums: {same}; table rows: {rows}")


def parse_jobs(values: Sequence[str] | None) -> list[int]:
    if not values:
        return [DEFAULT_JOBS]
    out: list[int] = []
    for value in values:
        for raw in value.split(","):
            part = raw.strip().replace("_", "")
            if not part:
                continue
            n = int(part)
            if n < 1:
                raise argparse.ArgumentTypeError(f"--jobs must be >= 1, got {n}")
            out.append(n)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the embedded mlineage path: publish, track, project, replay.",
    )
    parser.add_argument(
        "--jobs",
        action="append",
        metavar="N",
        help=f"number of training jobs; repeatable or a comma list (default {DEFAULT_JOBS})",
    )
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument(
        "--chunk",
        type=int,
        default=DEFAULT_CHUNK,
        help=f"events per publish_many call (default {DEFAULT_CHUNK})",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where to put the log and projection (one n-<N> folder per run; "
        "default: a temporary directory)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the log and projection files after the run"
    )
    parser.add_argument(
        "--json", action="store_true", help="also print one JSON line of the figures per N"
    )
    parser.add_argument(
        "--anchor",
        metavar="REV",
        help="also run the workload on the code of git revision REV and print both side by side",
    )
    args = parser.parse_args(argv)
    try:
        args.jobs = parse_jobs(args.jobs)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))
    if args.chunk < 1:
        parser.error("--chunk must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # a wide table even when the output is a pipe or a file (rich falls back to 80 columns)
    console = Console(width=None if sys.stdout.isatty() else 132)
    info = machine()
    mem = info["mem_total_gib"]
    console.print(
        f"machine: {info['cpu_count']} CPUs, "
        f"{f'{mem:.1f} GiB' if mem is not None else 'unknown'} RAM, {info['platform']}; "
        f"Python {info['python']}, SQLite {info['sqlite']}, DuckDB {info['duckdb']}, "
        f"mlineage {info['mlineage']}"
    )
    temp = args.workdir is None
    root = Path(tempfile.mkdtemp(prefix="mlineage-bench-")) if temp else args.workdir
    try:
        # the anchors first: a child forked later, from this process grown large, would
        # start with its memory counted (the anchor's old code may measure with ru_maxrss)
        anchors = (
            {n: run_anchor(args.anchor, n, args.seed, args.chunk, root) for n in args.jobs}
            if args.anchor
            else {}
        )
        for n_jobs in args.jobs:
            home = root / f"n-{n_jobs}"
            if home.exists():
                raise SystemExit(f"{home} already exists: remove it or pick another --workdir")
            try:
                result = run_once(n_jobs, args.seed, args.chunk, home)
            finally:
                if not args.keep:
                    shutil.rmtree(home, ignore_errors=True)
            render(console, result)
            if args.anchor:
                render_side_by_side(console, result, anchors[n_jobs], args.anchor)
            if args.json:
                figures = asdict(result)
                figures["machine"] = info
                print(json.dumps(figures, sort_keys=True), flush=True)
    finally:
        if args.keep:
            note(f"kept the files under {root}")
        elif temp:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
