"""Meeting reports from files: a record (.yaml/.yml/.json) or a sign-in sheet (签到表, .xlsx).

Like `importfile`, this module only *reads and normalises*; the meetings service owns
validation. A value it cannot interpret (an unknown attendance word, a missing member id) is
passed on raw, so that the service names the bad field (`attendance.3.status`), and the CLI
adds the sheet line that entry came from. Only a file that cannot be read as a whole (wrong
type, no header, not a mapping) raises `MeetingFileError`.
"""
from __future__ import annotations

import datetime as dt
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from orglife.importfile import normalize_header, xlsx_lines

__all__ = [
    "MeetingFileError",
    "SigninSheet",
    "read_meeting_record",
    "read_signin",
    "read_signin_sheet",
    "status_of",
]

RECORD_SUFFIXES = (".yaml", ".yml", ".json")
SHEET_SUFFIXES = (".xlsx", ".xlsm")


class MeetingFileError(Exception):
    """The file as a whole cannot be used (its type, its header, its shape)."""


# -- sign-in sheets ----------------------------------------------------------------------------
# Column -> accepted headers (compared after importfile.normalize_header).
SHEET_HEADERS: dict[str, tuple[str, ...]] = {
    "member_id": ("编号", "党员编号", "member_id"),
    "name": ("姓名", "党员姓名", "name"),
    "status": ("出席情况", "状态", "出席状态", "参会情况", "签到情况", "status"),
    "remote": ("参会方式", "出席方式", "remote"),
}
_HEADER_TO_COLUMN = {normalize_header(alias): column
                     for column, aliases in SHEET_HEADERS.items() for alias in aliases}
_REQUIRED = {"member_id": "编号", "status": "出席情况"}
_HEADER_SEARCH_ROWS = 10

# Attendance words -> (status, remote).
_WORDS: dict[str, tuple[str, bool]] = {}
for _words, _value in (
    (("出席", "到会", "参会", "已到", "到", "√", "✓", "present"), ("present", False)),
    (("请假", "事假", "病假", "因公请假", "leave"), ("leave", False)),
    (("缺席", "未到", "缺勤", "×", "✗", "absent"), ("absent", False)),
    (("线上", "远程", "线上出席", "远程出席", "线上参会", "远程参会", "remote", "online"),
     ("present", True)),
):
    for _word in _words:
        _WORDS[unicodedata.normalize("NFKC", _word).lower()] = _value
_REMOTE_WORDS = {"线上", "远程", "视频", "online", "remote", "是", "yes", "y", "true", "1", "√"}
_ONSITE_WORDS = {"现场", "线下", "offline", "否", "no", "n", "false", "0"}


@dataclass
class SigninSheet:
    """The attendance list of a sign-in sheet, and where each entry came from.

    `lines[i]` and `names[i]` are the spreadsheet line and the name written beside
    `attendance[i]`; `unsigned` lists the lines of members with an empty status cell (left out:
    an expected member who is not listed is recorded absent).
    """

    attendance: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)
    unsigned: list[tuple[int, str, str | None]] = field(default_factory=list)

    def label(self, index: int) -> str:
        name = self.names[index]
        return f"sheet line {self.lines[index]}" + (f", {name}" if name else "")


def status_of(word: Any) -> tuple[Any, bool] | None:
    """An attendance cell → (status, remote); None for an empty cell; unknown words stay raw."""
    text = _text(word)
    if not text:
        return None
    return _WORDS.get(text.lower(), (text, False))


def read_signin_sheet(path: str | Path) -> list[dict]:
    """The attendance list (`member_id`, `status`, `remote`) of a sign-in sheet (.xlsx)."""
    return read_signin(path).attendance


def read_signin(path: str | Path) -> SigninSheet:
    path = Path(path)
    if path.suffix.lower() not in SHEET_SUFFIXES:
        raise MeetingFileError(
            f"a sign-in sheet is an .xlsx file, not {path.suffix or path.name!r}")
    return signin_from_lines(xlsx_lines(path, MeetingFileError))


