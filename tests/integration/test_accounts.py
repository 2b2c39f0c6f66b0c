"""Cross-account lineage: what ``LineageStore.as_account(id)`` lets an account see.

The rules under test (reference/sagemaker-lineage.md "Cross-account lineage",
ARCHITECTURE.md "Cross-account"):

- an account sees its own entities and those of every owner with a live share to it; sharing
  is not transitive;
- an association (edge) is visible when both its ends are;
- artifacts with the same id (same SourceUri, so the same md5) in two visible accounts are
  linked by ``SameAs``, one edge each way, computed for the caller;
- describing an invisible entity answers exactly like describing one that never existed;
- SQL on behalf of an account sees the same table names, holding only what it may see, and
  cannot reach anything else (no source database, no files, no settings);
- revoking a share takes effect for every later query; replay gives the same visibility as
  the live projection.

The randomized test checks every answer of an account view against an oracle written here:
the operator's view (``LineageStore.open`` without an account: everything) filtered in
Python by the share rules above, loaded into an in-memory DuckDB with the same table names
(for SQL), and a plain BFS over the visible graph plus the SameAs pairs (for QueryLineage and
the walk macros).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from mlineage import arns
from mlineage.errors import EventValidationError, MlineageError, NotFoundError
from mlineage.events import codec
from mlineage.events.codec import dumps
from mlineage.log.base import TOPIC_ENTITIES, OutRecord, open_log
from mlineage.pipeline import sync
from mlineage.projection.schema import OPENLINEAGE_VIEW
from mlineage.projection.service import replay
from mlineage.projection.store import DuckDBStore
from mlineage.query import catalog, lineage
from mlineage.query.accounts import account_view, cache_dir, visible_accounts
from mlineage.query.lineage import (
    LINEAGE_TYPES,
    LineageFilter,
    LineageGraph,
    LineageResult,
    query_lineage,
)
from mlineage.query.sql import SqlError
from mlineage.query.store import LineageStore
from mlineage.query.traversals import DatasetArtifact, EndpointContext, ModelArtifact
from mlineage.recorder import Recorder
from mlineage.settings import Settings
from tests.helpers import REGION, delete, event, graph_state, index_of, upsert

CLI = [sys.executable, "-m", "mlineage.cli"]
ARN_IN_TEXT = re.compile(r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:(\d{12}):")
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)  # tests.helpers.event's second 0


def account_of(arn: str) -> str:
    return arn.split(":")[4]


def settings_for(home: Path, account: str) -> Settings:
    return Settings.load(home=home, account_id=account, environ={})


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLINEAGE_")}
    proc = subprocess.run(
        [*CLI, "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", value)`` or ``(exception type name, message)``: answers compare as values."""
    try:
        return "ok", call()
    except MlineageError as exc:
        return type(exc).__name__, str(exc)


def never_existed_message(view: LineageStore, target: str, kind: str | None = None) -> str:
    """What ``view`` answers for an entity of ``target``'s form that never existed anywhere,
    written for ``target``: an invisible entity must get exactly this."""
    if target.startswith("arn:"):
        parsed = arns.parse_arn(target)
        assert parsed is not None, target
        fake = arns.arn(parsed.region, "999999999999", parsed.resource, "zz-never-existed")
    else:
        fake = "zz-never-existed"
    with pytest.raises(NotFoundError) as caught:
        view.describe(fake, kind)
    assert type(caught.value) is NotFoundError
    return str(caught.value).replace(fake, target)


def assert_hidden(view: LineageStore, target: str, kind: str | None = None) -> None:
    """Describing ``target`` on ``view`` answers exactly as for one that never existed."""
    want = never_existed_message(view, target, kind)
    with pytest.raises(NotFoundError) as caught:
        view.describe(target, kind)
    assert type(caught.value) is NotFoundError
    assert str(caught.value) == want


# == 1. three accounts: data (A), training (B), deployment (C) ===================================

A, B, C = "111100000001", "222200000002", "333300000003"
RAW = "s3://acme-data/raw/customers.csv"
TRAIN = "s3://acme-data/prepared/train/"
MODEL = "s3://acme-models/churn/output/model.tar.gz"
ENDPOINT = "churn-ep"


def _art(account: str, uri: str) -> str:
    return arns.artifact_arn(REGION, account, uri)


S = {
    "a_raw": _art(A, RAW),
    "a_train": _art(A, TRAIN),
    "a_tc": arns.trial_component_arn(REGION, A, "prep-aws-processing-job"),
    "b_train": _art(B, TRAIN),
    "b_tc": arns.trial_component_arn(REGION, B, "train-aws-training-job"),
    "b_model": _art(B, MODEL),
    "c_model": _art(C, MODEL),
    "c_deploy": arns.named_arn("action", REGION, C, arns.deployment_action_name(ENDPOINT)),
    "c_ep": arns.named_arn("context", REGION, C, arns.endpoint_context_name(ENDPOINT)),
}
OF_A = {S["a_raw"], S["a_train"], S["a_tc"]}
OF_B = {S["b_train"], S["b_tc"], S["b_model"]}
OF_C = {S["c_model"], S["c_deploy"]}  # what the endpoint's ascendants hold of C


@dataclass
class Seen:
    """What C sees, one phase of the scenario."""

    visible: list[str]
    ascendants: set[str]
    edges: set[tuple[str, str, str | None]]
    datasets: set[str]
    models: set[str]
    listed_artifacts: set[str]
    listed_groups: set[str]
    sql_accounts: set[str]
    sql_same_as: set[tuple[str, str]]
    macro: set[str]


def seen_by(home: Path, caller: str) -> Seen:
    with LineageStore.open(settings_for(home, caller)) as store, store.as_account(caller) as view:
        assert view.account == caller
        result = view.query_lineage(S["c_ep"], "Ascendants") if caller == C else None
        ep = EndpointContext(view, S["c_ep"])
        listed = view.list_entities("artifact")["ArtifactSummaries"]
        groups = view.list_entities("lineage_group")["LineageGroupSummaries"]
        _, accounts = view.sql("SELECT DISTINCT account_id FROM lineage_vertices")
        _, same_as = view.sql(
            "SELECT source_arn, destination_arn FROM lineage_edges "
            "WHERE association_type = 'SameAs'"
        )
        _, macro = view.sql("SELECT arn FROM lineage_ancestors(?)", [S["c_ep"]])
        return Seen(
            visible=list(view.visible_accounts or []),
            ascendants=({v.arn for v in result.vertices} - {S["c_ep"]}) if result else set(),
            edges={(e.source_arn, e.destination_arn, e.association_type) for e in result.edges}
            if result
            else set(),
            datasets=set(ep.dataset_artifacts()),
            models=set(ep.models()),
            listed_artifacts={s["ArtifactArn"] for s in listed},
            listed_groups={s["LineageGroupArn"] for s in groups},
            sql_accounts={r[0] for r in accounts},
            sql_same_as={(r[0], r[1]) for r in same_as},
            macro={r[0] for r in macro},
        )


def check_describes(home: Path, caller: str, visible: set[str]) -> None:
    """Every scenario entity: described as the operator describes it when its account is
    visible, answered like a never-existing one otherwise."""
    with LineageStore.open(settings_for(home, caller)) as store, store.as_account(caller) as view:
        for arn in S.values():
            if account_of(arn) in visible:
                assert view.describe(arn) == store.describe(arn), arn
            else:
                assert_hidden(view, arn)
        # by name: C's endpoint context is C's own; A's processing job component is A's
        tc_name = "prep-aws-processing-job"
        if A in visible:
            assert view.describe(tc_name)["TrialComponentArn"] == S["a_tc"]
        else:
            assert_hidden(view, tc_name)
            assert_hidden(view, tc_name, "trial_component")


def group(account: str) -> str:
    return arns.lineage_group_arn(REGION, account)


