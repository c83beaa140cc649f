"""scoring's fixtures: a ScoringService worker on a real SQLite file, fed with the events that
the real members and meetings workers write to their outboxes (no broker in between)."""
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest
from nameko.testing.services import worker_factory

from orglife.common.clock import Clock
from orglife.common.envelope import Envelope
from orglife.system import SYSTEM
from tests.conftest import FIXED_NOW, LocalStore, auth_as, migrated_sqlite
from tests.meetings.conftest import meetings_store, meetings_worker  # noqa: F401  (fixtures)
from tests.members.conftest import members_store, members_worker  # noqa: F401  (fixtures)
from tests.members.conftest import small_county

TZ = ZoneInfo("Asia/Shanghai")


class MovableClock(Clock):
    """The injectable clock, moved by the test through a year."""

    def set(self, day: date, hour: int = 10) -> None:
        self.fixed = datetime.combine(day, time(hour), TZ).astimezone(timezone.utc)


@pytest.fixture
def scoring_store(tmp_path):
    from services.scoring.models import backbone
    return LocalStore(migrated_sqlite(tmp_path, "scoring"), "scoring", backbone)


@pytest.fixture
def scoring_clock():
    return MovableClock("Asia/Shanghai", FIXED_NOW)


@pytest.fixture
def scoring_worker(scoring_store, scoring_clock):
    from orglife.common.rules import load_rules
    from services.scoring.service import ScoringService, Unpaced

    def make(role="county_admin", org_id=None):
        return worker_factory(ScoringService, store=scoring_store, auth=auth_as(role, org_id),
                              clock=scoring_clock, rules=load_rules(), pace=Unpaced())
    return make


class Pipeline:
    """members → meetings → scoring as the event flow runs it, one step at a time: RPC calls
    on the members and meetings workers; `deliver()` hands what their outboxes hold since the
    last delivery to the consumers that subscribe to it, in batches, as the broker would."""

    def __init__(self, members, meetings, scoring, members_store, meetings_store,
                 scoring_store):
        self.members, self.meetings, self.scoring = members, meetings, scoring
        self.stores = {"members": members_store, "meetings": meetings_store,
                       "scoring": scoring_store}
        self.seen = {"members": 0, "meetings": 0, "scoring": 0}

    def new_events(self, source: str) -> list[Envelope]:
        bodies = self.stores[source].outbox_events()
        fresh, self.seen[source] = bodies[self.seen[source]:], len(bodies)
        return [Envelope.from_body(body) for body in fresh]

    def deliver(self) -> list[Envelope]:
        """Every new members and meetings event to the consumers the system declaration
        subscribes to it (in one batch each); scoring's own new events are returned."""
        consumers = {("members", "meetings"): self.meetings.on_members_events,
                     ("members", "scoring"): self.scoring.on_members_events,
                     ("meetings", "members"): self.members.on_meetings_events,
                     ("meetings", "scoring"): self.scoring.on_meetings_events}
        for source in ("members", "meetings"):
            events = self.new_events(source)
            for (from_, to), consume in consumers.items():
                if from_ != source:
                    continue
                wanted = SYSTEM.subscription(to, source).event_types
                batch = [e for e in events if e.event_type in wanted]
                if batch:
                    consume(batch)
        self.scoring.drain_dirty()  # what the service's timer does a moment later
        return self.new_events("scoring")


@pytest.fixture
def pipeline(members_worker, meetings_worker, scoring_worker, members_store, meetings_store,
             scoring_store):
    return Pipeline(members_worker(), meetings_worker(), scoring_worker(), members_store,
                    meetings_store, scoring_store)


def register_village(pipeline, committee=("m1", "m2", "m3"), count=9):
    """The small county, and b1 (village, group g1) with `count` formal members m1.., some on
    the committee, m1–m4 in g1; b2 (community) with n1 and n2."""
    small_county(pipeline.members)
    for n in range(1, count + 1):
        pipeline.members.register_member({
            "member_id": f"m{n}", "name": f"党员{n}", "branch_id": "b1",
            "committee_member": f"m{n}" in committee, "group_id": "g1" if n <= 4 else None,
            "joined_on": "2000-01-01"})
    for member_id in ("n1", "n2"):
        pipeline.members.register_member({"member_id": member_id, "name": member_id,
                                          "branch_id": "b2", "joined_on": "2000-01-01"})
    pipeline.deliver()


def attendance(present=(), absent=(), leave=(), remote=()):
    return ([{"member_id": m, "status": "present"} for m in present]
            + [{"member_id": m, "status": "present", "remote": True} for m in remote]
            + [{"member_id": m, "status": "absent"} for m in absent]
            + [{"member_id": m, "status": "leave"} for m in leave])
