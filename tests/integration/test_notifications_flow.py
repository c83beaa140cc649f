"""The whole loop through the real broker: members, meetings, scoring and notifications
containers on one vhost, e-mail and SMS through real local servers (an SMTP sink writing a
Maildir, an HTTP SMS gateway that fails on purpose: orglife/devservers.py).

A meeting logged with absentees reaches the members' participation records, their scores, the
branch's compliance, a follow-up in the absentee's mailbox and the secretary's digest; amended
to mark an absentee on leave, everything follows and no second follow-up goes out; the same
events delivered again change nothing; an SMS gateway that keeps failing makes the message fall
back to the next channel, and notification_failed is published.
"""
import json

import eventlet
import pytest
import yaml

from orglife.common.config import DEFAULT_RULES
from services.meetings.service import MeetingsService
from services.members.service import MembersService
from services.notifications.service import NotificationsService
from services.scoring.service import ScoringService
from tests.conftest import PeerQueue, migrated_sqlite, publish_raw, service_config, wait_for
from tests.integration.test_backbone import RpcAdmin
from tests.members.conftest import small_county
from tests.notifications.conftest import endpoints, local_endpoints, own_name  # noqa: F401

pytestmark = pytest.mark.integration

NINE = [f"m{n}" for n in range(1, 10)]


@pytest.fixture
def loop(container_factory, vhost_uri, tmp_path, rpc_proxy, endpoints, own_name):
    # The services run on a fixed clock (ORGLIFE_NOW): no grace before follow-ups and no
    # pause between retries, or nothing would ever fall due.
    rules = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    rules["notifications"].update(absence_followup_delay_minutes=0, backoff_minutes=[0])
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    for service, cls in (("members", MembersService), ("meetings", MeetingsService),
                         ("scoring", ScoringService), ("notifications", NotificationsService)):
        extra = endpoints.config() if service == "notifications" else {}
        config = service_config(service, vhost_uri, migrated_sqlite(tmp_path, service),
                                tmp_path, ORGLIFE_RULES=str(rules_path), **extra)
        container_factory(cls, config).start()
    proxy = rpc_proxy()
    admin = RpcAdmin(proxy)
    small_county(admin)
    mail = {"m1": f"{own_name}-m1@example.cn", "m9": f"{own_name}-sec@example.cn"}
    # the secretary first: once notifications knows all nine, it knows b1's secretary too
    # (members' events reach it in the order they were published)
    for n, member_id in [(9, "m9")] + list(enumerate(NINE[:8], 1)):
        admin.register_member({"member_id": member_id, "name": f"党员{n}", "branch_id": "b1",
                               "joined_on": "2000-01-01", "email": mail.get(member_id),
                               "phone": "13700137002" if member_id == "m2" else None})
        if member_id == "m9":
            admin.update_organization({"org_id": "b1", "secretary_id": "m9"})
    wait_for(lambda: proxy.notifications.health()["known_members"] == 9
             and proxy.scoring.health()["known_members"] == 9
             and proxy.meetings.health()["known_members"] == 9, message="copies of members")
    return proxy, mail


def notifications(proxy, **filters):
    return proxy.notifications.list_notifications({**filters, "limit": 100})["items"]


def mails_to(endpoints, address):
    return [m for m in endpoints.mails() if m.to == address]