@pytest.mark.slow
def test_three_accounts_share_and_revoke(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Recorder(settings_for(home, A)) as rec:
        rec.job_created("ProcessingJob", "prep", inputs={"raw": RAW}, outputs={"train": TRAIN})
        rec.job_status_changed("ProcessingJob", "prep", "Completed")
    with Recorder(settings_for(home, B)) as rec:
        rec.job_created("TrainingJob", "train", inputs={"train": TRAIN})
        rec.job_status_changed("TrainingJob", "train", "Completed", outputs={"model": MODEL})
    with Recorder(settings_for(home, C)) as rec:
        rec.endpoint_created(ENDPOINT, [{"model_data_uri": MODEL}])
    sync(settings_for(home, A))

    with LineageStore.open(settings_for(home, A)) as store:  # the operator sees it all
        _, rows = store.sql("SELECT arn FROM lineage_vertices")
        assert set(S.values()) <= {r[0] for r in rows}

    # -- phase 0: nobody shares ------------------------------------------------------------
    before = seen_by(home, C)
    assert before.visible == [C]
    assert before.ascendants == OF_C
    assert before.macro == OF_C
    assert before.datasets == set()
    assert before.models == {S["c_model"]}
    assert before.listed_artifacts == {S["c_model"]}
    assert before.listed_groups == {group(C)}
    assert before.sql_accounts == {C}
    assert before.sql_same_as == set()
    check_describes(home, C, {C})

    # -- phase 1: A -> B and B -> C (Recorder.share publishes as the owner) ----------------
    with Recorder(settings_for(home, A)) as rec:
        shared = rec.share(B)
        assert shared.account_id == A
    with Recorder(settings_for(home, C)) as rec:  # any recorder may publish for the owner
        shared = rec.share(C, owner_account=B)
        assert shared.account_id == B
    sync(settings_for(home, A))
    phase1 = seen_by(home, C)
    assert phase1.visible == sorted([B, C])
    assert phase1.ascendants == OF_C | OF_B, "C reaches B's entities, none of A's"
    assert not phase1.ascendants & OF_A
    assert phase1.macro == phase1.ascendants
    assert {
        (S["b_model"], S["c_model"], "SameAs"),
        (S["c_model"], S["b_model"], "SameAs"),
    } <= phase1.edges
    assert phase1.sql_same_as == {(S["b_model"], S["c_model"]), (S["c_model"], S["b_model"])}
    assert phase1.datasets == {S["b_train"]}
    assert phase1.models == {S["c_model"], S["b_model"]}
    assert phase1.listed_artifacts == {S["c_model"], S["b_model"], S["b_train"]}
    assert phase1.listed_groups == {group(B), group(C)}
    assert phase1.sql_accounts == {B, C}
    check_describes(home, C, {B, C})
    # B sees A (A shares with B) but not C (C shares with nobody)
    with LineageStore.open(settings_for(home, B)) as store, store.as_account(B) as view:
        assert view.visible_accounts == sorted([A, B])
        up = DatasetArtifact(view, S["b_train"]).upstream_datasets()
        assert S["a_raw"] in up
        down = {v.arn for v in view.query_lineage(S["b_model"], "Both").vertices}
        assert down >= OF_A
        assert not down & {S["c_model"], S["c_deploy"], S["c_ep"]}
        assert ModelArtifact(view, S["b_model"]).endpoint_contexts() == []
        assert_hidden(view, S["c_ep"])
    with LineageStore.open(settings_for(home, A)) as store, store.as_account(A) as view:
        assert view.visible_accounts == [A]  # sharing is one way

    # -- phase 2: A shares with C too, through the CLI ----------------------------------------
    proc = cli(home, "share", "--owner", A, "--with", C)
    assert f"{A} now shares its lineage with {C}" in proc.stdout
    phase2 = seen_by(home, C)
    assert phase2.visible == sorted([A, B, C])
    assert phase2.ascendants == OF_C | OF_B | OF_A, "C now reaches A's datasets"
    assert phase2.macro == phase2.ascendants
    assert phase2.datasets == {S["b_train"], S["a_train"], S["a_raw"]}
    assert {
        (S["a_train"], S["b_train"], "SameAs"),
        (S["b_train"], S["a_train"], "SameAs"),
    } <= phase2.edges
    assert phase2.listed_artifacts == OF_A - {S["a_tc"]} | {
        S["c_model"],
        S["b_model"],
        S["b_train"],
    }
    assert phase2.sql_accounts == {A, B, C}
    check_describes(home, C, {A, B, C})
    with LineageStore.open(settings_for(home, C)) as store, store.as_account(C) as view:
        assert EndpointContext(view, S["c_ep"]).processing_jobs() == [
            arns.job_arn(REGION, A, "ProcessingJob", "prep")
        ]
        assert EndpointContext(view, S["c_ep"]).training_job_arns() == [
            arns.job_arn(REGION, B, "TrainingJob", "train")
        ]

    # the same through the CLI, on behalf of C
    lineage = json.loads(
        cli(
            home,
            "query-lineage",
            "--account",
            C,
            "--direction",
            "Ascendants",
            "--format",
            "json",
            S["c_ep"],
        ).stdout
    )
    assert {v["Arn"] for v in lineage["Vertices"]} == phase2.ascendants | {S["c_ep"]}
    rows = json.loads(
        cli(
            home,
            "sql",
            "--account",
            C,
            "--format",
            "json",
            "SELECT DISTINCT account_id AS a FROM artifacts ORDER BY 1",
        ).stdout
    )
    assert rows == [{"a": A}, {"a": B}, {"a": C}]
    described = json.loads(
        cli(home, "describe", "--account", C, "--format", "json", S["a_raw"]).stdout
    )
    assert described["ArtifactArn"] == S["a_raw"]
    listed = json.loads(cli(home, "list", "artifacts", "--account", C, "--format", "json").stdout)
    assert {s["ArtifactArn"] for s in listed["ArtifactSummaries"]} == phase2.listed_artifacts
    shares = json.loads(cli(home, "list", "shares", "--account", C, "--format", "json").stdout)
    assert {(s["owner_account"], s["grantee_account"]) for s in shares} == {(A, C), (B, C)}
    shares = json.loads(cli(home, "list", "shares", "--account", A, "--format", "json").stdout)
    assert {(s["owner_account"], s["grantee_account"]) for s in shares} == {(A, B), (A, C)}
    shares = json.loads(cli(home, "list", "shares", "--format", "json").stdout)  # operator
    assert {(s["owner_account"], s["grantee_account"]) for s in shares} == {(A, B), (A, C), (B, C)}

    # -- phase 3: A revokes C's share: gone again ------------------------------------------
    proc = cli(home, "unshare", "--owner", A, "--with", C)
    assert f"{A} no longer shares its lineage with {C}" in proc.stdout
    after = seen_by(home, C)
    assert after == phase1
    check_describes(home, C, {B, C})
    lineage = json.loads(
        cli(
            home,
            "query-lineage",
            "--account",
            C,
            "--direction",
            "Ascendants",
            "--format",
            "json",
            S["c_ep"],
        ).stdout
    )
    assert {v["Arn"] for v in lineage["Vertices"]} == phase1.ascendants | {S["c_ep"]}
    rows = json.loads(
        cli(
            home,
            "sql",
            "--account",
            C,
            "--format",
            "json",
            f"SELECT count(*) AS n FROM events WHERE account_id = '{A}'",
        ).stdout
    )
    assert rows == [{"n": 0}]
    hidden = cli(home, "describe", "--account", C, S["a_raw"], check=False)
    missing = S["a_raw"].replace(A, "999999999999")
    never = cli(home, "describe", "--account", C, missing, check=False)
    assert hidden.returncode == never.returncode == 1
    assert hidden.stderr == never.stderr.replace(missing, S["a_raw"])
    assert hidden.stdout == never.stdout == ""
    shares = json.loads(cli(home, "list", "shares", "--account", C, "--format", "json").stdout)
    assert {(s["owner_account"], s["grantee_account"]) for s in shares} == {(B, C)}
    # the operator still sees everything
    rows = json.loads(
        cli(
            home, "sql", "--format", "json", "SELECT count(DISTINCT account_id) AS n FROM artifacts"
        ).stdout
    )
    assert rows == [{"n": 3}]


# == 2. randomized isolation ======================================================================

ACCOUNTS = ("100000000001", "200000000002", "300000000003", "400000000004", "500000000005")
UNKNOWN_ACCOUNT = "900000000009"
SHARED_URIS = tuple(f"s3://shared-data/set-{i}/" for i in range(5))
ASSOCIATION_TYPES = ("ContributedTo", "AssociatedWith", "DerivedFrom", "Produced", None)
FILTER_TYPES = (
    "DataSet",
    "Model",
    "Image",
    "Endpoint",
    "ModelGroup",
    "ModelDeployment",
    "Approval",
    "TrainingJob",
    "ProcessingJob",
    "Experiment",
)
SEEDS = range(5)
PER_VIEW = 42  # queries of each kind per (graph, caller): 5 graphs x 5 callers x 42 > 1000
MIN_EACH = 1000

BASE_TABLES = (
    "artifacts",
    "actions",
    "contexts",
    "experiments",
    "trials",
    "trial_components",
    "associations",
    "trial_component_trials",
    "jobs",
    "openlineage_event_rows",
    "lineage_groups",
    "lineage_shares",
    "events",
    "dead_letters",
    "positions",
)
SQL_TABLES = (
    "artifacts",
    "actions",
    "contexts",
    "experiments",
    "trials",
    "trial_components",
    "associations",
    "trial_component_trials",
    "jobs",
    "openlineage_event_rows",
    "openlineage_events",
    "lineage_groups",
    "lineage_shares",
    "events",
    "lineage_vertices",
    "lineage_edges",
)
ENTITY_TABLES = (
    "artifacts",
    "actions",
    "contexts",
    "experiments",
    "trials",
    "trial_components",
    "jobs",
    "lineage_groups",
)
ARN_TABLES = (
    "artifacts",
    "actions",
    "contexts",
    "experiments",
    "trials",
    "trial_components",
    "lineage_groups",
    "lineage_vertices",
)
NAME_COLUMNS = {
    "actions": "action_name",
    "contexts": "context_name",
    "experiments": "experiment_name",
    "trials": "trial_name",
    "trial_components": "trial_component_name",
}
DESCRIBE_TABLES = {
    "artifact": "artifacts",
    "action": "actions",
    "context": "contexts",
    "experiment": "experiments",
    "trial": "trials",
    "trial_component": "trial_components",
    "lineage_group": "lineage_groups",
}
SUMMARY_ARN = {
    "artifact": "ArtifactArn",
    "action": "ActionArn",
    "context": "ContextArn",
    "experiment": "ExperimentArn",
    "trial": "TrialArn",
    "trial_component": "TrialComponentArn",
    "lineage_group": "LineageGroupArn",
}


@dataclass
class Generated:
    events: list[dict[str, Any]]
    shares: dict[tuple[str, str], bool]  # (owner, grantee) -> live, as the events intend


def random_events(rng: random.Random) -> Generated:
    """Entities of every vertex kind in every account (names and SourceUris repeat across
    accounts), trials and joins, jobs and endpoints for the tracker, associations within and
    across accounts (published by one end's owner), deletions and re-creations, shares and
    revocations."""
    events: list[dict[str, Any]] = []
    ends: list[str] = []

    def second(lo: int, hi: int) -> int:
        return rng.randint(lo, hi)

    for account in ACCOUNTS:
        own: list[tuple[str, dict[str, Any], dict[str, Any]]] = []  # (arn, upsert, delete key)
        uris = rng.sample(SHARED_URIS, rng.randint(1, 3))
        uris += [f"s3://acct-{account}/data-{j}/" for j in range(rng.randint(1, 3))]
        for uri in uris:
            entity: dict[str, Any] = {"kind": "artifact", "source": {"source_uri": uri}}
            typ = rng.choice(("DataSet", "Model", "Image", "DataSet", None))
            if typ is not None:
                entity["artifact_type"] = typ
            if rng.random() < 0.5:
                entity["properties"] = {"stage": rng.choice("xy")}
            own.append(
                (
                    arns.artifact_arn(REGION, account, uri),
                    entity,
                    {"kind": "artifact", "source_uri": uri},
                )
            )
        if rng.random() < 0.4:  # keyed by ARN only: the same id in several accounts
            arn = arns.arn(REGION, account, "artifact", "custom-shared-id")
            own.append(
                (
                    arn,
                    {"kind": "artifact", "artifact_arn": arn, "artifact_type": "Image"},
                    {"kind": "artifact", "artifact_arn": arn},
                )
            )
        for i in range(rng.randint(1, 2)):
            name = f"act-{i}"
            entity = {
                "kind": "action",
                "action_name": name,
                "action_type": rng.choice(("ModelDeployment", "Approval")),
            }
            if rng.random() < 0.5:
                entity["properties"] = {"stage": rng.choice("xy")}
            own.append(
                (
                    arns.named_arn("action", REGION, account, name),
                    entity,
                    {"kind": "action", "action_name": name},
                )
            )
        for i in range(rng.randint(1, 2)):
            name = f"ctx-{i}"
            entity = {
                "kind": "context",
                "context_name": name,
                "context_type": rng.choice(("Endpoint", "ModelGroup")),
            }
            own.append(
                (
                    arns.named_arn("context", REGION, account, name),
                    entity,
                    {"kind": "context", "context_name": name},
                )
            )
        if rng.random() < 0.6:
            own.append(
                (
                    arns.named_arn("experiment", REGION, account, "exp-0"),
                    {"kind": "experiment", "experiment_name": "exp-0"},
                    {"kind": "experiment", "experiment_name": "exp-0"},
                )
            )
        for i in range(rng.randint(1, 2)):
            name = f"tc-{i}"
            job = rng.choice(("TrainingJob", "ProcessingJob"))
            entity = {
                "kind": "trial_component",
                "trial_component_name": name,
                "source": {
                    "source_arn": arns.job_arn(REGION, account, job, f"job-{i}"),
                    "source_type": f"SageMaker{job}",
                },
                "status": {"primary_status": "Completed"},
            }
            own.append(
                (
                    arns.trial_component_arn(REGION, account, name),
                    entity,
                    {"kind": "trial_component", "trial_component_name": name},
                )
            )
        for arn, entity, key in own:
            events.append(upsert(entity, second=second(0, 1199), account=account))
            if rng.random() < 0.2:
                events.append(delete(key, second=second(1200, 1499), account=account))
                if rng.random() < 0.4:  # re-created later
                    events.append(upsert(entity, second=second(1500, 1799), account=account))
            ends.append(arn)
        if rng.random() < 0.6:
            events.append(
                upsert(
                    {"kind": "trial", "trial_name": "trial-0", "experiment_name": "exp-0"},
                    second=second(0, 1199),
                    account=account,
                )
            )
            join = {
                "kind": "trial_component_trial",
                "trial_component_name": "tc-0",
                "trial_name": "trial-0",
            }
            events.append(upsert(join, second=second(0, 1199), account=account))
            if rng.random() < 0.2:
                events.append(delete(join, second=second(1200, 1799), account=account))
        # source events: the tracker derives components, artifacts and associations
        if rng.random() < 0.6:
            at = second(0, 1000)
            out_uri = rng.choice((*SHARED_URIS, f"s3://acct-{account}/prep-out/"))
            events.append(
                event(
                    "JobCreated",
                    {
                        "job_type": "ProcessingJob",
                        "job_name": "prep",
                        "inputs": [{"name": "in", "uri": rng.choice(SHARED_URIS)}],
                        "outputs": [{"name": "out", "uri": out_uri}],
                    },
                    second=at,
                    account=account,
                )
            )
            events.append(
                event(
                    "JobStatusChanged",
                    {"job_type": "ProcessingJob", "job_name": "prep", "status": "Completed"},
                    second=at + 5,
                    account=account,
                )
            )
        if rng.random() < 0.4:
            at = second(0, 1000)
            events.append(
                event(
                    "JobCreated",
                    {
                        "job_type": "TrainingJob",
                        "job_name": "train",
                        "inputs": [{"name": "train", "uri": rng.choice(SHARED_URIS)}],
                        "experiment_config": {"experiment_name": "exp-1", "trial_name": "trial-1"},
                    },
                    second=at,
                    account=account,
                )
            )
            events.append(
                event(
                    "JobStatusChanged",
                    {
                        "job_type": "TrainingJob",
                        "job_name": "train",
                        "status": "Completed",
                        "outputs": [{"name": "model", "uri": "s3://shared-models/m.tar.gz"}],
                        "metrics": {"auc": rng.random()},
                    },
                    second=at + 5,
                    account=account,
                )
            )
        if rng.random() < 0.5:
            events.append(
                event(
                    "EndpointCreated",
                    {
                        "endpoint_name": "ep",
                        "models": [
                            {
                                "model_data_uri": rng.choice(
                                    (*SHARED_URIS, "s3://shared-models/m.tar.gz")
                                )
                            }
                        ],
                    },
                    second=second(0, 1199),
                    account=account,
                )
            )
        if rng.random() < 0.5:  # an OpenLineage run between shared datasets
            read, wrote = rng.sample(range(len(SHARED_URIS)), 2)
            ol = {
                "eventType": rng.choice(("START", "COMPLETE", "FAIL")),
                "eventTime": f"2026-03-01T10:{second(0, 1199) // 60:02d}:00Z",
                "producer": "https://example.com/spark",
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                "run": {"runId": str(uuid.UUID(int=rng.getrandbits(128), version=4))},
                "job": {"namespace": "spark", "name": "prep"},
                "inputs": [{"namespace": "s3://shared-data", "name": f"set-{read}"}],
                "outputs": [{"namespace": "s3://shared-data", "name": f"set-{wrote}"}],
            }
            events.append(codec.wrap_openlineage(ol, account, REGION))
    # derived artifacts (which may or may not exist) and a ghost are association ends too
    ends += [arns.artifact_arn(REGION, rng.choice(ACCOUNTS), uri) for uri in SHARED_URIS]
    ends.append(arns.artifact_arn(REGION, ACCOUNTS[0], "s3://nowhere/ghost"))
    by_account: dict[str, list[str]] = defaultdict(list)
    for arn in ends:
        by_account[account_of(arn)].append(arn)
    pairs: set[tuple[str, str]] = set()
    for _ in range(rng.randint(40, 80)):
        src = rng.choice(ends)
        dst = rng.choice(by_account[account_of(src)] if rng.random() < 0.5 else ends)
        if src != dst or rng.random() < 0.2:
            pairs.add((src, dst))
    for src, dst in sorted(pairs):
        publisher = account_of(rng.choice((src, dst)))  # one end's owner
        assoc: dict[str, Any] = {"kind": "association", "source_arn": src, "destination_arn": dst}
        typ = rng.choice(ASSOCIATION_TYPES)
        if typ is not None:
            assoc["association_type"] = typ
        events.append(upsert(assoc, second=second(0, 1799), account=publisher))
        if rng.random() < 0.1:
            events.append(
                delete(
                    {"kind": "association", "source_arn": src, "destination_arn": dst},
                    second=second(0, 1799),
                    account=publisher,
                )
            )
    shares: dict[tuple[str, str], bool] = {}
    for owner in ACCOUNTS:
        for grantee in ACCOUNTS:
            if owner == grantee:
                continue
            key = {"kind": "lineage_share", "owner_account": owner, "grantee_account": grantee}
            if rng.random() < 0.05:  # revoking what was never shared (yet) changes nothing
                events.append(delete(key, second=second(0, 50), account=owner))
                shares[(owner, grantee)] = False
            if rng.random() >= 0.4:
                continue
            events.append(upsert(key, second=second(51, 600), account=owner))
            shares[(owner, grantee)] = True
            if rng.random() < 0.4:
                events.append(delete(key, second=second(601, 1200), account=owner))
                shares[(owner, grantee)] = False
                if rng.random() < 0.3:
                    events.append(upsert(key, second=second(1201, 1799), account=owner))
                    shares[(owner, grantee)] = True
    rng.shuffle(events)
    return Generated(events, shares)


def publish_in_chunks(home: Path, events: list[dict[str, Any]], chunks: int) -> None:
    """Publish and project in several rounds: the live projection is built incrementally."""
    settings = settings_for(home, ACCOUNTS[0])
    size = -(-len(events) // chunks)
    with Recorder(settings) as rec:
        for start in range(0, len(events), size):
            rec.publish_many(events[start : start + size])
            sync(settings)


# -- the oracle ----------------------------------------------------------------------------------

Edge = tuple[str, str, str | None]


def _visible_row(table: str, row: dict[str, Any], caller: str, visible: set[str]) -> bool:
    if table in ("dead_letters", "positions"):
        return False  # operator-only
    if table == "lineage_shares":
        return caller in (row["owner_account"], row["grantee_account"])
    if table == "associations":
        return (
            account_of(row["source_arn"]) in visible
            and account_of(row["destination_arn"]) in visible
        )
    if table == "trial_component_trials":
        return (
            account_of(row["trial_component_arn"]) in visible
            and account_of(row["trial_arn"]) in visible
        )
    if row["account_id"] not in visible:
        return False
    if table != "events" or row["entity_key"] is None:
        return True
    if row["entity_kind"] == "openlineage_event":  # keyed by event id: its account decides
        return True
    key, kind = row["entity_key"], row["entity_kind"]
    if kind == "lineage_share":
        return caller in key.split(" ")
    if kind in ("association", "trial_component_trial"):
        return all(account_of(part) in visible for part in key.split(" "))
    return account_of(key) in visible


@dataclass
class Oracle:
    """What ``caller`` may see, computed from the operator's view and the share rules."""

    caller: str
    visible: set[str]
    db: duckdb.DuckDBPyConnection
    vertices: dict[str, tuple[str, str | None, datetime | None, datetime | None]]
    edges: list[Edge]
    props: dict[str, dict[str, str]]
    out: dict[str, list[Edge]] = field(default_factory=lambda: defaultdict(list))
    inc: dict[str, list[Edge]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def build(cls, op: LineageStore, caller: str) -> Oracle:
        shares = op.con.execute(
            "SELECT owner_account, grantee_account, live FROM lineage_shares"
        ).fetchall()
        visible = {caller} | {o for o, g, live in shares if live and g == caller}
        db = duckdb.connect()
        db.execute("SET TimeZone = 'UTC'")
        for table in BASE_TABLES:
            ddl = op.con.execute(
                "SELECT sql FROM duckdb_tables() WHERE table_name = ? AND "
                "database_name = current_database()",
                [table],
            ).fetchall()
            db.execute(ddl[0][0])
            rows = op.con.sql(f"SELECT * FROM {table}").to_arrow_table()
            keep = [_visible_row(table, r, caller, visible) for r in rows.to_pylist()]
            db.register("_rows", rows.filter(pa.array(keep, pa.bool_())))
            db.execute(f"INSERT INTO {table} SELECT * FROM _rows")
            db.unregister("_rows")
        db.execute(OPENLINEAGE_VIEW)  # a view of a table copied above
        rows = op.con.sql("SELECT * FROM lineage_vertices").to_arrow_table()
        keep = [r["account_id"] in visible for r in rows.to_pylist()]
        db.register("_rows", rows.filter(pa.array(keep, pa.bool_())))
        db.execute("CREATE TABLE lineage_vertices AS SELECT * FROM _rows")
        db.unregister("_rows")
        vertices = {
            arn: (lt, typ, c, m)
            for arn, lt, typ, c, m in db.execute(
                "SELECT arn, lineage_type, type, created_at, modified_at FROM lineage_vertices"
            ).fetchall()
        }
        edges: list[Edge] = []
        accounts: list[str] = []
        for src, dst, typ, account in op.con.execute(
            "SELECT source_arn, destination_arn, association_type, account_id FROM lineage_edges"
        ).fetchall():
            if account_of(src) in visible and account_of(dst) in visible:
                edges.append((src, dst, typ))
                accounts.append(account)
        # SameAs: every ordered pair of visible artifacts with one id, unless the pair
        # already has a (stored) association
        stored = {(s, d) for s, d, _ in edges}
        by_id: dict[str, list[str]] = defaultdict(list)
        for arn, (lineage_type, *_rest) in vertices.items():
            if lineage_type == "Artifact":
                by_id[arn.split("/", 1)[1]].append(arn)
        for same in by_id.values():
            for a in same:
                for b in same:
                    if a != b and (a, b) not in stored:
                        edges.append((a, b, "SameAs"))
                        accounts.append(account_of(a))
        db.register(
            "_rows",
            pa.table(
                {
                    "source_arn": pa.array([e[0] for e in edges], pa.string()),
                    "destination_arn": pa.array([e[1] for e in edges], pa.string()),
                    "association_type": pa.array([e[2] for e in edges], pa.string()),
                    "account_id": pa.array(accounts, pa.string()),
                }
            ),
        )
        db.execute("CREATE TABLE lineage_edges AS SELECT * FROM _rows")
        db.unregister("_rows")
        props: dict[str, dict[str, str]] = {}
        for table in ("artifacts", "actions", "contexts"):
            for arn, text in db.execute(
                f"SELECT arn, CAST(properties AS VARCHAR) FROM {table} WHERE live"
            ).fetchall():
                props[arn] = json.loads(text) if text else {}
        oracle = cls(caller, visible, db, vertices, edges, props)
        for e in edges:
            oracle.out[e[0]].append(e)
            oracle.inc[e[1]].append(e)
        return oracle

    def steps(self, u: str, direction: str) -> Iterator[tuple[Edge, str]]:
        if direction in ("Both", "Descendants"):
            for e in self.out.get(u, ()):
                yield e, e[1]
        if direction in ("Both", "Ascendants"):
            for e in self.inc.get(u, ()):
                yield e, e[0]

    def matches(self, arn: str, f: LineageFilter) -> bool:
        lineage_type, typ, created, modified = self.vertices[arn]
        if f.types and typ not in f.types:
            return False
        if f.lineage_types and lineage_type not in f.lineage_types:
            return False
        for bound, value, before in (
            (f.created_before, created, True),
            (f.created_after, created, False),
            (f.modified_before, modified, True),
            (f.modified_after, modified, False),
        ):
            if bound is not None and (
                value is None or not (value < bound if before else value > bound)
            ):
                return False
        if f.properties:
            mine = self.props.get(arn, {})
            return any(mine.get(k) == v for k, v in f.properties.items())
        return True

    def lineage(
        self,
        starts: list[str],
        direction: str,
        include_edges: bool,
        f: LineageFilter,
        max_depth: int,
    ) -> tuple[list[str], set[Edge], bool, dict[str, int]]:
        """QueryLineage by level-by-level BFS: (vertices in (depth, ARN) order, edges,
        truncated_by_depth, depth of every reached vertex)."""
        start_set = {s for s in starts if s in self.vertices}
        depth = dict.fromkeys(start_set, 0)
        frontier = sorted(start_set)
        level = 0
        while frontier and level < max_depth:
            following = []
            for u in frontier:
                for _, v in self.steps(u, direction):
                    if v not in depth:
                        depth[v] = level + 1
                        following.append(v)
            frontier = following
            level += 1
        taken = [
            (e, u, v) for u in depth if depth[u] < max_depth for e, v in self.steps(u, direction)
        ]
        truncated = any(
            v not in depth
            for u in depth
            if depth[u] == max_depth
            for _, v in self.steps(u, direction)
        )
        reached = list(depth)  # the start entities are returned too
        no_filter = not (
            f.types
            or f.lineage_types
            or f.properties
            or f.created_before
            or f.created_after
            or f.modified_before
            or f.modified_after
        )
        matching = {v for v in reached if no_filter or self.matches(v, f)}
        if not include_edges:
            chosen, edges = matching, set()
        elif no_filter:
            chosen, edges = set(reached), {e for e, _, _ in taken}
        else:
            outward = [(e, u, v) for e, u, v in taken if depth[v] == depth[u] + 1]
            leads = set(matching)
            changed = True
            while changed:
                changed = False
                for _, u, v in outward:
                    if v in leads and u not in leads:
                        leads.add(u)
                        changed = True
            chosen = leads
            edges = {e for e, _, v in outward if v in leads}
        return sorted(chosen, key=lambda v: (depth[v], v)), edges, truncated, depth


@dataclass
class Pools:
    """Values to draw queries from: every account's, live or deleted, and some that never
    existed."""

    arns: list[str]
    vertex_arns: list[str]
    names: list[str]
    uris: list[str]
    types: list[str]
    job_arns: list[str]
    times: list[datetime]

    @classmethod
    def read(cls, op: LineageStore) -> Pools:
        con = op.con

        def column(sql: str) -> list[Any]:
            return sorted({r[0] for r in con.execute(sql).fetchall() if r[0] is not None})

        entity_arns = column(
            " UNION ALL ".join(f"SELECT arn FROM {t}" for t in DESCRIBE_TABLES.values())
        )
        ghosts = [
            arns.arn(REGION, account, resource, f"ghost-{i}")
            for i, account in enumerate((*ACCOUNTS, UNKNOWN_ACCOUNT))
            for resource in (
                "artifact",
                "action",
                "context",
                "experiment",
                "experiment-trial",
                "experiment-trial-component",
            )
        ]
        names = column(" UNION ALL ".join(f"SELECT {c} FROM {t}" for t, c in NAME_COLUMNS.items()))
        names += ["ghost-name", arns.LINEAGE_GROUP_NAME]
        names += [n.upper() for n in names if n.startswith("tc-")]
        return cls(
            arns=entity_arns + ghosts,
            vertex_arns=column("SELECT arn FROM lineage_vertices"),
            names=names,
            uris=[
                *column(
                    "SELECT source_uri FROM artifacts UNION ALL SELECT source_uri "
                    "FROM actions UNION ALL SELECT source_uri FROM contexts"
                ),
                "s3://none/",
            ],
            types=[*column("SELECT type FROM lineage_vertices"), "Nope"],
            job_arns=column(
                "SELECT job_arn FROM jobs UNION ALL SELECT source_arn FROM trial_components"
            ),
            times=column(
                "SELECT created_at FROM lineage_vertices UNION ALL SELECT "
                "modified_at FROM lineage_vertices"
            ),
        )


# -- isolation properties, checked on every answer -----------------------------------------------


def assert_arns_visible(values: Any, visible: set[str], why: str) -> None:
    """Every ARN in any text of ``values`` names a visible account."""
    if isinstance(values, dict):
        for v in values.values():
            assert_arns_visible(v, visible, why)
    elif isinstance(values, list | tuple | set):
        for v in values:
            assert_arns_visible(v, visible, why)
    elif isinstance(values, str):
        for account in ARN_IN_TEXT.findall(values):
            assert account in visible, f"leak: {account} in {values!r}: {why}"


def assert_same_as_sound(edges: list[Edge] | set[Edge], oracle: Oracle, why: str) -> None:
    for src, dst, typ in edges:
        assert account_of(src) in oracle.visible, f"leak: edge {src} -> {dst}: {why}"
        assert account_of(dst) in oracle.visible, f"leak: edge {src} -> {dst}: {why}"
        if typ == "SameAs":
            assert src != dst, why
            assert oracle.vertices[src][0] == oracle.vertices[dst][0] == "Artifact", why
            if src.split("/", 1)[1] != dst.split("/", 1)[1]:
                # not a computed link: the tracker's association of an OpenLineage dataset
                # with its "/" spelling, within the publisher's account
                assert account_of(src) == account_of(dst), f"SameAs {src} {dst}: {why}"


# -- random queries --------------------------------------------------------------------------------

STATS: dict[str, int] = defaultdict(int)


def random_filter(rng: random.Random, pools: Pools) -> LineageFilter:
    if rng.random() < 0.4:
        return LineageFilter()

    def maybe(p: float) -> bool:
        return rng.random() < p

    def moment() -> datetime:
        base = rng.choice(pools.times) if pools.times else T0
        return base + timedelta(seconds=rng.choice((-1, 0, 0, 1)))

    return LineageFilter(
        types=rng.sample(FILTER_TYPES, rng.randint(1, 3)) if maybe(0.4) else None,
        lineage_types=rng.sample(LINEAGE_TYPES, rng.randint(1, 2)) if maybe(0.3) else None,
        created_after=moment() if maybe(0.15) else None,
        created_before=moment() if maybe(0.15) else None,
        modified_after=moment() if maybe(0.1) else None,
        modified_before=moment() if maybe(0.1) else None,
        properties={"stage": rng.choice("xy")} if maybe(0.2) else None,
    )


def any_start(rng: random.Random, oracle: Oracle, pools: Pools) -> str:
    """Mostly a vertex the caller sees; else any account's vertex, or anything at all."""
    draw = rng.random()
    if draw < 0.6 and oracle.vertices:
        return rng.choice(sorted(oracle.vertices))
    return rng.choice(pools.vertex_arns if draw < 0.85 else pools.arns)


def check_query_lineage(
    rng: random.Random,
    view: LineageStore,
    oracle: Oracle,
    pools: Pools,
    why: str,
    op: LineageStore | None = None,
) -> None:
    starts = [any_start(rng, oracle, pools) for _ in range(rng.randint(1, 3))]
    direction = rng.choice(("Both", "Ascendants", "Descendants"))
    include_edges = rng.random() < 0.6
    f = random_filter(rng, pools)
    max_depth = rng.randint(0, 6)
    why = f"{why} QueryLineage({starts}, {direction}, edges={include_edges}, {f}, {max_depth})"
    result: LineageResult = view.query_lineage(
        starts, direction, include_edges=include_edges, filters=f, max_depth=max_depth
    )
    got = [v.arn for v in result.vertices]
    edges = {(e.source_arn, e.destination_arn, e.association_type) for e in result.edges}
    assert_arns_visible(got, oracle.visible, why)
    assert_same_as_sound(edges, oracle, why)
    order, want_edges, truncated, _ = oracle.lineage(starts, direction, include_edges, f, max_depth)
    assert got == order, (
        f"vertices differ: {why}\n missing {set(order) - set(got)}\n extra {set(got) - set(order)}"
    )
    for v in result.vertices:
        assert (v.lineage_type, v.type) == oracle.vertices[v.arn][:2], why
    assert len(edges) == len(result.edges), f"an edge repeats: {why}"
    assert edges == want_edges, (
        f"edges differ: {why}\n missing {want_edges - edges}\n extra {edges - want_edges}"
    )
    assert result.truncated_by_depth == truncated, why
    if op is not None:  # the operator's index, walked on the caller's behalf: the same,
        # vertex by vertex and (with a step budget of 0) a level at a time in numpy
        for budget in (lineage.SMALL_WALK_STEPS, 0):
            saved, lineage.SMALL_WALK_STEPS = lineage.SMALL_WALK_STEPS, budget
            try:
                filtered = op.query_lineage(
                    starts,
                    direction,
                    include_edges=include_edges,
                    filters=f,
                    max_depth=max_depth,
                    visible_accounts=list(view.visible_accounts or []),
                )
            finally:
                lineage.SMALL_WALK_STEPS = saved
            assert filtered.to_dict() == result.to_dict(), (
                f"visible_accounts walk, budget {budget}: {why}"
            )
    STATS["query_lineage"] += 1


def random_list_request(rng: random.Random, pools: Pools) -> tuple[str, dict[str, Any]]:
    kind = rng.choice(catalog.KINDS)
    values: dict[str, Callable[[], Any]] = {
        "source_uri": lambda: rng.choice(pools.uris),
        "artifact_type": lambda: rng.choice(pools.types),
        "action_type": lambda: rng.choice(pools.types),
        "context_type": lambda: rng.choice(pools.types),
        "experiment_name": lambda: rng.choice(("exp-0", "exp-1", "ghost-name")),
        "trial_name": lambda: rng.choice(("trial-0", "trial-1", "ghost-name")),
        "trial_component_name": lambda: rng.choice(pools.names),
        "source_arn": lambda: rng.choice(pools.vertex_arns + pools.job_arns),
        "destination_arn": lambda: rng.choice(pools.vertex_arns),
        "source_type": lambda: rng.choice((*pools.types, "SageMakerTrainingJob", "Experiment")),
        "destination_type": lambda: rng.choice(pools.types),
        "association_type": lambda: rng.choice([t for t in ASSOCIATION_TYPES if t]),
        "created_after": lambda: rng.choice(pools.times),
        "created_before": lambda: rng.choice(pools.times),
    }
    names = list(catalog.FILTERS[kind])
    chosen = rng.sample(names, min(len(names), rng.choice((0, 0, 1, 1, 2))))
    request: dict[str, Any] = {name: values[name]() for name in chosen}
    if rng.random() < 0.5:
        request["sort_by"] = rng.choice(catalog.SORT_KEYS[kind])
    request["sort_order"] = rng.choice(("Ascending", "Descending"))
    return kind, request


def visible_summary(kind: str, summary: dict[str, Any], visible: set[str]) -> bool:
    if kind == "association":
        return (
            account_of(summary["SourceArn"]) in visible
            and account_of(summary["DestinationArn"]) in visible
        )
    return account_of(summary[SUMMARY_ARN[kind]]) in visible


def check_list(
    rng: random.Random, view: LineageStore, op: LineageStore, oracle: Oracle, pools: Pools, why: str
) -> None:
    kind, request = random_list_request(rng, pools)
    why = f"{why} list_entities({kind!r}, {request})"
    key = catalog.SUMMARY_KEYS[kind]
    everything = op.list_entities(kind, **request)[key]
    want = [s for s in everything if visible_summary(kind, s, oracle.visible)]
    if rng.random() < 0.3:  # page through it
        size = rng.randint(1, 5)
        got: list[dict[str, Any]] = []
        token = None
        while True:
            page = view.list_entities(kind, **request, max_results=size, next_token=token)
            got += page[key]
            token = page.get("NextToken")
            if token is None:
                break
            assert len(got) < 10_000, why
    else:
        got = view.list_entities(kind, **request)[key]
    assert_arns_visible(got, oracle.visible, why)
    assert got == want, f"{why}\n got {got}\n want {want}"
    # the operator's store filtered in the query (what serve does): the same, page by page
    seen = sorted(oracle.visible)
    size = rng.choice((None, 1, 3))
    filtered: list[dict[str, Any]] = []
    token = None
    while True:
        page = op.list_entities(
            kind, **request, max_results=size, next_token=token, visible_accounts=seen
        )
        filtered += page[key]
        token = page.get("NextToken")
        if token is None:
            break
    assert filtered == got, f"visible_accounts, pages of {size}: {why}"
    STATS["list"] += 1


def expected_by_name(oracle: Oracle, name: str, kind: str | None) -> dict[str, list[str]]:
    """Live rows named ``name`` the caller may see, per kind (trial components: any case)."""
    kinds = (
        [kind]
        if kind
        else [*catalog.NAME_KINDS] + (["lineage_group"] if name == arns.LINEAGE_GROUP_NAME else [])
    )
    hits: dict[str, list[str]] = {}
    for k in kinds:
        table = DESCRIBE_TABLES[k]
        if k == "lineage_group":
            sql, value = "SELECT arn FROM lineage_groups WHERE lineage_group_name = ?", name
        elif k == "trial_component":
            sql = "SELECT arn FROM trial_components WHERE live AND lower(trial_component_name) = ?"
            value = name.lower()
        else:
            sql, value = f"SELECT arn FROM {table} WHERE live AND {NAME_COLUMNS[table]} = ?", name
        rows = sorted(r[0] for r in oracle.db.execute(sql, [value]).fetchall())
        if rows:
            hits[k] = rows
    return hits


def check_describe(
    rng: random.Random, view: LineageStore, op: LineageStore, oracle: Oracle, pools: Pools, why: str
) -> None:
    if rng.random() < 0.6:
        mine = [a for a in pools.arns if account_of(a) in oracle.visible]
        target = rng.choice(mine if rng.random() < 0.5 else pools.arns)
        parsed = arns.parse_arn(target)
        assert parsed is not None
        resource_kind = {
            "artifact": "artifact",
            "action": "action",
            "context": "context",
            "experiment": "experiment",
            "experiment-trial": "trial",
            "experiment-trial-component": "trial_component",
            "lineage-group": "lineage_group",
        }[parsed.resource]
        kind = resource_kind if rng.random() < 0.3 else None
        why = f"{why} describe({target!r}, {kind!r})"
        got = outcome(lambda: view.describe(target, kind))
        if parsed.account in oracle.visible:
            assert got == outcome(lambda: op.describe(target, kind)), why
        else:
            assert got == ("NotFoundError", never_existed_message(view, target, kind)), why
    else:
        target = rng.choice(pools.names)
        kind = rng.choice((None, None, *catalog.NAME_KINDS))
        if target == arns.LINEAGE_GROUP_NAME and rng.random() < 0.5:
            kind = "lineage_group"
        why = f"{why} describe({target!r}, {kind!r})"
        got = outcome(lambda: view.describe(target, kind))
        hits = expected_by_name(oracle, target, kind)
        if not hits:
            assert got == ("NotFoundError", never_existed_message(view, target, kind)), why
        elif len(hits) > 1:
            assert got[0] == "QueryError", why
            assert "more than one kind" in got[1], why
        elif len(next(iter(hits.values()))) > 1:
            assert got[0] == "QueryError", why
            listed = set(re.findall(r"arn:aws:sagemaker:[^\s,]+", got[1]))
            assert listed == set(next(iter(hits.values()))), why
        else:
            arn = next(iter(hits.values()))[0]
            assert got == ("ok", op.describe(arn)), why
    # the operator's store filtered in the query (what serve does): the same answer
    filtered = outcome(lambda: op.describe(target, kind, visible_accounts=sorted(oracle.visible)))
    assert filtered == got, f"visible_accounts: {why}"
    # an answer names visible accounts only (an error may echo what was asked)
    assert_arns_visible(
        got[1] if got[0] == "ok" else got[1].replace(target, ""), oracle.visible, why
    )
    STATS["describe"] += 1


def _sql_templates(
    rng: random.Random, pools: Pools, oracle: Oracle
) -> list[Callable[[], tuple[str, list[Any], bool]]]:
    """Random queries over the fixed tables: (SQL, parameters, whether order matters)."""
    table = lambda: rng.choice(SQL_TABLES)  # noqa: E731 - short local helpers
    account = lambda: rng.choice((*ACCOUNTS, UNKNOWN_ACCOUNT))  # noqa: E731
    anything = lambda: rng.choice(pools.arns + pools.vertex_arns)  # noqa: E731
    return [
        lambda: (f"SELECT * FROM {table()}", [], False),
        lambda: (f"SELECT count(*) AS n FROM {table()}", [], False),
        lambda: (f"SELECT account_id, count(*) FROM {table()} GROUP BY ALL", [], False),
        lambda: (f"SELECT * FROM {rng.choice(ARN_TABLES)} WHERE arn = ?", [anything()], False),
        lambda: (f"SELECT * FROM {table()} WHERE account_id = ?", [account()], False),
        lambda: (
            "SELECT * FROM associations WHERE source_arn = ? OR destination_arn = ?",
            [anything(), anything()],
            False,
        ),
        lambda: (
            "SELECT source_arn, destination_arn, account_id FROM lineage_edges "
            "WHERE association_type = 'SameAs'",
            [],
            False,
        ),
        lambda: (
            "SELECT v.arn, v.type, e.association_type, w.arn, w.account_id "
            "FROM lineage_vertices v JOIN lineage_edges e ON e.source_arn = v.arn "
            "JOIN lineage_vertices w ON w.arn = e.destination_arn "
            "WHERE v.account_id <> w.account_id",
            [],
            False,
        ),
        lambda: (
            "SELECT event_type, entity_kind, entity_key, account_id, producer, "
            "version FROM events WHERE entity_key LIKE ?",
            [f"%{account()}%"],
            False,
        ),
        lambda: (
            "SELECT arn, artifact_type, live FROM artifacts WHERE source_uri = ?",
            [rng.choice(pools.uris)],
            False,
        ),
        lambda: (
            "SELECT * FROM trial_component_trials WHERE trial_name = ? OR trial_component_name = ?",
            [rng.choice(pools.names), rng.choice(pools.names)],
            False,
        ),
        lambda: ("SELECT owner_account, grantee_account, live FROM lineage_shares", [], False),
        lambda: (
            "SELECT job_arn, status, CAST(metrics AS VARCHAR) FROM jobs WHERE job_name = ?",
            [rng.choice(("prep", "train", "nope"))],
            False,
        ),
        lambda: (
            " UNION ALL ".join(
                f"SELECT arn, account_id, live FROM {t}"
                for t in DESCRIBE_TABLES.values()
                if t != "lineage_groups"
            ),
            [],
            False,
        ),
        lambda: ("SELECT table_name FROM duckdb_tables() ORDER BY 1", [], True),
        lambda: (
            "SELECT * FROM artifacts WHERE arn IN (SELECT destination_arn FROM lineage_edges)",
            [],
            False,
        ),
        lambda: (
            "SELECT a.arn, count(e.destination_arn) FROM artifacts a LEFT JOIN "
            "lineage_edges e ON e.source_arn = a.arn GROUP BY ALL",
            [],
            False,
        ),
        lambda: (
            "SELECT split_part(arn, ':', 5) AS acct, lineage_type, count(*) "
            "FROM lineage_vertices GROUP BY ALL",
            [],
            False,
        ),
        lambda: (
            f"SELECT * FROM {rng.choice(ENTITY_TABLES)} WHERE created_at > ?",
            [rng.choice(pools.times)],
            False,
        ),
        lambda: (
            "SELECT name, type, arn FROM lineage_vertices WHERE name = ?",
            [rng.choice(pools.names)],
            False,
        ),
        lambda: ("SELECT DISTINCT account_id, region FROM events", [], False),
        lambda: (
            f"SELECT * FROM {rng.choice(('lineage_vertices', 'lineage_edges'))} "
            "ORDER BY ALL LIMIT 5 OFFSET 2",
            [],
            True,
        ),
        lambda: (
            "SELECT count(*) FROM dead_letters UNION ALL SELECT count(*) FROM positions",
            [],
            True,
        ),
        lambda: (
            "SELECT t.arn FROM trials t JOIN trial_component_trials j ON "
            "j.trial_arn = t.arn JOIN trial_components c ON c.arn = "
            "j.trial_component_arn",
            [],
            False,
        ),
    ]


def _canon(rows: list[tuple[Any, ...]], ordered: bool) -> list[str]:
    out = [repr(r) for r in rows]
    return out if ordered else sorted(out)


def check_sql(
    rng: random.Random, view: LineageStore, oracle: Oracle, pools: Pools, why: str
) -> None:
    if rng.random() < 0.15:  # the walk macros, against the BFS over the visible graph
        macro, direction = rng.choice(
            (("lineage_descendants", "Descendants"), ("lineage_ancestors", "Ascendants"))
        )
        start = any_start(rng, oracle, pools)
        depth = rng.choice((None, 0, 1, 2, 3, 5))
        if depth is None:
            query = f"SELECT arn, depth, lineage_type, type FROM {macro}(?)"
            params: list[Any] = [start]
        else:
            query = f"SELECT arn, depth, lineage_type, type FROM {macro}(?, max_depth := ?)"
            params = [start, depth]
        why = f"{why} {query} {params}"
        _, rows = view.sql(query, params)
        order, _, _, depths = oracle.lineage(
            [start], direction, False, LineageFilter(), 10 if depth is None else depth
        )
        # the macros walk away from the start; QueryLineage returns it too
        want = [(a, depths[a], *oracle.vertices[a][:2]) for a in order if a != start]
        assert rows == want, why
        assert_arns_visible(rows, oracle.visible, why)
        STATS["sql"] += 1
        return
    query, params, ordered = rng.choice(_sql_templates(rng, pools, oracle))()
    why = f"{why} {query} {params}"
    names, rows = view.sql(query, params)
    cur = oracle.db.execute(query, params)
    want = cur.fetchall()
    assert names == [d[0] for d in cur.description or []], why
    assert _canon(rows, ordered) == _canon(want, ordered), (
        f"{why}\n extra {set(_canon(rows, False)) - set(_canon(want, False))}\n "
        f"missing {set(_canon(want, False)) - set(_canon(rows, False))}"
    )
    assert_arns_visible(rows, oracle.visible, why)
    # account columns name visible accounts (a grantee's list of shares names its grantors,
    # revoked ones too, and an owner's its grantees: its own business)
    for name, column in zip(names, zip(*rows, strict=True) if rows else [], strict=False):
        if name in ("account_id", "acct") and "lineage_shares" not in query:
            assert set(column) <= oracle.visible, f"leak in column {name}: {why}"
    STATS["sql"] += 1


# -- the graphs -------------------------------------------------------------------------------


@dataclass
class World:
    home: Path
    generated: Generated
    op: LineageStore
    pools: Pools


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, World]]:
    built: dict[int, World] = {}
    for seed in SEEDS:
        home = tmp_path_factory.mktemp(f"accounts-{seed}")
        generated = random_events(random.Random(seed))
        publish_in_chunks(home, generated.events, chunks=3)
        op = LineageStore.open(settings_for(home, ACCOUNTS[0]))
        built[seed] = World(home, generated, op, Pools.read(op))
    yield built
    for world in built.values():
        world.op.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_random_views_show_exactly_what_the_shares_allow(
    worlds: dict[int, World], seed: int
) -> None:
    world = worlds[seed]
    op, pools = world.op, world.pools
    rng = random.Random(1000 + seed)
    # the projection holds the shares the events intend (live, revoked, re-granted)
    _, rows = op.sql("SELECT owner_account, grantee_account, live FROM lineage_shares")
    assert {(o, g): live for o, g, live in rows} == world.generated.shares
    # ARNs name their row's account: the share rules can go by either
    for table in (
        "artifacts",
        "actions",
        "contexts",
        "experiments",
        "trials",
        "trial_components",
        "lineage_groups",
    ):
        _, bad = op.sql(f"SELECT arn FROM {table} WHERE split_part(arn, ':', 5) <> account_id")
        assert bad == [], table
    for caller in ACCOUNTS:
        oracle = Oracle.build(op, caller)
        with op.as_account(caller) as view:
            assert view.account == caller
            assert set(view.visible_accounts or []) == oracle.visible
            _, tables = view.sql("SELECT table_name FROM duckdb_tables() ORDER BY 1")
            assert [t for (t,) in tables] == sorted(
                (*BASE_TABLES, "lineage_vertices", "lineage_edges")
            )
            # every table, whole: exactly the oracle's rows
            for table in (*BASE_TABLES, "lineage_vertices", "lineage_edges"):
                _, got = view.sql(f"SELECT * FROM {table}")
                want = oracle.db.execute(f"SELECT * FROM {table}").fetchall()
                assert _canon(got, False) == _canon(want, False), f"{caller} {table}"
            assert_same_as_sound(
                [tuple(r[:3]) for r in view.sql("SELECT * FROM lineage_edges")[1]], oracle, caller
            )
            why = f"seed {seed} caller {caller} sees {sorted(oracle.visible)}:"
            for i in range(PER_VIEW):
                check_query_lineage(rng, view, oracle, pools, f"{why} #{i}", op)
                check_list(rng, view, op, oracle, pools, f"{why} #{i}")
                check_describe(rng, view, op, oracle, pools, f"{why} #{i}")
                check_sql(rng, view, oracle, pools, f"{why} #{i}")
        oracle.db.close()


@pytest.mark.parametrize("kept_as", ["load", "open"])
@pytest.mark.parametrize("seed", range(3))
def test_a_kept_index_follows_shares_and_same_as_batch_by_batch(
    tmp_path: Path, seed: int, kept_as: str
) -> None:
    """What serve does: one index kept across batches, refreshed with what each changed,
    walked on behalf of every account; against an index built afresh after every batch
    (from the tables, and opened from the ids the projector keeps)."""
    rng = random.Random(5000 + seed)
    events = random_events(rng).events
    settings = settings_for(tmp_path / "home", ACCOUNTS[0])
    store = DuckDBStore(settings.db_path)
    store.track_graph_changes()
    reader = LineageStore(store.con.cursor(), store.path)
    kept = index_of(reader.con, kept_as)
    done = 0
    try:
        with Recorder(settings) as rec:
            while done < len(events):
                size = rng.choice([1, 4, 16, 40])
                rec.publish_many(events[done : done + size])
                done += size
                sync(settings, log=rec.log, store=store)
                changes = store.take_graph_changes()
                assert changes is not None
                assert not changes.overflowed
                kept.refresh(reader.con, changes.vertices, changes.edges)
                fresh = LineageGraph.load(reader.con)
                opened = index_of(reader.con, "open")
                why = f"seed {seed}, after {done} of {len(events)} events"
                assert graph_state(kept) == graph_state(fresh), why
                assert graph_state(opened) == graph_state(fresh), why
                arns_now = sorted(graph_state(fresh)[0])
                if not arns_now:
                    continue
                for caller in ACCOUNTS:
                    sees = visible_accounts(reader.con, caller)
                    kwargs: dict[str, Any] = {
                        "start_arns": [rng.choice(arns_now)],
                        "direction": rng.choice(("Both", "Ascendants", "Descendants")),
                        "include_edges": rng.random() < 0.7,
                        "max_depth": rng.randint(1, 4),
                        "visible_accounts": sees,
                    }
                    want = query_lineage(fresh, **kwargs).to_dict()
                    for index in (kept, opened):
                        assert query_lineage(index, **kwargs).to_dict() == want, (
                            f"{why}: {caller} {kwargs}"
                        )
    finally:
        reader.close()
        store.close()


def test_random_case_counts() -> None:
    """Runs after the randomized test: it asked enough questions of every kind."""
    if not STATS:
        pytest.skip("the randomized test did not run in this session")
    if len(SEEDS) * len(ACCOUNTS) * PER_VIEW < MIN_EACH:
        pytest.fail("too few queries planned")
    for kind in ("query_lineage", "list", "describe", "sql"):
        assert STATS[kind] >= MIN_EACH, dict(STATS)


# == 3. no way out of an account view's SQL =======================================================

ESCAPES = (
    # the source database's and the internal tables, by any name
    "SELECT * FROM map_items",
    "SELECT * FROM entity_state",
    "SELECT * FROM mlineage_meta",
    "SELECT * FROM main.entity_state",
    "SELECT * FROM lineage.main.fields_artifact",
    "SELECT * FROM lineage.artifacts",
    "SELECT * FROM memory.main.artifacts",
    "SELECT * FROM system.main.entity_state",
    "SELECT * FROM query_table('map_items')",
    "SELECT * FROM '{db}'",
    # attaching the projection (or anything)
    "ATTACH '{db}' AS src (READ_ONLY)",
    "ATTACH '{db}'",
    "ATTACH '{db}.snapshot' AS snap",
    "ATTACH ':memory:' AS scratch",
    "ATTACH '{tmp}/new.duckdb' AS fresh",
    # files
    "SELECT * FROM read_csv('{db}')",
    "SELECT * FROM read_text('{db}')",
    "SELECT * FROM read_blob('{db}')",
    "SELECT * FROM read_text('{log}')",
    "SELECT * FROM read_json_auto('{log}')",
    "SELECT * FROM read_parquet('{db}')",
    "SELECT * FROM sniff_csv('{db}')",
    "SELECT * FROM glob('{home}/*')",
    "SELECT * FROM glob('/tmp/*')",
    "SELECT * FROM read_text('/etc/passwd')",
    "COPY artifacts TO '{tmp}/out.csv'",
    "COPY (SELECT * FROM events) TO '{tmp}/out.parquet' (FORMAT parquet)",
    "COPY artifacts FROM '{tmp}/in.csv'",
    "EXPORT DATABASE '{tmp}/export'",
    # extensions
    "INSTALL httpfs",
    "LOAD httpfs",
    "INSTALL sqlite",
    "LOAD '{tmp}/evil.duckdb_extension'",
    "CREATE SECRET leak (TYPE s3, KEY_ID 'k', SECRET 's')",
    # settings
    "SET enable_external_access = true",
    "SET GLOBAL enable_external_access = true",
    "RESET enable_external_access",
    "SET lock_configuration = false",
    "RESET lock_configuration",
    "SET allowed_paths = ['/']",
    "SET allowed_directories = ['/']",
    "SET memory_limit = '100GB'",
    "SET threads = 64",
    "SET temp_directory = '{tmp}/spill'",
    "PRAGMA memory_limit = '100GB'",
    "PRAGMA enable_external_access",
    "PRAGMA threads = 1",
    "CALL enable_logging()",
    # writes
    "CREATE TABLE t (a INT)",
    "CREATE TABLE main.t AS SELECT * FROM artifacts",
    "CREATE VIEW v AS SELECT 1",
    "CREATE MACRO m(x) AS x",
    "CREATE SCHEMA s",
    "INSERT INTO artifacts SELECT * FROM artifacts",
    "INSERT INTO lineage_shares SELECT * FROM lineage_shares",
    "DELETE FROM artifacts",
    "UPDATE lineage_shares SET live = true",
    "DROP TABLE artifacts",
    "ALTER TABLE artifacts ADD COLUMN x INT",
    "TRUNCATE artifacts",
)

# DuckDB allows temp objects on read-only connections: SQL must refuse them itself, or a temp
# table named like a projection table would shadow it for later queries and describe/list
TEMP_ESCAPES = (
    "CREATE TEMP TABLE t AS SELECT 1 AS x",
    "CREATE TEMP VIEW tv AS SELECT 1 AS x",
    "CREATE TEMP MACRO tm(x) AS x + 1",
    "CREATE OR REPLACE TEMP TABLE artifacts AS SELECT * REPLACE ('Forged' AS artifact_type) "
    "FROM main.artifacts",
)


@pytest.fixture(scope="module")
def escape_world(worlds: dict[int, World]) -> World:
    return worlds[SEEDS[0]]


def _state(view: LineageStore) -> tuple[Any, ...]:
    """Everything a view holds: table list (temp ones too), every table's rows, the locks."""
    _, tables = view.sql(
        "SELECT database_name, schema_name, table_name FROM duckdb_tables() ORDER BY ALL"
    )
    _, views = view.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1")
    _, dbs = view.sql("SELECT database_name FROM duckdb_databases() ORDER BY 1")
    contents = tuple(
        tuple(_canon(view.sql(f"SELECT * FROM {t}")[1], False))
        for t in (*BASE_TABLES, "lineage_vertices", "lineage_edges")
    )
    _, settings = view.sql(
        "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"
    )
    return tuple(tables), tuple(views), tuple(dbs), contents, tuple(settings)


@pytest.mark.parametrize(
    "template",
    [
        *ESCAPES,
        *TEMP_ESCAPES,
    ],
)
def test_escapes_from_an_account_view_fail(
    escape_world: World, tmp_path: Path, template: str
) -> None:
    op = escape_world.op
    caller = ACCOUNTS[0]
    _, shares = op.sql(
        "SELECT owner_account FROM lineage_shares WHERE live AND grantee_account = ?", [caller]
    )
    hidden = set(ACCOUNTS) - {caller} - {o for (o,) in shares}
    assert hidden, "the caller must not see every account"
    statement = template.format(
        db=op.path, log=escape_world.home / "events.sqlite", home=escape_world.home, tmp=tmp_path
    )
    with op.as_account(caller) as view:
        before = _state(view)
        assert before[-1] == ((False, True),)
        with pytest.raises(MlineageError) as caught:
            view.sql(statement)
        assert isinstance(caught.value, SqlError), caught.value
        message = str(caught.value)
        for account in hidden:  # the error tells nothing of what the caller may not see
            assert account not in message, message
        assert _state(view) == before, f"{statement} changed the view"
    assert list(tmp_path.iterdir()) == [], f"{statement} wrote a file"


def test_temp_table_shadows_the_projection_for_describe(escape_world: World) -> None:
    """A temp table named ``artifacts`` is refused, so describe keeps answering from the
    projection (regression: DuckDB accepts temp objects on read-only connections)."""
    op = escape_world.op
    with op.as_account(ACCOUNTS[0]) as view:
        _, rows = view.sql(
            "SELECT arn, artifact_type FROM artifacts WHERE live "
            "AND artifact_type IS NOT NULL LIMIT 1"
        )
        arn, typ = rows[0]
        assert view.describe(arn)["ArtifactType"] == typ
        with pytest.raises(SqlError):
            view.sql(
                "CREATE TEMP TABLE artifacts AS SELECT * REPLACE ('Forged' AS "
                "artifact_type) FROM main.artifacts"
            )
        assert view.describe(arn)["ArtifactType"] == typ


# == 4. replay gives the same visibility ==========================================================


def test_replay_gives_the_same_views(worlds: dict[int, World], tmp_path: Path) -> None:
    world = worlds[SEEDS[-1]]
    replayed_path = tmp_path / "replayed.duckdb"
    with open_log(settings_for(world.home, ACCOUNTS[0]).log_url) as log:
        stats = replay(log, replayed_path)
    assert stats.dead_lettered == 0
    rng = random.Random(77)
    with LineageStore.open(replayed_path) as again:
        for caller in ACCOUNTS:
            oracle = Oracle.build(world.op, caller)
            with world.op.as_account(caller) as live, again.as_account(caller) as other:
                assert live.visible_accounts == other.visible_accounts
                for table in (*BASE_TABLES, "lineage_vertices", "lineage_edges"):
                    query = f"SELECT * FROM {table}"
                    if table == "events":  # when each was applied differs, nothing else
                        query = "SELECT * EXCLUDE (applied_at) FROM events"
                    assert _canon(live.sql(query)[1], False) == _canon(
                        other.sql(query)[1], False
                    ), f"{caller} {table}"
                for _ in range(15):
                    starts = [rng.choice(world.pools.vertex_arns + world.pools.arns)]
                    kwargs: dict[str, Any] = {
                        "direction": rng.choice(("Both", "Ascendants", "Descendants")),
                        "include_edges": rng.random() < 0.5,
                        "filters": random_filter(rng, world.pools),
                        "max_depth": rng.randint(0, 6),
                    }
                    assert live.query_lineage(starts, **kwargs) == other.query_lineage(
                        starts, **kwargs
                    )
                    kind, request = random_list_request(rng, world.pools)
                    assert live.list_entities(kind, **request) == other.list_entities(
                        kind, **request
                    )
                    target = rng.choice(world.pools.arns + world.pools.names)
                    assert outcome(lambda t=target: live.describe(t)) == outcome(
                        lambda t=target: other.describe(t)
                    )
                    query, params, ordered = rng.choice(_sql_templates(rng, world.pools, oracle))()
                    if "events" in query:
                        continue
                    assert _canon(live.sql(query, params)[1], ordered) == _canon(
                        other.sql(query, params)[1], ordered
                    ), query
            oracle.db.close()


# == 5. shares are published by their owner ======================================================


def _end_offsets(home: Path) -> dict[str, dict[int, int]]:
    with open_log(settings_for(home, A).log_url) as log:
        return {t: log.end_offsets(t) for t in ("mlineage.jobs.v1", TOPIC_ENTITIES)}


def test_a_share_comes_from_its_owner(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Recorder(settings_for(home, A)) as rec:
        rec.upsert({"kind": "artifact", "source": {"source_uri": RAW}, "artifact_type": "DataSet"})
        before = _end_offsets(home)
        share = {"kind": "lineage_share", "owner_account": B, "grantee_account": A}
        forged: list[dict[str, Any]] = [
            # A claims B's lineage for itself ...
            {"event_type": "EntityUpserted", "payload": {"entity": share}},
            {"event_type": "EntityUpserted", "payload": {"entity": share}, "account_id": A},
            # ... or revokes a share B made
            {"event_type": "EntityDeleted", "payload": share},
            # sharing with oneself is no share
            {
                "event_type": "EntityUpserted",
                "payload": {
                    "entity": {"kind": "lineage_share", "owner_account": A, "grantee_account": A}
                },
            },
        ]
        for draft in forged:
            with pytest.raises(EventValidationError) as caught:
                rec.publish(draft)
            assert "share" in str(caught.value)
            with pytest.raises(EventValidationError):
                rec.build(draft["event_type"], draft["payload"])
        with pytest.raises(EventValidationError):  # all or nothing
            rec.publish_many(
                [
                    {
                        "event_type": "EntityUpserted",
                        "payload": {
                            "entity": {
                                "kind": "lineage_share",
                                "owner_account": A,
                                "grantee_account": C,
                            }
                        },
                    },
                    forged[0],
                ]
            )
        assert _end_offsets(home) == before, "a rejected share was written"
        # Recorder.share publishes as the owner, whichever account the recorder has
        event_ = rec.share(C, owner_account=B)
        assert (event_.account_id, event_.payload.entity.owner_account) == (B, B)
        # a forged record appended behind the recorder's back is dead-lettered
        body = {
            "event_type": "EntityUpserted",
            "event_id": "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            "schema_version": 1,
            "occurred_at": "2026-03-01T10:00:00.000000Z",
            "account_id": C,
            "region": REGION,
            "payload": {
                "entity": {"kind": "lineage_share", "owner_account": A, "grantee_account": C}
            },
        }
        rec.log.append([OutRecord(TOPIC_ENTITIES, f"{A} {C}".encode(), dumps(body).encode())])
    stats = sync(settings_for(home, A))
    assert stats.projector.dead_lettered == 1
    with LineageStore.open(settings_for(home, A)) as store:
        _, rows = store.sql(
            "SELECT owner_account, grantee_account, live, account_id FROM lineage_shares"
        )
        assert rows == [(B, C, True, B)]
        with store.as_account(C) as view:
            assert view.visible_accounts == sorted([B, C])
            assert view.sql("SELECT count(*) FROM artifacts")[1] == [(0,)]  # A's stays A's
            assert_hidden(view, _art(A, RAW))
        with store.as_account(A) as view:
            assert view.visible_accounts == [A]
            assert view.describe(_art(A, RAW))["ArtifactArn"] == _art(A, RAW)
    with (
        LineageStore.open(settings_for(home, A)) as store,
        pytest.raises(MlineageError, match="12 digits"),
    ):
        store.as_account("12")


# == regressions: bugs found here and fixed ========================================================


def test_a_dead_association_does_not_resurface_as_same_as(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Recorder(settings_for(home, A)) as rec:
        rec.upsert({"kind": "artifact", "source": {"source_uri": TRAIN}})
    with Recorder(settings_for(home, B)) as rec:
        rec.upsert({"kind": "artifact", "source": {"source_uri": TRAIN}})
        rec.share(A)
    with Recorder(settings_for(home, A)) as rec:
        rec.associate(_art(A, TRAIN), _art(B, TRAIN), "DerivedFrom")
        rec.delete("association", source_arn=_art(A, TRAIN), destination_arn=_art(B, TRAIN))
    sync(settings_for(home, A))
    with LineageStore.open(settings_for(home, A)) as store, store.as_account(A) as view:
        assert store.list_entities("association") == {"AssociationSummaries": []}
        _, edges = view.sql(
            "SELECT source_arn, destination_arn, association_type FROM lineage_edges ORDER BY ALL"
        )
        assert edges == sorted(
            [(_art(A, TRAIN), _art(B, TRAIN), "SameAs"), (_art(B, TRAIN), _art(A, TRAIN), "SameAs")]
        )
        # the association was deleted; SameAs edges are not associations
        assert view.list_entities("association") == {"AssociationSummaries": []}


def test_association_published_by_an_invisible_account_keeps_it_hidden(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = "444400000004"
    with Recorder(settings_for(home, A)) as rec:
        rec.upsert({"kind": "artifact", "source": {"source_uri": RAW}})
        rec.share(C)
    with Recorder(settings_for(home, B)) as rec:
        rec.upsert({"kind": "artifact", "source": {"source_uri": MODEL}})
        rec.share(C)
    with Recorder(settings_for(home, d)) as rec:
        rec.associate(_art(A, RAW), _art(B, MODEL))
    sync(settings_for(home, A))
    with LineageStore.open(settings_for(home, A)) as store, store.as_account(C) as view:
        assert view.visible_accounts == sorted([A, B, C])
        _, edges = view.sql("SELECT source_arn, destination_arn FROM lineage_edges")
        assert (_art(A, RAW), _art(B, MODEL)) in edges  # both ends visible: the edge is
        for table in ("associations", "lineage_edges"):
            _, rows = view.sql(f"SELECT DISTINCT account_id FROM {table}")
            assert {r[0] for r in rows} <= {A, B, C}, f"{table} names {d}"


def test_an_account_view_is_copied_once_per_version_and_reused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Recorder(settings_for(home, A)) as rec:
        rec.upsert({"kind": "artifact", "source": {"source_uri": RAW}})
        rec.share(B)
    sync(settings_for(home, A))
    with LineageStore.open(settings_for(home, B)) as store:
        first = store.as_account(B)
        made = first.path.stat().st_ino
        # the same version: the same file, not copied again, and open twice at once
        with store.as_account(B) as again:
            assert again.path == first.path
            assert again.path.stat().st_ino == made
            assert again.sql("SELECT count(*) FROM artifacts")[1] == [(1,)]
        assert first.path.parent == cache_dir(store.path)
        assert first.path.name.startswith(f"{B}-")
        with store.as_account(A) as other:  # another account: a file of its own
            assert other.path != first.path
    with Recorder(settings_for(home, A)) as rec:
        rec.upsert({"kind": "artifact", "source": {"source_uri": MODEL}})
    sync(settings_for(home, A))
    with LineageStore.open(settings_for(home, B)) as store, store.as_account(B) as newer:
        assert newer.path != first.path  # the projection changed: a new version
        assert newer.sql("SELECT count(*) FROM artifacts")[1] == [(2,)]
        assert not first.path.exists()  # the old version is gone from the cache ...
        assert first.sql("SELECT count(*) FROM artifacts")[1] == [(1,)]  # ... not from its reader
        assert sorted(p.name for p in newer.path.parent.glob(f"{B}-*")) == [newer.path.name]
    first.close()
    with Recorder(settings_for(home, A)) as rec:
        rec.unshare(B)
    sync(settings_for(home, A))
    with LineageStore.open(settings_for(home, B)) as store, store.as_account(B) as revoked:
        assert revoked.sql("SELECT count(*) FROM artifacts")[1] == [(0,)]
        # and without the cache: a private copy, deleted on close
        uncached = account_view(store, B, cache=False)
        assert uncached.path.parent != cache_dir(store.path)
        uncached.close()
        assert not uncached.path.exists()
