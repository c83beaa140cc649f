"""`python -m orglife.runner SERVICE`: one service process, configured from the environment.

SERVICE is any service of the system declaration (orglife/system.py, or the one named by
ORGLIFE_SYSTEM). `orglife up` starts each instance as

    python -m orglife.runner SERVICE --instance N --supervise

a small supervisor that runs the service in a child process and starts it again whenever it
exits without being asked to (a kill -9, or a container that died: the child then exits on
purpose rather than linger without consuming), with a growing pause between restarts. The
child writes a heartbeat file (`ORGLIFE_HOME/run/SERVICE-N.alive`) every couple of seconds
while its nameko container runs, so `orglife status` can tell an instance that answers from
one that is only a process. docker-compose runs the service directly (the engine restarts it).
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402  before anything imports socket or threading

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)

from nameko.runners import ServiceRunner  # noqa: E402

from orglife.common.config import load_settings  # noqa: E402
from orglife.common.system import load_system  # noqa: E402

log = logging.getLogger("orglife")

HEARTBEAT_SECONDS = 2.0
DIED_EXIT_CODE = 70  # the container died: the supervisor starts the service again
RESTART_PAUSES = (1, 2, 5, 10, 30)  # seconds before the 1st, 2nd, ... quick restart
STEADY_SECONDS = 60  # a child that ran this long resets the pause
# A graceful stop lets running workers finish; one that takes longer is killed (`down` sends
# SIGKILL after 15 s: orglife/stack.py stop_pids).
STOP_SECONDS = 8.0
KILL_SECONDS = 3.0  # nameko's kill, bounded too (see stop_or_kill)
RELAY_SECONDS = 2.0  # then the relay process (ORGLIFE_RELAY=process) is waited for


def main(argv=None) -> None:
    settings = load_settings()
    system = load_system(settings.system)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=system.names)
    parser.add_argument("--instance", type=int, default=None,
                        help="instance number under `orglife up` (heartbeat and state files)")
    parser.add_argument("--supervise", action="store_true",
                        help="run the service in a child process, restarting it when it dies")
    parser.add_argument("--relay-only", action="store_true",
                        help="run only the service's outbox relay (started by the service "
                             "itself when ORGLIFE_RELAY=process)")
    args = parser.parse_args(argv)
    role = "supervisor" if args.supervise else "relay" if args.relay_only else "service"
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.service} {role} "
                                                   "%(levelname)s %(name)s: %(message)s")
    # Broker client chatter at DEBUG may print message bodies (phones, e-mail addresses).
    for noisy in ("amqp", "kombu"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = eventlet.event.Event()

    def request_stop(signum, frame):
        if not stop.ready():
            stop.send(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    declared = system.service(args.service)
    if args.supervise:
        sys.exit(supervise(args.service, args.instance, settings, stop))
    if args.relay_only:
        return run_relay(declared, settings, system, stop)
    sys.exit(run_service(declared, args.instance, settings, stop))


# -- the service process -----------------------------------------------------------------------
def run_service(declared, instance: int | None, settings, stop) -> int:
    config = settings.nameko_config(declared.name)
    relay_process = None
    if settings.relay_mode == "process" and declared.database:  # no database, no outbox
        # The relay gets a process (and so a core) of its own; the lease keeps it the only
        # publisher of this database's outbox, and the service's outbox rows wait for it.
        relay_process = subprocess.Popen(
            [sys.executable, "-m", "orglife.runner", declared.name, "--relay-only"])
    runner = ServiceRunner(config)
    runner.add_service(declared.load_class())
    runner.start()
    log.info("%s running (relay: %s)", declared.name, settings.relay_mode)
    died = eventlet.event.Event()

    def watch():
        try:
            runner.wait()  # returns when the containers stop; raises when one died
        except Exception as exc:  # noqa: BLE001 - whatever killed it, the process must go
            log.error("the %s container died (%s: %s); exiting so that it is restarted",
                      declared.name, type(exc).__name__, exc)
            died.send(True)
            if not stop.ready():
                stop.send("died")

    eventlet.spawn(watch)
    heart = heartbeat_file(settings, declared.name, instance)
    beating = eventlet.spawn(beat, heart, runner) if heart else None
    stop.wait()
    if beating is not None:
        beating.kill()
        heart.unlink(missing_ok=True)
    if not died.ready():
        stop_or_kill(runner, declared.name)
    if relay_process is not None:
        relay_process.terminate()
        try:
            relay_process.wait(timeout=RELAY_SECONDS)
        except subprocess.TimeoutExpired:
            relay_process.kill()  # its lease dies with it; a successor takes the outbox
            relay_process.wait()
    return DIED_EXIT_CODE if died.ready() else 0


def stop_or_kill(runner, name: str, seconds: float = STOP_SECONDS,
                 kill_seconds: float = KILL_SECONDS) -> bool:
    """Stop the containers gracefully (running workers finish, their messages are acked), or
    kill them when that takes over `seconds`: with its broker gone nameko's stop waits on
    reconnecting consumers. Killed workers roll back and their messages come back to another
    instance, handled once (the inbox). True when the stop was graceful."""
    try:
        with eventlet.Timeout(seconds):
            runner.stop()
        return True
    except eventlet.Timeout:
        log.warning("%s did not stop within %.0f s (its broker gone?); killing its containers",
                    name, seconds)
    try:  # nameko's kill also waits for a consumer stuck reconnecting: bounded as well
        with eventlet.Timeout(kill_seconds):
            runner.kill()
    except eventlet.Timeout:
        log.warning("%s: killing its containers took over %.0f s; exiting without them "
                    "(unacked messages go back to the broker, open transactions roll back)",
                    name, kill_seconds)
    return False


def heartbeat_file(settings, service: str, instance: int | None) -> Path | None:
    if instance is None:
        return None
    return settings.home / "run" / f"{service}-{instance}.alive"


def beat(path: Path, runner: ServiceRunner) -> None:
    """Touch `path` while every container of this process is running."""
    while True:
        if all(c.started and not c._died.ready() for c in runner.containers):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{time.time():.3f} {os.getpid()}\n")
        eventlet.sleep(HEARTBEAT_SECONDS)


def die_with_parent() -> None:
    """Linux: this process gets SIGTERM when its parent dies (a kill -9 of the service must not
    leave its relay behind, holding the outbox's lease)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the lease still dies with the process
        pass


def run_relay(service, settings, system, stop) -> None:
    die_with_parent()
    if os.getppid() == 1:  # the parent died before prctl took effect
        return
    from orglife.common.db import make_engine
    from orglife.common.outbox import OutboxRelay
    backbone = importlib.import_module(f"{service.package}.models").backbone
    relay = OutboxRelay(make_engine(settings.db_url(service.name)), backbone,
                        settings.nameko_config(service.name)["AMQP_URI"], service.name,
                        poll_interval=0.02, system=system)
    worker = eventlet.spawn(relay.run)
    stop.wait()
    relay.stop()
    worker.wait()


# -- the supervisor ----------------------------------------------------------------------------
def state_file(settings, service: str, instance: int | None) -> Path | None:
    if instance is None:
        return None
    return settings.home / "run" / f"{service}-{instance}.state"


def supervise(service: str, instance: int | None, settings, stop) -> int:
    """Run the service as a child; start it again whenever it exits unasked."""
    command = [sys.executable, "-m", "orglife.runner", service]
    if instance is not None:
        command += ["--instance", str(instance)]
    state_path = state_file(settings, service, instance)
    restarts, quick, last_exit = 0, 0, None
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        write_state(state_path, {"worker_pid": child.pid, "restarts": restarts,
                                 "last_exit": last_exit, "started_at": time.time()})
        while child.poll() is None and not stop.ready():
            stop.wait(0.5)
        if stop.ready():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            return 0
        quick = 0 if time.monotonic() - started > STEADY_SECONDS else quick + 1
        pause = RESTART_PAUSES[min(max(quick - 1, 0), len(RESTART_PAUSES) - 1)]
        restarts, last_exit = restarts + 1, child.returncode
        log.warning("%s exited (code %s); starting it again in %ss (restart %d)",
                    service, child.returncode, pause, restarts)
        write_state(state_path, {"worker_pid": None, "restarts": restarts,
                                 "last_exit": child.returncode, "restarting_at":
                                 time.time() + pause})
        stop.wait(pause)
        if stop.ready():
            return 0


def write_state(path: Path | None, state: dict) -> None:
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


if __name__ == "__main__":
    main()
