"""The deployment shape without Docker: members on PostgreSQL, two instances, one broker."""
import time

import eventlet
import eventlet.queue
import pytest
from sqlalchemy import text

from orglife.common.migrate import upgrade
from services.members.service import MembersService
from tests.conftest import PeerQueue, REPO, service_config, small_county, unique_name, wait_for
from tests.integration.test_backbone import RpcAdmin

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="session")
def pg_cluster():
    from orglife.postgres import PrivateCluster
    cluster = PrivateCluster(REPO / ".orglife-test" / "pg")
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    name = unique_name("db").replace("-", "_")
    pg_cluster.create_database(name)
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


def test_psycopg2_waits_through_eventlet_so_a_slow_query_does_not_stall_others(pg_url):
    from orglife.common.db import make_engine
    engine = make_engine(pg_url)
    started = time.monotonic()
    pool = eventlet.GreenPool()
    results = list(pool.imap(lambda _: _sleep_query(engine), range(4)))
    elapsed = time.monotonic() - started
    assert results == [1, 1, 1, 1]
    # Serialised, four 0.5 s queries take 2 s; cooperative, they overlap.
    assert elapsed < 1.5, f"queries did not overlap ({elapsed:.2f}s)"
    engine.dispose()


def _sleep_query(engine):
    with engine.connect() as conn:
        return conn.execute(text("select 1 from pg_sleep(0.5)")).scalar_one()


def test_two_members_instances_on_postgresql_serve_calls_and_publish_each_event_once(
        container_factory, vhost_uri, tmp_path, pg_url, rpc_proxy):
    upgrade("members", pg_url)
    config = service_config("members", vhost_uri, pg_url, tmp_path)
    instances = [container_factory(MembersService, config) for _ in range(2)]
    for container in instances:
        container.start()
    peer = PeerQueue(vhost_uri, "members.events", ["member_registered"])
    admin = RpcAdmin(rpc_proxy())
    small_county(admin)
    # a standalone proxy serves one greenthread: a call checks one out, then returns it
    idle = eventlet.queue.Queue()
    for _ in range(8):
        idle.put(RpcAdmin(rpc_proxy()))

    def register(member):
        caller = idle.get()
        try:
            return caller.register_member(member)
        finally:
            idle.put(caller)
    members = [{"member_id": f"pg{n}", "name": f"成员{n}", "branch_id": "b1"} for n in range(40)]
    list(eventlet.GreenPool(8).imap(register, members))
    bodies = peer.drain(40)
    assert sorted(b["data"]["member_id"] for b in bodies) == sorted(m["member_id"] for m in members)
    eventlet.sleep(1.0)
    assert peer.queue.get() is None  # no event published twice by the two relays
    wait_for(lambda: admin.health()["outbox_backlog"] == 0, message="both outboxes drained")
    assert admin.list_members({"limit": 100})["total"] == 40
    peer.close()
