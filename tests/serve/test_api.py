"""boto3's ``sagemaker`` client against a real ``mlineage serve`` on loopback: every
operation round-trips, List* and QueryLineage page without repeats, errors are boto3's."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.serve.conftest import ACCOUNT_A, ACCOUNT_B, Server

Unique = Callable[[str], str]


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def artifact(sm: Any, uri: str, kind: str = "DataSet", **extra: Any) -> str:
    arn: str = sm.create_artifact(Source={"SourceUri": uri}, ArtifactType=kind, **extra)[
        "ArtifactArn"
    ]
    return arn


def test_artifact_create_describe_update_list_delete(sm: Any, unique: Unique) -> None:
    uri = f"s3://bucket/{unique('data')}/"
    arn = artifact(
        sm,
        uri,
        ArtifactName="train-data",
        Properties={"stage": "raw", "owner": "ml"},
        MetadataProperties={"CommitId": "abc123", "Repository": "git://repo"},
        Tags=[{"Key": "team", "Value": "search"}],
    )
    assert arn.startswith(f"arn:aws:sagemaker:us-east-1:{ACCOUNT_A}:artifact/")
    d = sm.describe_artifact(ArtifactArn=arn)
    assert d["ArtifactArn"] == arn
    assert d["Source"]["SourceUri"] == uri
    assert d["ArtifactType"] == "DataSet"
    assert d["ArtifactName"] == "train-data"
    assert d["Properties"] == {"stage": "raw", "owner": "ml"}
    assert d["MetadataProperties"]["CommitId"] == "abc123"
    assert isinstance(d["CreationTime"], datetime)  # boto3 parsed the epoch seconds

    sm.update_artifact(ArtifactArn=arn, Properties={"stage": "clean"}, PropertiesToRemove=["owner"])
    assert sm.describe_artifact(ArtifactArn=arn)["Properties"] == {"stage": "clean"}

    listed = sm.list_artifacts(SourceUri=uri)["ArtifactSummaries"]
    assert [a["ArtifactArn"] for a in listed] == [arn]

    with pytest.raises(ClientError) as exc:
        artifact(sm, uri)
    assert code(exc) == "ValidationException"
    assert "already exists" in str(exc.value)

    assert sm.delete_artifact(ArtifactArn=arn)["ArtifactArn"] == arn
    with pytest.raises(ClientError) as exc:
        sm.describe_artifact(ArtifactArn=arn)
    assert code(exc) == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:
        sm.delete_artifact(ArtifactArn=arn)
    assert code(exc) == "ResourceNotFound"


@pytest.mark.parametrize("label", ["Action", "Context"])
def test_actions_and_contexts_round_trip(sm: Any, unique: Unique, label: str) -> None:
    name = unique(label.lower())
    create = getattr(sm, f"create_{label.lower()}")
    kwargs: dict[str, Any] = {
        f"{label}Name": name,
        "Source": {"SourceUri": f"s3://x/{name}"},
        f"{label}Type": "Approval",
        "Description": "first",
        "Properties": {"k": "v"},
    }
    if label == "Action":
        kwargs["Status"] = "InProgress"
    arn = create(**kwargs)[f"{label}Arn"]
    assert arn.endswith(f"{label.lower()}/{name}")
    describe = getattr(sm, f"describe_{label.lower()}")
    d = describe(**{f"{label}Name": name})
    assert d[f"{label}Arn"] == arn
    assert d["Description"] == "first"
    assert d["Source"]["SourceUri"] == f"s3://x/{name}"
    getattr(sm, f"update_{label.lower()}")(
        **{f"{label}Name": name},
        Description="second",
        Properties={"k2": "v2"},
        PropertiesToRemove=["k"],
    )
    d = describe(**{f"{label}Name": name})
    assert d["Description"] == "second"
    assert d["Properties"] == {"k2": "v2"}
    summaries = getattr(sm, f"list_{label.lower()}s")(**{f"{label}Type": "Approval"})[
        f"{label}Summaries"
    ]
    assert arn in [s[f"{label}Arn"] for s in summaries]
    with pytest.raises(ClientError) as exc:
        create(**kwargs)
    assert code(exc) == "ValidationException"
    getattr(sm, f"delete_{label.lower()}")(**{f"{label}Name": name})
    with pytest.raises(ClientError) as exc:
        describe(**{f"{label}Name": name})
    assert code(exc) == "ResourceNotFound"


def test_experiments_trials_and_trial_components(sm: Any, unique: Unique) -> None:
    exp, trial, tc = unique("exp"), unique("trial"), unique("tc")
    exp_arn = sm.create_experiment(ExperimentName=exp, DisplayName="Exp", Description="d")[
        "ExperimentArn"
    ]
    with pytest.raises(ClientError) as exc:
        sm.create_trial(TrialName=trial, ExperimentName=unique("missing"))
    assert code(exc) == "ResourceNotFound"
    trial_arn = sm.create_trial(TrialName=trial, ExperimentName=exp)["TrialArn"]
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    tc_arn = sm.create_trial_component(
        TrialComponentName=tc,
        DisplayName="Training",
        Status={"PrimaryStatus": "Completed"},
        StartTime=started,
        EndTime=started + timedelta(hours=1),
        Parameters={"lr": {"NumberValue": 0.1}, "opt": {"StringValue": "adam"}},
        InputArtifacts={"train": {"Value": "s3://d/train", "MediaType": "text/csv"}},
        OutputArtifacts={"model": {"Value": "s3://m/model.tar.gz"}},
    )["TrialComponentArn"]
    d = sm.describe_trial_component(TrialComponentName=tc)
    assert d["TrialComponentArn"] == tc_arn
    assert d["Parameters"]["lr"] == {"NumberValue": 0.1}
    assert d["Parameters"]["opt"] == {"StringValue": "adam"}
    assert d["StartTime"] == started
    assert d["InputArtifacts"]["train"]["Value"] == "s3://d/train"

    sm.update_trial_component(
        TrialComponentName=tc, DisplayName="Training-2", ParametersToRemove=["opt"]
    )
    d = sm.describe_trial_component(TrialComponentName=tc)
    assert d["DisplayName"] == "Training-2"
    assert "opt" not in d["Parameters"]

    joined = sm.associate_trial_component(TrialComponentName=tc, TrialName=trial)
    assert (joined["TrialComponentArn"], joined["TrialArn"]) == (tc_arn, trial_arn)
    listed = sm.list_trial_components(TrialName=trial)["TrialComponentSummaries"]
    assert [s["TrialComponentArn"] for s in listed] == [tc_arn]
    trials = sm.list_trials(ExperimentName=exp)["TrialSummaries"]
    assert [t["TrialArn"] for t in trials] == [trial_arn]
    sm.disassociate_trial_component(TrialComponentName=tc, TrialName=trial)
    assert sm.list_trial_components(TrialName=trial)["TrialComponentSummaries"] == []
    with pytest.raises(ClientError) as exc:
        sm.disassociate_trial_component(TrialComponentName=tc, TrialName=trial)
    assert code(exc) == "ResourceNotFound"

    sm.update_experiment(ExperimentName=exp, Description="changed")
    assert sm.describe_experiment(ExperimentName=exp)["Description"] == "changed"
    sm.update_trial(TrialName=trial, DisplayName="T")
    assert sm.describe_trial(TrialName=trial)["DisplayName"] == "T"
    assert exp_arn in [e["ExperimentArn"] for e in sm.list_experiments()["ExperimentSummaries"]]
    for delete, kwargs in (
        (sm.delete_trial_component, {"TrialComponentName": tc}),
        (sm.delete_trial, {"TrialName": trial}),
        (sm.delete_experiment, {"ExperimentName": exp}),
    ):
        delete(**kwargs)
    with pytest.raises(ClientError) as exc:
        sm.describe_experiment(ExperimentName=exp)
    assert code(exc) == "ResourceNotFound"


def test_associations_and_query_lineage(sm: Any, unique: Unique) -> None:
    data = artifact(sm, f"s3://d/{unique('ds')}")
    model = artifact(sm, f"s3://m/{unique('model')}", "Model")
    endpoint = sm.create_context(
        ContextName=unique("endpoint"),
        ContextType="Endpoint",
        Source={"SourceUri": "arn:aws:sagemaker:x"},
    )["ContextArn"]
    sm.add_association(SourceArn=data, DestinationArn=model, AssociationType="ContributedTo")
    sm.add_association(SourceArn=model, DestinationArn=endpoint, AssociationType="AssociatedWith")
    with pytest.raises(ClientError) as exc:
        sm.add_association(SourceArn=data, DestinationArn=model)
    assert code(exc) == "ValidationException"
    assert "already exists" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        sm.add_association(SourceArn=data, DestinationArn=data.replace(data[-4:], "0000"))
    assert code(exc) == "ResourceNotFound"

    summaries = sm.list_associations(SourceArn=data)["AssociationSummaries"]
    assert [(s["DestinationArn"], s["AssociationType"]) for s in summaries] == [
        (model, "ContributedTo")
    ]

    answer = sm.query_lineage(StartArns=[data], Direction="Descendants", IncludeEdges=True)
    assert {v["Arn"] for v in answer["Vertices"]} == {data, model, endpoint}  # start included
    assert answer["Vertices"][0]["Arn"] == data  # depth 0 first
    assert {(e["SourceArn"], e["DestinationArn"]) for e in answer["Edges"]} == {
        (data, model),
        (model, endpoint),
    }
    types = sm.query_lineage(
        StartArns=[endpoint],
        Direction="Ascendants",
        Filters={"Types": ["DataSet"]},
        IncludeEdges=False,
    )
    assert [v["Arn"] for v in types["Vertices"]] == [data]
    assert types["Vertices"][0]["LineageType"] == "Artifact"

    sm.delete_association(SourceArn=data, DestinationArn=model)
    after = sm.query_lineage(StartArns=[data], Direction="Descendants")
    assert [v["Arn"] for v in after["Vertices"]] == [data]  # only the start is left
    with pytest.raises(ClientError) as exc:
        sm.delete_association(SourceArn=data, DestinationArn=model)
    assert code(exc) == "ResourceNotFound"


@pytest.mark.slow
def test_lists_and_query_lineage_page_through_large_results(sm: Any, unique: Unique) -> None:
    run = unique("page")
    hub = artifact(sm, f"s3://hub/{run}")
    spokes = []
    for i in range(130):
        spoke = artifact(sm, f"s3://spoke/{run}/{i}", "Model")
        sm.add_association(SourceArn=hub, DestinationArn=spoke)
        spokes.append(spoke)

    seen: list[str] = []
    for page in sm.get_paginator("list_artifacts").paginate(
        ArtifactType="Model", PaginationConfig={"PageSize": 17}
    ):
        seen += [a["ArtifactArn"] for a in page["ArtifactSummaries"]]
    mine = [a for a in seen if a in set(spokes)]
    assert len(seen) == len(set(seen))
    assert sorted(mine) == sorted(spokes)

    assoc: list[tuple[str, str]] = []
    for page in sm.get_paginator("list_associations").paginate(
        SourceArn=hub, PaginationConfig={"PageSize": 25}
    ):
        assoc += [(a["SourceArn"], a["DestinationArn"]) for a in page["AssociationSummaries"]]
    assert len(assoc) == len(set(assoc)) == 130

    vertices: list[str] = []
    edges: list[tuple[str, str]] = []
    token: str | None = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {
            "StartArns": [hub],
            "Direction": "Descendants",
            "IncludeEdges": True,
            "MaxResults": 50,
        }
        if token:
            kwargs["NextToken"] = token
        answer = sm.query_lineage(**kwargs)
        pages += 1
        vertices += [v["Arn"] for v in answer["Vertices"]]
        edges += [(e["SourceArn"], e["DestinationArn"]) for e in answer["Edges"]]
        token = answer.get("NextToken")
        if not token:
            break
    assert pages == 3
    assert len(vertices) == len(set(vertices)) == 131  # the spokes and the start
    assert sorted(vertices) == sorted([hub, *spokes])
    assert len(edges) == len(set(edges)) == 130


def test_lineage_groups(sm: Any, server: Server) -> None:
    groups = sm.list_lineage_groups()["LineageGroupSummaries"]
    mine = [g for g in groups if f":{ACCOUNT_A}:" in g["LineageGroupArn"]]
    assert [g["LineageGroupName"] for g in mine] == ["sagemaker-default-lineage-group"]
    d = sm.describe_lineage_group(LineageGroupName="sagemaker-default-lineage-group")
    assert d["LineageGroupArn"] == mine[0]["LineageGroupArn"]
    policy = sm.get_lineage_group_policy(LineageGroupName="sagemaker-default-lineage-group")
    assert json.loads(policy["ResourcePolicy"])["Version"] == "2012-10-17"
    b = server.client("AKIDACCOUNTB0000001")
    with pytest.raises(ClientError) as exc:
        b.describe_lineage_group(LineageGroupName="sagemaker-default-lineage-group")
    assert code(exc) == "ResourceNotFound"  # B has written nothing yet
    assert ACCOUNT_B not in json.dumps(b.list_lineage_groups())


def test_bad_requests_are_validation_exceptions(sm: Any, unique: Unique) -> None:
    with pytest.raises(ClientError) as exc:
        sm.create_action(ActionName="bad name!", Source={"SourceUri": "s3://x"}, ActionType="T")
    assert code(exc) == "ValidationException"
    assert "actionName" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        sm.query_lineage(
            StartArns=["arn:aws:sagemaker:us-east-1:111111111111:artifact/x"], MaxDepth=11
        )
    assert code(exc) == "ValidationException"
    # SageMaker's API model limits Properties to 30 members of at most 2,500 characters, and
    # AWS answers those checks with a ValidationException (the request's shape is checked
    # before any event exists)
    too_many = {f"k{i}": "v" for i in range(31)}
    for props in (too_many, {"k": "v" * 2501}, {"k" * 2501: "v"}):
        with pytest.raises(ClientError) as exc:
            sm.create_context(
                ContextName=unique("ctx"),
                ContextType="T",
                Source={"SourceUri": "s3://x"},
                Properties=props,
            )
        assert code(exc) == "ValidationException", str(exc.value)
        assert "failed to satisfy constraint" in str(exc.value)


def test_an_unknown_operation_is_refused_as_aws_refuses_it(server: Server) -> None:
    sm = server.client()
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(
            TrainingJobName="x",
            RoleArn="arn:aws:iam::111111111111:role/r",
            AlgorithmSpecification={"TrainingInputMode": "File", "TrainingImage": "i"},
            OutputDataConfig={"S3OutputPath": "s3://o"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 60},
        )
    assert code(exc) == "UnknownOperationException"
