"""Reading offices' member lists: header variants, cell types, encodings, line numbers."""
from __future__ import annotations

import datetime as dt

import openpyxl
import pytest

from orglife.importfile import (
    ImportFileError,
    MemberFile,
    read_member_file,
    write_member_xlsx,
)


def _xlsx(path, lines):
    """Write raw cell values line by line (None = empty cell, [] = empty line)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for line_no, cells in enumerate(lines, start=1):
        for col, value in enumerate(cells, start=1):
            if value is not None:
                sheet.cell(row=line_no, column=col, value=value)
    workbook.save(path)
    return path


def _csv(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


# -- headers ---------------------------------------------------------------------------------

# The headers offices use (from the brief), kept here so that dropping one from the module fails.
HEADER_ALIASES = {
    "member_id": ("编号", "党员编号", "member_id"),
    "name": ("姓名", "name"),
    "branch": ("所在支部", "支部", "党支部", "branch"),
    "group": ("党小组", "所在党小组", "group"),
    "status": ("党员类型", "党员状态", "status"),
    "mobile": ("是否流动党员", "流动党员", "mobile"),
    "mobile_location": ("流动地点", "外出地点", "流入地", "mobile_location"),
    "committee_member": ("是否支委", "支委", "committee_member"),
    "no_vote": ("不参加表决", "无表决权", "no_vote"),
    "phone": ("手机号", "手机", "联系电话", "phone"),
    "email": ("邮箱", "电子邮箱", "email"),
    "joined_on": ("入党时间", "入党日期", "joined_on"),
}

@pytest.mark.parametrize(
    "field_name, alias",
    [(f, a) for f, aliases in HEADER_ALIASES.items() for a in aliases],
)
def test_every_alias_maps_to_its_field(tmp_path, field_name, alias):
    headers = ["姓名", "所在支部"]
    values = ["张三", "b0001"]
    if field_name not in ("name", "branch"):
        headers.append(alias)
        values.append("x1")
    else:
        headers[0 if field_name == "name" else 1] = alias
    result = read_member_file(_xlsx(tmp_path / "m.xlsx", [headers, values]))
    assert result.unknown_headers == []
    assert field_name in result.rows[0]


@pytest.mark.parametrize(
    "header, field_name",
    [
        ("姓　名", "name"),                 # ideographic space
        (" 姓 名 ", "name"),
        ("所在支部*", "branch"),            # required marker
        ("所在支部（必填）", "branch"),      # full-width parenthesised note
        ("手机号(11位)", "phone"),
        ("ＭＥＭＢＥＲ＿ＩＤ", "member_id"),  # full-width Latin
        ("Email", "email"),
        ("入党时间：", "joined_on"),
        ("\ufeff编号", "member_id"),
    ],
)
def test_header_variants(tmp_path, field_name, header):
    headers = ["姓名", "所在支部"]
    if field_name in ("name", "branch"):
        headers[0 if field_name == "name" else 1] = header
    else:
        headers.append(header)
    result = read_member_file(_xlsx(tmp_path / "m.xlsx", [headers, ["甲", "b1", "x1"]]))
    assert field_name in result.rows[0] and result.unknown_headers == []


def test_header_variants_in_a_file(tmp_path):
    path = _xlsx(tmp_path / "m.xlsx", [
        ["序号", "姓　名", " 所在支部 ", "党小组", "手机号（必填）", "ＥＭＡＩＬ", "性别", "备注"],
        [1, "李四", "石桥村党支部", "第一党小组", "13900001111", "a@example.com", "男", "x"],
    ])
    result = read_member_file(path)
    assert result.rows == [{
        "name": "李四", "branch": "石桥村党支部", "group": "第一党小组",
        "phone": "13900001111", "email": "a@example.com",
    }]
    assert result.unknown_headers == ["序号", "性别", "备注"]


def test_duplicate_column_is_ignored_and_reported(tmp_path):
    path = _xlsx(tmp_path / "m.xlsx", [
        ["姓名", "所在支部", "手机", "联系电话"],
        ["王五", "b1", "13800000001", "0731-1234567"],
    ])
    result = read_member_file(path)
    assert result.rows[0]["phone"] == "13800000001"
    assert result.unknown_headers == ["联系电话"]


def test_title_line_above_header_is_skipped(tmp_path):
    path = _xlsx(tmp_path / "m.xlsx", [
        ["青山镇党员花名册"],
        ["姓名", "所在支部"],
        ["赵六", "b1"],
    ])
    result = read_member_file(path)
    assert result.rows == [{"name": "赵六", "branch": "b1"}]
    assert result.line_numbers == [3]


# -- cell values -----------------------------------------------------------------------------

def test_numeric_phone_and_id_cells_become_plain_digits(tmp_path):
    path = _xlsx(tmp_path / "m.xlsx", [
        ["编号", "姓名", "所在支部", "手机号"],
        [1001.0, "甲", "b1", 13800138000.0],
        [1002, "乙", "b1", 13900139000],
        ["1003", "丙", "b1", " 139-0013-9001 "],
    ])
    rows = read_member_file(path).rows
    assert [r["phone"] for r in rows] == ["13800138000", "13900139000", "13900139001"]
    assert [r["member_id"] for r in rows] == ["1001", "1002", "1003"]
    assert all("e" not in r["phone"].lower() for r in rows)


def test_float_phone_value_is_not_scientific():
    # openpyxl may hand back a float for a general-format number; it must not print as 1.38e10.
    from orglife import importfile

    assert importfile._phone(13800138000.0) == "13800138000"
    assert importfile._phone(13800138000) == "13800138000"


@pytest.mark.parametrize(
    "cell, expected",
    [
        (dt.date(2010, 7, 1), "2010-07-01"),
        (dt.datetime(2010, 7, 1, 0, 0), "2010-07-01"),
        ("2010-07-01", "2010-07-01"),
        ("2010/7/1", "2010-07-01"),
        ("2010.7.1", "2010-07-01"),
        ("2010年7月1日", "2010-07-01"),
        ("2010年07月01日", "2010-07-01"),
        ("1998/12/25", "1998-12-25"),
        ("1998.3.9", "1998-03-09"),
        ("1998年3月19日", "1998-03-19"),
        (dt.datetime(1998, 3, 19, 8, 30), "1998-03-19"),
        ("2010-07", "2010-07-01"),
        ("2010年7月", "2010-07-01"),
        ("2010.07", "2010-07-01"),
        ("20100701", "2010-07-01"),
        ("2010-07-01 00:00:00", "2010-07-01"),
        ("２０１０－０７－０１", "2010-07-01"),
        ("2010-13-01", "2010-13-01"),      # impossible date: raw, the server names the field
        ("去年七一", "去年七一"),
        ("2010-711", "2010-711"),
    ],
)
def test_joined_on_forms(tmp_path, cell, expected):
    path = _xlsx(tmp_path / "m.xlsx", [["姓名", "所在支部", "入党时间"], ["甲", "b1", cell]])
    assert read_member_file(path).rows[0]["joined_on"] == expected


@pytest.mark.parametrize(
    "cell, expected",
    [("正式党员", "formal"), ("正式", "formal"), ("预备党员", "probationary"), ("预备", "probationary"),
     ("formal", "formal"), ("留党察看", "留党察看")],
)
def test_status_values(tmp_path, cell, expected):
    path = _xlsx(tmp_path / "m.xlsx", [["姓名", "所在支部", "党员类型"], ["甲", "b1", cell]])
    assert read_member_file(path).rows[0]["status"] == expected


@pytest.mark.parametrize(
    "cell, expected",
    [("是", True), ("否", False), ("Y", True), ("n", False), ("1", True), ("0", False),
     (1, True), (0, False), ("TRUE", True), ("false", False), (True, True), ("不详", "不详")],
)
def test_boolean_flags(tmp_path, cell, expected):
    path = _xlsx(tmp_path / "m.xlsx", [
        ["姓名", "所在支部", "是否流动党员", "支委", "无表决权"],
        ["甲", "b1", cell, cell, cell],
    ])
    row = read_member_file(path).rows[0]
    assert row["mobile"] == expected and row["committee_member"] == expected
    assert row["no_vote"] == expected
    assert type(row["mobile"]) is type(expected)


def test_empty_cells_are_omitted(tmp_path):
    path = _xlsx(tmp_path / "m.xlsx", [
        ["姓名", "所在支部", "党小组", "邮箱", "手机号"],
        ["甲", "b1", None, "   ", None],
    ])
    assert read_member_file(path).rows == [{"name": "甲", "branch": "b1"}]


# -- line numbers ----------------------------------------------------------------------------

def test_line_numbers_skip_blank_lines_xlsx(tmp_path):
    path = _xlsx(tmp_path / "m.xlsx", [
        ["姓名", "所在支部"],
        ["甲", "b1"],
        [],
        [None, "  "],
        ["乙", "b1"],
        [None, None],
        ["丙", None],          # incomplete row is still sent: the server reports it by line
    ])
    result = read_member_file(path)
    assert [r["name"] for r in result.rows] == ["甲", "乙", "丙"]
    assert result.line_numbers == [2, 5, 7]


def test_line_numbers_skip_blank_lines_csv(tmp_path):
    path = _csv(tmp_path / "m.csv", "姓名,所在支部\n甲,b1\n\n,\n乙,b1\n")
    result = read_member_file(path)
    assert result.line_numbers == [2, 5]


def test_line_numbers_with_multiline_cell_csv(tmp_path):
    path = _csv(tmp_path / "m.csv", '姓名,所在支部,流动地点\n甲,b1,"广东省\n深圳市"\n乙,b1,\n')
    result = read_member_file(path)
    assert result.line_numbers == [2, 4]


def test_row_with_only_ignored_columns_is_skipped(tmp_path):
    path = _xlsx(tmp_path / "m.xlsx", [["序号", "姓名", "所在支部"], [1, "甲", "b1"], [2, None, None]])
    result = read_member_file(path)
    assert len(result.rows) == 1 and result.line_numbers == [2]


# -- csv encodings ---------------------------------------------------------------------------

CSV_TEXT = "党员编号,姓名,所在支部,党员类型,入党时间\nm1,张三,石桥村党支部,预备党员,2010年7月1日\n"
EXPECTED_ROW = {"member_id": "m1", "name": "张三", "branch": "石桥村党支部",
                "status": "probationary", "joined_on": "2010-07-01"}


def test_csv_utf8_with_bom(tmp_path):
    path = _csv(tmp_path / "m.csv", "\ufeff" + CSV_TEXT)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    result = read_member_file(path)
    assert result.rows == [EXPECTED_ROW] and result.unknown_headers == []


def test_csv_utf8_without_bom(tmp_path):
    assert read_member_file(_csv(tmp_path / "m.csv", CSV_TEXT)).rows == [EXPECTED_ROW]


def test_csv_gb18030(tmp_path):
    path = _csv(tmp_path / "m.csv", CSV_TEXT, encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    assert read_member_file(path).rows == [EXPECTED_ROW]


def test_csv_crlf_and_uppercase_extension(tmp_path):
    path = _csv(tmp_path / "M.CSV", CSV_TEXT.replace("\n", "\r\n"))
    result = read_member_file(path)
    assert result.rows == [EXPECTED_ROW] and result.line_numbers == [2]


# -- errors ----------------------------------------------------------------------------------

def test_missing_required_header_is_named(tmp_path):
    path = _xlsx(tmp_path / "m.xlsx", [["姓名", "手机号"], ["甲", "13800000000"]])
    with pytest.raises(ImportFileError) as info:
        read_member_file(path)
    assert "所在支部" in str(info.value) and "姓名" not in str(info.value)
    assert info.value.missing == ["所在支部"]


def test_missing_both_required_headers(tmp_path):
    path = _csv(tmp_path / "m.csv", "编号,手机号\n1,13800000000\n")
    with pytest.raises(ImportFileError) as info:
        read_member_file(path)
    assert info.value.missing == ["姓名", "所在支部"]


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(ImportFileError):
        read_member_file(_csv(tmp_path / "m.csv", "\n\n"))


@pytest.mark.parametrize("name", ["m.xls", "m.txt", "m"])
def test_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"whatever")
    with pytest.raises(ImportFileError):
        read_member_file(path)


def test_corrupt_xlsx_is_an_import_error(tmp_path):
    path = tmp_path / "m.xlsx"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ImportFileError):
        read_member_file(path)


# -- writing ---------------------------------------------------------------------------------

def test_write_then_read_round_trip(tmp_path):
    members = [
        {"member_id": "m1", "name": "张三", "branch_id": "b0001", "group_id": "g0001-1",
         "status": "formal", "mobile": True, "mobile_location": "广东省深圳市",
         "committee_member": True, "no_vote": False, "phone": "13800138000",
         "email": "z@example.com", "joined_on": "2010-07-01"},
        {"member_id": "m2", "name": "李四", "branch_id": "b0002", "status": "probationary",
         "mobile": False, "committee_member": False, "no_vote": True, "phone": "13900139000",
         "joined_on": "2026-03-01"},
    ]
    path = tmp_path / "out.xlsx"
    write_member_xlsx(path, members)

    header = next(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    assert header[:3] == ("党员编号", "姓名", "所在支部")

    result = read_member_file(path)
    assert isinstance(result, MemberFile)
    renamed = [{{"branch_id": "branch", "group_id": "group"}.get(k, k): v for k, v in m.items()}
               for m in members]
    assert result.rows == renamed
    assert result.line_numbers == [2, 3]


def test_write_with_custom_headers(tmp_path):
    path = tmp_path / "out.xlsx"
    write_member_xlsx(path, [{"name": "甲", "branch": "b1", "phone": "13800000000"}],
                      headers={"name": "姓 名", "branch": "支部", "phone": "联系电话"})
    sheet = openpyxl.load_workbook(path).active
    assert [c.value for c in sheet[1]] == ["姓 名", "支部", "联系电话"]
    assert sheet["C2"].data_type == "s"      # phones written as text, as offices should
    assert read_member_file(path).rows == [{"name": "甲", "branch": "b1", "phone": "13800000000"}]
