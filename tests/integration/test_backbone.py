"""The event backbone against the real RabbitMQ node: outbox, inbox, parking, topology."""
import json

import eventlet

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select

from orglife.common.envelope import Envelope
from orglife.common.errors import Forbidden, Unauthorized, ValidationError
from orglife.common.messaging import subscribe
from orglife.common.store import Store
from orglife.common.db import backbone_tables
from orglife.common.system import Service
from orglife.system import SYSTEM
from services.members.service import MembersService
from tests.conftest import PeerQueue, migrated_sqlite, publish_raw, service_config, wait_for
from tests.members.conftest import small_county

pytestmark = pytest.mark.integration

# Test consumers join the system the way any service does: one entry in the declaration.
LEDGER_EVENTS = ("member_registered", "member_updated")
TOPOLOGY = SYSTEM.with_service(Service("ledger", "LedgerService", package="tests.integration",
                                       subscribes={"members": LEDGER_EVENTS}, database=False))
LEDGER_SUB = TOPOLOGY.subscription("ledger", "members")

ledger_metadata = MetaData()
ledger_backbone = backbone_tables(ledger_metadata)
applied = Table("applied", ledger_metadata,
                Column("id", Integer, primary_key=True, autoincrement=True),
                Column("event_id", String(64)), Column("member_id", String(64)))
ATTEMPTS = {}


def record(uow, envelope):
    uow.session.execute(applied.insert().values(event_id=envelope.event_id,
                                                member_id=envelope.data.get("member_id")))


LEDGER_HANDLERS = {"member_registered": record, "member_updated": record}


class LedgerService:
    """A consumer built the way every orglife consumer is: subscribe + inbox in one UoW."""

    name = "ledger"
    store = Store(ledger_backbone, relay=False)

    @subscribe("members", LEDGER_HANDLERS, retry_delay=0.01)
    def on_members_event(self, envelope):
        if envelope.data.get("name") == "EXPLODE":
            ATTEMPTS[envelope.event_id] = ATTEMPTS.get(envelope.event_id, 0) + 1
            raise RuntimeError("this handler always fails on this member")
        with self.store() as uow:
            if not uow.first_time(envelope):
                return
            LEDGER_HANDLERS[envelope.event_type](uow, envelope)
            uow.commit()


@pytest.fixture
def ledger_db(tmp_path):
    from orglife.common.db import make_engine
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    ledger_metadata.create_all(engine)
    return url, engine


def applied_rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(applied.c.event_id, applied.c.member_id)).all()


@pytest.fixture
def members(container_factory, vhost_uri, tmp_path):
    config = service_config("members", vhost_uri, migrated_sqlite(tmp_path, "members"), tmp_path,
                            system=TOPOLOGY)
    container = container_factory(MembersService, config)
    container.start()
    return container


@pytest.fixture
def ledger(container_factory, vhost_uri, tmp_path, ledger_db):
    def start():
        config = service_config("ledger", vhost_uri, ledger_db[0], tmp_path,
                                system=TOPOLOGY)
        container = container_factory(LedgerService, config)
        container.start()
        return container
    return start


class RpcAdmin:
    """Small adapter so the tests read like the unit tests: admin.register_member(...)."""

    def __init__(self, proxy):
        self.proxy = proxy

    def __getattr__(self, name):
        return getattr(self.proxy.members, name)


def test_rpc_registration_reaches_a_nameko_consumer_and_a_plain_kombu_peer(
        members, ledger, ledger_db, rpc_proxy, vhost_uri):
    peer = PeerQueue(vhost_uri, "members.events", ["member_registered"])
    ledger()
    admin = RpcAdmin(rpc_proxy())
    small_county(admin)
    admin.register_member({"member_id": "m1", "name": "张伟", "branch_id": "b1"})
    [envelope] = peer.drain(1)
    assert envelope["event_type"] == "member_registered" and envelope["source"] == "members"
    assert envelope["data"]["member_id"] == "m1" and envelope["schema_version"] == 1
    rows = wait_for(lambda: applied_rows(ledger_db[1]), message="ledger applied the event")
    assert rows == [(envelope["event_id"], "m1")]
    peer.close()


