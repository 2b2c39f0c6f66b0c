"""pydantic models of the envelope, the source events and the entity events (schema v1).

Models are strict (no coercion) and forbid unknown fields, so a record that validates means
exactly what its JSON says. SageMaker's limits are enforced here, once, at publish; the
consumers re-validate what they read from the log and dead-letter what fails.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from pydantic import Tag as Branch

from mlineage import arns
from mlineage.events.openlineage import OpenLineageEvent, occurred_at

SCHEMA_VERSION = 1

# --- constrained scalars (SageMaker limits) ------------------------------------------------

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=120, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
]
ContextName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=120, pattern=r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9])*$"),
]
ResourceName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=120)]
Uri = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
TypeName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Description = Annotated[str, StringConstraints(max_length=3072)]
Message = Annotated[str, StringConstraints(max_length=1024)]
Arn = Annotated[str, StringConstraints(max_length=256, pattern=arns.ARN_PATTERN)]
AccountId = Annotated[str, StringConstraints(pattern=arns.ACCOUNT_PATTERN)]
Region = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9\-]+$")]
PropertyKey = Annotated[str, StringConstraints(min_length=1, max_length=2500)]
PropertyValue = Annotated[str, StringConstraints(max_length=2500)]
ArtifactPropertyValue = Annotated[str, StringConstraints(max_length=4096)]
Properties = Annotated[dict[PropertyKey, PropertyValue], Field(max_length=30)]
ArtifactProperties = Annotated[dict[PropertyKey, ArtifactPropertyValue], Field(max_length=30)]
KeysToRemove = Annotated[list[PropertyKey], Field(max_length=30)]
MetadataString = Annotated[str, StringConstraints(max_length=1024)]

JobType = Literal["TrainingJob", "ProcessingJob", "TransformJob"]
JobStatus = Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"]
ActionStatus = Literal["Unknown", "InProgress", "Completed", "Failed", "Stopping", "Stopped"]
AssociationType = Literal["ContributedTo", "AssociatedWith", "DerivedFrom", "Produced", "SameAs"]

# Kinds of resources an association may connect (not trials: they join through
# trial_component_trial).
ASSOCIATION_END_RESOURCES = frozenset(
    {"artifact", "action", "context", "experiment", "experiment-trial-component"}
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Tag(_Model):
    key: TagKey
    value: Annotated[str, StringConstraints(max_length=256)]


Tags = Annotated[list[Tag], Field(max_length=50)]
TagKeysToRemove = Annotated[list[TagKey], Field(max_length=50)]
"""Tags merge per key like properties; ``tags_to_remove`` removes keys (DeleteTags)."""


class MetadataProperties(_Model):
    commit_id: MetadataString | None = None
    repository: MetadataString | None = None
    generated_by: MetadataString | None = None
    project_id: MetadataString | None = None


class MetricPoint(_Model):
    """One recorded value of a metric: at a training step, at a time (either may be left
    out)."""

    value: float
    step: Annotated[int, Field(ge=0)] | None = None
    timestamp: AwareDatetime | None = None


MAX_METRIC_POINTS = 1000
"""Per-step values a metric keeps in one event (beyond them only its summary counts them)."""
MAX_POINTS_PER_EVENT = 10_000


class MetricSummary(_Model):
    """SageMaker's TrialComponentMetricSummary of a metric (``StdDev`` is the population
    standard deviation), with the per-step values it summarizes (at most
    :data:`MAX_METRIC_POINTS`; ``count`` counts every value recorded)."""

    count: Annotated[int, Field(ge=1)]
    min: float
    max: float
    avg: float
    std_dev: Annotated[float, Field(ge=0)]
    last: float
    values: Annotated[list[MetricPoint], Field(max_length=MAX_METRIC_POINTS)] = []

    @model_validator(mode="after")
    def _consistent(self) -> MetricSummary:
        # a tolerance for float rounding in the average of many values
        slack = 1e-9 * max(1.0, abs(self.min), abs(self.max))
        if not self.min <= self.max:
            raise ValueError("min is larger than max")
        for name in ("avg", "last"):
            if not self.min - slack <= getattr(self, name) <= self.max + slack:
                raise ValueError(f"{name} is outside [min, max]")
        if len(self.values) > self.count:
            raise ValueError("more values than count")
        return self


def _metric_kind(value: Any) -> str:
    return "summary" if isinstance(value, dict | MetricSummary) else "number"


# tagged, so a bad value gets one error naming the metric (not one per branch)
MetricValue = Annotated[
    Annotated[float, Branch("number")] | Annotated[MetricSummary, Branch("summary")],
    Discriminator(_metric_kind),
]
"""A metric: its final value, or its summary (what ``Recorder.job`` publishes)."""
METRIC_TAGS = frozenset({"number", "summary"})
Metrics = Annotated[dict[PropertyKey, MetricValue], Field(max_length=300)]


def _check_points(metrics: Mapping[str, MetricValue] | None) -> None:
    if (
        metrics
        and sum(len(v.values) for v in metrics.values() if isinstance(v, MetricSummary))
        > MAX_POINTS_PER_EVENT
    ):
        raise ValueError(f"metrics hold more than {MAX_POINTS_PER_EVENT} per-step values")


# --- source events ----------------------------------------------------------------------------


class DataRef(_Model):
    """A job input or output: a channel name and the URI of its data."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    uri: Uri
    artifact_type: TypeName | None = None


