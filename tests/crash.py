"""What the crash tests share: a deployment (a home and a log, SQLite or Kafka) whose commands
run as real subprocesses, crashed at named failpoints, and the checks that recovery was exact:
nothing derived twice or lost, the projection equal to a clean replay, nothing left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlineage import Recorder, Settings
from mlineage.events.codec import decode
from mlineage.log.base import TOPIC_DLQ, TOPIC_ENTITIES, TOPIC_JOBS, Record, open_log
from mlineage.projection.service import PROJECTED_TOPICS, WriterLock, leftovers, replay
from mlineage.projection.store import DuckDBStore
from mlineage.tracker.derive import derive
from tests.helpers import read_all, training_job_drafts

CLI = [sys.executable, "-m", "mlineage.cli"]


def stopped(pid: int) -> bool:
    """True when the process is frozen (SIGSTOP) or gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in {"T", "t", "Z"}


@dataclass
class Deployment:
    """One home (DuckDB file, spools) on one log; every command a subprocess."""

    home: Path
    log_url: str
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "MLINEAGE_HOME": str(self.home),
            "MLINEAGE_LOG": self.log_url,
            "MLINEAGE_INSTANCE_ID": "crash-test",
            **self.env,
        }
        self.env.pop("MLINEAGE_FAILPOINTS", None)
        self.runs = 0
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        """Kill whatever the test left running (a failed test must not leave services)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)

    @property
    def settings(self) -> Settings:
        return Settings.load(home=self.home, log_url=self.log_url, environ={})

    @property
    def db(self) -> Path:
        return self.settings.db_path

    def publish_jobs(self, jobs: int, seed: int = 7, *, first: int = 0, wait: bool = True) -> None:
        """Publish ``jobs`` training jobs (numbered from ``first``); ``wait``: until they are
        in the log (else a Kafka outage leaves them in the spool, forwarded later)."""
        drafts = training_job_drafts(first, jobs, max(jobs // 5, 1), random.Random(seed))
        rec = Recorder(self.settings)
        for start in range(0, len(drafts), 200):
            rec.publish_many(drafts[start : start + 200])
        if wait:
            assert rec.flush(120), "the published jobs did not reach the log"
            rec.close()
        else:
            rec.log.close(timeout=0)  # the spool keeps the rest

    def _log_file(self, name: str) -> Path:
        self.runs += 1
        return self.home / f"run-{self.runs}-{name}.log"

    def popen(
        self, *args: str, failpoints: str | None = None, extra_env: Mapping[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        env = {**self.env, **(extra_env or {})}
        if failpoints:
            env["MLINEAGE_FAILPOINTS"] = failpoints
        out = self._log_file(args[0])
        with out.open("wb") as fh:
            proc = subprocess.Popen([*CLI, *args], env=env, stdout=fh, stderr=fh)
        self.procs.append(proc)
        return proc, out

    def run(self, *args: str) -> str:
        """Run a command to its end; it must succeed. Returns what it printed."""
        proc, out = self.popen(*args)
        rc = proc.wait(600)
        text = out.read_text(errors="replace")
        assert rc == 0, f"`mlineage {' '.join(args)}` failed (rc {rc}):\n{text[-3000:]}"
        return text

    def crash(self, failpoint: str, *args: str) -> None:
        """Run a command armed with ``failpoint`` (point=kill@N): it must die there."""
        proc, out = self.popen(*args, failpoints=failpoint)
        rc = proc.wait(600)
        assert rc == -signal.SIGKILL, (
            f"`mlineage {' '.join(args)}` with {failpoint} ended with rc {rc}, not at the "
            f"failpoint (was it reached?):\n{out.read_text(errors='replace')[-3000:]}"
        )

    # -- checks ----------------------------------------------------------------------------

    def source_records(self) -> list[Record]:
        with open_log(self.log_url) as log:
            return read_all(log, TOPIC_JOBS)

    def assert_derived_exactly_once(self) -> None:
        """The entity topic holds exactly what derive() gives for the source events: no
        derived event twice, none missing."""
        with open_log(self.log_url) as log:
            sources = [decode(r.value) for r in read_all(log, TOPIC_JOBS)]
            expected = {str(d.event_id): s for s in sources for d in derive(s)}
            # the tracker's events (others, such as a server's writes, cause nothing)
            derived = [
                str(e.event_id)
                for e in (decode(r.value) for r in read_all(log, TOPIC_ENTITIES))
                if e.caused_by is not None
            ]
            dead = len(read_all(log, TOPIC_DLQ))
        assert len(derived) == len(set(derived)), "a derived event was committed twice"
        missing = sorted(
            {
                str(expected[i].payload.job_name)  # type: ignore[union-attr]
                for i in set(expected) - set(derived)
            }
        )
        extra = len(set(derived) - set(expected))
        summary = (
            f"derived events missing for {len(missing)} jobs ({missing[:10]}), "
            f"{extra} unexpected; {dead} dead letters; {len(sources)} source records"
        )
        assert not missing, summary
        assert not extra, summary

    def distinct_events(self) -> int:
        with open_log(self.log_url) as log:
            return len(
                {decode(r.value).event_id for t in PROJECTED_TOPICS for r in read_all(log, t)}
            )

    def checksum(self) -> str:
        with DuckDBStore(self.db, read_only=True) as store:
            return store.checksum()

    def assert_projection_exact(self) -> str:
        """The projection is at the end of the log, holds every event once, and equals a
        clean replay into another file. Returns its checksum."""
        with open_log(self.log_url) as log:
            ends = {(t, p): e for t in PROJECTED_TOPICS for p, e in log.end_offsets(t).items()}
            clean = self.home.parent / f"{self.home.name}-clean.duckdb"
            clean.unlink(missing_ok=True)
            replay(log, clean)
        with DuckDBStore(self.db, read_only=True) as store:
            positions = store.positions("mlineage-projector")
            live = store.checksum()
            events = store.counts()["events"]
        assert {tp: o for tp, o in positions.items() if o} == {
            tp: e for tp, e in ends.items() if e
        }, "the projection is not at the end of the log"
        assert events == self.distinct_events(), "an event was lost or applied twice"
        with DuckDBStore(clean, read_only=True) as store:
            assert store.checksum() == live, "the projection differs from a clean replay"
        return live

    def assert_nothing_left_behind(self) -> None:
        """No temporary file of a replay or snapshot, no WAL beside a closed file, no spool
        with records in it, and the writer lock free."""
        left = leftovers(self.db)
        assert not left, f"left behind: {left}"
        assert not Path(f"{self.db}.wal").exists(), "a WAL was left beside the projection"
        spools = sorted((self.home / "spool").glob("spool-*.sqlite"))
        assert not spools, f"spool files left behind: {spools}"
        WriterLock(self.db).acquire("check the lock is free").release()
