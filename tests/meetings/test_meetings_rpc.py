"""meetings' RPC methods and intake handling on a real SQLite database (worker_factory)."""
import pytest

from orglife.common.errors import Conflict, Forbidden, NotFound, ValidationError
from tests.meetings.conftest import member_event, village_branch_events


def snapshot(store):
    from sqlalchemy import text
    with store.engine.connect() as conn:
        return {t: conn.execute(text(f"select * from {t} order by 1")).all()
                for t in ("meetings", "attendance", "activities", "outbox")}


@pytest.fixture
def secretary(meetings_worker):
    admin = meetings_worker()
    for envelope in village_branch_events():
        admin.on_members_events([envelope])
    return meetings_worker("branch_secretary", "b1")


ASSEMBLY = {
    "meeting_id": "mt1", "branch_id": "b1", "type": "branch_assembly",
    "held_at": "2026-11-10T19:30:00", "topic": "学习党的二十届四中全会精神",
    "minutes": "传达学习，讨论发展党员。",
    "attendance": [{"member_id": f"m{n}", "status": "present"} for n in range(1, 5)]
    + [{"member_id": "m5", "status": "present", "remote": True},
       {"member_id": "m6", "status": "leave"},
       {"member_id": "n1", "status": "present", "remote": True}],
}


def test_log_meeting_expands_attendance_and_computes_the_quorum(secretary, meetings_store):
    meeting = secretary.log_meeting(ASSEMBLY)
    assert meeting["held_at"] == "2026-11-10T11:30:00+00:00"  # county time read as UTC+8
    rows = {r["member_id"]: r for r in meeting["attendance"]}
    assert rows["m7"]["status"] == "absent" and rows["p1"]["status"] == "absent"
    assert rows["n1"]["visiting"] is True and rows["n1"]["expected"] is False
    assert meeting["summary"] == {"expected": 11, "present": 6, "leave": 1, "absent": 5,
                                  "remote": 2, "visiting": 1}
    assert meeting["quorum_met"] is True and meeting["quorum"]["needed"] == 5
    assert meeting["revision"] == 1
    [event] = [e for e in meetings_store.outbox_events() if e["event_type"] == "meeting_logged"]
    assert event["data"]["attendance"] == meeting["attendance"]


def test_a_missed_quorum_is_stored_with_its_reason(secretary):
    report = dict(ASSEMBLY, meeting_id="mt2", attendance=ASSEMBLY["attendance"][:3])
    meeting = secretary.log_meeting(report)
    assert meeting["quorum_met"] is False
    assert "3 of 9 voting members present; 5 needed" in meeting["quorum"]["reason"]


def test_log_meeting_is_idempotent_and_a_different_report_is_a_conflict(secretary, meetings_store):
    first = secretary.log_meeting(ASSEMBLY)
    before = snapshot(meetings_store)
    assert secretary.log_meeting(ASSEMBLY) == first
    assert snapshot(meetings_store) == before
    with pytest.raises(Conflict):
        secretary.log_meeting(dict(ASSEMBLY, topic="别的议题"))


@pytest.mark.parametrize("changes, field", [
    ({"branch_id": "nope"}, "branch_id"),
    ({"branch_id": "t1"}, "branch_id"),
    ({"type": "group"}, "group_id"),
    ({"type": "group", "group_id": "g-x"}, "group_id"),
    ({"type": "committee", "branch_id": "b3", "attendance": []}, "type"),
    ({"attendance": [{"member_id": "m1", "status": "present"},
                     {"member_id": "m1", "status": "absent"}]}, "attendance.1.member_id"),
    ({"attendance": [{"member_id": "m1", "status": "sleeping"}]}, "attendance.0.status"),
    ({"attendance": [{"member_id": "m1", "status": "absent", "remote": True}]},
     "attendance.0.remote"),
    ({"attendance": [{"member_id": "ghost", "status": "present"}]}, "attendance.0.member_id"),
    ({"held_at": "2027-01-01T10:00:00+08:00"}, "held_at"),
    ({"held_at": "last tuesday"}, "held_at"),
    ({"type": "party"}, "type"),
    ({"topic": ""}, "topic"),
    ({"attendance": None}, "attendance"),
    ({"colour": "red"}, "colour"),
])
def test_bad_meetings_name_the_field_and_store_nothing(secretary, meetings_worker, meetings_store,
                                                       changes, field):
    before = snapshot(meetings_store)
    with pytest.raises(ValidationError) as err:
        meetings_worker().log_meeting({**ASSEMBLY, **changes})
    assert field in err.value.errors, err.value.errors
    assert snapshot(meetings_store) == before


