"""members' participation record from meetings' events: revisions, duplicates, reordering."""
import pytest

from orglife.common.envelope import Envelope
from tests.members.conftest import small_county


def meeting_event(revision, attendance, event_type="meeting_logged", cancelled=False,
                  meeting_id="mt1", held_at="2026-03-10T11:30:00+00:00", type_="branch_assembly"):
    return Envelope.new("meetings", event_type, {
        "meeting_id": meeting_id, "branch_id": "b1", "group_id": None, "type": type_,
        "held_at": held_at, "topic": "学习", "minutes": None, "status": "logged",
        "revision": revision, "quorum_met": True, "cancelled": cancelled,
        "attendance": [{"member_id": m, "status": s, "remote": False, "expected": True,
                        "visiting": False} for m, s in attendance]})


@pytest.fixture
def admin(members_worker):
    worker = members_worker()
    small_county(worker)
    for member_id in ("m1", "m2"):
        worker.register_member({"member_id": member_id, "name": member_id, "branch_id": "b1"})
    return worker


def record(worker, member_id):
    return worker.get_member(member_id)["participation"]


def test_a_logged_meeting_appears_in_each_members_record(admin):
    admin.on_meetings_events([meeting_event(1, [("m1", "present"), ("m2", "absent")])])
    items = record(admin, "m1")["items"]
    assert [(i["ref"], i["status"], i["type"]) for i in items] == [("mt1", "present",
                                                                     "branch_assembly")]
    assert items[0]["held_at"] == "2026-03-10T11:30:00+00:00"
    assert record(admin, "m2")["counts"] == {"2026": {"branch_assembly": {
        "present": 0, "leave": 0, "absent": 1, "done": 0}}}


def test_amendment_before_original_and_duplicates_give_the_same_record(admin):
    original = meeting_event(1, [("m1", "absent"), ("m2", "absent")])
    amended = meeting_event(2, [("m1", "present"), ("m2", "leave")], "meeting_amended")
    for envelope in (amended, original, amended, original):
        admin.on_meetings_events([envelope])
    assert [(i["status"]) for i in record(admin, "m1")["items"]] == ["present"]
    assert [(i["status"]) for i in record(admin, "m2")["items"]] == ["leave"]


def test_a_cancellation_removes_the_meeting_even_if_an_older_revision_arrives_later(admin):
    admin.on_meetings_events([meeting_event(3, [("m1", "present")], "meeting_cancelled",
                                          cancelled=True)])
    admin.on_meetings_events([meeting_event(1, [("m1", "present")])])
    admin.on_meetings_events([meeting_event(2, [("m1", "present")], "meeting_amended")])
    assert record(admin, "m1")["items"] == []


def test_activities_and_the_record_follows_a_transfer(admin):
    admin.on_meetings_events([Envelope.new("meetings", "activity_logged", {
        "activity_id": "a1", "member_id": "m1", "branch_id": "b1", "kind": "household_visit",
        "held_at": "2026-04-01T02:00:00+00:00", "note": None, "household": "李大爷家",
        "opinions": "修路"})])
    admin.on_meetings_events([meeting_event(1, [("m1", "present")])])
    admin.transfer_member({"member_id": "m1", "to_branch_id": "b2"})
    items = record(admin, "m1")["items"]
    assert [(i["kind"], i["type"]) for i in items] == [("meeting", "branch_assembly"),
                                                       ("activity", "household_visit")]
    assert record(admin, "m1")["counts"]["2026"]["household_visit"]["done"] == 1


def test_revisions_of_one_meeting_in_one_batch_apply_without_falling_back(admin):
    batch = [meeting_event(1, [("m1", "absent")]),
             meeting_event(2, [("m1", "present")], "meeting_amended"),
             meeting_event(1, [("m1", "absent")])]
    admin.on_meetings_events(batch)  # one transaction; raising here would fail the test
    assert [i["status"] for i in record(admin, "m1")["items"]] == ["present"]


def test_two_amendments_in_one_batch_leave_the_lines_of_the_newest(admin):
    """The lines of the first amendment are queued (db.insert_later) when the second replaces
    them in the same transaction: they are deleted too, not written beside the newest."""
    admin.on_meetings_events([meeting_event(1, [("m1", "present"), ("m2", "present")])])
    admin.on_meetings_events([
        meeting_event(2, [("m1", "present"), ("m2", "absent")], "meeting_amended"),
        meeting_event(3, [("m1", "absent")], "meeting_amended")])
    assert [i["status"] for i in record(admin, "m1")["items"]] == ["absent"]
    assert record(admin, "m2")["items"] == []
