"""Local endpoints for the notification channels: an SMTP sink and HTTP recorders.

A newcomer's demo and the tests send real e-mails, SMS and robot messages, never mocks, to real
servers on loopback:

- SMTP: `python -m aiosmtpd -n -l 127.0.0.1:PORT -c orglife.smtpsink.RawMaildir DIR`, a process of
  its own (aiosmtpd's threaded Controller is fragile inside an eventlet-patched process:
  KNOWN-TRAPS); what arrived is read back from the Maildir.
- HTTP recorder: `python -m orglife.devservers http --port N --record FILE`, a plain
  `http.server` process (no eventlet) that records every request to a JSONL file and answers like
  an SMS gateway or a robot (`{"errcode": 0, "errmsg": "ok", "code": 0}`). `POST /_control`
  makes the next requests fail on purpose; `GET /_requests` lists what it recorded.
- `LocalEndpoints` starts the three (SMTP, SMS gateway, robot) on free loopback ports under one
  folder, gives their URLs, reads what they received and stops them: each runs in a process group
  of its own, which `stop()` (also reached from `with` on errors) signals whole.

`python -m orglife.devservers up --dir DIR` runs all three until Ctrl-C and prints the
ORGLIFE_SMTP_URL / ORGLIFE_SMS_URL / ORGLIFE_WEBHOOK_URL lines to use.

This module imports neither eventlet nor nameko: the servers must stay plain blocking code.
"""
from __future__ import annotations

import argparse
import email
import email.policy
import importlib.util
import json
import mailbox
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from orglife.broker import free_ports, wait_dead

HOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
SUCCESS_ANSWER = {"errcode": 0, "errmsg": "ok", "code": 0}
FAILURE_MODES = ("http500", "http", "errcode", "timeout", "close")
_SRC = Path(__file__).resolve().parents[1]  # so a child finds orglife even without an install


# --- reading what arrived ------------------------------------------------------------------------

@dataclass
class ReceivedMail:
    """One message as the SMTP sink stored it, headers decoded."""

    to: str
    sender: str
    subject: str
    body: str
    envelope_to: str
    message_id: str


