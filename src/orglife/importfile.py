"""Read a county office's member list (.xlsx or .csv) into rows for `import_members(rows)`.

Offices keep their member lists (党员花名册) in Excel with Chinese headers that vary from
township to township. This module only *reads and normalises*: it maps headers to SPEC field
names and turns cells into plain values (strings, booleans, ISO dates). It never rejects a value:
anything it cannot interpret is passed through raw, so that the members service, which owns
validation, names the bad field and the spreadsheet line in its error list.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

__all__ = [
    "DEFAULT_HEADERS",
    "HEADER_ALIASES",
    "REQUIRED_FIELDS",
    "ImportFileError",
    "MemberFile",
    "normalize_header",
    "read_member_file",
    "write_member_xlsx",
]


class ImportFileError(Exception):
    """The file as a whole cannot be read (wrong format, missing required column).

    Per-row problems are not raised here: they go to the server, which reports them by line.
    """

    def __init__(self, message: str, missing: Sequence[str] = ()):
        super().__init__(message)
        self.missing = list(missing)


@dataclass
class MemberFile:
    """Rows ready for `import_members`, plus what the office should be told about the file.

    `line_numbers[i]` is the spreadsheet line of `rows[i]` (the line the office sees in Excel),
    so that server errors, which count rows from 1, can be shown as lines.
    `unknown_headers` lists the columns that were ignored.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    unknown_headers: list[str] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)


# Field -> accepted headers. Compared after `normalize_header`, so full-width characters,
# spaces, case, a trailing "*" (required marker) and a parenthesised note do not matter.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "member_id": ("编号", "党员编号", "member_id"),
    "name": ("姓名", "党员姓名", "name"),
    "branch": ("所在支部", "支部", "党支部", "所在党支部", "branch", "branch_id"),
    "group": ("党小组", "所在党小组", "group", "group_id"),
    "status": ("党员类型", "党员状态", "status"),
    "mobile": ("是否流动党员", "流动党员", "mobile"),
    "mobile_location": ("流动地点", "外出地点", "流入地", "mobile_location"),
    "committee_member": ("是否支委", "支委", "committee_member"),
    "no_vote": ("不参加表决", "无表决权", "no_vote"),
    "phone": ("手机号", "手机", "手机号码", "联系电话", "phone"),
    "email": ("邮箱", "电子邮箱", "email"),
    "joined_on": ("入党时间", "入党日期", "joined_on"),
}

# Required columns, with the header named in the error (the office's own vocabulary).
REQUIRED_FIELDS: dict[str, str] = {"name": "姓名", "branch": "所在支部"}

# Headers written by `write_member_xlsx`, in column order.
DEFAULT_HEADERS: dict[str, str] = {
    "member_id": "党员编号",
    "name": "姓名",
    "branch": "所在支部",
    "group": "党小组",
    "status": "党员类型",
    "mobile": "是否流动党员",
    "mobile_location": "流动地点",
    "committee_member": "是否支委",
    "no_vote": "不参加表决",
    "phone": "手机号",
    "email": "邮箱",
    "joined_on": "入党时间",
}

BOOL_FIELDS = frozenset({"mobile", "committee_member", "no_vote"})

_TRUE = frozenset({"是", "y", "yes", "1", "true", "t", "√", "✓"})
_FALSE = frozenset({"否", "n", "no", "0", "false", "f", "×", "✗"})
_STATUS = {
    "正式党员": "formal", "正式": "formal", "formal": "formal",
    "预备党员": "probationary", "预备": "probationary", "probationary": "probationary",
}
_STATUS_CN = {"formal": "正式党员", "probationary": "预备党员"}

# Header rows are searched this far down, because many 花名册 carry a title line above them.
_HEADER_SEARCH_ROWS = 10

_NOTE_RE = re.compile(r"\([^)]*\)|\[[^\]]*\]|【[^】]*】")
_DATE_RE = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*"
    r"(?:月\s*(?:(\d{1,2})\s*日?)?|[-/.]\s*(\d{1,2})\s*日?)?"
    r"(?:\s*[T ]\s*\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
