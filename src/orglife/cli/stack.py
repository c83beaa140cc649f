"""Top-level commands for the local deployment: `up`, `down`, `status`, `test`, `token`.

Their `app` has no name: `orglife.cli.app` adds its commands at the top level.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from typing import Optional

import typer

from orglife.cli.common import Column, JsonOpt, console, fail, items_table, print_json, settings
from orglife.common.config import REPO_ROOT, write_private

app = typer.Typer()


@app.command()
def up(detach: bool = typer.Option(False, "--detach", help="Return once every service answers."),
       scale: list[str] = typer.Option([], "--scale", help="SERVICE=N instances, e.g. members=2")):
    """Start the broker (a private node unless ORGLIFE_AMQP_URI is set), migrate, run services."""
    import eventlet

    from orglife import stack as launcher
    from orglife.broker import BootstrapError

    s = settings()
    try:
        counts = {k: int(v) for k, v in (item.split("=", 1) for item in scale)}
    except ValueError:
        fail("--scale takes SERVICE=N", 2)
    already = launcher.running_services(s)
    if already:
        fail(f"this home already runs {', '.join(already)}: `./orglife down` first, or use "
             "another ORGLIFE_HOME", 3)
    try:
        uri = launcher.broker_uri(s, start=True, say=console.print)
        console.print("migrating databases ...")
        launcher.migrate(s)
        launcher.declare(uri, launcher.system_of(s))
        started = launcher.start_services(s, uri, counts)
        console.print(f"starting {', '.join(sorted({x.service for x in started}))} ...")
        launcher.wait_ready(uri, started)
    except BootstrapError as exc:
        launcher.down(s, say=console.print)  # nothing half-started is left behind
        fail(str(exc), 3)
    console.print(f"[green]orglife is up[/] (home {s.home}, logs in {s.home / 'run'})")
    if detach:
        return
    console.print("Ctrl-C stops it.")
    stopping = eventlet.event.Event()

    def request_stop(signum, frame):
        if not stopping.ready():
            stopping.send(signum)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    while not stopping.ready():
        if not all(launcher.pid_alive(x.pid) for x in started):
            console.print("[red]a service exited; stopping the rest[/]")
            break
        stopping.wait(1.0)
    launcher.down(s, say=console.print)


@app.command()
def down():
    """Stop exactly what `up` started for this home."""
    from orglife import stack as launcher
    launcher.down(settings(), say=console.print)


def answers(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


@app.command()
def status(as_json: bool = JsonOpt):
    """Services, queue depths, outbox backlog and parked messages."""
    from orglife import stack as launcher
    report = launcher.status(settings())
    if as_json:
        print_json(report)
        return
    broker = report["broker"]
    console.print(f"broker: {'[green]up[/] ' + broker['uri'] if broker['ok'] else '[red]down[/] ' + broker['detail']}")
    console.print(items_table(report["services"], [
        "service", Column("instances", "instances up",
                          format=str), "started", Column("answers", format=answers),
        Column("outbox_backlog", "outbox backlog")], "services"))
    down = [row for service in report["services"] for row in service["instance_health"]
            if not row["up"]]
    if down:
        console.print(items_table(down, [
            "instance", Column("supervisor", "supervised", format=answers), "restarts",
            Column("heartbeat_age_s", "heartbeat age (s)")], "instances down",
            title_style="bold red"))
    console.print(items_table(
        report["queues"], ["queue", "messages", "unacked", "consumers"],
        "queues (parked = dead-lettered)",
        row_style=lambda row: "red" if row["parked"] and row["messages"] else None))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def test(ctx: typer.Context):
    """Run the whole suite (starts its own RabbitMQ node and PostgreSQL cluster)."""
    from orglife.broker import BootstrapError, ensure_rabbitmq_installed
    from orglife.postgres import ensure_postgres_installed
    try:  # before pytest collects: on a fresh machine nothing is skipped for want of them
        ensure_rabbitmq_installed()
        ensure_postgres_installed()
    except BootstrapError as exc:
        fail(str(exc), 3)
    args = [sys.executable, "-m", "pytest", *ctx.args]
    code = subprocess.call(args, cwd=REPO_ROOT)
    raise typer.Exit(code)


@app.command()
def token(role: str = typer.Option(..., "--role", help="county_admin, township_admin, "
                                   "branch_secretary or service"),
          org: Optional[str] = typer.Option(None, "--org", help="The township or branch a "
                                            "scoped role is limited to."),
          sub: str = typer.Option("cli", "--sub", help="Who the token names."),
          save: bool = typer.Option(True, "--save/--no-save",
                                    help="Also keep it as this home's CLI identity.")):
    """Mint a token for the local deployment and print it."""
    from orglife.common.auth import mint_token
    s = settings()
    try:
        value = mint_token(s.secret, sub, role, org)
    except ValueError as exc:
        fail(str(exc), 2)
    if save:
        path = s.home / "token"
        write_private(path, value)
    sys.stdout.write(value + "\n")


@app.command()
def restart(service: str = typer.Argument(..., help="a service of the running stack")):
    """Stop every instance of one service and start it again (the others keep running)."""
    from orglife import stack as launcher
    from orglife.broker import BootstrapError
    from orglife.common.system import DeclarationError
    try:
        started = launcher.restart(settings(), service, say=console.print)
    except (BootstrapError, DeclarationError) as exc:
        fail(str(exc), 3)
    console.print(f"[green]{service} restarted[/] ({len(started)} instance"
                  f"{'s' if len(started) != 1 else ''})")
