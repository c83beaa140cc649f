"""The shape of a system declaration: services, the events they publish, what they consume.

The deployment is declared once (`orglife/system.py`, after eventsourcing's `System`): each
service with its class, the events it publishes with their schema versions, and the event
types it subscribes to per source. Everything else is derived from that one value: the
runner's service classes, the processes `orglife up` starts, the broker topology (exchanges,
consumer queues, bindings), the schema versions consumers accept, the migrations, and the
check that docker-compose names every service. Adding a service is one entry.

Classes are named by import path and loaded only when a process runs them, so reading the
declaration imports no service code.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Iterable, Mapping

DEFAULT_SYSTEM = "orglife.system:SYSTEM"
NAME = re.compile(r"^[a-z][a-z0-9]*$")


class DeclarationError(ValueError):
    """The declaration contradicts itself, or code contradicts the declaration."""


@dataclass(frozen=True)
class Event:
    """An event type as published: the schema version it is written with, and older versions
    its consumers must still read (events of an older version may wait in queues during an
    upgrade)."""

    type: str
    version: int = 1
    still_read: tuple[int, ...] = ()

    @property
    def versions(self) -> frozenset[int]:
        return frozenset((self.version, *self.still_read))


@dataclass(frozen=True)
class Subscription:
    """One consumer service's queue on one source's exchange."""

    consumer: str
    source: str
    event_types: tuple[str, ...]

    @property
    def queue_name(self) -> str:
        return f"{self.source}.events--{self.consumer}"

    @property
    def parking_queue_name(self) -> str:
        return f"{self.queue_name}.parked"


@dataclass(frozen=True)
class Service:
    """One service of the system.

    `package` holds the five familiar files (service.py, registry.py, domain.py, models.py,
    schemas.py) and `migrations/`; `service_class` is the nameko class in `<package>.service`.
    """

    name: str
    service_class: str
    publishes: tuple[Event, ...] = ()
    subscribes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    package: str = ""
    database: bool = True  # owns a database (migrated by `up`, a DB URL per deployment)
    instances: int = 1  # default instances in docker-compose
    module: str = "service"  # the module of `package` holding the class
    # services whose RPC methods this one calls (an edge such as the dashboard): its broker
    # account may publish those requests and keep a reply queue of its own, nothing more
    calls: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.package:
            object.__setattr__(self, "package", f"services.{self.name}")
        object.__setattr__(self, "publishes", tuple(self.publishes))
        object.__setattr__(self, "subscribes",
                           {source: tuple(types) for source, types in self.subscribes.items()})
        object.__setattr__(self, "calls", tuple(self.calls))

    @property
    def class_path(self) -> str:
        return f"{self.package}.{self.module}:{self.service_class}"

    def load_class(self):
        """The service's nameko class, checked against this declaration (see `check_class`)."""
        module, _, attr = self.class_path.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        check_class(self, cls)
        return cls

    @property
    def exchange(self) -> str:
        return f"{self.name}.events"


@dataclass(frozen=True)
class Peer:
    """Systems outside orglife that publish on an exchange of their own (e.g. intake)."""

    name: str
    publishes: tuple[Event, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "publishes", tuple(self.publishes))

    @property
    def exchange(self) -> str:
        return f"{self.name}.events"


