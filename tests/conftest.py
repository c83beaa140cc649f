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

from orglife.common.auth import AuthContext, mint_token  # noqa: E402
from orglife.common.clock import Clock  # noqa: E402
from orglife.common.db import UnitOfWork, make_engine, session_factory  # noqa: E402
from orglife.common.migrate import upgrade  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECRET = "test-secret-not-for-deployment-0123456789"
FIXED_NOW = "2026-11-20T10:00:00+08:00"


BROWSER_TEST = "tests/browser/test_in_chromium.py::test_the_dashboard_in_a_real_browser"


def pytest_collection_modifyitems(session, config, items):
    """The browser tests run in a process of their own: it is started as soon as collection
    ends and its test is moved last, so that it runs alongside the rest of the suite."""
    browser = [item for item in items if item.nodeid == BROWSER_TEST]
    if browser and len(items) > 1:
        items[:] = [item for item in items if item.nodeid != BROWSER_TEST] + browser


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    if any(item.nodeid == BROWSER_TEST for item in session.items) and len(session.items) > 1:
        from tests.browser.test_in_chromium import BrowserRun
        BrowserRun.start()


def pytest_sessionfinish(session, exitstatus):
    import sys
    module = sys.modules.get("tests.browser.test_in_chromium")
    if module is not None:
        module.BrowserRun.stop()


def bearer(role="county_admin", org_id=None, sub="tester"):
    return "Bearer " + mint_token(SECRET, sub, role, org_id)


def auth_as(role="county_admin", org_id=None):
    return AuthContext(SECRET, bearer(role, org_id))


class LocalStore:
    """The `store` dependency over a real SQLite file, for worker_factory unit tests."""

    def __init__(self, url, service, backbone, clock=None):
        self.engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        # as the service's Store: a reading unit of work takes no write lock on SQLite
        self.read_sessions = session_factory(self.engine.execution_options(
            sqlite_begin="DEFERRED"))
        self.service = service
        self.backbone = backbone
        self.clock = clock or Clock("Asia/Shanghai", FIXED_NOW)

    def __call__(self):
        return UnitOfWork(self.sessions, self.service, self.backbone, clock=self.clock)

    def read(self):
        return UnitOfWork(self.read_sessions, self.service, self.backbone, clock=self.clock)

    def change(self, use_case):
        from orglife.common.store import StoreHandle
        return StoreHandle.change(self, use_case)

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


def service_config(service, amqp_uri, db_url, tmp_path, system=None, **extra):
    """A container's config; `system` replaces orglife/system.py's declaration (a toy or a
    test consumer declared beside the real services)."""
    from orglife.common.config import Settings
    settings = Settings(home=tmp_path, secret=SECRET, now=FIXED_NOW, db_urls={service: db_url})
    config = settings.nameko_config(service, amqp_uri)
    if system is not None:
        config["ORGLIFE_SYSTEM"] = system
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


# -- PostgreSQL ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_cluster():
    """The private PostgreSQL cluster of the test runs (started once, kept for the session)."""
    from orglife.postgres import PrivateCluster
    cluster = PrivateCluster(REPO / ".orglife-test" / "pg")
    was_running = cluster.running()  # another session's (or a developer's): left running
    cluster.start()
    yield cluster
    if not was_running:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    """A fresh database on it per test."""
    name = unique_name("db").replace("-", "_")
    pg_cluster.create_database(name)
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh database on SQLite, then on PostgreSQL: a test taking it runs on both (the
    migrations' tests, on databases that already hold rows)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    return request.getfixturevalue("pg_url")
