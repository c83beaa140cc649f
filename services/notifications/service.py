"""notifications: reminders, follow-ups and alerts through e-mail, SMS, work-chat robots and
in-app, each stored before it is sent and sent once (SPEC §3, §4).

Thin entrypoints: consumers keeping the copy of members and organizations and planning
notifications from meetings' and scoring's events (handlers.py); a timer sending what is due
(registry.lease_due → begin_sends → the channel → finish_sends); RPCs for admins.
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import timedelta

import eventlet
import eventlet.queue
from nameko.extensions import DependencyProvider
from nameko.timer import timer
from sqlalchemy import func, select

from orglife.common.auth import READERS, Auth, authorized
from orglife.common.clock import ClockProvider
from orglife.common.errors import EXPECTED_ERRORS
from orglife.common.failures import is_temporary
from orglife.common.messaging import subscribe
from orglife.common.rpc import rpc
from orglife.common.rules import RulesProvider
from orglife.common.schemas import load
from orglife.common.store import Store

from . import handlers, registry, schemas
from .channels import ChannelFailure, DeliveryUnknown, PermanentFailure, channels_from_config
from .domain import member_channels_of
from .models import ContactCopy, Notification, backbone
from .registry import Planning, SessionDirectory
from .texts import TextsProvider

log = logging.getLogger(__name__)


class Sender(DependencyProvider):
    """The channels of this deployment (ORGLIFE_SMTP_URL, ORGLIFE_SMS_URL, ORGLIFE_WEBHOOK_URL)
    and this instance's name on the rows it leases."""

    BATCH = 200  # notifications leased per tick
    CONCURRENCY = 32  # sends in flight at once (they wait on the network, not the CPU); at
    # most this many rows are `sending` at a time, so a crash leaves at most this many `unknown`
    LEASE = timedelta(minutes=5)
    ROUNDS = 10  # leases per timer run, so one run cannot hold the worker for long

    def setup(self):
        self.channels = channels_from_config(self.container.config)
        self.default_robot_url = self.container.config.get("ORGLIFE_WEBHOOK_URL") or None
        self.default_robot = bool(self.default_robot_url)
        # members are planned only on channels this deployment has (no SMS to nowhere)
        self.member_channels = member_channels_of(self.channels)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def stop(self):
        for channel in self.channels.values():
            channel.close()

    def get_dependency(self, worker_ctx):
        return self


