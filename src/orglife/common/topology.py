"""Every exchange, consumer queue and binding of the deployment, in one registry.

nameko publishes without `mandatory`, so an event sent before its consumer's queue exists is
confirmed by the broker and lost. The outbox relay and `orglife up` therefore declare this whole
topology before anything is published; consumers declare the same queues with the same
arguments (a mismatch would be refused by the broker).
"""
from __future__ import annotations

from dataclasses import dataclass

from kombu import Exchange, Queue

# Where parked (dead-lettered) messages go; each consumer queue has its own parking queue.
PARKING_EXCHANGE = "orglife.parked"
INTAKE_SOURCE = "intake"

# Event types each source publishes, with the schema versions consumers understand.
EVENT_TYPES: dict[str, dict[str, set[int]]] = {
    "members": {
        "organization_registered": {1},
        "member_registered": {1},
        "member_updated": {1},
        "member_transferred": {1},
    },
    "meetings": {
        "meeting_scheduled": {1},
        "meeting_logged": {1},
        "meeting_amended": {1},
        "meeting_cancelled": {1},
        "activity_logged": {1},
        "intake_rejected": {1},
    },
    INTAKE_SOURCE: {
        "meeting_reported": {1},
        "activity_reported": {1},
    },
    "scoring": {
        "scores_changed": {1},
        "member_at_risk": {1},
        "branch_silent": {1},
        "branch_overdue": {1},
    },
    "notifications": {
        "notification_delivered": {1},
        "notification_failed": {1},
    },
}


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


SUBSCRIPTIONS: list[Subscription] = [
    Subscription("meetings", "members", (
        "organization_registered", "member_registered", "member_updated", "member_transferred",
    )),
    Subscription("meetings", INTAKE_SOURCE, ("meeting_reported", "activity_reported")),
    Subscription("members", "meetings", (
        "meeting_logged", "meeting_amended", "meeting_cancelled", "activity_logged",
    )),
]


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


def subscription(consumer: str, source: str,
                 subscriptions: list[Subscription] | None = None) -> Subscription:
    for sub in subscriptions if subscriptions is not None else SUBSCRIPTIONS:
        if sub.consumer == consumer and sub.source == source:
            return sub
    raise LookupError(f"no subscription of {consumer!r} to {source!r} in the topology")


def declare_topology(channel, subscriptions: list[Subscription] | None = None) -> None:
    """Declare every exchange, queue and binding (idempotent; safe from many processes)."""
    subs = SUBSCRIPTIONS if subscriptions is None else subscriptions
    for source in EVENT_TYPES:
        event_exchange(source)(channel).declare()
    parking_exchange()(channel).declare()
    for sub in subs:
        queue = consumer_queue(sub)(channel)
        queue.declare()
        for event_type in sub.event_types:
            queue.bind_to(exchange=event_exchange(sub.source).name, routing_key=event_type)
        parking_queue(sub)(channel).declare()


def known_schema_versions(source: str, event_type: str) -> set[int]:
    return EVENT_TYPES.get(source, {}).get(event_type, set())
