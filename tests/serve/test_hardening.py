"""Regression tests for defects found by probing the server as an attacker and as a busy
team: a grantee writing into its owner's lineage, names resolved in the wrong account,
revoked grantees in a policy, a credential scoped to another region, and 500s on bad input
(lone surrogates, times at the edge of the calendar, forged paging tokens)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from mlineage import Recorder, Settings
from tests.helpers import wait_until
from tests.serve.conftest import ACCOUNT_A, ACCOUNT_B, KEYS, Server

Unique = Any


def post(
    server: Server,
    target: str,
    body: str,
    key: str = "AKIDACCOUNTA0000001",
    region: str = "us-east-1",
) -> tuple[int, dict[str, Any]]:
    """A signed request whose JSON text is sent exactly as given (boto3 cannot send a lone
    surrogate: it has no UTF-8 form, but JSON's \\ud800 escape decodes to one)."""
    request = AWSRequest(
        method="POST",
        url=f"{server.url}/",
        data=body.encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"SageMaker.{target}",
        },
    )
    SigV4Auth(BotoCredentials(key, KEYS[key]["secret_access_key"]), "sagemaker", region).add_auth(
        request
    )
    raw = urllib.request.Request(  # noqa: S310 - loopback
        f"{server.url}/",
        data=body.encode(),
        headers=dict(request.headers.items()),
        method="POST",
    )
    try:
        with urllib.request.urlopen(raw, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def share(server: Server, owner: str, grantee: str, *, revoke: bool = False) -> None:
    with Recorder(Settings.load(home=server.home, account_id=owner, environ={})) as rec:
        (rec.unshare if revoke else rec.share)(grantee)


@pytest.mark.parametrize(
    ("target", "body"),
    [
        (
            "CreateArtifact",
            r'{"Source": {"SourceUri": "s3://a/\ud800"}, "ArtifactType": "DataSet"}',
        ),
        (
            "CreateAction",
            r'{"ActionName": "a\udc00b", "ActionType": "Step", '
            r'"Source": {"SourceUri": "s3://a/x"}}',
        ),
        ("ListArtifacts", r'{"SourceUri": "s3://a/\ud800"}'),
        ("ListArtifacts", r'{"SourceUri\udfff": "s3://a/x"}'),
        (
            "CreateArtifact",
            r'{"Source": {"SourceUri": "s3://a/x"}, "ArtifactType": "DataSet", '
            r'"Properties": {"k\ud800": "v"}}',
        ),
    ],
)
def test_lone_surrogates_are_a_validation_error(server: Server, target: str, body: str) -> None:
    status, answer = post(server, target, body)
    assert status == 400, answer
    assert answer["__type"] == "ValidationException", answer


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_past_the_edge_of_the_calendar_are_a_validation_error(
    server: Server, unique: Unique, when: str
) -> None:
    status, answer = post(
        server,
        "CreateTrialComponent",
        json.dumps({"TrialComponentName": unique("edge"), "StartTime": when}),
    )
    assert (status, answer["__type"]) == (400, "ValidationException"), answer
    status, answer = post(server, "ListArtifacts", json.dumps({"CreatedAfter": when}))
    assert (status, answer["__type"]) == (400, "ValidationException"), answer


def test_forged_paging_tokens_are_a_validation_error(
    server: Server, sm: Any, unique: Unique
) -> None:
    for i in range(3):
        sm.create_artifact(
            Source={"SourceUri": f"s3://paged/{unique('p')}/{i}"}, ArtifactType="DataSet"
        )
    token = sm.list_artifacts(MaxResults=1)["NextToken"]
    digest = json.loads(base64.urlsafe_b64decode(token))["q"]  # anyone can read it
    for offset in ("1e999", str(2**80), "-1", '"5"', "1.5", "null"):
        forged = base64.urlsafe_b64encode(f'{{"o": {offset}, "q": "{digest}"}}'.encode()).decode()
        with pytest.raises(ClientError) as exc:
            sm.list_artifacts(MaxResults=1, NextToken=forged)
        assert code(exc) == "ValidationException", offset
        with pytest.raises(ClientError) as exc:
            sm.query_lineage(
                StartArns=["arn:aws:sagemaker:us-east-1:111111111111:artifact/x"],
                MaxResults=1,
                NextToken=forged,
            )
        assert code(exc) == "ValidationException", offset


def test_a_credential_scoped_to_another_region_is_refused(
    server: Server, sm: Any, unique: Unique
) -> None:
    uri = f"s3://a/{unique('elsewhere')}"
    key = "AKIDACCOUNTA0000001"
    elsewhere = boto3.client(
        "sagemaker",
        endpoint_url=server.url,
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key=KEYS[key]["secret_access_key"],
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as exc:
        elsewhere.create_artifact(Source={"SourceUri": uri}, ArtifactType="DataSet")
    assert code(exc) == "InvalidSignatureException"
    assert "eu-west-1" in str(exc.value)
    listed = sm.list_artifacts(SourceUri=uri)["ArtifactSummaries"]
    assert listed == [], "the refused request created something"


def test_a_grantee_reads_a_share_but_never_writes_into_it(server: Server, unique: Unique) -> None:
    """ARCHITECTURE.md: a caller writes only its own account's entities and associations; an
    association between two entities of another account is refused even when visible. A
    cross-account association (own entity to a shared one) is allowed. Names resolve in the
    caller's own account first. A revoked grantee leaves the owner's policy."""
    a, b = server.client("AKIDACCOUNTA0000001"), server.client("AKIDACCOUNTB0000001")
    data = a.create_artifact(
        Source={"SourceUri": f"s3://a/{unique('data')}"}, ArtifactType="DataSet"
    )["ArtifactArn"]
    model = a.create_artifact(
        Source={"SourceUri": f"s3://a/{unique('model')}"}, ArtifactType="Model"
    )["ArtifactArn"]
    mine = b.create_artifact(
        Source={"SourceUri": f"s3://b/{unique('mine')}"}, ArtifactType="DataSet"
    )["ArtifactArn"]
    experiment = unique("both")
    a.create_experiment(ExperimentName=experiment, Description="A's")
    b.create_experiment(ExperimentName=experiment, Description="B's")
    share(server, ACCOUNT_A, ACCOUNT_B)

    def b_sees(arn: str) -> bool:
        try:
            b.describe_artifact(ArtifactArn=arn)
        except ClientError:
            return False
        return True

    wait_until(lambda: b_sees(data), "B sees A's shared artifact")

    # B cannot write an edge between two of A's entities, visible as they are
    with pytest.raises(ClientError) as exc:
        b.add_association(SourceArn=data, DestinationArn=model)
    assert code(exc) == "AccessDeniedException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert a.list_associations(SourceArn=data)["AssociationSummaries"] == []
    # ... but may link its own entity to a shared one, and delete what it owns
    b.add_association(SourceArn=data, DestinationArn=mine)
    assert [
        s["DestinationArn"] for s in b.list_associations(SourceArn=data)["AssociationSummaries"]
    ] == [mine]
    # A's association of its own two entities is A's: B may not delete it
    a.add_association(SourceArn=data, DestinationArn=model)
    with pytest.raises(ClientError) as exc:
        b.delete_association(SourceArn=data, DestinationArn=model)
    assert code(exc) == "ResourceNotFound"

    # a name is the caller's own entity first, though the share makes A's visible too
    assert b.describe_experiment(ExperimentName=experiment)["Description"] == "B's"
    assert a.describe_experiment(ExperimentName=experiment)["Description"] == "A's"

    policy = "sagemaker-default-lineage-group"
    assert (
        f"iam::{ACCOUNT_B}:root"
        in a.get_lineage_group_policy(LineageGroupName=policy)["ResourcePolicy"]
    )
    share(server, ACCOUNT_A, ACCOUNT_B, revoke=True)
    wait_until(lambda: not b_sees(data), "B no longer sees A's artifact")
    assert (
        f"iam::{ACCOUNT_B}:root"
        not in a.get_lineage_group_policy(LineageGroupName=policy)["ResourcePolicy"]
    )
    # the cross-account edge is hidden again with the share
    assert b.list_associations(SourceArn=data)["AssociationSummaries"] == []
    b.delete_association(SourceArn=data, DestinationArn=mine)  # still B's to delete
