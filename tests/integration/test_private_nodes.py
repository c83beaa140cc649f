"""The private infrastructure: a RabbitMQ node per home folder and a PostgreSQL cluster.

These start real servers in temporary folders (not the suite's shared node), so they also prove
that two homes run side by side and that stopping leaves no process behind.
Works with or without eventlet's monkey patching (tests/conftest.py applies it).
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kombu
import psutil
import pytest
import requests

from orglife import broker as broker_module
from orglife.broker import BootstrapError, PrivateBroker, amqp_reachable, ensure_rabbitmq_installed
from orglife.postgres import PrivateCluster, ensure_postgres_installed



def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def node_processes(node: PrivateBroker) -> list[psutil.Process]:
    """Every live process of that node (wrapper, beam, its helpers, epmd): they share its HOME."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and \
                    proc.environ().get("HOME") == str(node.erlang_home):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def eventually(predicate, timeout=15.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- bootstrap errors (no server needed) --------------------------------------------------------

def test_missing_rabbitmq_without_root_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(broker_module, "RABBITMQ_SERVER", tmp_path / "no-such-server")
    monkeypatch.setattr(broker_module.os, "geteuid", lambda: 1000)
    with pytest.raises(BootstrapError, match="apt-get install -y rabbitmq-server"):
        ensure_rabbitmq_installed()


def test_missing_rabbitmq_without_apt_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(broker_module, "RABBITMQ_SERVER", tmp_path / "no-such-server")
    real_which = shutil.which
    monkeypatch.setattr(broker_module.shutil, "which",
                        lambda name, *a, **k: None if name == "apt-get" else real_which(name, *a, **k))
    with pytest.raises(BootstrapError, match="no apt-get"):
        ensure_rabbitmq_installed()


# --- RabbitMQ -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """Two private nodes in two homes, started (and stopped) concurrently to save time."""
    ensure_rabbitmq_installed()  # what `orglife test` installs; never skipped
    pair = [PrivateBroker(tmp_path_factory.mktemp(f"home{i}")) for i in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda node: node.start(), pair))
    yield pair
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda node: node.stop(), pair))


@pytest.mark.integration
def test_node_answers_amqp_and_management(nodes):
    node = nodes[0]
    assert node.running()
    assert amqp_reachable(node.amqp_uri)
    user, password = node._admin_auth
    assert not amqp_reachable(node.amqp_uri.replace(password, "wrong"))
    # No guest on our node (SPEC §7): its admin account is made with the node, 0600 secret.
    assert not amqp_reachable(node.amqp_uri.replace(f"{user}:{password}", "guest:guest"))
    for private in (node.accounts_file, node.config_file, node.root,
                    node.erlang_home / ".erlang.cookie"):  # the admin password, the cookie
        assert private.stat().st_mode & 0o077 == 0, private
    overview = requests.get(f"{node.management_url}/api/overview", auth=node._admin_auth,
                            timeout=5).json()
    assert overview["node"] == node.node_name

    queue = kombu.Queue(f"infra-{uuid.uuid4().hex[:8]}", auto_delete=True)
    with kombu.Connection(node.amqp_uri) as conn:
        bound = queue(conn.channel())
        bound.declare()
        conn.Producer().publish({"hello": "world"}, routing_key=queue.name, serializer="json")
        message = eventually(lambda: bound.get(no_ack=True), timeout=5, interval=0.05)
        assert message is not None and message.payload == {"hello": "world"}


@pytest.mark.integration
def test_vhost_user_and_queue_depth(nodes):
    node = nodes[0]
    vhost = f"vh-{uuid.uuid4().hex[:8]}"
    node.create_vhost(vhost)
    node.create_vhost(vhost)  # idempotent
    try:
        node.add_user("infra-user", "s3cret", vhost)
        uri = f"amqp://infra-user:s3cret@127.0.0.1:{node.amqp_port}/{vhost}"
        with kombu.Connection(uri) as conn:
            channel = conn.channel()
            kombu.Queue("depth-probe", durable=True)(channel).declare()
            producer = conn.Producer(channel)
            for n in range(3):
                producer.publish({"n": n}, routing_key="depth-probe", delivery_mode=2)

        def probe():
            return [q for q in node.queues(vhost) if q["name"] == "depth-probe"
                    and q["messages"] == 3]
        found = eventually(probe, timeout=3)  # depths are current, not sampled
        assert found, node.queues(vhost)
        assert found[0]["messages_ready"] == 3 and found[0]["consumers"] == 0
        assert "depth-probe" not in {q["name"] for q in node.queues("/")}
    finally:
        node.delete_vhost(vhost)
    node.delete_vhost(vhost)  # a missing vhost is not an error
    vhosts = requests.get(f"{node.management_url}/api/vhosts", auth=node._admin_auth,
                          timeout=5).json()
    assert vhost not in {v["name"] for v in vhosts}


