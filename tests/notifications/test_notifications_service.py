"""The notifications service on real SQLite files, fed by the real members, meetings and
scoring workers (tests/notifications/conftest.py FullPipeline), sending through real local
endpoints: an SMTP sink, an SMS gateway and a robot recorder (orglife/devservers.py)."""
import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from orglife.common.clock import as_utc
from orglife.common.errors import Conflict, Forbidden, NotFound, ValidationError
from services.notifications.models import Notification
from tests.scoring.conftest import attendance, register_village

CONTACTS = {"m1": {"email": "m1@example.cn"}, "m2": {"phone": "13700137002"},
            "m9": {"email": "sec@example.cn", "phone": "13800138009"}}


def village(full, own_name):
    """b1 with m1 (e-mail), m2 (phone only), m3.. (no contact), secretary m9; robot per test."""
    register_village(full)
    for member_id, contact in CONTACTS.items():
        full.members.update_member({"member_id": member_id, **contact})
    full.members.update_organization({"org_id": "b1", "secretary_id": "m9"})
    full.deliver()


def election_scheduled(full, own_name):
    """The village with its 换届选举 assembly s1 scheduled for 2026-11-23 19:30."""
    village(full, own_name)
    full.meetings.schedule_meeting({"meeting_id": "s1", "branch_id": "b1",
                                    "type": "branch_assembly", "held_at": "2026-11-23T19:30:00",
                                    "topic": "换届选举"})
    full.deliver()


def assembly(meeting_id="a1", day="2026-11-19", **who):
    return {"meeting_id": meeting_id, "branch_id": "b1", "type": "branch_assembly",
            "held_at": f"{day}T19:30:00", "topic": "学习贯彻全会精神",
            "attendance": attendance(**who)}


def rows(store, **where):
    with store() as uow:
        query = select(Notification)
        for key, value in where.items():
            query = query.where(getattr(Notification, key) == value)
        found = uow.session.scalars(query.order_by(Notification.kind,
                                                   Notification.recipient_id)).all()
        columns = Notification.__table__.columns.keys()
        return [SimpleNamespace(**{c: getattr(n, c) for c in columns}) for n in found]


def send_due(full, clock, minutes=0):
    """Move the clock on and run the sender's timer, as the service would."""
    clock.fixed = clock.fixed + timedelta(minutes=minutes)
    full.notifications.deliver_due()


def test_absence_followups_and_the_digest_go_out_once_through_real_channels(
        full, scoring_clock, endpoints, own_name, notifications_store):
    village(full, own_name)
    mails_before = len(endpoints.mails())
    full.meetings.log_meeting(assembly(present=["m4", "m5", "m6", "m7", "m8", "m9"],
                                       absent=["m1", "m2", "m3"]))
    full.deliver()
    pending = rows(notifications_store)
    assert [(n.kind, n.recipient_id, n.channel, n.about_id) for n in pending] == [
        ("absence_digest", "m9", "email", None),
        ("absence_followup", "m1", "email", "m1"),
        ("absence_followup", "m2", "sms", "m2"),
        ("absence_followup", "m3", "in_app", "m3")]  # m3 unreachable: the digest says so
    assert {n.status for n in pending} == {"pending"}
    send_due(full, scoring_clock)
    assert {n.status for n in rows(notifications_store)} == {"pending"}  # the 10-minute grace
    send_due(full, scoring_clock, minutes=11)
    assert {n.status for n in rows(notifications_store)} == {"delivered"}
    mails = endpoints.mails()[mails_before:]
    to = sorted(m.to for m in mails)
    assert to == ["m1@example.cn", "sec@example.cn"]  # one message to the secretary
    digest = [m for m in mails if "缺席汇总" in m.subject][0]
    assert "党员1、党员2、党员3" in digest.body
    assert "其中党员3没有可用的电话或邮箱" in digest.body
    sms = [r for r in endpoints.sms.requests() if r["body"]["phone"] == "13700137002" and r["answer"] == "ok"]
    assert len(sms) == 1 and "缺席跟进" in sms[0]["body"]["text"]
    delivered = [e for e in full.new_events("notifications")
                 if e.event_type == "notification_delivered"]
    assert len(delivered) == 4 and "phone" not in str(delivered[0].data)
    # the channel's acceptance is in the history: the Message-ID the SMTP server took
    [followup] = rows(notifications_store, kind="absence_followup", recipient_id="m1")
    receipt = followup.history[-1]["receipt"]
    [sent] = [m for m in mails if m.to == "m1@example.cn"]
    assert receipt.startswith("email: accepted (SMTP 250) as <")
    assert receipt.endswith(sent.message_id) and sent.message_id.startswith("<")

    # everything again, and the same meeting amended with m1 still absent: nothing new
    full.replay_everything()
    full.meetings.amend_meeting({"meeting_id": "a1", "revision": 1, "topic": "学习贯彻全会精神（补记）"})
    full.deliver()
    send_due(full, scoring_clock, minutes=30)
    assert len(rows(notifications_store)) == 4
    assert len(endpoints.mails()) == mails_before + 2


