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
    from .cluster import home_cluster
    cluster = home_cluster(settings)
    if cluster is not None:  # `up --cluster N`: every node's address (kombu failover)
        if not cluster.running():
            if not start:
                raise BootstrapError("the RabbitMQ cluster of this home is not running: run "
                                     "./orglife up first")
            cluster.start(say=say)
        return cluster.amqp_uri
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
    from .common.migrate import upgrade  # alembic: a quarter second every CLI call would pay
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
                   only: str | None = None) -> list[Started]:
    """One supervised process per instance of every declared service (`scale`: instances by
    name; `only`: start just that service's instances)."""
    system = system_of(settings)
    services = system.names
    scale = scale or {}
    unknown = sorted(set(scale) - set(services))
    if unknown:
        raise BootstrapError(f"--scale names {', '.join(unknown)}, not declared services "
                             f"({', '.join(services)})")
    for service, count in scale.items():
        if count > 1 and settings.db_url(service).startswith("sqlite"):
            # SQLite takes one writer at a time per file and blocks the whole process while it
            # waits: instances would only queue behind each other (and time out).
            raise BootstrapError(f"--scale {service}={count}: several instances need "
                                 f"PostgreSQL (set ORGLIFE_{service.upper()}_DB_URL)")
    started = []
    for service in services:
        if only is not None and service != only:
            continue
        env = service_environment(settings, amqp_uri, service)
        for instance in range(1, scale.get(service, 1) + 1):
            started.append(start_instance(settings, service, instance, env))
    return started


# -- the demo's local endpoints and rules (only in a home where `./orglife demo` put them) --------
def endpoints_dir(settings: Settings) -> Path:
    """Where `./orglife demo` keeps its local SMTP sink, SMS gateway and robot recorder."""
    return settings.home / "devservers"


def demo_rules_path(settings: Settings) -> Path:
    """The demo's copy of the rules file (follow-ups without the 10-minute grace, no quiet
    hours)."""
    return settings.home / "demo" / "rules.yaml"


def endpoints_wanted(settings: Settings) -> bool:
    """The demo started local endpoints for this home (their state file is there): `up`
    starts them again. A home the demo never ran in has none, and nothing is pointed at them."""
    from .devservers import detached_state
    return detached_state(endpoints_dir(settings)) is not None


def ensure_endpoints(settings: Settings) -> dict[str, str]:
    """Start this home's local endpoints if they are wanted and not running; their URLs."""
    from .devservers import start_detached
    if not endpoints_wanted(settings):
        return {}
    return start_detached(endpoints_dir(settings))


ENDPOINT_NAMES = {"ORGLIFE_SMTP_URL": "mail", "ORGLIFE_SMS_URL": "SMS",
                  "ORGLIFE_WEBHOOK_URL": "robot"}


def describe_endpoints(urls: dict[str, str]) -> str:
    """`mail smtp://..., SMS http://..., robot http://...`, naming any the environment
    overrides (an explicit ORGLIFE_SMTP_URL... wins)."""
    return ", ".join(f"{ENDPOINT_NAMES.get(key, key)} {url}"
                     + (f" (unused: {key} is set)" if os.environ.get(key) else "")
                     for key, url in urls.items())


def start_demo_endpoints(settings: Settings) -> dict[str, str]:
    """`./orglife demo`: the local endpoints for this home, started (detached) unless they run;
    from then on `up` starts them again for this home and `down` stops them."""
    from .devservers import start_detached
    return start_detached(endpoints_dir(settings))


def stop_endpoints(settings: Settings) -> list[str]:
    from .devservers import stop_detached
    return stop_detached(endpoints_dir(settings))


def local_channel_env(settings: Settings) -> dict[str, str]:
    """What the demo's home gives the services on top of the environment: the running local
    endpoints' URLs and the demo's rules, each only where the environment sets nothing (an
    explicit ORGLIFE_SMTP_URL, ORGLIFE_RULES... always wins)."""
    from .devservers import detached_urls
    extra = {key: url for key, url in detached_urls(endpoints_dir(settings)).items()
             if not os.environ.get(key)}
    rules = demo_rules_path(settings)
    if not os.environ.get("ORGLIFE_RULES") and rules.exists():
        extra["ORGLIFE_RULES"] = str(rules)
    return extra


