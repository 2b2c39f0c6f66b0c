"""SigV4 on the wire, the caller's account from its key, and the cross-account rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from mlineage import Recorder, Settings
from tests.helpers import wait_until
from tests.serve.conftest import ACCOUNT_A, ACCOUNT_B, Server, start_server, stop_server

Unique = Callable[[str], str]


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_a_wrong_secret_is_refused(server: Server) -> None:
    bad = server.client("AKIDACCOUNTA0000001", secret="not-the-secret")
    with pytest.raises(ClientError) as exc:
        bad.list_artifacts()
    assert code(exc) == "InvalidSignatureException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_an_unknown_key_and_a_missing_signature_are_refused(server: Server) -> None:
    with pytest.raises(ClientError) as exc:
        server.client("AKIDUNKNOWN00000000", secret="x").list_artifacts()
    assert code(exc) == "UnrecognizedClientException"
    with pytest.raises(ClientError) as exc:
        server.client(signature_version=UNSIGNED).list_artifacts()
    assert code(exc) == "MissingAuthenticationTokenException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def _wait_until(check: Callable[[], bool], seconds: float = 60.0) -> None:
    wait_until(check, "the server caught up with the log", timeout=seconds)


def test_account_b_sees_account_a_only_once_a_shares(server: Server, unique: Unique) -> None:
    a, b = server.client("AKIDACCOUNTA0000001"), server.client("AKIDACCOUNTB0000001")
    data = a.create_artifact(
        Source={"SourceUri": f"s3://a/{unique('shared')}"}, ArtifactType="DataSet"
    )["ArtifactArn"]
    model = a.create_artifact(
        Source={"SourceUri": f"s3://a/{unique('model')}"}, ArtifactType="Model"
    )["ArtifactArn"]
    a.add_association(SourceArn=data, DestinationArn=model)
    assert f":{ACCOUNT_A}:" in data

    # B: not found, not listed, not reachable, cannot associate to it
    with pytest.raises(ClientError) as exc:
        b.describe_artifact(ArtifactArn=data)
    assert code(exc) == "ResourceNotFound"
    assert data not in [x["ArtifactArn"] for x in b.list_artifacts()["ArtifactSummaries"]]
    assert b.query_lineage(StartArns=[data], Direction="Descendants")["Vertices"] == []
    mine = b.create_artifact(
        Source={"SourceUri": f"s3://b/{unique('own')}"}, ArtifactType="DataSet"
    )["ArtifactArn"]
    assert f":{ACCOUNT_B}:" in mine
    with pytest.raises(ClientError) as exc:
        b.add_association(SourceArn=mine, DestinationArn=data)
    assert code(exc) == "ResourceNotFound"
    # and A does not see B's
    with pytest.raises(ClientError) as exc:
        a.describe_artifact(ArtifactArn=mine)
    assert code(exc) == "ResourceNotFound"

    # A shares its lineage group with B (on the log, as `mlineage share` does)
    settings = Settings.load(home=server.home, account_id=ACCOUNT_A, environ={})
    with Recorder(settings) as rec:
        rec.share(ACCOUNT_B)

    def b_sees_it() -> bool:
        try:
            b.describe_artifact(ArtifactArn=data)
        except ClientError:
            return False
        return True

    _wait_until(b_sees_it)
    assert {
        v["Arn"] for v in b.query_lineage(StartArns=[data], Direction="Descendants")["Vertices"]
    } == {data, model}
    policy = a.get_lineage_group_policy(LineageGroupName="sagemaker-default-lineage-group")
    assert f"arn:aws:iam::{ACCOUNT_B}:root" in policy["ResourcePolicy"]
    # shared is readable, not writable: B cannot delete or update A's entity
    with pytest.raises(ClientError) as exc:
        b.delete_artifact(ArtifactArn=data)
    assert code(exc) == "ResourceNotFound"

    with Recorder(settings) as rec:
        rec.unshare(ACCOUNT_B)
    _wait_until(lambda: not b_sees_it())


def test_no_auth_needs_its_flag_and_loopback(tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlineage.cli", "--home", str(tmp_path), "serve", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    missing = run()
    assert missing.returncode != 0
    assert "--credentials" in missing.stderr
    outside = run("--no-auth", "--host", "0.0.0.0")  # noqa: S104 - refused, that is the test
    assert outside.returncode != 0
    assert "loopback" in outside.stderr

    server = start_server(tmp_path / "open", "--no-auth")
    try:
        sm: Any = server.client("anyone", secret="anything")
        arn = sm.create_action(
            ActionName="open-step", ActionType="Step", Source={"SourceUri": "s3://x"}
        )["ActionArn"]
        assert ":000000000000:" in arn  # the operator writes as --account-id
        assert sm.describe_action(ActionName="open-step")["ActionArn"] == arn
        assert "WITHOUT authentication" in (server.home / "serve.log").read_text()
    finally:
        stop_server(server)


def test_sagemaker_limits_apply_unless_extended(server: Server, tmp_path: Path) -> None:
    a: Any = server.client()
    one = a.create_artifact(Source={"SourceUri": "s3://limits/one"}, ArtifactType="DataSet")[
        "ArtifactArn"
    ]
    two = a.create_artifact(Source={"SourceUri": "s3://limits/two"}, ArtifactType="DataSet")[
        "ArtifactArn"
    ]
    for kwargs in (
        {"StartArns": [one, two]},
        {"StartArns": [one], "MaxDepth": 20},
        {"StartArns": [one], "MaxResults": 51},
    ):
        with pytest.raises(ClientError) as exc:
            a.query_lineage(**kwargs)
        assert code(exc) == "ValidationException", kwargs
    with pytest.raises(ClientError) as exc:
        a.list_artifacts(MaxResults=101)
    assert code(exc) == "ValidationException"

    extended = start_server(tmp_path / "extended", "--no-auth", "--extended-limits")
    try:
        sm: Any = extended.client("anyone", secret="anything")
        x = sm.create_artifact(Source={"SourceUri": "s3://limits/x"}, ArtifactType="DataSet")[
            "ArtifactArn"
        ]
        y = sm.create_artifact(Source={"SourceUri": "s3://limits/y"}, ArtifactType="Model")[
            "ArtifactArn"
        ]
        sm.add_association(SourceArn=x, DestinationArn=y)
        answer = sm.query_lineage(StartArns=[x, y], MaxDepth=20, MaxResults=500)
        assert {v["Arn"] for v in answer["Vertices"]} == {x, y}  # the starts, once each
        assert len(sm.list_artifacts(MaxResults=500)["ArtifactSummaries"]) == 2
        with pytest.raises(ClientError) as exc:  # entity limits stay: the event schema's
            sm.create_context(
                ContextName="many",
                ContextType="T",
                Source={"SourceUri": "s3://x"},
                Properties={f"k{i}": "v" for i in range(31)},
            )
        assert code(exc) in {"ValidationException", "ResourceLimitExceeded"}
    finally:
        stop_server(extended)
