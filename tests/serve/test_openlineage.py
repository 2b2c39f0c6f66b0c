"""``POST /api/v1/lineage`` on a real ``mlineage serve``, driven by the real OpenLineage
client's HTTP transport (gzip, API key) as ``openlineage.yml`` configures it: the runs join
the SageMaker lineage of the key's account, retries apply once, other accounts see none of
it, and every bad request is a 4xx with a JSON error naming what is wrong."""

from __future__ import annotations

import gzip
import http.client
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlineage import Recorder, Settings
from tests.helpers import wait_until
from tests.openlineage_client import Pipeline
from tests.serve.conftest import ACCOUNT_A, KEYS, Server, start_server, stop_server

KEY_A = "ol-key-account-a-0123456789"
KEY_B = "ol-key-account-b-0123456789"
WITH_API_KEYS = {
    "AKIDACCOUNTA0000001": {**KEYS["AKIDACCOUNTA0000001"], "api_keys": [KEY_A]},
    "AKIDACCOUNTB0000001": {**KEYS["AKIDACCOUNTB0000001"], "api_keys": [KEY_B]},
}


def _start(home: Path) -> Server:
    creds = home / "credentials.json"
    home.mkdir(parents=True, exist_ok=True)
    creds.write_text(json.dumps(WITH_API_KEYS))
    return start_server(home / "home", "--credentials", str(creds))


@pytest.fixture(scope="module")
def ol_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _start(tmp_path_factory.mktemp("serve-openlineage"))
    yield srv
    stop_server(srv)


def http_transport(server: Server, key: str) -> dict[str, Any]:
    return {
        "type": "http",
        "url": server.url,
        "auth": {"type": "api_key", "apiKey": key},
        "compression": "gzip",
    }


def post(
    server: Server, body: bytes, headers: dict[str, str] | None = None, key: str | None = KEY_A
) -> tuple[int, Any]:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        all_headers.setdefault("Authorization", f"Bearer {key}")
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{server.url}/api/v1/lineage", data=body, headers=all_headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def publish_sagemaker_side(server: Server, pipeline: Pipeline, account: str) -> None:
    """The training job and endpoint, published by another process as jobs would."""
    settings = Settings.load(home=server.home, account_id=account)
    with Recorder(settings) as rec:
        rec.publish_many(pipeline.sagemaker_events())


def lineage_reaches(sm: Any, start: str, wanted: set[str]) -> bool:
    try:
        got = sm.query_lineage(StartArns=[start], Direction="Ascendants", MaxDepth=10)
    except ClientError:
        return False
    return wanted <= {v["Arn"] for v in got["Vertices"]}


def test_the_client_http_transport_joins_the_sagemaker_lineage(ol_server: Server) -> None:
    p = Pipeline()
    p.emit(http_transport(ol_server, KEY_A))
    publish_sagemaker_side(ol_server, p, ACCOUNT_A)
    sm = ol_server.client()
    wanted = {p.run_arn(ACCOUNT_A, "spark"), *p.raw_arns(ACCOUNT_A)}
    wait_until(
        lambda: lineage_reaches(sm, p.endpoint_context(ACCOUNT_A), wanted),
        "QueryLineage from the endpoint reaches the Spark run and its raw inputs",
        timeout=120,
    )
    spark = sm.describe_trial_component(TrialComponentName=p.run_arn(ACCOUNT_A, "spark"))
    assert spark["Status"]["PrimaryStatus"] == "Completed"
    assert spark["Parameters"]["OpenLineage.JobNamespace"] == {"StringValue": "spark-emr"}
    dbt = sm.describe_trial_component(TrialComponentName=p.run_arn(ACCOUNT_A, "dbt"))
    assert dbt["Status"] == {"PrimaryStatus": "Failed", "Message": "relation does not exist"}
    # account B sees none of it
    other = ol_server.client("AKIDACCOUNTB0000001")
    with pytest.raises(ClientError) as info:
        other.describe_trial_component(TrialComponentName=p.run_arn(ACCOUNT_A, "spark"))
    assert info.value.response["Error"]["Code"] == "ResourceNotFound"


def test_a_retry_is_the_same_event_and_applies_once(ol_server: Server) -> None:
    event = json.loads(_one_event())
    first = post(ol_server, json.dumps(event).encode())
    again = post(ol_server, gzip.compress(json.dumps(event).encode()), {"Content-Encoding": "gzip"})
    assert first[0] == again[0] == 201
    assert first[1] == again[1]
    # another account's copy is another event, in that account
    theirs = post(ol_server, json.dumps(event).encode(), key=KEY_B)
    assert theirs[0] == 201
    assert theirs[1] != first[1]
    # a batch: an array of events
    batch = post(ol_server, json.dumps([event, event]).encode())
    assert batch == (201, {"event_ids": first[1]["event_ids"] * 2})


