"""A private three-node RabbitMQ cluster (orglife/cluster.py) and what orglife needs of it:
quorum consumer and parking queues with a delivery limit (a message that kills its consumer
every time is parked, not looped), and services that carry on through the kill -9 of the
node leading their queues (kombu failover URLs, `a;b;c`).

One cluster for the module (its first start forms it: ~1 min here; later starts ~15 s), a
vhost per test, everything stopped at the end, checked."""
import json
from urllib.parse import quote

import eventlet
import psutil
import pytest
from kombu import Connection

from orglife.cluster import RPC_POLICY, RabbitCluster, start_kept
from orglife.common.envelope import Envelope
from orglife.common.topology import declare_topology
from orglife.system import SYSTEM
from tests.conftest import REPO, publish_raw, service_config, unique_name, wait_for
from tests.integration.test_backbone import (
    TOPOLOGY, LedgerService, RpcAdmin, applied_rows, ledger_metadata,
)

pytestmark = pytest.mark.integration

CLUSTER_HOME = REPO / ".orglife-test" / "cluster"


def _started() -> RabbitCluster:
    """The kept cluster started again, or a new one formed (orglife.cluster.start_kept)."""
    return start_kept(CLUSTER_HOME, 3, say=print)


@pytest.fixture(scope="module")
def cluster():
    cluster = None
    try:
        cluster = _started()
        # the home (and its formed cluster) is kept between runs to save its first formation;
        # queues a previous run declared on "/" may carry other arguments than this code's
        for queue in cluster.queues("/"):
            cluster._api("DELETE", f"queues/%2F/{quote(queue['name'], safe='')}")
        yield cluster
    finally:
        (cluster or RabbitCluster(CLUSTER_HOME, 3)).stop()
    leftovers = [proc for proc in psutil.process_iter(["name"])
                 if proc.info["name"] in ("beam.smp", "epmd")
                 and _home_of(proc).startswith(str(cluster.root))]
    assert leftovers == [], leftovers


def _home_of(proc) -> str:
    try:
        return proc.environ().get("HOME", "")
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


@pytest.fixture
def quorum(monkeypatch):
    """What `up --cluster` gives every process: quorum queues, a small delivery limit."""
    monkeypatch.setenv("ORGLIFE_QUORUM", "1")
    monkeypatch.setenv("ORGLIFE_DELIVERY_LIMIT", "3")


@pytest.fixture
def vhost(cluster):
    name = unique_name("vh")
    cluster.create_vhost(name)
    yield name
    cluster.delete_vhost(name)


def admin_uri(cluster, vhost, first=1):
    """The admin account's failover URI starting at node `first`."""
    uris = [node._uri(*node._admin_auth, vhost) for node in cluster.nodes]
    return ";".join(uris[first - 1:] + uris[:first - 1])


def test_three_nodes_form_one_cluster_and_consumer_queues_are_quorum(cluster, vhost, quorum):
    status = cluster.status()
    assert [(n["index"], n["process"], n["in_cluster"]) for n in status["nodes"]] == [
        (1, True, True), (2, True, True), (3, True, True)]
    with Connection(admin_uri(cluster, vhost)) as conn:
        declare_topology(conn.channel(), SYSTEM)
    queues = {q["name"]: q for q in cluster.queues(vhost)}
    names = {node.node_name for node in cluster.nodes}
    for sub in SYSTEM.subscriptions:
        consumer, parking = queues[sub.queue_name], queues[sub.parking_queue_name]
        assert consumer["type"] == parking["type"] == "quorum"
        assert consumer["leader"] in names and set(consumer["members"]) == names
    # all declared through node 1, yet led from every node (queue_leader_locator = balanced)
    leaders = {queues[sub.queue_name]["leader"] for sub in SYSTEM.subscriptions}
    assert leaders == names, leaders
    rpc = queues["rpc-members"]
    assert rpc["type"] == "classic" and set(rpc["members"]) == names  # mirrored by policy
    policy = cluster._api("GET", f"policies/{vhost}/{RPC_POLICY}").json()
    assert policy["definition"]["ha-mode"] == "all"


def test_a_message_that_kills_its_consumer_every_time_is_parked_after_the_limit(
        cluster, vhost, quorum):
    uri = admin_uri(cluster, vhost)
    with Connection(uri) as conn:
        declare_topology(conn.channel(), SYSTEM)
    sub = SYSTEM.subscription("meetings", "members")
    poison = Envelope.new("members", "member_registered", {"member_id": "p1", "name": "毒"})
    publish_raw(uri, "members.events", "member_registered", poison.to_json())
    deliveries = 0
    for _ in range(10):  # a consumer that dies holding the message: its connection goes
        conn = Connection(uri)
        message = conn.channel().basic_get(sub.queue_name, no_ack=False)
        conn.collect()  # drop the socket without closing the channel, as a kill -9 does
        if message is None:
            break
        deliveries += 1
        eventlet.sleep(0.2)
    assert deliveries == 4  # the first delivery and three redeliveries (x-delivery-limit 3)
    with Connection(uri) as conn:
        channel = conn.channel()
        message = wait_for(lambda: channel.basic_get(sub.parking_queue_name, no_ack=True),
                           message="the poison message parked")
    assert json.loads(message.body)["event_id"] == poison.event_id
    assert message.headers["x-first-death-reason"] == "delivery_limit"


