"""The orglife command line: the stack, tokens, and one command per admin RPC.

Output is a Rich table for people and `--json` for scripts. RPC errors are shown with the
field they name; the exit code is 1 for a refused call, 2 for bad usage, 3 for the stack.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from orglife.common.config import REPO_ROOT, Settings, load_settings
from orglife.common.errors import OrglifeError, ValidationError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="orglife: grassroots Party organization life, organized and supervised.")
org_app = typer.Typer(no_args_is_help=True, help="Organizations: county, townships, branches, groups.")
member_app = typer.Typer(no_args_is_help=True, help="Members: register, import, update, transfer.")
app.add_typer(org_app, name="org")
app.add_typer(member_app, name="member")

console = Console()
err_console = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")


def settings() -> Settings:
    return load_settings()


def fail(message: str, code: int = 1):
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def token_for(s: Settings, explicit: str | None = None) -> str:
    token = explicit or s.token
    if not token:
        saved = s.home / "token"
        if saved.exists():
            token = saved.read_text().strip()
    if not token:
        fail("no token: run `./orglife token --role county_admin` (or set ORGLIFE_TOKEN)", 2)
    return token


@contextmanager
def rpc(service: str, token: str | None = None, timeout: float = 120.0):
    """A proxy to one service, carrying the caller's token; errors printed, not raised."""
    from nameko.exceptions import RemoteError, UnknownService
    from nameko.standalone.rpc import ClusterRpcProxy

    from orglife.broker import BootstrapError
    from orglife.stack import broker_uri

    s = settings()
    try:
        uri = broker_uri(s)
    except BootstrapError as exc:
        fail(str(exc), 3)
    context = {"authorization": f"Bearer {token_for(s, token)}"}
    try:
        with ClusterRpcProxy({"AMQP_URI": uri}, context_data=context, timeout=timeout) as cluster:
            yield getattr(cluster, service)
    except ValidationError as exc:
        table = Table("field", "problem", title="rejected", title_style="bold red")
        for field, messages in sorted(exc.errors.items()):
            for message in messages:
                table.add_row(field, message)
        err_console.print(table)
        raise typer.Exit(1)
    except OrglifeError as exc:
        fail(f"{type(exc).__name__}: {exc}")
    except UnknownService:
        fail(f"the {service} service is not running: ./orglife up", 3)
    except RemoteError as exc:
        fail(f"{exc.exc_type}: {exc.value}")


def show_record(record: dict, title: str) -> None:
    table = Table(show_header=False, title=title, title_style="bold")
    for key, value in record.items():
        if isinstance(value, (dict, list)):
            continue
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


def show_items(page: dict, columns: list[str], title: str) -> None:
    table = Table(*columns, title=f"{title} ({len(page['items'])} of {page['total']})")
    for item in page["items"]:
        table.add_row(*["" if item.get(c) is None else str(item.get(c)) for c in columns])
    console.print(table)


def given(**options) -> dict:
    return {key: value for key, value in options.items() if value is not None}


# -- the stack -------------------------------------------------------------------------------
@app.command()
def up(detach: bool = typer.Option(False, "--detach", help="Return once every service answers."),
       scale: list[str] = typer.Option([], "--scale", help="SERVICE=N instances, e.g. members=2")):
    """Start the broker (a private node unless ORGLIFE_AMQP_URI is set), migrate, run services."""
    import eventlet

    from orglife import stack
    from orglife.broker import BootstrapError

    s = settings()
    try:
        counts = {k: int(v) for k, v in (item.split("=", 1) for item in scale)}
    except ValueError:
        fail("--scale takes SERVICE=N", 2)
    already = stack.running_services(s)
    if already:
        fail(f"this home already runs {', '.join(already)}: `./orglife down` first, or use "
             "another ORGLIFE_HOME", 3)
    try:
        uri = stack.broker_uri(s, start=True, say=console.print)
        console.print("migrating databases ...")
        stack.migrate(s)
        stack.declare(uri)
        started = stack.start_services(s, uri, counts)
        console.print(f"starting {', '.join(sorted({x.service for x in started}))} ...")
        stack.wait_ready(uri, started)
    except BootstrapError as exc:
        stack.down(s, say=console.print)  # nothing half-started is left behind
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
        if not all(stack.pid_alive(x.pid) for x in started):
            console.print("[red]a service exited; stopping the rest[/]")
            break
        stopping.wait(1.0)
    stack.down(s, say=console.print)


@app.command()
def down():
    """Stop exactly what `up` started for this home."""
    from orglife import stack
    stack.down(settings(), say=console.print)


