"""The auto-tracker's rules: a pure function from one source event to the entity events that
SageMaker would create for it (``reference/sagemaker-lineage.md``, "What SageMaker creates
automatically", plus the edges ARCHITECTURE.md adds).

Derived events are deterministic: ``event_id = uuid5(NS, "{source}|{rule}|{entity key}")``,
they copy the source's ``occurred_at``, ``account_id`` and ``region``, set ``caused_by`` to
the source and ``producer`` to :data:`RULESET`. Each derived upsert carries only the fields
the rule derives, so it never erases a field a user set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from mlineage import arns
from mlineage.events.codec import dumps
from mlineage.events.models import (
    AnyEvent,
    DataRef,
    EndpointCreated,
    EntityUpserted,
    JobCreated,
    JobStatusChanged,
    MetadataProperties,
    ModelPackageCreated,
    OpenLineageEventReceived,
    canonical_time,
)
from mlineage.events.openlineage import (
    OBJECT_STORES,
    Dataset,
    DatasetEvent,
    JobEvent,
    RunEvent,
    dataset_uri,
    is_uuid,
    parse_time,
)

RULESET = "mlineage-tracker/1"

_TC_SOURCE_TYPE = {
    "TrainingJob": "SageMakerTrainingJob",
    "ProcessingJob": "SageMakerProcessingJob",
    "TransformJob": "SageMakerTransformJob",
}
_DEFAULT_OUTPUT_TYPE = {
    "TrainingJob": "Model",
    "ProcessingJob": "DataSet",
    "TransformJob": "DataSet",
}
_TERMINAL = frozenset({"Completed", "Failed", "Stopped"})


@dataclass
class _Out:
    """Collects derived upserts for one source event, one per (rule, key), as canonical
    JSON-able dicts keyed by the entity key."""

    source: AnyEvent
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)
    _envelope: dict[str, Any] | None = None

    @property
    def region(self) -> str:
        return self.source.region

    @property
    def account(self) -> str:
        return self.source.account_id

    def add(self, rule: str, key: str, entity: dict[str, Any]) -> None:
        if (rule, key) in self.seen:
            return
        self.seen.add((rule, key))
        src = self.source
        if self._envelope is None:
            self._envelope = {
                "event_type": "EntityUpserted",
                "schema_version": 1,
                "occurred_at": canonical_time(src.occurred_at),
                "account_id": src.account_id,
                "region": src.region,
                "producer": RULESET,
                "caused_by": str(src.event_id),
            }
        self.records.append(
            (
                key,
                {
                    **self._envelope,
                    "event_id": arns.derived_event_id(str(src.event_id), rule, key),
                    "payload": {"entity": entity},
                },
            )
        )

    def artifact(
        self, rule: str, uri: str, artifact_type: str, metadata: MetadataProperties | None = None
    ) -> str:
        arn = arns.artifact_arn(self.region, self.account, uri)
        entity: dict[str, Any] = {
            "kind": "artifact",
            "source": {"source_uri": uri},
            "artifact_type": artifact_type,
        }
        if metadata is not None:
            entity["metadata"] = metadata.model_dump(exclude_none=True)
        self.add(rule, arn, entity)
        return arn

    def associate(
        self, rule: str, source_arn: str, destination_arn: str, association_type: str
    ) -> None:
        self.add(
            rule,
            arns.association_key(source_arn, destination_arn),
            {
                "kind": "association",
                "source_arn": source_arn,
                "destination_arn": destination_arn,
                "association_type": association_type,
            },
        )

    def named(self, rule: str, kind: str, name: str, fields: dict[str, Any]) -> str:
        arn = arns.named_arn(kind, self.region, self.account, name)
        self.add(rule, arn, {"kind": kind, f"{kind}_name": name, **fields})
        return arn


def derive(event: AnyEvent) -> list[EntityUpserted]:
    """The entity events SageMaker would create for ``event`` (none for entity events)."""
    return [
        EntityUpserted.model_validate_json(dumps(record)) for _, record in derive_records(event)
    ]


def derive_records(event: AnyEvent) -> list[tuple[str, dict[str, Any]]]:
    """What :func:`derive` returns, as ``(entity key, canonical JSON-able event)`` pairs: the
    tracker encodes these directly (``codec.dumps``) instead of building and re-serializing
    models; the bytes are the same as ``codec.encode(derive(event)[i])`` (tested)."""
    out = _Out(event)
    if isinstance(event, JobCreated):
        _job_created(out, event)
    elif isinstance(event, JobStatusChanged):
        _job_status_changed(out, event)
    elif isinstance(event, ModelPackageCreated):
        _model_package_created(out, event)
    elif isinstance(event, EndpointCreated):
        _endpoint_created(out, event)
    elif isinstance(event, OpenLineageEventReceived):
        _openlineage(out, event)
    return out.records


def _parameter(value: str | int | float | bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"string_value": "true" if value else "false"}
    if isinstance(value, int | float):
        return {"number_value": float(value)}
    return {"string_value": value}


def _artifact_map(refs: list[DataRef]) -> dict[str, Any]:
    return {ref.name: {"value": ref.uri} for ref in refs}


def _job_created(out: _Out, event: JobCreated) -> None:
    p = event.payload
    _, job_arn = arns.job_identity(out.region, out.account, p.job_type, p.job_name, p.job_arn)
    tc_name = arns.job_trial_component_name(p.job_type, p.job_name)
    parameters = {k: _parameter(v) for k, v in p.parameters.items()}
    if p.image_uri is not None:
        parameters["SageMaker.ImageUri"] = {"string_value": p.image_uri}
    if p.instance_type is not None:
        parameters["SageMaker.InstanceType"] = {"string_value": p.instance_type}
    if p.instance_count is not None:
        parameters["SageMaker.InstanceCount"] = {"number_value": float(p.instance_count)}
    tc: dict[str, Any] = {
        "status": {"primary_status": "InProgress"},
        "start_time": _iso(event.occurred_at),
        "source": {"source_arn": job_arn, "source_type": _TC_SOURCE_TYPE[p.job_type]},
    }
    if parameters:
        tc["parameters"] = parameters
    if p.inputs:
        tc["input_artifacts"] = _artifact_map(p.inputs)
    if p.outputs:
        tc["output_artifacts"] = _artifact_map(p.outputs)
    if p.metadata is not None:
        tc["metadata"] = p.metadata.model_dump(exclude_none=True)
    config = p.experiment_config
    if config is not None and config.trial_component_display_name is not None:
        tc["display_name"] = config.trial_component_display_name
    tc_arn = out.named("job.trial_component", "trial_component", tc_name, tc)

    contributors: list[str] = []
    if p.job_type == "TransformJob" and p.model_data_uri is not None:
        contributors.append(out.artifact("job.model", p.model_data_uri, "Model"))
    if p.image_uri is not None:
        contributors.append(out.artifact("job.image", p.image_uri, "Image"))
    for ref in p.inputs:
        contributors.append(out.artifact("job.input", ref.uri, ref.artifact_type or "DataSet"))
    products: list[str] = []
    for ref in p.outputs:
        products.append(
            out.artifact(
                "job.output", ref.uri, ref.artifact_type or _DEFAULT_OUTPUT_TYPE[p.job_type]
            )
        )
    if p.checkpoint_uri is not None:
        products.append(out.artifact("job.checkpoint", p.checkpoint_uri, "Checkpoint"))
    for arn in contributors:
        out.associate("job.contributed", arn, tc_arn, "ContributedTo")
    for arn in products:
        out.associate("job.produced", tc_arn, arn, "Produced")

    if config is not None and config.experiment_name is not None:
        out.named("job.experiment", "experiment", config.experiment_name, {})
        if config.trial_name is not None:
            out.named(
                "job.trial", "trial", config.trial_name, {"experiment_name": config.experiment_name}
            )
            trial_arn = arns.named_arn("trial", out.region, out.account, config.trial_name)
            out.add(
                "job.trial_component_trial",
                arns.pair_key(tc_arn, trial_arn),
                {
                    "kind": "trial_component_trial",
                    "trial_component_name": tc_name,
                    "trial_name": config.trial_name,
                },
            )


def _job_status_changed(out: _Out, event: JobStatusChanged) -> None:
    p = event.payload
    job_name, _ = arns.job_identity(out.region, out.account, p.job_type, p.job_name, p.job_arn)
    tc_name = arns.job_trial_component_name(p.job_type, job_name)
    status: dict[str, Any] = {"primary_status": p.status}
    if p.failure_reason is not None:
        status["message"] = p.failure_reason
    tc: dict[str, Any] = {"status": status}
    end_time = p.end_time or (event.occurred_at if p.status in _TERMINAL else None)
    if end_time is not None:
        tc["end_time"] = _iso(end_time)
    if p.metrics:
        tc["metrics"] = {
            name: v.model_dump(mode="json", exclude_none=True) if isinstance(v, BaseModel) else v
            for name, v in p.metrics.items()
        }
    if p.outputs:
        tc["output_artifacts"] = _artifact_map(p.outputs)
    tc_arn = out.named("status.trial_component", "trial_component", tc_name, tc)
    for ref in p.outputs:
        arn = out.artifact(
            "status.output", ref.uri, ref.artifact_type or _DEFAULT_OUTPUT_TYPE[p.job_type]
        )
        out.associate("status.produced", tc_arn, arn, "Produced")


def _model_package_created(out: _Out, event: ModelPackageCreated) -> None:
    p = event.payload
    group = p.model_package_group_name
    group_arn = arns.model_package_group_arn(out.region, out.account, group)
    package_arn = p.model_package_arn or arns.model_package_arn(
        out.region, out.account, group, p.version
    )
    group_ctx = out.named(
        "package.group",
        "context",
        arns.model_group_context_name(group),
        {
            "source": {"source_uri": group_arn},
            "context_type": "ModelGroup",
        },
    )
    package = out.artifact("package.artifact", package_arn, "ModelPackage", p.metadata)
    approval_fields: dict[str, Any] = {
        "source": {"source_uri": package_arn},
        "action_type": "Approval",
    }
    if p.approval_status is not None:
        approval_fields["properties"] = {"ApprovalStatus": p.approval_status}
    approval = out.named(
        "package.approval", "action", arns.approval_action_name(group, p.version), approval_fields
    )
    model = out.artifact("package.model", p.model_data_uri, "Model")
    out.associate("package.contributed", model, package, "ContributedTo")
    if p.image_uri is not None:
        image = out.artifact("package.image", p.image_uri, "Image")
        out.associate("package.contributed", image, package, "ContributedTo")
    out.associate("package.group", package, group_ctx, "AssociatedWith")
    out.associate("package.approval", package, approval, "ContributedTo")


def _endpoint_created(out: _Out, event: EndpointCreated) -> None:
    p = event.payload
    endpoint_arn = p.endpoint_arn or arns.endpoint_arn(out.region, out.account, p.endpoint_name)
    endpoint = out.named(
        "endpoint.context",
        "context",
        arns.endpoint_context_name(p.endpoint_name),
        {"source": {"source_uri": endpoint_arn}, "context_type": "Endpoint"},
    )
    deployment = out.named(
        "endpoint.deployment",
        "action",
        arns.deployment_action_name(p.endpoint_name),
        {
            "source": {"source_uri": endpoint_arn},
            "action_type": "ModelDeployment",
            "status": "Completed",
        },
    )
    for m in p.models:
        contributors = [out.artifact("endpoint.model", m.model_data_uri, "Model")]
        if m.image_uri is not None:
            contributors.append(out.artifact("endpoint.image", m.image_uri, "Image"))
        if m.model_package_arn is not None:
            contributors.append(
                out.artifact("endpoint.package", m.model_package_arn, "ModelPackage")
            )
            parsed_pkg = arns.parse_arn(m.model_package_arn)
            group_version = arns.parse_model_package_arn(m.model_package_arn)
            if parsed_pkg is not None and group_version is not None:
                contributors.append(
                    arns.named_arn(
                        "action",
                        parsed_pkg.region,
                        parsed_pkg.account,
                        arns.approval_action_name(*group_version),
                    )
                )
        for arn in contributors:
            out.associate("endpoint.contributed", arn, deployment, "ContributedTo")
    out.associate("endpoint.deployed", deployment, endpoint, "AssociatedWith")


# --- OpenLineage (docs/openlineage.md has the table) -------------------------------------------

_OL_STATUS = {
    "START": "InProgress",
    "RUNNING": "InProgress",
    "COMPLETE": "Completed",
    "FAIL": "Failed",
    "ABORT": "Stopped",
}
_OL_ENDS = frozenset({"COMPLETE", "FAIL", "ABORT"})
_PARAMETER_MAX = 2500


def _openlineage(out: _Out, event: OpenLineageEventReceived) -> None:
    ol = event.payload.event
    if isinstance(ol, DatasetEvent):
        _ol_dataset(out, "openlineage.dataset", ol.dataset)
        return
    job_ctx = _ol_job(out, ol)
    if isinstance(ol, JobEvent):
        _ol_flow(out, ol, job_ctx, "openlineage.job")
        return
    tc_arn = _ol_run(out, ol)
    out.associate("openlineage.run_job", tc_arn, job_ctx, "AssociatedWith")
    _ol_flow(out, ol, tc_arn, "openlineage.run")
    parent = _ol_parent(ol)
    if parent is not None:
        ns, name, run_id = parent
        parent_name = arns.openlineage_run_name(ns, name, run_id)
        parent_arn = out.named(
            "openlineage.parent", "trial_component", parent_name, {"display_name": name[:120]}
        )
        out.associate("openlineage.parent", tc_arn, parent_arn, "AssociatedWith")


def _ol_flow(out: _Out, ol: RunEvent | JobEvent, at: str, rule: str) -> None:
    """The inputs ``ContributedTo`` ``at`` (the run, or the job), which ``Produced`` the
    outputs."""
    for d in ol.inputs or []:
        arn = _ol_dataset(out, "openlineage.input", d, twin_to=True)
        out.associate(f"{rule}_input", arn, at, "ContributedTo")
    for o in ol.outputs or []:
        arn = _ol_dataset(out, "openlineage.output", o, twin_to=False)
        out.associate(f"{rule}_output", at, arn, "Produced")


def _ol_parent(ol: RunEvent) -> tuple[str, str, str] | None:
    """The parent run facet's job namespace, name and run id, when it names another run."""
    parent = _facet(ol.run.facets, "parent")
    p_run, p_job = parent.get("run"), parent.get("job")
    if not isinstance(p_run, dict) or not isinstance(p_job, dict):
        return None
    run_id, ns, name = p_run.get("runId"), p_job.get("namespace"), p_job.get("name")
    if not (isinstance(run_id, str) and is_uuid(run_id)) or run_id.lower() == ol.run.runId.lower():
        return None
    if not (isinstance(ns, str) and ns and isinstance(name, str) and name):
        return None
    return ns, name, run_id