def test_schedule_then_log_raises_the_revision(secretary, meetings_store):
    scheduled = secretary.schedule_meeting({"meeting_id": "mt9", "branch_id": "b1",
                                            "type": "theme_day", "topic": "主题党日",
                                            "held_at": "2026-12-01T09:00:00+08:00"})
    assert scheduled["status"] == "scheduled" and len(scheduled["expected"]) == 11
    with pytest.raises(ValidationError) as err:
        secretary.schedule_meeting({"branch_id": "b1", "type": "lecture", "topic": "党课",
                                    "held_at": "2026-11-01T09:00:00+08:00"})
    assert "held_at" in err.value.errors
    logged = secretary.log_meeting({"meeting_id": "mt9", "branch_id": "b1", "type": "theme_day",
                                    "topic": "主题党日", "held_at": "2026-11-19T09:00:00+08:00",
                                    "attendance": [{"member_id": "m1", "status": "present"}]})
    assert logged["status"] == "logged" and logged["revision"] == 2


def test_amend_replaces_attendance_and_rejects_a_stale_revision(secretary, meetings_store):
    secretary.log_meeting(dict(ASSEMBLY, attendance=ASSEMBLY["attendance"][:3]))
    amended = secretary.amend_meeting({"meeting_id": "mt1", "revision": 1,
                                       "attendance": ASSEMBLY["attendance"]})
    assert amended["revision"] == 2 and amended["quorum_met"] is True
    with pytest.raises(Conflict) as err:
        secretary.amend_meeting({"meeting_id": "mt1", "revision": 1, "topic": "x"})
    assert "stale revision" in str(err.value)
    with pytest.raises(ValidationError) as err:
        secretary.amend_meeting({"meeting_id": "mt1", "revision": 2})
    assert "_schema" in err.value.errors
    topic_only = secretary.amend_meeting({"meeting_id": "mt1", "revision": 2, "topic": "更正议题"})
    assert topic_only["summary"] == amended["summary"] and topic_only["revision"] == 3


def test_cancelled_meetings_cannot_be_amended(secretary):
    secretary.log_meeting(ASSEMBLY)
    cancelled = secretary.cancel_meeting({"meeting_id": "mt1", "reason": "重复录入"})
    assert cancelled["cancelled"] is True and cancelled["revision"] == 2
    with pytest.raises(Conflict):
        secretary.amend_meeting({"meeting_id": "mt1", "revision": 2, "topic": "x"})
    with pytest.raises(ValidationError) as err:
        secretary.cancel_meeting({"meeting_id": "mt1"})
    assert "reason" in err.value.errors
    with pytest.raises(NotFound):
        secretary.cancel_meeting({"meeting_id": "nope", "reason": "x"})


def test_scope_of_a_branch_secretary(secretary, meetings_worker):
    with pytest.raises(Forbidden):
        secretary.log_meeting(dict(ASSEMBLY, branch_id="b2", meeting_id="mt5",
                                   attendance=[{"member_id": "n1", "status": "present"}]))
    secretary.log_meeting(ASSEMBLY)
    other = meetings_worker("branch_secretary", "b2")
    with pytest.raises(Forbidden):
        other.get_meeting("mt1")
    assert other.list_meetings({})["total"] == 0
    assert secretary.list_meetings({"type": "branch_assembly"})["total"] == 1
    assert meetings_worker("township_admin", "t1").list_meetings({"under": "t1"})["total"] == 1


def test_activities(secretary, meetings_store):
    visit = secretary.log_activity({"member_id": "m1", "kind": "household_visit",
                                    "held_at": "2026-11-12T15:00:00+08:00",
                                    "household": "石桥村3组 李大爷家",
                                    "opinions": "希望修缮村道"})
    assert visit["branch_id"] == "b1" and visit["activity_id"].startswith("ac-")
    assert secretary.log_activity({"member_id": "m1", "kind": "household_visit",
                                   "held_at": "2026-11-12T15:00:00+08:00",
                                   "household": "石桥村3组 李大爷家",
                                   "opinions": "希望修缮村道"}) == visit
    for bad, field in [({"kind": "household_visit"}, "household"),
                       ({"kind": "dancing"}, "kind"), ({"member_id": "ghost"}, "member_id"),
                       ({"held_at": "2030-01-01T00:00:00Z"}, "held_at")]:
        with pytest.raises(ValidationError) as err:
            secretary.log_activity({"member_id": "m1", "kind": "volunteer",
                                    "held_at": "2026-11-12T15:00:00+08:00", **bad})
        assert field in err.value.errors


