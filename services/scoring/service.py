"""scoring: points, grades, compliance, lights, rankings, unevenness and members at risk,
each explained line by line (SPEC §3, §4).

Thin entrypoints: RPC reads for admins, secretaries and peers; consumers keeping scoring's
own copy of members' and meetings' data (replica.py) and marking what each batch made stale;
a timer draining those marks (registry.drain); a timer running the daily job once a day
(overdue and silent branches, streaks that grew because a month ended).
"""
from __future__ import annotations

import logging
import time

from nameko.extensions import DependencyProvider
from nameko.timer import timer
from sqlalchemy import func, select

from orglife.common.auth import READERS, Auth, authorized
from orglife.common.clock import ClockProvider
from orglife.common.errors import EXPECTED_ERRORS, ValidationError
from orglife.common.messaging import subscribe
from orglife.common.rpc import rpc
from orglife.common.rules import RulesProvider
from orglife.common.schemas import load
from orglife.common.store import Store

from . import registry, replica, schemas
from .models import MeetingCopy, MemberScore, MemberState, backbone

log = logging.getLogger(__name__)


class DrainPace(DependencyProvider):
    """When the next drain may run. While the consumers are applying batches (a burst), twice
    as long after the last drain as it took (`BURST_FACTOR`), so the consumers keep two thirds
    of the process and each drain covers more events: a member is rescored once per drain,
    whatever the number of meetings about them, and a county's branches, most of which a
    second of meetings touches, are reloaded once per drain (replaying a county year in
    process, draining at most every 0.5 s cost a sixth less than every 0.2 s, every 1 s a
    third less). Never sooner than `MIN_SECONDS` after the last one; and once no batch has
    come since it ended (a burst's tail, a quiet hour), `MIN_SECONDS` after it. A drain is
    timed from when it holds the database, so a wait for a consumer's commit does not count.
    After a drain shorter than a quarter second the next comes MIN_SECONDS later, as before
    the burst pace, and a mark waits at most MIN_SECONDS + the timer's 0.2 s + a drain; a
    longer drain while batches come lengthens that wait (README's freshness figures). Streaks,
    which only raise alerts, are drained every `RISK_SECONDS`.

    Once the consumers are idle (no batch running and none for `IDLE_SECONDS` outside
    drains: the queues are empty) nothing is gained by waiting: the marks left, streaks
    included, are drained `MIN_SECONDS` after the last drain, and `AFTER_LIMIT_SECONDS`
    after a drain that stopped at its limit with marks left, unless a batch is running by
    then (the burst's pace holds).
    A county year's burst used to end with its consumers idle and the last drains waiting for
    the burst's pace and for the streaks' 3 s: 12 of the 80 s that 40% of the year took
    through bench/scoring.py."""

    MIN_SECONDS = 0.5
    BURST_FACTOR = 2.0
    RISK_SECONDS = 3.0
    # A burst's batches come far closer; 0.2 s also found gaps within a county year's burst,
    # whose extra drains (streaks included) cost scoring a sixth more CPU
    IDLE_SECONDS = 1.0
    AFTER_LIMIT_SECONDS = 0.2

    def setup(self):
        self.next_at = 0.0  # under a burst
        self.quiet_at = 0.0  # when no batch came since the last drain
        self.batches = False
        self.risks_at = 0.0
        self.running = 0  # batches being applied
        self.last_batch_at = float("-inf")
        self.drained_since_batch = 0.0  # seconds of drains since the last batch
        self.more = False  # the last drain stopped at its limit with marks left

    def get_dependency(self, worker_ctx):
        return self

    def applying(self) -> None:
        """A consumer started a batch."""
        self.running += 1

    def applied(self) -> None:
        """A consumer committed a batch (or gave it up)."""
        self.running = max(self.running - 1, 0)
        self.batches = True
        self.last_batch_at = time.monotonic()
        self.drained_since_batch = 0.0

    def idle(self) -> bool:
        """No batch running and none for IDLE_SECONDS of the time the consumers could run:
        the caught-up consumers. On SQLite a drain holds the database and keeps batches
        from committing, so its seconds do not count: right after a long drain, before the
        consumers could show they are at work, they are not taken for idle (and the
        streaks, `risks_due`, are not drained along under a burst)."""
        quiet = time.monotonic() - self.last_batch_at - self.drained_since_batch
        return not self.running and quiet >= self.IDLE_SECONDS

    def due(self) -> bool:
        now = time.monotonic()
        if self.batches or self.running:  # the consumers at work since the last drain
            return now >= self.next_at or (now >= self.quiet_at and self.idle())
        return now >= self.quiet_at

    def risks_due(self) -> bool:
        """Every RISK_SECONDS; at once when the consumers are idle, or when nothing but
        streaks can be left: no batch since a drain that took every other mark (a burst's
        tail, a quiet day's meeting: the drain after it need not wait for IDLE_SECONDS)."""
        nothing_else = not (self.batches or self.running or self.more)
        return time.monotonic() >= self.risks_at or nothing_else or self.idle()

    def drained(self, seconds: float, risks: bool, more: bool = False) -> None:
        """A drain ended after `seconds`; `more`: it stopped at its limit with marks left."""
        now = time.monotonic()
        # after a drain that stopped at its limit, one timer tick for the consumers to show
        # they are at work (a batch running: the burst's pace holds), else the next at once
        self.quiet_at = now + (self.AFTER_LIMIT_SECONDS if more else self.MIN_SECONDS)
        self.next_at = now + max(self.BURST_FACTOR * seconds, self.MIN_SECONDS)
        self.batches = False
        self.more = more
        # only the part after the last batch (a batch may commit during a drain's reads)
        self.drained_since_batch = min(self.drained_since_batch + seconds,
                                       now - self.last_batch_at)
        if risks:
            self.risks_at = now + self.RISK_SECONDS