def _also(name: str, sagemaker: str) -> Any:
    """A field that also takes SageMaker's own key (``ExperimentName`` for
    ``experiment_name``): a job's ExperimentConfig can be passed on as SageMaker wrote it."""
    return Field(None, validation_alias=AliasChoices(name, sagemaker))


class ExperimentConfig(_Model):
    experiment_name: Name | None = _also("experiment_name", "ExperimentName")
    trial_name: Name | None = _also("trial_name", "TrialName")
    trial_component_display_name: DisplayName | None = _also(
        "trial_component_display_name", "TrialComponentDisplayName"
    )
    # SageMaker Experiments' run: recorded with the job; mlineage derives no run entity
    run_name: Name | None = _also("run_name", "RunName")

    @model_validator(mode="after")
    def _trial_needs_experiment(self) -> ExperimentConfig:
        if self.trial_name is not None and self.experiment_name is None:
            raise ValueError("trial_name needs experiment_name (a trial belongs to an experiment)")
        return self


HyperParameter = Annotated[str, StringConstraints(max_length=2500)] | int | float | bool


class JobCreatedPayload(_Model):
    job_type: JobType
    job_name: ResourceName
    job_arn: Arn | None = None
    image_uri: Uri | None = None
    inputs: Annotated[list[DataRef], Field(max_length=60)] = []
    outputs: Annotated[list[DataRef], Field(max_length=60)] = []
    model_data_uri: Uri | None = None
    checkpoint_uri: Uri | None = None
    # 297: the trial component also gets SageMaker.ImageUri/InstanceType/InstanceCount (<= 300)
    parameters: Annotated[dict[PropertyKey, HyperParameter], Field(max_length=297)] = {}
    instance_type: Annotated[str, StringConstraints(max_length=64)] | None = None
    instance_count: Annotated[int, Field(ge=1, le=10_000)] | None = None
    experiment_config: ExperimentConfig | None = None
    metadata: MetadataProperties | None = None
    tags: Tags | None = None

    @model_validator(mode="after")
    def _check(self) -> JobCreatedPayload:
        if self.job_type == "TransformJob" and self.model_data_uri is None:
            raise ValueError("model_data_uri is required for a TransformJob")
        _check_job_arn(self.job_arn, self.job_type, self.job_name)
        return self


def _check_job_arn(job_arn: str | None, job_type: str, job_name: str | None) -> None:
    if job_arn is None:
        return
    parsed = arns.parse_arn(job_arn)
    if parsed is None or parsed.resource != arns.JOB_RESOURCE[job_type]:
        raise ValueError(f"job_arn must be a {arns.JOB_RESOURCE[job_type]} ARN for a {job_type}")
    if job_name is not None and parsed.name != job_name:
        raise ValueError("job_arn and job_name name different jobs")


