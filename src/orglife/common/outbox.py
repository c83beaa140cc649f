"""The outbox relay: publishes committed events to RabbitMQ, in order, in confirmed batches.

Rows are marked sent only once the broker has confirmed every message of the batch; a broker
outage leaves them in the table and the relay publishes them when it can reconnect. Waiting for
one confirm per message caps the broker at about 1,250 messages/s on this machine; publishing a
batch and then draining its confirms reaches about 13,000/s (KNOWN-TRAPS).

Several instances of a service may share one database (PostgreSQL): a lease elects the one
relay that publishes, so the order of the outbox is kept. The lease dies with its holder, so a
successor takes over within a poll interval after a kill -9 (a lease row with an expiry made
the outbox of a killed service wait a minute): a PostgreSQL advisory lock held by the relay's
own session, or on SQLite an flock on a file beside the database, which the kernel releases
when the process dies.
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import amqp
from kombu import Connection
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.engine import Engine

from .db import Backbone, utcnow
from .system import load_system
from .topology import declare_publisher

log = logging.getLogger(__name__)

LEASE_NAME = "outbox"


class FileLease:
    """SQLite: an exclusive flock on `<database>.relay-lock`, held while this relay runs."""

    def __init__(self, engine: Engine):
        self.path = Path(engine.url.database + ".relay-lock")
        self._fd: int | None = None

    def hold(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class AdvisoryLease:
    """PostgreSQL: a session advisory lock on a connection of the relay's own; it ends with the
    session, so with the process (or when the database restarts: then it is taken again)."""

    def __init__(self, engine: Engine, name: str = LEASE_NAME):
        self.engine = engine
        self.key = zlib.crc32(f"orglife-relay:{name}".encode())
        self._connection = None

    def hold(self) -> bool:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 - the session is gone, and the lock with it
                self.release()
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                       {"key": self.key}).scalar()
        except Exception:
            connection.close()
            raise
        if not taken:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()  # never back to the pool with the lock held
                self._connection.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._connection = None


def relay_lease(engine: Engine, source: str):
    if engine.dialect.name == "sqlite":
        return FileLease(engine)
    return AdvisoryLease(engine, f"outbox:{source}")  # one per service even in a shared database


@contextmanager
def coalesced_writes(transport, flush_at: int = 256 * 1024):
    """Send a batch of frames in a few large writes instead of one system call per message.

    py-amqp writes each published message with its own `sendall`; under eventlet that call is
    most of the relay's cost. The frames are identical, only their grouping on the socket
    changes. (Relies on py-amqp's transport sending through its `_write` attribute.)
    """
    send = transport._write
    pending: list[bytes] = []
    size = 0

    def buffered(data):
        nonlocal size
        pending.append(bytes(data))
        size += len(data)
        if size >= flush_at:
            flush()

    def flush():
        nonlocal size
        if pending:
            send(b"".join(pending))
            pending.clear()
            size = 0

    transport._write = buffered
    try:
        yield
        flush()
    finally:
        transport._write = send


class EventMessage(amqp.Message):
    """A persistent JSON message. Every event has the same properties, so their wire form is
    computed once instead of once per message (the event id travels in the body)."""

    EVENT_PROPERTIES = {"content_type": "application/json", "content_encoding": "utf-8",
                  "delivery_mode": 2}
    _serialized: bytes | None = None

    def __init__(self, body: str):
        super().__init__(body, **self.EVENT_PROPERTIES)

    def _serialize_properties(self):
        if EventMessage._serialized is None:
            EventMessage._serialized = super()._serialize_properties()
        return EventMessage._serialized


class PublishFailed(Exception):
    """The broker nacked a message, or the connection went away before all confirms came."""


class OutboxRelay:
    def __init__(self, engine: Engine, backbone: Backbone, amqp_uri: str, source: str, *,
                 batch_size: int = 500, poll_interval: float = 0.5,
                 confirm_timeout: float = 15.0, system=None):
        self.engine = engine
        self.backbone = backbone
        self.amqp_uri = amqp_uri
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.lease = relay_lease(engine, source)
        self._reader = engine.execution_options(sqlite_begin="DEFERRED")  # no write lock
        self.confirm_timeout = confirm_timeout
        self.system = load_system(system)
        self.source = source  # publishes to `<source>.events`; its consumers' queues first
        self._wakeup = threading.Event()
        self._stopped = threading.Event()
        self._connection: Connection | None = None
        self._channel = None
        self._next_tag = 1
        self._confirmed_upto = 0
        self._nacked = False
        self.published = 0
        # Built once: a statement built per round computed its cache key every time, a cost
        # paid per commit when every commit wakes the relay for a few events.
        outbox = backbone.outbox
        self._unsent = (select(outbox.c.id, outbox.c.event_id, outbox.c.exchange,
                               outbox.c.routing_key, outbox.c.body)
                        .where(outbox.c.sent_at.is_(None))
                        .order_by(outbox.c.id)
                        .limit(batch_size))
        self._mark_sent = (update(outbox)
                           .where(outbox.c.id.in_(bindparam("ids", expanding=True)))
                           .values(sent_at=bindparam("now", type_=outbox.c.sent_at.type)))

    # -- life cycle -------------------------------------------------------------------------
    def notify(self) -> None:
        """Something was committed to the outbox: publish it now rather than at the next poll."""
        self._wakeup.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wakeup.set()

    def run(self) -> None:
        """Relay until stopped, reconnecting after broker failures with a capped backoff."""
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                self._connect()
                backoff = 0.5
                self._relay_until_stopped()
            except Exception as exc:  # broker down, connection reset, database busy...
                if self._stopped.is_set():
                    break
                log.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
                self._disconnect()
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._disconnect()
        self.lease.release()

    def _relay_until_stopped(self) -> None:
        while not self._stopped.is_set():
            sent = self.relay_once()
            if sent < self.batch_size:
                self._wakeup.wait(self.poll_interval)
                self._wakeup.clear()

    # -- one round --------------------------------------------------------------------------
    def relay_once(self) -> int:
        """Publish one batch of unsent events if this instance holds the lease; return count."""
        if not self.lease.hold():
            return 0
        with self._reader.connect() as conn:
            rows = conn.execute(self._unsent).all()
        if not rows:
            return 0
        if self._channel is None:
            self._connect()
        self._publish_confirmed(rows)
        with self.engine.begin() as conn:
            conn.execute(self._mark_sent, {"ids": [row.id for row in rows], "now": utcnow()})
        self.published += len(rows)
        return len(rows)

    def backlog(self) -> int:
        outbox = self.backbone.outbox
        with self._reader.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
            ).scalar_one()

    # -- broker -----------------------------------------------------------------------------
    def _connect(self) -> None:
        self._disconnect()
        connection = Connection(self.amqp_uri, heartbeat=0, connect_timeout=5)
        # each of kombu's failover URLs (`a;b;c`) once: a cluster with nodes down still connects
        connection.ensure_connection(max_retries=max(1, self.amqp_uri.count(";") + 1))
        # Every consumer queue exists before the first event leaves (no `mandatory` here).
        declare_publisher(connection, self.system, self.source)
        channel = connection.channel()
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        self._connection, self._channel = connection, channel
        self._next_tag, self._confirmed_upto, self._nacked = 1, 0, False

    def _disconnect(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # already broken
                pass
        self._connection = self._channel = None

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        # Confirms of one channel come in order; `multiple` covers every tag up to this one.
        self._confirmed_upto = max(self._confirmed_upto, delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked = True
        self._confirmed_upto = max(self._confirmed_upto, delivery_tag)

    def _publish_confirmed(self, rows) -> None:
        channel = self._channel
        self._nacked = False
        with coalesced_writes(self._connection.connection.transport):
            for row in rows:
                channel.basic_publish(EventMessage(row.body), exchange=row.exchange,
                                      routing_key=row.routing_key)
                self._next_tag += 1
        last_tag = self._next_tag - 1
        deadline = time.monotonic() + self.confirm_timeout
        while self._confirmed_upto < last_tag:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishFailed(f"no confirm for {last_tag - self._confirmed_upto} messages")
            self._connection.drain_events(timeout=remaining)
        if self._nacked:
            raise PublishFailed("the broker nacked part of a batch")
