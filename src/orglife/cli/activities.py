"""`orglife activity log/show/list`: members' household visits, volunteer service, heart talks."""
from __future__ import annotations

from typing import Optional

import typer

from orglife.cli.common import (
    AT_HELP, Column, JsonOpt, coded, county_time, given, print_json, rpc, show_items, show_record,
)

ACTIVITY_FORMATS = {"kind": coded("activity_kind"), "held_at": county_time}

app = typer.Typer(name="activity", no_args_is_help=True,
                  help="Activities: household visits, volunteer service, heart talks.")


@app.command("log")
def activity_log(member: str = typer.Option(..., "--member", help="member id"),
                 kind: str = typer.Option(..., "--kind",
                                          help="household_visit, volunteer or heart_talk"),
                 at: str = typer.Option(..., "--at", help=AT_HELP),
                 household: Optional[str] = typer.Option(None, "--household",
                                                         help="the household visited"),
                 opinions: Optional[str] = typer.Option(None, "--opinions",
                                                        help="opinions collected on a visit"),
                 note: Optional[str] = typer.Option(None, "--note"),
                 activity_id: Optional[str] = typer.Option(None, "--id"),
                 as_json: bool = JsonOpt):
    """Log a member's activity."""
    payload = given(activity_id=activity_id, member_id=member, kind=kind, held_at=at,
                    household=household, opinions=opinions, note=note)
    with rpc("meetings") as meetings:
        activity = meetings.log_activity(payload)
    if as_json:
        return print_json(activity)
    show_record(activity, f"activity {activity['activity_id']}", ACTIVITY_FORMATS)


@app.command("show")
def activity_show(activity_id: str, as_json: bool = JsonOpt):
    """One activity."""
    with rpc("meetings") as meetings:
        activity = meetings.get_activity(activity_id)
    if as_json:
        return print_json(activity)
    show_record(activity, f"activity {activity_id}", ACTIVITY_FORMATS)


@app.command("list")
def activity_list(member: Optional[str] = typer.Option(None, "--member", help="member id"),
                  branch: Optional[str] = None, under: Optional[str] = None,
                  kind: Optional[str] = typer.Option(None, "--kind"),
                  from_: Optional[str] = typer.Option(None, "--from", help="YYYY-MM-DD"),
                  to: Optional[str] = typer.Option(None, "--to", help="YYYY-MM-DD"),
                  limit: int = 50, offset: int = 0, as_json: bool = JsonOpt):
    """List activities, newest first (filters and paging)."""
    filters = given(member_id=member, branch_id=branch, under=under, kind=kind, to=to,
                    limit=limit, offset=offset)
    if from_ is not None:
        filters["from"] = from_
    with rpc("meetings") as meetings:
        page = meetings.list_activities(filters)
    if as_json:
        return print_json(page)
    show_items(page, ["activity_id", Column("held_at", format=county_time), "member_id",
                      "branch_id", Column("kind", format=coded("activity_kind")), "household",
                      "source"], "activities")
