"""Parked messages: what is there and why, and putting them back once the cause is fixed.

A consumer parks a message it can never handle (orglife/common/messaging.py) in its queue's
parking queue, `<queue>.parked`, with the reason in the `x-parked-reason` header. `summary`
reads them without taking them (they go back in order when the channel closes unacked);
`replay` moves them to their consumer queue, through the default exchange so that no other
consumer of the original exchange gets a second copy, and acks each only once the broker has
confirmed its copy.
"""
from __future__ import annotations

import json
from collections import Counter

import amqp
from kombu import Connection

from .common.system import System

PEEK_LIMIT = 1000
PARKING_HEADERS = ("x-parked-reason", "x-parked-queue", "x-parked-at", "x-original-exchange",
                   "x-original-routing-key", "x-death", "x-first-death-exchange",
                   "x-first-death-queue", "x-first-death-reason")


class ParkingError(Exception):
    pass


def consumer_queue_named(system: System, name: str) -> str:
    """A consumer queue from its name or its parking queue's."""
    base = name.removesuffix(".parked")
    if base not in {sub.queue_name for sub in system.subscriptions}:
        known = ", ".join(sorted(sub.queue_name for sub in system.subscriptions))
        raise ParkingError(f"no consumer queue {name!r} in the system (queues: {known})")
    return base


def summary(amqp_uri: str, system: System, queue: str | None = None, first: int = 5) -> list:
    """Per parking queue: how many messages, their reasons counted, and the first few."""
    queues = [consumer_queue_named(system, queue)] if queue else [
        sub.queue_name for sub in system.subscriptions]
    out = []
    with Connection(amqp_uri) as conn:
        for name in queues:
            channel = conn.channel()
            try:
                _, count, _ = channel.queue_declare(queue=f"{name}.parked", passive=True)
            except Exception:  # noqa: BLE001 - not declared yet: nothing parked
                count = 0
                channel = conn.channel()
            reasons: Counter = Counter()
            shown = []
            for _ in range(min(count, PEEK_LIMIT)):
                message = channel.basic_get(f"{name}.parked", no_ack=False)
                if message is None:
                    break
                headers = message.headers or {}
                reason = str(headers.get("x-parked-reason") or (
                    f"dead-lettered by the broker ({headers['x-first-death-reason']})"
                    if headers.get("x-first-death-reason") else
                    "dead-lettered by the broker (no reason recorded)"))
                reasons[reason] += 1
                if len(shown) < first:
                    shown.append({"reason": reason, "parked_at": headers.get("x-parked-at"),
                                  "routing_key": headers.get("x-original-routing-key"),
                                  "body": _preview(message.body)})
            channel.close()  # everything read goes back, unacked, in order
            out.append({"queue": name, "parked": count, "reasons": dict(reasons.most_common()),
                        "first": shown})
    return out


def replay(amqp_uri: str, system: System, queue: str) -> int:
    """Put every parked message of `queue` back on it; return how many."""
    name = consumer_queue_named(system, queue)
    moved = 0
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        _, waiting, _ = channel.queue_declare(f"{name}.parked", passive=True)
        channel.confirm_select()
        # Those parked now, no more: a message whose cause is not fixed is parked again
        # meanwhile, and must not go round while this runs.
        while moved < waiting:
            message = channel.basic_get(f"{name}.parked", no_ack=False)
            if message is None:
                return moved
            headers = {k: v for k, v in (message.headers or {}).items()
                       if k not in PARKING_HEADERS}
            headers["x-replayed"] = int(headers.get("x-replayed") or 0) + 1
            properties = {"content_type": message.properties.get("content_type")
                          or "application/json",
                          "delivery_mode": 2, "application_headers": headers}
            channel.basic_publish_confirm(amqp.Message(message.body, **properties),
                                          exchange="", routing_key=name)
            channel.basic_ack(message.delivery_tag)
            moved += 1
        return moved


def _preview(body, limit: int = 300) -> str:
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"
