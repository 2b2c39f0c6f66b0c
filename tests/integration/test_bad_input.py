"""Bad input: rejected on publish with a clear error (nothing written); already in the log,
dead-lettered with the reason while everything else is processed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlineage import EventValidationError, Recorder, Settings
from mlineage.log.base import TOPIC_DLQ, TOPIC_ENTITIES, TOPIC_JOBS, OutRecord, open_log
from mlineage.pipeline import sync
from mlineage.projection.store import DuckDBStore
from tests.helpers import arn, event, raw, upsert

GOOD_JOB = event(
    "JobCreated",
    {
        "job_type": "TrainingJob",
        "job_name": "good-job",
        "inputs": [{"name": "train", "uri": "s3://d/train"}],
    },
)
GOOD_ENTITY = upsert({"kind": "action", "action_name": "good-action", "action_type": "Step"})

# (what, raw record, words the error must contain)
BAD: list[tuple[str, bytes, list[str]]] = [
    ("malformed JSON", b'{"event_type": "JobCreated", ', ["malformed JSON"]),
    (
        "unknown event_type",
        raw({**GOOD_JOB, "event_type": "JobDeleted"}),
        ["event_type", "JobDeleted"],
    ),
    (
        "missing required field",
        raw(event("JobCreated", {"job_type": "TrainingJob"})),
        ["JobCreated", "payload.job_name", "required"],
    ),
    (
        "over-long name",
        raw(upsert({"kind": "action", "action_name": "a" * 121})),
        ["EntityUpserted", "payload.entity.action_name", "at most 120"],
    ),
    (
        "invalid ARN",
        raw(
            upsert(
                {
                    "kind": "association",
                    "source_arn": "not-an-arn",
                    "destination_arn": arn("action", "x"),
                }
            )
        ),
        ["EntityUpserted", "payload.entity.source_arn", "pattern"],
    ),
    (
        "association to a trial",
        raw(
            upsert(
                {
                    "kind": "association",
                    "source_arn": arn("action", "x"),
                    "destination_arn": arn("experiment-trial", "t"),
                }
            )
        ),
        ["EntityUpserted", "destination_arn", "trial"],
    ),
]


@pytest.mark.parametrize(("what", "value", "words"), BAD, ids=[b[0] for b in BAD])
def test_rejected_on_publish_with_a_clear_error(
    tmp_path: Path, what: str, value: bytes, words: list[str]
) -> None:
    settings = Settings.load(home=tmp_path, environ={})
    with Recorder(settings) as rec:
        with pytest.raises(EventValidationError) as info:
            rec.publish(json.loads(value) if what != "malformed JSON" else {"event_type": 1})
        if what != "malformed JSON":
            for word in words:
                assert word in str(info.value)
        assert rec.log.end_offsets(TOPIC_JOBS) == {0: 0}
        assert rec.log.end_offsets(TOPIC_ENTITIES) == {0: 0}


def test_cli_publish_reports_every_bad_line_and_writes_nothing(tmp_path: Path) -> None:
    lines = [json.dumps(GOOD_JOB)] + [v.decode() for _, v, _ in BAD] + [json.dumps(GOOD_ENTITY)]
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(lines) + "\n")
    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "mlineage.cli", "--home", str(home), "publish", str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    for number, (_, _, words) in enumerate(BAD, start=2):
        line = next(x for x in proc.stderr.splitlines() if x.startswith(f"line {number}:"))
        for word in words:
            assert word in line, (number, line)
    assert "nothing was published" in proc.stderr
    assert "line 1:" not in proc.stderr
    assert f"line {len(lines)}:" not in proc.stderr
    with open_log(Settings.load(home=home, environ={}).log_url) as log:
        assert log.end_offsets(TOPIC_JOBS) == {0: 0}
        assert log.end_offsets(TOPIC_ENTITIES) == {0: 0}


def test_bad_records_in_the_log_are_dead_lettered_and_the_rest_projected(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path, environ={})
    bad = [value for _, value, _ in BAD]
    with open_log(settings.log_url) as log:
        # a raw producer that skipped validation writes to both topics
        log.append(
            [OutRecord(TOPIC_JOBS, None, raw(GOOD_JOB))]
            + [OutRecord(TOPIC_JOBS, None, v) for v in bad]
            + [OutRecord(TOPIC_ENTITIES, None, v) for v in bad]
            + [
                OutRecord(TOPIC_ENTITIES, None, raw(GOOD_ENTITY)),
                # an entity event on the jobs topic does not belong there
                OutRecord(
                    TOPIC_JOBS, None, raw(upsert({"kind": "action", "action_name": "misplaced"}))
                ),
            ]
        )
        stats = sync(settings, log=log)
        assert stats.tracker.dead_lettered == len(bad) + 1
        dlq = log.read(TOPIC_DLQ, 0, 0, 100)
        assert len(dlq) == len(bad) + 1
        for record, (_, value, words) in zip(dlq, BAD, strict=False):
            assert record.value == value
            assert record.header("mlineage.original.topic") == TOPIC_JOBS.encode()
            error = (record.header("mlineage.error") or b"").decode()
            assert all(w in error for w in words if w != "EntityUpserted"), error
        assert dlq[0].header("mlineage.original.offset") == b"1"
        assert b"not a source event" in (dlq[-1].header("mlineage.error") or b"")

    with DuckDBStore(settings.db_path, read_only=True) as store:
        rows = store.con.execute(
            'SELECT topic, "offset", error FROM dead_letters ORDER BY topic, "offset"'
        ).fetchall()
        # the projector dead-letters the bad records of both topics it reads
        assert len(rows) == 2 * len(bad) + 1
        by_topic = [r for r in rows if r[0] == TOPIC_ENTITIES]
        for (_, _, error), (_, _, words) in zip(by_topic, BAD, strict=True):
            assert all(w in error for w in words), error
        # everything else went through: the good job (and what the tracker derived from it)
        assert store.con.execute("SELECT job_name FROM jobs").fetchall() == [("good-job",)]
        names = {r[0] for r in store.con.execute("SELECT action_name FROM actions").fetchall()}
        assert names == {"good-action"}
        assert store.con.execute(
            "SELECT count(*) FROM trial_components WHERE trial_component_name = "
            "'good-job-aws-training-job'"
        ).fetchall() == [(1,)]