def _facet(facets: dict[str, dict[str, Any]] | None, name: str) -> dict[str, Any]:
    value = (facets or {}).get(name)
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int) -> str | None:
    """A facet's string value if it fits ``limit`` (a longer one stays in the event only)."""
    return value if isinstance(value, str) and value and len(value) <= limit else None


def _ol_job(out: _Out, ol: RunEvent | JobEvent) -> str:
    job = ol.job
    fields: dict[str, Any] = {
        "source": {"source_uri": f"openlineage://{job.namespace}/{job.name}"},
        "context_type": "OpenLineageJob",
        "properties": {"OpenLineage.Namespace": job.namespace, "OpenLineage.Name": job.name},
    }
    description = _text(_facet(job.facets, "documentation").get("description"), 3072)
    if description is not None:
        fields["description"] = description
    name = arns.openlineage_job_context_name(job.namespace, job.name)
    return out.named("openlineage.job", "context", name, fields)


def _ol_run(out: _Out, ol: RunEvent) -> str:
    job, run = ol.job, ol.run
    parameters: dict[str, str] = {
        "OpenLineage.JobNamespace": job.namespace,
        "OpenLineage.JobName": job.name,
        "OpenLineage.RunId": run.runId,
        "OpenLineage.Producer": ol.producer,
    }
    nominal = _facet(run.facets, "nominalTime")
    engine = _facet(run.facets, "processing_engine")
    for key, value in (
        ("OpenLineage.NominalStartTime", nominal.get("nominalStartTime")),
        ("OpenLineage.NominalEndTime", nominal.get("nominalEndTime")),
        ("OpenLineage.ProcessingEngine", engine.get("name")),
        ("OpenLineage.ProcessingEngineVersion", engine.get("version")),
        ("OpenLineage.Sql", _facet(job.facets, "sql").get("query")),
        ("OpenLineage.RunFacets", ",".join(sorted(run.facets or {}))),
        ("OpenLineage.JobFacets", ",".join(sorted(job.facets or {}))),
    ):
        text = _text(value, _PARAMETER_MAX)
        if text is not None:
            parameters[key] = text
    tc: dict[str, Any] = {
        "display_name": job.name[:120],
        "parameters": {k: {"string_value": v} for k, v in parameters.items()},
    }
    state = ol.eventType
    if state in _OL_STATUS:
        status: dict[str, Any] = {"primary_status": _OL_STATUS[state]}
        message = _facet(run.facets, "errorMessage").get("message")
        if state == "FAIL" and isinstance(message, str) and message:
            status["message"] = message[:1024]
        tc["status"] = status
    if state == "START":
        tc["start_time"] = _iso(parse_time(ol.eventTime))
    elif state in _OL_ENDS:
        tc["end_time"] = _iso(parse_time(ol.eventTime))
    metadata = _ol_metadata(job.facets)
    if metadata:
        tc["metadata"] = metadata
    for which, datasets in (("input_artifacts", ol.inputs), ("output_artifacts", ol.outputs)):
        refs = {d.name[-128:]: {"value": dataset_uri(d.namespace, d.name)} for d in datasets or []}
        if refs and len(refs) <= 60:
            tc[which] = refs
    name = arns.openlineage_run_name(job.namespace, job.name, run.runId)
    return out.named("openlineage.run", "trial_component", name, tc)


