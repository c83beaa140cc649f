"""`python -m orglife.runner SERVICE`: one service process, configured from the environment."""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=".*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402  before anything imports socket or threading

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)

from nameko.runners import ServiceRunner  # noqa: E402

from orglife.common.config import load_settings  # noqa: E402

SERVICE_CLASSES = {
    "members": "services.members.service:MembersService",
    "meetings": "services.meetings.service:MeetingsService",
}


def service_class(name: str):
    module, _, attr = SERVICE_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=sorted(SERVICE_CLASSES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s {args.service} %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    runner = ServiceRunner(settings.nameko_config(args.service))
    runner.add_service(service_class(args.service))
    stop = eventlet.event.Event()

    def request_stop(signum, frame):
        if not stop.ready():
            stop.send(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runner.start()
    logging.getLogger("orglife").info("%s running", args.service)
    stop.wait()
    runner.stop()


if __name__ == "__main__":
    main()
