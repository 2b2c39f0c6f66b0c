"""The SageMaker lineage operations, on a :class:`~mlineage.server.backend.Backend`.

Each handler takes the caller and the parsed request (PascalCase, as the wire has it) and
returns the response body. Errors are :class:`ApiError` with AWS's codes:
``ResourceNotFound`` (the entity does not exist, or the caller may not see it),
``ValidationException`` (bad input, "already exists"), ``ResourceLimitExceeded`` (a limit of
the schema, such as 30 properties, that the request would cross).

Decisions where SageMaker's behaviour is not documented (docs/serve.md lists them):
- Create* of an entity that exists (the same name, or for artifacts the same source URI in
  the caller's account) is a ``ValidationException`` that says it already exists, like a
  duplicate association.
- Update* and Delete* act on the caller's own entities only; another account's entity,
  shared or not, is ``ResourceNotFound`` to them.
- Deleting an entity leaves its associations; they disappear from lineage while an end is
  deleted (the SDK's ``delete(disassociate=True)`` removes them first, as on SageMaker).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlineage import arns
from mlineage.errors import EventValidationError, NotFoundError
from mlineage.events.models import canonical_time
from mlineage.query import search
from mlineage.query.errors import QueryError
from mlineage.query.lineage import LineageFilter
from mlineage.query.store import LineageStore
from mlineage.server.backend import Backend, WriteTx

QUERY_MAX_DEPTH = 10
_EXTENDED_MAX_DEPTH = 100


class ApiError(Exception):
    """An error the way AWS shapes it: ``{"__type": code, "message": ...}`` and a status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def not_found(message: str) -> ApiError:
    return ApiError("ResourceNotFound", message)


def invalid(message: str) -> ApiError:
    return ApiError("ValidationException", message)


@dataclass(frozen=True)
class Caller:
    """Who is asking: ``account`` owns what it writes; ``view`` is what it may read (None:
    everything, the operator without authentication)."""

    account: str
    view: str | None
    extended_limits: bool = False