class JobStatusChangedPayload(_Model):
    job_type: JobType
    job_name: ResourceName | None = None
    job_arn: Arn | None = None
    status: JobStatus
    outputs: Annotated[list[DataRef], Field(max_length=60)] = []
    metrics: Metrics = {}
    failure_reason: Message | None = None
    end_time: AwareDatetime | None = None

    @model_validator(mode="after")
    def _check(self) -> JobStatusChangedPayload:
        if self.job_name is None and self.job_arn is None:
            raise ValueError("one of job_name or job_arn is required")
        _check_job_arn(self.job_arn, self.job_type, self.job_name)
        _check_points(self.metrics)
        return self


class ModelPackageCreatedPayload(_Model):
    model_package_group_name: ResourceName
    version: Annotated[int, Field(ge=1)]
    model_package_arn: Arn | None = None
    model_data_uri: Uri
    image_uri: Uri | None = None
    approval_status: Literal["Approved", "Rejected", "PendingManualApproval"] | None = None
    metadata: MetadataProperties | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelPackageCreatedPayload:
        if self.model_package_arn is not None:
            parsed = arns.parse_model_package_arn(self.model_package_arn)
            if parsed != (self.model_package_group_name, self.version):
                raise ValueError(
                    "model_package_arn must be .../model-package/{group}/{version} "
                    "for this group and version"
                )
        return self


class EndpointModel(_Model):
    model_data_uri: Uri
    image_uri: Uri | None = None
    model_package_arn: Arn | None = None


class EndpointCreatedPayload(_Model):
    endpoint_name: ResourceName
    endpoint_arn: Arn | None = None
    models: Annotated[list[EndpointModel], Field(min_length=1, max_length=10)]


# --- entities ----------------------------------------------------------------------------------

SourceIdType = Literal["MD5Hash", "S3ETag", "S3Version", "Custom"]


class ArtifactSourceType(_Model):
    source_id_type: SourceIdType
    value: Annotated[str, StringConstraints(max_length=256)]


class ArtifactSource(_Model):
    source_uri: Uri
    source_types: Annotated[list[ArtifactSourceType], Field(max_length=10)] | None = None


class ActionSource(_Model):
    """Source of an action or a context."""

    source_uri: Uri
    source_type: TypeName | None = None
    source_id: TypeName | None = None


class ArtifactEntity(_Model):
    kind: Literal["artifact"]
    artifact_arn: Arn | None = None
    artifact_name: Name | None = None
    source: ArtifactSource | None = None
    artifact_type: TypeName | None = None
    properties: ArtifactProperties | None = None
    properties_to_remove: KeysToRemove | None = None
    metadata: MetadataProperties | None = None
    tags: Tags | None = None
    tags_to_remove: TagKeysToRemove | None = None

    @model_validator(mode="after")
    def _key(self) -> ArtifactEntity:
        if self.source is None and self.artifact_arn is None:
            raise ValueError("an artifact needs source.source_uri (its key) or artifact_arn")
        _check_resource(self.artifact_arn, "artifact", "artifact_arn")
        if (
            self.artifact_arn is not None
            and self.source is not None
            and not self.artifact_arn.endswith("/" + arns.artifact_id(self.source.source_uri))
        ):
            raise ValueError(
                "artifact_arn is not the ARN of source.source_uri (an artifact's "
                "id is the md5 of its SourceUri)"
            )
        return self


class ActionEntity(_Model):
    kind: Literal["action"]
    action_name: Name
    source: ActionSource | None = None
    action_type: TypeName | None = None
    description: Description | None = None
    status: ActionStatus | None = None
    properties: Properties | None = None
    properties_to_remove: KeysToRemove | None = None
    metadata: MetadataProperties | None = None
    tags: Tags | None = None
    tags_to_remove: TagKeysToRemove | None = None


