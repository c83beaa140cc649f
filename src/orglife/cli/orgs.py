"""`orglife org add|list|show|update`: the organization tree (county, townships, branches,
groups), each with its secretary and work-chat group robot."""
from __future__ import annotations

from typing import Optional

import typer

from orglife.cli.common import (
    Column, JsonOpt, coded, fail, given, print_json, rpc, show_items, show_record,
)

app = typer.Typer(name="org", no_args_is_help=True,
                  help="Organizations: county, townships, branches, groups.")

ORG_FORMATS = {"kind": coded("org_kind"), "category": coded("category")}


def show_org(org: dict) -> None:
    show_record(org, f"organization {org['org_id']}", ORG_FORMATS)


@app.command("add")
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
    print_json(org) if as_json else show_org(org)


@app.command("list")
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
    show_items(page, ["org_id", "name", Column("kind", format=ORG_FORMATS["kind"]), "parent_id",
                      Column("category", format=ORG_FORMATS["category"])], "organizations")


@app.command("show")
def org_show(org_id: str, as_json: bool = JsonOpt):
    """One organization, with its secretary, its robot, and its child and member counts."""
    with rpc("members") as members:
        org = members.get_organization(org_id)
        secretary = None if as_json else _secretary(members, org)
    if as_json:
        return print_json(org)
    show_org({**org, "secretary_id": secretary})


def _secretary(members, org: dict) -> str | None:
    """The secretary as a table shows it, `m1 张伟`; the bare id when the caller may not see
    the member (one transferred out of the caller's township since, say)."""
    from orglife.common.errors import OrglifeError
    from nameko.exceptions import RemoteError
    member_id = org.get("secretary_id")
    if not member_id:
        return None
    try:
        return f"{member_id} {members.get_member(member_id)['name']}"
    except (OrglifeError, RemoteError):
        return member_id


@app.command("update")
def org_update(org_id: str,
               name: Optional[str] = typer.Option(None, "--name"),
               category: Optional[str] = typer.Option(None, "--category", help="for branches"),
               secretary: Optional[str] = typer.Option(
                   None, "--secretary", metavar="MEMBER",
                   help="member id: the branch's secretary, or for a township or county the "
                        "officer who receives its alerts"),
               robot: Optional[str] = typer.Option(
                   None, "--robot", metavar="URL",
                   help="the work-chat group robot's webhook (DingTalk, WeCom, Feishu)"),
               clear_secretary: bool = typer.Option(False, "--clear-secretary",
                                                    help="no secretary any more"),
               clear_robot: bool = typer.Option(False, "--clear-robot", help="no robot any more"),
               as_json: bool = JsonOpt):
    """Change an organization's name, category, secretary or robot (only those given).

    Kind and parent never change. Names and categories: township or county admins only.
    """
    if secretary is not None and clear_secretary:
        fail("give --secretary MEMBER or --clear-secretary, not both", 2)
    if robot is not None and clear_robot:
        fail("give --robot URL or --clear-robot, not both", 2)
    changes = {"org_id": org_id, **given(name=name, category=category, secretary_id=secretary,
                                         robot_url=robot)}
    if clear_secretary:
        changes["secretary_id"] = None
    if clear_robot:
        changes["robot_url"] = None
    if len(changes) == 1:
        fail("nothing to change: give --name, --category, --secretary, --robot, "
             "--clear-secretary or --clear-robot", 2)
    with rpc("members") as members:
        org = members.update_organization(changes)
        secretary_shown = None if as_json else _secretary(members, org)
    if as_json:
        return print_json(org)
    show_org({**org, "secretary_id": secretary_shown})
