"""Top-level commands for the local deployment: `up`, `down`, `status`, `test`, `token`.

Their `app` has no name: `orglife.cli.app` adds its commands at the top level.
"""
from __future__ import annotations

import signal
import sys
from typing import Optional

import typer

from orglife.cli.common import Column, JsonOpt, console, fail, items_table, print_json, settings
from orglife.common.config import write_private

app = typer.Typer()


@app.command()
def up(detach: bool = typer.Option(False, "--detach", help="Return once every service answers."),
       scale: list[str] = typer.Option([], "--scale", help="SERVICE=N instances, e.g. members=2 "
                                       "(or members=2,meetings=2)"),
       cluster: int = typer.Option(1, "--cluster", min=1, help="N private RabbitMQ nodes "
                                   "joined into one cluster, with quorum queues (a province)"),
       postgres: bool = typer.Option(False, "--postgres", help="A private PostgreSQL with a "
                                     "database and a role per service, instead of SQLite.")):
    """Start the broker (a private node unless ORGLIFE_AMQP_URI is set), migrate, run services."""
    import eventlet

    from orglife import stack as launcher
    from orglife.broker import BootstrapError

    s = settings()
    try:
        counts = {k: int(v) for k, v in (part.split("=", 1) for item in scale
                                         for part in item.split(",") if part)}
    except ValueError:
        fail("--scale takes SERVICE=N", 2)
    already = launcher.running_services(s)
    if already:
        fail(f"this home already runs {', '.join(already)}: `./orglife down` first, or use "
             "another ORGLIFE_HOME", 3)
    try:
        from orglife.cluster import start_province  # --cluster/--postgres (remembered)
        s = start_province(s, nodes=cluster, postgres=postgres, say=console.print)
        started = launcher.start_stack(s, counts, say=console.print)
    except BootstrapError as exc:  # start_stack stopped whatever it had started
        launcher.down(s, say=console.print)
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
    if report.get("cluster"):
        from orglife.cluster import cluster_tables
        for table in cluster_tables(report["cluster"]):
            console.print(table)
    console.print(items_table(
        report["queues"], ["queue", "messages", "unacked", "consumers"],
        "queues (parked = dead-lettered)",
        row_style=lambda row: "red" if row["parked"] and row["messages"] else None))
    if report.get("endpoints"):
        console.print(items_table(
            report["endpoints"], ["endpoint", "url", Column("up", format=answers),
                                  Column("received", "received (mails / requests)")],
            "local endpoints of ./orglife demo (notifications go here)"))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def test(ctx: typer.Context):
    """Run the whole suite (starts its own RabbitMQ node and PostgreSQL cluster), in two
    pytest processes at once unless tests are named (orglife/testlanes.py)."""
    from orglife.broker import BootstrapError, ensure_rabbitmq_installed
    from orglife.postgres import ensure_postgres_installed
    try:  # before pytest collects: on a fresh machine nothing is skipped for want of them
        ensure_rabbitmq_installed()
        ensure_postgres_installed()
    except BootstrapError as exc:
        fail(str(exc), 3)
    from orglife import testlanes
    try:
        code = testlanes.run(list(ctx.args))
    except BootstrapError as exc:
        fail(str(exc), 3)
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
def demo(fresh: bool = typer.Option(False, "--fresh", help="Stop this home's stack and start "
                                    "from empty state (asks first, unless --yes)."),
         yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before --fresh "
                                  "deletes this home's data."),
         townships: int = typer.Option(None, "--townships", min=1, max=8, show_default=False,
                                       help="Townships in the demo county (default 3; the "
                                            "first is shaped like the source report's: 38 "
                                            "organizations); fewer is quicker. A home keeps "
                                            "the county it loaded first (--fresh to change).")):
    """Start everything and load a demo county; print what a county admin looks at.

    Bootstraps and starts the stack with local SMTP, SMS and robot endpoints of its own (so you
    see what was sent), builds an invented county (a few townships, one like the source
    report's), sends a year of meetings and activities through intake and RPC, waits for the
    flow to settle and prints compliance by category, top and bottom branches, lights,
    members at risk, grades and the notifications that went out. Running it again is safe:
    it changes nothing and prints the same overview."""
    from orglife.demo import run_demo
    raise typer.Exit(run_demo(settings(), fresh=fresh, yes=yes, townships=townships))


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


@app.command()
def dashboard(page: str = typer.Option("/", "--page", help="Open this page of the dashboard "
                                       "instead of the start page, e.g. /branch/b1.")):
    """Print the URL of the web dashboard, signed in as the CLI's identity.

    The link signs the browser in once (it is good for ten minutes) and then drops itself
    from the address bar; the session lasts at most 12 hours. Run it again for a new one.
    The dashboard itself: http://127.0.0.1:8600 by default (ORGLIFE_DASHBOARD_PORT), or a
    free port when 8600 is taken by another home's."""
    from orglife import stack as launcher
    from orglife.broker import BootstrapError
    if not page.startswith("/"):
        fail("--page takes a path of the dashboard, e.g. /org/c1", 2)
    try:
        url = launcher.dashboard_url(settings(), page)
    except BootstrapError as exc:
        fail(str(exc), 3)
    sys.stdout.write(url + "\n")
    from orglife.cli.common import err_console
    err_console.print("[dim]open it in a browser on this machine: it signs in once, within "
                      "ten minutes; the session then lasts up to 12 hours[/]")
