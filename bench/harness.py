"""What every benchmark needs: a broker vhost of its own, services as real processes, RSS.

Services run exactly as `orglife up` runs them (`python -m orglife.runner NAME`), each in its
own process, so the figures include nameko, the broker round trips and the databases.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from orglife.broker import PrivateBroker, ensure_rabbitmq_installed  # noqa: E402
from orglife.common.auth import mint_token  # noqa: E402
from orglife.common.migrate import upgrade  # noqa: E402

SECRET = "benchmark-secret-0123456789-abcdefghij"
FIXED_NOW = "2026-11-20T10:00:00+08:00"


class Bench:
    # Seconds each service gets to stop after SIGTERM before the group is killed (a service
    # under cProfile writes its profile only if it stops by itself: give it longer).
    stop_timeout = 20

    def __init__(self, name: str, now: str = FIXED_NOW):
        self.name = name
        self.now = now
        self.home = REPO / ".orglife-bench"
        self.work = self.home / name
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        ensure_rabbitmq_installed()
        self.broker = PrivateBroker(self.home)
        self.broker_was_running = self.broker.running()
        self.broker.start()
        self.vhost = f"bench-{name}-{uuid.uuid4().hex[:6]}"
        self.broker.create_vhost(self.vhost)
        self.amqp_uri = self.broker.amqp_uri.rstrip("/") + "/" + self.vhost
        self.processes: dict[str, subprocess.Popen] = {}
        self.token = mint_token(SECRET, "bench", "county_admin")
        self._closed = False
        # A benchmark that is interrupted, killed politely or fails leaves nothing behind.
        atexit.register(self.close)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, _exit_on_signal)

    def db_url(self, service: str) -> str:
        return f"sqlite:///{self.work / (service + '.db')}"

    def start(self, *services: str, env: dict | None = None, profile=()) -> None:
        """Start `services` as real processes. `env`: extra environment for all of them (e.g.
        ORGLIFE_RULES, the notification channels' URLs); `profile`: services to run under
        cProfile, writing WORK/SERVICE.prof when they stop (after `close()`)."""
        base = dict(os.environ, ORGLIFE_AMQP_URI=self.amqp_uri, ORGLIFE_SECRET=SECRET,
                    ORGLIFE_HOME=str(self.work), ORGLIFE_NOW=self.now,
                    PYTHONPATH=f"{REPO / 'src'}:{REPO}")
        env = {**base, **(env or {})}
        from orglife.system import SYSTEM
        for service in services:
            if not SYSTEM.service(service).database:
                continue  # the dashboard: no database of its own
            upgrade(service, self.db_url(service))
            env[f"ORGLIFE_{service.upper()}_DB_URL"] = self.db_url(service)
        for service in services:
            log = open(self.work / f"{service}.log", "ab")
            wrapper = (["-m", "cProfile", "-o", str(self.profile_path(service))]
                       if service in profile else [])
            self.processes[service] = subprocess.Popen(
                [sys.executable, *wrapper, "-m", "orglife.runner", service], env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        for service in services:
            while not self.ping(service):
                if self.processes[service].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{service} did not start; see {self.work}/{service}.log")
                time.sleep(0.2)

    def profile_path(self, service: str) -> Path:
        return self.work / f"{service}.prof"

    def rpc(self, timeout: float = 600):
        from nameko.standalone.rpc import ClusterRpcProxy
        return ClusterRpcProxy({"AMQP_URI": self.amqp_uri},
                               context_data={"authorization": f"Bearer {self.token}"},
                               timeout=timeout)

    def ping(self, service: str):
        try:
            with self.rpc(timeout=2) as cluster:
                return getattr(cluster, service).health()
        except Exception:
            return None

    def parked(self) -> int:
        """Messages parked on any queue of this run's vhost."""
        return sum(q["messages"] for q in self.broker.queues(self.vhost)
                   if q["name"].endswith(".parked"))

    def peak_rss_mb(self, service: str) -> float:
        """VmHWM: the process's peak resident set, as the kernel counted it."""
        status = Path(f"/proc/{self.processes[service].pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self, service: str) -> float:
        """CPU seconds (user + system) of the service's process and its children (its outbox
        relay runs in a child process), so far."""
        return sum(_cpu_seconds(pid) for pid in _with_children(self.processes[service].pid))

    def broker_cpu_seconds(self) -> float:
        """CPU seconds of the RabbitMQ node (its wrapper and beam.smp) so far: the broker
        shares the two cores with the services."""
        pid = self.broker._pid()
        return sum(_cpu_seconds(p) for p in _with_children(pid)) if pid else 0.0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        try:
            self.broker.delete_vhost(self.vhost)
        finally:
            if not self.broker_was_running:
                self.broker.stop()


TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _with_children(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through `finally: bench.close()`


class PeerCounter:
    """A peer that is not nameko: a durable queue bound to one event type, counted as it
    arrives and acknowledged in batches (basic.ack multiple), as a high-volume consumer does."""

    def __init__(self, amqp_uri: str, source: str, event_type: str, expected: int,
                 queue: str | None = None, prefetch: int = 1000):
        from kombu import Connection
        from orglife.common.topology import event_exchange
        self.expected = expected
        self.count = 0
        self.first = self.last = None
        self.seen: dict[str, float] = {}
        self.connection = Connection(amqp_uri)
        self.connection.connect()
        self.channel = self.connection.connection.channel()
        name = queue or f"bench-peer-{event_type}"
        event_exchange(source)(self.channel).declare()
        self.channel.queue_declare(name, durable=True, auto_delete=False)
        self.channel.queue_bind(name, exchange=f"{source}.events", routing_key=event_type)
        self.channel.basic_qos(0, prefetch, False)
        self.channel.basic_consume(name, callback=self._on_message)
        self._unacked = 0

    def _on_message(self, message):
        now = time.monotonic()
        self.first = self.first or now
        self.last = now
        self.count += 1
        self._unacked += 1
        if self._unacked >= 200 or self.count >= self.expected:
            self.channel.basic_ack(message.delivery_tag, multiple=True)
            self._unacked = 0

    def run(self, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while self.count < self.expected and time.monotonic() < deadline:
            try:
                self.connection.connection.drain_events(timeout=1)
            except Exception:  # socket timeout: nothing arrived this second
                pass
        self.connection.release()


def concurrent_calls(bench: Bench, service: str, method: str, payloads, proxies: int = 8):
    """Call one RPC for each payload, `proxies` at a time: a nameko 2.14 standalone proxy
    serves one greenthread, so each concurrent caller gets a proxy of its own."""
    import eventlet
    from eventlet.queue import Queue as GreenQueue
    idle = GreenQueue()
    opened = [bench.rpc() for _ in range(proxies)]
    for proxy in opened:
        idle.put(proxy.start())

    def call(payload):
        cluster = idle.get()
        try:
            return getattr(getattr(cluster, service), method)(payload)
        finally:
            idle.put(cluster)
    try:
        return list(eventlet.GreenPool(proxies).imap(call, payloads))
    finally:
        for proxy in opened:
            proxy.stop()


def register_county_organizations(bench: Bench, organizations) -> None:
    """Parents first; each level registered concurrently."""
    by_depth: dict[int, list] = {}
    depth = {}
    for org in organizations:
        depth[org["org_id"]] = depth.get(org.get("parent_id"), -1) + 1
        by_depth.setdefault(depth[org["org_id"]], []).append(org)
    for level in sorted(by_depth):
        concurrent_calls(bench, "members", "register_organization", by_depth[level])


def print_figures(title: str, figures: dict) -> None:
    import json
    print(f"\n== {title} ==")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        print(f"{key:<{width}}  {shown}")
    print("json: " + json.dumps(figures, ensure_ascii=False))