@app.command()
def status(as_json: bool = JsonOpt):
    """Services, queue depths, outbox backlog and parked messages."""
    from orglife import stack
    report = stack.status(settings())
    if as_json:
        print_json(report)
        return
    broker = report["broker"]
    console.print(f"broker: {'[green]up[/] ' + broker['uri'] if broker['ok'] else '[red]down[/] ' + broker['detail']}")
    table = Table("service", "instances", "answers", "outbox backlog", title="services")
    for row in report["services"]:
        table.add_row(row["service"], str(row["instances"]),
                      "[green]yes[/]" if row["answers"] else "[red]no[/]",
                      "" if row["outbox_backlog"] is None else str(row["outbox_backlog"]))
    console.print(table)
    table = Table("queue", "messages", "consumers", title="queues (parked = dead-lettered)")
    for row in report["queues"]:
        style = "red" if row["parked"] and row["messages"] else None
        table.add_row(row["queue"], str(row["messages"]), str(row["consumers"]), style=style)
    console.print(table)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def test(ctx: typer.Context):
    """Run the whole suite (starts its own RabbitMQ node and PostgreSQL cluster)."""
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
        path.write_text(value)
        path.chmod(0o600)
    sys.stdout.write(value + "\n")


# -- organizations ---------------------------------------------------------------------------
@org_app.command("add")
def org_add(name: str = typer.Option(..., "--name"),
            kind: str = typer.Option(..., "--kind", help="county, township, general_branch, branch, group"),
            parent: Optional[str] = typer.Option(None, "--parent"),
            category: Optional[str] = typer.Option(None, "--category", help="for branches"),
            org_id: Optional[str] = typer.Option(None, "--id"),
            as_json: bool = JsonOpt):
    """Register an organization."""
    with rpc("members") as members:
        org = members.register_organization(given(org_id=org_id, name=name, kind=kind,
                                                  parent_id=parent, category=category))
    print_json(org) if as_json else show_record(org, f"organization {org['org_id']}")


@org_app.command("list")
def org_list(kind: Optional[str] = None, parent: Optional[str] = None,
             under: Optional[str] = None, category: Optional[str] = None,
             q: Optional[str] = None, limit: int = 50, offset: int = 0, as_json: bool = JsonOpt):
    """List organizations (tree order)."""
    with rpc("members") as members:
        page = members.list_organizations(given(kind=kind, parent_id=parent, under=under,
                                                category=category, q=q, limit=limit,
                                                offset=offset))
    if as_json:
        return print_json(page)
    show_items(page, ["org_id", "name", "kind", "parent_id", "category"], "organizations")


@org_app.command("show")
def org_show(org_id: str, as_json: bool = JsonOpt):
    """One organization, with its child and member counts."""
    with rpc("members") as members:
        org = members.get_organization(org_id)
    print_json(org) if as_json else show_record(org, f"organization {org_id}")


# -- members ---------------------------------------------------------------------------------
def member_fields(name, group, status, mobile, mobile_location, committee, no_vote, phone,
                  email, joined_on) -> dict:
    return given(name=name, group_id=group, status=status, mobile=mobile,
                 mobile_location=mobile_location, committee_member=committee, no_vote=no_vote,
                 phone=phone, email=email, joined_on=joined_on)


@member_app.command("add")
def member_add(name: str = typer.Option(..., "--name"),
               branch: str = typer.Option(..., "--branch", help="branch org id"),
               group: Optional[str] = typer.Option(None, "--group"),
               status: Optional[str] = typer.Option(None, "--status", help="formal or probationary"),
               mobile: Optional[bool] = typer.Option(None, "--mobile/--not-mobile"),
               mobile_location: Optional[str] = typer.Option(None, "--mobile-location"),
               committee: Optional[bool] = typer.Option(None, "--committee/--not-committee"),
               no_vote: Optional[bool] = typer.Option(None, "--no-vote/--vote"),
               phone: Optional[str] = None, email: Optional[str] = None,
               joined_on: Optional[str] = typer.Option(None, "--joined-on", help="YYYY-MM-DD"),
               member_id: Optional[str] = typer.Option(None, "--id"),
               as_json: bool = JsonOpt):
    """Register a member."""
    payload = {"branch_id": branch, **given(member_id=member_id),
               **member_fields(name, group, status, mobile, mobile_location, committee,
                               no_vote, phone, email, joined_on)}
    with rpc("members") as members:
        member = members.register_member(payload)
    print_json(member) if as_json else show_record(member, f"member {member['member_id']}")


@member_app.command("update")
def member_update(member_id: str,
                  name: Optional[str] = None, group: Optional[str] = None,
                  status: Optional[str] = None,
                  mobile: Optional[bool] = typer.Option(None, "--mobile/--not-mobile"),
                  mobile_location: Optional[str] = typer.Option(None, "--mobile-location"),
                  committee: Optional[bool] = typer.Option(None, "--committee/--not-committee"),
                  no_vote: Optional[bool] = typer.Option(None, "--no-vote/--vote"),
                  phone: Optional[str] = None, email: Optional[str] = None,
                  joined_on: Optional[str] = typer.Option(None, "--joined-on"),
                  as_json: bool = JsonOpt):
    """Change a member's fields (only those given)."""
    changes = {"member_id": member_id,
               **member_fields(name, group, status, mobile, mobile_location, committee,
                               no_vote, phone, email, joined_on)}
    with rpc("members") as members:
        member = members.update_member(changes)
    print_json(member) if as_json else show_record(member, f"member {member_id}")


