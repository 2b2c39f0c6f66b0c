"""Opaque paging tokens: the offset of the next page plus a digest of the request, so a
token is refused when used with another request."""

from __future__ import annotations

import base64
import binascii
import json

from mlineage.query.errors import QueryError


def encode_token(offset: int, digest: str) -> str:
    raw = json.dumps({"o": offset, "q": digest}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str, digest: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset, got = int(data["o"]), str(data["q"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise QueryError("NextToken is not a token this service issued") from exc
    if got != digest:
        raise QueryError("NextToken belongs to a different request (a different query): repeat "
                         "the same request parameters with it")
    if offset < 0:
        raise QueryError("NextToken is not a token this service issued")
    return offset
