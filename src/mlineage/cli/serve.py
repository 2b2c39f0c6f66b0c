"""`mlineage serve` (the SageMaker-compatible HTTP API) and `mlineage schemas`."""

from __future__ import annotations

from pathlib import Path

import click

from mlineage.cli.app import Ctx, cli, pass_ctx, print_note
from mlineage.cli.render import err, out
from mlineage.cli.services import service_logging
from mlineage.events.schemas import export
from mlineage.projection.service import AccessLock, WriterLock

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--credentials",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="MLINEAGE_CREDENTIALS",
    help='JSON file of access keys: {"AKID": '
    '{"secret_access_key": "...", "account_id": "123456789012"}} '
    "[env MLINEAGE_CREDENTIALS]. Requests are verified with SigV4 against it and the "
    "key decides the caller's account; an entry's optional \"api_keys\" list holds Bearer "
    "keys for POST /api/v1/lineage (OpenLineage).",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve without authentication, as the "
    "operator (sees every account; writes as --account-id). Loopback only.",
)
@click.option(
    "--extended-limits",
    is_flag=True,
    help="Lift SageMaker's caps on QueryLineage "
    "(MaxDepth up to 100, MaxResults uncapped) and List* MaxResults. Entity limits "
    "are the event schema's and stay.",
)
@pass_ctx
def serve(
    ctx: Ctx, host: str, port: int, credentials: Path | None, no_auth: bool, extended_limits: bool
) -> None:
    """Serve SageMaker's lineage API (boto3 and the SageMaker SDK work unchanged).

    Point a client at it with endpoint_url, e.g.
    boto3.client("sagemaker", endpoint_url="http://127.0.0.1:8080"). OpenLineage clients
    post to http://HOST:PORT/api/v1/lineage (docs/openlineage.md). Writes become events on
    the configured log and are answered once the projection shows them. This process owns
    its projection (--db): stop `project --follow` on the same file first. See docs/serve.md.
    """
    import uvicorn  # noqa: PLC0415 - only this command needs the web stack

    from mlineage.server.app import ServerConfig, create_app  # noqa: PLC0415
    from mlineage.server.backend import Backend  # noqa: PLC0415
    from mlineage.server.sigv4 import Credentials  # noqa: PLC0415

    if no_auth and credentials is not None:
        raise click.UsageError("--no-auth and --credentials exclude each other")
    if not no_auth and credentials is None:
        raise click.UsageError(
            "give --credentials FILE (SigV4 against those keys), or "
            "--no-auth to serve unauthenticated on loopback"
        )
    if no_auth and host not in LOOPBACK:
        raise click.UsageError(
            f"--no-auth serves on loopback only, not on {host}: use "
            "--credentials to listen elsewhere"
        )
    keys = Credentials.load(credentials) if credentials is not None else None
    settings = ctx.settings
    if no_auth:
        err.print(
            "[yellow]warning:[/] serving WITHOUT authentication: every caller is the "
            f"operator (sees every account, writes as {settings.account_id})"
        )
    service_logging()
    lock = WriterLock(settings.db_path).acquire("serve")
    access = AccessLock(settings.db_path)
    access.acquire(exclusive=True, note=print_note)  # as `project --follow` does
    try:
        backend = Backend(settings)
        backend.write_snapshot(force=True)
    except BaseException:
        lock.release()
        raise
    finally:
        access.release()
    stop = backend.follow()
    app = create_app(
        backend, ServerConfig(keys, settings.account_id, extended_limits, settings.region)
    )
    err.print(
        f"serving SageMaker's lineage API on http://{host}:{port} (log "
        f"{settings.log_url}, projection {settings.db_path}); Ctrl-C to stop"
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        stop.set()
        backend.close()
        lock.release()


@cli.group()
def schemas() -> None:
    """JSON Schemas of the events."""


@schemas.command("export")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="Directory to write <EventType>.v1.json into.",
)
def schemas_export(out_dir: Path) -> None:
    """Write one JSON Schema per event type and version, generated from the models."""
    for path in export(out_dir):
        out.print(f"wrote {path}")