def test_transferred_member_is_expected_by_the_branch_they_were_in_on_the_day(secretary,
                                                                            meetings_worker):
    from orglife.common.envelope import Envelope
    moved = member_event("m9", "b2", version=2, event_type="member_transferred")
    moved = Envelope(moved.event_id, moved.event_type, 2, "2026-11-15T00:00:00Z", "members",
                     moved.data)
    meetings_worker().on_members_events([moved])
    before = secretary.log_meeting(dict(ASSEMBLY, meeting_id="early",
                                        held_at="2026-11-10T19:30:00+08:00"))
    after = secretary.log_meeting(dict(ASSEMBLY, meeting_id="late",
                                       held_at="2026-11-18T19:30:00+08:00"))
    assert "m9" in {r["member_id"] for r in before["attendance"]}
    assert "m9" not in {r["member_id"] for r in after["attendance"]}


def test_a_nested_member_transferred_of_schema_version_1_is_still_read(secretary,
                                                                      meetings_worker):
    """Events written before the data became flat may still wait in a queue."""
    from orglife.common.envelope import Envelope
    flat = member_event("m9", "b2", version=2, event_type="member_transferred").data
    member = {k: v for k, v in flat.items() if k not in ("from_branch_id", "to_branch_id")}
    old = Envelope("old-transfer", "member_transferred", 1, "2026-11-15T00:00:00Z", "members",
                   {"member": member, "from_branch_id": "b1", "to_branch_id": "b2"})
    meetings_worker().on_members_events([old])
    after = secretary.log_meeting(dict(ASSEMBLY, meeting_id="late",
                                       held_at="2026-11-18T19:30:00+08:00"))
    assert "m9" not in {r["member_id"] for r in after["attendance"]}


def test_member_events_out_of_order_keep_every_version(meetings_worker):
    admin = meetings_worker()
    for envelope in village_branch_events():
        admin.on_members_events([envelope])
    update = member_event("m1", version=2, committee_member=False)
    admin.on_members_events([update])
    admin.on_members_events([update])  # a redelivery
    from sqlalchemy import func, select
    from services.meetings.models import MemberCopy
    with admin.store() as uow:
        assert uow.session.scalar(select(func.count()).select_from(MemberCopy)
                                  .where(MemberCopy.member_id == "m1")) == 2


def intake_envelope(event_type, data):
    from orglife.common.envelope import Envelope
    return Envelope.new("intake", event_type, data)


def test_intake_accepts_waits_and_rejects(secretary, meetings_worker, meetings_store):
    admin = meetings_worker()
    good = intake_envelope("meeting_reported", dict(ASSEMBLY, meeting_id="in1"))
    admin.on_intake([good])
    assert admin.get_meeting("in1")["source"] == "intake"
    admin.on_intake([good])  # redelivered: nothing new
    waiting = intake_envelope("meeting_reported", dict(
        ASSEMBLY, meeting_id="in2",
        attendance=ASSEMBLY["attendance"] + [{"member_id": "late", "status": "present"}]))
    admin.on_intake([waiting])
    assert admin.health()["intake_waiting"] == 1
    with pytest.raises(NotFound):
        admin.get_meeting("in2")
    admin.on_members_events([member_event("late")])
    admin.retry_waiting_intake()
    assert admin.health()["intake_waiting"] == 0
    assert "late" in {r["member_id"] for r in admin.get_meeting("in2")["attendance"]}
    bad = intake_envelope("meeting_reported", dict(ASSEMBLY, meeting_id="in3", type="picnic"))
    admin.on_intake([bad])
    other = intake_envelope("activity_reported", {"member_id": "n1", "kind": "volunteer",
                                                  "held_at": "2027-02-01T09:00:00+08:00"})
    admin.on_intake([other])
    rejected = admin.list_rejected_intake({})
    assert rejected["total"] == 2
    assert rejected["items"][0]["rejected_at"] == "2026-11-20T02:00:00+00:00"  # the clock's now
    types = [e["event_type"] for e in meetings_store.outbox_events()]
    assert types.count("intake_rejected") == 2 and types.count("meeting_logged") == 2
    # a scoped admin sees only the reports of its subtree
    assert [r["event_id"] for r in secretary.list_rejected_intake({})["items"]] == [bad.event_id]
    assert meetings_worker("township_admin", "t2").list_rejected_intake({})["total"] == 1


