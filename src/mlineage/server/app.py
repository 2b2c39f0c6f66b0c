"""``mlineage serve``: SageMaker's lineage API (AWS JSON 1.1) over the mlineage projection.

boto3's ``sagemaker`` client sends ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``,
``Content-Type: application/x-amz-json-1.1``, a PascalCase JSON body and a SigV4
``Authorization`` header. The app: verifies the signature against the credentials file
(the key decides the caller's account), refuses operations it does not serve as AWS refuses
unknown ones (``UnknownOperationException``), checks the body against botocore's service
model, runs the operation (:mod:`mlineage.server.operations`) and answers in SageMaker's
shape; errors as ``{"__type": code, "message": ...}`` with AWS's status, which boto3 turns
into ``ClientError`` with that code.

The operations are synchronous (DuckDB, the log): Starlette runs them in its thread pool.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlineage.errors import EventLogError, InDoubtError
from mlineage.server import shapes
from mlineage.server.backend import Backend
from mlineage.server.openlineage import lineage_endpoint
from mlineage.server.operations import OPERATIONS, ApiError, Caller
from mlineage.server.sigv4 import AuthError, Credentials, authenticate

log = logging.getLogger("mlineage.serve")
TARGET_PREFIX = "SageMaker."
CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass
class ServerConfig:
    credentials: Credentials | None  # None: no authentication (loopback only)
    default_account: str
    extended_limits: bool = False
    region: str = "us-east-1"  # requests must be signed for it (MLINEAGE_REGION)


def _error(code: str, message: str, status: int) -> Response:
    # a message may quote the request, which may hold text with no UTF-8 form
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse(
        {"__type": code, "message": message},
        status_code=status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-ErrorType": code},
    )


MAX_BODY = 16 * 1024 * 1024  # far above any lineage request; refused before it is read
_SIGNED = re.compile(r"SignedHeaders=([^,\s]+)")


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is larger than :data:`MAX_BODY` (checked while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _headers(request: Request) -> dict[str, str]:
    """Header names lower-cased, repeated headers joined with ``,`` (as SigV4 signs them), so
    what is verified and what is acted on are the same values."""
    joined: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        joined.setdefault(name.lower(), []).append(value)
    return {name: ",".join(values) for name, values in joined.items()}


def create_app(backend: Backend, config: ServerConfig) -> Starlette:
    stats: dict[str, deque[float]] = {}

    async def handle(request: Request) -> Response:
        body = await _read_body(request)
        if body is None:
            return _error(
                "RequestEntityTooLarge", f"the request body is larger than {MAX_BODY} bytes", 413
            )
        headers = _headers(request)
        if config.credentials is not None:
            try:
                verified = authenticate(
                    request.method,
                    request.url.path,
                    request.url.query,
                    headers,
                    body,
                    config.credentials,
                )
            except AuthError as exc:
                return _error(exc.code, str(exc), exc.status)
            if verified.region != config.region:
                # AWS refuses a scope for another region: the request was meant elsewhere
                return _error(
                    "InvalidSignatureException",
                    "Credential should be scoped to a "
                    f"valid region, not '{verified.region}'. This server serves "
                    f"'{config.region}'.",
                    400,
                )
            credential = verified.credential
            signed = _SIGNED.search(headers.get("authorization", ""))
            if signed is None or "x-amz-target" not in signed.group(1).split(";"):
                return _error(
                    "IncompleteSignatureException",
                    "X-Amz-Target must be among the signed headers",
                    400,
                )
            caller = Caller(credential.account_id, credential.account_id, config.extended_limits)
        else:
            caller = Caller(config.default_account, None, config.extended_limits)
        target = headers.get("x-amz-target", "")  # a repeated header joins: unknown below
        name = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
        handler = OPERATIONS.get(name)
        op = shapes.operation(name) if handler is not None else None
        if handler is None or op is None:
            return _error(
                "UnknownOperationException",
                f"Unknown operation {target or '(no X-Amz-Target)'}: mlineage "
                "serves SageMaker's lineage operations (see docs/serve.md)",
                400,
            )
        try:
            payload = json.loads(body) if body.strip() else {}
        except (ValueError, RecursionError) as exc:
            return _error("SerializationException", f"the body is not JSON: {exc}", 400)
        try:
            parsed = shapes.parse(op, payload, extended_limits=config.extended_limits)
        except shapes.RequestValidationError as exc:
            return _error("ValidationException", str(exc), 400)
        except RecursionError:
            return _error("ValidationException", "the request is nested too deeply", 400)
        started = time.perf_counter()
        try:
            result = await run_in_threadpool(handler, backend, caller, parsed)
        except ApiError as exc:
            return _error(exc.code, exc.message, exc.status)
        except EventLogError as exc:
            if not exc.transient:
                log.exception("%s failed", name)
                return _error("InternalFailure", f"{name} failed on the server; see its log", 500)
            # the log is away (a Kafka outage); AWS SDKs retry a 503 by themselves
            log.warning("%s: the event log is not answering: %s", name, exc)
            if isinstance(exc, InDoubtError):
                return _error(
                    "ServiceUnavailable",
                    "the event log did not confirm the write "
                    "in time: it may have been written; describe it before retrying",
                    503,
                )
            return _error(
                "ServiceUnavailable",
                "the event log is not answering; nothing was written: retry later",
                503,
            )
        except Exception:
            log.exception("%s failed", name)  # the details stay in the server's log
            return _error("InternalFailure", f"{name} failed on the server; see its log", 500)
        finally:
            stats.setdefault(name, deque(maxlen=10_000)).append(time.perf_counter() - started)
        return Response(
            json.dumps(shapes.to_json(result)),
            media_type=CONTENT_TYPE,
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": backend.version})

    lineage = lineage_endpoint(
        backend, config.credentials, config.default_account, config.region, _read_body, MAX_BODY
    )
    routes: list[Route] = [
        Route("/", handle, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
        # OpenLineage's HTTP transport (server/openlineage.py)
        Route("/api/v1/lineage", lineage, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.stats = stats
    return app