def test_an_amendment_withdraws_a_pending_followup_and_updates_the_digest(
        full, scoring_clock, endpoints, own_name, notifications_store):
    village(full, own_name)
    full.meetings.log_meeting(assembly(present=["m3", "m4", "m5", "m6", "m7", "m8", "m9"],
                                       absent=["m1", "m2"]))
    full.deliver()
    full.meetings.amend_meeting({"meeting_id": "a1", "revision": 1, "attendance": attendance(
        present=["m3", "m4", "m5", "m6", "m7", "m8", "m9"], absent=["m1"], leave=["m2"])})
    full.deliver()
    by = {(n.kind, n.recipient_id): n for n in rows(notifications_store)}
    assert by[("absence_followup", "m2")].status == "withdrawn"
    assert by[("absence_followup", "m1")].status == "pending"
    assert "党员1" in by[("absence_digest", "m9")].body
    assert "党员2" not in by[("absence_digest", "m9")].body
    # all on leave: the digest goes too
    full.meetings.amend_meeting({"meeting_id": "a1", "revision": 2, "attendance": attendance(
        present=["m3", "m4", "m5", "m6", "m7", "m8", "m9"], leave=["m1", "m2"])})
    full.deliver()
    send_due(full, scoring_clock, minutes=11)
    assert {n.status for n in rows(notifications_store)} == {"withdrawn"}


def test_sms_failing_falls_back_to_the_next_channel_with_notification_failed(
        full, scoring_clock, endpoints, own_name, notifications_store):
    village(full, own_name)
    full.members.update_member({"member_id": "m1", "phone": "13700137001"})
    full.deliver()
    full.notifications.set_preferences({"member_id": "m1", "channels": ["sms", "email"]})
    endpoints.sms.fail_next(5, "http500")
    full.meetings.log_meeting(assembly(present=["m2", "m3", "m4", "m5", "m6", "m7", "m8",
                                                "m9"], absent=["m1"]))
    full.deliver()
    [followup] = rows(notifications_store, kind="absence_followup")
    assert followup.channels == ["sms", "email", "in_app"]
    send_due(full, scoring_clock, minutes=11)
    for pause in (1, 5, 30, 120):  # the rules file's backoff
        [followup] = rows(notifications_store, kind="absence_followup")
        assert (followup.status, followup.channel) == ("pending", "sms")
        send_due(full, scoring_clock, minutes=pause)
    [followup] = rows(notifications_store, kind="absence_followup")
    assert (followup.status, followup.channel, followup.attempts) == ("delivered", "email", 1)
    failed = [e.data for e in full.new_events("notifications")
              if e.event_type == "notification_failed"]
    assert [(f["channel"], f["attempts"], f["next_channel"], f["final"]) for f in failed] == [
        ("sms", 5, "email", False)]
    assert [h["outcome"] for h in followup.history] == ["TemporaryFailure"] * 5 + ["delivered"]


def test_a_refusing_gateway_moves_on_at_once(full, scoring_clock, endpoints, own_name,
                                             notifications_store):
    village(full, own_name)
    endpoints.sms.fail_next(1, "http", status=400)
    full.meetings.log_meeting(assembly(present=["m1", "m3", "m4", "m5", "m6", "m7", "m8",
                                                "m9"], absent=["m2"]))
    full.deliver()
    send_due(full, scoring_clock, minutes=11)
    [followup] = rows(notifications_store, kind="absence_followup", recipient_id="m2")
    assert (followup.status, followup.channel) == ("delivered", "in_app")


def test_quiet_hours_defer_and_urgent_alerts_do_not(full, scoring_clock, endpoints, own_name,
                                                   notifications_store):
    village(full, own_name)
    scoring_clock.fixed = scoring_clock.fixed.replace(hour=15)  # 23:00 county time
    full.meetings.log_meeting(assembly(present=["m2", "m3", "m4", "m5", "m6", "m7", "m8",
                                                "m9"], absent=["m1"]))
    full.deliver()
    followup = rows(notifications_store, kind="absence_followup")[0]
    assert followup.not_before.hour == 23  # 07:00 county time, in UTC
    send_due(full, scoring_clock, minutes=30)
    assert rows(notifications_store, kind="absence_followup")[0].status == "pending"
    # choosing channels alone keeps the county's quiet hours
    chosen = full.notifications.set_preferences({"member_id": "m1", "channels": ["email"]})
    assert (chosen["quiet_hours"], chosen["quiet_hours_default"]) == ("22:00-07:00", True)
    send_due(full, scoring_clock, minutes=1)
    assert rows(notifications_store, kind="absence_followup")[0].status == "pending"
    # the member chose no quiet hours: theirs go now
    full.notifications.set_preferences({"member_id": "m1", "quiet_hours": None})
    send_due(full, scoring_clock, minutes=1)
    assert rows(notifications_store, kind="absence_followup")[0].status == "delivered"