def _ol_metadata(facets: dict[str, dict[str, Any]] | None) -> dict[str, str]:
    location = _facet(facets, "sourceCodeLocation")
    metadata: dict[str, str] = {}
    repository = _text(location.get("repoUrl") or location.get("url"), 1024)
    commit = _text(location.get("version"), 1024)
    if repository is not None:
        metadata["repository"] = repository
    if commit is not None:
        metadata["commit_id"] = commit
    return metadata


def _ol_dataset(out: _Out, rule: str, d: Dataset, *, twin_to: bool | None = None) -> str:
    """The artifact of a dataset. On an object store its path may also be written with a
    trailing ``/`` (as SageMaker jobs often read a prefix): a ``SameAs`` association links
    that spelling too, in the direction data flows (into the dataset this event reads, out of
    the one it writes); it shows once a job or a user makes that artifact."""
    uri = dataset_uri(d.namespace, d.name)
    arn = arns.artifact_arn(out.region, out.account, uri)
    properties = {"OpenLineage.Namespace": d.namespace, "OpenLineage.Name": d.name}
    lineage = _facet(d.facets, "columnLineage")
    if lineage:
        text = _text(dumps(lineage), 4096)
        if text is not None:
            properties["OpenLineage.ColumnLineage"] = text
    out.add(
        rule,
        arn,
        {
            "kind": "artifact",
            "source": {"source_uri": uri},
            "artifact_type": "DataSet",
            "properties": properties,
        },
    )
    scheme, _, path = uri.partition("://")
    if twin_to is not None and scheme.lower() in OBJECT_STORES and path and len(uri) < 2048:
        twin = arns.artifact_arn(out.region, out.account, uri + "/")
        ends = (twin, arn) if twin_to else (arn, twin)
        out.associate(rule + ".same_as", *ends, "SameAs")
    return arn


def _iso(value: datetime) -> str:
    """A nested timestamp as pydantic serializes it (UTC, 'Z', microseconds only when set)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