@pytest.mark.integration
def test_two_homes_are_two_independent_nodes(nodes):
    first, second = nodes
    first_ports = {first.amqp_port, first.management_port, first.epmd_port, first.dist_port}
    second_ports = {second.amqp_port, second.management_port, second.epmd_port,
                    second.dist_port}
    assert len(first_ports) == 4 and len(second_ports) == 4
    assert not first_ports & second_ports
    assert first.node_name != second.node_name
    assert amqp_reachable(first.amqp_uri) and amqp_reachable(second.amqp_uri)

    first.create_vhost("only-on-first")
    try:
        vhosts = requests.get(f"{second.management_url}/api/vhosts", auth=second._admin_auth,
                              timeout=5).json()
        assert "only-on-first" not in {v["name"] for v in vhosts}
    finally:
        first.delete_vhost("only-on-first")


@pytest.mark.integration
def test_start_is_idempotent_and_state_is_found_by_a_new_object(nodes):
    node = nodes[0]
    began = time.monotonic()
    node.start()
    assert time.monotonic() - began < 2
    again = PrivateBroker(node.home)  # e.g. `orglife status` in another process
    assert again.running() and again.amqp_uri == node.amqp_uri
    assert again.management_url == node.management_url


@pytest.mark.integration
def test_stop_leaves_no_process_and_restart_reuses_ports(nodes):
    node = nodes[1]
    ports = (node.amqp_port, node.management_port, node.epmd_port, node.dist_port)
    assert node_processes(node), "the node should be running before the test"
    node.stop()
    assert not node.running()
    leftovers = node_processes(node)
    assert not leftovers, [(p.pid, p.name()) for p in leftovers]
    assert not any(listening(port) for port in ports)
    node.stop()  # stopping a stopped node is fine

    node.start()  # back up for the fixture's teardown; same ports from ports.json
    assert (node.amqp_port, node.management_port, node.epmd_port, node.dist_port) == ports
    assert amqp_reachable(node.amqp_uri)


@pytest.mark.integration
def test_start_right_after_a_kill_starts_a_new_node(nodes):
    """bench/chaos.py restarts the broker right after killing it: the killed node's last
    processes were still seen as the node, then vanished while `start` waited for them to
    answer, and it failed with "exited during start-up". Forced here: the node frozen
    (SIGSTOP, so it neither answers nor exits), `start` called, the node killed meanwhile."""
    import signal
    import threading
    node = nodes[1]
    beams = [p for p in node_processes(node) if p.name() == "beam.smp"]
    assert beams, "the node should be running before the test"
    for proc in beams:
        proc.send_signal(signal.SIGSTOP)
    killer = threading.Timer(1.5, lambda: [p.send_signal(signal.SIGKILL) for p in beams])
    killer.start()
    try:
        node.start()  # sees a node that does not answer; it dies meanwhile; starts anew
    finally:
        killer.cancel()
    assert amqp_reachable(node.amqp_uri)
    assert not any(p.pid == beam.pid for beam in beams for p in node_processes(node))


# --- PostgreSQL ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    """Not under tmp_path: every pytest session re-chmods /tmp/pytest-of-<user> to 0700, which
    locks the `postgres` account out of a running cluster when sessions overlap."""
    ensure_postgres_installed()
    folder = Path(tempfile.mkdtemp(prefix="orglife-pgtest-"))
    pg = PrivateCluster(folder / "data")
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.integration
@pytest.mark.postgres
def test_cluster_database_through_sqlalchemy(cluster):
    import sqlalchemy as sa

    assert cluster.running()
    cluster.create_database("infra_demo")
    cluster.create_database("infra_demo")  # idempotent
    engine = sa.create_engine(cluster.url("infra_demo"))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id serial PRIMARY KEY, name text)"))
            conn.execute(sa.text("INSERT INTO t (name) VALUES ('支部'), ('小组')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 2
            assert conn.execute(sa.text("SHOW fsync")).scalar_one() == "off"
            assert conn.execute(sa.text("SHOW max_connections")).scalar_one() == "300"
            assert conn.execute(sa.text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
    finally:
        engine.dispose()
    cluster.drop_database("infra_demo")
    cluster.drop_database("infra_demo")  # a missing database is not an error
    with pytest.raises(sa.exc.OperationalError):
        sa.create_engine(cluster.url("infra_demo")).connect()


@pytest.mark.integration
@pytest.mark.postgres
def test_cluster_stop_and_restart_on_the_same_port(cluster):
    port = cluster.port
    pid = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    cluster.stop()
    assert not cluster.running()
    assert not listening(port)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    cluster.stop()  # stopping a stopped cluster is fine
    again = PrivateCluster(cluster.datadir)  # port comes back from the data folder
    again.start()
    assert again.port == port and cluster.running()
    if os.geteuid() == 0:
        assert cluster.datadir.stat().st_uid != 0  # owned by postgres, as initdb requires
