"""A logged meeting reaches members' participation record through the real broker."""
import eventlet
import pytest

from orglife.common.envelope import Envelope
from orglife.common.errors import ValidationError
from services.meetings.service import MeetingsService
from services.members.service import MembersService
from tests.conftest import PeerQueue, migrated_sqlite, publish_raw, service_config, wait_for
from tests.members.conftest import small_county
from tests.integration.test_backbone import RpcAdmin

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(container_factory, vhost_uri, tmp_path, rpc_proxy):
    """members and meetings running on their own SQLite files, a county registered."""
    for service, cls in (("members", MembersService), ("meetings", MeetingsService)):
        config = service_config(service, vhost_uri, migrated_sqlite(tmp_path, service), tmp_path)
        container_factory(cls, config).start()
    proxy = rpc_proxy()
    admin = RpcAdmin(proxy)
    small_county(admin)
    for n in range(1, 6):
        admin.register_member({"member_id": f"m{n}", "name": f"党员{n}", "branch_id": "b1",
                               "committee_member": n <= 3})
    admin.register_member({"member_id": "n1", "name": "流动党员", "branch_id": "b2",
                           "mobile": True, "mobile_location": "广东省深圳市"})
    wait_for(lambda: _meetings_knows(proxy, "n1"), message="meetings' copy of members")
    return proxy


def _meetings_knows(proxy, member_id):
    try:
        proxy.meetings.log_activity({"activity_id": f"probe-{member_id}", "member_id": member_id,
                                     "kind": "heart_talk", "held_at": "2026-01-05T10:00:00+08:00"})
        return True
    except ValidationError:
        return False


def participation(proxy, member_id, ref):
    items = proxy.members.get_member(member_id)["participation"]["items"]
    return [i for i in items if i["ref"] == ref]


REPORT = {"meeting_id": "mt-flow", "branch_id": "b1", "type": "branch_assembly",
          "held_at": "2026-11-03T19:30:00+08:00", "topic": "学习贯彻全会精神",
          "attendance": [{"member_id": "m1", "status": "present"},
                         {"member_id": "m2", "status": "present", "remote": True},
                         {"member_id": "m3", "status": "leave"},
                         {"member_id": "n1", "status": "present", "remote": True}]}


def test_a_meeting_logged_by_rpc_reaches_the_participation_record(stack):
    meeting = stack.meetings.log_meeting(REPORT)
    assert meeting["quorum_met"] is False  # 2 of 5 voting members
    [line] = wait_for(lambda: participation(stack, "m4", "mt-flow"), message="m4's record")
    assert line["status"] == "absent"
    [visitor] = wait_for(lambda: participation(stack, "n1", "mt-flow"), message="n1's record")
    assert visitor["visiting"] is True and visitor["remote"] is True
    amended = stack.meetings.amend_meeting({"meeting_id": "mt-flow", "revision": 1,
                                            "attendance": REPORT["attendance"][:2]})
    assert amended["revision"] == 2
    wait_for(lambda: participation(stack, "m3", "mt-flow")[0]["status"] == "absent",
             message="the amendment replaced m3's line")
    stack.meetings.cancel_meeting({"meeting_id": "mt-flow", "reason": "录入错误"})
    wait_for(lambda: participation(stack, "m1", "mt-flow") == [], message="cancellation")


def intake(vhost_uri, event_type, data, event_id=None):
    envelope = Envelope.new("intake", event_type, data)
    body = envelope.to_dict()
    if event_id:
        body["event_id"] = event_id
    publish_raw(vhost_uri, "intake.events", event_type, body)
    return body["event_id"]


def test_a_meeting_reported_on_intake_by_a_plain_amqp_client_is_logged(stack, vhost_uri):
    intake(vhost_uri, "meeting_reported", dict(REPORT, meeting_id="mt-intake"))
    [line] = wait_for(lambda: participation(stack, "m1", "mt-intake"), message="intake flow")
    assert line["status"] == "present"
    assert stack.meetings.get_meeting("mt-intake")["source"] == "intake"
    intake(vhost_uri, "activity_reported", {"activity_id": "act-1", "member_id": "m2",
                                            "kind": "volunteer",
                                            "held_at": "2026-11-04T09:00:00+08:00",
                                            "note": "清理河道"})
    wait_for(lambda: participation(stack, "m2", "act-1"), message="activity via intake")


def test_a_bad_intake_report_is_rejected_with_reasons_announced_and_kept(stack, vhost_uri):
    peer = PeerQueue(vhost_uri, "meetings.events", ["intake_rejected"])
    bad = dict(REPORT, meeting_id="mt-bad", type="picnic",
               attendance=[{"member_id": "m1", "status": "present"},
                           {"member_id": "m1", "status": "absent"}])
    event_id = intake(vhost_uri, "meeting_reported", bad)
    [announced] = peer.drain(1)
    assert announced["data"]["event_id"] == event_id and "type" in announced["data"]["reasons"]
    kept = stack.meetings.list_rejected_intake({})
    assert kept["total"] == 1 and kept["items"][0]["report"]["meeting_id"] == "mt-bad"
    future = dict(REPORT, meeting_id="mt-future", held_at="2027-01-01T10:00:00+08:00")
    intake(vhost_uri, "meeting_reported", future)
    wait_for(lambda: stack.meetings.list_rejected_intake({})["total"] == 2, message="2nd reject")
    peer.close()


def test_an_intake_report_waits_for_a_member_registered_slightly_later(stack, vhost_uri):
    report = dict(REPORT, meeting_id="mt-wait",
                  attendance=REPORT["attendance"] + [{"member_id": "late1", "status": "present"}])
    intake(vhost_uri, "meeting_reported", report)
    wait_for(lambda: stack.meetings.health()["intake_waiting"] == 1, message="report waiting")
    stack.members.register_member({"member_id": "late1", "name": "新党员", "branch_id": "b1"})
    [line] = wait_for(lambda: participation(stack, "late1", "mt-wait"), message="accepted")
    assert line["status"] == "present"
    assert stack.meetings.list_rejected_intake({})["total"] == 0


def test_meeting_events_out_of_order_or_twice_give_the_same_record(stack, vhost_uri):
    def event(revision, statuses, event_type):
        return Envelope.new("meetings", event_type, {
            "meeting_id": "mt-order", "branch_id": "b1", "group_id": None, "type": "lecture",
            "held_at": "2026-10-10T02:00:00+00:00", "topic": "党课", "minutes": None,
            "status": "logged", "revision": revision, "quorum_met": True, "cancelled": False,
            "attendance": [{"member_id": m, "status": s, "remote": False, "expected": True,
                            "visiting": False} for m, s in statuses.items()]})
    original = event(1, {"m1": "absent", "m2": "absent"}, "meeting_logged")
    amended = event(2, {"m1": "present", "m2": "leave"}, "meeting_amended")
    for envelope in (amended, amended, original, original):
        publish_raw(vhost_uri, "meetings.events", envelope.event_type, envelope.to_json())

    def statuses():
        return ([i["status"] for i in participation(stack, "m1", "mt-order")],
                [i["status"] for i in participation(stack, "m2", "mt-order")])
    # "last delivery wins" would end at the original's absences and time out here
    wait_for(lambda: statuses() == (["present"], ["leave"]), message="the newest revision")
    eventlet.sleep(0.5)
    assert statuses() == (["present"], ["leave"])
