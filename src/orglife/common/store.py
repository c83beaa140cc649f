"""The database dependency: an engine per container, a unit of work per change, the relay.

nameko-sqlalchemy's fixtures break on SQLAlchemy 2 (KNOWN-TRAPS); this provider is small, and
owning it lets the outbox row share the transaction of the change it announces.
"""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from .clock import Clock
from .db import Backbone, UnitOfWork, make_engine, session_factory
from .outbox import OutboxRelay
from .topology import system_of


class Store(DependencyProvider):
    """`self.store()` in a worker gives a new UnitOfWork on this service's own database."""

    def __init__(self, backbone: Backbone, relay: bool = True):
        self.backbone = backbone
        self.run_relay = relay

    def setup(self):
        config = self.container.config
        self.engine = make_engine(config["DB_URL"])
        self.sessions = session_factory(self.engine)
        # Reads need no write lock on SQLite (orglife/common/db.py `_sqlite_begin`).
        self.read_sessions = session_factory(self.engine.execution_options(
            sqlite_begin="DEFERRED"))
        self.system = system_of(config)
        self.clock = Clock.from_config(config)  # events' occurred_at: the service's "now"
        self.relay = OutboxRelay(self.engine, self.backbone, config["AMQP_URI"],
                                 self.container.service_name, system=self.system)

    def start(self):
        if self.container.config.get("ORGLIFE_RELAY") == "process":
            return  # `orglife.runner SERVICE --relay-only` publishes this outbox
        if self.run_relay:
            self.container.spawn_managed_thread(self.relay.run, identifier="outbox-relay")

    def stop(self):
        self.relay.stop()

    def kill(self):
        self.relay.stop()

    def unit_of_work(self, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(self.read_sessions if read_only else self.sessions,
                          self.container.service_name, self.backbone,
                          after_commit=self.relay.notify, system=self.system, clock=self.clock)

    def get_dependency(self, worker_ctx):
        return StoreHandle(self)


class StoreHandle:
    """What a worker sees: call it for a unit of work; ask it for the outbox backlog."""

    def __init__(self, provider: Store):
        self._provider = provider

    def __call__(self) -> UnitOfWork:
        return self._provider.unit_of_work()

    def read(self) -> UnitOfWork:
        """A unit of work for reading only: on SQLite it does not take the write lock."""
        return self._provider.unit_of_work(read_only=True)

    def change(self, use_case):
        """Run `use_case(uow)` in a unit of work; when a concurrent writer (another instance)
        inserted the same key first, run it once more: it then finds that row and answers as
        a repeat does (idempotent) or with its Conflict, never with a database error."""
        from sqlalchemy.exc import IntegrityError

        from .errors import Conflict
        for attempt in (1, 2):
            try:
                with self() as uow:
                    return use_case(uow)
            except IntegrityError:
                if attempt == 2:
                    raise Conflict("changed by another writer at the same time; try again") \
                        from None

    def outbox_backlog(self) -> int:
        return self._provider.relay.backlog()