class ContextEntity(_Model):
    kind: Literal["context"]
    context_name: ContextName
    source: ActionSource | None = None
    context_type: TypeName | None = None
    description: Description | None = None
    properties: Properties | None = None
    properties_to_remove: KeysToRemove | None = None
    tags: Tags | None = None
    tags_to_remove: TagKeysToRemove | None = None


class ExperimentEntity(_Model):
    kind: Literal["experiment"]
    experiment_name: Name
    display_name: DisplayName | None = None
    description: Description | None = None
    tags: Tags | None = None
    tags_to_remove: TagKeysToRemove | None = None


class TrialEntity(_Model):
    kind: Literal["trial"]
    trial_name: Name
    experiment_name: Name | None = None
    display_name: DisplayName | None = None
    metadata: MetadataProperties | None = None
    tags: Tags | None = None
    tags_to_remove: TagKeysToRemove | None = None


class TrialComponentStatus(_Model):
    primary_status: JobStatus
    message: Message | None = None


class ParameterValue(_Model):
    string_value: Annotated[str, StringConstraints(max_length=2500)] | None = None
    number_value: float | None = None

    @model_validator(mode="after")
    def _one(self) -> ParameterValue:
        if (self.string_value is None) == (self.number_value is None):
            raise ValueError("a parameter has exactly one of string_value or number_value")
        return self


class ArtifactValue(_Model):
    value: Uri
    media_type: Annotated[str, StringConstraints(max_length=64)] | None = None


class TrialComponentSource(_Model):
    source_arn: Arn
    source_type: TypeName | None = None


ArtifactMap = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], ArtifactValue],
    Field(max_length=60),
]


class TrialComponentEntity(_Model):
    kind: Literal["trial_component"]
    trial_component_name: Name
    display_name: DisplayName | None = None
    status: TrialComponentStatus | None = None
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None
    source: TrialComponentSource | None = None
    parameters: Annotated[dict[PropertyKey, ParameterValue], Field(max_length=300)] | None = None
    parameters_to_remove: Annotated[list[PropertyKey], Field(max_length=300)] | None = None
    input_artifacts: ArtifactMap | None = None
    output_artifacts: ArtifactMap | None = None
    metrics: Metrics | None = None
    metadata: MetadataProperties | None = None
    tags: Tags | None = None
    tags_to_remove: TagKeysToRemove | None = None

    @model_validator(mode="after")
    def _points(self) -> TrialComponentEntity:
        _check_points(self.metrics)
        return self


class AssociationEntity(_Model):
    kind: Literal["association"]
    source_arn: Arn
    destination_arn: Arn
    association_type: AssociationType | None = None

    @model_validator(mode="after")
    def _ends(self) -> AssociationEntity:
        _check_association_ends(self.source_arn, self.destination_arn)
        return self


class TrialComponentTrialEntity(_Model):
    """A trial component joining a trial (SageMaker's AssociateTrialComponent)."""

    kind: Literal["trial_component_trial"]
    trial_component_name: Name
    trial_name: Name


class LineageShareEntity(_Model):
    """An owner account sharing its default lineage group with a grantee."""

    kind: Literal["lineage_share"]
    owner_account: AccountId
    grantee_account: AccountId

    @model_validator(mode="after")
    def _distinct(self) -> LineageShareEntity:
        if self.owner_account == self.grantee_account:
            raise ValueError("an account cannot share its lineage group with itself")
        return self


Entity = Annotated[
    ArtifactEntity
    | ActionEntity
    | ContextEntity
    | ExperimentEntity
    | TrialEntity
    | TrialComponentEntity
    | AssociationEntity
    | TrialComponentTrialEntity
    | LineageShareEntity,
    Field(discriminator="kind"),
]


def _check_resource(value: str | None, resource: str, field: str) -> None:
    if value is None:
        return
    parsed = arns.parse_arn(value)
    if parsed is None or parsed.resource != resource:
        raise ValueError(f"{field} must be a SageMaker {resource} ARN")