def test_events_published_before_the_consumer_starts_are_not_lost(
        members, ledger, ledger_db, rpc_proxy):
    admin = RpcAdmin(rpc_proxy())
    small_county(admin)
    for n in range(5):
        admin.register_member({"member_id": f"m{n}", "name": f"成员{n}", "branch_id": "b2"})
    wait_for(lambda: admin.health()["outbox_backlog"] == 0, message="outbox drained")
    ledger()  # only now does the consumer service start
    rows = wait_for(lambda: len(applied_rows(ledger_db[1])) == 5 and applied_rows(ledger_db[1]),
                    message="all five events consumed")
    assert sorted(member for _, member in rows) == [f"m{n}" for n in range(5)]


def test_the_same_event_delivered_twice_changes_nothing(ledger, ledger_db, vhost_uri):
    ledger()
    envelope = Envelope.new("members", "member_registered", {"member_id": "m7", "name": "李娜"})
    for _ in range(2):
        publish_raw(vhost_uri, "members.events", "member_registered", envelope.to_json())
    follow = Envelope.new("members", "member_updated", {"member_id": "m8", "name": "王芳"})
    publish_raw(vhost_uri, "members.events", "member_updated", follow.to_json())
    wait_for(lambda: any(m == "m8" for _, m in applied_rows(ledger_db[1])), message="m8")
    assert sorted(applied_rows(ledger_db[1])) == sorted(
        [(envelope.event_id, "m7"), (follow.event_id, "m8")])


def parked_messages(amqp_uri, queue_name, count):
    from kombu import Connection, Queue
    out = []
    with Connection(amqp_uri) as conn:
        queue = Queue(queue_name)(conn.channel())

        def more():
            while True:
                message = queue.get(no_ack=True)
                if message is None:
                    return len(out) >= count
                out.append(message)
        wait_for(more, message=f"{count} parked messages")
    return out


def test_bad_messages_are_parked_with_their_reason_and_the_service_goes_on(
        ledger, ledger_db, vhost_uri):
    ledger()
    good = Envelope.new("members", "member_registered", {"member_id": "ok1", "name": "好"})
    exploding = Envelope.new("members", "member_registered", {"member_id": "x", "name": "EXPLODE"})
    future = dict(Envelope.new("members", "member_registered", {"member_id": "v9"}).to_dict(),
                  schema_version=99)
    alien = Envelope.new("members", "member_registered", {}).to_dict()
    alien["event_type"] = "member_teleported"
    cases = [
        (b"{not json", "application/json", "member_registered", "not valid JSON"),
        (json.dumps({"hello": "world"}), "application/json", "member_registered", "not an envelope"),
        (json.dumps(future), "application/json", "member_registered", "unknown schema_version 99"),
        (json.dumps(alien), "application/json", "member_updated", "unknown event type"),
        (b"\x80\x04K\x01.", "application/x-python-serialize", "member_updated", "content type"),
        (exploding.to_json(), "application/json", "member_registered", "failed 3 times"),
        (Envelope.new("intake", "member_registered", {}).to_json(), "application/json",
         "member_registered", "source 'intake' on the members.events exchange"),
        (b"", "application/json", "member_registered", "not valid JSON"),  # empty body
        ("[" * 100_000 + "]" * 100_000, "application/json", "member_registered",
         "nested too deeply"),  # RecursionError: parked, never fatal, never redelivered
    ]
    for body, content_type, key, _ in cases:
        publish_raw(vhost_uri, "members.events", key, body, content_type=content_type)
    for junk in (5, [1, 2], "x" * 10_000):  # a peer's header junk: ignored, never fatal
        publish_raw(vhost_uri, "members.events", "member_registered",
                    Envelope.new("members", "member_registered",
                                 {"member_id": f"h{len(str(junk))}", "name": "头"}).to_json(),
                    headers={"nameko.call_id_stack": junk})
    publish_raw(vhost_uri, "members.events", "member_registered", good.to_json())
    parked = parked_messages(vhost_uri, LEDGER_SUB.parking_queue_name, len(cases))
    reasons = sorted(m.headers["x-parked-reason"] for m in parked)
    for _, _, _, expected in cases:
        assert any(expected in reason for reason in reasons), (expected, reasons)
    assert ATTEMPTS[exploding.event_id] == 3
    assert all(m.headers["x-parked-queue"] == LEDGER_SUB.queue_name for m in parked)
    wait_for(lambda: ("ok1" in [m for _, m in applied_rows(ledger_db[1])]), message="good one")
    wait_for(lambda: {"h1", "h6", "h10000"} <= {m for _, m in applied_rows(ledger_db[1])},
             message="the events with junk headers applied")
    # the service is still consuming after all of that
    later = Envelope.new("members", "member_updated", {"member_id": "ok2", "name": "仍在"})
    publish_raw(vhost_uri, "members.events", "member_updated", later.to_json())
    wait_for(lambda: ("ok2" in [m for _, m in applied_rows(ledger_db[1])]), message="still alive")


