"""Consuming events without losing or looping on any of them.

nameko 2.14's own `EventHandler` is not enough here (KNOWN-TRAPS): a handler that raises has
its message acked (dropped), or with `requeue_on_error=True` requeued forever; it never
rejects, declares its queue without a dead-letter exchange, and a body kombu cannot decode
kills the consumer thread. `subscribe` replaces it:

- the queue is the durable one of the system declaration, with a dead-letter exchange;
- the raw body is parsed here, so a message that cannot be read at all (not JSON, nested too
  deep, not an envelope, of an unknown type or `schema_version`: any exception) is parked at
  once with the reason;
- a handler that fails for a temporary reason (database restarting, connection lost, lock
  timeout: orglife/common/failures.py) is waited out: consuming pauses with a growing backoff
  and the message is tried again, without counting an attempt, however long that takes while
  every message fails alike; a message that keeps failing "temporarily" while others succeed
  (TEMPORARY_BUDGET times) fails for a reason of its own and is parked;
- a handler that fails otherwise is retried a few times (with a short backoff), then the
  message is parked with the error; only then is it acked;
- with `batch_size` > 1 the method receives a list of envelopes, collected for at most
  `batch_wait` seconds, and handles them in one worker and one transaction (one commit per
  batch instead of one per message). If a batch fails for a temporary reason it is retried
  whole once after the pause; if it fails again, or for any other reason, each of its messages
  is handled again alone, so one bad message cannot hold back the others.

Parking publishes the message to the parking exchange with the reason in its headers; if even
that fails, the message is rejected without requeue and the broker dead-letters it. Acks and
rejects that meet a lost connection are dropped quietly: the broker redelivers the message to
the reconnected consumer, and the inbox makes the second handling a no-op. A batch handled
whole is acked with one `basic.ack` (`multiple`) when its messages are the oldest unsettled of
their channel (RawQueueConsumer.ack_messages).
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial

import eventlet
from kombu import Connection, Consumer, Producer
from nameko.containers import WorkerContext
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint
from nameko.messaging import HeaderDecoder, QueueConsumer

from .envelope import Envelope
from .failures import is_temporary
from .system import check_handlers
from .topology import PARKING_PREFIX, consumer_queue, declare_subscription, system_of

log = logging.getLogger(__name__)

# A message failing "temporarily" this many times while other messages of its queue succeed is
# parked: the cause is the message, not the database or the broker.
TEMPORARY_BUDGET = 20

JSON_CONTENT_TYPES = {None, "", "application/json", "text/json"}


def _now(function, *args) -> None:
    function(*args)


class QuickStopQueueConsumer(QueueConsumer):
    """nameko's QueueConsumer whose loop wakes every STOP_POLL seconds when no message comes
    (kombu's default is 1 s): removing a consumer and stopping happen between two wake-ups,
    so stopping a container took 2 s (the unregister, then the loop's exit), and
    `./orglife down` and every test's teardown as long."""

    STOP_POLL = 0.1

    def run(self, _tokens=1, **kwargs):
        kwargs.setdefault("safety_interval", self.STOP_POLL)
        return super().run(_tokens, **kwargs)


class RawQueueConsumer(QuickStopQueueConsumer):
    """nameko's QueueConsumer, handing providers the undecoded message (kombu `on_message`),
    so that no body can make kombu raise in the consumer thread and kill the container.

    nameko's own ack and requeue catch only py-amqp's ConnectionError; a socket reset raised
    from an ack killed the worker thread and the whole container with it. Here any failure to
    settle a message over a lost connection is logged and dropped: the consumer reconnects and
    the broker redelivers the message."""

    def get_consumers(self, consumer_cls, channel):
        """One channel per consumer: RabbitMQ applies a channel's latest basic.qos to every
        consumer on it, so consumers sharing the default channel (RPC and subscribers) all
        ended up with the RPC's prefetch of 10 and batches of 200 never filled."""
        for provider in self._providers:
            consumer = Consumer(
                channel.connection.channel(),
                queues=[provider.queue],
                on_message=partial(self.handle_raw_message, provider),
            )
            consumer.qos(prefetch_count=getattr(provider, "prefetch_count", None)
                         or self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # channel → delivery tags received on it and not yet acked, requeued or rejected
        # (weak: a channel lost with its connection takes its tags along)
        self._unsettled = weakref.WeakKeyDictionary()

    def track(self, message) -> None:
        """Count a message received as unsettled until it is acked, requeued or rejected."""
        self._unsettled.setdefault(message.channel, set()).add(message.delivery_tag)

    def handle_raw_message(self, provider, message):
        self.track(message)
        receive = getattr(provider, "receive", None)
        if receive is not None:  # an EventSubscriber: see its `receive`
            receive(message)
            return
        ident = f"{type(provider).__name__}.handle_message[{provider.queue.name}]"
        self.container.spawn_managed_thread(
            partial(provider.handle_message, message), identifier=ident)

    def ack_message(self, message):
        self._settle(message, "ack", message.ack)

    def ack_messages(self, messages) -> None:
        """Ack a handled batch. When its messages are the oldest unsettled ones of their
        channel (the usual case: batches are cut in delivery order) one `basic.ack` with
        `multiple` acks them all: a frame per batch instead of one per message, for this
        process and for the broker. Otherwise (an older message of the channel still being
        retried, or in another batch still running) each is acked alone, for a multiple ack
        would take that older message with it."""
        by_channel = defaultdict(list)
        for message in messages:
            by_channel[message.channel].append(message)
        for channel, group in by_channel.items():
            top = multiple_ack_tag([m.delivery_tag for m in group],
                                   self._unsettled.get(channel, ()))
            if top is None or not channel.connection:
                for message in group:
                    self.ack_message(message)
                continue
            self._unsettled[channel].difference_update(m.delivery_tag for m in group)
            for message in group:
                message._state = "ACK"  # as kombu's own Message.ack records it
            try:
                channel.basic_ack(top, multiple=True)
            except Exception as exc:  # noqa: BLE001 - a lost connection, whatever its type
                log.warning("could not ack %d messages (%s: %s); the broker will redeliver "
                            "them", len(group), type(exc).__name__, exc)

    def requeue_message(self, message):
        self._settle(message, "requeue", message.requeue)

    def reject_message(self, message):
        """Reject without requeue: the queue's dead-letter exchange takes it."""
        self._settle(message, "reject", partial(message.reject, requeue=False))

    def _settle(self, message, what: str, settle) -> None:
        unsettled = self._unsettled.get(message.channel)
        if unsettled is not None:
            unsettled.discard(message.delivery_tag)
        if not message.channel.connection:
            return  # the channel is gone: the broker has reclaimed the message already
        try:
            settle()
        except Exception as exc:  # noqa: BLE001 - a lost connection, whatever its type
            log.warning("could not %s a message (%s: %s); the broker will redeliver it",
                        what, type(exc).__name__, exc)


def multiple_ack_tag(batch_tags, unsettled) -> int | None:
    """The delivery tag to ack a batch with `multiple`, or None when it must be acked message
    by message: `multiple` acks every unsettled message up to the tag, so the batch must hold
    all of them (and a lone message gains nothing)."""
    tags = set(batch_tags)
    if len(tags) < 2 or not tags <= set(unsettled):
        return None
    top = max(tags)
    if any(tag <= top and tag not in tags for tag in unsettled):
        return None
    return top


class EventSubscriber(Entrypoint, HeaderDecoder):
    """Entrypoint: handle every event of `source` this service subscribes to in the system
    declaration (orglife/system.py).

    `handlers` is the consumer's dispatch table (event type → handler); the decorated method
    picks each envelope's handler from it. At start the table must name exactly the event
    types the declaration subscribes this service to, or the container refuses to start.
    The method receives an `Envelope` (a list of them with `batch_size` > 1); it should record
    each `event_id` in its unit of work (`uow.first_time`) so that a redelivery changes nothing.
    """

    queue_consumer = RawQueueConsumer()

    def __init__(self, source: str, handlers, max_attempts: int = 3, retry_delay: float = 0.2,
                 prefetch_count: int | None = None, batch_size: int = 1,
                 batch_wait: float = 0.02, **kwargs):
        self.source = source
        self.handlers = handlers
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        # Temporary failures pause consuming until this monotonic instant (see `_pause`).
        self._paused_until = 0.0
        self._pause_seconds = 0.0
        self._successes = 0  # handlings that succeeded: is a failure this message's own?
        self._timers: set = set()
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        # A batch can only fill if the broker may hand over that many unacked messages.
        self.prefetch_count = max(prefetch_count or 0, 2 * batch_size) or None
        self.parked = 0
        self._buffer: list = []
        self._flush_timer = None
        super().__init__(**kwargs)

    def setup(self):
        config = self.container.config
        self.system = system_of(config)
        service = self.container.service_name
        self.subscription = self.system.subscription(service, self.source)
        check_handlers(self.system, service, self.source, self.handlers)
        self.queue = consumer_queue(self.subscription)
        self.amqp_uri = config["AMQP_URI"]
        with Connection(self.amqp_uri) as conn:
            declare_subscription(conn, self.system, self.subscription)
        self._parking_connection = None
        # One parking channel, used by one greenthread at a time (a channel is not shareable).
        self._parking_lock = threading.Lock()
        self.queue_consumer.register_provider(self)

    def stop(self):
        self.queue_consumer.unregister_provider(self)
        self._cancel_timers()
        if self._parking_connection is not None:
            self._parking_connection.release()

    def kill(self):
        self._cancel_timers()
        if self._parking_connection is not None:
            self._parking_connection.release()

    def _later(self, delay: float, function, *args) -> None:
        """A retry after `delay`, cancelled if the container stops first (its unacked
        message goes back to the broker with the connection)."""
        def run():
            self._timers.discard(timer)
            function(*args)
        timer = eventlet.spawn_after(delay, run)
        self._timers.add(timer)

    def _cancel_timers(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()

    # -- receiving ------------------------------------------------------------------------
    def receive(self, message):
        """A message, in the queue consumer's own thread (RawQueueConsumer.handle_raw_message):
        read and buffered there, without the greenthread per message nameko spawns (about
        30 µs each, three messages per meeting in the flow); what may wait (`spawn_worker`
        waits for a free worker, parking publishes) runs in a managed thread, so the consumer
        thread never blocks, and nothing here raises into it."""
        self.handle_message(message, later=self._in_managed_thread)

    def _in_managed_thread(self, function, *args) -> None:
        self.container.spawn_managed_thread(
            partial(function, *args), identifier=f"{function.__name__}[{self.queue.name}]")

    def handle_message(self, message, later=None):
        """Read `message` and hand it on (to a worker, to the batch, or to parking). `later`
        runs what may wait; by default it runs at once (the caller is a thread of its own)."""
        later = later or _now
        try:
            envelope = self.parse(message)
        except RecursionError:
            later(self.park, message, "cannot be read: nested too deeply")
            return
        except Exception as exc:  # noqa: BLE001 - whatever cannot be read is parked, not fatal
            later(self.park, message, f"cannot be read: {exc}" if isinstance(exc, ValueError)
                  else f"cannot be read: {type(exc).__name__}: {exc}")
            return
        if self.batch_size == 1:
            later(self._spawn, envelope, message, Tries())
            return
        self._buffer.append((envelope, message))
        if len(self._buffer) >= self.batch_size:
            self._flush(later)
        elif self._flush_timer is None:
            self._flush_timer = eventlet.spawn_after(self.batch_wait, self._flush)

    def _flush(self, later=None):
        if self._flush_timer is not None:
            self._flush_timer.cancel()  # a no-op when the timer itself is flushing
            self._flush_timer = None
        batch, self._buffer = self._buffer, []
        if batch:
            (later or _now)(self._spawn_batch, batch)

    def _spawn_batch(self, batch, retried: bool = False):
        wait = self._paused_until - time.monotonic()
        if wait > 0:
            self._later(wait, self._spawn_batch, batch, retried)
            return
        batch = [(envelope, message) for envelope, message in batch if message.channel.connection]
        if not batch:
            return  # their channel is gone: the broker redelivers them to the new one
        try:
            self.container.spawn_worker(
                self, ([envelope for envelope, _ in batch],), {},
                context_data=self.context_of(batch[0][1]),
                handle_result=partial(self.handle_batch_result, batch, retried),
            )
        except ContainerBeingKilled:
            for _, message in batch:
                self.queue_consumer.requeue_message(message)

    def handle_batch_result(self, batch, retried, worker_ctx, result=None, exc_info=None):
        if exc_info is None:
            self._succeeded(len(batch))
            self.queue_consumer.ack_messages([message for _, message in batch])
        elif is_temporary(exc_info[1]) and not retried:
            self._pause(exc_info[1], f"a batch of {len(batch)}")
            self._spawn_batch(batch, retried=True)  # once more whole, after the pause
        else:
            # Failing again (or for good): one by one, so a message whose failure is its own
            # is found and parked while the others go through.
            log.warning("%s failed on a batch of %d (%r); handling them one by one",
                        self.method_name, len(batch), exc_info[1])
            temporary = is_temporary(exc_info[1])
            for envelope, message in batch:
                self._spawn(envelope, message, Tries(temporary=int(temporary),
                                                     successes_at=self._successes))
        return result, exc_info

    def context_of(self, message) -> dict:
        """What a worker is told about the message's context: nameko's call id stack, when
        it is well formed, and nothing else. A peer's `nameko.call_id_stack: 5` made nameko
        raise outside the handler and kill the container, again at each redelivery."""
        try:
            stack = self.unpack_message_headers(message).get("call_id_stack")
        except Exception:  # noqa: BLE001 - headers of any shape
            return {}
        if isinstance(stack, list) and len(stack) <= 100 and all(
                isinstance(item, str) and len(item) <= 300 for item in stack):
            return {"call_id_stack": stack}
        return {}

    def parse(self, message) -> Envelope:
        if message.content_type not in JSON_CONTENT_TYPES:
            raise ValueError(f"unsupported content type {message.content_type!r}")
        envelope = Envelope.from_body(message.body)
        if envelope.source != self.source:
            raise ValueError(f"source {envelope.source!r} on the {self.source}.events exchange")
        if envelope.event_type not in self.subscription.event_types:
            raise ValueError(f"unknown event type {envelope.event_type!r} on this queue")
        known = self.system.versions(self.source, envelope.event_type)
        if envelope.schema_version not in known:
            raise ValueError(
                f"unknown schema_version {envelope.schema_version} of {envelope.event_type} "
                f"(known: {sorted(known)})")
        return envelope

    # -- temporary failures -----------------------------------------------------------------
    def _pause(self, exc: BaseException, what: str) -> None:
        """Hold every new handling back for a growing while (0.5 s doubling to 30 s), growing
        once per round of failures, not once per message failing in the same round."""
        now = time.monotonic()
        if now >= self._paused_until:
            self._pause_seconds = min(max(self._pause_seconds * 2, 0.5), 30.0)
            self._paused_until = now + self._pause_seconds
        log.warning("%s: temporary failure on %s (%s: %s); pausing %.1fs and trying again",
                    self.method_name, what, type(exc).__name__, exc, self._pause_seconds)

    def _succeeded(self, count: int = 1) -> None:
        self._pause_seconds = 0.0
        self._successes += count

    def _spawn(self, envelope: Envelope, message, tries: "Tries"):
        wait = self._paused_until - time.monotonic()
        if wait > 0:
            self._later(wait, self._spawn, envelope, message, tries)
            return
        if not message.channel.connection:
            return  # its channel is gone: the broker redelivers it to the new one
        try:
            self.container.spawn_worker(
                self, ([envelope] if self.batch_size > 1 else envelope,), {},
                context_data=self.context_of(message),
                handle_result=partial(self.handle_result, envelope, message, tries),
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def handle_result(self, envelope, message, tries: "Tries", worker_ctx: WorkerContext,
                      result=None, exc_info=None):
        what = f"{envelope.event_type} {envelope.event_id}"
        if exc_info is None:
            self._succeeded()
            self.queue_consumer.ack_message(message)
        elif is_temporary(exc_info[1]):
            tries = tries.failed_temporarily(self._successes)
            if tries.temporary >= TEMPORARY_BUDGET and self._successes > tries.successes_at:
                # Others went through meanwhile: the "temporary" cause is this message's own.
                self.park(message, f"handler {self.method_name} failed {tries.temporary} times "
                                   f"while other messages succeeded: "
                                   f"{type(exc_info[1]).__name__}: {exc_info[1]}")
            else:
                self._pause(exc_info[1], what)
                self._spawn(envelope, message, tries)  # not an attempt while all fail alike
        elif tries.attempt < self.max_attempts:
            log.warning("%s failed on %s (attempt %d): %r", self.method_name, what,
                        tries.attempt, exc_info[1])
            self._later(self.retry_delay * tries.attempt, self._spawn, envelope, message,
                        tries.failed())
        else:
            self.park(message, f"handler {self.method_name} failed {tries.attempt} times: "
                               f"{type(exc_info[1]).__name__}: {exc_info[1]}")
        return result, exc_info

    # -- parking --------------------------------------------------------------------------
    def park(self, message, reason: str):
        """Move a message to this queue's parking queue with the reason; never requeue it."""
        reason = reason[:2000]
        log.error("parking a message from %s: %s", self.queue.name, reason)
        body = message.body
        if not isinstance(body, (bytes, bytearray)):  # an empty body arrives as ""
            body = (body or "").encode("utf-8", "surrogateescape")
        headers = dict(message.headers or {})
        headers.update({
            "x-parked-reason": reason,
            "x-parked-queue": self.queue.name,
            "x-parked-at": datetime.now(timezone.utc).isoformat(),
            "x-original-exchange": message.delivery_info.get("exchange", ""),
            "x-original-routing-key": message.delivery_info.get("routing_key", ""),
        })
        try:
            with self._parking_lock:
                if self._parking_connection is None:
                    self._parking_connection = Connection(
                        self.amqp_uri, transport_options={"confirm_publish": True})
                producer = Producer(self._parking_connection.default_channel)
                producer.publish(
                    bytes(body), exchange=PARKING_PREFIX + self.subscription.consumer,
                    routing_key=self.queue.name,
                    headers=headers, delivery_mode=2,
                    content_type=message.content_type or "application/octet-stream",
                    content_encoding="binary",
                    retry=True, retry_policy={"max_retries": 3},
                )
        except Exception as exc:  # noqa: BLE001 - the broker or this channel is gone
            log.error("could not publish to the parking queue (%s); rejecting instead", exc)
            self._parking_connection = None
            self.queue_consumer.reject_message(message)  # the dead-letter exchange takes it
        else:
            self.queue_consumer.ack_message(message)
        self.parked += 1


@dataclass(frozen=True)
class Tries:
    """How a message has fared: attempts that failed for good reasons of its own, and
    temporary failures (with the successes counted when the first one happened)."""

    attempt: int = 1
    temporary: int = 0
    successes_at: int = 0

    def failed(self) -> "Tries":
        return Tries(self.attempt + 1, self.temporary, self.successes_at)

    def failed_temporarily(self, successes: int) -> "Tries":
        return Tries(self.attempt, self.temporary + 1,
                     successes if self.temporary == 0 else self.successes_at)


subscribe = EventSubscriber.decorator
