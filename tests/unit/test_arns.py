"""Identity (mlineage.arns): the account check, a job's name and ARN, entity keys."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlineage import arns

A, R = "111122223333", "us-east-1"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("111122223333", True),
        ("000000000000", True),
        ("11112222333", False),  # 11 digits
        ("1111222233334", False),  # 13
        ("111122223333\n", False),  # `^...$` with re.match let this through
        (" 111122223333", False),
        ("11112222333a", False),
        ("", False),
        (111122223333, False),  # a number is not an account id
        (None, False),
    ],
)
def test_is_account(value: object, ok: bool) -> None:
    assert arns.is_account(value) is ok


def test_a_job_named_by_name_by_arn_or_both_has_one_identity() -> None:
    arn = f"arn:aws:sagemaker:{R}:{A}:training-job/train-1"
    assert arns.job_identity(R, A, "TrainingJob", "train-1", None) == ("train-1", arn)
    assert arns.job_identity(R, A, "TrainingJob", None, arn) == ("train-1", arn)
    assert arns.job_identity(R, A, "TrainingJob", "train-1", arn) == ("train-1", arn)
    assert arns.job_identity(R, A, "TransformJob", "t", None)[1].endswith(":transform-job/t")


def test_entity_keys() -> None:
    art = SimpleNamespace(
        kind="artifact", artifact_arn=None, source=SimpleNamespace(source_uri="s3://b/k")
    )
    assert arns.entity_key(art, A, R) == arns.artifact_arn(R, A, "s3://b/k")
    deleted_art = SimpleNamespace(kind="artifact", source_uri="s3://b/k")  # a delete's payload
    assert arns.entity_key(deleted_art, A, R) == arns.artifact_arn(R, A, "s3://b/k")
    given = SimpleNamespace(kind="artifact", artifact_arn=f"arn:aws:sagemaker:{R}:{A}:artifact/x")
    assert arns.entity_key(given, A, R) == given.artifact_arn
    ctx = SimpleNamespace(kind="context", context_name="c")
    assert arns.entity_key(ctx, A, R) == f"arn:aws:sagemaker:{R}:{A}:context/c"
    assoc = SimpleNamespace(kind="association", source_arn="s", destination_arn="d")
    assert arns.entity_key(assoc, A, R) == "s d"
    share = SimpleNamespace(kind="lineage_share", owner_account=A, grantee_account="444455556666")
    assert arns.entity_key(share, A, R) == f"{A} 444455556666"
    link = SimpleNamespace(kind="trial_component_trial", trial_component_name="tc", trial_name="t")
    assert arns.entity_key(link, A, R) == (
        f"{arns.trial_component_arn(R, A, 'tc')} {arns.named_arn('trial', R, A, 't')}"
    )


def test_the_lineage_group_arn() -> None:
    assert arns.lineage_group_arn(R, A) == (
        f"arn:aws:sagemaker:{R}:{A}:lineage-group/sagemaker-default-lineage-group"
    )
    assert arns.lineage_group_arn(R, A, "g").endswith(":lineage-group/g")
