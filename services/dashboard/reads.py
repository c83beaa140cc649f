"""How the dashboard reads: RPC to the services that own the data, with the caller's token.

The dashboard owns no database. Every figure it shows comes from an RPC method of the service
that owns it (SPEC §4), called with the signed-in user's token in the context data, so each
service checks the user's scope exactly as it does for the CLI. nameko's HTTP entrypoint puts
nothing in the context data (KNOWN-TRAPS): `web.DashboardServer` copies the session cookie
into it, and nameko's RPC proxy forwards it as the `nameko.authorization` header.

A page asks its questions at once (`Reads.gather`): the calls are published together and their
replies awaited under one deadline, so a page costs its slowest read, not their sum, and a
service that does not answer makes the page fail with 504 after `timeout` seconds instead of
hanging (nameko's proxy has no timeout of its own).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import eventlet
from kombu import Connection
from nameko.extensions import DependencyProvider
from nameko.exceptions import UnknownService
from nameko.rpc import ReplyListener, ServiceProxy

from orglife.common.errors import OrglifeError
from orglife.common.messaging import QuickStopQueueConsumer

CALL_TIMEOUT = 20.0  # seconds a page waits for all of its reads


class ReadTimeout(OrglifeError):
    """A service did not answer in time (it is down, or its queue is backed up)."""

    def __init__(self, service: str, method: str, seconds: float):
        self.service, self.method = service, method
        super().__init__(f"{service}.{method} did not answer within {seconds:g}s")


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    args: tuple = ()
    kwargs: dict | None = None


def call(service: str, method: str, *args, **kwargs) -> Call:
    return Call(service, method, args, kwargs or None)


@dataclass
class Failed:
    """An optional read that failed: the page shows what it can and says what is missing."""

    error: BaseException

    def __bool__(self):
        return False


class Reads:
    """What a worker sees: the services it may call, each a nameko ServiceProxy."""

    def __init__(self, proxies: dict[str, Any], timeout: float = CALL_TIMEOUT,
                 probe=None):
        self.proxies = proxies
        self.timeout = timeout
        self.probe = probe  # service -> instances consuming its RPC queue (None: unknown)

    def one(self, service: str, method: str, *args, **kwargs):
        return self.gather(only=call(service, method, *args, **kwargs))["only"]

    def gather(self, optional: tuple[str, ...] = (), timeout: float | None = None,
               **calls: Call) -> dict[str, Any]:
        """Publish every call, then wait for all of them under one deadline. A failing
        call raises (the first in the order given), except those named in `optional`,
        which come back as `Failed`."""
        seconds = self.timeout if timeout is None else timeout
        pending = {}
        results: dict[str, Any] = {}
        for name, spec in calls.items():
            try:
                method = getattr(self.proxies[spec.service], spec.method)
                pending[name] = method.call_async(*spec.args, **(spec.kwargs or {}))
            except Exception as exc:  # noqa: BLE001 - UnknownService: nobody to ask
                if name not in optional:
                    raise
                results[name] = Failed(exc)
        started = time.monotonic()
        for name, reply in pending.items():
            spec = calls[name]
            remaining = max(0.01, seconds - (time.monotonic() - started))
            try:
                with eventlet.Timeout(remaining, ReadTimeout(spec.service, spec.method,
                                                             seconds)):
                    results[name] = reply.result()
            except ReadTimeout as exc:
                failure = self.not_running(spec.service) or exc
                if name not in optional:
                    raise failure from None
                results[name] = Failed(failure)
            except Exception as exc:  # noqa: BLE001 - mapped by web.ERRORS
                if name not in optional:
                    raise
                results[name] = Failed(exc)
        return results

    def not_running(self, service: str):
        """UnknownService when nothing consumes the service's RPC queue (it is stopped: its
        queue, declared by `up`, keeps the request), so that the page says the service is
        not running (503) rather than slow (504)."""
        if self.probe is None:
            return None
        try:
            instances = self.probe(service)
        except Exception:  # noqa: BLE001 - the broker is unreachable: keep the timeout
            return None
        return UnknownService(service) if instances == 0 else None


def rpc_consumers(amqp_uri: str, service: str, timeout: float = 3.0) -> int | None:
    """Instances consuming a service's RPC queue (a passive declare: no rights needed);
    None when the queue does not exist."""
    with Connection(amqp_uri, connect_timeout=timeout) as conn:
        channel = conn.channel()
        try:
            _, _, consumers = channel.queue_declare(queue=f"rpc-{service}", passive=True)
        except Exception:  # noqa: BLE001 - not declared
            return None
        return consumers


class CallingReplyListener(ReplyListener):
    """nameko's reply listener on a service's own broker account: the account may not
    declare the shared RPC exchange (SPEC §7), so the reply queue is declared and bound
    without declaring it (it exists: `orglife up` or the deployment's accounts declared it).
    Its consumer stops at once, like the services' (orglife/common/messaging.py)."""

    queue_consumer = QuickStopQueueConsumer()

    def setup(self):
        super().setup()
        from amqp.exceptions import AccessRefused

        from orglife.common.topology import rpc_exchange
        try:  # an admin account (tests, a vhost of its own) may declare it
            with Connection(self.container.config["AMQP_URI"]) as conn:
                rpc_exchange()(conn.channel()).declare()
        except AccessRefused:
            pass
        self.queue.exchange.no_declare = True


class Services(DependencyProvider):
    """The services the dashboard reads from (the declaration's `calls`), as `Reads`."""

    rpc_reply_listener = CallingReplyListener()

    def __init__(self, names: tuple[str, ...], timeout: float = CALL_TIMEOUT, **kwargs):
        self.names = tuple(names)
        self.timeout = timeout
        super().__init__(**kwargs)

    def setup(self):
        config = self.container.config
        self.amqp_uri = config["AMQP_URI"]
        self.timeout = float(config.get("ORGLIFE_DASHBOARD_READ_TIMEOUT") or self.timeout)

    def probe(self, service: str) -> int | None:
        return rpc_consumers(self.amqp_uri, service)

    def get_dependency(self, worker_ctx):
        return Reads({name: ServiceProxy(worker_ctx, name, self.rpc_reply_listener)
                      for name in self.names}, self.timeout, probe=self.probe)