def test_errors_cross_rpc_typed_and_calls_are_authenticated(members, rpc_proxy):
    admin = RpcAdmin(rpc_proxy())
    small_county(admin)
    with pytest.raises(ValidationError) as err:
        admin.register_member({"name": "张伟", "branch_id": "b1", "phone": "123"})
    assert list(err.value.errors) == ["phone"]
    with pytest.raises(Unauthorized):
        rpc_proxy(authorization=None).members.list_members({})
    with pytest.raises(Unauthorized):
        rpc_proxy(authorization="Bearer forged.token.value").members.list_members({})
    township = rpc_proxy("township_admin", "t2")
    with pytest.raises(Forbidden):
        township.members.register_member({"name": "张伟", "branch_id": "b1"})
    assert township.members.list_organizations({})["total"] == 2


BATCH_TOPOLOGY = TOPOLOGY.with_service(Service(
    "batchledger", "BatchLedgerService", package="tests.integration",
    subscribes={"members": ("member_registered",)}, database=False))
BATCH_SUB = BATCH_TOPOLOGY.subscription("batchledger", "members")
BATCHES = []


class BatchLedgerService:
    """A batching consumer: one transaction per batch, falling back to one by one."""

    name = "batchledger"
    store = Store(ledger_backbone, relay=False)

    @subscribe("members", {"member_registered": record}, batch_size=20, batch_wait=0.2,
               retry_delay=0.01)
    def on_members_events(self, envelopes):
        BATCHES.append(len(envelopes))
        with self.store() as uow:
            for envelope in envelopes:
                if envelope.data.get("name") == "EXPLODE":
                    raise RuntimeError("poisoned message")
                if uow.first_time(envelope):
                    record(uow, envelope)
            uow.commit()


def test_a_batch_is_one_transaction_and_a_poisoned_message_does_not_hold_back_the_rest(
        container_factory, vhost_uri, tmp_path, ledger_db):
    config = service_config("batchledger", vhost_uri, ledger_db[0], tmp_path,
                            system=BATCH_TOPOLOGY)
    container_factory(BatchLedgerService, config).start()
    BATCHES.clear()
    envelopes = [Envelope.new("members", "member_registered", {"member_id": f"b{n}",
                                                               "name": f"成员{n}"})
                 for n in range(40)]
    envelopes[7] = Envelope.new("members", "member_registered", {"member_id": "bad",
                                                                 "name": "EXPLODE"})
    from kombu import Connection, Producer
    with Connection(vhost_uri, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel())
        for envelope in envelopes + [envelopes[3]]:  # and one duplicate delivery
            producer.publish(envelope.to_json(), exchange="members.events",
                             routing_key="member_registered", content_type="application/json",
                             delivery_mode=2)
    wait_for(lambda: len(applied_rows(ledger_db[1])) == 39, message="39 good events applied")
    [parked] = parked_messages(vhost_uri, BATCH_SUB.parking_queue_name, 1)
    assert "poisoned message" in parked.headers["x-parked-reason"]
    assert sorted(m for _, m in applied_rows(ledger_db[1])) == sorted(
        e.data["member_id"] for e in envelopes if e.data["name"] != "EXPLODE")
    assert max(BATCHES) > 1  # messages really were handled in batches


