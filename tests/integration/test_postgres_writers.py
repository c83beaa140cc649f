"""Concurrent writers on PostgreSQL (issue 7 §1): an import locks the members it changes, so
it and an update_member never both announce "version N+1" with different data."""
import eventlet
import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import text

from orglife.common.migrate import upgrade
from services.members.models import backbone
from services.members.service import MembersService
from tests.conftest import LocalStore, auth_as
from tests.members.conftest import small_county

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def members_on_pg(pg_url, clock):
    upgrade("members", pg_url)
    store = LocalStore(pg_url, "members", backbone)
    worker = worker_factory(MembersService, store=store, auth=auth_as(), clock=clock)
    small_county(worker)
    yield worker, store
    store.engine.dispose()


@pytest.mark.parametrize("row", [
    {"member_id": "m1", "name": "张伟", "branch": "b1", "committee_member": "是"},
    {"name": "张伟", "branch": "b1", "phone": "13800138000", "committee_member": "是"},
], ids=["by-member_id", "by-identity"])
def test_an_import_waits_for_a_locked_member_and_writes_the_next_version(members_on_pg, row):
    worker, store = members_on_pg
    worker.register_member({"member_id": "m1", "name": "张伟", "branch_id": "b1",
                            "phone": "13800138000"})
    holder = store.engine.connect()  # another instance, in the middle of changing m1
    transaction = holder.begin()
    holder.execute(text("SELECT version FROM members WHERE member_id = 'm1' FOR UPDATE"))
    importing = eventlet.spawn(worker.import_members, [row])
    eventlet.sleep(0.5)
    assert not importing.dead, "the import did not wait for the locked member"
    holder.execute(text("UPDATE members SET version = version + 1, "
                        "email = 'other@example.com' WHERE member_id = 'm1'"))
    transaction.commit()
    holder.close()
    result = importing.wait()
    assert result["updated"] == ["m1"] and result["errors"] == []
    [event] = [e for e in store.outbox_events() if e["event_type"] == "member_updated"]
    assert event["data"]["version"] == 3  # N+2 after the other's N+1, not a second N+1
    assert event["data"]["email"] == "other@example.com" and event["data"]["committee_member"]
    member = worker.get_member("m1")
    assert (member["version"], member["email"], member["committee_member"]) == (
        3, "other@example.com", True)


def test_an_import_and_update_member_in_parallel_give_consecutive_versions(members_on_pg):
    worker, store = members_on_pg
    for n in range(20):
        worker.register_member({"member_id": f"p{n}", "name": f"成员{n}", "branch_id": "b1"})
    rows = [{"member_id": f"p{n}", "name": f"成员{n}", "branch": "b1", "committee_member": "是"}
            for n in range(20)]
    pool = eventlet.GreenPool(21)
    importing = pool.spawn(worker.import_members, rows)
    updates = [pool.spawn(worker.update_member, {"member_id": f"p{n}", "no_vote": True})
               for n in range(20)]
    pool.waitall()
    assert importing.wait()["errors"] == [] and all(u.wait() for u in updates)
    versions: dict = {}
    for event in store.outbox_events():
        if event["event_type"] == "member_updated":
            versions.setdefault(event["data"]["member_id"], []).append(event["data"]["version"])
    assert {member_id: sorted(v) for member_id, v in versions.items()} == {
        f"p{n}": [2, 3] for n in range(20)}
    for n in range(20):
        member = worker.get_member(f"p{n}")
        assert (member["version"], member["committee_member"], member["no_vote"]) == (3, True, True)


def test_on_postgresql_a_meeting_and_an_activity_may_share_an_id(members_on_pg):
    """Migration 0004 re-keys participation by (member_id, kind, ref) on PostgreSQL too."""
    from tests.members.test_data_safety import activity_logged, meeting_logged
    worker, store = members_on_pg
    worker.register_member({"member_id": "m1", "name": "张伟", "branch_id": "b1"})
    worker.on_meetings_events([activity_logged("x1"), meeting_logged("x1", ["m1"])])
    items = worker.get_member("m1")["participation"]["items"]
    assert sorted((i["kind"], i["ref"]) for i in items) == [("activity", "x1"), ("meeting", "x1")]


def test_two_instances_registering_one_member_at_once_both_answer(pg_url, clock):
    """The second insert of one key waits for the first and fails on its unique key: it runs
    again, finds the member and answers as a repeat does, never with a database error."""
    upgrade("members", pg_url)
    stores = [LocalStore(pg_url, "members", backbone) for _ in range(2)]
    workers = [worker_factory(MembersService, store=store, auth=auth_as(), clock=clock)
               for store in stores]
    small_county(workers[0])
    member = {"member_id": "twin", "name": "张伟", "branch_id": "b1"}
    holder = stores[0].engine.connect()  # hold the first insert open until both are in flight
    transaction = holder.begin()
    holder.execute(text("INSERT INTO members (member_id, name, branch_id, status, mobile, "
                        "committee_member, no_vote, version) VALUES "
                        "('twin', '张伟', 'b1', 'formal', false, false, false, 1)"))
    racing = eventlet.spawn(workers[1].register_member, member)
    eventlet.sleep(0.5)
    transaction.commit()
    holder.close()
    assert racing.wait()["member_id"] == "twin"  # the stored one, as a repeat is answered
    for store in stores:
        store.engine.dispose()
