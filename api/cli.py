"""`coattail api`: serve the alert API and the dashboard with uvicorn."""

from __future__ import annotations

import typer

from coattail.cliutil import fail
from coattail.settings import load_settings


def app(
    host: str | None = typer.Option(None, help="Interface to bind (default: api.host, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default: api.port, 8000)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve the alert API and the live dashboard (settings from config/ and COATTAIL_* variables)."""
    import uvicorn

    from api.app import create_app
    from api.serving import uvicorn_config

    settings = load_settings()
    bind_host = host or settings.api.host
    bind_port = settings.api.port if port is None else port
    if not 0 <= bind_port <= 65535:
        fail(f"--port {bind_port} is not a TCP port")
    application = create_app(settings)  # ConfigError (no DynamoDB endpoint) -> one line, exit 2
    shown = "127.0.0.1" if bind_host in ("0.0.0.0", "::") else bind_host
    base = f"http://{shown}:{bind_port}"
    typer.echo(f"alert API:  {base}/alerts   (OpenAPI docs: {base}/docs)")
    typer.echo(f"dashboard:  {base}/")
    typer.echo(f"store:      DynamoDB table {settings.hot_store.table} at {application.state.store.endpoint}")
    # Slow clients are cut off (request and keep-alive timeouts from api.*; see api.serving).
    config = uvicorn_config(application, settings, host=bind_host, port=bind_port, log_level=log_level)
    uvicorn.Server(config).run()
