"""What every command group shares: settings, the RPC call, errors and exit codes, display.

Output is a Rich table for people and `--json` for scripts. RPC errors are shown with the
field they name; the exit code is 1 for a refused call, 2 for bad usage, 3 for the stack.
Tables are read by county office staff: instants are shown in the county's time zone and
codes with their Chinese names; `--json` gives the values exactly as the service returned them.
"""
from __future__ import annotations

import json
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence
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


# -- figures and Chinese names -------------------------------------------------------------------
def percent(value) -> str:
    """A ratio (0..1) as people read it: 0.8333 → `83.3%`; nothing when not known."""
    if value is None or isinstance(value, bool):
        return text(value)
    return f"{value * 100:.1f}%"


def chinese(code, domain: str) -> str:
    """A code's Chinese name alone (the code when it has none), for files filed in Chinese."""
    from orglife.common.vocabulary import LABELS
    if code is None:
        return ""
    return LABELS[domain].get(code, code)


# -- spreadsheets ----------------------------------------------------------------------------------
class Sheet(NamedTuple):
    """One sheet of a workbook: its title, the header line, the rows under it, and optionally
    an Excel number format per header (e.g. {"达标率": "0.0%"}). A plain 3-tuple works too."""
    title: str
    headers: Sequence[str]
    rows: Iterable[Sequence]
    formats: Mapping[str, str] = {}


XLSX_HELP = "Also write the report to this .xlsx file (Chinese headers, one sheet per table)."
_SHEET_TITLE_BAD = re.compile(r"[\[\]:*?/\\]")


def check_xlsx_path(path: Optional[Path]) -> Optional[Path]:
    """An --xlsx target that can be written (checked before anything is asked of a service):
    ends in .xlsx, is not a folder, and its folder exists and is writable; else a usage error."""
    if path is None:
        return None
    if path.suffix.lower() != ".xlsx":
        raise typer.BadParameter(f"{path} does not end in .xlsx")
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise typer.BadParameter(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists()
                                                     and not os.access(path, os.W_OK)):
        raise typer.BadParameter(f"cannot write {path}: permission denied")
    return path


XlsxOpt = typer.Option(None, "--xlsx", metavar="FILE", help=XLSX_HELP, dir_okay=False,
                       callback=check_xlsx_path)


def _display_width(value) -> int:
    """Columns a cell needs: CJK characters are twice as wide as Latin ones."""
    import unicodedata
    shown = value if isinstance(value, str) else ("" if value is None else str(value))
    return max((sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)
                for line in shown.splitlines() or [""]), default=0)


def write_xlsx(path: Path | str, sheets: Sequence[Sheet | tuple]) -> Path:
    """Write a workbook: per sheet a bold header line (frozen, with filters), then the rows;
    columns sized to their content. None is an empty cell, a flag 是 or empty; text is kept as
    text (a name starting with "=" is not a formula). The file is replaced whole or not at all;
    a file that cannot be written is a usage error (exit code 2)."""
    import tempfile

    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    path = Path(path)
    workbook = Workbook()
    workbook.remove(workbook.active)
    used: set[str] = set()
    for spec in sheets:
        sheet = spec if isinstance(spec, Sheet) else Sheet(*spec)
        title = _SHEET_TITLE_BAD.sub("_", sheet.title)[:31] or "Sheet"
        base, n = title, 2
        while title.lower() in used:  # titles are unique, case-insensitively
            suffix = f" ({n})"
            title, n = base[:31 - len(suffix)] + suffix, n + 1
        used.add(title.lower())
        ws = workbook.create_sheet(title)
        widths = [_display_width(h) for h in sheet.headers]
        ws.append(list(sheet.headers))
        for cell in ws[1]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
            cell.alignment = Alignment(horizontal="center", vertical="center")
        formats = [sheet.formats.get(h) for h in sheet.headers]
        for r, row in enumerate(sheet.rows, start=2):
            for c, value in enumerate(row, start=1):
                if isinstance(value, bool):
                    value = "是" if value else None
                elif value is not None and not isinstance(value, (int, float, str)):
                    value = str(value)
                cell = ws.cell(row=r, column=c, value=value)
                if isinstance(value, str) and value.startswith("="):
                    cell.data_type = "s"
                if c <= len(formats) and formats[c - 1] and isinstance(value, (int, float)):
                    cell.number_format = formats[c - 1]
                if c > len(widths):
                    widths.append(0)
                widths[c - 1] = max(widths[c - 1], _display_width(value))
        for c, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(c)].width = min(max(width + 2, 8), 60)
        ws.freeze_panes = "A2"
        if sheet.headers:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(sheet.headers))}{ws.max_row}"
    temp = None
    try:
        folder = path.parent if str(path.parent) else Path(".")
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(handle)
        workbook.save(temp)
        os.replace(temp, path)
        temp = None
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", 2)
    finally:
        if temp is not None and os.path.exists(temp):
            os.unlink(temp)
    return path
