"""What office staff read in the CLI's tables: instants in county time, codes with their Chinese
names, flags as "yes"; no broker, the helpers called directly."""
import io

import pytest
from rich.console import Console

from orglife.cli import common
from orglife.cli.common import Column, coded, county_time, items_table, show_items, show_record
from orglife.common import vocabulary
from orglife.common.vocabulary import LABELS, label


@pytest.fixture(autouse=True)
def county_env(monkeypatch, tmp_path):
    """A home of its own (settings() keeps a secret there) and the default time zone."""
    monkeypatch.setenv("ORGLIFE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ORGLIFE_SECRET", "display-test-secret")
    monkeypatch.delenv("ORGLIFE_TZ", raising=False)


@pytest.fixture
def screen(monkeypatch):
    """What the CLI prints to stdout, as plain text."""
    out = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=out, width=200, color_system=None))
    return out


# -- time ----------------------------------------------------------------------------------------
def test_a_utc_instant_is_shown_in_county_time():
    assert county_time("2026-11-10T11:30:00+00:00") == "2026-11-10 19:30"  # Asia/Shanghai
    assert county_time("2026-11-10T11:30:00Z") == "2026-11-10 19:30"
    assert county_time("2026-12-31T20:00:00+00:00") == "2027-01-01 04:00"  # the county's day


def test_the_county_time_zone_comes_from_orglife_tz(monkeypatch):
    monkeypatch.setenv("ORGLIFE_TZ", "Europe/Berlin")
    assert county_time("2026-11-10T11:30:00+00:00") == "2026-11-10 12:30"
    assert county_time("2026-07-10T11:30:00+00:00") == "2026-07-10 13:30"  # summer time
    assert county_time("2026-11-10T11:30:00+00:00", tz="Asia/Urumqi") == "2026-11-10 17:30"


def test_what_is_not_an_aware_instant_is_shown_as_it_is():
    assert county_time("2026-11-10T19:30:00") == "2026-11-10 19:30"  # no offset: county time
    assert county_time("2026-11-10") == "2026-11-10"  # a date has no time zone
    assert county_time(None) == "" and county_time("") == ""
    assert county_time("not a time") == "not a time"


# -- labels --------------------------------------------------------------------------------------
def test_codes_get_their_chinese_names():
    assert label("branch_assembly") == "branch_assembly 支部党员大会"
    assert label("village") == "village 村"
    assert label("formal") == "formal 正式党员"
    assert [label(s) for s in ("present", "leave", "absent")] == ["present 出席", "leave 请假",
                                                                  "absent 缺席"]
    assert label("excellent") == "excellent 优秀" and label("red") == "red 红灯"
    assert label("no_such_code") == "no_such_code"


def test_a_code_named_differently_in_two_domains_needs_its_domain():
    assert label("review") == "review" and label("group") == "group"
    assert label("review", "recommendation") == "review 重新审查"
    assert label("review", "risk_level") == "review 提请审议"
    assert label("group", "org_kind") == "group 党小组"
    assert label("group", "meeting_type") == "group 党小组会"
    assert label("confirm", "grade") == "confirm"  # a code of another domain stays bare
    with pytest.raises(KeyError):
        label("present", "attendence")


@pytest.mark.parametrize("domain, codes", [
    ("org_kind", vocabulary.ORG_KINDS), ("category", vocabulary.BRANCH_CATEGORIES),
    ("member_status", vocabulary.MEMBER_STATUSES), ("meeting_type", vocabulary.MEETING_TYPES),
    ("activity_kind", vocabulary.ACTIVITY_KINDS), ("attendance", vocabulary.ATTENDANCE_STATUSES),
])
def test_every_code_of_spec_section_2_has_a_name(domain, codes):
    assert set(LABELS[domain]) == set(codes)


# -- tables --------------------------------------------------------------------------------------
MEETING = {"meeting_id": "mt1", "type": "branch_assembly", "held_at": "2026-11-10T11:30:00+00:00",
           "quorum_met": True, "cancelled": False, "topic": None, "attendance": [{"x": 1}]}


def test_a_page_is_shown_with_its_columns_formatted(screen):
    show_items({"items": [MEETING], "total": 3},
               ["meeting_id", Column("held_at", "held", county_time),
                Column("type", format=coded("meeting_type")), "quorum_met", "cancelled", "topic"],
               "meetings")
    out = screen.getvalue()
    assert "meetings (1 of 3)" in out and "held" in out and "held_at" not in out
    [row] = [line for line in out.splitlines() if "mt1" in line]
    cells = [cell.strip() for cell in row.strip().strip("│").split("│")]
    assert cells == ["mt1", "2026-11-10 19:30", "branch_assembly 支部党员大会", "yes", "", ""]


def test_a_record_shows_its_fields_and_says_no_to_a_flag_that_is_off(screen):
    show_record(MEETING, "meeting mt1", {"held_at": county_time})
    out = screen.getvalue()
    rows = {cells[0]: cells[1] for cells in
            ([cell.strip() for cell in line.strip().strip("│").split("│")]
             for line in out.splitlines() if line.strip().startswith("│"))}
    assert rows == {"meeting_id": "mt1", "type": "branch_assembly",
                    "held_at": "2026-11-10 19:30", "quorum_met": "yes", "cancelled": "no",
                    "topic": ""}  # nested lists (attendance) get tables of their own


def test_rows_can_be_styled_by_their_item():
    table = items_table([{"status": "absent"}, {"status": "present"}],
                        [Column("status", format=coded("attendance"))], "attendance",
                        row_style=lambda row: "red" if row["status"] == "absent" else None)
    assert [row.style for row in table.rows] == ["red", None]
    assert list(table.columns[0].cells) == ["absent 缺席", "present 出席"]
