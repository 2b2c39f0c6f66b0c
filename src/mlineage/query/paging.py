"""Opaque paging tokens: the offset of the next page plus a digest of the request, so a
token is refused when used with another request."""

from __future__ import annotations

import base64
import binascii
import json

from mlineage.query.errors import QueryError

MAX_OFFSET = 2**53  # far past any result; DuckDB's OFFSET takes a BIGINT


def encode_token(offset: int, digest: str) -> str:
    raw = json.dumps({"o": offset, "q": digest}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str, digest: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset, got = data["o"], str(data["q"])
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise QueryError("NextToken is not a token this service issued") from exc
    # a token is only base64 JSON: anyone can make one, so the offset is checked like input
    if type(offset) is not int or not 0 <= offset <= MAX_OFFSET:
        raise QueryError("NextToken is not a token this service issued")
    if got != digest:
        raise QueryError(
            "NextToken belongs to a different request (a different query): repeat "
            "the same request parameters with it"
        )
    return offset