class Unpaced:
    """DrainPace's stand-in for code that drives the service by hand (worker_factory in the
    tests, bench/dashboard.py's in-process build): every drain is due at once."""

    def due(self) -> bool:
        return True

    def risks_due(self) -> bool:
        return True

    def applying(self) -> None:
        pass

    def applied(self) -> None:
        pass

    def drained(self, seconds: float, risks: bool, more: bool = False) -> None:
        pass


class ScoringService:
    name = "scoring"

    store = Store(backbone)
    auth = Auth()
    clock = ClockProvider()
    rules = RulesProvider()
    pace = DrainPace()

    def _args(self, schema, **args) -> dict:
        loaded = load(schema, args)
        if "year" in loaded and loaded["year"] is None:
            loaded["year"] = self.clock.today().year
        if loaded.get("as_of") and loaded["as_of"] > self.clock.today():
            raise ValidationError.field("as_of", "is in the future")
        return loaded

    @rpc
    def health(self):
        """Liveness and outbox backlog for `orglife status` (no token, no personal data)."""
        with self.store.read() as uow:
            meetings = uow.session.scalar(select(func.count()).select_from(MeetingCopy))
            members = uow.session.scalar(select(func.count()).select_from(MemberState))
        return {"service": self.name, "ok": True, "outbox_backlog": self.store.outbox_backlog(),
                "known_meetings": meetings, "known_members": members}

    # -- reads ----------------------------------------------------------------------------------
    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def member_score(self, member_id, year=None, as_of=None):
        """A member's points, grade and breakdown line by line (with `as_of`: counting only
        what was held by that day)."""
        args = self._args(schemas.MemberScoreArgs(), member_id=member_id, year=year,
                          as_of=as_of)
        day, _ = registry.counted_day(args["year"], args["as_of"], self.clock.today())
        with self.store.read() as uow:
            return registry.member_score(uow, self.auth.principal, self.rules,
                                         args["member_id"], args["year"],
                                         day if args["as_of"] else None)

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def branch_compliance(self, branch_id, year=None, as_of=None):
        args = self._args(schemas.ComplianceArgs(), branch_id=branch_id, year=year, as_of=as_of)
        with self.store.read() as uow:
            return registry.branch_compliance(uow, self.auth.principal, self.rules,
                                              args["branch_id"], args["year"], args["as_of"],
                                              self.clock.today())

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def ranking(self, org_id, year=None, level="branch", limit=50):
        args = self._args(schemas.RankingArgs(), org_id=org_id, year=year, level=level,
                          limit=limit)
        with self.store.read() as uow:
            return registry.ranking(uow, self.auth.principal, self.rules, args["org_id"],
                                    args["year"], args["level"], args["limit"],
                                    self.clock.today())

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def unevenness(self, org_id, year=None, as_of=None):
        args = self._args(schemas.UnevennessArgs(), org_id=org_id, year=year, as_of=as_of)
        with self.store.read() as uow:
            return registry.unevenness(uow, self.auth.principal, self.rules, args["org_id"],
                                       args["year"], args["as_of"], self.clock.today())

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def members_at_risk(self, org_id, as_of=None, limit=1000, offset=0, all_streaks=False):
        """Members whose streak of missed months reached a level (with `all_streaks`, also
        the shorter streaks, level None)."""
        args = self._args(schemas.AtRiskArgs(), org_id=org_id, as_of=as_of, limit=limit,
                          offset=offset, all_streaks=all_streaks)
        with self.store.read() as uow:
            return registry.members_at_risk(uow, self.auth.principal, self.rules,
                                            args["org_id"], args["as_of"], self.clock.today(),
                                            args["limit"], args["offset"],
                                            args["all_streaks"])

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def list_alerts(self, filters=None):
        """Silent, overdue and due-soon branches and members at risk, newest first."""
        args = load(schemas.AlertFilters(), filters or {})
        with self.store.read() as uow:
            return registry.list_alerts(uow, self.auth.principal, args)

    # -- county-wide work ------------------------------------------------------------------------
    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized("county_admin")
    def recalculate(self, year):
        """Rebuild a year from scoring's own copy (after a rules change)."""
        args = self._args(schemas.YearArgs(), year=year)
        with self.store() as uow:
            result = registry.recalculate(uow, self.rules, args["year"], self.clock.today())
            if args["year"] == self.clock.today().year:
                registry.rules_applied(uow.session, self.rules)
            uow.commit()
        return result

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized("county_admin")
    def run_daily(self, as_of=None):
        """The daily job now (as of today, or an earlier day): alerts already raised stay
        quiet, so running it again is harmless."""
        args = self._args(schemas.DailyArgs(), as_of=as_of)
        today = self.clock.today()
        with self.store() as uow:
            result = registry.daily(uow, self.rules, args["as_of"] or today)
            if args["as_of"] is not None and args["as_of"] < today:
                # The run stored every figure and streak as of that day: today's reads
                # answer from what is stored, so it is brought back to today.
                registry.restore_today(uow, self.rules, args["as_of"], today)
            uow.commit()
        return result

    @timer(interval=60, eager=True)
    def daily_when_due(self):
        """At start and then once a day (by the service clock): the daily job; a new rules
        version recalculates the current year first. With several instances, one runs it:
        the others find the lock taken (PostgreSQL) or, once they get the database (SQLite),
        today's run done."""
        today = self.clock.today()
        with self.store() as uow:
            if not registry.daily_lock(uow.session, wait=False):
                return  # another instance is at it
            stale = uow.session.scalar(select(func.count()).select_from(MemberScore).where(
                MemberScore.year == today.year,
                MemberScore.rules_version != self.rules.version))
            # checked once a day, with the daily run: instances that disagree on the file
            # (a misconfiguration) recalculate once a day, not in turn every minute
            edited = registry.daily_due(uow.session, today) and \
                registry.rules_edited(uow.session, self.rules)
            if stale or edited:
                if edited and not stale:
                    log.warning("the rules file changed but its version %s did not: "
                                "recalculating %d (give each edit a new version, so that "
                                "figures say which rules computed them)",
                                self.rules.version, today.year)
                else:
                    log.info("rules version %s is new: recalculating %d", self.rules.version,
                             today.year)
                registry.recalculate(uow, self.rules, today.year, today)
                registry.rules_applied(uow.session, self.rules)
                uow.commit()
        with self.store() as uow:
            if not registry.daily_lock(uow.session, wait=False):
                return
            if registry.daily_due(uow.session, today):
                summary = registry.daily(uow, self.rules, today)
                uow.commit()
                log.info("daily run %s: %s", summary["day"], summary["raised"])

    # -- events --------------------------------------------------------------------------------
    @subscribe("members", replica.MEMBERS_HANDLERS, batch_size=200)
    def on_members_events(self, envelopes):
        """Keep the copy of organizations and members; recompute whom they touch."""
        self._apply(envelopes, replica.MEMBERS_HANDLERS)

    @subscribe("meetings", replica.MEETINGS_HANDLERS, batch_size=500)
    def on_meetings_events(self, envelopes):
        """Keep the copy of meetings and activities; recompute the members and branches they
        touch, with one scores_changed per batch."""
        self._apply(envelopes, replica.MEETINGS_HANDLERS)

    def _apply(self, envelopes, handlers):
        self.pace.applying()
        try:
            with self.store() as uow:
                registry.rebuild_lock(uow.session)
                changes = replica.Changes()
                for envelope in uow.first_times(envelopes):
                    handlers[envelope.event_type](uow, envelope, self.clock.tz, changes)
                    uow.session.flush()  # later events of the same batch see this one
                registry.mark_dirty(uow.session, changes, self.clock.tz)
                uow.commit()
        finally:
            self.pace.applied()

    @timer(interval=0.2)
    def drain_dirty(self):
        """What the consumers marked stale, recomputed in bulk a moment later (so a burst of
        events about one member recomputes them once): scores, branch figures, streaks and
        at-risk alerts, with one scores_changed per year."""
        if not self.pace.due():
            return
        risks = self.pace.risks_due()
        with self.store() as uow:
            registry.rebuild_lock(uow.session)
            uow.session.connection()  # SQLite's write lock taken (BEGIN IMMEDIATE) here
            started = time.monotonic()  # the database held: waiting for it does not count
            drained = registry.drain(uow, self.rules, self.clock.today(), risks=risks)
            if drained:
                uow.commit()
        self.pace.drained(time.monotonic() - started, risks, more=drained.get("more", False))

    # -- the dashboard's reads -------------------------------------------------------------------
    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def branch_overview(self, org_id, year=None, as_of=None):
        """Every branch under an organization with its light, compliance, attendance rate,
        score, rank, category and township; lights counted, unevenness by category, members
        at risk by level (one call for a county's overview, not one per branch)."""
        args = self._args(schemas.UnevennessArgs(), org_id=org_id, year=year, as_of=as_of)
        with self.store.read() as uow:
            return registry.branch_overview(uow, self.auth.principal, self.rules,
                                            args["org_id"], args["year"], args["as_of"],
                                            self.clock.today())

    @rpc(expected_exceptions=EXPECTED_ERRORS)
    @authorized(*READERS)
    def branch_slots(self, branch_id, year=None, as_of=None):
        """Each slot a branch owes (type, period, group) up to a day, met or missed."""
        args = self._args(schemas.ComplianceArgs(), branch_id=branch_id, year=year, as_of=as_of)
        with self.store.read() as uow:
            return registry.branch_slots(uow, self.auth.principal, self.rules,
                                         args["branch_id"], args["year"], args["as_of"],
                                         self.clock.today())
