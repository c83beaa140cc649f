"""A private PostgreSQL 15 cluster in a folder of ours.

Used by the tests of the PostgreSQL code paths and by the no-Docker deployment shape: no system
cluster is touched, the server listens on 127.0.0.1 only, on a port of its own. initdb and
pg_ctl refuse to run as root, so as root they run as the `postgres` account on a data folder
it owns (KNOWN-TRAPS).
"""
from __future__ import annotations

import os
import pwd
import shlex
import shutil
import stat
import subprocess
import time
from pathlib import Path

from .broker import BootstrapError, apt_install, free_ports, stop_new_processes_of

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RUN_AS = "postgres"
START_TIMEOUT = 60
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; "/.s.PGSQL.NNNNN" must fit as well


def ensure_postgres_installed() -> None:
    """Install the PostgreSQL 15 server via apt when missing; stop the cluster its package starts."""
    if (PG_BIN / "initdb").exists():
        return
    started = time.time()
    try:
        apt_install(["postgresql-15"], "PostgreSQL 15")
    except BootstrapError:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            raise
        apt_install(["postgresql"], "PostgreSQL")
    if shutil.which("pg_ctlcluster"):
        subprocess.run(["pg_ctlcluster", "15", "main", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop_new_processes_of(RUN_AS, started)
    if not (PG_BIN / "initdb").exists():
        raise BootstrapError(f"PostgreSQL was installed but {PG_BIN / 'initdb'} is missing; "
                             "this code expects PostgreSQL 15 (Debian bookworm)")


class PrivateCluster:
    """One PostgreSQL cluster: `start()` creates it on first use, `stop()` shuts it down.

    The port is kept in `<datadir>/orglife-port` so a restarted cluster keeps its URLs.
    `fast=True` trades crash safety for speed (fsync, synchronous_commit and full_page_writes
    off; room for 300 connections): right for tests, wrong for data you keep.
    """

    def __init__(self, datadir: Path | str, port: int | None = None, fast: bool = True):
        self.datadir = Path(datadir).expanduser().resolve()
        self.fast = fast
        self.logfile = self.datadir / "server.log"
        self._port_file = self.datadir / "orglife-port"
        self._port = port
        self._as_root = os.geteuid() == 0

    # running the server tools as the right account
    def _run(self, args: list[str], check: bool = True, timeout: float | None = None):
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_root:
            self._let_postgres_in()  # each time: e.g. pytest re-chmods its temp root to 0700
            command = ["runuser", "-u", RUN_AS, "--", *command]
        result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise BootstrapError(f"`{' '.join(args[:2])} ...` failed (exit {result.returncode}):\n"
                                 f"{result.stdout.strip()}{self._log_tail()}")
        return result

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return ""
        return f"\n--- {self.logfile} ---\n" + "\n".join(lines)

    def _prepare_datadir(self) -> None:
        """Create the data folder, owned by postgres (mode 0700) and reachable by it when root."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        if not self._as_root:
            self.datadir.chmod(0o700)
            return
        account = pwd.getpwnam(RUN_AS)
        self._let_postgres_in()
        os.chown(self.datadir, account.pw_uid, account.pw_gid)
        self.datadir.chmod(0o700)

    def _let_postgres_in(self) -> None:
        account = pwd.getpwnam(RUN_AS)
        for parent in reversed(self.datadir.parents):
            if parent.exists():
                self._let_traverse(parent, account)

    @staticmethod
    def _let_traverse(folder: Path, account: pwd.struct_passwd) -> None:
        """Add o+x to a parent folder postgres could not pass through (e.g. a 0700 temp dir).

        Only the search bit: postgres can reach known paths below it, not list the folder.
        """
        info = folder.stat()
        if info.st_uid == account.pw_uid:
            ok = info.st_mode & stat.S_IXUSR
        elif info.st_gid in {account.pw_gid, *os.getgrouplist(RUN_AS, account.pw_gid)}:
            ok = info.st_mode & stat.S_IXGRP
        else:
            ok = info.st_mode & stat.S_IXOTH
        if not ok:
            folder.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)

    # state
    @property
    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    @property
    def port(self) -> int:
        if self._port is None:
            try:
                self._port = int(self._port_file.read_text().strip())
            except (OSError, ValueError):
                self._port = free_ports(1)[0]
        return self._port

    def running(self) -> bool:
        if not self.initialized:
            return False
        return self._run(["pg_ctl", "status", "-D", str(self.datadir)], check=False).returncode == 0

    def _running_port(self) -> int | None:
        """The port of the running postmaster (line 4 of postmaster.pid)."""
        try:
            return int((self.datadir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            return None

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{dbname}"

    # lifecycle
    def start(self) -> "PrivateCluster":
        """Create the cluster if needed and start it; returns once it accepts connections."""
        ensure_postgres_installed()
        if not self.initialized:
            self._prepare_datadir()
            self._run(["initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres",
                       "-E", "UTF8", "--no-instructions"])
        if self.running():
            self._port = self._running_port() or self._port
            self._wait_accepting(START_TIMEOUT)
            return self
        self._port_file.write_text(f"{self.port}\n")
        options = [f"-p {self.port}", "-c listen_addresses=127.0.0.1"]
        if len(str(self.datadir)) < SOCKET_PATH_MAX - 16:
            options.append(f"-k {shlex.quote(str(self.datadir))}")
        else:  # too long for a Unix socket path: TCP only
            options.append("-c unix_socket_directories=''")
        if self.fast:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
                        # both lanes of `./orglife test` (orglife/testlanes.py) share one
                        # cluster, each test's services with pools of their own: room
                        # beyond the default 100
                        "-c max_connections=300"]
        self._run(["pg_ctl", "start", "-D", str(self.datadir), "-l", str(self.logfile),
                   "-w", "-t", str(START_TIMEOUT), "-o", " ".join(options)])
        self._wait_accepting(START_TIMEOUT)
        return self

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise BootstrapError(f"PostgreSQL in {self.datadir} does not accept connections "
                                     f"on port {self.port}{self._log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (disconnects clients, rolls back open transactions); no-op if stopped."""
        if self.running():
            self._run(["pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast", "-w",
                       "-t", str(START_TIMEOUT)])

    # databases
    def _admin_connection(self):
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname="postgres", connect_timeout=10)
        conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
        return conn

    def create_database(self, name: str) -> None:
        """Create a database unless it exists already."""
        from psycopg2 import sql

        conn = self._admin_connection()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting its sessions; a missing database is not an error."""
        from psycopg2 import sql

        conn = self._admin_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                            .format(sql.Identifier(name)))
        finally:
            conn.close()