def busiest_leader(cluster, vhost, queue):
    row = next(q for q in cluster.queues(vhost) if q["name"] == queue)
    return next(node for node in cluster.nodes if node.node_name == row["leader"])


def test_services_carry_on_when_the_leader_of_their_queues_is_killed(
        cluster, vhost, quorum, tmp_path):
    """members (RPC, outbox relay) and a nameko consumer connected through failover URIs
    that start at the leader's node; kill -9 that node mid-flow: every event is applied once,
    the node restarted rejoins and its queues get their third member back."""
    from nameko.containers import ServiceContainer
    from nameko.standalone.rpc import ClusterRpcProxy

    from orglife.common.db import make_engine
    from services.members.service import MembersService
    from tests.conftest import bearer, migrated_sqlite
    from tests.members.conftest import small_county

    sub = TOPOLOGY.subscription("ledger", "members")
    with Connection(admin_uri(cluster, vhost)) as conn:
        declare_topology(conn.channel(), TOPOLOGY)
    leader = busiest_leader(cluster, vhost, sub.queue_name)
    services_uri = admin_uri(cluster, vhost, first=leader.index)
    others = [n.index for n in cluster.nodes if n is not leader]
    client_uri = admin_uri(cluster, vhost, first=others[0])
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger_engine = make_engine(ledger_url)
    ledger_metadata.create_all(ledger_engine)
    containers = [
        ServiceContainer(MembersService, service_config(
            "members", services_uri, migrated_sqlite(tmp_path, "members"), tmp_path,
            system=TOPOLOGY)),
        ServiceContainer(LedgerService, service_config("ledger", services_uri, ledger_url,
                                                       tmp_path, system=TOPOLOGY)),
    ]
    proxy = ClusterRpcProxy({"AMQP_URI": client_uri}, timeout=60,
                            context_data={"authorization": bearer()})
    killed = False
    try:
        for container in containers:
            container.start()
        admin = RpcAdmin(proxy.start())
        small_county(admin)
        total = 60
        for n in range(total):
            if n == 20:
                leader.kill()  # the node the services are connected to, leading the queue
                killed = True
            admin.register_member({"member_id": f"m{n}", "name": f"成员{n}",
                                   "branch_id": "b1"})
        rows = wait_for(lambda: len(applied_rows(ledger_engine)) >= total
                        and applied_rows(ledger_engine), timeout=120,
                        message="every event applied after the failover")
        assert sorted(m for _, m in rows) == sorted(f"m{n}" for n in range(total))
        assert len({e for e, _ in rows}) == total  # each once
        assert all(c._died.ready() is False for c in containers)
        new_leader = busiest_leader(cluster, vhost, sub.queue_name)
        assert new_leader is not leader
        cluster.start_node(leader.index)
        killed = False
        names = {node.node_name for node in cluster.nodes}
        wait_for(lambda: set(next(q for q in cluster.queues(vhost)
                                  if q["name"] == sub.queue_name)["online"] or ()) == names,
                 timeout=60, interval=0.5, message="the restarted node back in the queue")
    finally:
        proxy.stop()
        for container in containers:
            container.kill()
        ledger_engine.dispose()
        if killed:
            cluster.start_node(leader.index)


