"""A private RabbitMQ node under the orglife home folder.

`./orglife demo` and the test suite need a broker without Docker and without touching a system
RabbitMQ: this runs the packaged server binary directly, with every path, port and the Erlang
cookie under `<home>/rabbitmq/`, listening on loopback only. Two homes give two independent
nodes side by side (own ports, own epmd).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psutil

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
GUEST = ("guest", "guest")  # only ever used once: to replace it on a node made before accounts
ADMIN_USER = "orglife-admin"
FULL_PERMISSIONS = {"configure": ".*", "write": ".*", "read": ".*"}
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class BootstrapError(Exception):
    """Something the machine lacks that orglife cannot fix by itself; the message says what to do."""


# --- system packages ---------------------------------------------------------------------------

def _say(message: str) -> None:
    print(f"orglife: {message}", file=sys.stderr, flush=True)


def apt_install(packages: list[str], what: str) -> None:
    """Install Debian packages non-interactively, or explain exactly what the user must do.

    A `policy-rc.d` that forbids service starts is put in place for the duration (unless one
    exists already), so package scripts do not launch system daemons we would then collide with.
    """
    command = f"apt-get update && apt-get install -y {' '.join(packages)}"
    if shutil.which("apt-get") is None:
        raise BootstrapError(
            f"{what} is not installed and this system has no apt-get. Install {what} with your "
            f"package manager (Debian/Ubuntu: `{command}`), then run orglife again."
        )
    if os.geteuid() != 0:
        raise BootstrapError(
            f"{what} is not installed and installing it needs root. Run `sudo sh -c "
            f"'{command}'` (or run orglife as root once), then run orglife again."
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    policy = Path("/usr/sbin/policy-rc.d")
    placed_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\n# placed by orglife while installing packages\nexit 101\n")
        policy.chmod(0o755)
        placed_policy = True
    try:
        for step in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
            _say(f"running `{' '.join(step)}` (installing {what}, this takes a minute or two)")
            result = subprocess.run(step, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            if result.returncode != 0:
                tail = "\n".join(result.stdout.splitlines()[-20:])
                raise BootstrapError(
                    f"`{' '.join(step)}` failed (exit {result.returncode}) while installing "
                    f"{what}:\n{tail}\nFix the cause, or run `{command}` yourself, then retry."
                )
    finally:
        if placed_policy:
            policy.unlink(missing_ok=True)
    _say(f"{what} installed")


def stop_new_processes_of(user: str, since: float) -> None:
    """Terminate processes of a system account started after `since` (a package's daemon)."""
    victims = []
    for proc in psutil.process_iter(["username", "create_time"]):
        try:
            if proc.info["username"] == user and proc.info["create_time"] >= since - 1:
                proc.terminate()
                victims.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    if not wait_dead(victims, timeout=15):
        for proc in victims:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass


def ensure_rabbitmq_installed() -> None:
    """Install rabbitmq-server via apt when its binary is missing; leave no system node running."""
    if RABBITMQ_SERVER.exists():
        return
    started = time.time()
    apt_install(["rabbitmq-server"], "RabbitMQ")
    # With systemd as PID 1 policy-rc.d is honoured too, but stop the unit anyway in case.
    for stop in (["systemctl", "stop", "rabbitmq-server"], ["service", "rabbitmq-server", "stop"]):
        if shutil.which(stop[0]):
            subprocess.run(stop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop_new_processes_of("rabbitmq", started)
    if not RABBITMQ_SERVER.exists():
        raise BootstrapError(f"rabbitmq-server was installed but {RABBITMQ_SERVER} is missing")


# --- helpers -----------------------------------------------------------------------------------

def free_ports(count: int) -> list[int]:
    """Ports free on loopback right now; sockets are held together so the ports are distinct."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def amqp_reachable(uri: str, timeout: float = 2) -> bool:
    """True when an AMQP handshake (with these credentials) succeeds within `timeout` seconds."""
    import kombu

    conn = kombu.Connection(
        uri,
        connect_timeout=timeout,
        transport_options={"read_timeout": timeout, "write_timeout": timeout},
    )
    try:
        # connect() would retry once after a 2 s sleep; each of kombu's failover URLs
        # (`a;b;c`) is tried once, so a cluster with its first node down still answers
        conn.ensure_connection(max_retries=uri.count(";"))
        return conn.connected
    except Exception:
        return False
    finally:
        try:
            conn.release()
        except Exception:
            pass


def wait_dead(procs: list[psutil.Process], timeout: float) -> bool:
    """Wait until the processes are gone or zombies; True if all are.

    psutil.wait_procs waits for the reaping too, and this container's PID 1 reaps orphans late
    (seconds), which made every stop ~2 s slower for nothing.
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for proc in procs:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() >= deadline:
            return not alive
        procs = alive
        time.sleep(0.05)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- the node ----------------------------------------------------------------------------------

class PrivateBroker:
    """A RabbitMQ node whose whole state lives in `<home>/rabbitmq/`.

    The process outlives the Python process that started it (`orglife up` then exits); the pid
    file and `ports.json` let any later process find, query and stop it.
    """

    PORT_NAMES = ("amqp", "dist", "epmd", "management")

    def __init__(self, home: Path | str):
        self.home = Path(home).expanduser().resolve()
        self.place(self.home / "rabbitmq")
        self._proc: subprocess.Popen | None = None

    def place(self, root: Path) -> None:
        """Where this node keeps everything (a cluster's nodes each have a folder of their
        own, orglife/cluster.py)."""
        self.root = root
        self.mnesia_dir = self.root / "mnesia"
        self.log_dir = self.root / "log"
        self.erlang_home = self.root / "erlang-home"
        self.config_file = self.root / "rabbitmq.conf"
        self.env_file = self.root / "rabbitmq-env.conf"
        self.plugins_file = self.root / "enabled_plugins"
        self.pid_file = self.root / "server.pid"
        self.ports_file = self.root / "ports.json"
        self.server_log = self.log_dir / "server.out"
        self.lock_file = self.root / "start.lock"

    # ports and identity, fixed on first start and reused afterwards
    def _load_state(self) -> dict:
        """ports.json, read afresh each time: another process may have (re)started the node."""
        try:
            return json.loads(self.ports_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.ports_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.ports_file)

    def _ensure_state(self) -> dict:
        """Pick ports (and the node name) when missing, or when a saved port got taken meanwhile."""
        state = dict(self._load_state())
        changed = False
        if not state.get("node"):
            state["node"] = self._default_node_name()
            changed = True
        saved = [state.get(name) for name in self.PORT_NAMES]
        if not all(saved) or any(port_in_use(port) for port in saved):
            if all(saved):
                _say("a saved RabbitMQ port is taken by another program; picking new ports")
            state.update(zip(self.PORT_NAMES, free_ports(len(self.PORT_NAMES))))
            changed = True
        if changed:
            self._save_state(state)
        return state

    def _port(self, name: str) -> int:
        state = self._load_state()
        if not state.get(name):
            raise RuntimeError(f"the broker in {self.root} was never started (no {self.ports_file.name})")
        return int(state[name])

    def _default_node_name(self) -> str:
        digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:10]
        return f"orglife-{digest}@localhost"

    @property
    def node_name(self) -> str:
        """Saved on first start, so moving the home folder keeps the node's data usable."""
        return self._load_state().get("node") or self._default_node_name()

    @property
    def amqp_port(self) -> int:
        return self._port("amqp")

    @property
    def dist_port(self) -> int:
        return self._port("dist")

    @property
    def management_port(self) -> int:
        return self._port("management")

    @property
    def epmd_port(self) -> int:
        return self._port("epmd")

    @property
    def amqp_uri(self) -> str:
        """The admin account's URI: for `up`, `status`, the CLI and the tests, never handed
        to a service (each gets `service_account`)."""
        return self._uri(ADMIN_USER, self._admin_password())

    def _uri(self, user: str, password: str, vhost: str = "/") -> str:
        suffix = "" if vhost == "/" else quote(vhost, safe="")
        return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:" \
               f"{self.amqp_port}/{suffix}"

    # accounts: random passwords in rabbitmq/accounts.json (mode 0600 from its creation)
    @property
    def accounts_file(self) -> Path:
        return self.root / "accounts.json"

    def _accounts(self) -> dict:
        try:
            return json.loads(self.accounts_file.read_text())
        except (OSError, ValueError):
            return {}

    def _password(self, user: str) -> str:
        accounts = self._accounts()
        if user not in accounts:
            from orglife.common.config import write_private
            accounts[user] = secrets.token_urlsafe(18)
            self.root.mkdir(parents=True, exist_ok=True)
            write_private(self.accounts_file, json.dumps(accounts))
        return accounts[user]

    def _admin_password(self) -> str:
        return self._password(ADMIN_USER)

    @property
    def _admin_auth(self) -> tuple[str, str]:
        return ADMIN_USER, self._admin_password()

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    # files the server reads
    def _write_config(self, state: dict) -> None:
        from orglife.common.config import write_private
        for folder in (self.root, self.mnesia_dir, self.log_dir, self.erlang_home):
            folder.mkdir(parents=True, exist_ok=True)
        # The node's data, accounts, config (the admin password) and cookie: the owner's only.
        self.root.chmod(0o700)
        write_private(self.config_file, (
            "# written by orglife on every start; edit orglife/broker.py instead\n"
            f"listeners.tcp.default = 127.0.0.1:{state['amqp']}\n"
            f"management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {state['management']}\n"
            "loopback_users.guest = true\n"
            # A fresh node starts with our admin account instead of guest (SPEC §7).
            f"default_user = {ADMIN_USER}\n"
            f"default_pass = {self._admin_password()}\n"
            "default_user_tags.administrator = true\n"
            "default_permissions.configure = .*\n"
            "default_permissions.read = .*\n"
            "default_permissions.write = .*\n"
        ))
        self.plugins_file.write_text("[rabbitmq_management].\n")
        # an empty env file of our own, so /etc/rabbitmq/rabbitmq-env.conf is not read
        self.env_file.write_text("# intentionally empty: orglife passes everything by environment\n")
        cookie = self.erlang_home / ".erlang.cookie"
        if not cookie.exists():
            write_private(cookie, secrets.token_hex(20))  # 0600 from its creation

    def _environment(self, state: dict) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RABBITMQ_", "ERL_", "ERLANG_"))}
        env.update(
            HOME=str(self.erlang_home),
            LC_ALL="C.UTF-8",
            RABBITMQ_CONF_ENV_FILE=str(self.env_file),
            RABBITMQ_NODENAME=state["node"],
            RABBITMQ_USE_LONGNAME="false",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(state["amqp"]),
            RABBITMQ_DIST_PORT=str(state["dist"]),
            ERL_EPMD_PORT=str(state["epmd"]),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=str(self.mnesia_dir),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_LOGS=str(self.log_dir / "rabbit.log"),
            RABBITMQ_CONFIG_FILE=str(self.config_file),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.root / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.plugins_file),
            RABBITMQ_PID_FILE=str(self.root / "rabbit.pid"),
            ERL_CRASH_DUMP=str(self.log_dir / "erl_crash.dump"),
            # Erlang distribution on loopback only
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    # process state
    def _pid(self) -> int | None:
        """The node's process group id while any of its processes is alive, else None.

        rabbitmq-server stays as a /bin/sh wrapper (pid == pgid, saved in the pid file) around
        beam.smp; both are recognised by HOME == our erlang home, which guards against pid reuse.
        """
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None  # reaped: it exited
        if self._proc is not None:
            # Launched by this object and alive: the node, without asking its environment
            # (unreadable for an instant while the wrapper execs its way to beam.smp, which
            # made a starting node look gone: "exited during start-up").
            return self._proc.pid
        try:
            pgid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if self._is_ours(pgid):
            return pgid
        for proc in psutil.process_iter(["name"]):  # wrapper gone but beam left behind?
            if proc.info["name"] == "beam.smp" and self._is_ours(proc.pid):
                try:
                    return os.getpgid(proc.pid)
                except ProcessLookupError:
                    continue
        return None

    def _is_ours(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return proc.environ().get("HOME") == str(self.erlang_home)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False

    def running(self) -> bool:
        return self._pid() is not None

    def answering(self) -> bool:
        """AMQP accepts a connection and the management API answers."""
        guest = self._uri(*GUEST)  # a node made before it had accounts, until replaced
        if not (amqp_reachable(self.amqp_uri, timeout=2) or amqp_reachable(guest, timeout=2)):
            return False
        try:
            import requests
            for auth in (self._admin_auth, GUEST):
                response = requests.get(f"{self.management_url}/api/overview", auth=auth,
                                        timeout=2)
                if response.status_code == 200:
                    return True
            return False
        except Exception:
            return False

    @contextlib.contextmanager
    def _locked(self, timeout: float):
        """Serialise start/stop across processes sharing a home (polling, so eventlet-friendly)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock_file, "a") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise BootstrapError(f"another process keeps {self.lock_file} locked "
                                             "(starting or stopping this node)")
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def start(self, timeout: float = START_TIMEOUT) -> "PrivateBroker":
        """Start the node unless it is already up; return once AMQP and management answer."""
        ensure_rabbitmq_installed()
        with self._locked(timeout + STOP_TIMEOUT):
            if self.running() and (self.answering() or
                                   self._wait_ready(timeout, launched=False)):
                self._replace_guest()
                return self
            # Not running, or what looked like it were the last processes of a node killed a
            # moment ago (kill -9 of beam leaves its wrapper shell to exit after it): start one.
            # A stray epmd from an earlier crash (a kill -9 leaves it) would keep its port and
            # make the node move to new ports, away from every client's URI: stop it first.
            self._stop_epmd()
            state = self._ensure_state()
            self._write_config(state)
            with open(self.server_log, "ab") as log:
                log.write(f"\n--- orglife start {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n"
                          .encode())
                log.flush()
                self._proc = subprocess.Popen(
                    [str(RABBITMQ_SERVER)],
                    cwd=self.root,
                    env=self._environment(state),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stop() signals all of it
                )
            self.pid_file.write_text(f"{self._proc.pid}\n")
            self._wait_ready(timeout, launched=True)
        return self

    def _wait_ready(self, timeout: float, launched: bool) -> bool:
        """Until the node answers (True). A node this call did not launch that goes away
        meanwhile: False (the caller starts one); one it launched: an error with its logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                if not launched:
                    return False
                self._stop_epmd()
                raise BootstrapError(
                    f"the private RabbitMQ node exited during start-up.\n{self._log_tails()}"
                )
            if self.answering():
                self._replace_guest()
                return True
            time.sleep(0.25)
        if launched:
            self._stop_unlocked(STOP_TIMEOUT)  # we hold the start lock already
        raise BootstrapError(
            f"the private RabbitMQ node did not answer within {timeout:.0f} s"
            f"{' and was stopped' if launched else ''}.\n{self._log_tails()}"
        )

    def _log_tails(self) -> str:
        return (f"--- {self.server_log} ---\n{_tail(self.server_log)}\n"
                f"--- {self.log_dir / 'rabbit.log'} ---\n{_tail(self.log_dir / 'rabbit.log')}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the node's process group (SIGTERM, SIGKILL after `timeout`) and its private epmd.

        A graceful stop takes ~6 s here: the management plugin waits 5 s while shutting down.
        """
        with self._locked(timeout + START_TIMEOUT):
            self._stop_unlocked(timeout)

    def _stop_unlocked(self, timeout: float) -> None:
        pgid = self._pid()
        if pgid is not None:
            self._signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.running():
                self._signal_group(pgid, signal.SIGKILL)
                while self.running() and time.monotonic() < deadline + 5:
                    time.sleep(0.1)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)  # reap our child, or it lingers as a zombie
            except subprocess.TimeoutExpired:
                pass
            self._proc = None
        self._stop_epmd()
        self.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _signal_group(pgid: int, signum: int) -> None:
        try:
            os.killpg(pgid, signum)  # start_new_session: pgid == the wrapper's pid
        except ProcessLookupError:
            pass

    def _stop_epmd(self) -> None:
        """Kill this node's epmd: it daemonizes into its own session, out of the group's reach.

        Ours is recognised by the private port or by HOME == our erlang home (both inherited from
        the server's environment). SIGKILL at once: epmd keeps no state, and under gVisor it took
        ~2 s to act on SIGTERM.
        """
        port = str(self._load_state().get("epmd") or "")
        victims = []
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] != "epmd":
                continue
            try:
                env = proc.environ()
                if (port and env.get("ERL_EPMD_PORT") == port) or \
                        env.get("HOME") == str(self.erlang_home):
                    proc.kill()
                    victims.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        wait_dead(victims, timeout=5)

    # management HTTP API
    def _api(self, method: str, path: str, **kwargs):
        from orglife.accounts import ManagementApi
        return ManagementApi(self.management_url, *self._admin_auth).call(method, path,
                                                                          **kwargs)

    def create_vhost(self, name: str) -> None:
        """Create a vhost (idempotent) with full rights for the admin account."""
        self._api("PUT", f"vhosts/{quote(name, safe='')}", json={})
        self._grant(ADMIN_USER, name, FULL_PERMISSIONS)

    def delete_vhost(self, name: str) -> None:
        """Delete a vhost and everything in it; a missing vhost is not an error."""
        import requests

        response = requests.delete(f"{self.management_url}/api/vhosts/{quote(name, safe='')}",
                                   auth=self._admin_auth, timeout=10)
        if response.status_code not in (200, 201, 204, 404):
            raise RuntimeError(f"cannot delete vhost {name!r}: {response.status_code} {response.text}")

    def add_user(self, name: str, password: str, vhost: str,
                 permissions: dict | None = None, topic: dict | None = None) -> None:
        """Create or update a user with `permissions` on `vhost` (default: full)."""
        from orglife.accounts import ManagementApi
        ManagementApi(self.management_url, *self._admin_auth).account(
            name, password, vhost, permissions or FULL_PERMISSIONS, topic)

    def service_account(self, service: str, vhost: str = "/", system=None) -> str:
        """The AMQP URI of `service`'s own account (SPEC §7): it may publish only to its own
        exchange (and the parking exchange) and read only its own queues, as derived from the
        system declaration (orglife/common/topology.py `service_permissions`)."""
        from orglife.common.system import load_system
        from orglife.common.topology import rpc_topic_permissions, service_permissions
        user = f"orglife-{service}"
        system = load_system(system)
        self.add_user(user, self._password(user), vhost, service_permissions(system, service),
                      rpc_topic_permissions(service, system.service(service).calls))
        return self._uri(user, self._password(user), vhost)

    def peer_account(self, name: str, vhost: str = "/") -> str:
        """An account for a peer system: it may only publish to `intake.events`."""
        from orglife.common.topology import PEER_PERMISSIONS
        user = f"peer-{name}"
        self.add_user(user, self._password(user), vhost, PEER_PERMISSIONS)
        return self._uri(user, self._password(user), vhost)

    def _grant(self, user: str, vhost: str, permissions: dict) -> None:
        self._api("PUT", f"permissions/{quote(vhost, safe='')}/{quote(user, safe='')}",
                  json=permissions)

    def _replace_guest(self) -> None:
        """No guest on our node: a node made before it had accounts gets the admin account
        (created through guest) and loses guest."""
        import requests
        url = f"{self.management_url}/api"
        if requests.get(f"{url}/whoami", auth=self._admin_auth, timeout=5).status_code != 200:
            user = quote(ADMIN_USER, safe="")
            for method, path, body in (
                    ("PUT", f"users/{user}", {"password": self._admin_password(),
                                              "tags": "administrator"}),
                    ("PUT", f"permissions/%2F/{user}", FULL_PERMISSIONS)):
                answer = requests.request(method, f"{url}/{path}", json=body, auth=GUEST,
                                          timeout=10)
                if answer.status_code >= 400:
                    raise BootstrapError(
                        f"the RabbitMQ node in {self.root} knows neither its admin account nor "
                        f"guest ({answer.status_code}); remove {self.root} to start afresh")
        requests.delete(f"{url}/users/guest", auth=self._admin_auth, timeout=10)

    def queues(self, vhost: str = "/") -> list[dict]:
        """Queues of a vhost: name, messages, messages_ready, consumers.

        Depths come from the "queue totals" view, which is current (measured: a publish shows at
        once); the plain view only refreshes every ~5 s (the management sample interval, not
        collect_statistics_interval). Consumer counts exist only in the plain view, so they can
        lag by up to ~5 s.
        """
        path = f"queues/{quote(vhost, safe='')}"
        totals = self._api("GET", path, params={"disable_stats": "true",
                                                "enable_queue_totals": "true"}).json()
        stats = self._api("GET", path, params={"columns": "name,consumers"}).json()
        consumers = {queue["name"]: queue.get("consumers") or 0 for queue in stats}
        return [
            {
                "name": queue["name"],
                "messages": queue.get("messages") or 0,
                "messages_ready": queue.get("messages_ready") or 0,
                "consumers": consumers.get(queue["name"], 0),
            }
            for queue in totals
        ]