def test_one_intake_batch_with_a_meeting_its_repeat_and_a_changed_copy(
        secretary, meetings_worker, meetings_store):
    """A new meeting's rows are written when the batch commits (db.insert_later); a later
    report of the same meeting in the batch still finds it: the repeat is accepted and
    stores nothing new, a changed copy is refused as a conflict."""
    admin = meetings_worker()
    report = dict(ASSEMBLY, meeting_id="in8")
    first, repeat = (intake_envelope("meeting_reported", report) for _ in range(2))
    changed = intake_envelope("meeting_reported", dict(report, topic="另一个议题"))
    other = intake_envelope("meeting_reported", dict(ASSEMBLY, meeting_id="in9"))
    admin.on_intake([first, repeat, changed, other])
    assert [admin.get_intake(e.event_id)["status"] for e in (first, repeat, changed, other)] \
        == ["accepted", "accepted", "rejected", "accepted"]
    assert "_conflict" in admin.get_intake(changed.event_id)["reasons"]
    stored = admin.get_meeting("in8")
    assert stored["topic"] == ASSEMBLY["topic"] and stored["revision"] == 1
    assert len(stored["attendance"]) == len(admin.get_meeting("in9")["attendance"]) > 0
    types = [e["event_type"] for e in meetings_store.outbox_events()]
    assert types.count("meeting_logged") == 2 and types.count("intake_rejected") == 1


def test_an_intake_report_is_found_by_its_envelope_event_id(secretary, meetings_worker):
    admin = meetings_worker()
    meeting = intake_envelope("meeting_reported", dict(ASSEMBLY, meeting_id="in5"))
    visit = intake_envelope("activity_reported", {"member_id": "m2", "kind": "volunteer",
                                                  "held_at": "2026-11-15T09:00:00+08:00"})
    waiting = intake_envelope("meeting_reported", dict(
        ASSEMBLY, meeting_id="in6", attendance=[{"member_id": "later", "status": "present"}]))
    bad = intake_envelope("meeting_reported", dict(ASSEMBLY, meeting_id="in7", type="picnic"))
    admin.on_intake([meeting, visit, waiting, bad])
    assert admin.get_intake(meeting.event_id) | {"accepted_at": None} == {
        "event_id": meeting.event_id, "event_type": "meeting_reported", "status": "accepted",
        "meeting_id": "in5", "accepted_at": None}
    activity_id = admin.get_intake(visit.event_id)["activity_id"]
    assert admin.get_activity(activity_id)["member_id"] == "m2"
    assert admin.get_intake(waiting.event_id)["missing"] == ["later"]
    assert admin.get_intake(bad.event_id)["reasons"]["type"]
    assert secretary.get_intake(meeting.event_id)["status"] == "accepted"
    with pytest.raises(Forbidden):
        meetings_worker("branch_secretary", "b2").get_intake(meeting.event_id)
    with pytest.raises(NotFound):
        admin.get_intake("never-sent")


def test_activities_are_read_and_listed_within_scope(secretary, meetings_worker):
    admin = meetings_worker()
    for member_id, kind, day in [("m1", "household_visit", 3), ("m2", "volunteer", 5),
                                 ("n1", "volunteer", 7)]:
        admin.log_activity({"activity_id": f"a-{member_id}", "member_id": member_id,
                            "kind": kind, "held_at": f"2026-11-{day:02d}T10:00:00+08:00",
                            "household": "李大爷家" if kind == "household_visit" else None})
    everything = admin.list_activities({})
    assert [a["activity_id"] for a in everything["items"]] == ["a-n1", "a-m2", "a-m1"]
    assert [a["activity_id"] for a in secretary.list_activities({})["items"]] == ["a-m2", "a-m1"]
    assert secretary.list_activities({"kind": "volunteer"})["total"] == 1
    assert admin.list_activities({"from": "2026-11-04", "to": "2026-11-05"})["total"] == 1
    assert admin.list_activities({"member_id": "n1", "limit": 1})["items"][0]["kind"] == \
        "volunteer"
    assert secretary.get_activity("a-m1")["household"] == "李大爷家"
    with pytest.raises(Forbidden):
        secretary.get_activity("a-n1")
    with pytest.raises(NotFound):
        admin.get_activity("nope")
    with pytest.raises(ValidationError) as err:
        admin.list_activities({"kind": "dancing", "limit": 0})
    assert set(err.value.errors) == {"kind", "limit"}


