"""``Recorder.job`` never breaks the job: bad values are refused when recorded, the job always
ends (never left ``InProgress``), the block's own exception goes on unchanged, Ctrl-C and
SIGTERM end it ``Stopped``. Against the real embedded SQLite log and a real DuckDB file."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import duckdb
import pytest

from mlineage import EventLogError, EventValidationError, LineageStore, Recorder, Settings
from mlineage.events.codec import decode
from mlineage.log.base import TOPIC_JOBS, OutRecord, open_log
from mlineage.log.sqlite import SqliteEventLog
from mlineage.pipeline import sync
from tests.helpers import read_all, wait_until

NAN = float("nan")


def lasts(end: dict[str, Any]) -> dict[str, Any]:
    """The last value of each metric of a job's end (a summary's, or the value itself)."""
    return {k: v["last"] if isinstance(v, dict) else v for k, v in end["metrics"].items()}


def _settings(home: Path) -> Settings:
    return Settings.load(home=home, account_id="111122223333", region="eu-west-1", environ={})


def _job_events(settings: Settings, job_name: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event type, payload)`` of every source event of this job, in log order."""
    with open_log(settings.log_url) as log:
        events = [decode(r.value) for r in read_all(log, TOPIC_JOBS)]
    return [
        (e.event_type, e.payload.model_dump(mode="json", exclude_none=True))
        for e in events
        if getattr(e.payload, "job_name", None) == job_name
    ]


def _end(settings: Settings, job_name: str) -> dict[str, Any]:
    """The job's one final ``JobStatusChanged`` (asserting there is exactly one)."""
    events = _job_events(settings, job_name)
    assert [t for t, _ in events] == ["JobCreated", "JobStatusChanged"], events
    return events[1][1]


# -- values are checked when recorded -----------------------------------------------------------

BAD_METRICS: list[tuple[str, object, str, str]] = [
    ("nan", NAN, "metrics.loss", "finite number"),
    ("inf", float("inf"), "metrics.loss", "finite number"),
    ("-inf", float("-inf"), "metrics.loss", "finite number"),
    ("a string", "0.5", "metrics.loss", "valid number"),
    ("a bool", True, "metrics.loss", "valid number"),
    ("None", None, "metrics.loss", "valid number"),
    ("an object", object(), "metrics.loss", "valid number"),
]


@pytest.mark.parametrize(
    ("value", "field", "rule"),
    [b[1:] for b in BAD_METRICS],
    ids=[b[0] for b in BAD_METRICS],
)
def test_a_bad_metric_is_refused_at_once_and_the_job_still_ends(
    tmp_path: Path, value: object, field: str, rule: str
) -> None:
    settings = _settings(tmp_path)
    with Recorder(settings) as rec, rec.job("TrainingJob", "bad-metric") as run:
        run.metric("auc", 0.9)
        with pytest.raises(EventValidationError) as refused:
            run.metric("loss", value)  # type: ignore[arg-type]
        assert [(f, rule in r) for _, f, r in refused.value.problems] == [(field, True)]
        assert field in str(refused.value)
        run.metric("epochs", 3)  # an int is a number: stored as a float
    end = _end(settings, "bad-metric")
    assert end["status"] == "Completed"
    assert lasts(end) == {"auc": 0.9, "epochs": 3.0}  # the refused value was not kept


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", 1.0), "metrics..[key]"),
        (("x" * 2501, 1.0), "metrics." + "x" * 2501 + ".[key]"),
    ],
    ids=["empty name", "name too long"],
)
def test_a_bad_metric_name_is_refused_at_once(
    tmp_path: Path, args: tuple[str, float], field: str
) -> None:
    settings = _settings(tmp_path)
    with Recorder(settings) as rec, rec.job("TrainingJob", "bad-name") as run:
        with pytest.raises(EventValidationError) as refused:
            run.metric(*args)
        assert [f for _, f, _ in refused.value.problems] == [field]
    assert _end(settings, "bad-name")["status"] == "Completed"


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        (("", "s3://m/model.tar.gz"), ["outputs.0.name"]),
        (("model", ""), ["outputs.0.uri"]),
        (("model", "s3://m/" + "x" * 2048), ["outputs.0.uri"]),
        (("model", "s3://m/model.tar.gz", ""), ["outputs.0.artifact_type"]),
        (("model", Path("/m/model.tar.gz")), ["outputs.0.uri"]),
    ],
    ids=["empty name", "empty uri", "uri too long", "empty artifact type", "a Path as uri"],
)
def test_a_bad_output_is_refused_at_once(
    tmp_path: Path, args: Sequence[Any], fields: list[str]
) -> None:
    settings = _settings(tmp_path)
    with Recorder(settings) as rec, rec.job("TrainingJob", "bad-output") as run:
        with pytest.raises(EventValidationError) as refused:
            run.output(*args)
        assert [f for _, f, _ in refused.value.problems] == fields
        run.output("model", "s3://m/model.tar.gz", "Model")
    end = _end(settings, "bad-output")
    assert end["status"] == "Completed"
    assert end["outputs"] == [
        {"name": "model", "uri": "s3://m/model.tar.gz", "artifact_type": "Model"}
    ]