def test_a_logged_meeting_reaches_records_scores_compliance_and_mailboxes(
        loop, endpoints, vhost_uri):
    proxy, mail = loop
    failed = PeerQueue(vhost_uri, "notifications.events", ["notification_failed"])
    meetings_events = PeerQueue(vhost_uri, "meetings.events", ["meeting_logged"])
    endpoints.sms.fail_next(5, "http500")  # every attempt on the SMS channel (rules: 5)
    report = {"meeting_id": "a1", "branch_id": "b1", "type": "branch_assembly",
              "held_at": "2026-11-19T19:30:00+08:00", "topic": "学习贯彻全会精神",
              "attendance": [{"member_id": m, "status": "present"} for m in NINE[2:]]
              + [{"member_id": "m1", "status": "absent"}, {"member_id": "m2", "status": "absent"}]}
    proxy.meetings.log_meeting(report)

    # participation, score, compliance
    def participation(member_id):
        items = proxy.members.get_member(member_id)["participation"]["items"]
        return [(i.get("meeting_id") or i.get("ref"), i["status"]) for i in items]
    wait_for(lambda: ("a1", "absent") in participation("m1"), message="m1's record")
    wait_for(lambda: proxy.scoring.member_score("m1", 2026)["score"] == 57,
             message="m1's score (absence -3)")
    # the quarter's 党员大会 is held and its slot met (before it, nothing was held this year)
    compliance = proxy.scoring.branch_compliance("b1", 2026)
    assert compliance["by_type"]["branch_assembly"]["held"] == 1
    assert compliance["by_type"]["branch_assembly"]["met"] == 1
    assert compliance["attendance_rate"] == round(7 / 9, 4)
    # the follow-up in m1's mailbox, the digest in the secretary's
    [followup] = wait_for(lambda: mails_to(endpoints, mail["m1"]), timeout=30,
                          message="m1's follow-up e-mail")
    assert "缺席跟进" in followup.subject and "学习贯彻全会精神" in followup.body
    [digest] = wait_for(lambda: mails_to(endpoints, mail["m9"]), timeout=30,
                        message="the secretary's digest")
    assert "党员1、党员2" in digest.body
    # m2's SMS: five failures, then in-app, and notification_failed said so
    [notice] = failed.drain(1, timeout=30)
    assert (notice["data"]["recipient_id"], notice["data"]["channel"],
            notice["data"]["next_channel"]) == ("m2", "sms", "in_app")
    wait_for(lambda: [n["status"] for n in notifications(proxy, recipient_id="m2")] ==
             ["delivered"], message="m2's follow-up delivered in-app")
    [m2_followup] = notifications(proxy, recipient_id="m2")
    assert m2_followup["channel"] == "in_app" and m2_followup["attempts"] == 1

    # amended: m1 was on leave; everything follows, nobody is followed up twice
    proxy.meetings.amend_meeting({"meeting_id": "a1", "revision": 1, "attendance": [
        {"member_id": m, "status": "present"} for m in NINE[2:]]
        + [{"member_id": "m1", "status": "leave"}, {"member_id": "m2", "status": "absent"}]})
    wait_for(lambda: proxy.scoring.member_score("m1", 2026)["score"] == 60,
             message="m1's score after the amendment")
    wait_for(lambda: ("a1", "leave") in participation("m1"), message="m1's record amended")
    amended = proxy.scoring.branch_compliance("b1", 2026)
    assert amended["by_type"]["branch_assembly"] == compliance["by_type"]["branch_assembly"]
    assert amended["attendance_rate"] == compliance["attendance_rate"]  # leave is not presence
    # the same events once more, as a redelivery would bring them
    logged = meetings_events.drain(1)
    publish_raw(vhost_uri, "meetings.events", "meeting_logged", json.dumps(logged[0]))
    # a marker published after the duplicate, on the same queues: once scoring and
    # notifications have handled it, they have handled the duplicate before it
    marker = {"meeting_id": "a2", "branch_id": "b1", "type": "lecture",
              "held_at": "2026-11-19T21:00:00+08:00", "topic": "党课",
              "attendance": [{"member_id": m, "status": "present"} for m in NINE if m != "m3"]
              + [{"member_id": "m3", "status": "absent"}]}
    proxy.meetings.log_meeting(marker)
    wait_for(lambda: proxy.scoring.member_score("m1", 2026)["score"] == 62,
             message="the marker lecture scored")
    wait_for(lambda: ("absence_followup", "m3") in {
        (n["kind"], n["recipient_id"]) for n in notifications(proxy)},
        message="notifications planned the marker")
    wait_for(lambda: proxy.notifications.health()["pending"] == 0, message="nothing pending")
    wait_for(lambda: len(mails_to(endpoints, mail["m9"])) == 2, timeout=30,
             message="the marker's digest")
    eventlet.sleep(0.5)
    assert len(mails_to(endpoints, mail["m1"])) == 1  # the duplicate followed nobody up again
    assert len(mails_to(endpoints, mail["m9"])) == 2  # a1's digest once, the marker's
    assert proxy.scoring.member_score("m1", 2026)["score"] == 62
    kinds = sorted((n["kind"], n["recipient_id"]) for n in notifications(proxy))
    assert kinds == [("absence_digest", "m9"), ("absence_digest", "m9"),
                     ("absence_followup", "m1"), ("absence_followup", "m2"),
                     ("absence_followup", "m3")]
    failed.close()
    meetings_events.close()
