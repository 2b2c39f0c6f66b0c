"""``POST /api/v1/lineage``: OpenLineage's HTTP endpoint (what the OpenLineage client's HTTP
transport posts to by default, and what Marquez serves).

The body is one OpenLineage event (RunEvent, DatasetEvent or JobEvent of spec 2.x), or a
JSON array of them, optionally gzip-compressed (``Content-Encoding: gzip``, the client's
``compression: gzip``). The caller is known by ``Authorization: Bearer KEY``, a key from the
``api_keys`` of a credentials-file entry, whose account the events are recorded for
(without ``--credentials``, on loopback, as the operator's account). Each event becomes an
``OpenLineageEventReceived`` whose id comes from its content, so a client's retry is the
same event and applies once. The answer is sent once the projection shows the events:
``201 {"event_ids": [...]}``; a refused request changes nothing and gets a 4xx with
``{"error": code, "message": ...}`` naming the field.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from mlineage.errors import EventLogError, EventValidationError, InDoubtError
from mlineage.events.codec import validate_record, wrap_openlineage
from mlineage.server.backend import Backend, WriteTx
from mlineage.server.sigv4 import Credentials

log = logging.getLogger("mlineage.serve")
PRODUCER = "mlineage-serve/openlineage"
MAX_EVENTS = 100
"""The most events one request may carry."""


def _error(code: str, message: str, status: int, **headers: str) -> Response:
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (OpenLineage events carry no NaN or Infinity)")


def _decompress(body: bytes, limit: int) -> bytes | None:
    """The gzip body inflated (every member, as ``gzip.decompress`` reads them), or None when
    it inflates past ``limit`` (a zip bomb stops there); zlib.error when it is not gzip."""
    out: list[bytes] = []
    size, rest = 0, body
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        data = inflater.decompress(rest, limit - size + 1)
        size += len(data)
        if size > limit or inflater.unconsumed_tail:
            return None
        if not inflater.eof:
            raise zlib.error("the gzip stream is truncated")
        out.append(data)
        rest = inflater.unused_data
        if not rest:
            return b"".join(out)


def _account(request: Request, credentials: Credentials | None, default: str) -> str | Response:
    if credentials is None:
        return default
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return _error(
            "Unauthorized",
            "send Authorization: Bearer KEY with a key from the api_keys of an entry of the "
            "server's credentials file (docs/openlineage.md)",
            401,
            **{"WWW-Authenticate": 'Bearer realm="mlineage"'},
        )
    credential = credentials.by_api_key(key.strip())
    if credential is None:
        return _error(
            "Unauthorized",
            "the API key is not one of the server's",
            401,
            **{"WWW-Authenticate": 'Bearer realm="mlineage", error="invalid_token"'},
        )
    return credential.account_id


def lineage_endpoint(
    backend: Backend,
    credentials: Credentials | None,
    default_account: str,
    region: str,
    read_body: Callable[[Request], Any],
    max_body: int,
) -> Callable[[Request], Any]:
    async def lineage(request: Request) -> Response:
        account = _account(request, credentials, default_account)
        if isinstance(account, Response):
            return account
        try:
            body = await read_body(request)
        except ClientDisconnect:  # gone mid-body: nothing to answer, nothing kept
            return _error("BadRequest", "the client went away before the body ended", 400)
        if body is None:
            return _error("PayloadTooLarge", f"the body is larger than {max_body} bytes", 413)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding == "gzip":
            try:
                body = _decompress(body, max_body)
            except zlib.error as exc:
                return _error(
                    "BadRequest", f"Content-Encoding is gzip but the body is not: {exc}", 400
                )
            if body is None:
                return _error(
                    "PayloadTooLarge", f"the body inflates to more than {max_body} bytes", 413
                )
        elif encoding not in ("identity", ""):
            return _error(
                "UnsupportedMediaType",
                f"Content-Encoding {encoding!r} is not served: send the body as is or gzip",
                415,
            )
        try:
            document = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            return _error("BadRequest", f"the body is not JSON: {exc}", 400)
        events = document if isinstance(document, list) else [document]
        if not events or len(events) > MAX_EVENTS:
            return _error(
                "BadRequest",
                f"send one OpenLineage event, or an array of 1 to {MAX_EVENTS}",
                400,
            )
        drafts = []
        for i, event in enumerate(events):
            where = f"event {i}: " if isinstance(document, list) else ""
            if not isinstance(event, dict):
                return _error("BadRequest", f"{where}an OpenLineage event is a JSON object", 400)
            try:
                draft = wrap_openlineage(event, account, region, PRODUCER)
                validate_record(draft)
            except EventValidationError as exc:
                return _error("BadRequest", f"{where}{exc}", 400)
            drafts.append(draft)

        def publish(tx: WriteTx) -> list[str]:
            return [str(e.event_id) for e in tx.publish(account, drafts, {})]

        try:
            ids = await run_in_threadpool(backend.write, publish)
        except EventLogError as exc:
            if not exc.transient:
                log.exception("POST /api/v1/lineage failed")
                return _error("InternalError", "writing the events failed; see the log", 500)
            log.warning("POST /api/v1/lineage: the event log is not answering: %s", exc)
            if isinstance(exc, InDoubtError):
                return _error(
                    "ServiceUnavailable",
                    "the event log did not confirm the write in time; retrying is safe "
                    "(the same event applies once)",
                    503,
                )
            return _error("ServiceUnavailable", "the event log is not answering: retry later", 503)
        return JSONResponse({"event_ids": ids}, status_code=201)

    return lineage