@member_app.command("transfer")
def member_transfer(member_id: str,
                    to: Optional[str] = typer.Option(None, "--to", help="target branch id"),
                    group: Optional[str] = typer.Option(None, "--group", help="group in the target branch"),
                    out: bool = typer.Option(False, "--out", help="leaving this deployment"),
                    as_json: bool = JsonOpt):
    """Move a member to another branch (--to) or out of the deployment (--out)."""
    if bool(to) == out:
        fail("give exactly one of --to BRANCH or --out", 2)
    with rpc("members") as members:
        member = members.transfer_member(given(member_id=member_id, to_group_id=group) |
                                         {"to_branch_id": None if out else to})
    print_json(member) if as_json else show_record(member, f"member {member_id}")


@member_app.command("show")
def member_show(member_id: str, as_json: bool = JsonOpt):
    """A member and their participation record, line by line."""
    with rpc("members") as members:
        member = members.get_member(member_id)
    if as_json:
        return print_json(member)
    show_record(member, f"member {member_id}")
    history = Table("branch", "since", "until", title="branches")
    for stay in member.get("branch_history") or []:
        history.add_row(stay["branch_id"], stay["since"], stay["until"] or "(now)")
    console.print(history)
    record = member.get("participation") or {"items": [], "counts": {}}
    table = Table("held", "kind", "type", "ref", "branch", "status", "remote", "visiting",
                  title=f"participation ({len(record['items'])})")
    for item in record["items"]:
        table.add_row(item["held_at"][:16] if item["held_at"] else "", item["kind"], item["type"],
                      item["ref"], item.get("branch_id") or "", item["status"],
                      "yes" if item["remote"] else "", "yes" if item["visiting"] else "")
    console.print(table)
    counts = Table("year", "type", "present", "leave", "absent", "done", title="counts")
    for year, per_type in sorted(record["counts"].items()):
        for kind, c in sorted(per_type.items()):
            counts.add_row(year, kind, *(str(c.get(k, 0)) for k in ("present", "leave", "absent", "done")))
    console.print(counts)


@member_app.command("list")
def member_list(branch: Optional[str] = None, group: Optional[str] = None,
                under: Optional[str] = None, status: Optional[str] = None,
                mobile: Optional[bool] = typer.Option(None, "--mobile/--not-mobile"),
                q: Optional[str] = None, limit: int = 50, offset: int = 0,
                as_json: bool = JsonOpt):
    """List members (filters and paging)."""
    with rpc("members") as members:
        page = members.list_members(given(branch_id=branch, group_id=group, under=under,
                                          status=status, mobile=mobile, q=q, limit=limit,
                                          offset=offset))
    if as_json:
        return print_json(page)
    show_items(page, ["member_id", "name", "branch_id", "group_id", "status", "mobile",
                      "committee_member"], "members")


@member_app.command("import")
def member_import(path: Path = typer.Argument(..., exists=True, dir_okay=False),
                  chunk: int = typer.Option(1000, "--chunk", min=1, max=5000),
                  as_json: bool = JsonOpt):
    """Import members from .xlsx or .csv with a county office's Chinese headers."""
    from rich.progress import Progress

    from orglife.importfile import ImportFileError, read_member_file
    try:
        sheet = read_member_file(path)
    except ImportFileError as exc:
        fail(str(exc), 2)
    if sheet.unknown_headers and not as_json:
        err_console.print(f"[yellow]ignored columns:[/] {', '.join(sheet.unknown_headers)}")
    result = {"created": [], "updated": [], "unchanged": [], "errors": []}
    with rpc("members") as members, Progress(console=err_console, disable=as_json) as progress:
        task = progress.add_task("importing", total=len(sheet.rows))
        for start in range(0, len(sheet.rows), chunk):
            part = members.import_members(sheet.rows[start:start + chunk])
            for key in ("created", "updated", "unchanged"):
                result[key].extend(part.get(key, []))
            for error in part["errors"]:
                line = sheet.line_numbers[start + error["row"] - 1]
                result["errors"].append({**error, "row": line})
            progress.advance(task, len(sheet.rows[start:start + chunk]))
    if as_json:
        print_json(result)
        raise typer.Exit(1 if result["errors"] else 0)
    console.print(f"created {len(result['created'])}, updated {len(result['updated'])}, "
                  f"unchanged {len(result['unchanged'])}, rejected rows "
                  f"{len({e['row'] for e in result['errors']})}")
    if result["errors"]:
        table = Table("line", "field", "problem", title="rows not imported", title_style="bold red")
        for error in result["errors"]:
            table.add_row(str(error["row"]), error["field"], error["message"])
        console.print(table)
        raise typer.Exit(1)


def main():
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    app()


from orglife.cli import meetings as _meetings  # noqa: E402  (meeting, activity, intake commands)

_meetings.register(app)