def read_maildir(path: Path) -> list[ReceivedMail]:
    """Every message in a Maildir, oldest first, with its Subject and text body decoded."""
    path = Path(path)
    if not (path / "new").exists() and not (path / "cur").exists():
        return []
    box = mailbox.Maildir(str(path), factory=None, create=False)
    mails = []
    for key in box.keys():
        try:
            raw = box.get_bytes(key)
        except (FileNotFoundError, KeyError):  # moved while we listed
            continue
        message = email.message_from_bytes(raw, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain",))
        body = part.get_content() if part is not None else ""
        mails.append((key, ReceivedMail(
            to=str(message.get("To", "")), sender=str(message.get("From", "")),
            subject=str(message.get("Subject", "")), body=body,
            envelope_to=str(message.get("X-RcptTo", "")),
            message_id=str(message.get("Message-ID", "")))))
    mails.sort(key=lambda item: item[0])  # Maildir names start with the delivery time
    return [mail for _, mail in mails]


def read_records(path: Path) -> list[dict]:
    """What an HTTP recorder wrote to its JSONL file, in arrival order."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:  # a line being written right now
                continue
    return records


# --- the HTTP recorder (runs in its own process) -------------------------------------------------

class RecorderState:
    """What the recorder remembers: the requests so far and the failures still to play."""

    def __init__(self, record_file: Path):
        self.record_file = Path(record_file)
        self.lock = threading.Lock()
        self.records: list[dict] = read_records(self.record_file)
        self.pending: list[dict] = []  # failure plans, each with "remaining"

    def plan_failures(self, plan: dict) -> dict:
        """Queue a `/_control` plan; returns an error message dict, or the queue."""
        if plan.get("reset"):
            with self.lock:
                self.pending.clear()
        if "fail" not in plan:
            return {"ok": True, "pending": self.pending_copy()}
        mode = plan.get("mode", "http500")
        if mode not in FAILURE_MODES:
            return {"ok": False, "error": f"mode must be one of {', '.join(FAILURE_MODES)}"}
        count = int(plan["fail"])
        entry = {"remaining": count, "mode": mode, "path": plan.get("path") or "",
                 "status": int(plan.get("status", 500)), "errcode": int(plan.get("errcode", -1)),
                 "errmsg": str(plan.get("errmsg", "failing on purpose")),
                 "delay": float(plan.get("delay", 30.0)), "retry_after": plan.get("retry_after")}
        with self.lock:
            if count > 0:
                self.pending.append(entry)
        return {"ok": True, "pending": self.pending_copy()}

    def pending_copy(self) -> list[dict]:
        with self.lock:
            return [dict(entry) for entry in self.pending]

    def take_failure(self, path: str) -> dict | None:
        """The next planned failure for this path (plans are played in the order given)."""
        with self.lock:
            for entry in self.pending:
                if path.startswith(entry["path"]):
                    entry["remaining"] -= 1
                    if entry["remaining"] <= 0:
                        self.pending.remove(entry)
                    return dict(entry)
        return None

    def record(self, entry: dict) -> None:
        with self.lock:
            entry["seq"] = len(self.records) + 1
            self.records.append(entry)
            with self.record_file.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.records)


class RecorderHandler(BaseHTTPRequestHandler):
    """Answers like an SMS gateway or a robot; records first, then answers (or fails on purpose)."""

    server_version = "orglife-recorder/1"
    # HTTP/1.1 keeps a sender's connection open between requests, as real gateways do
    # (every answer carries its Content-Length); one idle this long is closed.
    protocol_version = "HTTP/1.1"
    timeout = 30
    # An answer goes out in two writes (head, then body): with Nagle's algorithm the body
    # would wait for the sender's delayed ACK, 40 ms per request on a kept connection.
    disable_nagle_algorithm = True
    state: RecorderState  # set on the subclass made by `serve_recorder`

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = urlsplit(self.path).path
        if path == "/_requests":
            self._reply(200, self.state.snapshot())
        elif path == "/_health":
            self._reply(200, {"ok": True})
        else:
            self._reply(404, {"errcode": 404, "errmsg": "not found", "code": 404})

    def do_POST(self):  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = None
        if urlsplit(self.path).path == "/_control":
            answer = self.state.plan_failures(body if isinstance(body, dict) else {})
            self._reply(200 if answer["ok"] else 400, answer)
            return
        failure = self.state.take_failure(self.path)
        entry = {"time": datetime.now(timezone.utc).isoformat(), "method": "POST",
                 "path": self.path, "body": body,
                 "answer": failure["mode"] if failure else "ok"}
        if body is None:
            entry["raw"] = raw.decode("utf-8", "replace")
        self.state.record(entry)
        if body is None:
            self._reply(400, {"errcode": 400, "errmsg": "body is not JSON", "code": 400})
        elif failure is None:
            self._reply(200, SUCCESS_ANSWER)
        else:
            self._fail(failure)

    def _fail(self, failure: dict) -> None:
        mode = failure["mode"]
        if mode == "timeout":  # the request arrived; the answer never comes in time
            time.sleep(failure["delay"])
            self._reply(200, SUCCESS_ANSWER)
        elif mode == "close":  # the request arrived; the connection drops without an answer
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif mode == "errcode":
            code, message = failure["errcode"], failure["errmsg"]
            self._reply(200, {"errcode": code, "errmsg": message, "code": code, "msg": message})
        else:
            status = 500 if mode == "http500" else failure["status"]
            headers = {}
            if failure.get("retry_after") is not None:
                headers["Retry-After"] = str(failure["retry_after"])
            self._reply(status, {"errcode": -1, "errmsg": failure["errmsg"], "code": -1}, headers)

    def _reply(self, status: int, payload, headers: dict | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout mode)
            pass

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")


class RecorderServer(ThreadingHTTPServer):
    """A listen backlog for a sender's concurrent connections (the default of 5 dropped
    connections the notifications service had already sent on)."""

    request_queue_size = 128


def serve_recorder(port: int, record_file: Path, host: str = HOST,
                   parent_pid: int | None = None) -> None:
    """Run the recorder until killed (or until the process that started it is gone)."""
    state = RecorderState(record_file)
    handler = type("BoundRecorderHandler", (RecorderHandler,), {"state": state})
    server = RecorderServer((host, port), handler)
    server.daemon_threads = True  # a request sleeping in timeout mode never delays exit
    if parent_pid:
        _exit_with_parent(parent_pid)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def _exit_with_parent(parent_pid: int) -> None:
    """A test run killed with -9 cannot stop us: leave by ourselves when our parent is gone."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# --- managing the processes ----------------------------------------------------------------------

