"""Bring every configured service database to the latest schema, then exit.

    python deploy/migrate.py [SERVICE ...]

Without arguments it migrates each declared service (orglife/system.py) whose
ORGLIFE_<SERVICE>_DB_URL is set (docker-compose's
one-shot `migrate` service); naming a service whose variable is unset is an error, so a typo in the
deployment cannot silently migrate a default SQLite file instead. The database may still be
starting: connection failures are retried for up to a minute.
Exit code: 0 done, 1 a migration failed, 2 nothing to migrate or bad usage.
"""
from __future__ import annotations

import os
import sys
import time

from orglife.common.migrate import upgrade
from orglife.common.system import load_system

WAIT_SECONDS = 60.0


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def migrate(service: str, url: str, wait: float, system) -> None:
    from sqlalchemy.exc import OperationalError
    deadline = time.monotonic() + wait
    while True:
        try:
            upgrade(service, url, system)
            break
        except OperationalError as exc:  # the server is not accepting connections yet
            if time.monotonic() > deadline:
                raise
            reason = str(exc.orig).strip().splitlines()[0]
            print(f"migrate: {service}: database not ready ({reason}); retrying",
                  file=sys.stderr, flush=True)
            time.sleep(2)
    print(f"migrate: {service} is at the latest schema ({_redacted(url)})", flush=True)


def main(argv: list[str]) -> int:
    env = os.environ
    system = load_system(env.get("ORGLIFE_SYSTEM"))
    declared = [s.name for s in system.services if s.database]
    unknown = [s for s in argv if s not in declared]
    if unknown:
        print(f"migrate: unknown service(s) {', '.join(unknown)}; one of {', '.join(declared)}",
              file=sys.stderr)
        return 2
    wanted = argv or [s for s in declared if env.get(f"ORGLIFE_{s.upper()}_DB_URL")]
    missing = [s for s in wanted if not env.get(f"ORGLIFE_{s.upper()}_DB_URL")]
    if missing:
        print("migrate: set " + ", ".join(f"ORGLIFE_{s.upper()}_DB_URL" for s in missing),
              file=sys.stderr)
        return 2
    if not wanted:
        print("migrate: no ORGLIFE_<SERVICE>_DB_URL is set; nothing to migrate", file=sys.stderr)
        return 2
    for service in wanted:
        try:
            migrate(service, env[f"ORGLIFE_{service.upper()}_DB_URL"], WAIT_SECONDS, system)
        except Exception as exc:  # noqa: BLE001  - one line per failure, then a non-zero exit
            print(f"migrate: {service} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
