"""Every bad input is a 400, never a 5xx: hypothesis posts requests to every operation, drawn
from the operation's own input shape (botocore's SageMaker model) with nasty values in every
member (lone surrogates, control characters, long strings, ARN-like text, huge and negative
numbers, times at and past the edges of the calendar, wrong JSON types), and random JSON,
and checks that the server answers each with less than 500 and stays alive."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlineage.server import shapes
from mlineage.server.operations import OPERATIONS
from tests.serve.conftest import Server
from tests.serve.test_hardening import post

pytestmark = pytest.mark.slow

_ARN = st.builds(
    lambda account, resource, name: f"arn:aws:sagemaker:us-east-1:{account}:{resource}/{name}",
    st.sampled_from(["111111111111", "222222222222", "000000000000", "1", "abc"]),
    st.sampled_from(
        [
            "artifact",
            "action",
            "context",
            "experiment",
            "experiment-trial",
            "experiment-trial-component",
            "lineage-group",
            "training-job",
            "x",
        ]
    ),
    st.text(min_size=0, max_size=20),
)
_NASTY = st.one_of(
    st.text(max_size=30),
    st.text(
        alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3
    ),  # lone surrogates: JSON escapes them, UTF-8 has no form for them
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=10),  # control characters
    st.sampled_from(
        [
            "",
            " ",
            "arn:",
            "arn:aws:sagemaker",
            "s3://",
            "s3://b/k",
            "null",
            "*",
            "x" * 3000,
            "sagemaker-default-lineage-group",
            "0" * 12,
        ]
    ),
    _ARN,
)
_TIMES = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-02-30T00:00:00Z",
            "1970-01-01",
            "not a time",
            "",
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.integers(min_value=-2, max_value=1001)
)
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _NASTY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NASTY, inner, max_size=3),
    max_leaves=8,
)


def _for(shape: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for ``shape``: mostly of its type, now and then of another JSON type."""
    drawn = _typed(shape, depth)
    if depth == 0:
        return drawn  # the body itself stays an object: random JSON has its own test
    return st.one_of(*[drawn] * 9, _ANY_JSON)


def _typed(shape: Any, depth: int) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if depth > 5:
        return st.just(None)
    if kind == "structure":
        members = shape.members
        required = set(shape.required_members)
        drawn = st.fixed_dictionaries(
            {m: _for(members[m], depth + 1) for m in required},
            optional={m: _for(s, depth + 1) for m, s in members.items() if m not in required},
        )
    elif kind == "list":
        drawn = st.lists(_for(shape.member, depth + 1), max_size=3)
    elif kind == "map":
        drawn = st.dictionaries(_NASTY, _for(shape.value, depth + 1), max_size=3)
    elif kind == "string":
        drawn = _string(shape)
    elif kind in ("integer", "long"):
        meta = shape.metadata
        inside = st.integers(min_value=meta.get("min", 0), max_value=meta.get("max", 1000))
        drawn = st.one_of(*[inside] * 4, _NUMBERS)
    elif kind in ("double", "float"):
        drawn = st.floats(allow_nan=False) | _NUMBERS
    elif kind == "boolean":
        drawn = st.booleans()
    elif kind == "timestamp":
        drawn = st.one_of(*[st.datetimes().map(lambda t: t.isoformat() + "Z")] * 3, _TIMES)
    else:
        drawn = _ANY_JSON
    return drawn


def _string(shape: Any) -> st.SearchStrategy[str]:
    """Mostly text the shape accepts (its enum, or its pattern within its length bounds), so
    requests reach the handlers; else nasty text."""
    if shape.enum:
        return st.sampled_from(shape.enum) | _NASTY
    meta = shape.metadata
    low, high = meta.get("min", 0), min(meta.get("max", 64), 256)
    pattern = meta.get("pattern")
    if pattern and "\\p{" in pattern:
        # Java's Unicode classes (tag keys and values, descriptions): the server spells them
        # out as classes of thousands of ranges, which hypothesis's from_regex cannot draw
        # from in reasonable time; letters, digits and spaces of any script fit them
        letters = st.characters(categories=["L", "N", "Zs"])
        return st.one_of(*[st.text(letters, min_size=low, max_size=high)] * 5, _NASTY)
    compiled = shapes._pattern(pattern) if pattern else None
    if pattern and compiled is None:
        return _NASTY
    valid: st.SearchStrategy[str] = (
        st.from_regex(compiled, fullmatch=True)
        if compiled is not None
        else st.text(min_size=low, max_size=high) | _ARN
    )
    valid = valid.filter(lambda v: low <= len(v) <= high)
    return st.one_of(*[valid] * 5, _NASTY)


_REQUESTS = st.sampled_from(sorted(OPERATIONS)).flatmap(
    lambda name: st.tuples(st.just(name), _for(shapes.operation(name).input_shape))
)


def _alive(server: Server) -> bool:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as r:  # noqa: S310
        return r.status == 200


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=_REQUESTS)
def test_requests_drawn_from_every_operations_shape_never_get_a_5xx(
    server: Server, request: tuple[str, Any]
) -> None:
    name, body = request
    text = json.dumps(body)  # ensure_ascii: a lone surrogate goes out as its \\uXXXX escape
    status, answer = post(server, name, text)
    assert status < 500, (name, text[:500], answer)
    assert "__type" in answer or status == 200


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(OPERATIONS)), body=_ANY_JSON)
def test_random_json_to_every_operation_never_gets_a_5xx(
    server: Server, name: str, body: Any
) -> None:
    status, answer = post(server, name, json.dumps(body))
    assert status < 500, (name, body, answer)


def test_the_server_is_alive_after_the_fuzzing(server: Server) -> None:
    assert _alive(server)
    assert server.proc.poll() is None