# What a running instance was started with that `./orglife demo` compares (run/*.config):
# digests only, never the values (an SMTP URL may hold a password).
CONFIG_KEYS = {"channels": ("ORGLIFE_SMTP_URL", "ORGLIFE_SMS_URL", "ORGLIFE_WEBHOOK_URL",
                            "ORGLIFE_RULES"),
               "clock": ("ORGLIFE_NOW", "ORGLIFE_TZ")}


def config_fingerprint(env: dict) -> str:
    """Digests of what CONFIG_KEYS name in `env`; the rules file counts by its content too
    (the demo's copy edited in place is another configuration)."""
    import hashlib
    digests = {}
    for part, keys in CONFIG_KEYS.items():
        values = {key: env.get(key) or "" for key in keys}
        if values.get("ORGLIFE_RULES"):
            try:
                content = Path(values["ORGLIFE_RULES"]).read_bytes()
                values["ORGLIFE_RULES"] += "#" + hashlib.sha256(content).hexdigest()
            except OSError:
                pass
        text = json.dumps(values, sort_keys=True)
        digests[part] = hashlib.sha256(text.encode()).hexdigest()
    return json.dumps(digests, sort_keys=True)


def started_with(settings: Settings, amqp_uri: str, service: str) -> dict[str, bool | None]:
    """For a running service, whether its instances were started with the channels (and
    rules) and the clock they would get now: {"channels": bool, "clock": bool}, None where an
    instance left no record (started by an older orglife)."""
    wanted = json.loads(config_fingerprint(service_environment(settings, amqp_uri, service)))
    same: dict[str, bool | None] = dict.fromkeys(CONFIG_KEYS, None)
    for path in run_dir(settings).glob(f"{service}-*.config"):
        try:
            had = json.loads(path.read_text())
        except ValueError:
            continue
        for part in CONFIG_KEYS:
            same[part] = (same[part] is not False) and had.get(part) == wanted[part]
    return same


def service_environment(settings: Settings, amqp_uri: str, service: str) -> dict:
    """The environment of one service's processes: its own broker account and nothing of the
    others' (SPEC §7), never the admin account."""
    own_db = f"ORGLIFE_{service.upper()}_DB_URL"
    env = {key: value for key, value in os.environ.items()
           if not (key.startswith("ORGLIFE_") and key.endswith(("AMQP_URI", "DB_URL")))
           or key == own_db}
    env.update(local_channel_env(settings))
    from .cluster import home_cluster, province_env
    env.update(province_env(settings, service))  # quorum queues, its own PostgreSQL database
    env.update(ORGLIFE_SECRET=settings.secret, ORGLIFE_HOME=str(settings.home))
    own = settings.service_amqp_uris.get(service)
    if own is None and not settings.amqp_uri:  # our private node: an account per service
        own = (home_cluster(settings) or private_broker(settings)).service_account(
            service, system=system_of(settings))
    env["ORGLIFE_AMQP_URI"] = own or amqp_uri
    return env


def start_instance(settings: Settings, service: str, instance: int, env: dict) -> Started:
    log = run_dir(settings) / f"{service}-{instance}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orglife.runner", service, "--instance", str(instance),
             "--supervise"], env=env,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    (run_dir(settings) / f"{service}-{instance}.pid").write_text(str(proc.pid))
    (run_dir(settings) / f"{service}-{instance}.config").write_text(config_fingerprint(env))
    return Started(service, instance, proc.pid, log)


def start_stack(settings: Settings, scale: dict[str, int] | None = None,
                say=print) -> list[Started]:
    """What `up` does: the broker (a private node unless ORGLIFE_AMQP_URI is set), the demo's
    local endpoints where the demo put them, migrations, topology, every service; returns once
    every service answers. Anything half-started is stopped again on failure."""
    try:
        uri = broker_uri(settings, start=True, say=say)
        urls = ensure_endpoints(settings)
        if urls:
            say(f"local endpoints of ./orglife demo under {endpoints_dir(settings)}: "
                + describe_endpoints(urls))
        say("migrating databases ...")
        migrate(settings)
        declare(uri, system_of(settings))
        started = start_services(settings, uri, scale)
        say(f"starting {', '.join(sorted({x.service for x in started}))} ...")
        wait_ready(uri, started)
    except BootstrapError:
        down(settings, say=say)  # nothing half-started is left behind
        raise
    return started


