"""`python -m orglife.runner SERVICE`: one service process, configured from the environment.

SERVICE is any service of the system declaration (orglife/system.py, or the one named by
ORGLIFE_SYSTEM).
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402  before anything imports socket or threading

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)

from nameko.runners import ServiceRunner  # noqa: E402

from orglife.common.config import load_settings  # noqa: E402
from orglife.common.system import load_system  # noqa: E402


def main(argv=None) -> None:
    settings = load_settings()
    system = load_system(settings.system)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=system.names)
    parser.add_argument("--relay-only", action="store_true",
                        help="run only the service's outbox relay (started by the service "
                             "itself when ORGLIFE_RELAY=process)")
    args = parser.parse_args(argv)
    role = "relay" if args.relay_only else "service"
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.service} {role} "
                                                   "%(levelname)s %(name)s: %(message)s")
    stop = eventlet.event.Event()

    def request_stop(signum, frame):
        if not stop.ready():
            stop.send(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    declared = system.service(args.service)
    if args.relay_only:
        return run_relay(declared, settings, system, stop)
    config = settings.nameko_config(args.service)
    relay_process = None
    if settings.relay_mode == "process":
        # The relay gets a process (and so a core) of its own; the lease in the database
        # keeps it the only publisher, and the service's outbox rows wait for it.
        relay_process = subprocess.Popen(
            [sys.executable, "-m", "orglife.runner", args.service, "--relay-only"])
    runner = ServiceRunner(config)
    runner.add_service(declared.load_class())
    runner.start()
    logging.getLogger("orglife").info("%s running (relay: %s)", args.service, settings.relay_mode)
    stop.wait()
    runner.stop()
    if relay_process is not None:
        relay_process.terminate()
        relay_process.wait(timeout=15)


def run_relay(service, settings, system, stop) -> None:
    from orglife.common.db import make_engine
    from orglife.common.outbox import OutboxRelay
    backbone = importlib.import_module(f"{service.package}.models").backbone
    relay = OutboxRelay(make_engine(settings.db_url(service.name)), backbone,
                        settings.nameko_config(service.name)["AMQP_URI"], poll_interval=0.02,
                        system=system)
    worker = eventlet.spawn(relay.run)
    stop.wait()
    relay.stop()
    worker.wait()


if __name__ == "__main__":
    main()
