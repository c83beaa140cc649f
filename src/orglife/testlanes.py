"""`./orglife test` as two pytest processes at once (lanes).

Measured on this 2-core machine, the suite in one process kept the cores about half busy: most
of its time went to waiting for brokers, clusters, PostgreSQL and whole stacks of services to
start and settle. The tests that start their own stacks or nodes (`STACK_LANE`) therefore run
in one process while everything else runs in another; both use the one private RabbitMQ node
and PostgreSQL cluster of the test runs, started here first (so that neither lane's fixtures
start or stop them: tests/conftest.py leaves running what it found running).

A run that names tests (`./orglife test tests/members`), or ORGLIFE_TEST_LANES=1, is one
process, as plain pytest. This module imports neither eventlet nor nameko.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from orglife.common.config import REPO_ROOT

TEST_HOME = REPO_ROOT / ".orglife-test"  # tests/conftest.py's home of the shared node and cluster

# The modules that start stacks, clusters or nodes of their own (the longest of the suite);
# paths relative to the repository. Everything else is the other lane.
STACK_LANE = (
    "tests/integration/test_demo.py",
    "tests/integration/test_cluster.py",
    "tests/integration/test_chaos.py",
    "tests/integration/test_stack.py",
    "tests/integration/test_deployment.py",
    "tests/integration/test_private_nodes.py",
    "tests/bench",
    # these two set the service accounts' passwords on the shared node (RabbitMQ users are
    # the node's, not a vhost's): run one after another, never at once
    "tests/integration/test_accounts.py",
    "tests/dashboard/test_dashboard_http.py",
)

# Options two processes cannot share (one tmp folder, one cache of failures, one report file,
# one debugger prompt) or that --ignore, which pytest never applies to paths named to it:
# with any of them the run is one process.
ONE_PROCESS_OPTIONS = ("--ignore", "--deselect", "--basetemp", "--lf", "--last-failed",
                       "--ff", "--failed-first", "--sw", "--stepwise", "--nf", "--new-first",
                       "--pdb", "--trace", "--junitxml", "--junit-xml", "--report-log",
                       "--log-file", "--pyargs")

NO_TESTS = 5  # pytest's exit status when a lane selected nothing


def names_tests(args: list[str], root: Path = REPO_ROOT) -> bool:
    """True when the arguments name a test file, folder or node (`path::test`): then the
    caller chose what to run, and it runs as one process."""
    return any(not arg.startswith("-") and (root / arg.split("::")[0]).exists()
               for arg in args)


def lanes(args: list[str], stack: tuple[str, ...] = STACK_LANE) -> list[list[str]]:
    """The pytest argument lists to run at once: [args] alone when tests are named or lanes
    are turned off, else the stack lane and the rest (the same options in both)."""
    if names_tests(args) or os.environ.get("ORGLIFE_TEST_LANES", "2") == "1" or any(
            arg.split("=", 1)[0] in ONE_PROCESS_OPTIONS for arg in args):
        return [list(args)]
    return [[*args, *stack], [*args, *(f"--ignore={path}" for path in stack)]]


def combined(codes: list[int]) -> int:
    """One exit status for the lanes: the first failure's; a lane that selected nothing
    (`-k` matching only the other's tests) fails the run only if every lane did."""
    failed = [code for code in codes if code not in (0, NO_TESTS)]
    if failed:
        return failed[0]
    return NO_TESTS if all(code == NO_TESTS for code in codes) else 0


def _shared_servers() -> list:
    """The private broker and PostgreSQL cluster the lanes share, started when not running;
    returns those this run started (to stop at the end)."""
    from orglife.broker import PrivateBroker
    from orglife.postgres import PrivateCluster
    servers = [PrivateBroker(TEST_HOME), PrivateCluster(TEST_HOME / "pg")]
    started = [server for server in servers if not server.running()]
    errors: list[BaseException] = []

    def start(server) -> None:
        try:
            server.start()
        except BaseException as exc:  # reported below, after both tried
            errors.append(exc)
    threads = [threading.Thread(target=start, args=(server,)) for server in started]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        _stop(started)
        raise errors[0]
    return started


def _stop(servers: list) -> None:
    for server in servers:
        try:
            server.stop()
        except Exception as exc:  # the other one is still stopped
            print(f"orglife: could not stop {server}: {exc}", file=sys.stderr)


def run(args: list[str]) -> int:
    """Run the suite (pytest with `args`), in two lanes unless tests are named."""
    plan = lanes(args)
    command = [sys.executable, "-m", "pytest"]
    if len(plan) == 1:
        return run_lanes([[*command, *plan[0]]])
    # a SIGTERM or SIGHUP while the shared servers start stops them again (below), as a
    # Ctrl-C does
    previous = _handle(_STOPS, _interrupt)
    try:
        started = _shared_servers()
    finally:
        _restore(previous)
    try:
        TEST_HOME.mkdir(parents=True, exist_ok=True)
        log_path = TEST_HOME / "stack-lane.log"
        print(f"orglife: the tests that start stacks of their own run beside the others; "
              f"their output follows at the end ({log_path.relative_to(REPO_ROOT)}; "
              f"ORGLIFE_TEST_LANES=1 runs one process)", flush=True)
        return run_lanes([[*command, *lane] for lane in plan], log_path,
                         f"the stack lane ({', '.join(plan[0][len(args):])})")
    finally:
        _stop(started)


_STOPS = (signal.SIGTERM, signal.SIGHUP)  # CI's timeout, a closed terminal


def run_lanes(commands: list[list[str]], log_path: Path | None = None,
              log_title: str = "") -> int:
    """Run the commands at once (the first one's output into `log_path`, shown at the end
    under `log_title`, even after an interrupt) and return their one exit status. Call it
    from the main thread (it sets signal handlers).

    The lanes stay in the terminal's foreground process group (a debugger's prompt, `--pdb`,
    reads the terminal), so a Ctrl-C reaches each of them from the terminal: pytest stops and
    tears its fixtures down, and this process only waits (passing on a SIGINT of its own
    would be pytest's second, which cuts that teardown short and leaves the fixtures'
    brokers, clusters and stacks running). A SIGTERM or SIGHUP, sent to this process alone,
    is passed on as one SIGINT to each lane. So is any error here once a lane has started."""
    processes: list[subprocess.Popen] = []

    def interrupt_lanes(_signum=None, _frame=None) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
    previous = _handle((signal.SIGINT,), lambda _signum, _frame: None)
    previous.update(_handle(_STOPS, interrupt_lanes))
    try:
        with open(log_path or os.devnull, "wb") as log:
            for index, command in enumerate(commands):
                into = log if index == 0 and log_path else None
                processes.append(subprocess.Popen(
                    command, cwd=REPO_ROOT, stdout=into,
                    stderr=subprocess.STDOUT if into else None))
            codes = [process.wait() for process in processes]
    except BaseException:
        interrupt_lanes()
        for process in processes:
            process.wait()
        raise
    finally:
        _restore(previous)
        if log_path is not None and log_path.exists():
            try:
                print(f"\n===== {log_title} =====", flush=True)
                sys.stdout.buffer.write(log_path.read_bytes())
                sys.stdout.flush()
            except OSError:  # stdout closed: the log stays in its file
                pass
    return combined(codes)


def _handle(signums, handler) -> dict:
    return {signum: signal.signal(signum, handler) for signum in signums}


def _restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt
