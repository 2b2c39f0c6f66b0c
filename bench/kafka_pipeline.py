"""End-to-end benchmark through a real Kafka broker: publish -> tracker -> projector.

Two phases, each in a fresh namespace (fresh topics and groups) on one broker:

1. **throughput**: publish ``--jobs`` training jobs as fast as the Recorder takes them
   (batches of 1,000 jobs, two source events each), while the tracker (``mlineage track
   --follow``, a subprocess) and the projector (in this process) run; the figure is records
   projected (source + derived) per second from the first publish until the projector holds
   everything, and jobs per second.
2. **latency at a steady rate**: publish ``--rate`` jobs per second for ``--duration``
   seconds (one small batch every 20 ms). For each job, latency = from the moment
   ``Recorder.publish_many`` was called for its ``JobStatusChanged`` until the projector
   committed the last entity event derived from it (the model artifact and its associations):
   from then on QueryLineage and SQL on the projection answer with it. p50, p99 and max.
   Readers in *other* processes read the snapshot the follower refreshes every
   ``--snapshot-interval`` seconds (``mlineage project --follow``, default 2 s), which adds up
   to that interval; this benchmark measures the projection itself.

The broker: ``--bootstrap host:port``, else ``$MLINEAGE_TEST_KAFKA``, else a local broker
started from the Apache Kafka jars (``scripts/kafka/broker.sh``, needs Java 17 and Maven).

    python bench/kafka_pipeline.py --jobs 20000 --rate 500 --duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mlineage import Recorder, Settings  # noqa: E402
from mlineage.log.base import open_log  # noqa: E402
from mlineage.projection.service import PROJECTED_TOPICS, ProjectorService, _Prepared  # noqa: E402
from mlineage.projection.store import DuckDBStore  # noqa: E402


def job_drafts(first: int, count: int, pool: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(first, first + count):
        name = f"job-{i}"
        out.append(
            {
                "event_type": "JobCreated",
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": name,
                    "image_uri": f"reg/img:{i % 5}",
                    "inputs": [
                        {"name": "train", "uri": f"s3://d/ds-{(i * 7) % pool}"},
                        {"name": "test", "uri": f"s3://d/ds-{(i * 13) % pool}"},
                    ],
                    "outputs": [{"name": "model", "uri": f"s3://m/{name}/model.tar.gz"}],
                },
            }
        )
        out.append(
            {
                "event_type": "JobStatusChanged",
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": name,
                    "status": "Completed",
                    "metrics": {"auc": (i % 100) / 100},
                },
            }
        )
    return out


class TimedProjector(ProjectorService):
    """Notes when each source event's derived records were committed."""

    def __init__(self, *args: Any, on_commit: Callable[[list[bytes]], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_commit = on_commit

    def _apply(self, prepared: _Prepared) -> Any:
        stats = super()._apply(prepared)
        if prepared.records:
            self.on_commit([r.value for r in prepared.records if r.topic == "mlineage.entities.v1"])
        return stats


def caused_by(value: bytes) -> str | None:
    at = value.find(b'"caused_by":"')
    if at < 0:
        return None
    start = at + len(b'"caused_by":"')
    return value[start : value.index(b'"', start)].decode()


class Pipeline:
    """A tracker subprocess and an in-process projector on one namespace."""

    def __init__(
        self, bootstrap: str, work: Path, name: str, on_commit: Callable[[list[bytes]], None]
    ) -> None:
        self.url = f"kafka://{bootstrap}?namespace=bench-{name}-{uuid.uuid4().hex[:6]}"
        self.home = work / name
        self.settings = Settings.load(home=self.home, log_url=self.url, environ={})
        env = {
            **os.environ,
            "MLINEAGE_HOME": str(self.home),
            "MLINEAGE_LOG": self.url,
            "MLINEAGE_INSTANCE_ID": f"bench-{name}",
        }
        self.log_file = (work / f"{name}-tracker.log").open("wb")
        self.tracker = subprocess.Popen(
            [sys.executable, "-m", "mlineage.cli", "track", "--follow", "--batch-size", "2000"],
            env=env,
            stdout=self.log_file,
            stderr=self.log_file,
        )
        self.stop = threading.Event()
        self.log = open_log(self.url)
        self.store = DuckDBStore(self.settings.db_path)
        self.projector = TimedProjector(
            self.log, self.store, batch_size=20_000, on_commit=on_commit
        )
        self.projected = 0
        self.thread = threading.Thread(target=self._project)
        self.thread.start()

    def _project(self) -> None:
        def progress(done: int, lag: int) -> None:
            self.projected = done

        self.projector.run(
            follow=True, poll_interval=0.02, stop=self.stop.is_set, progress=progress
        )

    def caught_up(self) -> bool:
        ends = {(t, p): e for t in PROJECTED_TOPICS for p, e in self.log.end_offsets(t).items()}
        return self.projector._committed == ends and self.tracker_caught_up()

    def tracker_caught_up(self) -> bool:
        return self.log.committed("mlineage-tracker", "mlineage.jobs.v1") == self.log.end_offsets(
            "mlineage.jobs.v1"
        )

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.tracker.terminate()
        self.tracker.wait(30)
        self.store.close()
        self.log.close()
        self.log_file.close()


def throughput(bootstrap: str, work: Path, jobs: int) -> dict[str, float]:
    pipe = Pipeline(bootstrap, work, "throughput", on_commit=lambda values: None)
    try:
        time.sleep(3)  # let the tracker join its group before the clock starts
        started = time.monotonic()
        with Recorder(pipe.settings) as rec:
            for first in range(0, jobs, 1000):
                rec.publish_many(job_drafts(first, min(1000, jobs - first), max(1, jobs // 5)))
            published = time.monotonic() - started
            rec.flush(600)
        forwarded = time.monotonic() - started
        while not pipe.caught_up():
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        records = pipe.projected
    finally:
        pipe.close()
    return {
        "jobs": jobs,
        "records": records,
        "seconds": elapsed,
        "publish_s": published,
        "forwarded_s": forwarded,
        "records_per_s": records / elapsed,
        "jobs_per_s": jobs / elapsed,
    }


def publish_steadily(url: str, home: Path, rate: int, duration: float, out: Path) -> None:
    """The latency run's publisher (a process of its own, as jobs are): ``rate`` jobs/s for
    ``duration`` s; writes ``event_id monotonic-time`` per JobStatusChanged to ``out``
    (CLOCK_MONOTONIC is one clock for every process of the machine)."""
    settings = Settings.load(home=home, log_url=url, environ={})
    tick = 0.02
    per_tick = max(1, round(rate * tick))
    lines: list[str] = []
    with Recorder(settings) as rec:
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < duration:
            at = time.monotonic()
            events = rec.publish_many(job_drafts(n, per_tick, 1000))
            lines.extend(f"{e.event_id} {at}" for e in events if e.event_type == "JobStatusChanged")
            n += per_tick
            time.sleep(max(0.0, started + (n / per_tick) * tick - time.monotonic()))
        achieved = n / (time.monotonic() - started)
        rec.flush(120)
    out.write_text(f"{achieved}\n" + "\n".join(lines) + "\n")


def latency(bootstrap: str, work: Path, rate: int, duration: float) -> dict[str, float]:
    done: dict[str, float] = {}

    def on_commit(values: list[bytes]) -> None:
        now = time.monotonic()
        for value in values:
            source = caused_by(value)
            if source is not None:
                done[source] = now

    pipe = Pipeline(bootstrap, work, "latency", on_commit)
    sent_file = work / "latency-sent.txt"
    try:
        time.sleep(3)
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--publish-to",
                pipe.url,
                "--home",
                str(pipe.home / "publisher"),
                "--rate",
                str(rate),
                "--duration",
                str(duration),
                "--out",
                str(sent_file),
            ],
            check=True,
        )
        lines = sent_file.read_text().split()
        achieved = float(lines[0])
        sent = dict(zip(lines[1::2], map(float, lines[2::2]), strict=True))
        deadline = time.monotonic() + 120
        while sum(k in done for k in sent) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        pipe.close()
    lat = sorted(done[k] - sent[k] for k in sent if k in done)
    if not lat:
        raise SystemExit("no job became queryable: see the tracker log under " + str(work))
    return {
        "rate_asked": rate,
        "rate_achieved": achieved,
        "jobs": len(sent),
        "measured": len(lat),
        "p50_s": lat[len(lat) // 2],
        "p99_s": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "max_s": lat[-1],
        "mean_s": statistics.fmean(lat),
    }


def broker(work: Path, bootstrap: str | None) -> tuple[str, Any]:
    if bootstrap or os.environ.get("MLINEAGE_TEST_KAFKA"):
        return bootstrap or os.environ["MLINEAGE_TEST_KAFKA"], None
    from tests.kafka_broker import start_local_broker

    local = start_local_broker(work / "broker")
    return local.bootstrap, local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs for the throughput run")
    parser.add_argument("--rate", type=int, default=500, help="jobs/s for the latency run")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady load")
    parser.add_argument("--bootstrap", help="an existing broker host:port")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--skip-throughput", action="store_true", help="only the latency run")
    parser.add_argument("--publish-to", help=argparse.SUPPRESS)  # the publisher process
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish_to:
        publish_steadily(args.publish_to, args.home, args.rate, args.duration, args.out)
        return
    with tempfile.TemporaryDirectory(prefix="mlineage-kafka-bench-") as tmp:
        work = Path(tmp)
        bootstrap, local = broker(work, args.bootstrap)
        try:
            print(f"broker {bootstrap}; {os.cpu_count()} cores", flush=True)
            tp: dict[str, float] = {}
            if not args.skip_throughput:
                tp = throughput(bootstrap, work, args.jobs)
                print(
                    f"throughput: {tp['jobs']:,} jobs, {tp['records']:,} records projected "
                    f"in {tp['seconds']:.1f} s: {tp['records_per_s']:,.0f} records/s, "
                    f"{tp['jobs_per_s']:,.0f} jobs/s (publish {tp['publish_s']:.1f} s, "
                    f"in Kafka after {tp['forwarded_s']:.1f} s)",
                    flush=True,
                )
            lat = latency(bootstrap, work, args.rate, args.duration)
            print(
                f"latency at {lat['rate_achieved']:.0f} jobs/s for {args.duration:.0f} s "
                f"({lat['measured']:,} jobs): p50 {lat['p50_s'] * 1000:.0f} ms, "
                f"p99 {lat['p99_s'] * 1000:.0f} ms, max {lat['max_s'] * 1000:.0f} ms",
                flush=True,
            )
        finally:
            if local is not None:
                local.close()
    if args.json:
        args.json.write_text(json.dumps({"throughput": tp, "latency": lat}, indent=2))


if __name__ == "__main__":
    main()