Handler = Callable[[Backend, Caller, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        OPERATIONS[name] = fn
        return fn

    return register


# -- request -> entity -------------------------------------------------------------------------

_MAP_MEMBERS = {"Properties", "Parameters", "InputArtifacts", "OutputArtifacts"}
_RENAMED = {"metadata_properties": "metadata"}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def entity(kind: str, body: Mapping[str, Any], *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The request's members as an entity of ``kind`` (snake_case, as the event models
    name them); the keys of map members (properties, parameters) stay as given."""
    out: dict[str, Any] = {"kind": kind}
    for key, value in body.items():
        if key in skip:
            continue
        name = _snake(key)
        out[_RENAMED.get(name, name)] = (
            {k: _convert(v) for k, v in value.items()} if key in _MAP_MEMBERS else _convert(value)
        )
    return out


def _convert(value: Any) -> Any:
    if isinstance(value, datetime):
        return canonical_time(value)
    if isinstance(value, dict):
        return {_snake(k): _convert(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_convert(v) for v in value]
    return value


def _publish(
    tx: WriteTx, caller: Caller, drafts: list[dict[str, Any]], effects: dict[str, str | None]
) -> None:
    """Stage ``drafts`` in this write; ``effects``: key -> owner afterwards (None: deleted)."""
    try:
        tx.publish(caller.account, drafts, effects)
    except EventValidationError as exc:
        if exc.count_limit:
            raise ApiError("ResourceLimitExceeded", str(exc)) from exc
        raise invalid(str(exc)) from exc


def _write(backend: Backend, fn: Callable[[WriteTx], dict[str, Any]]) -> dict[str, Any]:
    """Run a write in the next batch (see :meth:`Backend.write`)."""
    return backend.write(fn)


def upsert(entity_: dict[str, Any]) -> dict[str, Any]:
    return {"event_type": "EntityUpserted", "payload": {"entity": entity_}}


def delete(key: dict[str, Any]) -> dict[str, Any]:
    return {"event_type": "EntityDeleted", "payload": key}


# -- reads -----------------------------------------------------------------------------------


def _read(
    backend: Backend, caller: Caller, fn: Callable[[LineageStore, list[str] | None], Any]
) -> Any:
    try:
        return backend.read(caller.view, fn)
    except NotFoundError as exc:
        raise not_found(str(exc)) from exc
    except QueryError as exc:
        raise invalid(str(exc)) from exc


def _describe(backend: Backend, caller: Caller, key: str, kind: str) -> dict[str, Any]:
    result: dict[str, Any] = _read(
        backend, caller, lambda s, v: s.describe(key, kind, visible_accounts=v)
    )
    return result


_LIST_ARGS = {
    "SourceUri",
    "ArtifactType",
    "ActionType",
    "ContextType",
    "ExperimentName",
    "TrialName",
    "TrialComponentName",
    "SourceArn",
    "DestinationArn",
    "SourceType",
    "DestinationType",
    "AssociationType",
    "CreatedAfter",
    "CreatedBefore",
    "SortBy",
    "SortOrder",
    "MaxResults",
    "NextToken",
}


def _list(backend: Backend, caller: Caller, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    kwargs = {_snake(k): v for k, v in body.items() if k in _LIST_ARGS}
    result: dict[str, Any] = _read(
        backend, caller, lambda s, v: s.list_entities(kind, visible_accounts=v, **kwargs)
    )
    return result


def _named_arn(backend: Backend, caller: Caller, kind: str, name: str) -> str:
    return arns.named_arn(kind, backend.settings.region, caller.account, name)


def _account_of(arn: str) -> str | None:
    parsed = arns.parse_arn(arn)
    return None if parsed is None else parsed.account


def _own_live(tx: WriteTx, caller: Caller, key: str, label: str) -> None:
    if tx.owner(key) != caller.account:
        raise not_found(f"{label} does not exist")


def _visible(tx: WriteTx, backend: Backend, caller: Caller, arn: str) -> bool:
    def probe(store: LineageStore, visible: list[str] | None) -> bool:
        rows = store.con.execute(
            "SELECT 1 FROM lineage_vertices WHERE arn = ? "
            "AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], account_id))",
            [arn, visible, visible],
        ).fetchall()
        return bool(rows)

    return tx.visible(caller.view, arn, lambda _: bool(_read(backend, caller, probe)))


# -- named entities: action, context, experiment, trial, trial component ------------------------

_NAMED = {
    "Action": ("action", "ActionName", "ActionArn"),
    "Context": ("context", "ContextName", "ContextArn"),
    "Experiment": ("experiment", "ExperimentName", "ExperimentArn"),
    "Trial": ("trial", "TrialName", "TrialArn"),
    "TrialComponent": ("trial_component", "TrialComponentName", "TrialComponentArn"),
}


def _label(kind: str) -> str:
    return kind.replace("_", " ").capitalize()


def _create_named(label: str) -> Handler:
    kind, name_member, arn_member = _NAMED[label]

    def create(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        arn = _named_arn(backend, caller, kind, body[name_member])

        def write(tx: WriteTx) -> dict[str, Any]:
            if tx.live(arn):
                raise invalid(f"{_label(kind)} {arn} already exists")
            if kind == "trial":
                parent = _named_arn(backend, caller, "experiment", body["ExperimentName"])
                _own_live(tx, caller, parent, f"Experiment {body['ExperimentName']}")
            _publish(tx, caller, [upsert(entity(kind, body))], {arn: caller.account})
            return {arn_member: arn}

        return _write(backend, write)

    return create


_UNSUPPORTED_UPDATES = {"InputArtifactsToRemove", "OutputArtifactsToRemove"}


def _update_named(label: str) -> Handler:
    kind, name_member, arn_member = _NAMED[label]

    def update(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        unsupported = _UNSUPPORTED_UPDATES & set(body)
        if unsupported:
            raise invalid(
                f"{', '.join(sorted(unsupported))}: not supported by mlineage "
                "(set the artifacts again instead)"
            )
        arn = _named_arn(backend, caller, kind, body[name_member])

        def write(tx: WriteTx) -> dict[str, Any]:
            _own_live(tx, caller, arn, f"{_label(kind)} {arn}")
            _publish(tx, caller, [upsert(entity(kind, body))], {arn: caller.account})
            return {arn_member: arn}

        return _write(backend, write)

    return update


def _delete_named(label: str) -> Handler:
    kind, name_member, arn_member = _NAMED[label]

    def delete_(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        arn = _named_arn(backend, caller, kind, body[name_member])

        def write(tx: WriteTx) -> dict[str, Any]:
            _own_live(tx, caller, arn, f"{_label(kind)} {arn}")
            _publish(
                tx, caller, [delete({"kind": kind, f"{kind}_name": body[name_member]})], {arn: None}
            )
            return {arn_member: arn}

        return _write(backend, write)

    return delete_


def _describe_named(label: str) -> Handler:
    kind, name_member, _ = _NAMED[label]

    def describe(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        # a name means the caller's own entity first (as Update and Delete take it); only
        # when it has none, a shared entity of that name, where the name is unique
        name = body[name_member]
        try:
            return _describe(backend, caller, _named_arn(backend, caller, kind, name), kind)
        except ApiError as exc:
            if exc.code not in {"ResourceNotFound", "ValidationException"}:
                raise
        return _describe(backend, caller, name, kind)

    return describe


def _list_named(label: str) -> Handler:
    kind = _NAMED[label][0]

    def list_(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return _list(backend, caller, kind, body)

    return list_


for _label_name in _NAMED:
    OPERATIONS[f"Create{_label_name}"] = _create_named(_label_name)
    OPERATIONS[f"Update{_label_name}"] = _update_named(_label_name)
    OPERATIONS[f"Delete{_label_name}"] = _delete_named(_label_name)
    OPERATIONS[f"Describe{_label_name}"] = _describe_named(_label_name)
    OPERATIONS[f"List{_label_name}s"] = _list_named(_label_name)


# -- artifacts ---------------------------------------------------------------------------------


@operation("CreateArtifact")
def create_artifact(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    arn = arns.artifact_arn(backend.settings.region, caller.account, body["Source"]["SourceUri"])

    def write(tx: WriteTx) -> dict[str, Any]:
        if tx.live(arn):
            raise invalid(f"Artifact {arn} already exists (an artifact per source URI)")
        _publish(tx, caller, [upsert(entity("artifact", body))], {arn: caller.account})
        return {"ArtifactArn": arn}

    return _write(backend, write)


@operation("DescribeArtifact")
def describe_artifact(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return _describe(backend, caller, body["ArtifactArn"], "artifact")


@operation("UpdateArtifact")
def update_artifact(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    arn = body["ArtifactArn"]

    def write(tx: WriteTx) -> dict[str, Any]:
        _own_live(tx, caller, arn, f"Artifact {arn}")
        _publish(tx, caller, [upsert(entity("artifact", body))], {arn: caller.account})
        return {"ArtifactArn": arn}

    return _write(backend, write)


@operation("DeleteArtifact")
def delete_artifact(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    if "ArtifactArn" in body:
        arn = body["ArtifactArn"]
    elif "Source" in body:
        arn = arns.artifact_arn(
            backend.settings.region, caller.account, body["Source"]["SourceUri"]
        )
    else:
        raise invalid("Either ArtifactArn or Source must be specified")

    def write(tx: WriteTx) -> dict[str, Any]:
        _own_live(tx, caller, arn, f"Artifact {arn}")
        _publish(tx, caller, [delete({"kind": "artifact", "artifact_arn": arn})], {arn: None})
        return {"ArtifactArn": arn}

    return _write(backend, write)


@operation("ListArtifacts")
def list_artifacts(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return _list(backend, caller, "artifact", body)


# -- associations ------------------------------------------------------------------------------


@operation("AddAssociation")
def add_association(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    source, destination = body["SourceArn"], body["DestinationArn"]
    key = arns.association_key(source, destination)

    def write(tx: WriteTx) -> dict[str, Any]:
        for end in (source, destination):
            if not _visible(tx, backend, caller, end):
                raise not_found(f"{end} does not exist")
        if caller.account not in {_account_of(source), _account_of(destination)}:
            # a share makes another account's lineage readable, never writable
            raise ApiError(
                "AccessDeniedException",
                f"{caller.account} may not associate two "
                "entities of another account: an association needs at least one "
                "end of your own",
            )
        if tx.live(key):
            raise invalid(f"The association between {source} and {destination} already exists")
        _publish(tx, caller, [upsert(entity("association", body))], {key: caller.account})
        return {"SourceArn": source, "DestinationArn": destination}

    return _write(backend, write)


@operation("DeleteAssociation")
def delete_association(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    source, destination = body["SourceArn"], body["DestinationArn"]
    key = arns.association_key(source, destination)

    def write(tx: WriteTx) -> dict[str, Any]:
        _own_live(tx, caller, key, f"The association between {source} and {destination}")
        _publish(
            tx,
            caller,
            [delete({"kind": "association", "source_arn": source, "destination_arn": destination})],
            {key: None},
        )
        return {"SourceArn": source, "DestinationArn": destination}

    return _write(backend, write)


@operation("ListAssociations")
def list_associations(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return _list(backend, caller, "association", body)


@operation("AssociateTrialComponent")
def associate_trial_component(
    backend: Backend, caller: Caller, body: dict[str, Any]
) -> dict[str, Any]:
    tc = _named_arn(backend, caller, "trial_component", body["TrialComponentName"])
    trial = _named_arn(backend, caller, "trial", body["TrialName"])

    def write(tx: WriteTx) -> dict[str, Any]:
        _own_live(tx, caller, tc, f"Trial component {tc}")
        _own_live(tx, caller, trial, f"Trial {trial}")
        _publish(
            tx,
            caller,
            [upsert(entity("trial_component_trial", body))],
            {arns.pair_key(tc, trial): caller.account},
        )
        return {"TrialComponentArn": tc, "TrialArn": trial}

    return _write(backend, write)


@operation("DisassociateTrialComponent")
def disassociate_trial_component(
    backend: Backend, caller: Caller, body: dict[str, Any]
) -> dict[str, Any]:
    tc = _named_arn(backend, caller, "trial_component", body["TrialComponentName"])
    trial = _named_arn(backend, caller, "trial", body["TrialName"])
    key = arns.pair_key(tc, trial)

    def write(tx: WriteTx) -> dict[str, Any]:
        _own_live(tx, caller, key, f"The association of {tc} with {trial}")
        _publish(
            tx,
            caller,
            [
                delete(
                    {
                        "kind": "trial_component_trial",
                        "trial_component_name": body["TrialComponentName"],
                        "trial_name": body["TrialName"],
                    }
                )
            ],
            {key: None},
        )
        return {"TrialComponentArn": tc, "TrialArn": trial}

    return _write(backend, write)


# -- QueryLineage and lineage groups -----------------------------------------------------------


@operation("QueryLineage")
def query_lineage(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    f = body.get("Filters") or {}
    filters = LineageFilter(
        types=f.get("Types"),
        lineage_types=f.get("LineageTypes"),
        created_before=f.get("CreatedBefore"),
        created_after=f.get("CreatedAfter"),
        modified_before=f.get("ModifiedBefore"),
        modified_after=f.get("ModifiedAfter"),
        properties=f.get("Properties"),
    )
    cap = _EXTENDED_MAX_DEPTH if caller.extended_limits else QUERY_MAX_DEPTH
    depth = body.get("MaxDepth", QUERY_MAX_DEPTH)
    if depth > cap:
        raise invalid(
            f"Value '{depth}' at 'maxDepth' failed to satisfy constraint: Member "
            f"must have value less than or equal to {cap}"
        )
    starts = body.get("StartArns") or []
    if not starts:
        raise invalid("StartArns must name at least one ARN")
    try:
        result = backend.read(
            caller.view,
            lambda s, visible: s.query_lineage(
                starts,
                direction=body.get("Direction", "Both"),
                include_edges=body.get("IncludeEdges", True),
                filters=filters,
                max_depth=depth,
                max_results=body.get("MaxResults"),
                next_token=body.get("NextToken"),
                visible_accounts=visible,
            ),
        )
    except QueryError as exc:
        raise invalid(str(exc)) from exc
    out: dict[str, Any] = result.to_dict()
    out.pop("TruncatedByDepth", None)  # not in SageMaker's response
    return out


@operation("ListLineageGroups")
def list_lineage_groups(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return _list(backend, caller, "lineage_group", body)


def _group_arn(backend: Backend, caller: Caller, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return arns.lineage_group_arn(backend.settings.region, caller.account, name)


@operation("DescribeLineageGroup")
def describe_lineage_group(
    backend: Backend, caller: Caller, body: dict[str, Any]
) -> dict[str, Any]:
    return _describe(
        backend, caller, _group_arn(backend, caller, body["LineageGroupName"]), "lineage_group"
    )


@operation("GetLineageGroupPolicy")
def get_lineage_group_policy(
    backend: Backend, caller: Caller, body: dict[str, Any]
) -> dict[str, Any]:
    arn = _group_arn(backend, caller, body["LineageGroupName"])
    _describe(backend, caller, arn, "lineage_group")  # ResourceNotFound when it is not
    owner = arn.split(":")[4]
    if caller.view is not None and owner != caller.account:
        # a grantee may use the group, not read whom else its owner shares with
        raise not_found(f"{arn}: only its owner may read its policy")

    def grantees(store: LineageStore, _visible: list[str] | None) -> list[str]:
        rows = store.con.execute(
            "SELECT DISTINCT s.grantee_account FROM lineage_shares s WHERE s.live "
            "AND s.owner_account = ? ORDER BY 1",
            [owner],
        ).fetchall()
        return [str(r[0]) for r in rows]

    accounts = _read(backend, Caller(caller.account, None), grantees)
    statements = (
        [
            {
                "Sid": "mlineage-share",
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
                "Action": [
                    "sagemaker:DescribeArtifact",
                    "sagemaker:DescribeAction",
                    "sagemaker:DescribeContext",
                    "sagemaker:DescribeTrialComponent",
                    "sagemaker:QueryLineage",
                ],
                "Resource": [arn],
            }
        ]
        if accounts
        else []
    )
    policy = {"Version": "2012-10-17", "Statement": statements}
    return {"LineageGroupArn": arn, "ResourcePolicy": json.dumps(policy)}


# -- tags and Search -----------------------------------------------------------------------------

TAG_LIMIT = 50
"""Tags one resource may have (SageMaker's limit)."""


def _tag_target(arn: str) -> tuple[str, str]:
    """(kind, projection key) of the entity whose tags AddTags / DeleteTags change."""
    kind = search.tagged_kind(arn)
    if kind == "job":
        raise invalid(
            f"{arn}: a job's tags are those of its JobCreated event; publish them with the job"
        )
    if kind is None:
        raise not_found(
            f"{arn} does not exist: mlineage tags artifacts, actions, contexts, experiments, "
            "trials and trial components"
        )
    return kind, arn.lower() if kind == "trial_component" else arn


def _tag_upsert(tx: WriteTx, kind: str, key: str, changes: dict[str, Any]) -> dict[str, Any]:
    if kind == "artifact":
        ident: dict[str, Any] = {"artifact_arn": key}
    else:
        name = tx.name(kind, key)
        parsed = arns.parse_arn(key)
        ident = {f"{kind}_name": name if name is not None else parsed and parsed.name}
    return upsert({"kind": kind, **ident, **changes})


@operation("AddTags")
def add_tags(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    arn = body["ResourceArn"]
    kind, key = _tag_target(arn)
    tags = {t["Key"]: t["Value"] for t in body.get("Tags") or []}  # a key given twice: the last

    def write(tx: WriteTx) -> dict[str, Any]:
        _own_live(tx, caller, key, arn)
        count = len(tx.tag_keys(kind, key) | set(tags))
        if count > TAG_LIMIT:
            raise ApiError(
                "ResourceLimitExceeded",
                f"{arn} would have {count} tags: a resource has at most {TAG_LIMIT} (DeleteTags "
                "removes some)",
            )
        if tags:
            changes = {"tags": [{"key": k, "value": v} for k, v in tags.items()]}
            _publish(tx, caller, [_tag_upsert(tx, kind, key, changes)], {key: caller.account})
        return {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}

    return _write(backend, write)


@operation("DeleteTags")
def delete_tags(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    arn = body["ResourceArn"]
    kind, key = _tag_target(arn)
    keys = sorted(set(body["TagKeys"]))

    def write(tx: WriteTx) -> dict[str, Any]:
        _own_live(tx, caller, key, arn)
        present = [k for k in keys if k in tx.tag_keys(kind, key)]
        if present:  # removing keys the resource does not have changes nothing: no event
            upsert_ = _tag_upsert(tx, kind, key, {"tags_to_remove": present})
            _publish(tx, caller, [upsert_], {key: caller.account})
        return {}

    return _write(backend, write)


@operation("ListTags")
def list_tags(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = _read(
        backend,
        caller,
        lambda s, v: s.list_tags(
            body["ResourceArn"],
            max_results=body.get("MaxResults"),
            next_token=body.get("NextToken"),
            visible_accounts=v,
        ),
    )
    return result


@operation("Search")
def search_(backend: Backend, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("VisibilityConditions"):
        raise invalid("VisibilityConditions: not supported by mlineage")
    same_account = body.get("CrossAccountFilterOption") == "SameAccount"

    def run(store: LineageStore, visible: list[str] | None) -> dict[str, Any]:
        return store.search(
            body["Resource"],
            body.get("SearchExpression"),
            sort_by=body.get("SortBy"),
            sort_order=body.get("SortOrder"),
            max_results=body.get("MaxResults"),
            next_token=body.get("NextToken"),
            visible_accounts=[caller.account] if same_account else visible,
            max_results_cap=1000 if caller.extended_limits else search.MAX_RESULTS,
        )

    result: dict[str, Any] = _read(backend, caller, run)
    return result
