"""The broker topology of a system declaration: exchanges, consumer queues, bindings, parking.

nameko publishes without `mandatory`, so an event sent before its consumer's queue exists is
confirmed by the broker and lost. The outbox relay and `orglife up` therefore declare the whole
topology of the system (orglife/system.py) before anything is published; consumers declare the
same queues with the same arguments (a mismatch would be refused by the broker).
"""
from __future__ import annotations

import os

from kombu import Exchange, Queue

from .system import Subscription, System, load_system

# Where parked (dead-lettered) messages go: an exchange per consumer service, so that no
# service's account may touch another's parked messages; a parking queue per consumer queue.
PARKING_PREFIX = "orglife.parked."
RPC_EXCHANGE = "nameko-rpc"  # nameko's default

__all__ = ["Subscription", "consumer_queue", "declare_topology", "event_exchange",
           "parking_exchange", "parking_queue", "system_of"]


def system_of(config: dict) -> System:
    """The system a container runs in: its config's ORGLIFE_SYSTEM (a System, or
    "module:attribute"), by default orglife/system.py's."""
    return load_system(config.get("ORGLIFE_SYSTEM"))


def event_exchange(source: str) -> Exchange:
    """The same declaration nameko's `get_event_exchange` makes, so nameko peers can bind too."""
    return Exchange(f"{source}.events", type="topic", durable=True, auto_delete=False,
                    delivery_mode=2)


def parking_exchange(consumer: str) -> Exchange:
    return Exchange(PARKING_PREFIX + consumer, type="direct", durable=True, delivery_mode=2)


DEFAULT_DELIVERY_LIMIT = 10


def quorum_arguments(delivery_limit: bool = True) -> dict:
    """Queue arguments when the deployment asks for quorum queues (ORGLIFE_QUORUM=1: the
    default on a RabbitMQ cluster, off on a single node): replicated on the cluster's nodes
    (a write is confirmed once a majority has it), and (consumer queues) dead-lettered to
    parking after ORGLIFE_DELIVERY_LIMIT
    redeliveries, so a message that kills its consumer every time cannot loop. Parking queues
    get no limit: reading them (`orglife parked list`) returns their messages unacked. Every
    process of a deployment must agree (the broker refuses a declaration that differs)."""
    if os.environ.get("ORGLIFE_QUORUM", "").strip().lower() not in ("1", "true", "yes", "on"):
        return {}
    # (leaders spread over the nodes by the nodes' queue_leader_locator: orglife/cluster.py)
    arguments = {"x-queue-type": "quorum"}
    if delivery_limit:
        arguments["x-delivery-limit"] = int(os.environ.get("ORGLIFE_DELIVERY_LIMIT")
                                            or DEFAULT_DELIVERY_LIMIT)
        # a message over the limit reaches parking even while parking's leader is being
        # elected (RabbitMQ dead-letters from quorum queues at most once unless asked; the
        # at-least-once strategy needs reject-publish overflow)
        arguments["x-dead-letter-strategy"] = "at-least-once"
        arguments["x-overflow"] = "reject-publish"
    return arguments


def consumer_queue(sub: Subscription) -> Queue:
    """A durable queue whose rejected messages are dead-lettered to its parking queue."""
    return Queue(
        sub.queue_name,
        durable=True,
        queue_arguments={
            "x-dead-letter-exchange": PARKING_PREFIX + sub.consumer,
            "x-dead-letter-routing-key": sub.queue_name,
            **quorum_arguments(),
        },
    )


def parking_queue(sub: Subscription) -> Queue:
    return Queue(sub.parking_queue_name, exchange=parking_exchange(sub.consumer),
                 routing_key=sub.queue_name, durable=True,
                 queue_arguments=quorum_arguments(delivery_limit=False) or None)


def rpc_exchange() -> Exchange:
    """The same declaration nameko's `get_rpc_exchange` makes."""
    return Exchange(RPC_EXCHANGE, type="topic", durable=True)


def rpc_queue(service: str) -> Queue:
    """nameko's RPC queue of a service, bound for every method of it."""
    return Queue(f"rpc-{service}", exchange=rpc_exchange(), routing_key=f"{service}.*",
                 durable=True)


def _declare_or_find(connection, declare, find) -> None:
    """Declare an entity; an account not allowed to (a service's own account, SPEC §7) only
    checks that it exists, which `orglife up` (or the deployment's setup) made sure of.
    Each try gets a channel of its own: a refused declaration closes its channel."""
    from amqp.exceptions import AccessRefused
    channel = connection.channel()
    try:
        declare(channel)
    except AccessRefused:
        find(connection.channel())  # amqp NotFound when it is missing


def declare_subscription(connection, system: System, sub: Subscription) -> None:
    """What one consumer needs: its source's exchange (to bind to), its queue with its
    bindings, and its parking queue."""
    exchange = event_exchange(sub.source)
    _declare_or_find(connection, lambda ch: exchange(ch).declare(),
                     lambda ch: exchange(ch).declare(passive=True))
    channel = connection.channel()
    parking_exchange(sub.consumer)(channel).declare()
    queue = consumer_queue(sub)(channel)
    queue.declare()
    for event_type in sub.event_types:
        queue.bind_to(exchange=exchange.name, routing_key=event_type)
    parking_queue(sub)(channel).declare()


