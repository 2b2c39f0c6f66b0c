"""The smaller things a newcomer meets, through the real CLI: publish takes pretty-printed
documents and arrays, a misspelt field gets "did you mean", SageMaker's ExperimentConfig
keys are accepted, status shows absolute paths, a relative-looking sqlite URL gets a word,
a read in an empty home says so and creates nothing, the demo keeps to its own home, and
dead letters can be discarded (`dlq list` catches up first)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mlineage.log.base import TOPIC_JOBS, OutRecord
from mlineage.log.sqlite import SqliteEventLog

CLI = [sys.executable, "-m", "mlineage.cli"]
REPO = Path(__file__).resolve().parents[2]


def run(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    ok: bool = True,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        input=stdin,
        env={**os.environ, **(env or {})},
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def job(name: str, **payload: object) -> dict[str, object]:
    return {
        "event_type": "JobCreated",
        "payload": {"job_type": "TrainingJob", "job_name": name, **payload},
    }


def jobs_in(home: Path) -> list[str]:
    rows = json.loads(
        run(
            "--home", str(home), "sql", "--format", "json", "SELECT job_name FROM jobs ORDER BY 1"
        ).stdout
    )
    return [r["job_name"] for r in rows]


def test_publish_takes_pretty_printed_documents_and_arrays(tmp_path: Path) -> None:
    home = tmp_path / "home"
    examples = sorted((REPO / "schemas/examples").glob("*.json"))
    text = "\n".join(p.read_text() for p in examples)  # as the README points at them
    published = run("--home", str(home), "publish", "-", stdin=text)
    assert f"published {len(examples)} events" in published.stdout
    array = json.dumps([job("arr-1"), job("arr-2")], indent=2)
    run("--home", str(home), "publish", "-", stdin=array)
    assert {"arr-1", "arr-2"} <= set(jobs_in(home))


def test_publish_names_the_line_of_each_bad_event(tmp_path: Path) -> None:
    home = tmp_path / "home"
    lines = [json.dumps(job("ok-1")), '{"event_type": "JobCreated", "payl', json.dumps(job("ok-2"))]
    lines.append(json.dumps([job("ok-3"), {"event_type": "JobCreated", "payload": {}}]))
    proc = run("--home", str(home), "publish", "-", stdin="\n".join(lines) + "\n", ok=False)
    assert proc.returncode == 1
    assert "line 2: event: malformed JSON" in proc.stderr
    assert "line 4, item 2: JobCreated: field 'payload.job_type' is required" in proc.stderr
    assert "2 bad event(s); nothing was published" in proc.stderr
    pretty = (
        json.dumps(job("p-1"), indent=2) + "\n" + '{\n  "event_type": "JobCreated",\n  oops\n}\n'
    )
    bad = run("--home", str(home), "publish", "-", stdin=pretty, ok=False)
    assert "line 10: event: malformed JSON" in bad.stderr  # where oops is


def test_a_misspelt_field_gets_did_you_mean(tmp_path: Path) -> None:
    event = {"event_type": "JobCreated", "payload": {"job_type": "TrainingJob", "job_nme": "x"}}
    proc = run("--home", str(tmp_path / "h"), "publish", "-", stdin=json.dumps(event), ok=False)
    assert "field 'payload.job_nme' is not a field of this event" in proc.stderr
    assert "did you mean 'job_name'?" in proc.stderr


def test_sagemakers_experiment_config_keys_are_accepted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = {"ExperimentName": "fraud", "TrialName": "fraud-t1", "RunName": "run-7"}
    run(
        "--home",
        str(home),
        "publish",
        "-",
        stdin=json.dumps(job("exp-1", experiment_config=config)),
    )
    rows = json.loads(
        run(
            "--home",
            str(home),
            "sql",
            "--format",
            "json",
            "SELECT (SELECT list(experiment_name) FROM experiments) AS e, "
            "(SELECT list(trial_name) FROM trials) AS t, "
            "(SELECT experiment_config FROM jobs WHERE job_name = 'exp-1') AS c",
        ).stdout
    )
    assert rows[0]["e"] == ["fraud"]
    assert rows[0]["t"] == ["fraud-t1"]
    assert rows[0]["c"]["run_name"] == "run-7"  # stored in mlineage's own spelling


def test_status_shows_absolute_paths(tmp_path: Path) -> None:
    run("--home", "rel-home", "publish", "-", stdin=json.dumps(job("st-1")), cwd=tmp_path)
    st = json.loads(run("--home", "rel-home", "status", "--json", cwd=tmp_path).stdout)
    assert st["log_file"] == str(tmp_path / "rel-home" / "events.sqlite")
    assert st["projection"] == str(tmp_path / "rel-home" / "lineage.duckdb")
    text = run("--home", "rel-home", "status", cwd=tmp_path).stdout
    assert f"(the file {tmp_path / 'rel-home' / 'events.sqlite'})" in text


def test_a_relative_sqlite_url_that_looks_absolute_gets_a_word(tmp_path: Path) -> None:
    proc = run("--log", "sqlite:///tmp/x.sqlite", "status", cwd=tmp_path)
    assert f"is the file {tmp_path / 'tmp' / 'x.sqlite'} (relative to here)" in proc.stderr
    assert "write sqlite:////tmp/x.sqlite" in proc.stderr
    assert not (tmp_path / "tmp").exists()  # status of nothing creates nothing


def test_a_read_in_an_empty_home_says_so_and_creates_nothing(tmp_path: Path) -> None:
    for args in (["sql", "SELECT 1"], ["list", "artifacts"], ["checksum"], ["replay"]):
        proc = run(*args, cwd=tmp_path, env={"MLINEAGE_HOME": ""}, ok=False)
        assert proc.returncode == 1, args
        assert "nothing published here yet" in proc.stderr, (args, proc.stderr)
    status = run("status", cwd=tmp_path, env={"MLINEAGE_HOME": ""})
    assert "nothing published here yet" in status.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_demo_keeps_to_its_own_home(tmp_path: Path) -> None:
    mine = tmp_path / "my-home"
    run("demo", cwd=tmp_path, env={"MLINEAGE_HOME": str(mine)})
    assert not mine.exists(), "the demo wrote into the configured home"
    assert (tmp_path / ".mlineage-demo" / "events.sqlite").exists()
    told = tmp_path / "told"
    run("--home", str(told), "demo", cwd=tmp_path)
    assert (told / "lineage.duckdb").exists()


def _bad_records(home: Path) -> None:
    """Two jobs the tracker cannot take (written past the producers' validation)."""
    log = SqliteEventLog(home / "events.sqlite")
    try:
        log.append([OutRecord(TOPIC_JOBS, None, b"not json"), OutRecord(TOPIC_JOBS, None, b"[1]")])
    finally:
        log.close()


def test_dlq_list_catches_up_and_discard_gives_up_on_dead_letters(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run("--home", str(home), "publish", "-", stdin=json.dumps(job("dl-1")))
    _bad_records(home)
    listed = [
        json.loads(line)
        for line in run("--home", str(home), "dlq", "list", "--json").stdout.splitlines()
    ]
    tracker = [d for d in listed if d["source"] == "tracker"]
    assert len(tracker) == 2, listed  # caught up first: the tracker dead-lettered them
    first = f"mlineage.dlq.v1[{tracker[0]['partition']}]@{tracker[0]['offset']}"
    dry = run("--home", str(home), "dlq", "discard", first, "--dry-run")
    assert "would discard 1 dead letter(s); 1 still pending" in dry.stdout
    done = run("--home", str(home), "dlq", "discard", first)
    assert "discarded 1 dead letter(s); 1 still pending" in done.stdout
    pending = run("--home", str(home), "dlq", "list", "--json").stdout.splitlines()
    assert len([p for p in pending if '"tracker"' in p]) == 1
    again = run("--home", str(home), "dlq", "discard", first, ok=False)
    assert "not a pending dead letter" in again.stderr
    run("--home", str(home), "dlq", "discard", "--all")
    assert not [
        p
        for p in run("--home", str(home), "dlq", "list", "--json").stdout.splitlines()
        if '"tracker"' in p
    ]
    everything = run("--home", str(home), "dlq", "list", "--all", "--json").stdout.splitlines()
    assert len(everything) >= 3  # the topic keeps every record: a discard is on the record
    assert jobs_in(home) == ["dl-1"]
