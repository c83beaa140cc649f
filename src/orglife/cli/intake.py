"""`orglife intake show/rejected`: what became of reports from other systems, and why."""
from __future__ import annotations

from typing import Optional

import typer

from orglife.cli.common import (
    Column, JsonOpt, console, county_time, given, print_json, rpc, show_items, show_record,
)

app = typer.Typer(name="intake", no_args_is_help=True,
                  help="Intake: reports from other systems, accepted, waiting or rejected.")


def reasons_text(reasons: Optional[dict]) -> str:
    """The service's field → messages, a field a line."""
    return "\n".join(f"{field}: {'; '.join(str(m) for m in messages)}"
                     if isinstance(messages, list) else f"{field}: {messages}"
                     for field, messages in sorted((reasons or {}).items()))


@app.command("rejected")
def intake_rejected(event_type: Optional[str] = typer.Option(
                        None, "--type", help="meeting_reported or activity_reported"),
                    limit: int = 50, offset: int = 0, as_json: bool = JsonOpt):
    """Reports from other systems that were rejected, newest first, with the reasons."""
    with rpc("meetings") as meetings:
        page = meetings.list_rejected_intake(given(event_type=event_type, limit=limit,
                                                   offset=offset))
    if as_json:
        return print_json(page)
    show_items(page, ["event_id", Column("event_type", "type"),
                      Column("rejected_at", format=county_time),
                      Column("reasons", format=reasons_text)], "rejected intake")


@app.command("show")
def intake_show(event_id: str, as_json: bool = JsonOpt):
    """What became of one report, by the event_id of the envelope that carried it."""
    with rpc("meetings") as meetings:
        report = meetings.get_intake(event_id)
    if as_json:
        return print_json(report)
    show_record({k: ", ".join(v) if k == "missing" else v for k, v in report.items()},
                f"intake report {event_id}",
                {key: county_time for key in ("accepted_at", "rejected_at", "received_at",
                                              "deadline")})
    if report.get("reasons"):
        console.print(reasons_text(report["reasons"]))