def _one_event(**change: Any) -> str:
    p = Pipeline()
    from openlineage.client.serde import Serde

    event = json.loads(Serde.to_json(p.events()[1]))
    event.update(change)
    return json.dumps(event)


@pytest.mark.parametrize(
    ("body", "headers", "key", "status", "needle"),
    [
        (_one_event(), {}, None, 401, "Bearer"),
        (_one_event(), {}, "not-a-key-of-this-server", 401, "not one of the server's"),
        (_one_event(), {}, KEYS["AKIDACCOUNTA0000001"]["secret_access_key"], 401, "not one"),
        (_one_event(), {"Authorization": "Basic abc"}, KEY_A, 401, "Bearer"),
        ("{not json", {}, KEY_A, 400, "not JSON"),
        ("[]", {}, KEY_A, 400, "array of 1"),
        ("[3]", {}, KEY_A, 400, "event 0: an OpenLineage event is a JSON object"),
        ('{"eventTime": NaN}', {}, KEY_A, 400, "NaN"),
        (_one_event(eventType="DONE"), {}, KEY_A, 400, "payload.event.eventType"),
        (_one_event(run={"runId": "42"}), {}, KEY_A, 400, "payload.event.run.runId"),
        (_one_event(job={"name": "x"}), {}, KEY_A, 400, "payload.event.job.namespace"),
        (_one_event(eventTime="2026-01-01"), {}, KEY_A, 400, "payload.event.eventTime"),
        (_one_event(job={"namespace": "n", "name": "\ud800"}), {}, KEY_A, 400, "Unicode"),
        ("[" * 5000 + "]" * 5000, {}, KEY_A, 400, "JSON"),
        (_one_event(), {"Content-Encoding": "gzip"}, KEY_A, 400, "not"),
        (_one_event(), {"Content-Encoding": "br"}, KEY_A, 415, "br"),
    ],
)
def test_bad_requests_are_4xx_with_a_json_reason(
    ol_server: Server,
    body: str,
    headers: dict[str, str],
    key: str | None,
    status: int,
    needle: str,
) -> None:
    got, answer = post(ol_server, body.encode(), headers, key)
    assert got == status, answer
    assert needle in answer["message"], answer


def test_too_large_bodies_are_413_before_they_are_kept(ol_server: Server) -> None:
    # a declared length over the limit is refused before a byte of the body is read
    host, port = ol_server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/api/v1/lineage")
    for name, value in (
        ("Authorization", f"Bearer {KEY_A}"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(17 * 1024 * 1024)),
    ):
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read())["error"] == "PayloadTooLarge"
    conn.close()
    bomb = gzip.compress(b" " * (40 * 1024 * 1024))
    status, answer = post(ol_server, bomb, {"Content-Encoding": "gzip"})
    assert status == 413, answer
    big_event = json.loads(_one_event())
    big_event["run"]["facets"] = {"blob": {"text": "x" * (2 * 1024 * 1024)}}
    status, answer = post(ol_server, json.dumps(big_event).encode())
    assert status == 400
    assert "bytes of JSON" in answer["message"]


def test_the_client_hears_a_refusal(ol_server: Server) -> None:
    """The client unchanged: a 4xx surfaces as its transport's HTTP error."""
    from openlineage.client import OpenLineageClient
    from requests import HTTPError

    client = OpenLineageClient(config={"transport": http_transport(ol_server, "wrong-key-wrong")})
    with pytest.raises(HTTPError, match="401"):
        client.emit(Pipeline().events()[0])


def test_replay_of_the_served_log_gives_the_same_checksum(tmp_path: Path) -> None:
    server = _start(tmp_path)
    try:
        p = Pipeline()
        p.emit(http_transport(server, KEY_A))
        p.emit(http_transport(server, KEY_A))  # a client that sent everything twice
    finally:
        stop_server(server)
    cli = [sys.executable, "-m", "mlineage.cli", "--home", str(server.home)]

    def run(*args: str) -> str:
        proc = subprocess.run(
            [*cli, *args], capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    rows = run("sql", "SELECT count(*), count(DISTINCT event_id) FROM openlineage_events")
    assert f"{len(p.events())}" in rows
    before = run("checksum").strip()
    run("replay")
    assert run("checksum").strip() == before
