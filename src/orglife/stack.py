"""`orglife up / down / status`: the broker, the migrations and the service processes.

Everything `up` starts is written under ORGLIFE_HOME/run (pid files, logs, and a marker when it
started the private broker), so `down` stops exactly that and nothing else, and two homes can
run side by side.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kombu import Connection

from .broker import BootstrapError, PrivateBroker, amqp_reachable, ensure_rabbitmq_installed
from .common.config import Settings
from .common.migrate import upgrade
from .common.system import System, load_system
from .common.topology import declare_topology


def system_of(settings: Settings) -> System:
    """The system this home runs: orglife/system.py, or ORGLIFE_SYSTEM's."""
    return load_system(settings.system)


def run_dir(settings: Settings) -> Path:
    path = settings.home / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def private_broker(settings: Settings) -> PrivateBroker:
    return PrivateBroker(settings.home)


def broker_uri(settings: Settings, start: bool = False, say=print) -> str:
    """The broker to use: ORGLIFE_AMQP_URI if set (it must answer), else the private node."""
    if settings.amqp_uri:
        if not amqp_reachable(settings.amqp_uri):
            raise BootstrapError(
                "ORGLIFE_AMQP_URI is set but no broker answers there; start it, or unset the "
                "variable to let orglife run its own private node")
        return settings.amqp_uri
    broker = private_broker(settings)
    if broker.running():
        return broker.amqp_uri
    if not start:
        raise BootstrapError("no broker is running for this home: run ./orglife up first")
    ensure_rabbitmq_installed()
    say(f"starting a private RabbitMQ node under {settings.home / 'rabbitmq'} ...")
    broker.start()
    (run_dir(settings) / "broker.started").write_text(str(os.getpid()))
    return broker.amqp_uri


def migrate(settings: Settings) -> None:
    """Every declared service with a database, to its latest schema."""
    system = system_of(settings)
    for service in system.services:
        if service.database:
            upgrade(service.name, settings.db_url(service.name), system)


def declare(amqp_uri: str, system: System | None = None) -> None:
    with Connection(amqp_uri) as conn:
        declare_topology(conn.channel(), system)


@dataclass
class Started:
    service: str
    instance: int
    pid: int
    log: Path


def start_services(settings: Settings, amqp_uri: str, scale: dict[str, int] | None = None,
                   ) -> list[Started]:
    """One process per instance of every declared service (`scale`: instances by name)."""
    services = system_of(settings).names
    unknown = sorted(set(scale or {}) - set(services))
    if unknown:
        raise BootstrapError(f"--scale names {', '.join(unknown)}, not declared services "
                             f"({', '.join(services)})")
    env = dict(os.environ, ORGLIFE_AMQP_URI=amqp_uri, ORGLIFE_SECRET=settings.secret,
               ORGLIFE_HOME=str(settings.home))
    if not settings.amqp_uri:  # our private node: each service gets its own account
        broker = private_broker(settings)
        for service in services:
            variable = f"ORGLIFE_{service.upper()}_AMQP_URI"
            if variable not in env:
                env[variable] = broker.service_account(service)
    started = []
    for service in services:
        for instance in range(1, (scale or {}).get(service, 1) + 1):
            log = run_dir(settings) / f"{service}-{instance}.log"
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "orglife.runner", service], env=env,
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True)
            (run_dir(settings) / f"{service}-{instance}.pid").write_text(str(proc.pid))
            started.append(Started(service, instance, proc.pid, log))
    return started


def ping(amqp_uri: str, service: str, timeout: float = 5.0) -> dict | None:
    from nameko.standalone.rpc import ClusterRpcProxy
    if not rpc_consumers(amqp_uri, service):
        return None  # nobody would answer: do not wait for the timeout
    try:
        with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=timeout) as cluster:
            return getattr(cluster, service).health()
    except Exception:
        return None


def running_services(settings: Settings) -> list[str]:
    """Pid files of this home whose process is still alive."""
    return [p.stem for p in sorted(run_dir(settings).glob("*.pid"))
            if pid_alive(int(p.read_text() or 0))]


def wait_ready(amqp_uri: str, started: list[Started], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    waiting = {s.service for s in started}
    while waiting:
        time.sleep(0.5)
        for item in started:
            if not pid_alive(item.pid):
                tail = item.log.read_text(errors="replace")[-3000:] if item.log.exists() else ""
                raise BootstrapError(f"{item.service} exited while starting; its log:\n{tail}")
        for service in sorted(waiting):
            if ping(amqp_uri, service, timeout=2.0):
                waiting.discard(service)
        if waiting and time.monotonic() > deadline:
            raise BootstrapError(f"no answer from {', '.join(sorted(waiting))} in {timeout:.0f}s")


def pid_alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped (ours or another parent's)."""
    import psutil
    if not pid:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    except ChildProcessError:
        pass
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_pids(pids: list[int], timeout: float = 15.0) -> None:
    """SIGTERM every process group at once, then wait; SIGKILL what outlives the timeout."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def down(settings: Settings, say=print) -> None:
    folder = run_dir(settings)
    pids = []
    for pid_file in sorted(folder.glob("*.pid")):
        pid = int(pid_file.read_text() or 0)
        if pid_alive(pid):
            say(f"stopping {pid_file.stem} (pid {pid})")
            pids.append(pid)
    stop_pids(pids)
    for pid_file in folder.glob("*.pid"):
        pid_file.unlink(missing_ok=True)
    marker = folder / "broker.started"
    if marker.exists():
        say("stopping the private RabbitMQ node")
        private_broker(settings).stop()
        marker.unlink()


def rpc_consumers(amqp_uri: str, service: str) -> int:
    """Consumers on the service's RPC queue (0 when it is not running)."""
    try:
        with Connection(amqp_uri) as conn:
            return conn.channel().queue_declare(queue=f"rpc-{service}", passive=True)[2]
    except Exception:
        return 0


def queue_depths(amqp_uri: str, system: System | None = None) -> list[dict]:
    """Depth and consumers of every topology queue (passive declares work on any broker)."""
    rows = []
    with Connection(amqp_uri) as conn:
        for sub in (system or load_system()).subscriptions:
            for name in (sub.queue_name, sub.parking_queue_name):
                channel = conn.channel()
                try:
                    _, messages, consumers = channel.queue_declare(queue=name, passive=True)
                    rows.append({"queue": name, "messages": messages, "consumers": consumers,
                                 "parked": name.endswith(".parked")})
                except Exception:
                    rows.append({"queue": name, "messages": None, "consumers": None,
                                 "parked": name.endswith(".parked")})
                finally:
                    try:
                        channel.close()
                    except Exception:
                        pass
    return rows


def status(settings: Settings) -> dict:
    folder = run_dir(settings)
    try:
        uri = broker_uri(settings)
    except BootstrapError as exc:
        return {"broker": {"ok": False, "detail": str(exc)}, "services": [], "queues": []}
    system = system_of(settings)
    services = []
    for service in system.names:
        pids = [int(p.read_text()) for p in sorted(folder.glob(f"{service}-*.pid"))]
        health = ping(uri, service, timeout=3.0)
        services.append({
            "service": service,
            "instances": sum(1 for pid in pids if pid_alive(pid)),
            "answers": health is not None,
            "outbox_backlog": (health or {}).get("outbox_backlog"),
        })
    return {"broker": {"ok": True, "uri": _safe(uri)}, "services": services,
            "queues": queue_depths(uri, system)}


def _safe(uri: str) -> str:
    """The URI without its password (it may be shown in a terminal or a log)."""
    if "@" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str)
