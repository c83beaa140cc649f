"""How values are shown to people: Chinese names of the codes (SPEC §2), percentages, county
time, masked phone numbers, and the tables every page is made of (each also an .xlsx)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, Sequence
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from orglife.common.vocabulary import LABELS, period_zh

ROLE_NAMES = {"county_admin": "县委组织部", "township_admin": "乡镇党委",
              "branch_secretary": "支部书记", "service": "外部系统"}
LIGHT_ORDER = ("red", "yellow", "green")
RISK_LEVELS = ("review", "alert", "notice")
ALERT_NAMES = {"branch_silent": "长期未开展组织生活", "branch_overdue": "组织生活逾期未开展",
               "branch_due_soon": "组织生活即将到期", "member_at_risk": "党员连续未参加组织生活"}
ITEM_NAMES = {"base": "基础分", "attended": "出席", "absence": "缺席（未请假）", "leave": "请假",
              "activity": "活动"}
PER_NAMES = {"month": "每月", "quarter": "每季度", "year": "每年"}
QUEUE_SOURCES = {"members": "党员", "meetings": "会议", "scoring": "积分",
                 "notifications": "通知", "intake": "外部上报"}
SERVICE_NAMES = {"members": "党员与组织 members", "meetings": "会议 meetings",
                 "scoring": "积分与达标 scoring", "notifications": "通知 notifications",
                 "dashboard": "看板 dashboard"}


def zh(code, domain: str) -> str:
    """A code's Chinese name (the code itself when it has none; nothing for None)."""
    if code is None or code == "":
        return ""
    return LABELS[domain].get(code, str(code))


def pct(value) -> str:
    if value is None or isinstance(value, bool):
        return "—"
    return f"{value * 100:.1f}%"


def num(value, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.{digits}f}"
    return f"{int(value)}" if isinstance(value, float) else str(value)


def mask_phone(phone: str | None) -> str:
    """138****8000: the first three and last four digits of a mobile number; shorter numbers
    keep only their last two. Never the whole number (SPEC §4)."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", str(phone))
    if len(digits) == 13 and digits.startswith("86"):  # +86: the mobile number after it
        digits = digits[2:]
    if len(digits) >= 11:
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) >= 3:
        return "*" * (len(digits) - 2) + digits[-2:]
    return "*" * len(digits)


def mask_email(email: str | None) -> str:
    if not email or "@" not in email:
        return ""
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


def county_time(value: str | None, tz: ZoneInfo) -> str:
    """An instant as the county reads it (2026-11-10 19:30); a date as it is."""
    if not value:
        return ""
    if "T" not in value:
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(tz)
    return moment.strftime("%Y-%m-%d %H:%M")


def county_day(value: str | None, tz: ZoneInfo) -> str:
    return county_time(value, tz)[:10]


def short_period(period: str) -> str:
    """For grid headers: 2026-03 → 3月, 2026-Q2 → 二季度, 2026 → 全年."""
    _, _, rest = period.partition("-")
    if not rest:
        return "全年"
    if rest.upper().startswith("Q"):
        return f"{'一二三四'[int(rest[1:]) - 1]}季度"
    return f"{int(rest)}月"


# -- links -----------------------------------------------------------------------------------
def _q(ident: str) -> str:
    return quote(str(ident), safe="")


def org_url(org_id: str, **query) -> str:
    return f"/org/{_q(org_id)}" + _query(query)


def branch_url(branch_id: str, **query) -> str:
    return f"/branch/{_q(branch_id)}" + _query(query)


def member_url(member_id: str, **query) -> str:
    return f"/member/{_q(member_id)}" + _query(query)


def _query(query: dict) -> str:
    given = {k: v for k, v in query.items() if v not in (None, "")}
    return ("?" + urlencode(given)) if given else ""


# -- tables ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Link:
    text: Any
    href: str

    def __str__(self):
        return str(self.text)


@dataclass(frozen=True)
class Badge:
    """A coloured label: a light (red/yellow/green), a level, a status."""
    text: str
    tone: str  # red | yellow | green | grey | blue

    def __str__(self):
        return self.text


@dataclass(frozen=True)
class Ratio:
    """A ratio shown as a percentage (the .xlsx keeps the number with a % format)."""
    value: float | None

    def __str__(self):
        return pct(self.value)


@dataclass
class Column:
    header: str  # Chinese: the page's and the spreadsheet's header
    align: str = ""  # "num" for right-aligned figures


@dataclass
class Table:
    """A table of a page; `key` names it in its download URL (`export/<key>.xlsx`)."""
    key: str
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""
    empty: str = "无"
    row_tones: list[str] | None = None  # a CSS tone per row (e.g. red for absences)
    total: int | None = None  # rows in the whole list when only some are shown
    footer: list[Any] | None = None  # a sum line, shown and exported last

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]


def cols(*specs: str | tuple[str, str]) -> list[Column]:
    return [Column(*spec) if isinstance(spec, tuple) else Column(spec) for spec in specs]


def plain(value) -> Any:
    """A cell as the spreadsheet keeps it: numbers stay numbers, ratios stay ratios."""
    if isinstance(value, Ratio):
        return value.value
    if isinstance(value, (Link, Badge)):
        return plain(value.text)
    if isinstance(value, (int, float, str)) or value is None:
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def truncated(table: Table) -> bool:
    return table.total is not None and table.total > len(table.rows)


def xlsx_bytes(tables: Sequence[Table]) -> bytes:
    """The tables as one workbook (a sheet each, Chinese headers), written by the CLI's own
    writer (orglife/cli/common.py `write_xlsx`: bold frozen headers, filters, widths)."""
    import tempfile
    from pathlib import Path

    from orglife.cli.common import Sheet, write_xlsx
    sheets = []
    for table in tables:
        rows = [[plain(cell) for cell in row] for row in table.rows]
        if table.footer:
            rows.append([plain(cell) for cell in table.footer])
        if truncated(table):  # never a partial list that looks whole
            rows.append([f"仅含前 {len(table.rows)} 条，共 {table.total} 条"])
        formats = {}
        for index, column in enumerate(table.columns):
            if any(isinstance(row[index], Ratio) for row in table.rows if index < len(row)):
                formats[column.header] = "0.0%"
        sheets.append(Sheet(table.title, table.headers, rows, formats))
    with tempfile.TemporaryDirectory(prefix="orglife-xlsx-") as folder:
        path = Path(folder) / "table.xlsx"
        write_xlsx(path, sheets)
        return path.read_bytes()


def sheet_name(*parts: Iterable[str]) -> str:
    """A download's file name: its parts joined, without characters file systems refuse."""
    text = "-".join(str(p) for p in parts if p)
    return re.sub(r'[\\/:*?"<>|\s]+', "_", text)[:120] or "table"