def restart(settings: Settings, service: str, say=print) -> list[Started]:
    """Stop every instance of one service of a running stack and start it again."""
    system_of(settings).service(service)  # a declared service, or DeclarationError
    folder = run_dir(settings)
    instances = sorted(int(p.stem.rsplit("-", 1)[1]) for p in folder.glob(f"{service}-*.pid"))
    if not instances:
        raise BootstrapError(f"{service} is not running in this home: ./orglife up first")
    uri = broker_uri(settings)
    env = service_environment(settings, uri, service)
    started = []
    for instance in instances:
        pid_file = folder / f"{service}-{instance}.pid"
        say(f"restarting {service}-{instance}")
        stop_pids([int(pid_file.read_text() or 0)])
        for leftover in ("alive", "state", "config"):
            (folder / f"{service}-{instance}.{leftover}").unlink(missing_ok=True)
        started.append(start_instance(settings, service, instance, env))
    wait_ready(uri, started)
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
            state = read_state(run_dir_of(item) / f"{item.service}-{item.instance}.state")
            if not pid_alive(item.pid) or state.get("restarts"):
                tail = item.log.read_text(errors="replace")[-3000:] if item.log.exists() else ""
                raise BootstrapError(f"{item.service} exited while starting; its log:\n{tail}")
        for service in sorted(waiting):
            if ping(amqp_uri, service, timeout=2.0):
                waiting.discard(service)
        if waiting and time.monotonic() > deadline:
            raise BootstrapError(f"no answer from {', '.join(sorted(waiting))} in {timeout:.0f}s")


def run_dir_of(item: Started) -> Path:
    return item.log.parent


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
    for pattern in ("*.pid", "*.alive", "*.state", "*.config"):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)
    stopped = stop_endpoints(settings)
    if stopped:
        say(f"stopped the local endpoints ({', '.join(stopped)}) of ./orglife demo")
    marker = folder / "broker.started"
    if marker.exists():
        say("stopping the private RabbitMQ node")
        private_broker(settings).stop()
        marker.unlink()
    from .cluster import stop_province
    stop_province(settings, say=say)  # `up --cluster N --postgres`: the cluster, PostgreSQL


def rpc_consumers(amqp_uri: str, service: str) -> int:
    """Consumers on the service's RPC queue (0 when it is not running)."""
    try:
        with Connection(amqp_uri) as conn:
            return conn.channel().queue_declare(queue=f"rpc-{service}", passive=True)[2]
    except Exception:
        return 0


def queue_depths(amqp_uri: str, system: System | None = None, broker=None) -> list[dict]:
    """Depth and consumers of every topology queue (passive declares work on any broker);
    with our private node or cluster (`broker`: anything with `queues(vhost)` listing
    messages and messages_ready) also the unacknowledged messages (from its management API),
    so that "settled" can be read off: nothing ready, nothing unacked."""
    unacked = {}
    if broker is not None:
        try:
            vhost = amqp_vhost(amqp_uri)
            unacked = {q["name"]: q["messages"] - q["messages_ready"]
                       for q in broker.queues(vhost)}
        except Exception:  # noqa: BLE001 - the API is a bonus; depths still come below
            unacked = {}
    rows = []
    with Connection(amqp_uri) as conn:
        for sub in (system or load_system()).subscriptions:
            for name in (sub.queue_name, sub.parking_queue_name):
                channel = conn.channel()
                row = {"queue": name, "messages": None, "unacked": unacked.get(name),
                       "consumers": None, "parked": name.endswith(".parked")}
                try:
                    _, row["messages"], row["consumers"] = channel.queue_declare(
                        queue=name, passive=True)
                except Exception:  # noqa: BLE001 - not declared (yet)
                    pass
                finally:
                    try:
                        channel.close()
                    except Exception:  # noqa: BLE001
                        pass
                rows.append(row)
    return rows


