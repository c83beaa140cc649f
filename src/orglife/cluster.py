"""A private RabbitMQ cluster of N nodes under the orglife home folder (a province's broker).

Each node is a `PrivateBroker` (orglife/broker.py) with its own folder, ports and Erlang home
under `<home>/rabbitmq-cluster/nodeK/`; what a cluster needs on top:

- one Erlang cookie, copied into every node's HOME (Erlang distribution refuses other nodes);
- one epmd port for all nodes (a node looks its peers up in the epmd of that port), so the
  epmd is the cluster's, not a node's: stopping or killing one node leaves it running, and it
  is stopped with the last node;
- one set of accounts (users live in the cluster's metadata, so every node must know the same
  passwords): `<home>/rabbitmq-cluster/accounts.json`;
- on the first start, node 1 boots alone and each other node is joined to it with
  `rabbitmqctl stop_app / reset / join_cluster / start_app`; later starts launch every node at
  once (a clustered node waits for its peers while it boots, so one at a time would stall);
- a policy mirroring nameko's RPC queues (`rpc-<service>`, classic queues: nameko declares
  them without arguments, and a quorum queue must be declared with `x-queue-type` every time)
  to every node, so that RPC survives the loss of the node they were declared on. Consumer and
  parking queues are quorum queues (`ORGLIFE_QUORUM=1`, orglife/common/topology.py); nameko's
  reply queues are auto-delete and belong to one connection: they stay classic and go with
  their client's connection.

Clients get every node's URI joined with `;` (kombu's failover URLs): a connection that fails
is retried on the next node.

    python -m orglife.cluster start|stop|status [--nodes 3] [--home DIR]
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psutil

from .broker import (
    ADMIN_USER, RABBITMQ_SERVER, START_TIMEOUT, STOP_TIMEOUT, BootstrapError, PrivateBroker,
    ensure_rabbitmq_installed, free_ports, port_in_use, wait_dead,
)
from .common.topology import DEFAULT_DELIVERY_LIMIT

RABBITMQCTL = RABBITMQ_SERVER.with_name("rabbitmqctl")
CLUSTER_DIR = "rabbitmq-cluster"
# Every process declares its queues on its first node, and RabbitMQ's default puts a quorum
# queue's leader there ("client-local"): all leaders, and so all of the work, on node 1. A
# setting of the node, not a queue argument (queues declared without it stay declarable).
LEADER_LOCATOR = "queue_leader_locator = balanced\n"
RPC_POLICY = "orglife-rpc-mirrored"
# nameko's RPC queues (classic: nameko declares them without arguments) on every node
RPC_POLICY_DEFINITION = {"pattern": r"^rpc-", "apply-to": "queues", "priority": 0,
                         "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"}}


def _say(message: str) -> None:
    print(f"orglife: {message}", file=sys.stderr, flush=True)


class ClusterNode(PrivateBroker):
    """One node of a `RabbitCluster`: a PrivateBroker in `<cluster>/nodeK`, sharing the
    cluster's cookie, epmd port and accounts."""

    PORT_NAMES = ("amqp", "dist", "management")

    def __init__(self, cluster: "RabbitCluster", index: int):
        super().__init__(cluster.home)
        self.cluster = cluster
        self.index = index
        self.place(cluster.root / f"node{index}")

    def __repr__(self) -> str:
        return f"<ClusterNode {self.index} {self.node_name}>"

    def _default_node_name(self) -> str:
        return f"{self.cluster.name_prefix}-n{self.index}@localhost"

    @property
    def accounts_file(self) -> Path:
        return self.cluster.root / "accounts.json"

    def _ensure_state(self) -> dict:
        state = dict(self._load_state())
        state["node"] = state.get("node") or self._default_node_name()
        saved = [state.get(name) for name in self.PORT_NAMES]
        if not all(saved) or any(port_in_use(port) for port in saved):
            state.update(zip(self.PORT_NAMES, free_ports(len(self.PORT_NAMES))))
        state["epmd"] = self.cluster.epmd_port
        self._save_state(state)
        return state

    def _write_config(self, state: dict) -> None:
        super()._write_config(state)
        from orglife.common.config import write_private
        write_private(self.erlang_home / ".erlang.cookie", self.cluster.cookie)
        with open(self.config_file, "a", encoding="utf-8") as conf:
            conf.write(LEADER_LOCATOR)

    def _stop_epmd(self) -> None:
        """The epmd is the cluster's: a node stopping (or restarting) leaves it to its peers."""

    def launch(self) -> None:
        """Start the node's process without waiting for it (`wait_ready` waits)."""
        ensure_rabbitmq_installed()
        if self.running():
            return
        state = self._ensure_state()
        self._write_config(state)
        with open(self.server_log, "ab") as log:
            log.write(f"\n--- orglife start {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n"
                      .encode())
            log.flush()
            self._proc = subprocess.Popen(
                [str(RABBITMQ_SERVER)], cwd=self.root, env=self._environment(state),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.pid_file.write_text(f"{self._proc.pid}\n")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        self._wait_ready(timeout, launched=True)

    def kill(self) -> None:
        """kill -9 of the whole node (a machine lost); its data stays for a restart."""
        pgid = self._pid()
        if pgid is not None:
            os.killpg(pgid, signal.SIGKILL)
        self.reap(time.monotonic() + 15)

    def reap(self, deadline: float) -> None:
        """Wait (until `deadline`) for the node's processes to be gone; reap our child."""
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._proc = None

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """rabbitmqctl against this node (same cookie and epmd port)."""
        state = self._load_state()
        result = subprocess.run([str(RABBITMQCTL), "-n", state["node"], *args],
                                env=self._environment(state), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise BootstrapError(f"rabbitmqctl {' '.join(args)} on {state['node']} failed "
                                 f"(exit {result.returncode}):\n{result.stdout.strip()[-2000:]}")
        return result.stdout


class RabbitCluster:
    """N private RabbitMQ nodes joined into one cluster, under `<home>/rabbitmq-cluster/`."""

    def __init__(self, home: Path | str, size: int | None = None):
        self.home = Path(home).expanduser().resolve()
        self.root = self.home / CLUSTER_DIR
        self.state_file = self.root / "cluster.json"
        state = self._load()
        self.size = int(size or state.get("size") or 3)
        if state.get("size") and size and int(size) != int(state["size"]):
            raise BootstrapError(
                f"{self.root} holds a cluster of {state['size']} nodes, not {size}: use "
                f"--cluster {state['size']}, or remove that folder to start afresh")
        if self.size < 1:
            raise BootstrapError("a cluster needs at least one node")
        self.nodes = [ClusterNode(self, index) for index in range(1, self.size + 1)]

    # -- state: size, epmd port, cookie prefix, whether the nodes were joined --------------------
    def _load(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_file)

    def exists(self) -> bool:
        return self.state_file.exists()

    @property
    def name_prefix(self) -> str:
        import hashlib
        return "orglife-" + hashlib.sha1(str(self.home).encode()).hexdigest()[:8]

    @property
    def epmd_port(self) -> int:
        state = self._load()
        port = state.get("epmd")
        if not port or (port_in_use(port) and not self._our_epmd(port)):
            port = free_ports(1)[0]
            self._save(dict(state, size=self.size, epmd=port))
        return int(port)

    @property
    def cookie(self) -> str:
        from orglife.common.config import write_private
        path = self.root / "erlang.cookie"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            write_private(path, secrets.token_hex(20))
        return path.read_text().strip()

    def _our_epmd(self, port: int) -> bool:
        for proc in psutil.process_iter(["name"]):
            try:
                if proc.info["name"] == "epmd" and \
                        proc.environ().get("ERL_EPMD_PORT") == str(port):
                    return True
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return False

    # -- life cycle -------------------------------------------------------------------------
    def running(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.running()]

    def start(self, timeout: float = START_TIMEOUT * 2, say=_say) -> "RabbitCluster":
        """Start every node that is not running; join them on the first start; return once
        each answers and the cluster lists all of them."""
        ensure_rabbitmq_installed()
        state = self._load()
        self._save(dict(state, size=self.size, epmd=self.epmd_port))
        self.cookie  # noqa: B018 - made before any node reads it
        if not state.get("formed"):
            first, *others = self.nodes
            say(f"starting RabbitMQ node {first.node_name} ...")
            first.launch()
            first.wait_ready(timeout)
            for node in others:
                say(f"starting RabbitMQ node {node.node_name} and joining it to the cluster ...")
                node.launch()
                node.wait_ready(timeout)
                self.join(node, first)
            self._save(dict(self._load(), formed=True))
        else:
            waiting = [node for node in self.nodes if not node.running()]
            for node in waiting:
                node.launch()
            for node in waiting:
                node.wait_ready(timeout)
        self.apply_policies()
        self.wait_clustered(timeout)
        return self

    @staticmethod
    def join(node: ClusterNode, to: ClusterNode) -> None:
        node.ctl("stop_app")
        node.ctl("reset")
        node.ctl("join_cluster", to.node_name)
        node.ctl("start_app")
        node.wait_ready(START_TIMEOUT)

    def start_node(self, index: int, timeout: float = START_TIMEOUT * 2) -> None:
        """Start one stopped (or killed) node again; it rejoins its cluster by itself."""
        node = self.node(index)
        node.launch()
        node.wait_ready(timeout)

    def kill_node(self, index: int) -> None:
        self.node(index).kill()

    def node(self, index: int) -> ClusterNode:
        return self.nodes[index - 1]

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM every node at once (SIGKILL after `timeout`), then the cluster's epmd.
        Stopping all together keeps restarts simple: they start all together too."""
        groups = [(node, node._pid()) for node in self.nodes]
        for _, pgid in groups:
            if pgid is not None:
                PrivateBroker._signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(node.running() for node in self.nodes) and time.monotonic() < deadline:
            time.sleep(0.2)
        for node, pgid in groups:
            if pgid is not None and node.running():
                PrivateBroker._signal_group(pgid, signal.SIGKILL)
        for node in self.nodes:
            node.reap(deadline + 5)
            node.pid_file.unlink(missing_ok=True)
        self.stop_epmd()

    def stop_epmd(self) -> None:
        port = str(self._load().get("epmd") or "")
        homes = {str(node.erlang_home) for node in self.nodes}
        victims = []
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] != "epmd":
                continue
            try:
                env = proc.environ()
                if (port and env.get("ERL_EPMD_PORT") == port) or env.get("HOME") in homes:
                    proc.kill()
                    victims.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        wait_dead(victims, timeout=5)

    # -- reaching it --------------------------------------------------------------------------
    def answering_node(self) -> ClusterNode:
        for node in self.nodes:
            if node.running():
                try:
                    import requests
                    if requests.get(f"{node.management_url}/api/overview",
                                    auth=node._admin_auth, timeout=3).status_code == 200:
                        return node
                except Exception:  # noqa: BLE001 - try the next node
                    continue
        raise BootstrapError(f"no node of the cluster in {self.root} answers")

    def _api(self, method: str, path: str, **kwargs):
        return self.answering_node()._api(method, path, **kwargs)

    def uri(self, user: str, password: str, vhost: str = "/") -> str:
        """Every node's URI for this account, `;`-joined (kombu failover)."""
        return ";".join(node._uri(user, password, vhost) for node in self.nodes)

    @property
    def amqp_uri(self) -> str:
        """The admin account on every node (for `up`, `status`, the CLI and the tests)."""
        node = self.nodes[0]
        return self.uri(ADMIN_USER, node._admin_password())

    def service_account(self, service: str, vhost: str = "/", system=None) -> str:
        """As PrivateBroker.service_account, with every node's address."""
        node = self.answering_node()
        node.service_account(service, vhost, system)
        user = f"orglife-{service}"
        return self.uri(user, node._password(user), vhost)

    def peer_account(self, name: str, vhost: str = "/") -> str:
        node = self.answering_node()
        node.peer_account(name, vhost)
        user = f"peer-{name}"
        return self.uri(user, node._password(user), vhost)

    def create_vhost(self, name: str) -> None:
        self.answering_node().create_vhost(name)
        self.apply_policies(name)

    def delete_vhost(self, name: str) -> None:
        self.answering_node().delete_vhost(name)

    def apply_policies(self, vhost: str = "/") -> None:
        """nameko's RPC queues (classic) mirrored to every node, synchronised automatically."""
        self._api("PUT", f"policies/{quote(vhost, safe='')}/{RPC_POLICY}",
                  json=RPC_POLICY_DEFINITION)

    def cluster_nodes(self) -> list[dict]:
        """The nodes the cluster's metadata knows, and whether each is running."""
        return [{"name": row["name"], "running": bool(row.get("running"))}
                for row in self._api("GET", "nodes", params={"columns": "name,running"}).json()]

    def wait_clustered(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        wanted = {node.node_name for node in self.nodes}
        while True:
            try:
                known = {row["name"] for row in self.cluster_nodes() if row["running"]}
            except Exception:  # noqa: BLE001 - a node still starting
                known = set()
            if wanted <= known:
                return
            if time.monotonic() > deadline:
                raise BootstrapError(f"the cluster lists {sorted(known)}, not {sorted(wanted)}")
            time.sleep(0.5)

    def queues(self, vhost: str = "/") -> list[dict]:
        """Every queue of `vhost`: name, type (classic/quorum), leader (quorum) or node,
        members (quorum), online members, messages, consumers."""
        rows = self._api("GET", f"queues/{quote(vhost, safe='')}", params={
            "columns": "name,type,leader,node,members,online,messages,messages_ready,"
                       "consumers,slave_nodes,synchronised_slave_nodes"}).json()
        out = []
        for row in rows:
            out.append({
                "name": row["name"], "type": row.get("type", "classic"),
                "leader": row.get("leader") or row.get("node"),
                "members": row.get("members") or [row.get("node")]
                + list(row.get("slave_nodes") or []),
                "online": row.get("online"),
                "messages": row.get("messages") or 0,
                "messages_ready": row.get("messages_ready") or 0,
                "consumers": row.get("consumers") or 0,
            })
        return sorted(out, key=lambda row: row["name"])

    def status(self, vhost: str = "/") -> dict:
        nodes = []
        try:
            known = {row["name"]: row["running"] for row in self.cluster_nodes()}
        except BootstrapError:
            known = {}
        for node in self.nodes:
            amqp = None
            try:
                amqp = node.amqp_port
            except RuntimeError:
                pass
            nodes.append({"node": node.node_name, "index": node.index, "amqp_port": amqp,
                          "process": node.running(), "in_cluster": known.get(node.node_name,
                                                                           False)})
        try:
            queues = self.queues(vhost)
        except BootstrapError:
            queues = []
        return {"nodes": nodes, "queues": queues}


# -- PostgreSQL: a database and a role per service ------------------------------------------------
def start_kept(home: Path | str, size: int, say=_say) -> RabbitCluster:
    """The cluster kept under `home` started again or, when one of its nodes will not start
    from what it saved (RabbitMQ 3.10 has refused its own feature-flag state after runs that
    killed nodes: `incompatible_feature_flags`), its nodes' folder removed and a new cluster
    formed, as on a clean clone. Only `<home>/rabbitmq-cluster` goes; the rest of `home`
    (a benchmark's PostgreSQL, say) stays."""
    cluster = RabbitCluster(home, size)
    try:
        return cluster.start(say=say)
    except BootstrapError as error:
        say(f"the kept cluster did not start ({str(error).splitlines()[0]}): forming anew")
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
    return RabbitCluster(home, size).start(say=say)


def service_databases(pg, prefix: str, services) -> dict[str, dict]:
    """On a private PostgreSQL (orglife/postgres.py): for each service a role of its own that
    owns a database of its own, reachable by no other service's role (as
    deploy/postgres-init.sh makes them for docker-compose). Returns per service its
    `database`, `role` and the SQLAlchemy `url` (with the role's password)."""
    from psycopg2 import sql
    out = {}
    conn = pg._admin_connection()
    try:
        with conn.cursor() as cur:
            for service in services:
                name = f"{prefix}_{service}" if prefix else service
                password = secrets.token_hex(16)
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(password)))
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(name), sql.Identifier(name)))
                cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                    sql.Identifier(name)))
                out[service] = {
                    "database": name, "role": name,
                    "url": f"postgresql+psycopg2://{quote(name, safe='')}:{password}@127.0.0.1:"
                           f"{pg.port}/{quote(name, safe='')}"}
    finally:
        conn.close()
    return out