def test_an_intake_report_still_unknown_after_its_wait_is_rejected(meetings_worker, clock):
    admin = meetings_worker()
    for envelope in village_branch_events():
        admin.on_members_events([envelope])
    report = intake_envelope("meeting_reported", dict(
        ASSEMBLY, meeting_id="in4", attendance=[{"member_id": "ghost", "status": "present"}]))
    admin.on_intake([report])
    from services.meetings.models import PendingIntake
    with admin.store() as uow:  # let its deadline pass (on the service's clock) at once
        uow.session.get(PendingIntake, report.event_id).deadline = clock.now().timestamp() - 1
        uow.commit()
    admin.retry_waiting_intake()
    [item] = admin.list_rejected_intake({})["items"]
    assert "ghost" in item["reasons"]["_waited"][0]


def test_the_intake_wait_is_counted_on_the_service_clock(meetings_store):
    """received_at and the deadline come from one clock, the injected one (ORGLIFE_NOW
    here, months before the wall clock): the deadline is received_at plus the wait, and
    the report is rejected when that clock, not the wall clock, passes it."""
    from datetime import datetime, timedelta, timezone
    from nameko.testing.services import worker_factory
    from orglife.common.clock import Clock
    from orglife.common.rules import load_rules
    from services.meetings.roster import RosterCache
    from services.meetings.service import MeetingsService
    from tests.conftest import auth_as
    rules = load_rules()
    wait = timedelta(seconds=rules.intake_wait_seconds)
    received = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)  # long before the wall clock

    def worker(at):
        clock = Clock("Asia/Shanghai", at.isoformat())
        return worker_factory(MeetingsService, store=meetings_store, auth=auth_as("county_admin"),
                              clock=clock, rules=rules, rosters=RosterCache())
    admin = worker(received)
    for envelope in village_branch_events():
        admin.on_members_events([envelope])
    report = intake_envelope("meeting_reported", dict(
        ASSEMBLY, meeting_id="in8", held_at="2026-03-01T19:30:00",
        attendance=[{"member_id": "ghost", "status": "present"}]))
    admin.on_intake([report])
    answer = admin.get_intake(report.event_id)
    assert (answer["received_at"], answer["deadline"]) == (
        received.isoformat(), (received + wait).isoformat())
    worker(received + wait - timedelta(seconds=1)).retry_waiting_intake()
    assert admin.get_intake(report.event_id)["status"] == "waiting"
    worker(received + wait).retry_waiting_intake()
    assert admin.get_intake(report.event_id)["status"] == "rejected"


def test_a_waiting_report_whose_member_is_known_now_is_answered(meetings_worker):
    """get_intake of an activity report still waiting (the retry timer has not run yet)
    whose member has arrived meanwhile: placed by that member's branch, not a crash on the
    naive datetime SQLite hands back."""
    admin = meetings_worker()
    for envelope in village_branch_events():
        admin.on_members_events([envelope])
    report = intake_envelope("activity_reported", {"member_id": "late", "kind": "volunteer",
                                                   "held_at": "2026-11-15T09:00:00+08:00"})
    admin.on_intake([report])
    admin.on_members_events([member_event("late")])  # no retry yet
    answer = meetings_worker("branch_secretary", "b1").get_intake(report.event_id)
    assert (answer["status"], answer["missing"]) == ("waiting", ["late"])
    with pytest.raises(Forbidden):
        meetings_worker("branch_secretary", "b2").get_intake(report.event_id)


def test_an_activity_logged_before_its_branch_was_known_gets_its_path(meetings_worker):
    """members' events may arrive in any order: an activity of a member whose branch is not
    known yet is stored without a path, and takes it when the branch arrives, so that the
    branch's secretary finds it (get and list)."""
    from tests.meetings.conftest import org_events
    admin = meetings_worker()
    orgs = org_events()
    admin.on_members_events([e for e in orgs if e.data["org_id"] != "b2"])
    admin.on_members_events([member_event("n1", "b2")])
    report = intake_envelope("activity_reported", {"activity_id": "a-early", "member_id": "n1",
                                                   "kind": "volunteer",
                                                   "held_at": "2026-11-15T09:00:00+08:00"})
    admin.on_intake([report])
    secretary = meetings_worker("branch_secretary", "b2")
    with pytest.raises(Forbidden):
        secretary.get_activity("a-early")
    admin.on_members_events([e for e in orgs if e.data["org_id"] == "b2"])
    assert secretary.get_activity("a-early")["branch_id"] == "b2"
    assert [a["activity_id"] for a in secretary.list_activities({})["items"]] == ["a-early"]
    assert secretary.get_intake(report.event_id)["activity_id"] == "a-early"
    assert meetings_worker("township_admin", "t2").list_activities({})["total"] == 1


