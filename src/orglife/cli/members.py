"""`orglife member add|import|list|show|update|transfer`: members and their participation."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from orglife.cli.common import (
    Column, JsonOpt, coded, console, county_time, err_console, fail, given, items_table,
    print_json, rpc, show_items, show_record,
)
from orglife.common.vocabulary import LABELS, label

app = typer.Typer(name="member", no_args_is_help=True,
                  help="Members: register, import, update, transfer.")

MEMBER_FORMATS = {"status": coded("member_status")}


def show_member(member: dict) -> None:
    show_record(member, f"member {member['member_id']}", MEMBER_FORMATS)


def participation_type(code: str) -> str:
    """A participation's type is a meeting type or, for an activity, its kind."""
    return label(code, "activity_kind" if code in LABELS["activity_kind"] else "meeting_type")


def member_fields(name, group, status, mobile, mobile_location, committee, no_vote, phone,
                  email, joined_on) -> dict:
    return given(name=name, group_id=group, status=status, mobile=mobile,
                 mobile_location=mobile_location, committee_member=committee, no_vote=no_vote,
                 phone=phone, email=email, joined_on=joined_on)


@app.command("add")
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
    print_json(member) if as_json else show_member(member)


@app.command("update")
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
    print_json(member) if as_json else show_member(member)


@app.command("transfer")
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
    print_json(member) if as_json else show_member(member)


PARTICIPATION_COLUMNS = [
    Column("held_at", "held", county_time), "kind", Column("type", format=participation_type),
    "ref", Column("branch_id", "branch"), Column("status", format=coded("attendance")),
    "remote", "visiting",
]
COUNTED = ("present", "leave", "absent", "done")


@app.command("show")
def member_show(member_id: str, as_json: bool = JsonOpt):
    """A member and their participation record, line by line."""
    with rpc("members") as members:
        member = members.get_member(member_id)
    if as_json:
        return print_json(member)
    show_member(member)
    console.print(items_table(
        member.get("branch_history") or [],
        [Column("branch_id", "branch"), "since",
         Column("until", format=lambda until: until or "(now)")], "branches"))
    record = member.get("participation") or {"items": [], "counts": {}}
    console.print(items_table(record["items"], PARTICIPATION_COLUMNS,
                              f"participation ({len(record['items'])})"))
    counts = [{"year": year, "type": kind, **{k: c.get(k, 0) for k in COUNTED}}
              for year, per_type in sorted(record["counts"].items())
              for kind, c in sorted(per_type.items())]
    console.print(items_table(counts, ["year", Column("type", format=participation_type),
                                       *COUNTED], "counts"))


@app.command("list")
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
    show_items(page, ["member_id", "name", "branch_id", "group_id",
                      Column("status", format=MEMBER_FORMATS["status"]), "mobile",
                      "committee_member"], "members")


@app.command("import")
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
        console.print(items_table(result["errors"], [Column("row", "line"), "field",
                                                     Column("message", "problem")],
                                  "rows not imported", title_style="bold red"))
        raise typer.Exit(1)
