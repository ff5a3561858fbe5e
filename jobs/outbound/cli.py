"""`coattail alerts dispatch`: the webhook dispatcher as a process of its own (one Deployment)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated, Any

import typer

from coattail.settings import load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
log = logging.getLogger("jobs.outbound")


@app.command("dispatch")
def dispatch(
    tier: Annotated[str | None, typer.Option(help="Tier to load (default: config `tier`)")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds")] = None,
) -> None:
    """Deliver alerts from the alerts topic to the configured webhooks until SIGTERM/SIGINT.

    Each alert's offset is committed once every matching target has it (or its dead letter), so a
    restart resumes where this one stopped.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from jobs.outbound.dispatcher import WebhookDispatcher, check_runnable

    settings = load_settings(tier)
    check_runnable(settings)
    dispatcher = WebhookDispatcher(settings)  # resolves every target's URL: a missing Secret fails here
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after the alert in hand", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    timer = threading.Timer(max_seconds, stop.set) if max_seconds else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        dispatcher.run(stop)
    finally:
        if timer:
            timer.cancel()
        dispatcher.close()
    log.info(
        "webhook dispatcher stopped: %d alert(s) handled, %d delivery(ies), %d dead-lettered",
        dispatcher.handled,
        dispatcher.sender.delivered,
        dispatcher.sender.dead_lettered,
    )