def test_an_uncaught_refusal_fails_the_job_with_the_reason(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with (
        Recorder(settings) as rec,
        pytest.raises(EventValidationError),
        rec.job("TrainingJob", "nan-job") as run,
    ):
        run.metric("loss", NAN)
    end = _end(settings, "nan-job")
    assert end["status"] == "Failed"
    assert end["failure_reason"].startswith("EventValidationError: JobStatusChanged: field")
    assert "metrics.loss" in end["failure_reason"]


# -- the final status is always published ---------------------------------------------------------


def test_an_end_that_cannot_be_built_is_published_failed_naming_the_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    with Recorder(settings) as rec, rec.job("TrainingJob", "bypassed") as run:
        run.metrics["loss"] = NAN  # past the check: the end event cannot hold it
    end = _end(settings, "bypassed")
    assert end["status"] == "Failed"
    assert "could not be recorded as Completed" in end["failure_reason"]
    assert "payload.metrics.loss" in end["failure_reason"]
    assert end["metrics"] == {}  # what could not be recorded is left out
    assert any("recorded as Failed" in r.getMessage() for r in caplog.records)


# -- the block's exception goes on unchanged ------------------------------------------------------


def test_the_users_exception_propagates_unchanged_and_the_job_ends_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    error = RuntimeError("boom")

    def train(rec: Recorder) -> None:
        with rec.job("TrainingJob", "boom-job") as run:
            run.metric("auc", 0.5)
            run.metrics["loss"] = NAN  # and the end cannot be recorded as it is
            raise error

    with Recorder(settings) as rec, pytest.raises(RuntimeError) as raised:
        train(rec)
    assert raised.value is error
    assert raised.value.__context__ is None  # nothing of the recorder's got attached
    frames = traceback.extract_tb(raised.value.__traceback__)
    assert (frames[-1].name, frames[-1].line) == ("train", "raise error")
    assert {Path(f.filename).name for f in frames}.isdisjoint({"contextlib.py", "recorder.py"})
    end = _end(settings, "boom-job")
    assert end["status"] == "Failed"
    assert end["failure_reason"].startswith("RuntimeError: boom (and the job's end could not")
    assert "payload.metrics.loss" in end["failure_reason"]
    assert any("recorded as Failed" in r.getMessage() for r in caplog.records)


class _RefusesTheSecondAppend(SqliteEventLog):
    """The real embedded log, gone away after the job's first event (lineage down at the end)."""

    appends = 0

    def append(self, records: Sequence[OutRecord]) -> None:
        self.appends += 1
        if self.appends > 1:
            raise EventLogError("the log is down (test)")
        super().append(records)


def test_a_log_that_is_down_at_the_end_never_replaces_the_users_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    error = RuntimeError("boom")
    with (
        _RefusesTheSecondAppend(settings.home / "events.sqlite") as log,
        Recorder(settings, log=log) as rec,
        pytest.raises(RuntimeError) as raised,
        rec.job("TrainingJob", "down-job"),
    ):
        raise error
    assert raised.value is error
    assert any(
        "could not record its end" in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    )
    assert [t for t, _ in _job_events(settings, "down-job")] == ["JobCreated"]


# -- Ctrl-C and SIGTERM: Stopped ----------------------------------------------------------------


def test_keyboard_interrupt_ends_the_job_stopped(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    interrupt = KeyboardInterrupt()

    def train(rec: Recorder) -> None:
        with rec.job("TrainingJob", "ctrl-c") as run:
            run.metric("loss", 0.25)
            raise interrupt

    with Recorder(settings) as rec, pytest.raises(KeyboardInterrupt) as raised:
        train(rec)
    assert raised.value is interrupt
    end = _end(settings, "ctrl-c")
    assert end["status"] == "Stopped"
    assert lasts(end) == {"loss": 0.25}


CHILD = textwrap.dedent(
    """
    import signal, sys, threading
    from pathlib import Path
    from mlineage import Recorder, Settings

    ready, unwound = Path(sys.argv[2]), Path(sys.argv[3])
    settings = Settings.load(
        home=sys.argv[1], account_id="111122223333", region="eu-west-1", environ={}
    )
    rec = Recorder(settings)
    try:
        with rec.job("TrainingJob", "sigterm-job") as run:
            try:
                run.metric("epoch", 1)
                ready.write_text("ready")
                threading.Event().wait()  # training, until the signal
            finally:
                unwound.write_text("unwound")
    finally:
        print("restored", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")
def test_sigterm_stops_a_job_in_a_subprocess(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    ready, unwound = tmp_path / "ready", tmp_path / "unwound"
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(settings.home), str(ready), str(unwound)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLINEAGE_")},
    ) as proc:
        try:
            wait_until(
                lambda: ready.exists() or proc.poll() is not None,
                "the child is inside its job",
            )
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    # it exits: the Terminated (a KeyboardInterrupt) went on, uncaught
    assert proc.returncode not in (0, None), err
    assert "mlineage.recorder.Terminated" in err
    assert unwound.read_text() == "unwound"  # the block's finally ran
    assert "restored True" in out  # the default handler is back once the block is left
    end = _end(settings, "sigterm-job")
    assert end["status"] == "Stopped"
    assert lasts(end) == {"epoch": 1.0}


LATE_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from mlineage import Recorder, Settings
    from mlineage.log.sqlite import SqliteEventLog

    class SigtermDuringTheEnd(SqliteEventLog):
        appends = 0

        def append(self, records):
            self.appends += 1
            if self.appends == 2:  # the job's end: SIGTERM arrives while it is recorded
                os.kill(os.getpid(), signal.SIGTERM)
            super().append(records)

    settings = Settings.load(
        home=sys.argv[1], account_id="111122223333", region="eu-west-1", environ={}
    )
    rec = Recorder(settings, log=SigtermDuringTheEnd(settings.home / "events.sqlite"))
    with rec.job("TrainingJob", "late-sigterm"):
        pass
    print("not reached: the SIGTERM takes its default course once the end is recorded")
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")
def test_a_sigterm_while_the_end_is_recorded_waits_for_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", LATE_CHILD, str(settings.home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLINEAGE_")},
    )
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert "not reached" not in proc.stdout
    assert _end(settings, "late-sigterm")["status"] == "Completed"


def _ignore(signum: int, frame: FrameType | None) -> None:
    pass


def test_the_sigterm_handler_is_installed_only_when_default_and_restored(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with Recorder(settings) as rec:
            with rec.job("TrainingJob", "default-handler"):
                assert callable(signal.getsignal(signal.SIGTERM))  # ours, inside the block
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

            signal.signal(signal.SIGTERM, _ignore)  # someone handles SIGTERM: left alone
            with rec.job("TrainingJob", "own-handler"):
                assert signal.getsignal(signal.SIGTERM) is _ignore
            assert signal.getsignal(signal.SIGTERM) is _ignore

            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            seen: list[object] = []

            def in_a_thread() -> None:
                with rec.job("TrainingJob", "in-a-thread"):
                    seen.append(signal.getsignal(signal.SIGTERM))

            thread = threading.Thread(target=in_a_thread)
            thread.start()
            thread.join()
            assert seen == [signal.SIG_DFL]  # only the main thread may install one
    finally:
        signal.signal(signal.SIGTERM, before)
    for name in ("default-handler", "own-handler", "in-a-thread"):
        assert _end(settings, name)["status"] == "Completed"


# -- the trial component's ARN ------------------------------------------------------------------


def test_trial_component_arn_is_the_arn_the_projection_has(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    model = "s3://m/Churn-XGB-7/model.tar.gz"
    with Recorder(settings) as rec:
        with rec.job("TrainingJob", "Churn-XGB-7", inputs={"train": "s3://d/train"}) as run:
            run.output("model", model)
        model_arn = rec.artifact_arn(model)
    sync(settings)
    with duckdb.connect(str(settings.db_path), read_only=True) as con:
        vertices = dict(
            con.execute(
                "SELECT arn, lineage_type FROM lineage_vertices WHERE arn IN (?, ?)",
                [run.trial_component_arn, model_arn],
            ).fetchall()
        )
        produced = con.execute(
            "SELECT association_type FROM lineage_edges "
            "WHERE source_arn = ? AND destination_arn = ?",
            [run.trial_component_arn, model_arn],
        ).fetchall()
    assert vertices == {run.trial_component_arn: "TrialComponent", model_arn: "Artifact"}
    assert produced == [("Produced",)]
    assert run.trial_component_arn == (
        "arn:aws:sagemaker:eu-west-1:111122223333:"
        "experiment-trial-component/churn-xgb-7-aws-training-job"
    )


def test_upsert_returns_the_arn_and_associate_takes_uris(tmp_path: Path) -> None:
    """`upsert` returns the entity's ARN (as the projection keys it); `associate` takes an
    artifact's URI where an ARN is expected, and names the field for anything else."""
    settings = Settings.load(home=tmp_path / "home", environ={})
    with Recorder(settings) as rec:
        data = rec.upsert(
            {
                "kind": "artifact",
                "source": {"source_uri": "s3://up/data/"},
                "artifact_type": "DataSet",
            }
        )
        action = rec.upsert({"kind": "action", "action_name": "prep", "action_type": "Step"})
        assert data == rec.artifact_arn("s3://up/data/")
        ends = rec.associate("s3://up/data/", action)
        assert ends == (data, action)
        with pytest.raises(EventValidationError, match=r"entity\.destination_arn") as bad:
            rec.associate("s3://up/data/", "prep")
        assert "neither an ARN nor an artifact's URI" in str(bad.value)
    sync(settings)
    with LineageStore.open(settings.db_path) as store:
        arns = {r[0] for r in store.sql("SELECT arn FROM lineage_vertices")[1]}
        assert {data, action} <= arns
        edges = store.sql("SELECT source_arn, destination_arn FROM lineage_edges")[1]
        assert (data, action) in edges


def test_metrics_keep_sagemakers_summary_and_their_per_step_values(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path / "home", environ={})
    losses = [0.9, 0.5, 0.4, 0.45, 0.2]
    with Recorder(settings) as rec:
        with rec.job("TrainingJob", "summed") as run:
            for step, loss in enumerate(losses):
                run.metric("train:loss", loss, step=step)
            run.metric("auc", 0.93)
            with pytest.raises(EventValidationError, match="step"):
                run.metric("train:loss", 0.1, step=-1)
        tc = run.trial_component_arn
    sync(settings)
    with LineageStore.open(settings.db_path) as store:
        described = store.describe(tc)
        metrics = {m["MetricName"]: m for m in described["Metrics"]}
        mean = sum(losses) / len(losses)
        std = (sum((x - mean) ** 2 for x in losses) / len(losses)) ** 0.5
        loss = metrics["train:loss"]
        assert loss["Count"] == 5
        assert loss["Min"] == 0.2
        assert loss["Max"] == 0.9
        assert loss["Last"] == 0.2
        assert loss["Avg"] == pytest.approx(mean)
        assert loss["StdDev"] == pytest.approx(std)
        assert metrics["auc"] == {
            "MetricName": "auc",
            "Count": 1,
            "Min": 0.93,
            "Max": 0.93,
            "Avg": 0.93,
            "StdDev": 0.0,
            "Last": 0.93,
        }
        # the per-step values stay in the projection, for SQL
        _, rows = store.sql(
            "SELECT v.step, v.value FROM (SELECT unnest(CAST(json_extract(metrics, "
            "'$.\"train:loss\".values') AS STRUCT(value DOUBLE, step BIGINT, timestamp "
            f"VARCHAR)[])) AS v FROM trial_components WHERE arn = '{tc}') ORDER BY 1"
        )
        assert rows == list(enumerate(losses))