def signin_from_lines(lines: Sequence[tuple[int, Sequence[Any]]]) -> SigninSheet:
    """Rows of (spreadsheet line, cells) → the sheet's attendance list."""
    it = iter(lines)
    columns = _find_header(it)
    sheet = SigninSheet()
    for line_no, cells in it:
        values = {column: cells[index] for index, column in columns.items() if index < len(cells)}
        member_id = _text(values.get("member_id"))
        name = _text(values.get("name")) or None
        status = status_of(values.get("status"))
        if not member_id and status is None:
            continue  # an empty line, or a pre-printed name nobody signed for
        if status is None:
            sheet.unsigned.append((line_no, member_id, name))
            continue
        word, remote = status
        remote_cell = _text(values.get("remote")).lower()
        if remote_cell in _REMOTE_WORDS:
            remote = True
        elif remote_cell and remote_cell not in _ONSITE_WORDS:
            remote = remote_cell  # raw: the service names attendance.N.remote
        entry = {"member_id": member_id, "status": word}
        if remote:
            entry["remote"] = remote
        sheet.attendance.append(entry)
        sheet.lines.append(line_no)
        sheet.names.append(name)
    return sheet


def _find_header(it) -> dict[int, str]:
    first = None
    for seen, (line_no, cells) in enumerate(_non_empty(it)):
        columns: dict[int, str] = {}
        for index, cell in enumerate(cells):
            column = _HEADER_TO_COLUMN.get(normalize_header(cell))
            if column and column not in columns.values():
                columns[index] = column
        if first is None:
            first = columns
        if all(c in columns.values() for c in _REQUIRED):
            return columns
        if seen + 1 >= _HEADER_SEARCH_ROWS:
            break
    if first is None:
        raise MeetingFileError("the sign-in sheet is empty (签到表是空的)")
    missing = [label for column, label in _REQUIRED.items() if column not in first.values()]
    raise MeetingFileError(f"缺少必需的列：{'、'.join(missing)} (the sign-in sheet needs a member id "
                           f"column 编号/党员编号/member_id and an attendance column "
                           f"出席情况/状态/status)")


def _non_empty(it):
    for line_no, cells in it:
        if any(_text(c) for c in cells):
            yield line_no, cells


def _text(cell: Any) -> str:
    """A cell as the text the office typed: 1001.0 → '1001'."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return str(cell).lower()
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, (dt.datetime, dt.date)):
        return cell.isoformat()
    return unicodedata.normalize("NFKC", str(cell)).strip()


# -- records -----------------------------------------------------------------------------------
ID_FIELDS = ("meeting_id", "branch_id", "group_id")


def read_meeting_record(path: str | Path) -> dict:
    """A meeting record with SPEC field names from .yaml/.yml/.json.

    YAML's own dates and times become ISO 8601 text (a time without an offset stays without
    one: the service reads it in the county's time zone); numeric ids become text.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        raise MeetingFileError(
            f"a meeting record is .yaml, .yml or .json, not {suffix or path.name!r}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MeetingFileError(f"cannot read {path.name}: {exc}") from None
    try:
        if suffix == ".json":
            record = json.loads(text)
        else:
            import yaml
            record = yaml.safe_load(text)
    except ValueError as exc:  # json.JSONDecodeError
        raise MeetingFileError(f"{path.name} is not valid JSON: {exc}") from None
    except Exception as exc:  # yaml.YAMLError
        raise MeetingFileError(f"{path.name} is not valid YAML: {exc}") from None
    if not isinstance(record, dict):
        raise MeetingFileError(f"{path.name} must hold one meeting record (a mapping of fields)")
    return normalize_record(record)


def normalize_record(record: dict) -> dict:
    out = {str(key): _plain(value) for key, value in record.items()}
    for key in ID_FIELDS:
        if isinstance(out.get(key), int) and not isinstance(out.get(key), bool):
            out[key] = str(out[key])
    if isinstance(out.get("attendance"), list):
        out["attendance"] = [
            {**entry, "member_id": str(entry["member_id"])}
            if isinstance(entry, dict) and isinstance(entry.get("member_id"), int)
            and not isinstance(entry.get("member_id"), bool) else entry
            for entry in out["attendance"]]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
