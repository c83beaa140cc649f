"""Fixtures for the whole suite.

eventlet must patch the standard library before anything imports it: nameko 2.14's pytest
plugin no longer does this, and without it the suite hangs (KNOWN-TRAPS).
"""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402

import uuid  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)

import pytest  # noqa: E402
from nameko.testing.services import worker_factory  # noqa: E402

from orglife.common.auth import AuthContext, mint_token  # noqa: E402
from orglife.common.clock import Clock  # noqa: E402
from orglife.common.db import UnitOfWork, make_engine, session_factory  # noqa: E402
from orglife.common.migrate import upgrade  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECRET = "test-secret-not-for-deployment-0123456789"
FIXED_NOW = "2026-11-20T10:00:00+08:00"


def bearer(role="county_admin", org_id=None, sub="tester"):
    return "Bearer " + mint_token(SECRET, sub, role, org_id)


def auth_as(role="county_admin", org_id=None):
    return AuthContext(SECRET, bearer(role, org_id))


class LocalStore:
    """The `store` dependency over a real SQLite file, for worker_factory unit tests."""

    def __init__(self, url, service, backbone):
        self.engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        self.service = service
        self.backbone = backbone

    def __call__(self):
        return UnitOfWork(self.sessions, self.service, self.backbone)

    def outbox_backlog(self):
        from sqlalchemy import func, select
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(self.backbone.outbox)
                                .where(self.backbone.outbox.c.sent_at.is_(None))).scalar_one()

    def outbox_events(self):
        import json
        from sqlalchemy import select
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.backbone.outbox.c.body)
                                .order_by(self.backbone.outbox.c.id)).scalars()
            return [json.loads(body) for body in rows]


def migrated_sqlite(tmp_path, service):
    url = f"sqlite:///{tmp_path / (service + '.db')}"
    upgrade(service, url)
    return url


@pytest.fixture
def clock():
    return Clock("Asia/Shanghai", FIXED_NOW)


@pytest.fixture
def members_store(tmp_path):
    from services.members.models import backbone
    return LocalStore(migrated_sqlite(tmp_path, "members"), "members", backbone)


@pytest.fixture
def members_worker(members_store, clock):
    """A MembersService worker on a real SQLite database, acting as a county admin."""
    from services.members.service import MembersService

    def make(role="county_admin", org_id=None):
        return worker_factory(MembersService, store=members_store, auth=auth_as(role, org_id),
                              clock=clock)
    return make


def small_county(worker):
    """c1 → t1 (b1 village with group g1, gb1 → b3 enterprise), t2 (b2 community)."""
    orgs = [
        {"org_id": "c1", "name": "青山县", "kind": "county"},
        {"org_id": "t1", "name": "石桥镇", "kind": "township", "parent_id": "c1"},
        {"org_id": "t2", "name": "白沙乡", "kind": "township", "parent_id": "c1"},
        {"org_id": "b1", "name": "石桥村党支部", "kind": "branch", "parent_id": "t1",
         "category": "village"},
        {"org_id": "g1", "name": "第一党小组", "kind": "group", "parent_id": "b1"},
        {"org_id": "gb1", "name": "工业园党总支", "kind": "general_branch", "parent_id": "t1"},
        {"org_id": "b3", "name": "宏达公司党支部", "kind": "branch", "parent_id": "gb1",
         "category": "enterprise"},
        {"org_id": "b2", "name": "白沙社区党支部", "kind": "branch", "parent_id": "t2",
         "category": "community"},
    ]
    for org in orgs:
        worker.register_organization(org)
    return orgs