def test_reminders_follow_a_scheduled_meeting_moved_and_cancelled(
        full, scoring_clock, endpoints, own_name, notifications_store):
    election_scheduled(full, own_name)
    reminders = rows(notifications_store, kind="meeting_reminder")
    assert len(reminders) == 9 + 1  # nine members; m3–m8 have no contact: one note to m9
    assert {as_utc(r.not_before).isoformat() for r in reminders} == {
        "2026-11-22T11:30:00+00:00"}
    full.meetings.amend_meeting({"meeting_id": "s1", "revision": 1,
                                 "held_at": "2026-11-24T19:30:00"})
    full.deliver()
    statuses = {}
    for r in rows(notifications_store, kind="meeting_reminder"):
        statuses.setdefault(r.cause.split("@")[1].split("|")[0], set()).add(r.status)
    assert statuses == {"2026-11-23T11:30:00+00:00": {"withdrawn"},
                        "2026-11-24T11:30:00+00:00": {"pending"}}
    send_due(full, scoring_clock, minutes=60 * 82)  # 11-23 20:00: a day before, not quiet yet
    full.meetings.cancel_meeting({"meeting_id": "s1", "reason": "台风"})
    full.deliver()
    notices = [r for r in rows(notifications_store, kind="meeting_reminder")
               if r.cause.endswith("@cancelled")]
    assert {r.recipient_id for r in notices} == {"m1", "m2", "m9"} | {
        f"m{n}" for n in range(3, 9)}
    assert "台风" in [r for r in notices if r.recipient_id == "m1"][0].body


def test_a_send_cut_by_a_crash_becomes_unknown_and_only_an_admin_resends_it(
        full, scoring_clock, endpoints, own_name, notifications_store, notifications_worker):
    village(full, own_name)
    full.meetings.log_meeting(assembly(present=["m2", "m3", "m4", "m5", "m6", "m7", "m8",
                                                "m9"], absent=["m1"]))
    full.deliver()
    with notifications_store() as uow:  # a sender marked it sending, then died
        uow.session.execute(update(Notification).where(Notification.kind == "absence_followup")
                            .values(status="sending", sending_since=scoring_clock.now()))
        uow.commit()
    send_due(full, scoring_clock, minutes=1)
    assert rows(notifications_store, kind="absence_followup")[0].status == "sending"
    send_due(full, scoring_clock, minutes=11)
    [cut] = rows(notifications_store, kind="absence_followup")
    assert cut.status == "unknown"
    send_due(full, scoring_clock, minutes=60)
    assert rows(notifications_store, kind="absence_followup")[0].status == "unknown"
    with pytest.raises(Forbidden):
        notifications_worker("branch_secretary", "b1").resend(cut.notification_id)
    with pytest.raises(Conflict):
        full.notifications.resend(rows(notifications_store, kind="absence_digest")[0]
                                  .notification_id)
    again = full.notifications.resend(cut.notification_id)
    assert again["status"] == "pending" and again["history"][-1]["outcome"] == "resend"
    assert again["recipient_name"] == "党员1"  # as the list names it
    send_due(full, scoring_clock)
    assert rows(notifications_store, kind="absence_followup")[0].status == "delivered"


def test_two_senders_never_lease_the_same_row(full, scoring_clock, own_name,
                                              notifications_store, notifications_worker):
    from orglife.common.rules import load_rules
    from services.notifications import registry
    village(full, own_name)
    full.meetings.log_meeting(assembly(present=["m9"], absent=[f"m{n}" for n in range(1, 9)]))
    full.deliver()
    later = scoring_clock.now() + timedelta(minutes=11)
    leased = []
    for owner in ("a", "b", "c"):
        with notifications_store() as uow:
            leased.append(set(registry.lease_due(uow.session, load_rules(), scoring_clock.tz,
                                                 owner, later, 4, timedelta(minutes=5))))
            uow.commit()
    assert all(len(x) == 4 for x in leased[:2]) and not (leased[0] & leased[1])
    with notifications_store() as uow:
        assert registry.begin_send(uow.session, next(iter(leased[0])), "b", later) is None