def test_the_province_proof_two_instances_on_postgres_survive_a_node_and_an_instance_each(
        cluster, pg_cluster, tmp_path):
    """The issue's proof, small: a county's latest meetings through intake into two instances
    of every service on PostgreSQL; kill -9 the node leading the busiest queue (restarted a
    few seconds later) and one instance of each service. Meetings, attendance, participation
    records, scores, compliance, notifications and the mails the SMTP server received equal an
    undisturbed run's (one instance each, same cluster); nothing parked, nothing twice."""
    import sys
    sys.path.insert(0, str(REPO / "bench"))
    import province
    from synthetic import make_county
    from synthetic_meetings import make_meetings

    county = make_county(seed=7, townships=2, branches=12, members=260)
    reports = sorted(make_meetings(county), key=lambda r: r["held_at"])[-240:]
    now = province.now_after(reports)
    calm, _ = province.run(tmp_path / "calm", cluster, pg_cluster, county, reports,
                           instances=1, rate=40, timeout=150, now=now, say=lambda *_: None)
    assert len(calm["meetings"]) == len(reports) and sum(calm["mails"].values()) > 0
    blows = [(1.5, "kill-leader", None), (2.5, "kill-instance", "members"),
             (3.0, "kill-instance", "meetings"), (3.5, "kill-instance", "scoring"),
             (4.0, "kill-instance", "notifications"), (6.0, "start-node", None)]
    storm, figures = province.run(tmp_path / "storm", cluster, pg_cluster, county, reports,
                                  instances=2, rate=40, blows=blows, timeout=180, now=now,
                                  say=lambda *_: None)
    assert [action for _, action, _ in figures["blows"]] == [action for _, action, _ in blows]
    assert province.compare(calm, storm) == {
        "lost": 0, "differing": 0, "parked": 0, "rejected": 0, "duplicates": 0,
        "scores_differing": 0, "compliance_differing": 0, "notifications_differing": 0,
        "mails_differing": 0, "mails_sent_twice": 0, "mails_vs_delivered": 0,
        "sms_vs_delivered": 0, "robot_vs_delivered": 0, "sending_or_unknown": 0}, \
        province.notification_diff(calm, storm)
    assert all(node["in_cluster"] for node in cluster.status()["nodes"])
    print(f"\nproof: {len(storm['meetings'])} meetings, "
          f"{sum(storm['notifications'].values())} notifications "
          f"({dict(storm['statuses'])}), {sum(storm['mails'].values())} mails, "
          f"{storm['sms_received']} SMS, {storm['robot_received']} robot messages; "
          f"blows {figures['blows']}; storm {figures['meetings_per_s']} meetings/s, "
          f"freshness p95 {figures['freshness_p95_s']} s")


def test_the_accounts_one_shot_on_a_cluster_declares_quorum_queues_and_the_rpc_policy(
        cluster, vhost, quorum):
    """docker-compose.cluster.yml's `accounts` with ORGLIFE_QUORUM=1 and failover URIs."""
    from orglife.accounts import ManagementApi, provision
    node = cluster.nodes[0]
    api = ManagementApi(node.management_url, *node._admin_auth)
    provision(api, admin_uri(cluster, vhost), SYSTEM,
              {name: f"pw-{name}" for name in SYSTEM.names})
    queues = {q["name"]: q for q in cluster.queues(vhost)}
    assert {queues[sub.queue_name]["type"] for sub in SYSTEM.subscriptions} == {"quorum"}
    assert cluster._api("GET", f"policies/{vhost}/{RPC_POLICY}").status_code == 200
    members = ";".join(f"amqp://orglife-members:pw-members@127.0.0.1:{n.amqp_port}/{vhost}"
                       for n in reversed(cluster.nodes))
    publish_raw(members, "members.events", "member_registered", "{}")
    from kombu import Connection

    def waiting() -> int:
        # the queue's own count over AMQP: the management API's figure is a statistic
        # sampled every few seconds and lagged past 20 s on a loaded machine
        with Connection(admin_uri(cluster, vhost)) as conn:
            return conn.channel().queue_declare("members.events--meetings", passive=True)[1]
    wait_for(lambda: waiting() == 1, message="the event in meetings' quorum queue")


def test_up_cluster_postgres_scale_status_down(cluster, tmp_path):
    """`./orglife up --cluster 3 --postgres --scale members=2,meetings=2` in the cluster's home
    (the module's cluster is found running and reused; last in this file: `down` stops it),
    `status --json` shows the nodes, quorum queues and their leaders and every instance, `down`
    leaves no process of this home behind."""
    from tests.integration.test_stack import Stack
    stack = Stack(CLUSTER_HOME)
    try:
        stack.up("--cluster", "3", "--postgres", "--scale", "members=2,meetings=2")
        report = stack.json("status")
        names = {node.node_name for node in cluster.nodes}
        assert {(n["node"], n["process"], n["in_cluster"]) for n in report["cluster"]["nodes"]} \
            == {(name, True, True) for name in names}
        queues = {q["name"]: q for q in report["cluster"]["queues"]}
        for sub in SYSTEM.subscriptions:
            assert queues[sub.queue_name]["type"] == "quorum"
            assert queues[sub.queue_name]["leader"] in names
        # unacked counts too, from the cluster's management API ("settled" can be read off)
        assert all(row["unacked"] == 0 for row in report["queues"]), report["queues"]
        services = {s["service"]: s for s in report["services"]}
        assert services["members"]["instances"] == services["meetings"]["instances"] == 2
        assert all(s["answers"] for s in services.values())
        state = json.loads((CLUSTER_HOME / "province.json").read_text())
        assert state["cluster"] == 3  # a database and a role per service, remembered
        assert state["postgres"]["members"]["url"].startswith("postgresql+psycopg2://members:")
        stack("down")
    finally:
        stack.cleanup()
    home = str(CLUSTER_HOME)
    left = []
    for proc in psutil.process_iter(["name"]):
        try:
            env = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if env.get("ORGLIFE_HOME") == home or env.get("HOME", "").startswith(home) \
                or home in " ".join(proc.cmdline()):
            left.append((proc.pid, proc.info["name"]))
    assert left == [], left