def declare_rpc_queue(connection, service: str) -> bool:
    """A service's RPC queue and its binding; the RPC exchange itself is everyone's, so a
    service's own account may not declare it (nor delete it) and finds it instead. Returns
    whether the exchange was declared here (False: consumers must not declare it again)."""
    from amqp.exceptions import AccessRefused
    try:
        rpc_queue(service)(connection.channel()).declare()
        return True
    except AccessRefused:
        channel = connection.channel()
        rpc_exchange()(channel).declare(passive=True)  # amqp NotFound when it is missing
        queue = rpc_queue(service)(channel)
        queue.queue_declare()
        queue.queue_bind()
        return False


def declare_publisher(connection, system: System, source: str) -> None:
    """Before a publisher's first event: its exchange, and every consumer queue bound to it
    (declared when this account may, else it must already exist: an event published before
    its queue exists is lost, so a missing queue stops the publisher until it is there)."""
    exchange = event_exchange(source)
    exchange(connection.channel()).declare()
    for sub in system.subscriptions:
        if sub.source != source:
            continue

        def declare(channel, sub=sub):
            declare_topology(channel, system, [sub])

        def find(channel, sub=sub):
            consumer_queue(sub)(channel).queue_declare(passive=True)
        _declare_or_find(connection, declare, find)


def declare_topology(channel, system: System | None = None,
                     subscriptions: list[Subscription] | None = None) -> None:
    """Declare every exchange of `system`, and the queues and bindings of `subscriptions`
    (default: all of the system's). Idempotent; safe from many processes."""
    system = system or load_system()
    subs = system.subscriptions if subscriptions is None else subscriptions
    for source in system.exchanges:
        event_exchange(source)(channel).declare()
    rpc_exchange()(channel).declare()
    if subscriptions is None:  # the whole system: every service's RPC queue too
        for service in system.names:
            rpc_queue(service)(channel).declare()
    for sub in subs:
        parking_exchange(sub.consumer)(channel).declare()
    for sub in subs:
        queue = consumer_queue(sub)(channel)
        queue.declare()
        for event_type in sub.event_types:
            queue.bind_to(exchange=event_exchange(sub.source).name, routing_key=event_type)
        parking_queue(sub)(channel).declare()


# -- broker accounts (SPEC §7) -----------------------------------------------------------------
# A peer system may publish to intake.events and do nothing else.
PEER_PERMISSIONS = {"configure": "^$", "write": r"^intake\.events$", "read": "^$"}


def _anchored(names) -> str:
    import re
    return "^(" + "|".join(re.escape(name) for name in sorted(set(names))) + ")$"


def service_permissions(system: System, service: str) -> dict:
    """What a service's own account may do (RabbitMQ: declaring needs configure, binding
    write on the queue and read on the exchange, publishing write on the exchange, consuming
    read on the queue): declare, bind and read its own RPC, consumer and parking queues and
    its own parking exchange; publish to its own events exchange, its own parking exchange
    and nameko's RPC exchange. Nothing of another service's, and nothing shared to configure
    (so nothing shared to delete). `topic` narrows the shared RPC exchange by routing key:
    bind only its own methods, publish only replies (`rpc_topic_permissions`)."""
    declared = system.service(service)
    subs = [sub for sub in system.subscriptions if sub.consumer == service]
    own_queues = [f"rpc-{service}"] + [q for sub in subs
                                       for q in (sub.queue_name, sub.parking_queue_name)]
    parking = PARKING_PREFIX + service
    permissions = {
        "configure": _anchored(own_queues + [declared.exchange, parking]),
        "write": _anchored(own_queues + [RPC_EXCHANGE, declared.exchange, parking]),
        "read": _anchored(own_queues + [RPC_EXCHANGE, parking]
                          + [f"{sub.source}.events" for sub in subs]),
    }
    if declared.calls:  # an RPC client (the dashboard): its own reply queues as well
        replies = reply_queue_pattern(service)
        permissions = {key: value[:-2] + "|" + replies + ")$"
                       for key, value in permissions.items()}
    return permissions


UUID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def reply_queue_pattern(service: str) -> str:
    """nameko's reply queues of a calling service: `rpc.reply-<service>-<uuid>`."""
    import re
    return re.escape(f"rpc.reply-{service}-") + UUID_PATTERN


def rpc_topic_permissions(service: str, calls: tuple[str, ...] = ()) -> dict:
    """On nameko's RPC exchange: bind only `<service>.*` (its own requests, not everyone's
    with their tokens) and publish only replies (routed by the caller's reply queue id).
    A service that `calls` others (the dashboard) may also publish requests to their methods
    and bind its reply queue (routed by a uuid), and nothing else."""
    import re
    read, write = rf"^{re.escape(service)}\.", f"^{UUID_PATTERN}$"
    if calls:
        read = f"({read}|^{UUID_PATTERN}$)"
        callees = "|".join(re.escape(name) for name in sorted(calls))
        write = f"({write}|^({callees})\\.)"
    return {"exchange": RPC_EXCHANGE, "read": read, "write": write}