class ManagedProcess:
    """A child process in a process group of its own, so stopping it stops all it started."""

    def __init__(self, name: str, argv: list[str], log_path: Path):
        self.name = name
        self.argv = argv
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_SRC), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM to the group, SIGKILL after `timeout`, and reap the child."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group's id is the child's pid
        _signal_group(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)
        _signal_group(pgid, signal.SIGKILL)  # anything of the group that outlived its leader
        self.proc = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


class LocalServer:
    """One local endpoint: started on a free port (another one if that port got taken)."""

    name = "server"

    def __init__(self, folder: Path, host: str = HOST):
        self.folder = Path(folder)
        self.host = host
        self.port: int | None = None
        self.process: ManagedProcess | None = None

    def argv(self, port: int) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    @property
    def pid_file(self) -> Path:
        return self.folder / f"{self.name}.pid"

    def start(self, timeout: float = START_TIMEOUT, attempts: int = 3,
              port: int | None = None) -> "LocalServer":
        """Start on `port` if it is free (a detached endpoint started again keeps its URL),
        else on a free port."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        for attempt in range(attempts):
            self.port = port if attempt == 0 and port and _port_free(self.host, port) \
                else free_ports(1)[0]
            self.process = ManagedProcess(self.name, self.argv(self.port),
                                          self.folder / f"{self.name}.log")
            self.process.start()
            self.pid_file.write_text(f"{self.process.pid}\n")
            if self._wait_ready(timeout):
                return self
            self.process.stop()  # exited early (port taken in between) or never answered
        raise RuntimeError(f"local {self.name} server did not start; its log ends with:\n"
                           f"{self.process.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.alive():
                return False
            if self.ready():
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        self.pid_file.unlink(missing_ok=True)

    def _stop_leftover(self) -> None:
        """A run killed with -9 cannot stop its servers (aiosmtpd has no parent watch): stop
        the one this folder's pid file names, if it is still ours (its command names our
        folder), before starting anew."""
        try:
            pid = int(self.pid_file.read_text().strip())
            leftover = psutil.Process(pid)
            if str(self.folder) not in " ".join(leftover.cmdline()):
                return
        except (OSError, ValueError, psutil.Error):
            return
        _signal_group(pid, signal.SIGKILL)
        wait_dead([leftover], timeout=STOP_TIMEOUT)  # not wait_procs: eventlet drops poll()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class SmtpSink(LocalServer):
    """aiosmtpd storing every message in a Maildir."""

    name = "smtp"

    def __init__(self, folder: Path, host: str = HOST):
        super().__init__(folder, host)
        self.maildir = self.folder / "maildir"

    def argv(self, port: int) -> list[str]:
        if importlib.util.find_spec("aiosmtpd") is None:
            raise RuntimeError("aiosmtpd is not installed: pip install -r requirements.lock")
        return [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{self.host}:{port}",
                "-c", "orglife.smtpsink.RawMaildir", str(self.maildir)]

    def ready(self) -> bool:
        try:
            smtp = smtplib.SMTP(self.host, self.port, local_hostname="localhost", timeout=1.0)
        except OSError:
            return False
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
        return True

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def mails(self) -> list[ReceivedMail]:
        return read_maildir(self.maildir)


class HttpRecorder(LocalServer):
    """The recorder process, answering at `path` (any other path is answered the same way)."""

    def __init__(self, folder: Path, name: str, path: str, host: str = HOST,
                 watch_parent: bool = True):
        super().__init__(folder, host)
        self.name = name
        self.path = path
        self.record_file = self.folder / f"{name}.jsonl"
        self.watch_parent = watch_parent  # False: detached, outlives the process starting it

    def argv(self, port: int) -> list[str]:
        argv = [sys.executable, "-m", "orglife.devservers", "http", "--host", self.host,
                "--port", str(port), "--record", str(self.record_file)]
        if self.watch_parent:
            argv += ["--parent", str(os.getpid())]
        return argv

    def ready(self) -> bool:
        try:
            return self._call("GET", "/_health").get("ok") is True
        except OSError:
            return False

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def url_for(self, name: str, query: str = "") -> str:
        """A URL of its own below `path` (a test's own robot or gateway); same behaviour."""
        base = urlsplit(self.path).path.rstrip("/")
        return f"{self.base_url}{base}/{name}" + (f"?{query}" if query else "")

    def requests(self, path_prefix: str | None = None) -> list[dict]:
        """What it recorded (from its file: readable after the process stopped too)."""
        records = read_records(self.record_file)
        if path_prefix:
            records = [r for r in records if r["path"].startswith(path_prefix)]
        return records

    def fail_next(self, count: int, mode: str = "http500", path: str | None = None,
                  **options) -> dict:
        """Make the next `count` requests (below `path`, if given) fail on purpose."""
        plan = {"fail": count, "mode": mode, **options}
        if path:
            plan["path"] = path
        return self._call("POST", "/_control", plan)

    def reset_failures(self) -> dict:
        return self._call("POST", "/_control", {"reset": True})

    def _call(self, method: str, path: str, payload: dict | None = None):
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5.0) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read().decode("utf-8") or "{}")


