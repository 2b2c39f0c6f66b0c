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
import time
import uuid
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlineage.server import shapes
from mlineage.server.backend import Backend
from mlineage.server.operations import OPERATIONS, ApiError, Caller
from mlineage.server.sigv4 import AuthError, Credentials, verify

log = logging.getLogger("mlineage.serve")
TARGET_PREFIX = "SageMaker."
CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass
class ServerConfig:
    credentials: Credentials | None  # None: no authentication (loopback only)
    default_account: str
    extended_limits: bool = False


def _error(code: str, message: str, status: int) -> Response:
    return JSONResponse({"__type": code, "message": message}, status_code=status,
                        media_type=CONTENT_TYPE,
                        headers={"x-amzn-RequestId": str(uuid.uuid4()),
                                 "x-amzn-ErrorType": code})


def create_app(backend: Backend, config: ServerConfig) -> Starlette:
    stats: dict[str, list[float]] = {}

    async def handle(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers.items())
        if config.credentials is not None:
            try:
                credential = verify(request.method, request.url.path, request.url.query,
                                    headers, body, config.credentials)
            except AuthError as exc:
                return _error(exc.code, str(exc), exc.status)
            caller = Caller(credential.account_id, credential.account_id,
                            config.extended_limits)
        else:
            caller = Caller(config.default_account, None, config.extended_limits)
        target = request.headers.get("x-amz-target", "")
        name = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
        handler = OPERATIONS.get(name)
        op = shapes.operation(name) if handler is not None else None
        if handler is None or op is None:
            return _error("UnknownOperationException",
                          f"Unknown operation {target or '(no X-Amz-Target)'}: mlineage "
                          "serves SageMaker's lineage operations (see docs/serve.md)", 400)
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            return _error("SerializationException", f"the body is not JSON: {exc}", 400)
        try:
            parsed = shapes.parse(op, payload, extended_limits=config.extended_limits)
        except shapes.RequestValidationError as exc:
            return _error("ValidationException", str(exc), 400)
        started = time.perf_counter()
        try:
            result = await run_in_threadpool(handler, backend, caller, parsed)
        except ApiError as exc:
            return _error(exc.code, exc.message, exc.status)
        except Exception as exc:
            log.exception("%s failed", name)
            return _error("InternalFailure", f"{name} failed: {exc!r}", 500)
        finally:
            stats.setdefault(name, []).append(time.perf_counter() - started)
        return Response(json.dumps(shapes.to_json(result)), media_type=CONTENT_TYPE,
                        headers={"x-amzn-RequestId": str(uuid.uuid4())})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": backend.version})

    routes: list[Route] = [
        Route("/", handle, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.stats = stats
    return app