def _check_association_ends(source_arn: str, destination_arn: str) -> None:
    for field, value in (("source_arn", source_arn), ("destination_arn", destination_arn)):
        parsed = arns.parse_arn(value)
        if parsed is None:
            raise ValueError(f"{field} is not a SageMaker ARN")
        if parsed.resource == "experiment-trial":
            raise ValueError(
                f"{field} is a trial: associations cannot end at a trial; join a trial "
                "component to a trial with a trial_component_trial entity instead"
            )
        if parsed.resource not in ASSOCIATION_END_RESOURCES:
            raise ValueError(
                f"{field} must be an artifact, action, context, experiment or trial component "
                f"ARN, not {parsed.resource}"
            )


# --- deletes: the kind and the entity's key ---------------------------------------------------


class ArtifactKey(_Model):
    kind: Literal["artifact"]
    artifact_arn: Arn | None = None
    source_uri: Uri | None = None

    @model_validator(mode="after")
    def _key(self) -> ArtifactKey:
        if (self.artifact_arn is None) == (self.source_uri is None):
            raise ValueError("an artifact is deleted by exactly one of artifact_arn or source_uri")
        _check_resource(self.artifact_arn, "artifact", "artifact_arn")
        return self


class ActionKey(_Model):
    kind: Literal["action"]
    action_name: Name


class ContextKey(_Model):
    kind: Literal["context"]
    context_name: ContextName


class ExperimentKey(_Model):
    kind: Literal["experiment"]
    experiment_name: Name


class TrialKey(_Model):
    kind: Literal["trial"]
    trial_name: Name


class TrialComponentKey(_Model):
    kind: Literal["trial_component"]
    trial_component_name: Name


class AssociationKey(_Model):
    kind: Literal["association"]
    source_arn: Arn
    destination_arn: Arn


class TrialComponentTrialKey(_Model):
    kind: Literal["trial_component_trial"]
    trial_component_name: Name
    trial_name: Name


class LineageShareKey(_Model):
    kind: Literal["lineage_share"]
    owner_account: AccountId
    grantee_account: AccountId


EntityKey = Annotated[
    ArtifactKey
    | ActionKey
    | ContextKey
    | ExperimentKey
    | TrialKey
    | TrialComponentKey
    | AssociationKey
    | TrialComponentTrialKey
    | LineageShareKey,
    Field(discriminator="kind"),
]


class EntityUpsertedPayload(_Model):
    entity: Entity


# --- envelope and events -----------------------------------------------------------------------


class Envelope(_Model):
    event_id: UUID
    schema_version: Literal[1] = 1
    occurred_at: AwareDatetime
    account_id: AccountId
    region: Region
    producer: Annotated[str, StringConstraints(max_length=256)] | None = None
    caused_by: UUID | None = None


class JobCreated(Envelope):
    """A training, processing or transform job was created."""

    event_type: Literal["JobCreated"] = "JobCreated"
    payload: JobCreatedPayload


class JobStatusChanged(Envelope):
    """A job moved to a new status (on completion: its final outputs and metrics)."""

    event_type: Literal["JobStatusChanged"] = "JobStatusChanged"
    payload: JobStatusChangedPayload


class ModelPackageCreated(Envelope):
    """A model package version was registered in a model package group."""

    event_type: Literal["ModelPackageCreated"] = "ModelPackageCreated"
    payload: ModelPackageCreatedPayload


class EndpointCreated(Envelope):
    """An endpoint was created serving one or more models."""

    event_type: Literal["EndpointCreated"] = "EndpointCreated"
    payload: EndpointCreatedPayload


class OpenLineageEventReceivedPayload(_Model):
    event: OpenLineageEvent


