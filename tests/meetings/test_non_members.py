"""A meeting that happened is kept (issue 7 §1): an attendee who was not a member on its date
is a non-member attendee counting for nothing, with a warning; only what cannot be a meeting
at all rejects a report."""
import pytest

from orglife.common.envelope import Envelope
from orglife.common.errors import ValidationError
from orglife.common.rules import load_rules
from services.meetings import domain
from services.meetings.domain import Person
from tests.meetings.conftest import member_event, village_branch_events

RULES = load_rules()

# A January group meeting listing members of g1 and an activist who joined in August.
GROUP_MEETING = {
    "meeting_id": "g-jan", "branch_id": "b1", "group_id": "g1", "type": "group",
    "held_at": "2026-01-15T19:30:00+08:00", "topic": "学习",
    "attendance": [{"member_id": "m1", "status": "present"},
                   {"member_id": "m002173", "status": "present"},
                   {"member_id": "m2", "status": "present", "remote": True},
                   {"member_id": "gone", "status": "present"}],
}


@pytest.fixture
def admin(meetings_worker):
    worker = meetings_worker()
    for envelope in village_branch_events():
        worker.on_members_events([envelope])
    worker.on_members_events([member_event("m002173", group_id="g1", joined_on="2026-08-01")])
    # a member removed in 2025 (version 2 took effect then)
    worker.on_members_events([member_event("gone", group_id="g1")])
    removed = member_event("gone", group_id="g1", version=2, status="removed")
    worker.on_members_events([Envelope(removed.event_id, removed.event_type, 1,
                                       "2025-06-01T00:00:00Z", "members", removed.data)])
    return worker


# -- the rule, as a plain function -----------------------------------------------------------------
def test_a_person_not_a_member_on_the_date_is_a_non_member_attendee():
    roster = [Person(f"m{n}", "b1", None, "formal", False, False) for n in range(3)]
    later = Person("late", "b1", None, "formal", False, False, joined=False)
    removed = Person("gone", "b1", None, "removed", False, False)
    listed = [{"member_id": "m0", "status": "present"},
              {"member_id": "late", "status": "present", "remote": True},
              {"member_id": "gone", "status": "leave"}]
    built = domain.build_attendance(RULES, "branch_assembly", "b1", None, roster, listed,
                                    {"m0": roster[0], "late": later, "gone": removed})
    assert not built.found
    assert [r["member_id"] for r in built.rows] == ["m0", "m1", "m2"]
    assert built.non_members == [{"member_id": "late", "status": "present", "remote": True},
                                 {"member_id": "gone", "status": "leave", "remote": False}]
    assert [w["field"] for w in built.warnings] == ["attendance.1.member_id",
                                                    "attendance.2.member_id"]
    assert "'late' was not yet a member on that date" in built.warnings[0]["message"]
    assert "'gone' was removed on that date" in built.warnings[1]["message"]
    # counts for nothing: one of three voting members present
    assert domain.quorum(RULES, "branch_assembly", roster, built.rows)["present"] == 1
    assert domain.attendance_summary(built.rows)["present"] == 1


def test_listing_a_non_member_twice_is_still_an_error():
    later = Person("late", "b1", None, "formal", False, False, joined=False)
    built = domain.build_attendance(RULES, "lecture", "b1", None, [],
                                    [{"member_id": "late", "status": "present"},
                                     {"member_id": "late", "status": "present"}],
                                    {"late": later})
    assert "attendance.1.member_id" in built.found.errors


# -- log, get, list, amend, events ---------------------------------------------------------------
def test_a_meeting_with_a_later_member_is_kept_with_a_warning(admin, meetings_store):
    meeting = admin.log_meeting(GROUP_MEETING)
    rows = {r["member_id"]: r for r in meeting["attendance"]}
    assert set(rows) == {"m1", "m2", "m3", "m4"}  # g1's members then; m3, m4 absent
    assert rows["m1"]["status"] == "present" and rows["m3"]["status"] == "absent"
    assert meeting["non_members"] == [
        {"member_id": "m002173", "status": "present", "remote": False},
        {"member_id": "gone", "status": "present", "remote": False}]
    assert [w["field"] for w in meeting["warnings"]] == ["attendance.1.member_id",
                                                         "attendance.3.member_id"]
    assert "'m002173' was not yet a member on that date" in meeting["warnings"][0]["message"]
    assert meeting["summary"]["present"] == 2 and meeting["summary"]["expected"] == 4
    [event] = [e for e in meetings_store.outbox_events() if e["event_type"] == "meeting_logged"]
    assert event["data"]["warnings"] == meeting["warnings"]
    assert event["data"]["non_members"] == meeting["non_members"]
    assert "m002173" not in {r["member_id"] for r in event["data"]["attendance"]}
    assert admin.get_meeting("g-jan")["warnings"] == meeting["warnings"]
    [item] = admin.list_meetings({})["items"]
    assert item["warnings"] == meeting["warnings"]
    assert admin.log_meeting(GROUP_MEETING) == meeting  # the same report again


def test_an_amendment_keeps_the_non_member_attendees(admin, meetings_store):
    admin.log_meeting(GROUP_MEETING)
    amended = admin.amend_meeting({"meeting_id": "g-jan", "revision": 1, "topic": "学习党章"})
    assert [n["member_id"] for n in amended["non_members"]] == ["m002173", "gone"]
    assert len(amended["warnings"]) == 2
    moved = admin.amend_meeting({"meeting_id": "g-jan", "revision": 2,
                                 "held_at": "2026-09-15T19:30:00+08:00"})
    # in September the activist had joined: a member attendee now, no longer a warning
    assert "m002173" in {r["member_id"] for r in moved["attendance"]}
    assert [n["member_id"] for n in moved["non_members"]] == ["gone"]
    [event] = [e for e in meetings_store.outbox_events() if e["event_type"] == "meeting_amended"
               and e["data"]["revision"] == 3]
    assert [w["field"] for w in event["data"]["warnings"]] == ["attendance.3.member_id"]


def test_a_scheduled_meeting_has_no_warnings(admin):
    meeting = admin.schedule_meeting({"meeting_id": "s1", "branch_id": "b1", "type": "lecture",
                                      "topic": "党课", "held_at": "2026-12-03T09:00:00+08:00"})
    assert meeting["non_members"] == [] and meeting["warnings"] == []


def test_what_cannot_be_a_meeting_is_still_rejected(admin):
    with pytest.raises(ValidationError) as err:
        admin.log_meeting(dict(GROUP_MEETING, meeting_id="bad", branch_id="g1"))
    assert "branch_id" in err.value.errors


# -- intake ----------------------------------------------------------------------------------------
def test_intake_accepts_a_report_with_a_later_member(admin):
    report = Envelope.new("intake", "meeting_reported", dict(GROUP_MEETING, meeting_id="in-jan"))
    admin.on_intake([report])
    assert admin.list_rejected_intake({})["total"] == 0
    assert admin.get_intake(report.event_id)["status"] == "accepted"
    meeting = admin.get_meeting("in-jan")
    assert meeting["source"] == "intake"
    assert [n["member_id"] for n in meeting["non_members"]] == ["m002173", "gone"]
    assert {r["member_id"] for r in meeting["attendance"]} == {"m1", "m2", "m3", "m4"}
