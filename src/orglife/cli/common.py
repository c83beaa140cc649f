"""What every command group shares: settings, the RPC call, errors and exit codes, display.

Output is a Rich table for people and `--json` for scripts. RPC errors are shown with the
field they name; the exit code is 1 for a refused call, 2 for bad usage, 3 for the stack.
Tables are read by county office staff: instants are shown in the county's time zone and
codes with their Chinese names; `--json` gives the values exactly as the service returned them.
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from orglife.common.config import DEFAULT_TZ, Settings, load_settings
from orglife.common.errors import OrglifeError, ValidationError
from orglife.common.vocabulary import label

console = Console()
err_console = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
AT_HELP = "ISO 8601, e.g. 2026-11-10T19:30+08:00 (no offset: county time)"

Formatter = Callable[[Any], str]


def settings() -> Settings:
    return load_settings()


def fail(message: str, code: int = 1):
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def given(**options) -> dict:
    """The options the user gave (None: not given), as the service's arguments."""
    return {key: value for key, value in options.items() if value is not None}


def token_for(s: Settings, explicit: str | None = None) -> str:
    token = explicit or s.token
    if not token:
        saved = s.home / "token"
        if saved.exists():
            token = saved.read_text().strip()
    if not token:
        fail("no token: run `./orglife token --role county_admin` (or set ORGLIFE_TOKEN)", 2)
    return token


def admin_uri() -> str:
    """The broker as the operator reaches it (the private node's admin account, or
    ORGLIFE_AMQP_URI), for commands that work on queues rather than through RPC."""
    from orglife.broker import BootstrapError
    from orglife.stack import broker_uri
    try:
        return broker_uri(settings())
    except BootstrapError as exc:
        fail(str(exc), 3)


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
        problems = [{"field": field, "problem": message}
                    for field, messages in sorted(exc.errors.items()) for message in messages]
        err_console.print(items_table(problems, ["field", "problem"], "rejected",
                                      title_style="bold red"))
        raise typer.Exit(1)
    except OrglifeError as exc:
        fail(f"{type(exc).__name__}: {exc}")
    except UnknownService:
        fail(f"the {service} service is not running: ./orglife up", 3)
    except RemoteError as exc:
        fail(f"{exc.exc_type}: {exc.value}")


# -- formatting one value ----------------------------------------------------------------------
def text(value) -> str:
    """The plain cell: nothing for None, "yes" or nothing for a flag (the yeses stand out)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    return str(value)


def yes_no(value: Optional[bool]) -> str:
    """A flag where "no" says something (a quorum missed); nothing when not known yet."""
    return "" if value is None else ("yes" if value else "no")


def county_time(value: Optional[str], tz: str | None = None) -> str:
    """An ISO instant (the services answer in UTC) as the county reads it: `2026-11-10 19:30`.

    `tz` defaults to the deployment's (ORGLIFE_TZ). A date, or anything that is not an instant,
    is shown as it is; an instant without an offset is already county time (SPEC §2).
    """
    if not value or "T" not in value:
        return text(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        # ORGLIFE_TZ read directly: loading all settings for each cell would be slow and
        # would create this home's secret just to print a table.
        moment = moment.astimezone(ZoneInfo(tz or os.environ.get("ORGLIFE_TZ") or DEFAULT_TZ))
    return moment.strftime("%Y-%m-%d %H:%M")


def coded(domain: str) -> Formatter:
    """Cells holding codes of one vocabulary domain, shown with their Chinese names."""
    def show(code) -> str:
        return label(code, domain) if code else ""
    return show


# -- tables ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One table column: the item's key, its header (the key by default), how to show a value."""
    key: str
    header: str | None = None
    format: Formatter = text


def columns_of(specs: Iterable[Column | str]) -> list[Column]:
    """A bare key is a plain column."""
    return [spec if isinstance(spec, Column) else Column(spec) for spec in specs]


def items_table(items: Iterable[Mapping], specs: Sequence[Column | str], title: str,
                row_style: Callable[[Mapping], Optional[str]] | None = None,
                **table_options) -> Table:
    """A row per item; `row_style` colours a row by its item (absentees red, say)."""
    columns = columns_of(specs)
    table = Table(*(c.header or c.key for c in columns), title=title, **table_options)
    for item in items:
        table.add_row(*(c.format(item.get(c.key)) for c in columns),
                      style=row_style(item) if row_style else None)
    return table


def show_items(page: dict, specs: Sequence[Column | str], title: str,
               row_style: Callable[[Mapping], Optional[str]] | None = None) -> None:
    """A list method's page (`items`, `total`), titled with how much of it is shown."""
    console.print(items_table(page["items"], specs, f"{title} ({len(page['items'])} of "
                                                    f"{page['total']})", row_style))


def show_record(record: Mapping, title: str,
                formats: Mapping[str, Formatter] | None = None) -> None:
    """One record, a field a line; nested lists and dicts are left to tables of their own.

    A flag that is off reads "no" here: a blank beside its name would look unknown.
    """
    formats = formats or {}
    table = Table(show_header=False, title=title, title_style="bold")
    for key, value in record.items():
        if isinstance(value, (dict, list)):
            continue
        plain = yes_no if isinstance(value, bool) else text
        table.add_row(key, formats.get(key, plain)(value))
    console.print(table)