class MisdeclaredLedgerService:
    """Subscribed to two event types by the declaration, handling one."""

    name = "ledger"
    store = Store(ledger_backbone, relay=False)

    @subscribe("members", {"member_registered": record})
    def on_members_event(self, envelope):
        raise AssertionError("never started")


def test_a_consumer_whose_dispatch_table_disagrees_with_the_declaration_does_not_start(
        container_factory, vhost_uri, tmp_path, ledger_db):
    from orglife.common.system import DeclarationError
    config = service_config("ledger", vhost_uri, ledger_db[0], tmp_path, system=TOPOLOGY)
    container = container_factory(MisdeclaredLedgerService, config)
    with pytest.raises(DeclarationError, match="no handler for member_updated"):
        container.start()


BROKEN = {"on": True}


def record_unless_broken(uow, envelope):
    if BROKEN["on"]:
        raise RuntimeError("a bug in this consumer")
    record(uow, envelope)


class FixableLedgerService:
    """A consumer with a bug that is fixed later (BROKEN)."""

    name = "ledger"
    store = Store(ledger_backbone, relay=False)

    @subscribe("members", {"member_registered": record_unless_broken,
                           "member_updated": record_unless_broken}, retry_delay=0.01)
    def on_members_event(self, envelope):
        with self.store() as uow:
            if uow.first_time(envelope):
                record_unless_broken(uow, envelope)
            uow.commit()


def test_a_parked_message_is_replayed_once_its_cause_is_fixed(container_factory, vhost_uri,
                                                               tmp_path, ledger_db):
    from orglife import parking
    config = service_config("ledger", vhost_uri, ledger_db[0], tmp_path, system=TOPOLOGY)
    container_factory(FixableLedgerService, config).start()
    BROKEN["on"] = True
    envelope = Envelope.new("members", "member_registered", {"member_id": "p1", "name": "待修"})
    publish_raw(vhost_uri, "members.events", "member_registered", envelope.to_json())
    [row] = wait_for(lambda: [r for r in parking.summary(vhost_uri, TOPOLOGY, LEDGER_SUB.queue_name)
                              if r["parked"] == 1], message="parked")
    assert row["reasons"] == {
        "handler on_members_event failed 3 times: RuntimeError: a bug in this consumer": 1}
    assert row["first"][0]["routing_key"] == "member_registered"
    assert parking.summary(vhost_uri, TOPOLOGY, LEDGER_SUB.parking_queue_name)[0]["parked"] == 1
    # replayed before the fix: parked again, and replay stops at what was parked when it began
    assert parking.replay(vhost_uri, TOPOLOGY, LEDGER_SUB.queue_name) == 1
    wait_for(lambda: parking.summary(vhost_uri, TOPOLOGY, LEDGER_SUB.queue_name)[0]["parked"]
             == 1, message="parked again")
    BROKEN["on"] = False  # the fix is deployed
    assert parking.replay(vhost_uri, TOPOLOGY, LEDGER_SUB.queue_name) == 1
    wait_for(lambda: applied_rows(ledger_db[1]), message="handled after the replay")
    assert parking.replay(vhost_uri, TOPOLOGY, LEDGER_SUB.queue_name) == 0
    eventlet.sleep(0.5)
    assert [m for _, m in applied_rows(ledger_db[1])] == ["p1"]  # once
    with pytest.raises(parking.ParkingError, match="no consumer queue"):
        parking.replay(vhost_uri, TOPOLOGY, "nosuch.events--x")


def test_each_consumer_keeps_its_own_prefetch(members, rabbit, vhost_uri):
    """RabbitMQ applies a channel's last basic.qos to all its consumers: sharing one channel,
    every subscriber had the RPC's 10 and batches of 400 could never fill."""
    from urllib.parse import quote
    vhost = vhost_uri.rsplit("/", 1)[1]

    def prefetch():
        consumers = rabbit._api("GET", f"consumers/{quote(vhost, safe='')}").json()
        return {c["queue"]["name"]: c["prefetch_count"] for c in consumers}
    counts = wait_for(lambda: (p := prefetch()) and len(p) >= 2 and p, timeout=20,
                      message="the consumers listed")
    assert counts["meetings.events--members"] == 800  # two batches of 400
    assert counts["rpc-members"] == 10


