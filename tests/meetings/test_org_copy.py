"""meetings' copy of organizations follows organization_updated (issue 9): the events the real
members worker writes to its outbox, delivered in order, out of order and twice."""
import pytest
from sqlalchemy import select

from orglife.common.envelope import Envelope
from tests.members.conftest import members_store, members_worker  # noqa: F401  (fixtures)
from tests.members.conftest import small_county


def org_envelopes(members_store):
    return [Envelope.from_body(body) for body in members_store.outbox_events()
            if body["event_type"] in ("organization_registered", "organization_updated")]


def copy_of(meetings_store, org_id):
    from services.meetings.models import OrgCopy
    with meetings_store.engine.connect() as conn:
        row = conn.execute(select(OrgCopy.name, OrgCopy.category, OrgCopy.kind,
                                  OrgCopy.parent_id, OrgCopy.path, OrgCopy.version)
                           .where(OrgCopy.org_id == org_id)).one_or_none()
    return None if row is None else dict(row._mapping)


@pytest.fixture
def renamed(members_worker, members_store):
    """b1 registered, renamed and recategorized (v2), then its secretary set (v3)."""
    admin = members_worker()
    small_county(admin)
    admin.register_member({"member_id": "m1", "name": "张伟", "branch_id": "b1"})
    admin.update_organization({"org_id": "b1", "name": "石桥社区党支部",
                               "category": "community"})
    admin.update_organization({"org_id": "b1", "secretary_id": "m1"})
    events = org_envelopes(members_store)
    assert [e.event_type for e in events][-2:] == ["organization_updated"] * 2
    return events


def test_updates_in_order_reach_the_copy(renamed, meetings_worker, meetings_store):
    consumer = meetings_worker()
    consumer.on_members_events(renamed)
    assert copy_of(meetings_store, "b1") == {
        "name": "石桥社区党支部", "category": "community", "kind": "branch", "parent_id": "t1",
        "path": "/c1/t1/b1/", "version": 3}
    assert copy_of(meetings_store, "t1")["version"] == 1


def test_an_older_version_arriving_late_changes_nothing(renamed, meetings_worker,
                                                         meetings_store):
    registered_b1 = next(e for e in renamed if e.event_type == "organization_registered"
                         and e.data["org_id"] == "b1")
    update_v2, update_v3 = renamed[-2:]
    consumer = meetings_worker()
    consumer.on_members_events([update_v2])  # the update before the registration
    assert copy_of(meetings_store, "b1")["name"] == "石桥社区党支部"
    consumer.on_members_events([registered_b1])
    assert copy_of(meetings_store, "b1")["version"] == 2
    assert copy_of(meetings_store, "b1")["category"] == "community"
    consumer.on_members_events([update_v3, update_v2])  # v2 again (another instance) after v3
    consumer.on_members_events([update_v2])  # and a redelivery
    assert copy_of(meetings_store, "b1")["version"] == 3
    consumer.on_members_events([e for e in renamed if e is not registered_b1])
    assert copy_of(meetings_store, "b1") == {
        "name": "石桥社区党支部", "category": "community", "kind": "branch", "parent_id": "t1",
        "path": "/c1/t1/b1/", "version": 3}


def test_a_renamed_branch_still_logs_its_meetings(renamed, meetings_worker):
    from tests.meetings.conftest import member_event
    consumer = meetings_worker()
    consumer.on_members_events(list(reversed(renamed)))
    consumer.on_members_events([member_event("m1")])
    meeting = meetings_worker("branch_secretary", "b1").log_meeting({
        "meeting_id": "mt1", "branch_id": "b1", "type": "theme_day",
        "held_at": "2026-11-10T19:30:00", "topic": "主题党日",
        "attendance": [{"member_id": "m1", "status": "present"}]})
    assert meeting["branch_id"] == "b1" and meeting["revision"] == 1