_COMPACT_DATE_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def normalize_header(text: Any) -> str:
    """Canonical form of a header cell, so 'ＮＡＭＥ', ' 姓 名 ', '手机号(必填)*' all compare equal."""
    if text is None:
        return ""
    s = unicodedata.normalize("NFKC", str(text)).replace("\ufeff", "")
    s = _NOTE_RE.sub("", s)
    s = re.sub(r"\s+", "", s).strip("*:：").lower()
    return s


_ALIAS_TO_FIELD: dict[str, str] = {
    normalize_header(alias): fld for fld, aliases in HEADER_ALIASES.items() for alias in aliases
}


def read_member_file(path: str | Path) -> MemberFile:
    """Read an office's member list (.xlsx/.xlsm or .csv) into SPEC-named row dicts.

    The header is the first non-empty line (a title line such as "XX镇党员花名册" above it is
    skipped when the real header follows within the next lines). Empty cells are omitted from a
    row and empty lines are skipped; `line_numbers` keeps each row's spreadsheet line, so the
    office can find the line the server complains about.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        lines = iter(xlsx_lines(path))
    elif suffix == ".csv":
        lines = _csv_lines(path)
    else:
        raise ImportFileError(
            f"不支持的文件类型 {path.suffix or '(无扩展名)'}：请另存为 .xlsx 或 .csv "
            f"(unsupported file type {path.suffix!r}; use .xlsx or .csv)"
        )
    return _rows_from_lines(lines)


def _rows_from_lines(lines: Iterable[tuple[int, Sequence[Any]]]) -> MemberFile:
    it = iter(lines)
    _header_line, columns, unknown = _find_header(it)
    result = MemberFile(unknown_headers=unknown)
    for line_no, cells in it:
        row: dict[str, Any] = {}
        for index, fld in columns.items():
            if index >= len(cells):
                continue
            value = _convert(fld, cells[index])
            if value is not None:
                row[fld] = value
        if not row:
            # Fully empty line, or content only in ignored columns (a pre-numbered 序号 line).
            continue
        result.rows.append(row)
        result.line_numbers.append(line_no)
    return result


def _find_header(
    lines: Iterator[tuple[int, Sequence[Any]]],
) -> tuple[int, dict[int, str], list[str]]:
    first: tuple[int, Sequence[Any]] | None = None
    seen = 0
    for line_no, cells in lines:
        if all(_is_empty(c) for c in cells):
            continue
        if first is None:
            first = (line_no, cells)
        columns, unknown = _map_header(cells)
        if all(f in columns.values() for f in REQUIRED_FIELDS):
            return line_no, columns, unknown
        seen += 1
        if seen >= _HEADER_SEARCH_ROWS:
            break
    if first is None:
        raise ImportFileError("文件是空的 (the file has no header line)", list(REQUIRED_FIELDS.values()))
    columns, _ = _map_header(first[1])
    missing = [label for f, label in REQUIRED_FIELDS.items() if f not in columns.values()]
    raise ImportFileError(
        f"缺少必需的列：{'、'.join(missing)} (missing required column: {', '.join(missing)})",
        missing,
    )


def _map_header(cells: Sequence[Any]) -> tuple[dict[int, str], list[str]]:
    """Column index -> field. Unknown and duplicate columns are reported, not used."""
    columns: dict[int, str] = {}
    unknown: list[str] = []
    for index, cell in enumerate(cells):
        key = normalize_header(cell)
        if not key:
            continue
        fld = _ALIAS_TO_FIELD.get(key)
        if fld is None or fld in columns.values():
            unknown.append(str(cell).strip())
        else:
            columns[index] = fld
    return columns, unknown


def _is_empty(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _convert(fld: str, cell: Any) -> Any:
    """One cell to its field value; None means 'omit'. Uninterpretable values stay raw."""
    if _is_empty(cell):
        return None
    if fld == "phone":
        return _phone(cell)
    if fld == "joined_on":
        return _date(cell)
    if fld in BOOL_FIELDS:
        return _bool(cell)
    if fld == "status":
        text = _text(cell)
        return _STATUS.get(text.lower(), text)
    return _text(cell)


def _text(cell: Any) -> str:
    """Cell as the string the office typed: 1001.0 -> '1001', never '1.0e3'."""
    if isinstance(cell, bool):
        return "是" if cell else "否"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, (dt.datetime, dt.date)):
        return cell.isoformat()
    return unicodedata.normalize("NFKC", str(cell)).strip()


def _phone(cell: Any) -> str:
    """Phone as digits-as-text; Excel stores typed numbers as floats (13800138000.0)."""
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, int):
        return str(cell)
    if isinstance(cell, float):
        return str(int(cell)) if cell.is_integer() else repr(cell)
    text = _text(cell).lstrip("'")
    return re.sub(r"[\s\-]", "", text)


def _bool(cell: Any) -> Any:
    if isinstance(cell, bool):
        return cell
    if isinstance(cell, (int, float)) and cell in (0, 1):
        return bool(cell)
    text = _text(cell)
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return text


def _date(cell: Any) -> Any:
    """ISO 'YYYY-MM-DD'; a month alone means its first day; otherwise the raw text."""
    if isinstance(cell, dt.datetime):
        return cell.date().isoformat()
    if isinstance(cell, dt.date):
        return cell.isoformat()
    text = _text(cell)
    m = _DATE_RE.match(text) or _COMPACT_DATE_RE.match(text)
    if not m:
        return text
    groups = m.groups()
    year, month = int(groups[0]), int(groups[1])
    day = int(next((g for g in groups[2:] if g), 1))
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return text


def xlsx_lines(path: Path, error: type[Exception] = None) -> list[tuple[int, Sequence[Any]]]:
    """(Excel line number, cell values) for every line of the first sheet; a file that cannot
    be read raises `error` (ImportFileError by default). Shared with the sign-in sheet reader."""
    error = error or ImportFileError
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise error(f"无法读取 Excel 文件 (cannot read the .xlsx file): {exc}") from None
    try:
        sheet = workbook.active or workbook.worksheets[0]
        # Files saved by some tools declare a wrong sheet size; read what is actually there.
        sheet.reset_dimensions()
        # Read-only iteration yields every line from 1, empty ones included: enumerate = Excel line.
        return list(enumerate(sheet.iter_rows(values_only=True), start=1))
    finally:
        workbook.close()


def _csv_lines(path: Path) -> Iterator[tuple[int, Sequence[Any]]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                "无法识别 CSV 文件编码，请保存为 UTF-8 (csv is neither UTF-8 nor GB18030)"
            ) from exc
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    # csv line numbers: a quoted cell may span lines, so use the reader's own count.
    lines = []
    for row in reader:
        lines.append((reader.line_num - _extra_newlines(row), row))
    return iter(lines)


def _extra_newlines(row: Sequence[str]) -> int:
    """Lines a record spans beyond its first (quoted cells with newlines)."""
    return sum(cell.count("\n") for cell in row)


def write_member_xlsx(
    path: str | Path,
    rows: Iterable[Mapping[str, Any]],
    headers: Mapping[str, str] | Sequence[str] | None = None,
) -> None:
    """Write field-named rows as an office would keep them: Chinese headers and values.

    `headers` is either field -> header text (to try header variants) or a list of fields
    (default Chinese headers, in that order); by default every known field is written.
    `branch`/`group` columns take `branch`/`group` or else `branch_id`/`group_id`.
    Phones are written as text cells and dates as date cells, as offices usually have them.
    """
    import openpyxl

    if headers is None:
        header_map = dict(DEFAULT_HEADERS)
    elif isinstance(headers, Mapping):
        header_map = dict(headers)
    else:
        header_map = {f: DEFAULT_HEADERS[f] for f in headers}
    fields = list(header_map)

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("党员花名册")
    sheet.append([header_map[f] for f in fields])
    for row in rows:
        sheet.append([_cell_for_office(f, row) for f in fields])
    workbook.save(Path(path))


def _cell_for_office(fld: str, row: Mapping[str, Any]) -> Any:
    value = row.get(fld)
    if value is None and fld in ("branch", "group"):
        value = row.get(f"{fld}_id")
    if value is None:
        return None
    if fld in BOOL_FIELDS and isinstance(value, bool):
        return "是" if value else "否"
    if fld == "status":
        return _STATUS_CN.get(value, value)
    if fld == "joined_on" and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value
    if fld == "phone":
        return str(value)
    return value
