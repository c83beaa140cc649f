"""notifications with several instances on one PostgreSQL database: the same events handled
by two instances at once give one notification per (kind, recipient, cause), and two senders
never lease the same row (FOR UPDATE SKIP LOCKED)."""
from datetime import timedelta

import eventlet
import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from orglife.common.envelope import Envelope
from orglife.common.migrate import upgrade
from orglife.common.rules import load_rules
from services.notifications import registry
from services.notifications.models import Notification, backbone
from services.notifications.service import NotificationsService
from services.notifications.texts import Texts
from tests.conftest import LocalStore, auth_as
from tests.notifications.conftest import endpoints, local_endpoints, sender  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def members_events():
    orgs = [("c1", "county", None, ["c1"]), ("t1", "township", "c1", ["c1", "t1"]),
            ("b1", "branch", "t1", ["c1", "t1", "b1"])]
    events = [Envelope.new("members", "organization_registered", {
        "org_id": org_id, "name": org_id, "kind": kind, "parent_id": parent, "path": path,
        "category": "village" if kind == "branch" else None, "version": 1,
        "secretary_id": None, "robot_url": None}) for org_id, kind, parent, path in orgs]
    for n in range(1, 31):
        events.append(Envelope.new("members", "member_registered", {
            "member_id": f"m{n}", "name": f"党员{n}", "branch_id": "b1", "status": "formal",
            "email": f"m{n}@example.cn", "phone": None, "version": 1}))
    events.append(Envelope.new("members", "organization_updated", {
        "org_id": "b1", "name": "b1", "kind": "branch", "parent_id": "t1",
        "path": ["c1", "t1", "b1"], "category": "village", "secretary_id": "m30",
        "robot_url": None, "version": 2}))
    return events


def meeting_events(count):
    return [Envelope.new("meetings", "meeting_logged", {
        "meeting_id": f"a{k}", "branch_id": "b1", "type": "theme_day", "revision": 1,
        "held_at": "2026-11-19T11:30:00+00:00", "topic": "主题党日", "status": "logged",
        "cancelled": False, "attendance": [
            {"member_id": f"m{n}", "status": "absent" if n % 3 == k % 3 else "present",
             "expected": True} for n in range(1, 31)]}) for k in range(count)]


@pytest.fixture
def two_instances(pg_url, clock, endpoints):
    upgrade("notifications", pg_url)
    stores = [LocalStore(pg_url, "notifications", backbone, clock=clock) for _ in range(2)]
    workers = [worker_factory(NotificationsService, store=store, auth=auth_as(), clock=clock,
                              rules=load_rules(), texts=Texts(clock.tz),
                              sender=sender(endpoints, owner=f"instance-{n}"))
               for n, store in enumerate(stores)]
    yield workers, stores
    for store in stores:
        store.engine.dispose()


def handle(consume, events):
    """As the subscriber does: a batch that met another instance's insert is tried again."""
    for _ in range(3):
        try:
            return consume(events)
        except IntegrityError:
            eventlet.sleep(0.01)
    raise AssertionError("never got through")


def test_the_same_events_on_two_instances_give_each_notification_once(two_instances):
    workers, stores = two_instances
    members = members_events()
    handle(workers[0].on_members_events, members)
    handle(workers[1].on_members_events, members)
    meetings = meeting_events(12)
    threads = [eventlet.spawn(handle, worker.on_meetings_events, batch)
               for worker in workers for batch in (meetings[:6], meetings[6:], meetings)]
    for thread in threads:
        thread.wait()
    with stores[0]() as uow:
        counted = uow.session.execute(
            select(Notification.kind, func.count(), func.count(func.distinct(
                Notification.recipient_id + Notification.cause)))
            .group_by(Notification.kind)).all()
    # 12 meetings × 10 absentees, and one digest each to the secretary
    assert sorted(counted) == [("absence_digest", 12, 12), ("absence_followup", 120, 120)]


def test_two_senders_lease_disjoint_rows(two_instances, clock):
    workers, stores = two_instances
    handle(workers[0].on_members_events, members_events())
    handle(workers[0].on_meetings_events, meeting_events(6))
    later = clock.now() + timedelta(hours=1)
    first = stores[0]()
    first.__enter__()
    try:
        mine = registry.lease_due(first.session, load_rules(), clock.tz, "a", later, 30,
                                  timedelta(minutes=5))  # not committed yet: rows locked
        with stores[1]() as uow:
            theirs = registry.lease_due(uow.session, load_rules(), clock.tz, "b", later, 30,
                                        timedelta(minutes=5))
            uow.commit()
        first.commit()
    finally:
        first.__exit__(None, None, None)
    assert len(mine) == 30 and len(theirs) == 30 and not set(mine) & set(theirs)


def test_a_robots_rate_limit_is_shared_by_every_instance(two_instances):
    """DingTalk allows 20 messages a minute per robot, whichever instance sends them: 30
    takes racing from two instances get exactly 20 slots; the others learn when one frees."""
    _, stores = two_instances
    url = "https://oapi.dingtalk.com/robot/send?access_token=shared-budget"
    at = 1_800_000_000.0
    results = []

    def take(store):
        for _ in range(15):
            with store() as uow:
                results.append(registry.take_robot_slot(uow.session, url, at))
                uow.commit()

    pool = eventlet.GreenPool()
    for store in stores:
        pool.spawn(take, store)
    pool.waitall()
    assert sorted(w == 0.0 for w in results).count(True) == 20
    assert all(0 < w <= 60 for w in results if w)
    with stores[0]() as uow:  # a minute later the window has room again
        assert registry.take_robot_slot(uow.session, url, at + 60.5) == 0.0
        uow.commit()