def test_reads_are_scoped_and_preferences_named_errors(full, own_name, notifications_worker):
    village(full, own_name)
    full.meetings.log_meeting(assembly(present=["m2", "m3", "m4", "m5", "m6", "m7", "m8",
                                                "m9"], absent=["m1"]))
    full.deliver()
    everything = full.notifications.list_notifications({})
    assert everything["total"] == 2
    assert sorted((n["recipient_id"], n["recipient_name"]) for n in everything["items"]) == [
        ("m1", "党员1"), ("m9", "党员9")]  # named as the copy knows them
    assert notifications_worker("branch_secretary", "b1").list_notifications(
        {"kind": "absence_followup"})["total"] == 1
    assert notifications_worker("branch_secretary", "b2").list_notifications({})["total"] == 0
    assert notifications_worker("township_admin", "t2").list_notifications({})["total"] == 0
    with pytest.raises(Forbidden):
        notifications_worker("branch_secretary", "b2").set_preferences(
            {"member_id": "m1", "channels": ["sms"]})
    with pytest.raises(NotFound):
        full.notifications.set_preferences({"member_id": "nobody", "channels": ["sms"]})
    for bad, field in ((["fax"], "channels"), (["sms", "sms"], "channels"), ([], "channels")):
        with pytest.raises(ValidationError) as caught:
            full.notifications.set_preferences({"member_id": "m1", "channels": bad})
        assert field in caught.value.args[0]
    with pytest.raises(ValidationError) as caught:
        full.notifications.set_preferences({"member_id": "m1", "quiet_hours": "late"})
    assert "quiet_hours" in caught.value.args[0]
    with pytest.raises(ValidationError) as caught:
        full.notifications.list_notifications({"status": "lost"})
    assert "status" in caught.value.args[0]


def test_no_phone_number_or_address_reaches_the_logs(full, scoring_clock, endpoints, own_name,
                                                      notifications_store, caplog):
    caplog.set_level(logging.DEBUG)
    village(full, own_name)
    endpoints.sms.fail_next(2, "http500")
    endpoints.sms.fail_next(1, "http", status=400)
    full.meetings.log_meeting(assembly(present=["m3", "m4", "m5", "m6", "m7", "m8", "m9"],
                                       absent=["m1", "m2"]))
    full.deliver()
    for minutes in (11, 2, 6):
        send_due(full, scoring_clock, minutes=minutes)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "sms" in text  # the failures were logged …
    for secret in ("13700137002", "13800138009", "m1@example.cn", "sec@example.cn"):
        assert secret not in text  # … without who they were for


def test_a_follow_up_withdrawn_by_an_amendment_is_owed_again_when_the_member_is_absent_again(
        full, scoring_clock, endpoints, own_name, notifications_store):
    """absent → on leave → absent: the follow-up withdrawn in between goes back to pending
    and is sent once; the one to the member absent throughout is never touched twice."""
    village(full, own_name)
    present = ["m3", "m4", "m5", "m6", "m7", "m8", "m9"]
    full.meetings.log_meeting(assembly(present=present, absent=["m1", "m2"]))
    full.deliver()
    full.meetings.amend_meeting({"meeting_id": "a1", "revision": 1, "attendance": attendance(
        present=present, absent=["m1"], leave=["m2"])})
    full.deliver()
    assert rows(notifications_store, kind="absence_followup", recipient_id="m2")[0].status == (
        "withdrawn")
    full.meetings.amend_meeting({"meeting_id": "a1", "revision": 2, "attendance": attendance(
        present=present, absent=["m1", "m2"])})
    full.deliver()
    send_due(full, scoring_clock, minutes=11)
    followups = rows(notifications_store, kind="absence_followup")
    assert sorted((n.recipient_id, n.status) for n in followups) == [
        ("m1", "delivered"), ("m2", "delivered")]
    [digest] = rows(notifications_store, kind="absence_digest")
    assert digest.status == "delivered"


def test_a_meeting_moved_and_moved_back_reminds_again(
        full, scoring_clock, endpoints, own_name, notifications_store):
    election_scheduled(full, own_name)
    for revision, held_at in ((1, "2026-11-24T19:30:00"), (2, "2026-11-23T19:30:00")):
        full.meetings.amend_meeting({"meeting_id": "s1", "revision": revision,
                                     "held_at": held_at})
        full.deliver()
    statuses = {r.cause: r.status for r in rows(notifications_store, kind="meeting_reminder",
                                                 recipient_id="m1")}
    assert statuses == {"meeting:s1@2026-11-23T11:30:00+00:00": "pending",
                        "meeting:s1@2026-11-24T11:30:00+00:00": "withdrawn"}


