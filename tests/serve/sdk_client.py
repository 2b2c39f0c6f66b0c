"""Drives ``mlineage serve`` with the SageMaker Python SDK v2 (``sagemaker.lineage``), the way a
user's lineage script does. Runs in the SDK's own venv (.venv-sdk: the SDK pins numpy<2);
``tests/serve/test_sdk.py`` starts it and checks what it prints.

    python sdk_client.py URL ACCESS_KEY SECRET ARNS_JSON

ARNS_JSON names entities the test published through the tracker (a training job's dataset,
model and trial component, an endpoint context). Prints one JSON object: check -> result.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookups

import boto3
import sagemaker
from sagemaker.lineage.action import Action
from sagemaker.lineage.artifact import Artifact, DatasetArtifact, ModelArtifact
from sagemaker.lineage.association import Association
from sagemaker.lineage.context import Context, EndpointContext
from sagemaker.lineage.query import (
    LineageEntityEnum,
    LineageFilter,
    LineageQuery,
    LineageQueryDirectionEnum,
    LineageSourceEnum,
)
from smexperiments import experiment as sm_experiment
from smexperiments import search_expression as sm_search
from smexperiments import trial as sm_trial
from smexperiments import trial_component as sm_tc


def main() -> None:
    url, key, secret, arns_json = sys.argv[1:5]
    given = json.loads(arns_json)
    boto_session = boto3.Session(
        region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret
    )
    client = boto_session.client("sagemaker", endpoint_url=url)
    session = sagemaker.Session(
        boto_session=boto_session,
        sagemaker_client=client,
        sagemaker_config={
            "SchemaVersion": "1.0",
            "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
        },
    )
    out: dict[str, Any] = {}

    def check(name: str, fn: Any) -> Any:
        try:
            value = fn()
        except Exception as exc:  # report, keep going: the test asserts on every check
            out[name] = {"ok": False, "error": repr(exc), "trace": traceback.format_exc()}
            return None
        out[name] = {"ok": True, "value": value}
        return value

    run = given["run"]
    data = check(
        "Artifact.create",
        lambda: (
            Artifact.create(
                artifact_name="sdk-data",
                source_uri=f"s3://sdk/{run}/data",
                artifact_type="DataSet",
                properties={"stage": "raw"},
                sagemaker_session=session,
            ).artifact_arn
        ),
    )
    model = check(
        "Artifact.create model",
        lambda: (
            Artifact.create(
                source_uri=f"s3://sdk/{run}/model.tar.gz",
                artifact_type="Model",
                sagemaker_session=session,
            ).artifact_arn
        ),
    )
    check(
        "Association.create",
        lambda: (
            Association.create(
                source_arn=data,
                destination_arn=model,
                association_type="ContributedTo",
                sagemaker_session=session,
            ).source_arn
        ),
    )
    check(
        "LineageQuery.query",
        lambda: sorted(
            v.arn
            for v in LineageQuery(session)
            .query(
                start_arns=[data],
                direction=LineageQueryDirectionEnum.DESCENDANTS,
                include_edges=True,
            )
            .vertices
        ),
    )
    check(
        "LineageQuery.query with LineageFilter",
        lambda: sorted(
            v.arn
            for v in LineageQuery(session)
            .query(
                start_arns=[given["endpoint_context"]],
                direction=LineageQueryDirectionEnum.ASCENDANTS,
                include_edges=False,
                query_filter=LineageFilter(
                    entities=[LineageEntityEnum.ARTIFACT], sources=[LineageSourceEnum.DATASET]
                ),
            )
            .vertices
        ),
    )

    def load_update_save() -> dict[str, Any]:
        artifact = Artifact.load(artifact_arn=data, sagemaker_session=session)
        artifact.properties = {"stage": "clean"}
        artifact.save()
        again = Artifact.load(artifact_arn=data, sagemaker_session=session)
        return {
            "type": again.artifact_type,
            "properties": again.properties,
            "uri": again.source.source_uri,
        }

    check("Artifact.load/save", load_update_save)

    ctx_name = f"sdk-ctx-{run}"
    check(
        "Context.create",
        lambda: (
            Context.create(
                context_name=ctx_name,
                source_uri=f"s3://sdk/{run}/ctx",
                context_type="Endpoint",
                sagemaker_session=session,
            ).context_arn
        ),
    )
    check(
        "Context.load",
        lambda: Context.load(context_name=ctx_name, sagemaker_session=session).context_type,
    )
    check(
        "Action.create",
        lambda: (
            Action.create(
                action_name=f"sdk-action-{run}",
                source_uri=f"s3://sdk/{run}/action",
                action_type="Approval",
                status="Completed",
                sagemaker_session=session,
            ).action_arn
        ),
    )

    endpoint = EndpointContext.load(
        context_name=given["endpoint_context"].split("/", 1)[1], sagemaker_session=session
    )
    check(
        "EndpointContext.dataset_artifacts",
        lambda: sorted(a.artifact_arn for a in endpoint.dataset_artifacts()),
    )
    check("EndpointContext.training_job_arns", lambda: sorted(endpoint.training_job_arns()))
    check(
        "EndpointContext.trial_components",
        lambda: sorted(t.trial_component_arn for t in endpoint.trial_components()),
    )
    model_artifact = ModelArtifact.load(artifact_arn=given["model"], sagemaker_session=session)
    check(
        "ModelArtifact.endpoint_contexts",
        lambda: sorted(c.context_arn for c in model_artifact.endpoint_contexts()),
    )
    check(
        "ModelArtifact.dataset_artifacts",
        lambda: sorted(a.artifact_arn for a in model_artifact.dataset_artifacts()),
    )
    dataset = DatasetArtifact.load(artifact_arn=given["dataset"], sagemaker_session=session)
    check(
        "DatasetArtifact.endpoint_contexts",
        lambda: sorted(c.context_arn for c in dataset.endpoint_contexts()),
    )

    # tags: set_tag(s) call AddTags; the SDK's users read them back with ListTags
    def tags_of(arn: str) -> list[dict[str, str]]:
        return list(client.list_tags(ResourceArn=arn)["Tags"])

    def artifact_tags() -> list[dict[str, str]]:
        artifact = Artifact.load(artifact_arn=model, sagemaker_session=session)
        artifact.set_tag({"Key": "team", "Value": "ml"})
        artifact.set_tags([{"Key": "stage", "Value": "prod"}])
        return tags_of(model)

    check("Artifact.set_tag/set_tags", artifact_tags)

    def action_context_tags() -> list[list[dict[str, str]]]:
        action = Action.load(action_name=f"sdk-action-{run}", sagemaker_session=session)
        action.set_tags([{"Key": "k", "Value": "a"}])
        context = Context.load(context_name=ctx_name, sagemaker_session=session)
        context.set_tag({"Key": "k", "Value": "c"})
        return [tags_of(action.action_arn), tags_of(context.context_arn)]

    check("Action/Context.set_tag(s)", action_context_tags)

    # trials: the artifact feeds a trial component of a trial (smexperiments objects, as
    # the SDK's own helpers expect); downstream_trials() finds it through Search
    def trials() -> dict[str, list[str]]:
        exp = sm_experiment.Experiment.create(
            experiment_name=f"sdk-exp-{run}", sagemaker_boto_client=client
        )
        trial = sm_trial.Trial.create(
            trial_name=f"sdk-trial-{run}",
            experiment_name=exp.experiment_name,
            sagemaker_boto_client=client,
        )
        component = sm_tc.TrialComponent.create(
            trial_component_name=f"sdk-tc-{run}", sagemaker_boto_client=client
        )
        trial.add_trial_component(component)
        source = Artifact.create(
            source_uri=f"s3://sdk/{run}/trial-input", artifact_type="DataSet",
            sagemaker_session=session,
        )  # fmt: skip
        output = Artifact.create(
            source_uri=f"s3://sdk/{run}/trial-output", artifact_type="Model",
            sagemaker_session=session,
        )  # fmt: skip
        Association.create(
            source_arn=source.artifact_arn,
            destination_arn=component.trial_component_arn,
            association_type="ContributedTo",
            sagemaker_session=session,
        )
        Association.create(
            source_arn=component.trial_component_arn,
            destination_arn=output.artifact_arn,
            association_type="Produced",
            sagemaker_session=session,
        )
        found = [
            tc.trial_component_name
            for tc in sm_tc.TrialComponent.search(
                search_expression=sm_search.SearchExpression(
                    filters=[sm_search.Filter("Parents.TrialName", value=trial.trial_name)]
                ),
                sagemaker_boto_client=client,
            )
        ]
        return {
            "downstream_trials": source.downstream_trials(sagemaker_session=session),
            "downstream_trials_v2": source.downstream_trials_v2(),
            "upstream_trials": output.upstream_trials(),
            "TrialComponent.search": found,
        }

    check("Artifact trials", trials)

    def delete_disassociate() -> list[str]:
        Artifact.load(artifact_arn=data, sagemaker_session=session).delete(disassociate=True)
        return sorted(
            a["DestinationArn"]
            for a in client.list_associations(SourceArn=data)["AssociationSummaries"]
        )

    check("Artifact.delete(disassociate=True)", delete_disassociate)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