class OpenLineageEventReceived(Envelope):
    """An OpenLineage event (a run, job or dataset event of spec 2.x) arrived, kept as it
    came; the tracker derives a trial component, a job context and dataset artifacts from it
    (docs/openlineage.md). Its ``occurred_at`` is the event's ``eventTime``."""

    event_type: Literal["OpenLineageEventReceived"] = "OpenLineageEventReceived"
    payload: OpenLineageEventReceivedPayload

    @model_validator(mode="after")
    def _at_event_time(self) -> OpenLineageEventReceived:
        ol = self.payload.event
        if self.occurred_at != occurred_at(ol.event_time, getattr(ol, "eventType", None)):
            raise ValueError(
                "occurred_at must be the OpenLineage event's eventTime (plus 1 µs for RUNNING "
                "and OTHER, 2 for COMPLETE, FAIL and ABORT: docs/openlineage.md)"
            )
        return self


class EntityUpserted(Envelope):
    """An entity was created or some of its fields were set (only the fields it carries)."""

    event_type: Literal["EntityUpserted"] = "EntityUpserted"
    payload: EntityUpsertedPayload

    @model_validator(mode="after")
    def _in_own_account(self) -> EntityUpserted:
        _check_owned(self.payload.entity, self.account_id, self.region)
        return self


class EntityDeleted(Envelope):
    """An entity was deleted (a tombstone, kept forever)."""

    event_type: Literal["EntityDeleted"] = "EntityDeleted"
    payload: EntityKey

    @model_validator(mode="after")
    def _in_own_account(self) -> EntityDeleted:
        _check_owned(self.payload, self.account_id, self.region)
        return self


def _check_owned(entity: Any, account_id: str, region: str) -> None:
    """Entities addressed by ARN, and shares, belong to the account that publishes them."""
    if entity.kind == "artifact" and entity.artifact_arn is not None:
        parsed = arns.parse_arn(entity.artifact_arn)
        if parsed is not None and (parsed.account, parsed.region) != (account_id, region):
            raise ValueError(
                "artifact_arn names another account or region than the event's account_id/region"
            )
    if entity.kind == "lineage_share" and entity.owner_account != account_id:
        raise ValueError("a lineage share must be published by its owner_account")


SourceEvent = (
    JobCreated | JobStatusChanged | ModelPackageCreated | EndpointCreated | OpenLineageEventReceived
)
EntityEvent = EntityUpserted | EntityDeleted
AnyEvent = SourceEvent | EntityEvent

Event = Annotated[
    JobCreated
    | JobStatusChanged
    | ModelPackageCreated
    | EndpointCreated
    | OpenLineageEventReceived
    | EntityUpserted
    | EntityDeleted,
    Field(discriminator="event_type"),
]

EVENT_TYPES: dict[str, type[Envelope]] = {
    "JobCreated": JobCreated,
    "JobStatusChanged": JobStatusChanged,
    "ModelPackageCreated": ModelPackageCreated,
    "EndpointCreated": EndpointCreated,
    "OpenLineageEventReceived": OpenLineageEventReceived,
    "EntityUpserted": EntityUpserted,
    "EntityDeleted": EntityDeleted,
}
SOURCE_EVENT_TYPES = frozenset(
    {"JobCreated", "JobStatusChanged", "ModelPackageCreated", "EndpointCreated"}
)
ENTITY_EVENT_TYPES = frozenset({"EntityUpserted", "EntityDeleted"})
OPENLINEAGE_EVENT_TYPES = frozenset({"OpenLineageEventReceived"})
"""Source events of their own topic (``mlineage.openlineage.v1``), not of the jobs topic."""

EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)
EVENT_LIST_ADAPTER: TypeAdapter[list[AnyEvent]] = TypeAdapter(list[Event])


@functools.lru_cache(maxsize=65536)
def canonical_time(value: datetime) -> str:
    """A fixed-width UTC form: sorts as text in time order (the merge order uses it).
    Cached: the events derived from one source share its timestamp."""
    utc = value.astimezone(UTC)
    # %Y does not pad years before 1000 on every libc: the width is spelled out
    return f"{utc.year:04d}{utc.strftime('-%m-%dT%H:%M:%S.%fZ')}"
