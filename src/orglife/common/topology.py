"""The broker topology of a system declaration: exchanges, consumer queues, bindings, parking.

nameko publishes without `mandatory`, so an event sent before its consumer's queue exists is
confirmed by the broker and lost. The outbox relay and `orglife up` therefore declare the whole
topology of the system (orglife/system.py) before anything is published; consumers declare the
same queues with the same arguments (a mismatch would be refused by the broker).
"""
from __future__ import annotations

from kombu import Exchange, Queue

from .system import Subscription, System, load_system

# Where parked (dead-lettered) messages go; each consumer queue has its own parking queue.
PARKING_EXCHANGE = "orglife.parked"

__all__ = ["PARKING_EXCHANGE", "Subscription", "consumer_queue", "declare_topology",
           "event_exchange", "parking_exchange", "parking_queue", "system_of"]


def system_of(config: dict) -> System:
    """The system a container runs in: its config's ORGLIFE_SYSTEM (a System, or
    "module:attribute"), by default orglife/system.py's."""
    return load_system(config.get("ORGLIFE_SYSTEM"))


def event_exchange(source: str) -> Exchange:
    """The same declaration nameko's `get_event_exchange` makes, so nameko peers can bind too."""
    return Exchange(f"{source}.events", type="topic", durable=True, auto_delete=False,
                    delivery_mode=2)


def parking_exchange() -> Exchange:
    return Exchange(PARKING_EXCHANGE, type="direct", durable=True, delivery_mode=2)


def consumer_queue(sub: Subscription) -> Queue:
    """A durable queue whose rejected messages are dead-lettered to its parking queue."""
    return Queue(
        sub.queue_name,
        durable=True,
        queue_arguments={
            "x-dead-letter-exchange": PARKING_EXCHANGE,
            "x-dead-letter-routing-key": sub.queue_name,
        },
    )


def parking_queue(sub: Subscription) -> Queue:
    return Queue(sub.parking_queue_name, exchange=parking_exchange(),
                 routing_key=sub.queue_name, durable=True)


def declare_topology(channel, system: System | None = None,
                     subscriptions: list[Subscription] | None = None) -> None:
    """Declare every exchange of `system`, and the queues and bindings of `subscriptions`
    (default: all of the system's). Idempotent; safe from many processes."""
    system = system or load_system()
    subs = system.subscriptions if subscriptions is None else subscriptions
    for source in system.exchanges:
        event_exchange(source)(channel).declare()
    parking_exchange()(channel).declare()
    for sub in subs:
        queue = consumer_queue(sub)(channel)
        queue.declare()
        for event_type in sub.event_types:
            queue.bind_to(exchange=event_exchange(sub.source).name, routing_key=event_type)
        parking_queue(sub)(channel).declare()
