"""OpenLineage through files, as a user backfills them: the real client's file transport
writes JSON lines, ``mlineage publish --openlineage`` records them, and the lineage joins the
SageMaker training job that reads the Spark task's output: QueryLineage Ascendants from the
endpoint reaches the Spark run and its raw inputs. Replay rebuilds the same state; a second
publish of the same file applies nothing; a bad file is refused whole, naming the field."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from mlineage import Recorder, Settings
from mlineage.query.store import LineageStore
from tests.helpers import run_cli
from tests.openlineage_client import Pipeline

ACCOUNT = "123456789012"


def run(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(home, "--account-id", ACCOUNT, *args, ok=check)


def published(tmp_path: Path) -> tuple[Path, Pipeline]:
    home = tmp_path / "home"
    pipeline = Pipeline()
    events = tmp_path / "openlineage.jsonl"
    pipeline.emit({"type": "file", "log_file_path": str(events), "append": True})
    assert len(events.read_text().splitlines()) == len(pipeline.events())
    proc = run(home, "publish", "--openlineage", str(events))
    assert f"published {len(pipeline.events())} events" in proc.stdout
    sagemaker = tmp_path / "sagemaker.jsonl"
    sagemaker.write_text("\n".join(json.dumps(e) for e in pipeline.sagemaker_events()))
    run(home, "publish", str(sagemaker))
    return home, pipeline


def test_file_transport_into_publish_joins_the_sagemaker_lineage(tmp_path: Path) -> None:
    home, p = published(tmp_path)
    with LineageStore.open(Settings.load(home=home, account_id=ACCOUNT)) as store:
        walked = store.query_lineage([p.endpoint_context(ACCOUNT)], direction="Ascendants")
        reached = {v.arn for v in walked.vertices}
        assert p.run_arn(ACCOUNT, "spark") in reached
        assert p.raw_arns(ACCOUNT) <= reached
        # the failed dbt run is beside, not behind, the model
        assert p.run_arn(ACCOUNT, "dbt") not in reached
        types = {(e.source_arn, e.destination_arn): e.association_type for e in walked.edges}
        assert "SameAs" in types.values()  # the training job's ".../" meets the dataset

        # statuses, times and the failure, as Describe shows them
        spark = store.describe(p.run_arn(ACCOUNT, "spark"), "trial_component")
        assert spark["Status"]["PrimaryStatus"] == "Completed"
        assert spark["StartTime"] < spark["EndTime"]
        dbt = store.describe(p.run_arn(ACCOUNT, "dbt"), "trial_component")
        assert dbt["Status"] == {"PrimaryStatus": "Failed", "Message": "relation does not exist"}
        # runs join their parent DAG run and their job's context
        _, parents = store.sql(
            "SELECT destination_arn FROM lineage_edges WHERE source_arn = ? "
            "AND association_type = 'AssociatedWith'",
            [p.run_arn(ACCOUNT, "spark")],
        )
        assert p.run_arn(ACCOUNT, "dag") in {r[0] for r in parents}

        # every event as it came, for SQL
        _, rows = store.sql(
            "SELECT event_type, job_name, account_id, run_facets, event FROM openlineage_events "
            "ORDER BY event_time"
        )
        assert [r[0] for r in rows] == ["START", "START", "COMPLETE", "START", "FAIL", "COMPLETE"]
        assert {r[2] for r in rows} == {ACCOUNT}
        complete = json.loads(rows[2][4])
        assert complete["outputs"][0]["facets"]["schema"]["fields"][0]["name"] == "customer_id"
        assert "parent" in json.loads(rows[2][3])
    checksum = run(home, "checksum").stdout.strip()
    run(home, "replay")
    assert run(home, "checksum").stdout.strip() == checksum
    # the same file again (a backfill run twice): the same events, nothing changes
    run(home, "publish", "--openlineage", str(tmp_path / "openlineage.jsonl"))
    assert run(home, "checksum").stdout.strip() == checksum


def test_a_bad_openlineage_file_is_refused_whole(tmp_path: Path) -> None:
    home = tmp_path / "home"
    p = Pipeline()
    good = tmp_path / "good.jsonl"
    p.emit({"type": "file", "log_file_path": str(good), "append": True})
    lines = good.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["run"]["runId"] = "run-1"
    del broken["job"]["namespace"]
    lines[1] = json.dumps(broken)
    lines.insert(3, '{"eventTime": "2026-01-01T00:00:00Z", "run": ')
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    proc = run(home, "publish", "--openlineage", str(bad), check=False)
    assert proc.returncode != 0
    assert "line 2: OpenLineageEventReceived: field 'payload.event.run.runId'" in proc.stderr
    assert "field 'payload.event.job.namespace' is required" in proc.stderr
    assert "line 4: event: malformed JSON" in proc.stderr
    assert "nothing was published" in proc.stderr
    assert not (home / "events.sqlite").exists() or "0 events" in run(home, "status").stdout
    # an mlineage event is not an OpenLineage one
    envelope = tmp_path / "envelope.jsonl"
    envelope.write_text(json.dumps(p.sagemaker_events()[0]) + "\n")
    proc = run(home, "publish", "--openlineage", str(envelope), check=False)
    assert "publish it without --openlineage" in proc.stderr


def test_the_python_api_publishes_openlineage_events_for_its_account(tmp_path: Path) -> None:
    from openlineage.client.serde import Serde

    p = Pipeline()
    settings = Settings.load(home=tmp_path / "home", account_id=ACCOUNT, environ={})
    first = p.events()[0]
    with Recorder(settings) as rec:
        published = rec.openlineage(Serde.to_json(first))
        again = rec.publish_many([json.loads(Serde.to_json(first)), *map(_as_dict, p.events())])
    assert published.account_id == ACCOUNT
    assert {e.event_id for e in again} == {e.event_id for e in again[1:]}  # the first is a repeat
    assert again[0].event_id == published.event_id
    with LineageStore.open(settings) as store:
        _, rows = store.sql("SELECT count(*), list(DISTINCT account_id) FROM openlineage_events")
        assert rows == [(len(p.events()), [ACCOUNT])]
        # stored as it came: no envelope field slipped into the OpenLineage event
        _, events = store.sql("SELECT event FROM openlineage_events")
        assert all("event_id" not in json.loads(e) for (e,) in events)
        # another account sees none of it
        with store.as_account("999988887777") as other:
            assert other.sql("SELECT count(*) FROM openlineage_events")[1] == [(0,)]
            assert other.sql("SELECT count(*) FROM trial_components")[1] == [(0,)]


def _as_dict(event: object) -> dict[str, object]:
    from openlineage.client.serde import Serde

    value: dict[str, object] = json.loads(Serde.to_json(event))
    return value


def test_an_end_stamped_with_its_start_instant_wins(tmp_path: Path) -> None:
    """START and COMPLETE with one eventTime (a client that stamps both at the end): every run
    ends Completed, whatever their event ids, and its StartTime and EndTime are that instant."""
    settings = Settings.load(home=tmp_path / "home", account_id=ACCOUNT, environ={})
    runs = [str(uuid.uuid4()) for _ in range(20)]
    with Recorder(settings) as rec:
        for run_id in runs:
            for state in ("COMPLETE", "START"):  # in either order
                rec.openlineage(
                    {
                        "eventType": state,
                        "eventTime": "2026-03-01T00:00:00Z",
                        "producer": "p",
                        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json",
                        "run": {"runId": run_id},
                        "job": {"namespace": "n", "name": "j"},
                    }
                )
    with LineageStore.open(settings) as store:
        _, rows = store.sql(
            "SELECT status, count(*), min(start_time) = max(end_time) FROM trial_components "
            "GROUP BY ALL"
        )
    assert rows == [("Completed", len(runs), True)]


def test_a_heavy_batch_is_merged_in_parts_to_the_same_state(tmp_path: Path) -> None:
    """Large events (facets of 20 kB here) in a batch over the byte budget: merged a part at a
    time, each with the positions it reaches, into the same state as one merge."""
    settings = Settings.load(home=tmp_path / "home", account_id=ACCOUNT, environ={})
    p = Pipeline()
    with Recorder(settings) as rec:
        for event in p.events():
            big = _as_dict(event)
            big["run"]["facets"]["notes"] = {"text": "x" * 20_000}  # type: ignore[index]
            rec.openlineage(big)
        rec.publish_many(p.sagemaker_events())
    from mlineage.log.base import open_log
    from mlineage.projection.service import ProjectorService
    from mlineage.projection.store import DuckDBStore
    from mlineage.tracker.service import TrackerService

    with open_log(settings.log_url) as log:
        TrackerService(log).run()
        sums = []
        for budget, name in ((50_000, "parts"), (10**9, "whole")):
            with DuckDBStore(tmp_path / f"{name}.duckdb") as store:
                stats = ProjectorService(log, store, batch_bytes=budget).run()
                assert stats.dead_lettered == 0
                assert (stats.batches > 1) == (name == "parts")
                ends = {
                    (t, part): end
                    for t in ("mlineage.jobs.v1", "mlineage.openlineage.v1")
                    for part, end in log.end_offsets(t).items()
                }
                positions = store.positions("mlineage-projector")
                assert {tp: positions[tp] for tp in ends} == ends
                sums.append(store.checksum())
    assert sums[0] == sums[1]
