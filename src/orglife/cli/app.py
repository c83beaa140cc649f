"""The orglife command line, assembled: the stack commands at the top level, then one group per
service area. Each group lives in a module of its own and shares only `orglife.cli.common`."""
from __future__ import annotations

import os

import typer

from orglife.cli import (
    activities, broker, intake, meetings, members, notifications, orgs, parked, scoring, stack,
)

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="orglife: grassroots Party organization life, organized and supervised.")
app.add_typer(stack.app)  # nameless: up, down, status, restart, test, token at the top level
app.add_typer(scoring.app)  # nameless: score, compliance, ranking, unevenness, at-risk, ...
for group in (orgs, members, meetings, activities, intake, parked, broker):
    app.add_typer(group.app)
app.add_typer(notifications.app)  # nameless: the `notifications` group and `preferences`


def main():
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    app()
