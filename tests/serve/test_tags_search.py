"""AddTags / ListTags / DeleteTags and Search through boto3, against a real ``mlineage serve``:
SageMaker's limits, tags as events, the ownership rule for writes and the visibility rule
for reads (the search semantics themselves: tests/integration/test_search.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlineage import Recorder, Settings
from tests.helpers import wait_until
from tests.serve.conftest import ACCOUNT_A, ACCOUNT_B, Server

Unique = Callable[[str], str]


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def tags_of(sm: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}


def _entities(sm: Any, unique: Unique) -> dict[str, str]:
    """One entity of each kind that takes tags, by kind: its ARN."""
    experiment = unique("exp")
    trial = unique("trial")
    return {
        "artifact": sm.create_artifact(
            Source={"SourceUri": f"s3://b/{unique('data')}"}, ArtifactType="DataSet"
        )["ArtifactArn"],
        "action": sm.create_action(
            ActionName=unique("act"), ActionType="T", Source={"SourceUri": "s3://x"}
        )["ActionArn"],
        "context": sm.create_context(
            ContextName=unique("ctx"), ContextType="T", Source={"SourceUri": "s3://x"}
        )["ContextArn"],
        "experiment": sm.create_experiment(ExperimentName=experiment)["ExperimentArn"],
        "trial": sm.create_trial(TrialName=trial, ExperimentName=experiment)["TrialArn"],
        # a mixed-case name: its ARN is lower case, the name keeps its case
        "trial_component": sm.create_trial_component(TrialComponentName=unique("Step-Train"))[
            "TrialComponentArn"
        ],
    }


def test_tags_on_every_kind_are_added_listed_replaced_and_deleted(sm: Any, unique: Unique) -> None:
    for kind, arn in _entities(sm, unique).items():
        assert sm.list_tags(ResourceArn=arn)["Tags"] == [], kind
        added = sm.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "ml"}])
        assert added["Tags"] == [{"Key": "team", "Value": "ml"}]
        sm.add_tags(
            ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}, {"Key": "team", "Value": "x"}]
        )
        assert sm.list_tags(ResourceArn=arn)["Tags"] == [
            {"Key": "stage", "Value": "dev"},
            {"Key": "team", "Value": "x"},
        ], kind
        sm.delete_tags(ResourceArn=arn, TagKeys=["team", "never-there"])
        assert tags_of(sm, arn) == {"stage": "dev"}, kind
    tc = _entities(sm, unique)["trial_component"]
    name = sm.describe_trial_component(TrialComponentName=tc.rsplit("/", 1)[1])
    sm.add_tags(ResourceArn=tc, Tags=[{"Key": "k", "Value": "v"}])
    again = sm.describe_trial_component(TrialComponentName=tc.rsplit("/", 1)[1])
    assert again["TrialComponentName"] == name["TrialComponentName"]  # its case is kept
    assert any(c.isupper() for c in again["TrialComponentName"])
    assert tags_of(sm, tc) == {"k": "v"}


def test_fifty_tags_and_no_more(sm: Any, unique: Unique) -> None:
    arn = sm.create_experiment(ExperimentName=unique("exp"))["ExperimentArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(49)])
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "k0", "Value": "new"}, {"Key": "last", "Value": ""}])
    assert len(tags_of(sm, arn)) == 50
    with pytest.raises(ClientError) as exc:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "one-more", "Value": "v"}])
    assert code(exc) == "ResourceLimitExceeded"
    assert "at most 50" in str(exc.value)
    sm.delete_tags(ResourceArn=arn, TagKeys=["k1"])
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "one-more", "Value": "v"}])
    assert tags_of(sm, arn)["k0"] == "new"
    with pytest.raises(ClientError) as exc:  # botocore's model: a key of 1-128 characters
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "k" * 129, "Value": "v"}])
    assert code(exc) == "ValidationException"


@pytest.mark.parametrize("key", ['e"f', "$", "*", "[0]", "c~d", "back\\slash", "tab\there"])
def test_tag_keys_follow_sagemakers_character_rule(sm: Any, unique: Unique, key: str) -> None:
    # letters, digits and spaces of any script, and _ . : / = + - @ (botocore's pattern
    # uses Java's \p{L}\p{Z}\p{N}, which the server spells out for Python)
    arn = sm.create_experiment(ExperimentName=unique("exp"))["ExperimentArn"]
    sm.add_tags(
        ResourceArn=arn, Tags=[{"Key": "héllo wörld 日本 ١٢٣ a:b/c=d+e-f@g_h.i", "Value": "v"}]
    )
    with pytest.raises(ClientError) as exc:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": key, "Value": "v"}])
    assert code(exc) == "ValidationException"
    assert "regular expression pattern" in str(exc.value)


def test_deleting_tags_a_resource_does_not_have_changes_nothing(sm: Any, unique: Unique) -> None:
    name = unique("exp")
    arn = sm.create_experiment(ExperimentName=name)["ExperimentArn"]
    before = sm.describe_experiment(ExperimentName=name)["LastModifiedTime"]
    sm.delete_tags(ResourceArn=arn, TagKeys=["never-there"])
    assert sm.describe_experiment(ExperimentName=name)["LastModifiedTime"] == before


def test_a_deleted_entity_comes_back_without_its_tags(sm: Any, unique: Unique) -> None:
    name = unique("ctx")
    source = {"SourceUri": "s3://x"}
    arn = sm.create_context(ContextName=name, ContextType="T", Source=source)["ContextArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "old", "Value": "1"}])
    sm.delete_context(ContextName=name)
    with pytest.raises(ClientError) as exc:
        sm.list_tags(ResourceArn=arn)
    assert code(exc) == "ResourceNotFound"
    sm.create_context(
        ContextName=name, ContextType="T", Source=source, Tags=[{"Key": "new", "Value": "2"}]
    )
    assert tags_of(sm, arn) == {"new": "2"}


def share(server: Server, owner: str, grantee: str, *, revoke: bool = False) -> None:
    with Recorder(Settings.load(home=server.home, account_id=owner, environ={})) as rec:
        (rec.unshare if revoke else rec.share)(grantee)


def test_tags_follow_the_ownership_rule_and_reads_the_visibility_rule(
    server: Server, unique: Unique
) -> None:
    a, b = server.client(), server.client("AKIDACCOUNTB0000001")
    arn = a.create_action(ActionName=unique("act"), ActionType="T", Source={"SourceUri": "s"})[
        "ActionArn"
    ]
    a.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "a"}])
    for attempt in (
        lambda: b.list_tags(ResourceArn=arn),
        lambda: b.add_tags(ResourceArn=arn, Tags=[{"Key": "x", "Value": "y"}]),
        lambda: b.delete_tags(ResourceArn=arn, TagKeys=["team"]),
    ):
        with pytest.raises(ClientError) as exc:
            attempt()
        assert code(exc) == "ResourceNotFound"
    share(server, ACCOUNT_A, ACCOUNT_B)

    def b_sees() -> bool:
        try:
            return tags_of(b, arn) == {"team": "a"}
        except ClientError:
            return False

    wait_until(b_sees, "B reads A's tags once A shares")
    # shared is readable, not writable
    with pytest.raises(ClientError) as exc:
        b.add_tags(ResourceArn=arn, Tags=[{"Key": "x", "Value": "y"}])
    assert code(exc) == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:
        b.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert code(exc) == "ResourceNotFound"
    assert tags_of(a, arn) == {"team": "a"}
    share(server, ACCOUNT_A, ACCOUNT_B, revoke=True)
    wait_until(lambda: not b_sees(), "B no longer reads A's tags once A unshares")


def test_a_jobs_tags_are_its_job_created_tags(server: Server, unique: Unique) -> None:
    sm = server.client()
    job = unique("train")
    execution = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/p/execution/e1"
    with Recorder(Settings.load(home=server.home, account_id=ACCOUNT_A, environ={})) as rec:
        rec.job_created(
            "TrainingJob",
            job,
            image_uri="img",
            tags={"sagemaker:pipeline-execution-arn": execution},
        )
    job_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT_A}:training-job/{job}"

    def listed() -> dict[str, str] | None:
        try:
            return tags_of(sm, job_arn)
        except ClientError:
            return None

    wait_until(lambda: listed() is not None, "the job is projected")
    assert listed() == {"sagemaker:pipeline-execution-arn": execution}
    with pytest.raises(ClientError) as exc:
        sm.add_tags(ResourceArn=job_arn, Tags=[{"Key": "x", "Value": "y"}])
    assert code(exc) == "ValidationException"
    assert "JobCreated" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        server.client("AKIDACCOUNTB0000001").list_tags(ResourceArn=job_arn)
    assert code(exc) == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:
        sm.list_tags(ResourceArn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT_A}:endpoint/e")
    assert code(exc) == "ResourceNotFound"


def _search_all(sm: Any, resource: str, **kwargs: Any) -> list[dict[str, Any]]:
    key = {"Experiment": "Experiment", "ExperimentTrial": "Trial"}.get(resource, "TrialComponent")
    out: list[dict[str, Any]] = []
    for page in sm.get_paginator("search").paginate(Resource=resource, **kwargs):
        out += [r[key] for r in page["Results"]]
    return out


def test_search_trial_components_by_parent_tag_and_parameter(sm: Any, unique: Unique) -> None:
    experiment, trial, other = unique("exp"), unique("trial"), unique("trial")
    sm.create_experiment(ExperimentName=experiment, Tags=[{"Key": "team", "Value": "vision"}])
    sm.create_trial(TrialName=trial, ExperimentName=experiment)
    sm.create_trial(TrialName=other, ExperimentName=experiment)
    names = [unique("tc") for _ in range(4)]
    for i, name in enumerate(names):
        sm.create_trial_component(
            TrialComponentName=name,
            DisplayName=f"Step-{i}",
            Parameters={"lr": {"NumberValue": 0.1 * (i + 1)}, "opt": {"StringValue": "adam"}},
            Tags=[{"Key": "stage", "Value": "dev" if i % 2 else "prod"}],
        )
        sm.associate_trial_component(TrialComponentName=name, TrialName=trial if i < 3 else other)
    in_trial = {"Filters": [{"Name": "Parents.TrialName", "Operator": "Equals", "Value": trial}]}
    found = _search_all(sm, "ExperimentTrialComponent", SearchExpression=in_trial)
    assert sorted(r["TrialComponentName"] for r in found) == sorted(names[:3])
    assert all(r["Parents"] == [{"TrialName": trial, "ExperimentName": experiment}] for r in found)
    assert all(r["Parameters"]["opt"] == {"StringValue": "adam"} for r in found)
    both = {
        "Operator": "And",
        "Filters": [{"Name": "Tags.stage", "Operator": "Equals", "Value": "prod"}],
        "SubExpressions": [
            {
                "Operator": "Or",
                "Filters": [
                    {"Name": "Parameters.lr", "Operator": "GreaterThan", "Value": "0.25"},
                    {"Name": "DisplayName", "Operator": "Contains", "Value": "STEP-0"},
                ],
            },
            {"Filters": [{"Name": "Parents.ExperimentName", "Value": experiment}]},
        ],
    }
    found = _search_all(
        sm, "ExperimentTrialComponent", SearchExpression=both, SortBy="DisplayName",
        SortOrder="Ascending", MaxResults=1,
    )  # fmt: skip
    assert [r["TrialComponentName"] for r in found] == [names[0], names[2]]
    trials = _search_all(
        sm,
        "ExperimentTrial",
        SearchExpression={"Filters": [{"Name": "ExperimentName", "Value": experiment}]},
    )
    assert {t["TrialName"] for t in trials} == {trial, other}
    members = {t["TrialName"]: t["TrialComponentSummaries"] for t in trials}
    assert {m["TrialComponentName"] for m in members[other]} == {names[3]}
    experiments = _search_all(
        sm, "Experiment", SearchExpression={"Filters": [{"Name": "Tags.team", "Value": "vision"}]}
    )
    assert experiment in {e["ExperimentName"] for e in experiments}


def test_search_sees_what_the_caller_sees(server: Server, unique: Unique) -> None:
    a, b = server.client(), server.client("AKIDACCOUNTB0000001")
    name = unique("exp")
    a.create_experiment(ExperimentName=name)
    by_name = {"Filters": [{"Name": "ExperimentName", "Value": name}]}
    assert len(_search_all(a, "Experiment", SearchExpression=by_name)) == 1
    assert _search_all(b, "Experiment", SearchExpression=by_name) == []
    share(server, ACCOUNT_A, ACCOUNT_B)
    wait_until(
        lambda: len(_search_all(b, "Experiment", SearchExpression=by_name)) == 1,
        "B finds A's experiment once A shares",
    )
    mine = _search_all(
        b, "Experiment", SearchExpression=by_name, CrossAccountFilterOption="SameAccount"
    )
    assert mine == []
    share(server, ACCOUNT_A, ACCOUNT_B, revoke=True)
    wait_until(
        lambda: _search_all(b, "Experiment", SearchExpression=by_name) == [],
        "B no longer finds it once A unshares",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Resource": "TrainingJob"}, "Search serves the resources"),
        (
            {"Resource": "Experiment", "SearchExpression": {"Filters": [{"Name": "Colour"}]}},
            "'Colour' is not a property",
        ),
        (
            {"Resource": "Experiment", "VisibilityConditions": [{"Key": "k", "Value": "v"}]},
            "VisibilityConditions",
        ),
        ({"Resource": "Experiment", "MaxResults": 101}, "less than or equal to 100"),
    ],
)
def test_bad_searches_are_validation_exceptions(
    sm: Any, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ClientError) as exc:
        sm.search(**body)
    assert code(exc) == "ValidationException"
    assert message in str(exc.value)