class FlakyLedgerService:
    """A batching consumer whose handler times out, always, on one member's event."""

    name = "batchledger"
    store = Store(ledger_backbone, relay=False)

    @subscribe("members", {"member_registered": record}, batch_size=10, batch_wait=0.1)
    def on_members_events(self, envelopes):
        with self.store() as uow:
            for envelope in envelopes:
                if envelope.data.get("name") == "TIMEOUT":
                    raise TimeoutError("looks temporary, but only ever for this message")
                if uow.first_time(envelope):
                    record(uow, envelope)
            uow.commit()


def test_a_message_failing_temporarily_alone_is_parked_and_the_rest_go_through(
        container_factory, vhost_uri, tmp_path, ledger_db, monkeypatch):
    from orglife.common import messaging
    monkeypatch.setattr(messaging, "TEMPORARY_BUDGET", 3)
    config = service_config("batchledger", vhost_uri, ledger_db[0], tmp_path,
                            system=BATCH_TOPOLOGY)
    container_factory(FlakyLedgerService, config).start()
    envelopes = [Envelope.new("members", "member_registered",
                              {"member_id": f"f{n}", "name": "TIMEOUT" if n == 4 else "好"})
                 for n in range(10)]
    for envelope in envelopes:
        publish_raw(vhost_uri, "members.events", "member_registered", envelope.to_json())
    wait_for(lambda: len(applied_rows(ledger_db[1])) == 9, timeout=30,
             message="the nine others applied")
    [parked] = parked_messages(vhost_uri, BATCH_SUB.parking_queue_name, 1)
    assert "while other messages succeeded" in parked.headers["x-parked-reason"]
    assert "TimeoutError" in parked.headers["x-parked-reason"]


def test_a_batch_is_acked_at_once_only_when_nothing_older_is_left_unsettled(vhost_uri):
    """RawQueueConsumer.ack_messages on the real broker: a batch behind an older message still
    unsettled is acked message by message (a `multiple` ack would take the older one along and
    lose it: it must come back when the connection drops); a batch that holds the oldest
    unsettled messages is acked with one `multiple` ack, and nothing comes back."""
    from kombu import Connection, Consumer, Exchange, Producer, Queue

    from orglife.common.messaging import RawQueueConsumer

    queue = Queue("ack-test", Exchange("ack-test", "direct"), routing_key="k", durable=True)
    settler = RawQueueConsumer()

    def receive(count):
        conn = Connection(vhost_uri)
        got = []
        consumer = Consumer(conn.channel(), queues=[queue], on_message=got.append)
        consumer.qos(prefetch_count=20)
        consumer.consume()
        while len(got) < count:
            conn.drain_events(timeout=5)
        for message in got:
            settler.track(message)
        channel, real_ack = got[0].channel, got[0].channel.basic_ack

        def counted_ack(tag, multiple=False):  # the real ack, counted
            acks.append((tag, multiple))
            return real_ack(tag, multiple=multiple)
        channel.basic_ack = counted_ack
        return conn, got, [message.delivery_tag for message in got]

    with Connection(vhost_uri) as conn:
        queue(conn.channel()).declare()
        producer = Producer(conn.channel())
        for n in range(1, 7):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="k")

    acks = []
    conn, got, tags = receive(6)
    settler.ack_messages(got[1:3])  # message 1 is older and unsettled: one by one
    assert acks == [(tags[1], False), (tags[2], False)]
    conn.release()  # messages 1, 4, 5 and 6 were never acked: they come back
    conn, got, tags = receive(4)
    assert sorted(message.payload["n"] for message in got) == [1, 4, 5, 6]
    acks.clear()
    settler.ack_messages(got)
    assert acks == [(max(tags), True)]  # one frame for the batch
    assert all(message.acknowledged for message in got)
    assert not settler._unsettled.get(got[0].channel)
    conn.release()
    with Connection(vhost_uri) as conn:
        assert queue(conn.channel()).queue_declare(passive=True).message_count == 0
