"""ARN building and parsing, and deterministic ids: the one place identity is decided.

Changing anything here changes identities already in logs: it is a breaking change.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

# Fixed namespace for derived event ids: uuid5(MLINEAGE_NAMESPACE, "{source}|{rule}|{key}").
MLINEAGE_NAMESPACE = uuid.UUID("6f1b3c2e-8a4d-5e7f-9b0c-1d2e3f4a5b6c")

ACCOUNT_PATTERN = r"^\d{12}$"
"""An AWS account id: 12 digits (portable: also the JSON Schemas' pattern)."""
_ACCOUNT_RE = re.compile(ACCOUNT_PATTERN)


def is_account(value: object) -> bool:
    """Whether ``value`` is an account id (the whole string: no trailing newline)."""
    return isinstance(value, str) and _ACCOUNT_RE.fullmatch(value) is not None


# region, account, resource type, resource name
_ARN_PARTS = (r"[a-z0-9\-]+", ACCOUNT_PATTERN[1:-1], r"[a-z\-]+", r"[A-Za-z0-9_./:\-]+")
# Portable (ECMA-262 compatible) pattern, used in the JSON Schemas ...
ARN_PATTERN = r"^arn:aws[a-z\-]*:sagemaker:{}:{}:{}/{}$".format(*_ARN_PARTS)
# ... and the same with named groups, for parsing.
ARN_RE = re.compile(
    r"^arn:aws[a-z\-]*:sagemaker:(?P<region>{}):(?P<account>{}):(?P<resource>{})/"
    r"(?P<name>{})$".format(*_ARN_PARTS)
)

JOB_RESOURCE = {
    "TrainingJob": "training-job",
    "ProcessingJob": "processing-job",
    "TransformJob": "transform-job",
}
JOB_TC_SUFFIX = {
    "TrainingJob": "aws-training-job",
    "ProcessingJob": "aws-processing-job",
    "TransformJob": "aws-transform-job",
}
ENTITY_RESOURCE = {
    "artifact": "artifact",
    "action": "action",
    "context": "context",
    "experiment": "experiment",
    "trial": "experiment-trial",
    "trial_component": "experiment-trial-component",
}
LINEAGE_GROUP_NAME = "sagemaker-default-lineage-group"


@dataclass(frozen=True)
class ParsedArn:
    region: str
    account: str
    resource: str
    name: str


@functools.lru_cache(maxsize=65536)
def parse_arn(arn: str) -> ParsedArn | None:
    """Split a SageMaker ARN, or return None when it is not one. Cached: validating an
    association parses both ends, and shared ends (an image, a dataset) recur in every job."""
    match = ARN_RE.match(arn)
    if match is None:
        return None
    return ParsedArn(match["region"], match["account"], match["resource"], match["name"])


def arn(region: str, account: str, resource: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:{resource}/{name}"


def artifact_id(source_uri: str) -> str:
    """The same data has the same artifact id in every account."""
    return hashlib.md5(source_uri.encode("utf-8"), usedforsecurity=False).hexdigest()


def artifact_arn(region: str, account: str, source_uri: str) -> str:
    return arn(region, account, "artifact", artifact_id(source_uri))


def trial_component_arn(region: str, account: str, name: str) -> str:
    """Trial component names are case-insensitive: the ARN uses the lower-cased name."""
    return arn(region, account, "experiment-trial-component", name.lower())


def named_arn(kind: str, region: str, account: str, name: str) -> str:
    """ARN of an entity keyed by name (action, context, experiment, trial, trial component)."""
    if kind == "trial_component":
        return trial_component_arn(region, account, name)
    return arn(region, account, ENTITY_RESOURCE[kind], name)


def job_arn(region: str, account: str, job_type: str, job_name: str) -> str:
    return arn(region, account, JOB_RESOURCE[job_type], job_name)


def job_name_from_arn(value: str) -> str:
    return value.rsplit("/", 1)[-1]


def job_identity(
    region: str, account: str, job_type: str, job_name: str | None, job_arn: str | None
) -> tuple[str, str]:
    """The name and ARN of a job an event names by name, by ARN or by both (the event
    models check that both name the same job)."""
    name = job_name or job_name_from_arn(job_arn or "")
    return name, job_arn or arn(region, account, JOB_RESOURCE[job_type], name)


def job_trial_component_name(job_type: str, job_name: str) -> str:
    return f"{job_name}-{JOB_TC_SUFFIX[job_type]}"


def model_package_group_arn(region: str, account: str, group: str) -> str:
    return arn(region, account, "model-package-group", group)


def model_package_arn(region: str, account: str, group: str, version: int) -> str:
    return arn(region, account, "model-package", f"{group}/{version}")


def parse_model_package_arn(value: str) -> tuple[str, int] | None:
    """(group, version) of a model package ARN, or None."""
    parsed = parse_arn(value)
    if parsed is None or parsed.resource != "model-package" or "/" not in parsed.name:
        return None
    group, _, version = parsed.name.rpartition("/")
    if not version.isdigit():
        return None
    return group, int(version)


def model_group_context_name(group: str) -> str:
    return f"{group}-aws-model-package-group"


def approval_action_name(group: str, version: int) -> str:
    return f"{group}-{version}-aws-model-package"


def endpoint_arn(region: str, account: str, endpoint: str) -> str:
    return arn(region, account, "endpoint", endpoint)


def endpoint_context_name(endpoint: str) -> str:
    return f"{endpoint}-aws-endpoint"


def deployment_action_name(endpoint: str) -> str:
    return f"{endpoint}-aws-model-deployment"


def lineage_group_arn(region: str, account: str, name: str = LINEAGE_GROUP_NAME) -> str:
    return arn(region, account, "lineage-group", name)


def derived_event_id(source_event_id: str, rule: str, entity_key: str) -> str:
    return str(uuid.uuid5(MLINEAGE_NAMESPACE, f"{source_event_id}|{rule}|{entity_key}"))


def openlineage_event_id(account: str, region: str, canonical_event: str) -> str:
    """The event id of an OpenLineage event received for ``account``: from its content, so a
    client's retry (or a backfill of the same file) is the same event and applies once."""
    return str(uuid.uuid5(MLINEAGE_NAMESPACE, f"openlineage|{account}|{region}|{canonical_event}"))


def _slug(text: str, limit: int) -> str:
    """Letters and digits of ``text`` joined by single dashes, at most ``limit`` long."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:limit].strip("-")
    return slug or "x"


def openlineage_run_name(namespace: str, job: str, run_id: str) -> str:
    """The trial component of an OpenLineage run: readable (the job's namespace and name) and
    unique (the run id, and a hash of all three, as a run id is only unique in practice),
    within SageMaker's 120 characters and name pattern."""
    run_id = run_id.lower()  # a UUID in any case is the same run
    digest = hashlib.md5(f"{namespace}|{job}|{run_id}".encode(), usedforsecurity=False)
    return f"{_slug(namespace, 24)}-{_slug(job, 50)}-{run_id}-{digest.hexdigest()[:6]}"


def openlineage_job_context_name(namespace: str, job: str) -> str:
    """The context of an OpenLineage job (namespace and name, and a hash of both)."""
    digest = hashlib.md5(f"{namespace}|{job}".encode(), usedforsecurity=False)
    return f"{_slug(namespace, 30)}-{_slug(job, 70)}-{digest.hexdigest()[:12]}"


def association_key(source_arn: str, destination_arn: str) -> str:
    """Key of an association row: ARNs never contain spaces."""
    return f"{source_arn} {destination_arn}"


def pair_key(first: str, second: str) -> str:
    return f"{first} {second}"


def entity_key(entity: Any, account: str, region: str) -> str:
    """The key of an entity (or of a delete's payload) in the projection."""
    kind = entity.kind
    if kind == "artifact":
        if getattr(entity, "artifact_arn", None) is not None:
            return str(entity.artifact_arn)
        uri = entity.source.source_uri if hasattr(entity, "source") else entity.source_uri
        return artifact_arn(region, account, uri)
    if kind == "association":
        return association_key(entity.source_arn, entity.destination_arn)
    if kind == "trial_component_trial":
        return pair_key(
            trial_component_arn(region, account, entity.trial_component_name),
            named_arn("trial", region, account, entity.trial_name),
        )
    if kind == "lineage_share":
        return pair_key(entity.owner_account, entity.grantee_account)
    return named_arn(kind, region, account, getattr(entity, f"{kind}_name"))