@dataclass(frozen=True)
class System:
    services: tuple[Service, ...]
    peers: tuple[Peer, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "services", tuple(self.services))
        object.__setattr__(self, "peers", tuple(self.peers))
        self._check()

    # -- reading it -----------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise DeclarationError(f"no service {name!r} in the system declaration "
                               f"(declared: {', '.join(self.names)})")

    @cached_property  # read for every event emitted
    def sources(self) -> dict[str, dict[str, Event]]:
        """Every publisher (service or peer) → its events by type."""
        return {p.name: {e.type: e for e in p.publishes} for p in (*self.services, *self.peers)}

    def event(self, source: str, event_type: str) -> Event:
        try:
            return self.sources[source][event_type]
        except KeyError:
            raise DeclarationError(f"{source} does not publish {event_type!r} in the system "
                                   "declaration") from None

    def versions(self, source: str, event_type: str) -> frozenset[int]:
        """Schema versions of `event_type` a consumer accepts (empty: unknown type)."""
        event = self.sources.get(source, {}).get(event_type)
        return event.versions if event else frozenset()

    @cached_property
    def subscriptions(self) -> list[Subscription]:
        return [Subscription(s.name, source, types)
                for s in self.services for source, types in s.subscribes.items()]

    def subscription(self, consumer: str, source: str) -> Subscription:
        for sub in self.subscriptions:
            if sub.consumer == consumer and sub.source == source:
                return sub
        raise DeclarationError(f"{consumer} does not subscribe to {source} in the system "
                               "declaration")

    @property
    def exchanges(self) -> list[str]:
        """The event exchanges: one per publisher of events (a service that publishes
        nothing, such as the dashboard, has none)."""
        return [name for name, events in self.sources.items() if events]

    # -- changing it (tests, toys) -----------------------------------------------------------
    def with_service(self, service: Service) -> "System":
        return replace(self, services=(*[s for s in self.services if s.name != service.name],
                                       service))

    # -- consistency ---------------------------------------------------------------------------
    def _check(self) -> None:
        names = [p.name for p in (*self.services, *self.peers)]
        for name in names:
            # it becomes ORGLIFE_<NAME>_DB_URL, a database, queue and exchange names
            if not NAME.match(name):
                raise DeclarationError(f"service name {name!r}: lowercase letters and digits, "
                                       "starting with a letter")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DeclarationError(f"declared twice: {', '.join(duplicates)}")
        for publisher in (*self.services, *self.peers):
            types = [e.type for e in publisher.publishes]
            twice = sorted({t for t in types if types.count(t) > 1})
            if twice:
                raise DeclarationError(f"{publisher.name} declares {', '.join(twice)} twice")
        sources = self.sources
        for service in self.services:
            for source, types in service.subscribes.items():
                if source not in sources:
                    raise DeclarationError(f"{service.name} subscribes to {source!r}, which "
                                           "is not declared")
                unknown = sorted(set(types) - set(sources[source]))
                if unknown:
                    raise DeclarationError(f"{service.name} subscribes to {', '.join(unknown)} "
                                           f"of {source}, which {source} does not publish")
            for callee in service.calls:
                if callee == service.name or callee not in self.names:
                    raise DeclarationError(f"{service.name} calls {callee!r}, which is not "
                                           "another declared service")


def check_class(service: Service, cls) -> None:
    """The class runs as the declared service and consumes every source it is subscribed to:
    a declared subscription without a consumer would fill its queue forever, unnoticed."""
    if getattr(cls, "name", None) != service.name:
        raise DeclarationError(f"{service.class_path} is named {getattr(cls, 'name', None)!r}, "
                               f"declared as {service.name!r}")
    consumed = set()
    for attr in dir(cls):
        for entrypoint in getattr(getattr(cls, attr, None), "nameko_entrypoints", ()):
            source = getattr(entrypoint, "source", None)  # orglife.common.messaging subscribers
            if source is not None:
                consumed.add(source)
    declared = set(service.subscribes)
    if consumed != declared:
        parts = []
        if declared - consumed:
            parts.append(f"no consumer of {', '.join(sorted(declared - consumed))}")
        if consumed - declared:
            parts.append(f"consumes undeclared {', '.join(sorted(consumed - declared))}")
        raise DeclarationError(f"{service.class_path} and the system declaration disagree: "
                               f"{'; '.join(parts)}")


def load_system(value: "System | str | None" = None) -> System:
    """A System given as itself or as "module:attribute" (ORGLIFE_SYSTEM); default the
    deployment's own declaration."""
    if isinstance(value, System):
        return value
    module, _, attr = (value or DEFAULT_SYSTEM).partition(":")
    system = getattr(importlib.import_module(module), attr or "SYSTEM")
    if not isinstance(system, System):
        raise DeclarationError(f"{value} is not a System")
    return system


def check_handlers(system: System, consumer: str, source: str,
                   handlers: Iterable[str]) -> None:
    """A consumer's dispatch table must handle exactly the event types it is subscribed to:
    a type declared but not handled would be parked, one handled but not declared never
    arrives. Checked when the consumer starts."""
    declared = set(system.subscription(consumer, source).event_types)
    handled = set(handlers)
    table = handlers.items() if isinstance(handlers, Mapping) else ()
    not_callable = sorted(key for key, handler in table if not callable(handler))
    if not_callable:
        raise DeclarationError(f"{consumer}'s handlers for {', '.join(not_callable)} are not "
                               "callable")
    if declared != handled:
        parts = []
        if declared - handled:
            parts.append(f"no handler for {', '.join(sorted(declared - handled))}")
        if handled - declared:
            parts.append(f"handlers for undeclared {', '.join(sorted(handled - declared))}")
        raise DeclarationError(f"{consumer}'s consumer of {source} events and the system "
                               f"declaration disagree: {'; '.join(parts)}")
