"""The deployment shape without Docker: members on PostgreSQL, two instances, one broker."""
import eventlet
import eventlet.queue
import pytest
from sqlalchemy import text

from orglife.common.migrate import upgrade
from services.members.service import MembersService
from tests.conftest import PeerQueue, service_config, wait_for
from tests.members.conftest import small_county
from tests.integration.test_backbone import RpcAdmin

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_psycopg2_waits_through_eventlet_so_a_slow_query_does_not_stall_others(pg_url):
    """Four green threads' 1 s queries run at the same time: some ran while another was
    running (serialised, each would start only after the one before it ended). Shown by the
    database's own clock, not by a wall-clock bound a loaded machine could miss."""
    from orglife.common.db import make_engine
    engine = make_engine(pg_url)
    pool = eventlet.GreenPool()
    spans = list(pool.imap(lambda _: _sleep_query(engine), range(4)))
    assert [value for value, _, _ in spans] == [1, 1, 1, 1]
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:]
                   if a[1] < b[2] and b[1] < a[2]]
    assert overlapping, f"queries did not overlap: {spans}"
    engine.dispose()


def _sleep_query(engine):
    """The query's value and, from the database's clock, when the statement arrived and when
    its 1 s sleep ended."""
    with engine.connect() as conn:
        return tuple(conn.execute(text(
            "select 1, statement_timestamp(), (select clock_timestamp() from pg_sleep(1))"))
            .one())


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


def test_two_members_instances_share_the_meetings_queue_and_converge(
        container_factory, vhost_uri, tmp_path, pg_url, rpc_proxy):
    from kombu import Connection, Producer

    from orglife.common.envelope import Envelope
    upgrade("members", pg_url)
    config = service_config("members", vhost_uri, pg_url, tmp_path)
    for _ in range(2):
        container_factory(MembersService, config).start()
    admin = RpcAdmin(rpc_proxy())
    small_county(admin)
    for n in range(6):
        admin.register_member({"member_id": f"s{n}", "name": f"成员{n}", "branch_id": "b1"})
    with Connection(vhost_uri) as conn:
        consumers = conn.channel().queue_declare("meetings.events--members", passive=True)[2]
    assert consumers == 2  # both instances consume the one queue

    def meeting(n, revision, status):
        return Envelope.new("meetings", "meeting_logged" if revision == 1 else "meeting_amended", {
            "meeting_id": f"pgm{n}", "branch_id": "b1", "group_id": None, "type": "lecture",
            "held_at": "2026-10-10T02:00:00+00:00", "topic": "党课", "minutes": None,
            "status": "logged", "revision": revision, "quorum_met": True, "cancelled": False,
            "attendance": [{"member_id": f"s{m}", "status": status, "remote": False,
                            "expected": True, "visiting": False} for m in range(6)]})
    envelopes = []
    for n in range(30):  # newest revision first for half of them, and every one twice
        pair = [meeting(n, 1, "absent"), meeting(n, 2, "present")]
        envelopes += (pair[::-1] if n % 2 else pair) * 2
    with Connection(vhost_uri, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel())
        for envelope in envelopes:
            producer.publish(envelope.to_json(), exchange="meetings.events",
                             routing_key=envelope.event_type, content_type="application/json",
                             delivery_mode=2)

    def statuses():
        items = admin.get_member("s3")["participation"]["items"]
        return sorted((i["ref"], i["status"]) for i in items)
    expected = sorted((f"pgm{n}", "present") for n in range(30))
    wait_for(lambda: statuses() == expected, timeout=60, message="the newest revisions")
    eventlet.sleep(1.0)
    assert statuses() == expected
