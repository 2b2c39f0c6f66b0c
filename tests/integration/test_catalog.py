"""Describe* and List* (mlineage.query.catalog) on a real projection: the demo workflow plus
entities of every kind published through the Recorder, some deleted, in two accounts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mlineage import NotFoundError, Recorder, Settings, arns
from mlineage.demo import workflow
from mlineage.events.models import canonical_time
from mlineage.pipeline import sync
from mlineage.query.catalog import (
    FILTERS,
    KINDS,
    SORT_KEYS,
    SUMMARY_KEYS,
    describe,
    list_entities,
    resolve_kind,
)
from mlineage.query.lineage import QueryError
from mlineage.query.store import LineageStore

ACCOUNT = "111122223333"
OTHER = "444455556666"
REGION = "us-east-1"
T0 = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
FEATURES = "s3://bucket/features.parquet"
OLD = "s3://bucket/old.csv"
JOB_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/my-job"
METADATA = {
    "commit_id": "c0ffee",
    "repository": "https://example.com/repo",
    "generated_by": "pipeline-7",
    "project_id": "proj-1",
}


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def up(entity: dict[str, Any], minute: int) -> dict[str, Any]:
    return {
        "event_type": "EntityUpserted",
        "occurred_at": canonical_time(at(minute)),
        "payload": {"entity": entity},
    }


def gone(key: dict[str, Any], minute: int) -> dict[str, Any]:
    return {
        "event_type": "EntityDeleted",
        "occurred_at": canonical_time(at(minute)),
        "payload": key,
    }


def arn(resource: str, name: str, account: str = ACCOUNT) -> str:
    return arns.arn(REGION, account, resource, name)


FEATURES_ARN = arns.artifact_arn(REGION, ACCOUNT, FEATURES)
OLD_ARN = arns.artifact_arn(REGION, ACCOUNT, OLD)
MY_TC_ARN = arns.trial_component_arn(REGION, ACCOUNT, "MyComponent")
TRAIN_TC = "churn-xgb-2026-01-15-aws-training-job"
TRAIN_TC_ARN = arns.trial_component_arn(REGION, ACCOUNT, TRAIN_TC)


def own_events() -> list[dict[str, Any]]:
    tags = [{"key": "team", "value": "ml"}, {"key": "cost-center", "value": "42"}]
    return [
        up(
            {
                "kind": "artifact",
                "artifact_name": "features",
                "artifact_type": "DataSet",
                "source": {
                    "source_uri": FEATURES,
                    "source_types": [{"source_id_type": "MD5Hash", "value": "abc123"}],
                },
                "properties": {"rows": "1000"},
                "metadata": METADATA,
                "tags": tags,
            },
            0,
        ),
        up(
            {
                "kind": "action",
                "action_name": "train-step",
                "action_type": "Training",
                "source": {
                    "source_uri": "s3://bucket/code.py",
                    "source_type": "Code",
                    "source_id": "v1",
                },
                "description": "trains the model",
                "status": "Completed",
                "properties": {"step": "3"},
                "metadata": METADATA,
                "tags": tags,
            },
            1,
        ),
        up(
            {
                "kind": "context",
                "context_name": "my_context",
                "context_type": "Project",
                "source": {"source_uri": "s3://bucket/project"},
                "description": "a project",
                "properties": {"owner": "ana"},
                "tags": tags,
            },
            2,
        ),
        up(
            {
                "kind": "experiment",
                "experiment_name": "exp-a",
                "display_name": "Experiment A",
                "description": "first try",
                "tags": tags,
            },
            3,
        ),
        up(
            {
                "kind": "trial",
                "trial_name": "trial-a",
                "experiment_name": "exp-a",
                "display_name": "Trial A",
                "metadata": METADATA,
                "tags": tags,
            },
            4,
        ),
        up(
            {
                "kind": "trial_component",
                "trial_component_name": "MyComponent",
                "display_name": "My component",
                "status": {"primary_status": "InProgress", "message": "epoch 3 of 10"},
                "start_time": canonical_time(at(5)),
                "end_time": canonical_time(at(6)),
                "source": {"source_arn": JOB_ARN, "source_type": "SageMakerTrainingJob"},
                "parameters": {"lr": {"number_value": 0.1}, "optimizer": {"string_value": "adam"}},
                "input_artifacts": {"data": {"value": FEATURES, "media_type": "text/csv"}},
                "output_artifacts": {"model": {"value": "s3://bucket/model.tar.gz"}},
                "metrics": {"loss": 0.25, "accuracy": 0.9},
                "metadata": METADATA,
                "tags": tags,
            },
            5,
        ),
        up(
            {
                "kind": "trial_component_trial",
                "trial_component_name": "MyComponent",
                "trial_name": "trial-a",
            },
            6,
        ),
        up(
            {
                "kind": "action",
                "action_name": "shared-name",
                "action_type": "Deploy",
                "source": {"source_uri": "s3://bucket/shared"},
            },
            7,
        ),
        up(
            {
                "kind": "context",
                "context_name": "shared-name",
                "context_type": "Endpoint",
                "source": {"source_uri": "s3://bucket/shared"},
            },
            8,
        ),
        up(
            {
                "kind": "association",
                "source_arn": FEATURES_ARN,
                "destination_arn": arn("action", "train-step"),
                "association_type": "ContributedTo",
            },
            9,
        ),
        up(
            {
                "kind": "association",
                "source_arn": arn("action", "train-step"),
                "destination_arn": MY_TC_ARN,
                "association_type": "AssociatedWith",
            },
            9,
        ),
        # an action deleted after an association to it was made: the association is hidden
        up(
            {
                "kind": "action",
                "action_name": "doomed",
                "action_type": "Training",
                "source": {"source_uri": "s3://bucket/doomed"},
            },
            10,
        ),
        up(
            {
                "kind": "association",
                "source_arn": FEATURES_ARN,
                "destination_arn": arn("action", "doomed"),
                "association_type": "ContributedTo",
            },
            11,
        ),
        gone({"kind": "action", "action_name": "doomed"}, 12),
        up({"kind": "artifact", "artifact_type": "DataSet", "source": {"source_uri": OLD}}, 13),
        gone({"kind": "artifact", "source_uri": OLD}, 14),
        up(
            {
                "kind": "action",
                "action_name": "gone",
                "action_type": "Training",
                "source": {"source_uri": "s3://bucket/gone"},
            },
            15,
        ),
        gone({"kind": "action", "action_name": "gone"}, 16),
        # a trial component that joined a trial, then was deleted
        up({"kind": "trial", "trial_name": "trial-b", "experiment_name": "exp-a"}, 17),
        up({"kind": "trial_component", "trial_component_name": "temp-tc"}, 17),
        up(
            {
                "kind": "trial_component_trial",
                "trial_component_name": "temp-tc",
                "trial_name": "trial-b",
            },
            18,
        ),
        gone({"kind": "trial_component", "trial_component_name": "temp-tc"}, 19),
        up({"kind": "experiment", "experiment_name": "exp-shared"}, 20),
    ]


def other_events() -> list[dict[str, Any]]:
    return [
        up({"kind": "experiment", "experiment_name": "exp-shared"}, 21),
        up(
            {
                "kind": "action",
                "action_name": "b-only",
                "action_type": "Training",
                "source": {"source_uri": "s3://other/code"},
            },
            22,
        ),
    ]


def open_store(
    home: Path, account_events: dict[str, list[dict[str, Any]]], demo: bool = True
) -> LineageStore:
    main = Settings.load(home=home, account_id=ACCOUNT, region=REGION, environ={})
    for account, events in account_events.items():
        settings = Settings.load(home=home, account_id=account, region=REGION, environ={})
        with Recorder(settings) as rec:
            if demo and account == ACCOUNT:
                rec.publish_many(workflow(rec))
            rec.publish_many(events)
    sync(main)
    return LineageStore.open(main)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineageStore]:
    s = open_store(
        tmp_path_factory.mktemp("catalog"), {ACCOUNT: own_events(), OTHER: other_events()}
    )
    yield s
    s.close()


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineageStore]:
    s = open_store(tmp_path_factory.mktemp("demo"), {ACCOUNT: []})
    yield s
    s.close()


def no_nulls(value: Any) -> None:
    """Absent fields are omitted: no None, no empty map or list anywhere."""
    assert value is not None
    if isinstance(value, dict):
        assert value
        for v in value.values():
            no_nulls(v)
    elif isinstance(value, list):
        assert value
        for v in value:
            no_nulls(v)


def summaries(store: LineageStore, kind: str, **kw: Any) -> list[dict[str, Any]]:
    out = list_entities(store.con, kind, **kw)
    assert "NextToken" not in out
    items: list[dict[str, Any]] = out[SUMMARY_KEYS[resolve_kind(kind)]]
    return items


def ident(summary: dict[str, Any]) -> str:
    for key in (
        "ArtifactArn",
        "ActionArn",
        "ContextArn",
        "ExperimentArn",
        "TrialArn",
        "TrialComponentArn",
        "LineageGroupArn",
    ):
        if key in summary:
            return str(summary[key])
    return f"{summary['SourceArn']} {summary['DestinationArn']}"


def idents(store: LineageStore, kind: str, **kw: Any) -> list[str]:
    return [ident(s) for s in summaries(store, kind, **kw)]


TAGS = [{"Key": "cost-center", "Value": "42"}, {"Key": "team", "Value": "ml"}]
META = {
    "CommitId": "c0ffee",
    "Repository": "https://example.com/repo",
    "GeneratedBy": "pipeline-7",
    "ProjectId": "proj-1",
}
GROUP_ARN = arns.lineage_group_arn(REGION, ACCOUNT)


# -- resolve_kind -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("artifact", "artifact"),
        ("artifacts", "artifact"),
        ("Artifacts", "artifact"),
        ("trial-components", "trial_component"),
        ("trial_component", "trial_component"),
        ("TrialComponent", "trial_component"),
        ("experiment-trial-component", "trial_component"),
        ("lineage-groups", "lineage_group"),
        ("lineage group", "lineage_group"),
        ("associations", "association"),
        ("trials", "trial"),
        ("experiment-trial", "trial"),
        ("contexts", "context"),
        ("action", "action"),
        ("experiments", "experiment"),
    ],
)
def test_resolve_kind_accepts_plural_singular_and_dashes(name: str, kind: str) -> None:
    assert resolve_kind(name) == kind


def test_unknown_kind_lists_the_kinds(store: LineageStore) -> None:
    with pytest.raises(QueryError) as err:
        resolve_kind("models")
    for kind in KINDS:  # as --help writes them
        assert kind.replace("_", "-") + "s" in str(err.value)
    with pytest.raises(QueryError, match="lineage-groups"):
        list_entities(store.con, "endpoints")
    with pytest.raises(QueryError, match="trial-components"):
        describe(store.con, "exp-a", kind="runs")


# -- describe -----------------------------------------------------------------------------------


def test_describe_artifact_by_arn(store: LineageStore) -> None:
    got = describe(store.con, FEATURES_ARN)
    assert got == {
        "ArtifactName": "features",
        "ArtifactArn": FEATURES_ARN,
        "Source": {
            "SourceUri": FEATURES,
            "SourceTypes": [{"SourceIdType": "MD5Hash", "Value": "abc123"}],
        },
        "ArtifactType": "DataSet",
        "Properties": {"rows": "1000"},
        "CreationTime": at(0),
        "LastModifiedTime": at(0),
        "MetadataProperties": META,
        "LineageGroupArn": GROUP_ARN,
        "Tags": TAGS,
    }
    assert got["CreationTime"].utcoffset() == timedelta(0)
    assert describe(store.con, FEATURES_ARN, kind="artifacts") == got


def test_artifacts_are_described_by_arn_only(store: LineageStore) -> None:
    with pytest.raises(QueryError, match="ARN"):
        describe(store.con, "features", kind="artifact")
    with pytest.raises(NotFoundError):
        describe(store.con, "features")


def test_describe_action_by_name_and_arn(store: LineageStore) -> None:
    got = describe(store.con, "train-step")
    assert got == {
        "ActionName": "train-step",
        "ActionArn": arn("action", "train-step"),
        "Source": {"SourceUri": "s3://bucket/code.py", "SourceType": "Code", "SourceId": "v1"},
        "ActionType": "Training",
        "Description": "trains the model",
        "Status": "Completed",
        "Properties": {"step": "3"},
        "CreationTime": at(1),
        "LastModifiedTime": at(1),
        "MetadataProperties": META,
        "LineageGroupArn": GROUP_ARN,
        "Tags": TAGS,
    }
    assert describe(store.con, arn("action", "train-step")) == got
    assert describe(store.con, "train-step", kind="action") == got


def test_describe_context_by_name_and_arn(store: LineageStore) -> None:
    got = describe(store.con, "my_context")
    assert got == {
        "ContextName": "my_context",
        "ContextArn": arn("context", "my_context"),
        "Source": {"SourceUri": "s3://bucket/project"},
        "ContextType": "Project",
        "Description": "a project",
        "Properties": {"owner": "ana"},
        "CreationTime": at(2),
        "LastModifiedTime": at(2),
        "LineageGroupArn": GROUP_ARN,
        "Tags": TAGS,
    }
    assert describe(store.con, arn("context", "my_context")) == got


def test_describe_experiment_by_name_and_arn(store: LineageStore) -> None:
    got = describe(store.con, "exp-a")
    assert got == {
        "ExperimentName": "exp-a",
        "ExperimentArn": arn("experiment", "exp-a"),
        "DisplayName": "Experiment A",
        "Description": "first try",
        "CreationTime": at(3),
        "LastModifiedTime": at(3),
        "Tags": TAGS,
    }
    assert describe(store.con, arn("experiment", "exp-a")) == got


def test_describe_trial_by_name_and_arn(store: LineageStore) -> None:
    got = describe(store.con, "trial-a")
    assert got == {
        "TrialName": "trial-a",
        "TrialArn": arn("experiment-trial", "trial-a"),
        "DisplayName": "Trial A",
        "ExperimentName": "exp-a",
        "CreationTime": at(4),
        "LastModifiedTime": at(4),
        "MetadataProperties": META,
        "Tags": TAGS,
    }
    assert describe(store.con, arn("experiment-trial", "trial-a")) == got
    assert describe(store.con, "xgb-baseline", kind="trial")["ExperimentName"] == (
        "churn-prediction"
    )


def test_describe_trial_component_names_are_case_insensitive(store: LineageStore) -> None:
    got = describe(store.con, "MyComponent")
    assert got == {
        "TrialComponentName": "MyComponent",
        "TrialComponentArn": MY_TC_ARN,
        "DisplayName": "My component",
        "Source": {"SourceArn": JOB_ARN, "SourceType": "SageMakerTrainingJob"},
        "Status": {"PrimaryStatus": "InProgress", "Message": "epoch 3 of 10"},
        "StartTime": at(5),
        "EndTime": at(6),
        "CreationTime": at(5),
        "LastModifiedTime": at(5),
        "Parameters": {"lr": {"NumberValue": 0.1}, "optimizer": {"StringValue": "adam"}},
        "InputArtifacts": {"data": {"Value": FEATURES, "MediaType": "text/csv"}},
        "OutputArtifacts": {"model": {"Value": "s3://bucket/model.tar.gz"}},
        "MetadataProperties": META,
        "Metrics": [{"MetricName": "accuracy", "Last": 0.9}, {"MetricName": "loss", "Last": 0.25}],
        "LineageGroupArn": GROUP_ARN,
        "Tags": TAGS,
    }
    for key in (
        "mycomponent",
        "MYCOMPONENT",
        MY_TC_ARN,
        arn("experiment-trial-component", "MyComponent"),
    ):
        assert describe(store.con, key) == got
    assert describe(store.con, "mYcOmPoNeNt", kind="trial-component") == got


def test_describe_auto_created_trial_component(store: LineageStore) -> None:
    got = describe(store.con, TRAIN_TC.upper())
    assert got["TrialComponentArn"] == TRAIN_TC_ARN
    assert got["Source"] == {
        "SourceArn": arn("training-job", "churn-xgb-2026-01-15"),
        "SourceType": "SageMakerTrainingJob",
    }
    assert got["Status"] == {"PrimaryStatus": "Completed"}
    assert got["Parameters"]["max_depth"] == {"NumberValue": 6.0}
    assert got["Parameters"]["SageMaker.InstanceType"] == {"StringValue": "ml.m5.2xlarge"}
    assert got["Metrics"] == [
        {"MetricName": "train:auc", "Last": 0.947},
        {"MetricName": "validation:auc", "Last": 0.912},
    ]
    assert got["MetadataProperties"] == {
        "CommitId": "4f2a9c1",
        "Repository": "https://github.com/acme/churn",
    }
    assert "Tags" not in got


@pytest.mark.parametrize(
    "key",
    [
        FEATURES_ARN,
        "train-step",
        "my_context",
        "exp-a",
        "trial-a",
        "MyComponent",
        TRAIN_TC,
        arn("lineage-group", arns.LINEAGE_GROUP_NAME),
        "churn-prediction-aws-endpoint",
        "churn-models-1-aws-model-package",
    ],
)
def test_describe_omits_absent_fields(store: LineageStore, key: str) -> None:
    got = describe(store.con, key)
    no_nulls(got)
    for field in ("CreationTime", "LastModifiedTime", "StartTime", "EndTime"):
        if field in got:
            assert got[field].tzinfo is not None


def test_describe_lineage_group_by_arn_and_name(
    store: LineageStore, demo_store: LineageStore
) -> None:
    other_group = arns.lineage_group_arn(REGION, OTHER)
    assert describe(store.con, other_group) == {
        "LineageGroupName": arns.LINEAGE_GROUP_NAME,
        "LineageGroupArn": other_group,
        "CreationTime": at(21),
    }
    with pytest.raises(QueryError) as err:
        describe(store.con, arns.LINEAGE_GROUP_NAME)
    assert GROUP_ARN in str(err.value)
    assert other_group in str(err.value)
    with pytest.raises(QueryError):
        describe(store.con, arns.LINEAGE_GROUP_NAME, kind="lineage-group")
    # one account: the name is enough
    got = describe(demo_store.con, arns.LINEAGE_GROUP_NAME)
    assert got == describe(demo_store.con, GROUP_ARN, kind="lineage_group")
    assert got["LineageGroupArn"] == GROUP_ARN
    assert got["CreationTime"] == datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    with pytest.raises(NotFoundError, match="lineage group other-group not found"):
        describe(demo_store.con, "other-group", kind="lineage_group")


def test_a_name_in_two_accounts_needs_the_arn(store: LineageStore) -> None:
    with pytest.raises(QueryError) as err:
        describe(store.con, "exp-shared")
    assert arn("experiment", "exp-shared") in str(err.value)
    assert arn("experiment", "exp-shared", OTHER) in str(err.value)
    got = describe(store.con, arn("experiment", "exp-shared", OTHER))
    assert got["ExperimentArn"] == arn("experiment", "exp-shared", OTHER)
    assert got["CreationTime"] == at(21)
    assert describe(store.con, "b-only")["ActionArn"] == arn("action", "b-only", OTHER)


def test_a_name_of_two_kinds_needs_the_kind(store: LineageStore) -> None:
    with pytest.raises(QueryError, match="kind") as err:
        describe(store.con, "shared-name")
    assert "action" in str(err.value)
    assert "context" in str(err.value)
    assert describe(store.con, "shared-name", kind="action")["ActionType"] == "Deploy"
    assert describe(store.con, "shared-name", kind="contexts")["ContextType"] == "Endpoint"


@pytest.mark.parametrize(
    ("deleted", "never", "kind"),
    [
        ("gone", "never-was", "action"),
        ("doomed", "never-was", "action"),
        ("temp-tc", "never-was", "trial_component"),
        (OLD_ARN, arns.artifact_arn(REGION, ACCOUNT, "s3://bucket/never"), None),
        (arn("action", "gone"), arn("action", "never-was"), None),
        ("gone", "never-was", None),
    ],
)
def test_deleted_is_not_found_like_never_existing(
    store: LineageStore, deleted: str, never: str, kind: str | None
) -> None:
    messages = []
    for key in (deleted, never):
        with pytest.raises(NotFoundError) as err:
            describe(store.con, key, kind=kind)
        messages.append(str(err.value).replace(key, "<key>"))
    assert messages[0] == messages[1]
    if kind is not None:
        assert messages[0] == f"{kind.replace('_', ' ')} <key> not found"


def test_deleted_artifact_message_names_the_kind(store: LineageStore) -> None:
    with pytest.raises(NotFoundError) as err:
        describe(store.con, OLD_ARN)
    assert str(err.value) == f"artifact {OLD_ARN} not found"


def test_describe_refuses_malformed_requests(store: LineageStore) -> None:
    with pytest.raises(QueryError, match="not a SageMaker ARN"):
        describe(store.con, "arn:aws:s3:::bucket/key")
    with pytest.raises(QueryError, match="training-job"):
        describe(store.con, JOB_ARN)
    with pytest.raises(QueryError, match="not a context"):
        describe(store.con, arn("action", "train-step"), kind="context")
    with pytest.raises(QueryError, match="association"):
        describe(store.con, FEATURES_ARN, kind="association")
    with pytest.raises(QueryError):
        describe(store.con, "  ")


def test_user_values_never_become_sql(store: LineageStore) -> None:
    sneaky = "x' OR '1'='1"
    with pytest.raises(NotFoundError):
        describe(store.con, sneaky, kind="action")
    with pytest.raises(NotFoundError):
        describe(store.con, sneaky)
    assert summaries(store, "artifact", source_uri=sneaky) == []
    assert summaries(store, "trial", trial_component_name=sneaky) == []


# -- list: contents and filters ------------------------------------------------------------------


def test_list_shows_live_entities_only(store: LineageStore) -> None:
    artifacts = idents(store, "artifacts")
    assert FEATURES_ARN in artifacts
    assert OLD_ARN not in artifacts
    assert len(artifacts) == 11  # 10 from the demo + features
    actions = idents(store, "actions")
    assert arn("action", "gone") not in actions
    assert arn("action", "doomed") not in actions
    assert arn("action", "b-only", OTHER) in actions
    assert arns.trial_component_arn(REGION, ACCOUNT, "temp-tc") not in idents(
        store, "trial_components"
    )
    assert set(idents(store, "lineage-groups")) == {
        GROUP_ARN,
        arns.lineage_group_arn(REGION, OTHER),
    }


def test_summaries_have_sagemaker_fields(store: LineageStore) -> None:
    [artifact] = summaries(store, "artifact", source_uri=FEATURES)
    assert artifact == {
        "ArtifactArn": FEATURES_ARN,
        "ArtifactName": "features",
        "Source": {
            "SourceUri": FEATURES,
            "SourceTypes": [{"SourceIdType": "MD5Hash", "Value": "abc123"}],
        },
        "ArtifactType": "DataSet",
        "CreationTime": at(0),
        "LastModifiedTime": at(0),
    }
    [action] = summaries(store, "action", source_uri="s3://bucket/code.py")
    assert action == {
        "ActionArn": arn("action", "train-step"),
        "ActionName": "train-step",
        "Source": {"SourceUri": "s3://bucket/code.py", "SourceType": "Code", "SourceId": "v1"},
        "ActionType": "Training",
        "Status": "Completed",
        "CreationTime": at(1),
        "LastModifiedTime": at(1),
    }
    [context] = summaries(store, "context", context_type="Project")
    assert context == {
        "ContextArn": arn("context", "my_context"),
        "ContextName": "my_context",
        "Source": {"SourceUri": "s3://bucket/project"},
        "ContextType": "Project",
        "CreationTime": at(2),
        "LastModifiedTime": at(2),
    }
    [tc] = summaries(store, "trial_component", trial_name="trial-a")
    assert tc == {
        "TrialComponentName": "MyComponent",
        "TrialComponentArn": MY_TC_ARN,
        "DisplayName": "My component",
        "TrialComponentSource": {"SourceArn": JOB_ARN, "SourceType": "SageMakerTrainingJob"},
        "Status": {"PrimaryStatus": "InProgress", "Message": "epoch 3 of 10"},
        "StartTime": at(5),
        "EndTime": at(6),
        "CreationTime": at(5),
        "LastModifiedTime": at(5),
    }
    [trial] = summaries(store, "trial", trial_component_name="MyComponent")
    assert trial == {
        "TrialArn": arn("experiment-trial", "trial-a"),
        "TrialName": "trial-a",
        "DisplayName": "Trial A",
        "CreationTime": at(4),
        "LastModifiedTime": at(4),
    }
    for kind in KINDS:
        for summary in summaries(store, kind):
            no_nulls(summary)


def test_artifact_filters(store: LineageStore) -> None:
    assert idents(store, "artifact", source_uri=FEATURES) == [FEATURES_ARN]
    assert idents(store, "artifact", source_uri=OLD) == []
    models = summaries(store, "artifact", artifact_type="Model")
    assert [s["Source"]["SourceUri"] for s in models] == [
        "s3://acme-ml-demo/models/churn-xgb-2026-01-15/output/model.tar.gz"
    ]
    assert len(idents(store, "artifact", artifact_type="DataSet")) == 6
    assert idents(store, "artifact", created_after=at(0)) == [FEATURES_ARN]  # inclusive
    assert idents(store, "artifact", created_after=at(0) + timedelta(microseconds=1)) == []
    before = idents(store, "artifact", created_before=at(0) - timedelta(microseconds=1))
    assert len(before) == 10
    assert FEATURES_ARN not in before
    assert FEATURES_ARN in idents(store, "artifact", created_before=at(0))  # inclusive
    assert idents(store, "artifact", artifact_type="DataSet", created_after=at(-1)) == [
        FEATURES_ARN
    ]


def test_action_filters(store: LineageStore) -> None:
    assert idents(store, "action", action_type="Training") == [
        arn("action", "b-only", OTHER),
        arn("action", "train-step"),
    ]
    assert idents(store, "action", source_uri="s3://bucket/shared") == [
        arn("action", "shared-name")
    ]
    assert idents(store, "action", created_after=at(7), created_before=at(22)) == [
        arn("action", "b-only", OTHER),
        arn("action", "shared-name"),
    ]
    assert idents(store, "action", created_before=at(0)) == [
        arn("action", "churn-prediction-aws-model-deployment"),
        arn("action", "churn-models-1-aws-model-package"),
    ]


def test_context_filters(store: LineageStore) -> None:
    assert idents(store, "context", context_type="Endpoint") == [
        arn("context", "shared-name"),
        arn("context", "churn-prediction-aws-endpoint"),
    ]
    assert idents(store, "context", source_uri=arn("endpoint", "churn-prediction")) == [
        arn("context", "churn-prediction-aws-endpoint")
    ]
    assert idents(store, "context", created_after=at(2), created_before=at(2)) == [
        arn("context", "my_context")
    ]


def test_experiment_filters(store: LineageStore) -> None:
    assert idents(store, "experiment") == [
        arn("experiment", "exp-shared", OTHER),
        arn("experiment", "exp-shared"),
        arn("experiment", "exp-a"),
        arn("experiment", "churn-prediction"),
    ]
    assert idents(store, "experiment", created_after=at(3), created_before=at(20)) == [
        arn("experiment", "exp-shared"),
        arn("experiment", "exp-a"),
    ]


def test_trial_filters(store: LineageStore) -> None:
    assert idents(store, "trial", experiment_name="exp-a") == [
        arn("experiment-trial", "trial-b"),
        arn("experiment-trial", "trial-a"),
    ]
    assert idents(store, "trial", experiment_name="churn-prediction") == [
        arn("experiment-trial", "xgb-baseline")
    ]
    for name in ("MyComponent", "mycomponent", "MYCOMPONENT"):
        assert idents(store, "trial", trial_component_name=name) == [
            arn("experiment-trial", "trial-a")
        ]
    assert idents(store, "trial", trial_component_name=TRAIN_TC.upper()) == [
        arn("experiment-trial", "xgb-baseline")
    ]
    # temp-tc joined trial-b, then was deleted
    assert idents(store, "trial", trial_component_name="temp-tc") == []
    assert idents(store, "trial", created_before=at(4)) == [
        arn("experiment-trial", "trial-a"),
        arn("experiment-trial", "xgb-baseline"),
    ]
    assert idents(
        store,
        "trial",
        experiment_name="exp-a",
        trial_component_name="MyComponent",
        created_after=at(4),
    ) == [arn("experiment-trial", "trial-a")]


def test_trial_component_filters(store: LineageStore) -> None:
    assert idents(store, "trial_component", experiment_name="exp-a") == [MY_TC_ARN]
    assert idents(store, "trial_component", experiment_name="churn-prediction") == [TRAIN_TC_ARN]
    assert idents(store, "trial_component", trial_name="trial-a") == [MY_TC_ARN]
    assert idents(store, "trial_component", trial_name="trial-b") == []  # temp-tc deleted
    assert idents(store, "trial_component", source_arn=JOB_ARN) == [MY_TC_ARN]
    assert idents(
        store, "trial_component", source_arn=arn("processing-job", "churn-prep-2026-01-15")
    ) == [arns.trial_component_arn(REGION, ACCOUNT, "churn-prep-2026-01-15-aws-processing-job")]
    assert idents(store, "trial_component", created_after=at(0)) == [MY_TC_ARN]
    assert len(idents(store, "trial_component", created_before=at(0))) == 3
    assert (
        idents(store, "trial_component", experiment_name="exp-a", trial_name="xgb-baseline") == []
    )


def test_association_filters(store: LineageStore) -> None:
    step = arn("action", "train-step")
    mine = summaries(store, "association", source_arn=FEATURES_ARN)
    assert mine == [
        {
            "SourceArn": FEATURES_ARN,
            "DestinationArn": step,
            "SourceType": "DataSet",
            "DestinationType": "Training",
            "AssociationType": "ContributedTo",
            "SourceName": "features",
            "DestinationName": "train-step",
            "CreationTime": at(9),
        }
    ]
    assert idents(store, "association", destination_arn=MY_TC_ARN) == [f"{step} {MY_TC_ARN}"]
    [to_tc] = summaries(store, "association", destination_arn=MY_TC_ARN)
    assert to_tc["DestinationType"] == "SageMakerTrainingJob"
    assert to_tc["DestinationName"] == "MyComponent"
    produced = summaries(store, "association", source_type="SageMakerTrainingJob")
    assert {s["AssociationType"] for s in produced} == {"Produced"}
    assert {s["DestinationType"] for s in produced} == {"Model", "Checkpoint"}
    assert {s["SourceName"] for s in produced} == {TRAIN_TC}
    assert len(idents(store, "association", destination_type="SageMakerTrainingJob")) == 4
    assert idents(store, "association", association_type="AssociatedWith", created_after=at(0)) == [
        f"{step} {MY_TC_ARN}"
    ]
    assert len(idents(store, "association", association_type="AssociatedWith")) == 3
    assert len(idents(store, "association", created_before=at(0))) == 22
    assert idents(store, "association", created_after=at(9), created_before=at(9)) == [
        f"{FEATURES_ARN} {step}",
        f"{step} {MY_TC_ARN}",
    ]  # ties: by ARN, descending


def test_associations_with_a_deleted_end_are_hidden(store: LineageStore) -> None:
    doomed = arn("action", "doomed")
    assert idents(store, "association", destination_arn=doomed) == []
    everything = idents(store, "association")
    assert all(doomed not in pair for pair in everything)
    assert len(everything) == 24  # 22 from the demo + 2 of ours
    # still in the table, just not visible
    rows = store.con.execute(
        "SELECT count(*) FROM associations WHERE destination_arn = ?", [doomed]
    ).fetchall()
    assert rows[0][0] == 1


def test_lineage_group_filters(store: LineageStore) -> None:
    assert idents(store, "lineage_group", created_after=at(0)) == [
        arns.lineage_group_arn(REGION, OTHER)
    ]
    assert idents(store, "lineage_group", created_before=at(0)) == [GROUP_ARN]


# -- list: sorting -------------------------------------------------------------------------------

NAME_FIELD = {
    "artifact": "ArtifactName",
    "action": "ActionName",
    "context": "ContextName",
    "experiment": "ExperimentName",
    "trial": "TrialName",
    "trial_component": "TrialComponentName",
    "lineage_group": "LineageGroupName",
}
SORT_CASES = [(kind, sort_by) for kind in KINDS for sort_by in SORT_KEYS[kind]]


def sort_value(kind: str, sort_by: str, summary: dict[str, Any]) -> tuple[Any, ...]:
    field = NAME_FIELD[kind] if sort_by == "Name" else sort_by
    value = summary.get(field)
    tie = (
        (summary["SourceArn"], summary["DestinationArn"])
        if kind == "association"
        else (ident(summary),)
    )
    return (value is not None, value, *tie)


@pytest.mark.parametrize(("kind", "sort_by"), SORT_CASES)
def test_each_sort_is_total_and_descending_reverses_ascending(
    store: LineageStore, kind: str, sort_by: str
) -> None:
    desc = summaries(store, kind, sort_by=sort_by)
    asc = summaries(store, kind, sort_by=sort_by, sort_order="Ascending")
    assert len(desc) >= 2
    assert asc == list(reversed(desc))
    assert asc == sorted(asc, key=lambda s: sort_value(kind, sort_by, s))
    assert len({ident(s) for s in asc}) == len(asc)


def test_default_sort_is_creation_time_descending(store: LineageStore) -> None:
    for kind in KINDS:
        assert summaries(store, kind) == summaries(
            store, kind, sort_by="CreationTime", sort_order="Descending"
        )
    times = [s["CreationTime"] for s in summaries(store, "artifact")]
    assert times == sorted(times, reverse=True)


def test_sort_by_name(store: LineageStore) -> None:
    names = [
        s["ExperimentName"]
        for s in summaries(store, "experiment", sort_by="Name", sort_order="Ascending")
    ]
    assert names == ["churn-prediction", "exp-a", "exp-shared", "exp-shared"]
    arns_ = idents(store, "association", sort_by="SourceArn", sort_order="Ascending")
    assert arns_ == sorted(arns_)


# -- list: paging --------------------------------------------------------------------------------


def collect(store: LineageStore, kind: str, page: int, **kw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token: str | None = None
    pages = 0
    while True:
        resp = list_entities(store.con, kind, max_results=page, next_token=token, **kw)
        items = resp[SUMMARY_KEYS[resolve_kind(kind)]]
        assert len(items) <= page
        out.extend(items)
        pages += 1
        token = resp.get("NextToken")
        if token is None:
            break
        assert len(items) == page
        assert pages < 200
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("page", [1, 2, 3, 1000])
def test_paging_equals_the_unpaged_list(store: LineageStore, kind: str, page: int) -> None:
    whole = summaries(store, kind)
    paged = collect(store, kind, page)
    assert paged == whole
    assert len({ident(s) for s in paged}) == len(paged)


@pytest.mark.parametrize(
    ("kind", "kw"),
    [
        ("artifact", {"artifact_type": "DataSet", "sort_by": "Name"}),
        (
            "association",
            {"source_type": "Image", "sort_by": "DestinationType", "sort_order": "Ascending"},
        ),
        ("trial_component", {"created_before": at(10), "sort_order": "Ascending"}),
    ],
)
def test_paging_with_filters_and_sorts(store: LineageStore, kind: str, kw: dict[str, Any]) -> None:
    assert collect(store, kind, 2, **kw) == summaries(store, kind, **kw)


def test_a_full_last_page_has_no_token(store: LineageStore) -> None:
    total = len(summaries(store, "context"))
    resp = list_entities(store.con, "context", max_results=total)
    assert len(resp["ContextSummaries"]) == total
    assert "NextToken" not in resp


def test_a_token_from_another_request_is_refused(store: LineageStore) -> None:
    token = list_entities(store.con, "artifact", max_results=2)["NextToken"]
    requests: list[tuple[str, dict[str, Any]]] = [
        ("artifact", {"artifact_type": "DataSet"}),
        ("artifact", {"sort_order": "Ascending"}),
        ("artifact", {"sort_by": "Name"}),
        ("action", {}),
        ("association", {}),
    ]
    for kind, kw in requests:
        with pytest.raises(QueryError, match="different request"):
            list_entities(store.con, kind, max_results=2, next_token=token, **kw)
    for bad in ("not-a-token", "eyJ4IjogMX0=", "%%%"):
        with pytest.raises(QueryError, match="NextToken"):
            list_entities(store.con, "artifact", max_results=2, next_token=bad)
    # same request, another page size: the offset still means the same thing
    second = list_entities(store.con, "artifact", max_results=3, next_token=token)
    assert second["ArtifactSummaries"] == summaries(store, "artifact")[2:5]


# -- list: validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1001, True])
def test_max_results_is_validated(store: LineageStore, bad: int) -> None:
    with pytest.raises(QueryError, match="max_results"):
        list_entities(store.con, "artifact", max_results=bad)


def test_sort_options_are_validated(store: LineageStore) -> None:
    with pytest.raises(QueryError, match="sort_by"):
        list_entities(store.con, "artifact", sort_by="SourceArn")
    with pytest.raises(QueryError, match="sort_by"):
        list_entities(store.con, "association", sort_by="Name")
    with pytest.raises(QueryError, match="sort_order"):
        list_entities(store.con, "artifact", sort_order="descending")


def test_filters_that_do_not_apply_are_refused(store: LineageStore) -> None:
    for kind, allowed in FILTERS.items():
        for name in (
            "source_uri",
            "artifact_type",
            "experiment_name",
            "source_arn",
            "association_type",
            "trial_name",
        ):
            if name in allowed:
                continue
            kw: dict[str, Any] = {name: "x"}
            with pytest.raises(QueryError, match=name):
                list_entities(store.con, kind, **kw)


def test_datetimes_in_any_zone_mean_the_same_instant(store: LineageStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    assert idents(store, "artifact", created_after=at(0).astimezone(plus2)) == [FEATURES_ARN]
    page = list_entities(store.con, "action", max_results=1, created_before=at(30))
    again = list_entities(
        store.con,
        "action",
        max_results=1,
        created_before=at(30).astimezone(plus2),
        next_token=page["NextToken"],
    )
    assert again["ActionSummaries"] == summaries(store, "action")[1:2]


def test_naive_datetimes_are_refused(store: LineageStore) -> None:
    with pytest.raises(QueryError, match="created_after"):
        list_entities(store.con, "artifact", created_after=datetime(2026, 1, 1))
