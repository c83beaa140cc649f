"""`orglife meeting show`: a meeting's warnings (non-member attendees) printed in yellow."""
import io

import pytest
from rich.console import Console

from orglife.cli import meetings as meeting_cli

MEETING = {
    "meeting_id": "g-jan", "branch_id": "b1", "type": "group", "status": "logged",
    "held_at": "2026-01-15T11:30:00+00:00", "quorum_met": True, "quorum": {"met": True},
    "summary": {"expected": 4, "present": 2, "leave": 0, "absent": 2, "remote": 1,
                "visiting": 0},
    "attendance": [{"member_id": "m1", "status": "present", "remote": False, "expected": True,
                    "visiting": False}],
    "non_members": [{"member_id": "m002173", "status": "present", "remote": False}],
    "warnings": [{"field": "attendance.1.member_id",
                  "message": "'m002173' was not yet a member on that date: recorded as a "
                             "non-member attendee, counting for nothing [sic]"}],
}


@pytest.fixture(autouse=True)
def county_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ORGLIFE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ORGLIFE_SECRET", "display-test-secret")
    monkeypatch.delenv("ORGLIFE_TZ", raising=False)


def shown(monkeypatch, meeting, **console_options):
    out = io.StringIO()
    monkeypatch.setattr(meeting_cli, "console", Console(file=out, width=200, **console_options))
    meeting_cli.show_meeting(meeting)
    return out.getvalue()


def test_show_meeting_prints_each_warning_in_yellow(monkeypatch):
    plain = shown(monkeypatch, MEETING, color_system=None)
    assert ("warning: attendance.1.member_id: 'm002173' was not yet a member on that date"
            in plain)
    assert "[sic]" in plain  # the message is text, not markup
    coloured = shown(monkeypatch, MEETING, force_terminal=True, color_system="standard")
    [line] = [line for line in coloured.splitlines() if "m002173" in line]
    assert "\x1b[33m" in line  # yellow


def test_a_meeting_without_warnings_prints_none(monkeypatch):
    assert "warning" not in shown(monkeypatch, dict(MEETING, warnings=[]), color_system=None)
    assert "warning" not in shown(monkeypatch, {k: v for k, v in MEETING.items()
                                                if k != "warnings"}, color_system=None)
