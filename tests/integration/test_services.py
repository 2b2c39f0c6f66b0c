"""The runners' stop conditions (until the end, max_events, timeout with follow), so tests
and operators can run them to completion without sleeps."""

from __future__ import annotations

from pathlib import Path

from mlineage import Recorder, Settings
from mlineage.log.base import open_log
from mlineage.projection.service import ProjectorService
from mlineage.projection.store import DuckDBStore
from mlineage.tracker.service import TrackerService


def _publish(settings: Settings, jobs: int) -> None:
    with Recorder(settings) as rec:
        rec.publish_many(
            [
                {
                    "event_type": "JobCreated",
                    "payload": {
                        "job_type": "TrainingJob",
                        "job_name": f"job-{i}",
                        "image_uri": "img:1",
                        "inputs": [{"name": "train", "uri": f"s3://d/{i % 7}"}],
                    },
                }
                for i in range(jobs)
            ]
        )


def test_tracker_stop_conditions(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path, environ={})
    _publish(settings, 50)
    with open_log(settings.log_url) as log:
        tracker = TrackerService(log, batch_size=7)
        assert tracker.run(max_events=20).consumed == 20
        assert tracker.lag() == 30
        assert tracker.run().consumed == 30
        assert tracker.lag() == 0
        # following, the time-out is what ends the run (it returns, having found nothing)
        assert tracker.run(follow=True, timeout=0.5).consumed == 0


def test_projector_stop_conditions_and_batches(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path, environ={})
    _publish(settings, 40)
    with open_log(settings.log_url) as log:
        TrackerService(log).run()
        total = sum(
            sum(log.end_offsets(t).values()) for t in ("mlineage.jobs.v1", "mlineage.entities.v1")
        )
        with DuckDBStore(tmp_path / "a.duckdb") as store:
            projector = ProjectorService(log, store, batch_size=9)
            first = projector.run(max_events=25)
            assert first.consumed == 25
            assert first.batches == 3  # 9 + 9 + 7
            assert projector.lag() == total - 25
            rest = projector.run()
            assert rest.consumed == total - 25
            assert projector.lag() == 0
            assert projector.run(follow=True, timeout=0.5).consumed == 0
            split = store.checksum()
        with DuckDBStore(tmp_path / "b.duckdb") as store:
            ProjectorService(log, store).run()
            assert store.checksum() == split  # batching does not change the result
