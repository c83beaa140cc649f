"""`orglife org add|list|show`: the organization tree (county, townships, branches, groups)."""
from __future__ import annotations

from typing import Optional

import typer

from orglife.cli.common import (
    Column, JsonOpt, coded, given, print_json, rpc, show_items, show_record,
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
    """One organization, with its child and member counts."""
    with rpc("members") as members:
        org = members.get_organization(org_id)
    print_json(org) if as_json else show_org(org)