def test_scheduled_meetings_show_who_is_expected(secretary):
    secretary.schedule_meeting({"meeting_id": "s1", "branch_id": "b1", "type": "committee",
                                "topic": "支委会", "held_at": "2026-12-03T09:00:00+08:00"})
    assert secretary.get_meeting("s1")["expected"] == ["m1", "m2", "m3"]
    [item] = secretary.list_meetings({"status": "scheduled"})["items"]
    assert item["summary"]["expected"] == 3


def test_cached_rosters_follow_member_events(meetings_worker):
    from orglife.common.envelope import Envelope
    admin = meetings_worker()
    for envelope in village_branch_events():
        admin.on_members_events([envelope])
    first = intake_envelope("meeting_reported", dict(ASSEMBLY, meeting_id="c1",
                                                     held_at="2026-11-16T10:00:00+08:00"))
    admin.on_intake([first])  # fills the roster cache for b1
    assert "m9" in {r["member_id"] for r in admin.get_meeting("c1")["attendance"]}
    moved = member_event("m9", "b2", version=2, event_type="member_transferred")
    admin.on_members_events([Envelope(moved.event_id, moved.event_type, 2,
                                      "2026-11-17T00:00:00Z", "members", moved.data)])
    second = intake_envelope("meeting_reported", dict(ASSEMBLY, meeting_id="c2",
                                                      held_at="2026-11-18T10:00:00+08:00"))
    admin.on_intake([second])
    assert "m9" not in {r["member_id"] for r in admin.get_meeting("c2")["attendance"]}


def test_a_member_who_joined_after_the_meeting_is_not_expected(meetings_worker):
    admin = meetings_worker()
    for envelope in village_branch_events():
        admin.on_members_events([envelope])
    admin.on_members_events([member_event("new1", joined_on="2026-11-15")])
    meeting = admin.log_meeting(dict(ASSEMBLY, held_at="2026-11-10T19:30:00+08:00"))
    assert "new1" not in {r["member_id"] for r in meeting["attendance"]}
    assert meeting["quorum"]["eligible"] == 9
    early = admin.log_meeting(dict(ASSEMBLY, meeting_id="mt-early",
                                   attendance=[{"member_id": "new1", "status": "present"}]))
    assert early["non_members"] == [{"member_id": "new1", "status": "present", "remote": False}]
    assert "not yet a member" in early["warnings"][0]["message"]


def test_scope_is_checked_before_any_detail_about_another_branch(secretary):
    with pytest.raises(Forbidden):
        secretary.log_meeting(dict(ASSEMBLY, branch_id="b2", meeting_id="mt-x",
                                   attendance=[{"member_id": "ghost", "status": "present"}]))


def test_rejected_intake_filters_follow_the_declared_report_types(monkeypatch, meetings_worker):
    """The kinds of report list_rejected_intake filters on are those the system declaration
    says meetings consumes from intake: a new kind is one entry there, not a second list."""
    import dataclasses
    import importlib
    import orglife.system
    from orglife.common.system import Event, Peer, System
    from services.meetings import intake, schemas
    declared = orglife.system.SYSTEM
    assert set(schemas.RejectedFilters().fields["event_type"].validate.choices) == \
        set(declared.service("meetings").subscribes["intake"]) == set(intake.HANDLERS)
    kinds = (*declared.service("meetings").subscribes["intake"], "minutes_reported")
    services = [dataclasses.replace(s, subscribes={**s.subscribes, "intake": kinds})
                if s.name == "meetings" else s for s in declared.services]
    peers = [Peer("intake", publishes=[Event(kind) for kind in kinds])]
    monkeypatch.setattr(orglife.system, "SYSTEM", System(services=services, peers=peers))
    try:
        importlib.reload(schemas)
        admin = meetings_worker()
        assert admin.list_rejected_intake({"event_type": "minutes_reported"})["total"] == 0
        with pytest.raises(ValidationError) as err:
            admin.list_rejected_intake({"event_type": "picnic_reported"})
        assert "minutes_reported" in err.value.errors["event_type"][0]
    finally:
        monkeypatch.undo()
        importlib.reload(schemas)
    with pytest.raises(ValidationError):
        meetings_worker().list_rejected_intake({"event_type": "minutes_reported"})
