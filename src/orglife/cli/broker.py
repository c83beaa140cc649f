"""`orglife broker peer-account NAME`: accounts on the private RabbitMQ node (SPEC §7)."""
from __future__ import annotations

import sys

import typer

from orglife.cli.common import admin_uri, fail, settings

app = typer.Typer(name="broker", no_args_is_help=True,
                  help="The private RabbitMQ node's accounts.")


@app.command("peer-account")
def peer_account(name: str = typer.Argument(..., help="the peer system, e.g. checkin-app")):
    """Create (or show) a peer system's account: it may only publish to intake.events."""
    from orglife import stack as launcher
    s = settings()
    if s.amqp_uri:
        fail("ORGLIFE_AMQP_URI is set: peer accounts of an external broker are made by its "
             "operator (write permission on intake.events only)", 2)
    admin_uri()  # the node must be running
    sys.stdout.write(launcher.private_broker(s).peer_account(name) + "\n")