class LocalEndpoints:
    """The SMTP sink, the SMS gateway and the robot, side by side under one folder."""

    def __init__(self, folder: Path, robot_flavour: str = "dingtalk", detached: bool = False):
        self.folder = Path(folder)
        self.smtp = SmtpSink(self.folder / "smtp")
        self.sms = HttpRecorder(self.folder / "http", "sms", "/sms", watch_parent=not detached)
        self.robot = HttpRecorder(self.folder / "http", "robot", f"/robot?flavour={robot_flavour}",
                                  watch_parent=not detached)

    @property
    def servers(self) -> list[LocalServer]:
        return [self.smtp, self.sms, self.robot]

    def start(self, ports: dict[str, int] | None = None) -> "LocalEndpoints":
        """Start the three (on `ports` by server name where those are free)."""
        try:
            for server in self.servers:
                server.start(port=(ports or {}).get(server.name))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - stop the others whatever happens to one
                pass

    def __enter__(self) -> "LocalEndpoints":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def smtp_url(self) -> str:
        return self.smtp.url

    @property
    def sms_url(self) -> str:
        return self.sms.url

    @property
    def robot_url(self) -> str:
        return self.robot.url

    def config(self) -> dict[str, str]:
        """The environment (or nameko config) entries that point orglife at these endpoints."""
        return {"ORGLIFE_SMTP_URL": self.smtp_url, "ORGLIFE_SMS_URL": self.sms_url,
                "ORGLIFE_WEBHOOK_URL": self.robot_url}

    def mails(self) -> list[ReceivedMail]:
        return self.smtp.mails()

    def pids(self) -> list[int]:
        return [server.pid for server in self.servers if server.pid]


# --- detached endpoints (the demo's): started once, kept running, found by their state file ---

