"""Scoring through the real broker: members, meetings and scoring containers on one vhost; a
meeting logged, amended and cancelled moves a member's score and the branch's compliance at
each step; an old event delivered again changes nothing; a restart raises no alert twice."""
import pytest

from orglife.common.envelope import Envelope
from services.meetings.service import MeetingsService
from services.members.service import MembersService
from services.scoring.service import ScoringService
from tests.conftest import PeerQueue, migrated_sqlite, publish_raw, service_config, wait_for
from tests.integration.test_backbone import RpcAdmin
from tests.members.conftest import small_county

pytestmark = pytest.mark.integration

NINE = [f"m{n}" for n in range(1, 10)]


@pytest.fixture
def flow(container_factory, vhost_uri, tmp_path, rpc_proxy):
    urls = {}
    for service, cls in (("members", MembersService), ("meetings", MeetingsService),
                         ("scoring", ScoringService)):
        urls[service] = migrated_sqlite(tmp_path, service)
        container_factory(cls, service_config(service, vhost_uri, urls[service],
                                              tmp_path)).start()
    proxy = rpc_proxy()
    admin = RpcAdmin(proxy)
    small_county(admin)
    for n, member_id in enumerate(NINE, 1):
        admin.register_member({"member_id": member_id, "name": f"党员{n}", "branch_id": "b1",
                               "joined_on": "2000-01-01"})
    wait_for(lambda: proxy.scoring.health()["known_members"] == 9
             and proxy.meetings.health()["known_members"] == 9, message="copies of members")
    # and what the registrations made stale drained (drains are paced: half a second apart, more under a burst):
    # the tests' scores_changed are then about their meetings only
    wait_for(lambda: dirty_marks(urls["scoring"]) == 0, message="registrations drained")
    return proxy, urls, container_factory, tmp_path, vhost_uri


def dirty_marks(url) -> int:
    import sqlite3
    with sqlite3.connect(url.split("///", 1)[-1], timeout=10) as conn:
        return conn.execute("select count(*) from dirty").fetchone()[0]


def score(proxy, member_id):
    return proxy.scoring.member_score(member_id, 2026)["score"]


def test_log_amend_cancel_move_score_and_compliance(flow, vhost_uri):
    proxy, *_ = flow
    peer = PeerQueue(vhost_uri, "scoring.events", ["scores_changed"])
    report = {"meeting_id": "a1", "branch_id": "b1", "type": "branch_assembly",
              "held_at": "2026-03-10T19:30:00+08:00", "topic": "学习",
              "attendance": [{"member_id": m, "status": "present"} for m in NINE[:6]]}
    proxy.meetings.log_meeting(report)
    wait_for(lambda: score(proxy, "m7") == 57 and score(proxy, "m1") == 63,
             message="the logged meeting scored")
    compliance = proxy.scoring.branch_compliance("b1", 2026)
    assert compliance["by_type"]["branch_assembly"]["met"] >= 1
    proxy.meetings.amend_meeting({"meeting_id": "a1", "revision": 1, "attendance":
                                  report["attendance"] + [{"member_id": "m7",
                                                           "status": "leave"}]})
    wait_for(lambda: score(proxy, "m7") == 60, message="the amendment scored")
    proxy.meetings.cancel_meeting({"meeting_id": "a1", "reason": "登记错误"})
    wait_for(lambda: score(proxy, "m1") == 60, message="the cancellation scored")
    cancelled = proxy.scoring.branch_compliance("b1", 2026)
    assert cancelled["by_type"]["branch_assembly"]["met"] == \
        compliance["by_type"]["branch_assembly"]["met"] - 1
    # one scores_changed per drain of marks: the three steps may share one when they come
    # faster than the drains (at most every 0.75 s)
    changed = peer.drain(1, timeout=20)
    import eventlet
    eventlet.sleep(0.5)
    while (message := peer.queue.get(no_ack=True)) is not None:
        changed.append(__import__("json").loads(message.body))
    assert 1 <= len(changed) <= 3
    assert all(e["data"]["year"] == 2026 and e["data"]["branch_ids"] == ["b1"]
               for e in changed)
    assert set().union(*(e["data"]["member_ids"] for e in changed)) == set(NINE)
    # revision 1 delivered again, late: the highest revision (the cancellation) wins
    stale = Envelope.new("meetings", "meeting_logged", {
        **proxy.meetings.get_meeting("a1"), "revision": 1, "cancelled": False,
        "attendance": [{"member_id": m, "status": "present", "remote": False,
                        "expected": True, "visiting": False} for m in NINE]})
    publish_raw(vhost_uri, "meetings.events", "meeting_logged", stale.to_json())
    marker = {"meeting_id": "a2", "branch_id": "b1", "type": "lecture",
              "held_at": "2026-03-11T19:30:00+08:00", "topic": "党课",
              "attendance": [{"member_id": "m1", "status": "present"}]}
    proxy.meetings.log_meeting(marker)  # events after the stale one: once it is scored...
    wait_for(lambda: score(proxy, "m1") == 62, message="the lecture scored")
    assert score(proxy, "m9") == 57  # ...the stale revision changed nothing (lecture absence)
    peer.close()


def test_a_restarted_scoring_service_raises_no_alert_twice(flow, vhost_uri):
    """m9 misses the theme days of January to April: at risk (raised as the events arrive);
    b1 has been silent since April (raised by the daily run). A new scoring container on the
    same database, as after a restart, raises neither again."""
    proxy, urls, container_factory, tmp_path, _ = flow
    peer = PeerQueue(vhost_uri, "scoring.events",
                     ["member_at_risk", "branch_overdue", "branch_silent"])
    for month in (1, 2, 3, 4):
        proxy.meetings.log_meeting({
            "meeting_id": f"t{month}", "branch_id": "b1", "type": "theme_day",
            "held_at": f"2026-{month:02d}-05T09:00:00+08:00", "topic": "主题党日",
            "attendance": [{"member_id": m, "status": "present"} for m in NINE[:8]]})
    [at_risk] = peer.drain(1, timeout=20)
    # raised once the streak reaches three: with March, or with April when both arrive in one
    # drain of the marks
    assert (at_risk["event_type"], at_risk["data"]["member_id"], at_risk["data"]["level"]) \
        == ("member_at_risk", "m9", "notice") and at_risk["data"]["months"] in (3, 4)
    first = proxy.scoring.run_daily()
    assert first["raised"]["branch_silent"] >= 1 and first["raised"]["member_at_risk"] == 0
    silent = peer.drain(sum(first["raised"].values()), timeout=20)
    assert "b1" in {a["data"]["branch_id"] for a in silent if a["event_type"] == "branch_silent"}
    container_factory(ScoringService, service_config("scoring", vhost_uri, urls["scoring"],
                                                     tmp_path)).start()
    again = proxy.scoring.run_daily()
    assert sum(again["raised"].values()) == 0
    import eventlet
    eventlet.sleep(1.0)
    assert peer.queue.get(no_ack=True) is None
    peer.close()
