"""`orglife parked list|replay`: messages consumers parked, with their reasons, put back once
the cause is fixed (orglife/parking.py)."""
from __future__ import annotations

from typing import Optional

import typer

from orglife.cli.common import (
    Column, JsonOpt, admin_uri, console, fail, items_table, print_json, settings,
)

app = typer.Typer(name="parked", no_args_is_help=True,
                  help="Parked messages: list them with their reasons, replay them.")


@app.command("list")
def parked_list(queue: Optional[str] = typer.Argument(
                    None, help="a consumer queue (default: all), e.g. members.events--meetings"),
                first: int = typer.Option(3, "--first", help="messages shown per queue"),
                as_json: bool = JsonOpt):
    """How many messages each queue parked, why, and the first of them."""
    from orglife import parking
    from orglife import stack as launcher
    try:
        report = parking.summary(admin_uri(), launcher.system_of(settings()), queue, first)
    except parking.ParkingError as exc:
        fail(str(exc), 2)
    if as_json:
        return print_json(report)
    console.print(items_table(report, ["queue", "parked", Column(
        "reasons", format=lambda reasons: "\n".join(f"{n} × {why}" for why, n in
                                                    (reasons or {}).items()))],
        "parked messages", row_style=lambda row: "red" if row["parked"] else None))
    for row in report:
        if row["first"]:
            console.print(items_table(row["first"], ["parked_at", "routing_key", "reason",
                                                     "body"], f"first parked on {row['queue']}"))


@app.command("replay")
def parked_replay(queue: str = typer.Argument(..., help="the consumer queue to put them back on")):
    """Put a queue's parked messages back on it, once the cause is fixed."""
    from orglife import parking
    from orglife import stack as launcher
    try:
        moved = parking.replay(admin_uri(), launcher.system_of(settings()), queue)
    except parking.ParkingError as exc:
        fail(str(exc), 2)
    console.print(f"replayed {moved} message{'s' if moved != 1 else ''} onto "
                  f"{queue.removesuffix('.parked')}")