def unique_name(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- integration: the real broker and databases ------------------------------------------------
TEST_HOME = REPO / ".orglife-test"


@pytest.fixture(scope="session")
def rabbit():
    """A private RabbitMQ node for the whole run (or ORGLIFE_TEST_AMQP_URI's broker)."""
    from orglife.broker import PrivateBroker, ensure_rabbitmq_installed
    ensure_rabbitmq_installed()
    broker = PrivateBroker(TEST_HOME)
    was_running = broker.running()
    broker.start()
    yield broker
    if not was_running:
        broker.stop()


@pytest.fixture
def vhost_uri(rabbit):
    """A fresh vhost per test: no queue or message leaks from one test into the next."""
    name = unique_name("vh")
    rabbit.create_vhost(name)
    yield rabbit.amqp_uri.rstrip("/") + "/" + name
    rabbit.delete_vhost(name)


@pytest.fixture
def container_factory(vhost_uri):
    """nameko's fixture of the same name, made to depend on the vhost: pytest tears fixtures
    down in reverse, so every container is killed before its vhost is deleted."""
    from nameko.containers import ServiceContainer
    containers = []

    def make(service_cls, config):
        container = ServiceContainer(service_cls, config)
        containers.append(container)
        return container

    yield make
    for container in containers:
        try:
            container.kill()
        except Exception:  # already dead
            pass


def service_config(service, amqp_uri, db_url, tmp_path, subscriptions=None, **extra):
    from orglife.common.config import Settings
    settings = Settings(home=tmp_path, secret=SECRET, now=FIXED_NOW, db_urls={service: db_url})
    config = settings.nameko_config(service, amqp_uri)
    if subscriptions is not None:
        config["ORGLIFE_SUBSCRIPTIONS"] = subscriptions
    config.update(extra)
    return config


@pytest.fixture
def rpc_proxy(vhost_uri):
    """ClusterRpcProxy factory carrying a token (context data `authorization`)."""
    from nameko.standalone.rpc import ClusterRpcProxy
    proxies = []

    def make(role="county_admin", org_id=None, authorization="default", timeout=30):
        context = {} if authorization is None else {
            "authorization": bearer(role, org_id) if authorization == "default" else authorization}
        proxy = ClusterRpcProxy({"AMQP_URI": vhost_uri}, context_data=context, timeout=timeout)
        proxies.append(proxy)
        return proxy.start()

    yield make
    for proxy in proxies:
        proxy.stop()


def wait_for(predicate, timeout=20.0, interval=0.05, message="condition"):
    """Poll until `predicate()` is truthy (returns it) or fail after `timeout` seconds."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        eventlet.sleep(interval)


class PeerQueue:
    """A plain-kombu peer (not nameko): its own queue bound to an exchange before events flow."""

    def __init__(self, amqp_uri, exchange, routing_keys, name=None):
        from kombu import Connection, Queue
        from orglife.common.topology import event_exchange
        self.connection = Connection(amqp_uri)
        self.queue = Queue(name or unique_name("peer"), durable=True)(self.connection.channel())
        self.queue.declare()
        source = exchange.split(".")[0]
        event_exchange(source)(self.connection.channel()).declare()
        for key in routing_keys:
            self.queue.bind_to(exchange=exchange, routing_key=key)

    def drain(self, count, timeout=20.0):
        """Get `count` messages (decoded JSON bodies), acking each."""
        import json
        bodies = []

        def more():
            while True:
                message = self.queue.get(no_ack=False)
                if message is None:
                    return len(bodies) >= count
                bodies.append(json.loads(message.body))
                message.ack()
        wait_for(more, timeout=timeout, message=f"{count} messages on {self.queue.name}")
        return bodies

    def close(self):
        self.connection.release()


def publish_raw(amqp_uri, exchange, routing_key, body, content_type="application/json",
                headers=None):
    """Publish like any AMQP client would (persistent, confirmed)."""
    from kombu import Connection, Producer
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        Producer(conn.channel()).publish(
            body if isinstance(body, (bytes, str)) else __import__("json").dumps(body),
            exchange=exchange, routing_key=routing_key, content_type=content_type,
            content_encoding="utf-8", delivery_mode=2, headers=headers or {})


# -- meetings ---------------------------------------------------------------------------------
@pytest.fixture
def meetings_store(tmp_path):
    from services.meetings.models import backbone
    return LocalStore(migrated_sqlite(tmp_path, "meetings"), "meetings", backbone)


@pytest.fixture
def meetings_worker(meetings_store, clock):
    """A MeetingsService worker on a real SQLite database."""
    from orglife.common.rules import load_rules
    from services.meetings.registry import RosterCache
    from services.meetings.service import MeetingsService
    rosters = RosterCache()  # one per service instance, shared by its workers

    def make(role="county_admin", org_id=None):
        return worker_factory(MeetingsService, store=meetings_store, auth=auth_as(role, org_id),
                              clock=clock, rules=load_rules(), rosters=rosters)
    return make


def org_events(version=1):
    """organization_registered envelopes of a small county (paths as members sends them)."""
    from orglife.common.envelope import Envelope
    orgs = [("c1", "青山县", "county", None, None), ("t1", "石桥镇", "township", "c1", None),
            ("t2", "白沙乡", "township", "c1", None),
            ("b1", "石桥村党支部", "branch", "t1", "village"),
            ("g1", "第一党小组", "group", "b1", None),
            ("b2", "白沙社区党支部", "branch", "t2", "community"),
            ("b3", "宏达公司党支部", "branch", "t1", "enterprise")]
    paths = {"c1": ["c1"]}
    out = []
    for org_id, name, kind, parent, category in orgs:
        paths[org_id] = paths[parent] + [org_id] if parent else [org_id]
        out.append(Envelope.new("members", "organization_registered", {
            "org_id": org_id, "name": name, "kind": kind, "parent_id": parent,
            "category": category, "version": version, "path": paths[org_id]}))
    return out


def member_event(member_id, branch_id="b1", version=1, event_type=None, **fields):
    from orglife.common.envelope import Envelope
    data = {"member_id": member_id, "name": f"党员{member_id}", "branch_id": branch_id,
            "group_id": None, "status": "formal", "mobile": False, "mobile_location": None,
            "committee_member": False, "no_vote": False, "phone": None, "email": None,
            "joined_on": "2000-01-01", "version": version, **fields}
    kind = event_type or ("member_registered" if version == 1 else "member_updated")
    if kind == "member_transferred":
        return Envelope.new("members", kind, {"member": data, "from_branch_id": None,
                                              "to_branch_id": branch_id})
    return Envelope.new("members", kind, data)


def village_branch_events():
    """b1: nine formal voting members (m1-m3 committee, m1-m4 in g1), one probationary,
    one no_vote; b2: n1 (mobile) and n2; b3: e1, no committee."""
    events = org_events()
    for n in range(1, 10):
        events.append(member_event(f"m{n}", committee_member=n <= 3,
                                   group_id="g1" if n <= 4 else None))
    events.append(member_event("p1", status="probationary"))
    events.append(member_event("x1", no_vote=True))
    events.append(member_event("n1", "b2", mobile=True, mobile_location="广东省深圳市"))
    events.append(member_event("n2", "b2"))
    events.append(member_event("e1", "b3"))
    return events
