"""The timer's sweep for meetings left waiting by two instances' commits crossing
(handlers.overlooked, handlers.wake_overlooked), on SQLite and on PostgreSQL: its query
matches a wait for the meeting's branch against organizations and any other against members,
and the meeting is planned once."""
from datetime import timedelta

from sqlalchemy import select

from orglife.common.migrate import upgrade
from orglife.common.rules import load_rules
from services.notifications import handlers
from services.notifications.models import (ContactCopy, MeetingSeen, MeetingWait, Notification,
                                           OrgCopy, backbone)
from services.notifications.registry import Planning, SessionDirectory
from services.notifications.texts import Texts
from tests.conftest import LocalStore


def sweep(store, clock) -> int:
    with store() as uow:
        planning = Planning(load_rules(), Texts(clock.tz), clock.tz, clock.now(),
                            SessionDirectory(uow.session, False, ("email", "in_app")))
        planned = handlers.wake_overlooked(uow, planning)
        uow.commit()
    return planned


def meeting(meeting_id, branch_id, absent, held):
    return {"meeting_id": meeting_id, "branch_id": branch_id, "type": "branch_assembly",
            "held_at": held, "topic": "学习", "revision": 1, "status": "logged",
            "attendance": [{"member_id": who, "status": "absent", "expected": True}
                           for who in absent]}


def branch(org_id):
    return OrgCopy(org_id=org_id, name=f"{org_id}党支部", kind="branch", parent_id=None,
                   path=f"/{org_id}/", secretary_id=None, robot_url=None, version=1)


def test_overlooked_waits_are_found_by_kind_and_planned_once(db_url, scoring_clock):
    upgrade("notifications", db_url)
    store = LocalStore(db_url, "notifications", backbone, clock=scoring_clock)
    held = (scoring_clock.now() - timedelta(hours=2)).isoformat()
    with store() as uow:
        session = uow.session
        session.add_all([
            branch("b1"), branch("x7"),
            ContactCopy(member_id="m1", name="张三", branch_id="b1", status="formal",
                        phone=None, email="zhang@example.cn", version=1),
            ContactCopy(member_id="b9", name="李四", branch_id="b1", status="formal",
                        phone=None, email=None, version=1)])
        for meeting_id, branch_id, absent, waited in [
                ("w-branch", "b1", ["m1"], "b1"),  # its branch, known since: overlooked
                ("w-member", "b1", ["m1"], "m1"),  # its member, known since: overlooked
                ("w-x7", "b1", ["x7"], "x7"),  # member x7, unknown (an org has that id)
                ("w-b9", "b9", ["m1"], "b9")]:  # branch b9, unknown (a member has that id)
            session.add(MeetingSeen(meeting_id=meeting_id, revision=1,
                                    waiting=meeting(meeting_id, branch_id, absent, held)))
            session.add(MeetingWait(waited_id=waited, meeting_id=meeting_id))
        uow.commit()
    with store() as uow:
        assert handlers.overlooked(uow.session) == ["w-branch", "w-member"]
        assert handlers.overlooked(uow.session, limit=1) == ["w-branch"]
    assert sweep(store, scoring_clock) == 2
    assert sweep(store, scoring_clock) == 0  # a second sweep (another instance's): none left
    with store() as uow:
        planned = uow.session.execute(select(Notification.kind, Notification.recipient_id,
                                             Notification.ref)).all()
        # the follow-up, and the digest to the branch itself (it has no secretary): once each
        assert sorted(planned) == [("absence_digest", "b1", "w-branch"),
                                   ("absence_digest", "b1", "w-member"),
                                   ("absence_followup", "m1", "w-branch"),
                                   ("absence_followup", "m1", "w-member")]
        assert sorted(uow.session.execute(select(MeetingWait.waited_id,
                                                 MeetingWait.meeting_id)).all()) == [
            ("b9", "w-b9"), ("x7", "w-x7")]
        assert handlers.overlooked(uow.session) == []
    store.engine.dispose()


def test_a_meeting_that_fails_to_plan_keeps_waiting_and_the_others_are_planned(
        db_url, scoring_clock, monkeypatch, caplog):
    """Each meeting of the sweep is planned in a savepoint of its own: one raising is rolled
    back alone, logged, and found again next time; the others are planned and committed."""
    upgrade("notifications", db_url)
    store = LocalStore(db_url, "notifications", backbone, clock=scoring_clock)
    held = (scoring_clock.now() - timedelta(hours=2)).isoformat()
    with store() as uow:
        uow.session.add_all([branch("b1"), ContactCopy(
            member_id="m1", name="张三", branch_id="b1", status="formal", phone=None,
            email="zhang@example.cn", version=1)])
        for meeting_id in ("ok-1", "bad-2", "ok-3"):
            uow.session.add(MeetingSeen(meeting_id=meeting_id, revision=1,
                                        waiting=meeting(meeting_id, "b1", ["m1"], held)))
            uow.session.add(MeetingWait(waited_id="m1", meeting_id=meeting_id))
        uow.commit()
    real = handlers.plan_meeting

    def plan_meeting(uow, meeting, planning, first=True):
        real(uow, meeting, planning, first=first)  # writes, then fails: rolled back alone
        if meeting["meeting_id"] == "bad-2":
            raise RuntimeError("a template that breaks on this meeting")
    monkeypatch.setattr(handlers, "plan_meeting", plan_meeting)
    assert sweep(store, scoring_clock) == 2
    assert "meeting bad-2 could not be planned again" in caplog.text
    with store.read() as uow:
        refs = sorted(set(uow.session.scalars(select(Notification.ref))))
        assert refs == ["ok-1", "ok-3"]
        assert uow.session.execute(select(MeetingWait.waited_id, MeetingWait.meeting_id)
                                   ).all() == [("m1", "bad-2")]
        assert handlers.overlooked(uow.session) == ["bad-2"]
    monkeypatch.setattr(handlers, "plan_meeting", real)  # fixed: planned on the next sweep
    assert sweep(store, scoring_clock) == 1
    with store.read() as uow:
        assert sorted(set(uow.session.scalars(select(Notification.ref)))) == [
            "bad-2", "ok-1", "ok-3"]
    store.engine.dispose()
