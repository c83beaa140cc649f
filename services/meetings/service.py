"""meetings: meetings and activities with attendance, and intake from other systems (SPEC §4).

Thin entrypoints: RPC for secretaries, admins and peers; a consumer keeping the copy of
members' organizations and members (roster.py); a consumer of intake reports (intake.py); and
a timer that retries intake reports waiting for members not known yet.
"""
from __future__ import annotations

import logging

from nameko.extensions import DependencyProvider
from nameko.timer import timer
from sqlalchemy import distinct, func, select

from orglife.common.auth import ADMINS, READERS, Auth, authorized
from orglife.common.clock import ClockProvider
from orglife.common.errors import EXPECTED_ERRORS
from orglife.common.messaging import subscribe
from orglife.common.rpc import rpc
from orglife.common.rules import RulesProvider
from orglife.common.schemas import id_argument, load
from orglife.common.store import Store

from . import intake, registry, roster, schemas
from .models import MemberCopy, PendingIntake, backbone

log = logging.getLogger(__name__)


class RosterCacheProvider(DependencyProvider):
    """One roster cache per service instance (see roster.RosterCache)."""

    def setup(self):
        self.cache = roster.RosterCache()

    def get_dependency(self, worker_ctx):
        return self.cache


class MeetingsService:
    name = "meetings"

    store = Store(backbone)
    auth = Auth()
    clock = ClockProvider()
    rules = RulesProvider()
    rosters = RosterCacheProvider()

    def _load(self, schema, payload):
        return load(schema, payload, tz=self.clock.tz.key)

    @rpc
    def health(self):
        """Liveness, outbox backlog and waiting intake for `orglife status` (no token)."""
        with self.store.read() as uow:
            waiting = uow.session.scalar(select(func.count()).select_from(PendingIntake))
            known = uow.session.scalar(select(func.count(distinct(MemberCopy.member_id))))
        return {"service": self.name, "ok": True, "outbox_backlog": self.store.outbox_backlog(),
                "intake_waiting": waiting, "known_members": known}

    # -- meetings -----------------------------------------------------------------------------
    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*ADMINS)
    def schedule_meeting(self, meeting):
        payload = self._load(schemas.ScheduleSchema(), meeting)
        with self.store() as uow:
            return registry.schedule_meeting(uow, self.auth.principal, self.rules, payload,
                                             self.clock.now())

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*ADMINS)
    def log_meeting(self, meeting):
        payload = self._load(schemas.LogSchema(), meeting)
        with self.store() as uow:
            return registry.log_meeting(uow, self.auth.principal, self.rules, payload,
                                        self.clock.now())

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*ADMINS)
    def amend_meeting(self, changes):
        payload = self._load(schemas.AmendSchema(), changes)
        with self.store() as uow:
            return registry.amend_meeting(uow, self.auth.principal, self.rules, payload,
                                          self.clock.now())

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*ADMINS)
    def cancel_meeting(self, cancel):
        payload = self._load(schemas.CancelSchema(), cancel)
        with self.store() as uow:
            return registry.cancel_meeting(uow, self.auth.principal, self.rules, payload)

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def get_meeting(self, meeting_id):
        meeting_id = id_argument("meeting_id", meeting_id)
        with self.store.read() as uow:
            return registry.get_meeting(uow, self.auth.principal, self.rules, meeting_id)

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def list_meetings(self, filters=None):
        payload = self._load(schemas.MeetingFilters(), filters or {})
        with self.store.read() as uow:
            return registry.list_meetings(uow, self.auth.principal, self.rules, payload,
                                          self.clock.tz)

    # -- activities ---------------------------------------------------------------------------
    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*ADMINS)
    def log_activity(self, activity):
        payload = self._load(schemas.ActivitySchema(), activity)
        with self.store() as uow:
            return registry.log_activity(uow, self.auth.principal, payload, self.clock.now())

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def get_activity(self, activity_id):
        activity_id = id_argument("activity_id", activity_id)
        with self.store.read() as uow:
            return registry.get_activity(uow, self.auth.principal, activity_id)

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def list_activities(self, filters=None):
        payload = self._load(schemas.ActivityFilters(), filters or {})
        with self.store.read() as uow:
            return registry.list_activities(uow, self.auth.principal, payload, self.clock.tz)

    # -- intake -------------------------------------------------------------------------------
    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def get_intake(self, event_id):
        """What became of a peer's report, found by the `event_id` of its envelope."""
        event_id = id_argument("event_id", event_id)
        with self.store.read() as uow:
            return intake.get_intake(uow, self.auth.principal, event_id)

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def list_rejected_intake(self, filters=None):
        payload = self._load(schemas.RejectedFilters(), filters or {})
        with self.store.read() as uow:
            return intake.list_rejected_intake(uow, self.auth.principal, payload)

    # -- events -------------------------------------------------------------------------------
    @subscribe("members", roster.HANDLERS, batch_size=200)
    def on_members_events(self, envelopes):
        """Keep the copy of organizations and members (highest version wins)."""
        with self.store() as uow:
            for envelope in uow.first_times(envelopes):
                roster.HANDLERS[envelope.event_type](uow, envelope, self.clock.tz)
                uow.session.flush()  # later events of the same batch see this one
            roster.bump_watermark(uow.session)
            uow.commit()

    @subscribe("intake", intake.HANDLERS, batch_size=200)
    def on_intake(self, envelopes):
        """Meetings and activities reported by other systems, checked as log_meeting checks;
        a batch of reports is stored in one transaction."""
        with self.store() as uow, uow.batch():
            intake.prefetch_meetings(uow.session, envelopes)
            for envelope in uow.first_times(envelopes):
                outcome = self._intake(uow, envelope.event_type, envelope.data,
                                       envelope.event_id)
                if outcome.status == "rejected":
                    log.info("intake %s rejected: %s", envelope.event_id,
                             sorted(outcome.reasons))

    def _intake(self, uow, event_type, body, event_id, pending=None):
        return intake.handle_intake(uow, self.rules, event_type, body, event_id,
                                    self.clock.now(), self.clock.tz.key, pending, self.rosters)

    @timer(interval=1.0)
    def retry_waiting_intake(self):
        """Reports that named unknown members: accept them now, or reject them when expired."""
        with self.store() as uow:
            waiting = intake.waiting_event_ids(uow.session)
        for event_id in waiting:
            with self.store() as uow:
                pending = uow.session.get(PendingIntake, event_id)
                if pending is None:
                    continue
                self._intake(uow, pending.event_type, pending.body, event_id, pending)