def drop_service_databases(pg, databases: dict[str, dict]) -> None:
    """Drop what `service_databases` made (their sessions are ended)."""
    from psycopg2 import sql
    conn = pg._admin_connection()
    try:
        with conn.cursor() as cur:
            for entry in databases.values():
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(entry["database"])))
                cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(
                    sql.Identifier(entry["role"])))
    finally:
        conn.close()


# -- quorum queues: what the deployment asks for --------------------------------------------------
def quorum_env(size: int, delivery_limit: int = DEFAULT_DELIVERY_LIMIT) -> dict[str, str]:
    """The environment that makes every process declare quorum consumer and parking queues
    (orglife/common/topology.py reads it)."""
    return {"ORGLIFE_QUORUM": "1" if size > 1 else "0",
            "ORGLIFE_DELIVERY_LIMIT": str(delivery_limit)}


# -- `orglife up --cluster N --postgres`: what a home runs, remembered in ORGLIFE_HOME ------------
PROVINCE_FILE = "province.json"  # mode 0600: it holds the services' database passwords


def province_state(home: Path) -> dict:
    try:
        return json.loads((Path(home) / PROVINCE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _save_province(home: Path, state: dict) -> None:
    from orglife.common.config import write_private
    Path(home).mkdir(parents=True, exist_ok=True)
    write_private(Path(home) / PROVINCE_FILE, json.dumps(state, indent=2))


def private_postgres(home: Path):
    from orglife.postgres import PrivateCluster
    return PrivateCluster(Path(home) / "pg", fast=False)


def start_province(settings, nodes: int = 1, postgres: bool = False, say=_say):
    """What `up --cluster N --postgres` adds before the usual start: N private RabbitMQ nodes
    joined into one cluster (quorum queues from then on, in this process and in every service
    it starts), and/or a private PostgreSQL with a database and a role per service. Remembered
    in `<home>/province.json`, so `status`, `down`, `restart` and later `up`s find them.
    Returns the settings with the services' database URLs (an explicit
    ORGLIFE_<SERVICE>_DB_URL still wins)."""
    from orglife.common.system import load_system
    state = province_state(settings.home)
    nodes = nodes if nodes > 1 else int(state.get("cluster") or 1)  # what it ran last time
    postgres = postgres or "postgres" in state
    if nodes <= 1 and not postgres:
        return settings  # the single-node default: nothing to add
    if nodes > 1 and not settings.amqp_uri:
        cluster = RabbitCluster(settings.home, nodes)
        state["cluster"] = nodes
        _save_province(settings.home, state)  # first: `down` stops a half-started cluster too
        say(f"starting a {nodes}-node RabbitMQ cluster under {cluster.root} ...")
        cluster.start(say=say)
    if postgres:
        pg = private_postgres(settings.home)
        state.setdefault("postgres", {})
        _save_province(settings.home, state)
        say(f"starting PostgreSQL under {pg.datadir} ...")
        pg.start()
        services = [s.name for s in load_system(settings.system).services if s.database]
        known = state.get("postgres") or {}
        if set(known) != set(services):
            known = service_databases(pg, "", services)
        state["postgres"] = known
    _save_province(settings.home, state)
    os.environ.update(province_env(settings))
    return with_province(settings)


def home_cluster(settings) -> RabbitCluster | None:
    """The home's cluster, when `up --cluster` made one and no ORGLIFE_AMQP_URI overrides it."""
    nodes = province_state(settings.home).get("cluster")
    if not nodes or settings.amqp_uri:
        return None
    return RabbitCluster(settings.home, nodes)


def with_province(settings):
    """`settings` with the home's PostgreSQL URLs where the environment names none."""
    import dataclasses
    databases = province_state(settings.home).get("postgres") or {}
    urls = {service: entry["url"] for service, entry in databases.items()}
    return dataclasses.replace(settings, db_urls={**urls, **settings.db_urls})


def province_env(settings, service: str | None = None) -> dict[str, str]:
    """Environment for the home's processes: quorum queues on a cluster, and `service`'s own
    database URL (only its own: SPEC §7) unless the environment sets one."""
    state = province_state(settings.home)
    env = {}
    if state.get("cluster") and not os.environ.get("ORGLIFE_QUORUM"):
        env.update(quorum_env(int(state["cluster"])))
    entry = (state.get("postgres") or {}).get(service or "")
    key = f"ORGLIFE_{(service or '').upper()}_DB_URL"
    if entry and not os.environ.get(key):
        env[key] = entry["url"]
    return env


def stop_province(settings, say=_say) -> None:
    """`down`: the home's cluster and PostgreSQL (their data stays for the next `up`)."""
    state = province_state(settings.home)
    cluster = home_cluster(settings)
    if cluster is not None and cluster.running():
        say("stopping the RabbitMQ cluster")
        cluster.stop()
    if "postgres" in state:
        pg = private_postgres(settings.home)
        if pg.running():
            say("stopping PostgreSQL")
            pg.stop()


def province_status(settings) -> dict | None:
    """For `status`: the cluster's nodes and its queues (type, leader, members), when any."""
    cluster = home_cluster(settings)
    if cluster is None:
        return None
    from orglife.stack import amqp_vhost
    return cluster.status(amqp_vhost(cluster.amqp_uri.split(";")[0]))


def cluster_tables(report: dict) -> list:
    """`orglife status`: the nodes, and each queue's type, leader and members up."""
    from orglife.cli.common import Column, items_table

    def yes(value) -> str:
        return "[green]yes[/]" if value else "[red]no[/]"
    tables = [items_table(report["nodes"], [
        "node", Column("process", "running", format=yes),
        Column("in_cluster", "in the cluster", format=yes), Column("amqp_port", "AMQP port",
                                                                   format=str)],
        "RabbitMQ cluster")]
    queues = [q for q in report["queues"] if not q["name"].startswith("rpc.reply-")]
    rows = [dict(q, up=f"{len(q['online'] or q['members'] or [])}/{len(q['members'] or [])}")
            for q in queues]
    replies = len(report["queues"]) - len(queues)
    if replies:  # nameko's reply queues: one per caller connection, on the caller's node
        rows.append({"name": f"rpc.reply-… ({replies}, one per RPC client)", "type": "classic",
                     "leader": "each on its client's node", "up": "", "messages": ""})
    tables.append(items_table(rows, ["name", "type", "leader", Column("up", "members up"),
                                     Column("messages", format=str)],
                              "queues: type and leader (quorum queues survive a node)"))
    return tables


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(description="A private RabbitMQ cluster under "
                                                 "ORGLIFE_HOME/rabbitmq-cluster")
    parser.add_argument("command", choices=("start", "stop", "status", "kill", "start-node"))
    parser.add_argument("--nodes", type=int, default=None)
    parser.add_argument("--node", type=int, default=None, help="for kill / start-node")
    parser.add_argument("--home", default=os.environ.get("ORGLIFE_HOME") or ".orglife")
    args = parser.parse_args(argv)
    cluster = RabbitCluster(args.home, args.nodes)
    if args.command == "start":
        cluster.start()
        print(cluster.amqp_uri.split(";")[0].split("@")[-1], "and", cluster.size - 1, "more")
    elif args.command == "stop":
        cluster.stop()
    elif args.command == "kill":
        cluster.kill_node(args.node)
    elif args.command == "start-node":
        cluster.start_node(args.node)
    else:
        print(json.dumps(cluster.status(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