class NotificationsService:
    name = "notifications"

    store = Store(backbone)
    auth = Auth()
    clock = ClockProvider()
    rules = RulesProvider()
    texts = TextsProvider()
    sender = Sender()

    @rpc
    def health(self):
        """Liveness, outbox backlog and what waits to be sent (no token, no personal data)."""
        with self.store.read() as uow:
            pending = uow.session.scalar(select(func.count()).select_from(Notification).where(
                Notification.status == "pending"))
            contacts = uow.session.scalar(select(func.count()).select_from(ContactCopy))
        return {"service": self.name, "ok": True, "outbox_backlog": self.store.outbox_backlog(),
                "pending": pending, "known_members": contacts}

    # -- reads and admin changes ---------------------------------------------------------------
    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def list_notifications(self, filters=None):
        """Newest first, filtered by recipient_id, kind, status, channel, cause, org_id."""
        args = load(schemas.NotificationFilters(), filters or {})
        with self.store.read() as uow:
            return registry.list_notifications(uow, self.auth.principal, args)

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def notification_summary(self, org_id=None):
        """Counts by kind, channel and status, for the overview."""
        args = load(schemas.SummaryArgs(), {"org_id": org_id})
        with self.store.read() as uow:
            return registry.summary(uow, self.auth.principal, args["org_id"])

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized("county_admin", "township_admin", "branch_secretary")
    def set_preferences(self, preferences):
        args = load(schemas.PreferencesArgs(), preferences)
        return self.store.change(lambda uow: registry.set_preferences(
            uow, self.auth.principal, self.rules, args, self.clock.now(), self.clock.tz,
            self.sender.member_channels))

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized("county_admin", "township_admin")
    def resend(self, notification_id):
        """An admin's retry of a failed or unknown notification (never automatic)."""
        args = load(schemas.ResendArgs(), {"notification_id": notification_id})
        return self.store.change(lambda uow: registry.resend(
            uow, self.auth.principal, args["notification_id"], self.clock.now()))

    # -- events ----------------------------------------------------------------------------------
    @subscribe("members", handlers.MEMBERS_HANDLERS, batch_size=200)
    def on_members_events(self, envelopes):
        """Keep the copy of contacts, secretaries and robots."""
        self._apply(envelopes, handlers.MEMBERS_HANDLERS, handlers.prepare_members)

    @subscribe("meetings", handlers.MEETINGS_HANDLERS, batch_size=100)
    def on_meetings_events(self, envelopes):
        """Reminders before, follow-ups and digests after, withdrawals when things change."""
        self._apply(envelopes, handlers.MEETINGS_HANDLERS, handlers.prepare_meetings)

    @subscribe("scoring", handlers.SCORING_HANDLERS, batch_size=100)
    def on_scoring_events(self, envelopes):
        """Overdue, silent, due-soon, at-risk and year-end notices."""
        self._apply(envelopes, handlers.SCORING_HANDLERS)

    def _planning(self, uow) -> Planning:
        return Planning(self.rules, self.texts, self.clock.tz, self.clock.now(),
                        SessionDirectory(uow.session, self.sender.default_robot,
                                         self.sender.member_channels))

    def _apply(self, envelopes, table, prepare=None):
        with self.store() as uow:
            planning = self._planning(uow)
            fresh = uow.first_times(envelopes)
            if prepare is not None:
                prepare(uow, fresh, planning)
            for envelope in fresh:
                planning.event_id = envelope.event_id
                table[envelope.event_type](uow, envelope, planning)
                uow.session.flush()  # later events of the batch see this one
            handlers.replan_arrived(uow, planning)
            uow.commit()

    @timer(interval=30)
    def wake_overlooked_waits(self):
        """Meetings left waiting for a member another instance committed at the same instant
        (handlers.wake_overlooked); usually one query that finds nothing."""
        with self.store.read() as uow:  # no write lock when nothing is found, as usual
            if not handlers.overlooked(uow.session, limit=1):
                return
        with self.store() as uow:
            woken = handlers.wake_overlooked(uow, self._planning(uow))
            uow.commit()
        if woken:
            log.info("woke %d meetings waiting for members or branches already known", woken)

    # -- sending -------------------------------------------------------------------------------
    @timer(interval=1)
    def deliver_due(self):
        """Send what is due, a lease of BATCH rows at a time, until nothing is due (a message
        moved on to its next channel goes in the same run); rows a dead sender left `sending`
        become `unknown` first."""
        with self.store() as uow:
            registry.sweep_stale(uow.session, self.clock.now())
            uow.commit()
        self._deliver()

    def _lease(self) -> list[str]:
        """Lease up to BATCH due rows; [] when the database will not (the next run tries)."""
        def lease(uow):
            leased = registry.lease_due(uow.session, self.rules, self.clock.tz,
                                        self.sender.owner, self.clock.now(),
                                        self.sender.BATCH, self.sender.LEASE)
            uow.commit()
            return leased
        try:
            return self._retrying(lease, "leasing due notifications")
        except Exception:
            return []  # answers of sends still in flight are recorded all the same

    def _retrying(self, change, what: str, attempts: int = 5):
        """Run `change(uow)` in a unit of work, waiting out temporary database failures: an
        answer already taken by a channel must not be lost to a restarting database (the
        row would stay `sending` and end `unknown`)."""
        for attempt in range(1, attempts + 1):
            try:
                with self.store() as uow:
                    return change(uow)
            except Exception as error:
                if attempt == attempts or not is_temporary(error):
                    log.exception("%s failed", what)
                    raise
                log.warning("%s: %s, retrying", what, type(error).__name__)
                eventlet.sleep(0.5 * attempt)

    def _deliver(self) -> None:
        """Keep up to CONCURRENCY sends in flight while this greenthread marks rows `sending`
        and records answers, a transaction per group: the whole of CONCURRENCY when nothing
        is in flight, then about half of it at a time while the other half waits on its
        channels, so the endpoints are not left idle during our own database work. At most
        CONCURRENCY rows are `sending` at any time: a crash leaves at most that many
        `unknown` (registry.sweep_stale). Every answer received is recorded, even when
        the run ends on an error."""
        limit = self.sender.CONCURRENCY
        group = max(1, limit // 2)
        pool = eventlet.GreenPool(limit)
        answered = eventlet.queue.LightQueue()
        leases = self.sender.ROUNDS  # at most this many leases, so one run cannot go on for long
        dry = False  # the last lease found nothing, and no answer since made a row due again
        waiting: list[str] = []  # leased, not yet begun
        in_flight = 0  # handed to a channel, no answer yet
        done: list = []  # answered, not yet recorded

        def send(outgoing):
            answer = (None, DeliveryUnknown("the send was stopped before it answered"))
            try:
                answer = self._send_one(outgoing)
            finally:  # exactly one answer per send, whatever stopped it: the loop counts them
                answered.put((outgoing, answer))

        try:
            while True:
                if not waiting and not dry and leases:
                    waiting, leases = self._lease(), leases - 1
                    dry = not waiting
                free = limit - in_flight - len(done)
                if waiting and free >= min(group, len(waiting)):
                    begun, waiting = waiting[:free], waiting[free:]
                    for outgoing in self._begin(begun):
                        pool.spawn_n(send, outgoing)
                        in_flight += 1
                    continue
                if done and (len(done) >= group or in_flight == 0):
                    statuses = self._record(done)
                    done = []  # only once recorded: a group that failed is tried again below
                    if "pending" in statuses:
                        dry = False  # moved on to its next channel: due now, in this run
                    continue
                if in_flight == 0:
                    return  # nothing leased, in flight or unrecorded, and nothing more due
                arrived = [answered.get()]  # nothing else to do: wait for an answer
                while not answered.empty():
                    arrived.append(answered.get_nowait())
                in_flight -= len(arrived)
                done += arrived
        except BaseException as error:
            # Recording failed (the sends still in flight may finish first), or the worker is
            # being killed (no waiting): one more try to record every answer received; what
            # cannot be recorded stays `sending` and ends `unknown`, never sent twice.
            if isinstance(error, Exception):
                pool.waitall()
            while not answered.empty():
                done.append(answered.get_nowait())
            if done:
                try:
                    self._record(done)
                except Exception:
                    log.error("%d answers could not be recorded; their rows will be `unknown`",
                              len(done))
            raise

    def _begin(self, notification_ids: list[str]) -> list:
        """Mark a group `sending` in one transaction; [] when the database will not take it
        (the rows stay leased: the lease runs out and they are tried again)."""
        def begin(uow):
            found = registry.begin_sends(uow.session, notification_ids, self.sender.owner,
                                         self.clock.now(), self.sender.default_robot_url)
            uow.commit()
            return found
        try:
            return self._retrying(begin, f"starting {len(notification_ids)} sends")
        except Exception:
            return []

    def _record(self, done: list) -> list[str]:
        """Record a group's answers in one transaction; their new statuses."""
        def record(uow):
            found = registry.finish_sends(
                uow, self.rules, [(sent.notification_id, receipt, failure)
                                  for sent, (receipt, failure) in done], self.clock.now(),
                self.sender.owner)
            uow.commit()
            return found
        statuses = self._retrying(record, f"recording {len(done)} answers")
        for (sent, (_, failure)), status in zip(done, statuses):
            if failure is not None:
                log.info("notification %s via %s: %s (%s)", sent.notification_id, sent.channel,
                         status, type(failure).__name__)
        return statuses

    def _send_one(self, outgoing) -> tuple[str | None, Exception | None]:
        """(receipt, None) or (None, the failure): the channel's answer, never raised."""
        channel = self.sender.channels.get(outgoing.channel)
        try:
            if channel is None:
                raise PermanentFailure(f"{outgoing.channel} is not configured here")
            if outgoing.address is None and outgoing.channel in ("email", "sms"):
                raise PermanentFailure(f"no {outgoing.channel} address any more")
            return channel.send(outgoing.address, outgoing.subject, outgoing.body), None
        except ChannelFailure as error:
            return None, error
        except Exception as error:  # a bug in a channel must not leave the row `sending`
            log.error("channel %s raised %s", outgoing.channel, type(error).__name__)
            # It may have handed the message over before it broke: never repeat it blindly.
            return None, DeliveryUnknown(f"the channel stopped unexpectedly "
                                         f"({type(error).__name__})")