def read_state(path: Path) -> dict:
    """An instance's state file, written by its supervisor (orglife/runner.py)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def amqp_vhost(uri: str) -> str:
    from urllib.parse import unquote, urlsplit
    path = urlsplit(uri.split(";")[0]).path.lstrip("/")  # of kombu's failover list too
    return unquote(path) if path else "/"


HEARTBEAT_STALE_SECONDS = 10.0


def instance_health(settings: Settings, service: str) -> list[dict]:
    """Each started instance: its supervisor, its service process, and whether the service's
    container is running (heartbeat younger than HEARTBEAT_STALE_SECONDS)."""
    folder = run_dir(settings)
    rows = []
    for pid_file in sorted(folder.glob(f"{service}-*.pid")):
        name = pid_file.stem
        supervisor = int(pid_file.read_text() or 0)
        state = read_state(folder / f"{name}.state")
        try:
            beat = float((folder / f"{name}.alive").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            beat = None
        fresh = beat is not None and time.time() - beat < HEARTBEAT_STALE_SECONDS
        alive = pid_alive(supervisor)
        rows.append({"instance": name, "pid": state.get("worker_pid"),
                     "up": alive and fresh and pid_alive(state.get("worker_pid") or 0),
                     "supervisor": alive, "restarts": state.get("restarts", 0),
                     "last_exit": state.get("last_exit"),
                     "heartbeat_age_s": None if beat is None else round(time.time() - beat, 1)})
    return rows


def status(settings: Settings) -> dict:
    try:
        uri = broker_uri(settings)
    except BootstrapError as exc:
        return {"broker": {"ok": False, "detail": str(exc)}, "services": [], "queues": [],
                "endpoints": endpoint_status(settings)}
    system = system_of(settings)
    services = []
    for service in system.names:
        health = ping(uri, service, timeout=3.0)
        instances = instance_health(settings, service)
        services.append({
            "service": service,
            "instances": sum(1 for row in instances if row["up"]),
            "started": len(instances),
            "answers": health is not None,
            "outbox_backlog": (health or {}).get("outbox_backlog"),
            "instance_health": instances,
        })
    from .cluster import home_cluster, province_status
    # the unacked counts come from the management API of the home's node or cluster
    broker = None if settings.amqp_uri else (home_cluster(settings) or private_broker(settings))
    return {"broker": {"ok": True, "uri": " ; ".join(_safe(one) for one in uri.split(";"))},
            "services": services, "queues": queue_depths(uri, system, broker),
            "endpoints": endpoint_status(settings), "cluster": province_status(settings)}


def endpoint_status(settings: Settings) -> list[dict]:
    """The demo's local endpoints in this home (none elsewhere): URL, running, received."""
    from .devservers import detached_status
    return detached_status(endpoints_dir(settings))


def _safe(uri: str) -> str:
    """The URI without its password (it may be shown in a terminal or a log)."""
    if "@" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str)


# -- the dashboard's address (`./orglife dashboard`, the demo) -------------------------------------
def dashboard_base(settings: Settings) -> str:
    """Where this home's dashboard listens: ORGLIFE_DASHBOARD_URL (a deployment behind a
    proxy, docker-compose), else the URL the running dashboard wrote to
    ORGLIFE_HOME/run/dashboard.url, checked to answer."""
    import socket
    from urllib.parse import urlsplit
    explicit = os.environ.get("ORGLIFE_DASHBOARD_URL")
    if explicit:
        return explicit.rstrip("/")
    path = run_dir(settings) / "dashboard.url"
    base = path.read_text().strip() if path.exists() else ""
    if base:
        parts = urlsplit(base)
        try:
            socket.create_connection((parts.hostname, parts.port), timeout=2).close()
            return base
        except OSError:
            pass
    raise BootstrapError("the dashboard is not running for this home: ./orglife up "
                         "(or set ORGLIFE_DASHBOARD_URL)")


def dashboard_url(settings: Settings, path: str = "/") -> str:
    """The dashboard's URL signed in as the CLI's identity: a link that is good once and for
    ten minutes (services/dashboard/tickets.py), so the CLI's own token never appears in a
    URL, a browser's history or a log."""
    from urllib.parse import quote

    from orglife.common.errors import Unauthorized
    from services.dashboard.tickets import mint_ticket
    base = dashboard_base(settings)
    token = settings.token
    if not token and (settings.home / "token").exists():
        token = (settings.home / "token").read_text().strip()
    if not token:
        raise BootstrapError("no CLI identity: ./orglife token --role county_admin first")
    try:
        ticket = mint_ticket(settings.secret, token)
    except Unauthorized as exc:
        raise BootstrapError(f"the CLI's token cannot sign in ({exc}): ./orglife token "
                             "--role ... for a new one") from None
    query = "" if path == "/" else f"&next={quote(path, safe='')}"
    return f"{base}/signin?ticket={ticket}{query}"