def test_a_meeting_seen_before_its_members_waits_for_them(
        full, scoring_clock, endpoints, own_name, notifications_store):
    """members' events come on another queue and may arrive after the meeting's: the follow-ups
    and the digest are planned when the copy gains the members, once."""
    real = full.notifications.on_members_events
    held = []
    full.notifications.on_members_events = held.extend  # notifications' members queue lags
    try:
        register_village(full)
        full.members.update_member({"member_id": "m1", "email": "m1@example.cn"})
        full.members.update_organization({"org_id": "b1", "secretary_id": "m9"})
        full.members.update_member({"member_id": "m9", "email": "m9@example.cn"})
        full.deliver()
        full.meetings.log_meeting(assembly(present=["m3", "m4", "m5", "m6", "m7", "m8", "m9"],
                                           absent=["m1", "m2"]))
        full.deliver()
        assert rows(notifications_store) == []
    finally:
        full.notifications.on_members_events = real
    real(held)  # the copy catches up in one batch: planned as the batch leaves things
    real(held[len(held) // 2:])  # part of it redelivered, then all of it: nothing twice
    real(held)
    full.deliver()
    send_due(full, scoring_clock, minutes=11)
    found = sorted((n.kind, n.recipient_id, n.status) for n in rows(notifications_store))
    assert ("absence_followup", "m1", "delivered") in found
    assert ("absence_digest", "m9", "delivered") in found
    assert len(found) == len(set((kind, who) for kind, who, _ in found))
    with notifications_store() as uow:
        from services.notifications.models import MeetingSeen, MeetingWait
        assert uow.session.query(MeetingWait).count() == 0
        assert uow.session.get(MeetingSeen, "a1").waiting is None


def test_a_verdict_arriving_after_the_sweep_still_counts(
        full, scoring_clock, own_name, notifications_store):
    """A slow send taken for a dead one is marked unknown; its real answer then replaces the
    guess (delivered, with its event), while a row sent or resent meanwhile is left alone."""
    from orglife.common.rules import load_rules
    from services.notifications import registry
    village(full, own_name)
    full.meetings.log_meeting(assembly(present=["m2", "m3", "m4", "m5", "m6", "m7", "m8",
                                                "m9"], absent=["m1"]))
    full.deliver()
    [row] = rows(notifications_store, kind="absence_followup")
    with notifications_store() as uow:
        uow.session.execute(update(Notification).where(
            Notification.notification_id == row.notification_id)
            .values(status="sending", sending_since=scoring_clock.now()))
        uow.commit()
    later = scoring_clock.now() + registry.SENDING_TIMEOUT + timedelta(seconds=1)
    with notifications_store() as uow:
        assert registry.sweep_stale(uow.session, later) == 1
        uow.commit()
    with notifications_store() as uow:
        status = registry.finish_send(uow, load_rules(), row.notification_id, later,
                                      receipt="250 ok")
        uow.commit()
    assert status == "delivered"
    assert rows(notifications_store, kind="absence_followup")[0].status == "delivered"
    with notifications_store() as uow:  # a second, late verdict changes nothing
        assert registry.finish_send(uow, load_rules(), row.notification_id, later,
                                    receipt="250 ok") == "delivered"
        uow.commit()


def test_a_robot_out_of_slots_waits_unleased_and_nothing_is_tried(
        full, scoring_clock, own_name, notifications_store):
    """begin_send takes the robot's slot from the shared budget; with none left the row
    stays pending, unleased, due when a slot frees (the channel is never called)."""
    import time as real_time

    from services.notifications import registry
    from services.notifications.models import RobotBudget
    village(full, own_name)
    full.meetings.log_meeting(assembly(present=["m2", "m3", "m4", "m5", "m6", "m7", "m8",
                                                "m9"], absent=["m1"]))
    full.deliver()
    [row] = rows(notifications_store, kind="absence_followup")
    url = "https://oapi.dingtalk.com/robot/send?access_token=full"
    now = real_time.time()
    with notifications_store() as uow:
        for _ in range(20):
            assert registry.take_robot_slot(uow.session, url, now) == 0.0
        uow.session.execute(update(Notification).where(
            Notification.notification_id == row.notification_id)
            .values(channel="robot", lease_owner="me"))
        uow.commit()
    with notifications_store() as uow:
        assert registry.begin_send(uow.session, row.notification_id, "me",
                                   scoring_clock.now(), default_robot=url) is None
        uow.commit()
    [waiting] = rows(notifications_store, kind="absence_followup")
    assert (waiting.status, waiting.lease_owner, waiting.attempts) == ("pending", None, 0)
    assert 50 < (as_utc(waiting.next_attempt_at) - scoring_clock.now()).total_seconds() <= 60
    with notifications_store() as uow:
        assert len(uow.session.get(RobotBudget, registry.hashlib.sha256(
            url.encode()).hexdigest()[:32]).sent) == 20


def test_a_member_committed_while_a_batch_runs_is_planned_not_left_waiting(
        notifications_store, scoring_clock):
    """The batch reads the copy once when it begins (handlers.prepare_meetings). A member
    another instance commits after that finds no wait to wake (ours is not committed yet):
    the meeting is planned with the member there and then, and waits for nobody."""
    from sqlalchemy import insert

    from orglife.common.envelope import Envelope
    from orglife.common.rules import load_rules
    from services.notifications import handlers
    from services.notifications.models import ContactCopy, MeetingWait, OrgCopy
    from services.notifications.registry import Planning, SessionDirectory
    from services.notifications.texts import Texts
    now = scoring_clock.now()
    meeting = {"meeting_id": "race1", "branch_id": "b1", "type": "branch_assembly",
               "held_at": (now - timedelta(hours=2)).isoformat(), "topic": "学习",
               "revision": 1, "status": "logged",
               "attendance": [{"member_id": "m1", "status": "absent", "expected": True}]}
    with notifications_store() as uow:
        uow.session.add(OrgCopy(org_id="b1", name="东村党支部", kind="branch", parent_id=None,
                                path="/b1/", secretary_id=None, robot_url=None, version=1))
        uow.commit()
    with notifications_store() as uow:
        planning = Planning(load_rules(), Texts(scoring_clock.tz), scoring_clock.tz, now,
                            SessionDirectory(uow.session, False, ("email", "in_app")))
        envelope = Envelope.new("meetings", "meeting_logged", meeting)
        handlers.prepare_meetings(uow, [envelope], planning)  # m1 not in the copy yet
        uow.session.execute(insert(ContactCopy).values(  # another instance's commit
            member_id="m1", name="张三", branch_id="b1", status="formal", phone=None,
            email="zhang@example.cn", version=1))
        handlers.on_meeting(uow, envelope, planning)
        uow.commit()
    with notifications_store() as uow:
        assert uow.session.query(MeetingWait).count() == 0
    assert [(n.kind, n.recipient_id) for n in rows(notifications_store)
            if n.kind == "absence_followup"] == [("absence_followup", "m1")]


def test_the_timer_wakes_a_wait_whose_member_was_committed_in_the_same_instant(
        full, scoring_clock, endpoints, own_name, notifications_store):
    """The window wait_for_unknown's re-check cannot close: the member's batch committed after
    the meeting's batch looked, and looked for waits before ours was committed. What is left is
    a wait for a member the copy knows; the service's timer plans the meeting then, once, and
    it keeps waiting for who is still unknown."""
    from services.notifications import handlers
    from services.notifications.models import MeetingSeen, MeetingWait
    village(full, own_name)
    held = (scoring_clock.now() - timedelta(hours=2)).isoformat()

    def waiting(meeting_id, absent, branch_id="b1"):
        return {"meeting_id": meeting_id, "branch_id": branch_id, "type": "branch_assembly",
                "held_at": held, "topic": "学习", "revision": 1, "status": "logged",
                "attendance": [{"member_id": who, "status": "absent", "expected": True}
                               for who in absent]}
    full.members.register_organization({"org_id": "m405", "name": "同号组织", "kind": "branch",
                                        "parent_id": "t1", "category": "village"})
    full.deliver()
    with notifications_store() as uow:  # what the race leaves behind
        uow.session.add(MeetingSeen(meeting_id="late1", revision=1,
                                    waiting=waiting("late1", ["m1", "m404"])))
        uow.session.add_all([MeetingWait(waited_id="m1", meeting_id="late1"),
                             MeetingWait(waited_id="m404", meeting_id="late1")])
        # a wait for an unknown member whose id an organization has (registered above)
        uow.session.add(MeetingSeen(meeting_id="other1", revision=1,
                                    waiting=waiting("other1", ["m405"])))
        uow.session.add(MeetingWait(waited_id="m405", meeting_id="other1"))
        uow.commit()
    assert rows(notifications_store) == []
    with notifications_store() as uow:
        assert handlers.overlooked(uow.session) == ["late1"]
    full.notifications.wake_overlooked_waits()
    full.notifications.wake_overlooked_waits()  # nothing overlooked is left: nothing twice
    assert [(n.kind, n.recipient_id) for n in rows(notifications_store)] == [
        ("absence_digest", "m9"), ("absence_followup", "m1")]
    with notifications_store() as uow:
        assert sorted((w.waited_id, w.meeting_id) for w in uow.session.query(MeetingWait)) == [
            ("m404", "late1"), ("m405", "other1")]  # still unknown members: still waiting
        assert uow.session.get(MeetingSeen, "late1").waiting["meeting_id"] == "late1"
        assert handlers.overlooked(uow.session) == []
    send_due(full, scoring_clock, minutes=11)
    assert {n.status for n in rows(notifications_store)} == {"delivered"}


def test_a_wait_of_a_meeting_planned_meanwhile_is_dropped_when_its_member_arrives(
        notifications_store, scoring_clock):
    from orglife.common.rules import load_rules
    from services.notifications import handlers
    from services.notifications.models import MeetingSeen, MeetingWait
    from services.notifications.registry import Planning, SessionDirectory
    from services.notifications.texts import Texts
    with notifications_store() as uow:
        uow.session.add(MeetingSeen(meeting_id="gone1", revision=2, waiting=None))
        uow.session.add(MeetingWait(waited_id="m2", meeting_id="gone1"))
        uow.commit()
    with notifications_store() as uow:
        planning = Planning(load_rules(), Texts(scoring_clock.tz), scoring_clock.tz,
                            scoring_clock.now(), SessionDirectory(uow.session, False, ("email",)))
        planning.arrived.add("m2")
        handlers.replan_arrived(uow, planning)
        uow.commit()
    with notifications_store() as uow:
        assert uow.session.query(MeetingWait).count() == 0


def test_a_late_reminder_is_due_at_once_and_keeps_the_rules_urgency(notifications_store):
    """registry.row_of: a reminder quiet hours would hold past its meeting is due at once, and
    stays as urgent as the rules make it (not urgent: the list must not call it so); the
    sender's lease_due does not hold it either (next test)."""
    from datetime import datetime, time
    from zoneinfo import ZoneInfo

    from orglife.common.rules import load_rules
    from services.notifications import domain, registry
    from services.notifications.texts import Texts
    tz = ZoneInfo("Asia/Shanghai")
    late = datetime(2026, 11, 25, 23, 0, tzinfo=tz)
    contact = domain.Contact("m1", "张三", "b1", "formal", email="zhang@example.cn")

    def draft(held_at):
        return domain.Draft("meeting_reminder", "m1", "member", f"meeting:x@{held_at}",
                            ["email", "in_app"], "meeting_reminder",
                            {"meeting": {"type": "branch_assembly", "topic": "学习",
                                         "branch_id": "b1"},
                             "held_at": held_at, "branch": None, "member": contact},
                            not_before=held_at - timedelta(hours=24), deadline=held_at,
                            quiet_hours=(time(22), time(7)))
    with notifications_store() as uow:
        planning = registry.Planning(load_rules(), Texts(tz), tz, late,
                                     registry.SessionDirectory(uow.session, False))
        dawn = registry.row_of(planning, draft(datetime(2026, 11, 26, 6, 30, tzinfo=tz)))
        morning = registry.row_of(planning, draft(datetime(2026, 11, 26, 8, 0, tzinfo=tz)))
    assert (dawn["urgent"], dawn["not_before"]) == (False, late)
    assert (morning["urgent"], morning["not_before"]) == (False,
                                                          datetime(2026, 11, 26, 7, 0, tzinfo=tz))


def test_quiet_hours_never_hold_a_reminder_past_its_meeting(full, scoring_clock, endpoints,
                                                            own_name, notifications_store):
    """A meeting at 23:30 scheduled at 21:00: its reminders are due at once, not urgent (not
    quiet yet). m1 then chooses quiet hours from 20:00: held, the reminder would come after
    the meeting, so it goes now (set_preferences). m2's, found by the sender at 22:30 inside
    the county's quiet hours, goes too instead of waiting for 07:00 (lease_due). Each keeps
    its deadline, the meeting. A reminder of a meeting over already (21:30, the sender was
    late) is no use at any hour: the sender holds it out of quiet hours as any other."""
    village(full, own_name)
    scoring_clock.fixed = scoring_clock.fixed.replace(hour=13)  # 21:00 county time
    full.meetings.schedule_meeting({"meeting_id": "late", "branch_id": "b1",
                                    "type": "branch_assembly", "held_at": "2026-11-20T23:30:00",
                                    "topic": "紧急部署"})
    full.meetings.schedule_meeting({"meeting_id": "soon", "branch_id": "b1",
                                    "type": "theme_day", "held_at": "2026-11-20T21:30:00",
                                    "topic": "主题党日"})
    full.deliver()
    reminders = {r.recipient_id: r for r in rows(notifications_store, kind="meeting_reminder",
                                                 ref="late")}
    assert not reminders["m1"].urgent and not reminders["m2"].urgent
    assert as_utc(reminders["m1"].deadline).isoformat() == "2026-11-20T15:30:00+00:00"
    full.notifications.set_preferences({"member_id": "m1", "quiet_hours": "20:00-07:00"})
    [m1] = rows(notifications_store, kind="meeting_reminder", recipient_id="m1", ref="late")
    assert not m1.urgent and as_utc(m1.next_attempt_at) == as_utc(scoring_clock.fixed)
    send_due(full, scoring_clock, minutes=90)  # 22:30: inside the county's quiet hours
    for member_id in ("m1", "m2"):
        [sent] = rows(notifications_store, kind="meeting_reminder", recipient_id=member_id,
                      ref="late")
        assert sent.status == "delivered", member_id
    [over] = rows(notifications_store, kind="meeting_reminder", recipient_id="m2", ref="soon")
    assert (over.status, over.urgent) == ("pending", False)
    assert as_utc(over.next_attempt_at) == datetime(2026, 11, 20, 23, 0, tzinfo=timezone.utc)
    # a follow-up has no deadline: quiet hours hold it as before (test above)


def test_preparing_a_batch_never_fails_on_a_malformed_event(notifications_store):
    """handlers.prepare_members/prepare_meetings read a batch leniently: a transfer of schema
    version 1 without its `member`, ids that are no strings, a body that is no object; each
    such event is refused by its own handler, the batch's others go on."""
    from orglife.common.envelope import Envelope
    from orglife.common.rules import load_rules
    from services.notifications import handlers, registry
    from services.notifications.texts import Texts
    from zoneinfo import ZoneInfo
    tz = ZoneInfo("Asia/Shanghai")
    members = [Envelope.new("members", "member_transferred", {"member_id": "m1"}),
               Envelope.new("members", "member_registered", {"member_id": 7, "org_id": None}),
               Envelope.new("members", "member_updated", ["not", "an", "object"])]
    meetings = [Envelope.new("meetings", "meeting_logged", {"meeting_id": 3, "expected": "m1",
                                                           "attendance": [None, {"member_id": 5}]}),
                Envelope.new("meetings", "meeting_logged", ["x"])]
    with notifications_store() as uow:
        planning = registry.Planning(load_rules(), Texts(tz), tz,
                                     datetime(2026, 11, 20, tzinfo=timezone.utc),
                                     registry.SessionDirectory(uow.session, False))
        handlers.prepare_members(uow, members, planning)
        handlers.prepare_meetings(uow, meetings, planning)


def test_a_meeting_cancelled_before_its_reminders_go_withdraws_them_and_tells_nobody(
        full, scoring_clock, endpoints, own_name, notifications_store):
    election_scheduled(full, own_name)
    reminders = [r for r in rows(notifications_store, kind="meeting_reminder")]
    assert len(reminders) == 10 and {r.status for r in reminders} == {"pending"}
    full.meetings.cancel_meeting({"meeting_id": "s1", "reason": "台风"})
    full.deliver()
    after = rows(notifications_store, kind="meeting_reminder")
    assert {r.status for r in after if not r.cause.endswith("@cancelled")} == {"withdrawn"}
    # no reminder had gone out: nobody heard of it from us, so nobody is told it is off
    assert [r for r in after if r.cause.endswith("@cancelled")] == []
    mails_before = len(endpoints.mails())
    send_due(full, scoring_clock, minutes=60 * 40)  # past the reminders' own time
    assert len(endpoints.mails()) == mails_before
    sent = {r.notification_id: r.status for r in rows(notifications_store,
                                                      kind="meeting_reminder")}
    assert {sent[r.notification_id] for r in reminders} == {"withdrawn"}


def test_a_restarted_sender_retries_what_the_last_one_left_in_backoff(
        full, scoring_clock, endpoints, own_name, notifications_store, notifications_worker):
    """Retries live in the database: a new worker on the same database (the service started
    again) picks the follow-up up at its next_attempt_at and delivers it once."""
    village(full, own_name)
    full.members.update_member({"member_id": "m1", "phone": "13700137001"})
    full.deliver()
    full.notifications.set_preferences({"member_id": "m1", "channels": ["sms", "email"]})
    full.meetings.log_meeting(assembly(present=["m2", "m3", "m4", "m5", "m6", "m7", "m8",
                                                "m9"], absent=["m1"]))
    full.deliver()
    endpoints.sms.fail_next(2, "http500")
    send_due(full, scoring_clock, minutes=11)
    [waiting] = rows(notifications_store, kind="absence_followup")
    assert (waiting.status, waiting.channel, waiting.attempts) == ("pending", "sms", 1)
    restarted = notifications_worker()  # nothing carried over but the database
    scoring_clock.fixed = scoring_clock.fixed + timedelta(minutes=1)
    restarted.deliver_due()  # the second failure: the next pause is 5 minutes
    scoring_clock.fixed = scoring_clock.fixed + timedelta(minutes=2)
    restarted.deliver_due()  # not due yet: nothing tried
    [still] = rows(notifications_store, kind="absence_followup")
    assert (still.status, still.attempts) == ("pending", 2)
    scoring_clock.fixed = scoring_clock.fixed + timedelta(minutes=3)
    notifications_worker().deliver_due()  # and started again
    [done] = rows(notifications_store, kind="absence_followup")
    assert (done.status, done.channel, done.attempts) == ("delivered", "sms", 3)
    assert [h["outcome"] for h in done.history] == ["TemporaryFailure"] * 2 + ["delivered"]
