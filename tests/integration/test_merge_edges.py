"""Visible edges across batches: the merge recomputes an edge only when the association is
touched or one of its ends appears, is deleted or comes back. These walk an edge through each
of those, one batch per step, and compare with projecting everything in one batch."""

from __future__ import annotations

from typing import Any

from mlineage import arns
from mlineage.projection.store import DuckDBStore
from tests.helpers import ACCOUNT, REGION, apply_batches, delete, raw, upsert

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1"
DATA = "s3://bucket/data/train.csv"
TC = "Train-aws-training-job"
IMAGE_ARN = arns.artifact_arn(REGION, ACCOUNT, IMAGE)
DATA_ARN = arns.artifact_arn(REGION, ACCOUNT, DATA)
TC_ARN = arns.trial_component_arn(REGION, ACCOUNT, TC)


def artifact(uri: str, second: int, **fields: Any) -> dict[str, Any]:
    return upsert({"kind": "artifact", "source": {"source_uri": uri}, **fields}, second=second)


def link(src: str, second: int) -> dict[str, Any]:
    return upsert(
        {
            "kind": "association",
            "source_arn": src,
            "destination_arn": TC_ARN,
            "association_type": "ContributedTo",
        },
        second=second,
    )


def edges(store: DuckDBStore) -> set[tuple[str, str]]:
    rows = store.con.execute("SELECT source_arn, destination_arn FROM visible_edges").fetchall()
    return {(s, d) for s, d in rows}


def steps() -> list[tuple[dict[str, Any], set[tuple[str, str]]]]:
    """(event, the visible edges once it is applied)."""
    image, data = (IMAGE_ARN, TC_ARN), (DATA_ARN, TC_ARN)
    return [
        # associations before their ends: nothing to show yet
        (link(IMAGE_ARN, 1), set()),
        (link(DATA_ARN, 2), set()),
        (upsert({"kind": "trial_component", "trial_component_name": TC}, second=3), set()),
        # the image appears: its edge shows
        (artifact(IMAGE, 4, artifact_type="Image"), {image}),
        (artifact(DATA, 5, artifact_type="DataSet"), {image, data}),
        # an update to a live end (what every job does to a shared image) changes nothing
        (artifact(IMAGE, 6, properties={"tag": "v1"}), {image, data}),
        # the end is deleted: its edge goes
        (delete({"kind": "artifact", "source_uri": IMAGE}, second=7), {data}),
        # it comes back: the association is older than the delete, so the edge stays hidden
        (artifact(IMAGE, 8, artifact_type="Image"), {data}),
        # associated again after the delete: the edge shows
        (link(IMAGE_ARN, 9), {image, data}),
        # the other end goes and comes back: its edge goes, then stays hidden
        (delete({"kind": "trial_component", "trial_component_name": TC}, second=10), set()),
        (upsert({"kind": "trial_component", "trial_component_name": TC}, second=11), set()),
        (link(DATA_ARN, 12), {data}),
        # the association itself deleted
        (
            delete(
                {"kind": "association", "source_arn": DATA_ARN, "destination_arn": TC_ARN},
                second=13,
            ),
            set(),
        ),
    ]


def test_edges_follow_their_ends_batch_by_batch() -> None:
    store = DuckDBStore(":memory:")
    applied: list[bytes] = []
    for event, expected in steps():
        value = raw(event)
        applied.append(value)
        apply_batches(store, [value], [1])
        assert edges(store) == expected, event
    # the same events in one batch give the same tables
    once = DuckDBStore(":memory:")
    apply_batches(once, applied, [len(applied)])
    assert once.checksum() == store.checksum()


def test_a_late_delete_of_a_live_end_hides_the_edges_written_before_it() -> None:
    # the image stays live (updated at 6, after the delete at 4), but the association was
    # written at 1, before the delete: ARCHITECTURE.md's rule hides it
    store = DuckDBStore(":memory:")
    apply_batches(
        store,
        [
            raw(link(IMAGE_ARN, 1)),
            raw(upsert({"kind": "trial_component", "trial_component_name": TC}, second=2)),
            raw(artifact(IMAGE, 3)),
        ],
        [3],
    )
    assert edges(store) == {(IMAGE_ARN, TC_ARN)}
    apply_batches(store, [raw(artifact(IMAGE, 6, artifact_type="Image"))], [1])
    assert edges(store) == {(IMAGE_ARN, TC_ARN)}
    apply_batches(store, [raw(delete({"kind": "artifact", "source_uri": IMAGE}, second=4))], [1])
    assert edges(store) == set()
    live = store.con.execute("SELECT live FROM artifacts WHERE arn = ?", [IMAGE_ARN]).fetchall()
    assert live == [(True,)]
