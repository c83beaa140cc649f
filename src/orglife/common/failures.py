"""Telling a temporary failure from a message that fails the same way every time (SPEC §7).

A database restarting, a lost connection, a lock timeout or a closed broker channel go away by
themselves: the work is waited out and retried, never parked and never counted as an attempt.
Anything else (a bug, a message no handler can use) fails the same way every time and, after a
few attempts, is parked with its reason.
"""
from __future__ import annotations

import socket

# PostgreSQL SQLSTATE classes and codes that mean "try again later".
_PG_TEMPORARY_CLASSES = ("08", "40", "53", "57")  # connection, rollback, resources, operator
_PG_TEMPORARY_CODES = {"55P03"}  # lock_not_available (lock_timeout)
_SQLITE_TEMPORARY = ("database is locked", "database table is locked", "disk i/o error",
                     "unable to open database file")


def is_temporary(exc: BaseException) -> bool:
    """True for failures that waiting cures (see module docstring)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _is_temporary_here(exc):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False


def _is_temporary_here(exc: BaseException) -> bool:
    try:
        import amqp.exceptions
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - both are pinned dependencies
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout, socket.gaierror,
                        BrokenPipeError)):
        return True
    if isinstance(exc, (amqp.exceptions.ConnectionError, amqp.exceptions.ChannelError,
                        amqp.exceptions.RecoverableConnectionError)):
        # a channel error from a bad declaration is not cured by waiting; a closed one is
        return not isinstance(exc, (amqp.exceptions.NotFound, amqp.exceptions.AccessRefused,
                                    amqp.exceptions.PreconditionFailed))
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return True
    code = getattr(exc, "pgcode", None)
    if isinstance(code, str) and (code[:2] in _PG_TEMPORARY_CLASSES
                                  or code in _PG_TEMPORARY_CODES):
        return True
    module = type(exc).__module__ or ""
    if module.startswith("psycopg2") and type(exc).__name__ in ("OperationalError",
                                                               "InterfaceError"):
        return code is None or code[:2] in _PG_TEMPORARY_CLASSES  # no code: the link broke
    if module == "sqlite3" and type(exc).__name__ == "OperationalError":
        return str(exc).lower().startswith(_SQLITE_TEMPORARY)
    return False