STATE_FILE = "endpoints.json"
SERVER_NAMES = ("smtp", "sms", "robot")
URL_KEYS = {"smtp": "ORGLIFE_SMTP_URL", "sms": "ORGLIFE_SMS_URL", "robot": "ORGLIFE_WEBHOOK_URL"}


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def detached_state(folder: Path) -> dict | None:
    """What `start_detached` wrote under `folder` (None: it never ran there)."""
    try:
        state = json.loads((Path(folder) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("servers"), dict) else None


def _ours(pid: int | None, folder: Path) -> psutil.Process | None:
    """The process `pid` if it is alive and one of this folder's endpoints (its command names
    the folder), else None: a pid reused by another program is never signalled."""
    if not pid:
        return None
    try:
        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if str(Path(folder)) not in " ".join(process.cmdline()):
            return None
        return process
    except (psutil.Error, ValueError):
        return None


def detached_status(folder: Path) -> list[dict]:
    """Each detached endpoint: name, URL, whether it runs, and how much it received."""
    state = detached_state(folder)
    if state is None:
        return []
    folder = Path(folder)
    received = {"smtp": _count_maildir(folder / "smtp" / "maildir"),
                "sms": len(read_records(folder / "http" / "sms.jsonl")),
                "robot": len(read_records(folder / "http" / "robot.jsonl"))}
    rows = []
    for name in SERVER_NAMES:
        entry = state["servers"].get(name) or {}
        rows.append({"endpoint": name, "url": entry.get("url"),
                     "up": _ours(entry.get("pid"), folder) is not None,
                     "pid": entry.get("pid"), "received": received[name]})
    return rows


def _count_maildir(path: Path) -> int:
    return sum(1 for sub in ("new", "cur") if (path / sub).is_dir()
               for _ in (path / sub).iterdir())


def detached_urls(folder: Path) -> dict[str, str]:
    """ORGLIFE_SMTP_URL / ORGLIFE_SMS_URL / ORGLIFE_WEBHOOK_URL of the detached endpoints under
    `folder`, only if all three are running (else nothing: never a URL nobody answers)."""
    rows = detached_status(folder)
    if not rows or not all(row["up"] for row in rows):
        return {}
    return {URL_KEYS[row["endpoint"]]: row["url"] for row in rows}


def start_detached(folder: Path) -> dict[str, str]:
    """Start the three endpoints as processes that outlive the caller (each in a session of its
    own, no parent watch), unless they already run; on the ports they had before when those are
    free. Writes the state file (URLs and pids) and returns the URLs."""
    folder = Path(folder)
    urls = detached_urls(folder)
    if urls:
        return urls
    stop_detached(folder)  # some of them only: start the three afresh
    previous = detached_state(folder) or {"servers": {}}
    ports = {name: (previous["servers"].get(name) or {}).get("port") for name in SERVER_NAMES}
    endpoints = LocalEndpoints(folder, detached=True).start(ports)
    servers = {server.name: {"pid": server.pid, "port": server.port, "url": server.url}
               for server in endpoints.servers}
    state = {"servers": servers, "robot_base": endpoints.robot.base_url,
             "started_at": datetime.now(timezone.utc).isoformat()}
    (folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    return {URL_KEYS[name]: entry["url"] for name, entry in servers.items()}


def stop_detached(folder: Path, timeout: float = STOP_TIMEOUT) -> list[str]:
    """Stop the detached endpoints under `folder` (their process groups); the state file stays,
    so that they can be started again on the same ports. Returns the names stopped."""
    folder = Path(folder)
    state = detached_state(folder)
    if state is None:
        return []
    stopped, processes = [], []
    for name in SERVER_NAMES:
        process = _ours((state["servers"].get(name) or {}).get("pid"), folder)
        if process is not None:
            _signal_group(process.pid, signal.SIGTERM)
            processes.append(process)
            stopped.append(name)
    if processes and not wait_dead(processes, timeout=timeout):
        for process in processes:
            _signal_group(process.pid, signal.SIGKILL)
        wait_dead(processes, timeout=timeout)
    for server in ("smtp/smtp.pid", "http/sms.pid", "http/robot.pid"):
        (folder / server).unlink(missing_ok=True)
    return stopped


def robot_url_for(folder: Path, name: str, query: str = "") -> str | None:
    """A robot webhook of its own on the detached recorder (an organization's group robot)."""
    state = detached_state(folder)
    if state is None or not state.get("robot_base"):
        return None
    return f"{state['robot_base']}/robot/{name}" + (f"?{query}" if query else "")


# --- command line --------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orglife.devservers",
                                     description="Local endpoints for orglife's notifications.")
    commands = parser.add_subparsers(dest="command", required=True)
    http = commands.add_parser("http", help="run an HTTP recorder (SMS gateway / robot)")
    http.add_argument("--port", type=int, required=True)
    http.add_argument("--record", type=Path, required=True, help="JSONL file of requests")
    http.add_argument("--host", default=HOST)
    http.add_argument("--parent", type=int, default=None, help="exit when this process is gone")
    up = commands.add_parser("up", help="run the SMTP sink, SMS gateway and robot until Ctrl-C")
    up.add_argument("--dir", type=Path, default=Path(".orglife") / "devservers")
    received = commands.add_parser("received", help="print what the endpoints under --dir got")
    received.add_argument("--dir", type=Path, default=Path(".orglife") / "devservers")
    args = parser.parse_args(argv)

    if args.command == "http":
        args.record.parent.mkdir(parents=True, exist_ok=True)
        serve_recorder(args.port, args.record, args.host, args.parent)
        return 0
    if args.command == "received":
        endpoints = LocalEndpoints(args.dir)
        out = {"mails": [vars(mail) for mail in endpoints.mails()],
               "sms": endpoints.sms.requests(), "robot": endpoints.robot.requests()}
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    return _run_until_interrupted(LocalEndpoints(args.dir))


def _interrupt(signum, frame):
    """SIGTERM ends `up` like Ctrl-C does: through `with`, which stops the endpoints."""
    raise KeyboardInterrupt


def _run_until_interrupted(endpoints: LocalEndpoints) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    with endpoints:
        for key, value in endpoints.config().items():
            print(f"{key}={value}", flush=True)
        print(f"# mail, requests and logs under {endpoints.folder}; Ctrl-C stops", flush=True)
        try:
            while all(server.process and server.process.alive() for server in endpoints.servers):
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
    print("a local endpoint exited; see its log under the folder", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
