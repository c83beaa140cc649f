"""scoring on PostgreSQL with two instances at once (review of the scoring service): a change
arriving while a drain runs is not lost; an older member version never overwrites a newer one;
a meeting two instances store at once is counted once; large reads stream from a server-side
cursor; one daily job at a time. Each interleaving is forced with two connections (the second
in a green thread, psycopg2 being cooperative) and checked step by step."""
from datetime import date

import eventlet
import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import select, text

from orglife.common.envelope import Envelope
from orglife.common.migrate import upgrade
from orglife.common.rules import load_rules
from tests.conftest import FIXED_NOW, LocalStore, auth_as
from tests.meetings.conftest import meetings_store, meetings_worker  # noqa: F401  (fixtures)
from tests.members.conftest import members_store, members_worker  # noqa: F401  (fixtures)
from services.scoring.service import Unpaced
from tests.scoring.conftest import TZ, MovableClock, Pipeline, attendance, register_village

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

NINE = [f"m{n}" for n in range(1, 10)]
RULES = load_rules()


@pytest.fixture
def scoring_pg(pg_url):
    from services.scoring.models import backbone
    upgrade("scoring", pg_url)
    clock = MovableClock("Asia/Shanghai", FIXED_NOW)
    store = LocalStore(pg_url, "scoring", backbone, clock)
    yield store, clock
    store.engine.dispose()


@pytest.fixture
def pipeline_pg(scoring_pg, members_worker, meetings_worker, members_store, meetings_store):
    from services.scoring.service import ScoringService
    store, clock = scoring_pg

    def scoring(role="county_admin", org_id=None):
        return worker_factory(ScoringService, store=store, auth=auth_as(role, org_id),
                              clock=clock, rules=RULES, pace=Unpaced())
    pipeline = Pipeline(members_worker(), meetings_worker(), scoring(), members_store,
                        meetings_store, store)
    pipeline.make_scoring = scoring
    register_village(pipeline)
    return pipeline


def lecture(meeting_id, day, present, revision=1):
    """A meeting_logged event as meetings publishes it (a new event id each time)."""
    return Envelope.new("meetings", "meeting_logged", {
        "meeting_id": meeting_id, "revision": revision, "branch_id": "b1", "group_id": None,
        "type": "lecture", "held_at": f"{day}T09:00:00+08:00", "status": "logged",
        "cancelled": False, "quorum_met": True,
        "attendance": [{"member_id": m, "status": "present" if m in present else "absent",
                        "remote": False, "expected": True} for m in NINE]})


def marks(store):
    from services.scoring.models import Dirty
    with store.engine.connect() as conn:
        return set(conn.execute(select(Dirty.kind, Dirty.ident, Dirty.year)).all())


def tally(store, member_id, bucket="meeting:lecture", status="present"):
    from services.scoring.models import MemberTally
    with store.engine.connect() as conn:
        return conn.execute(select(MemberTally.count).where(
            MemberTally.member_id == member_id, MemberTally.bucket == bucket,
            MemberTally.status == status)).scalar() or 0


def test_a_change_arriving_while_a_drain_runs_is_drained_later(pipeline_pg, scoring_pg):
    """The drain has claimed m1's mark and is recomputing; a consumer stores a lecture m1
    attended and marks m1 again: its mark must survive the drain's commit."""
    from services.scoring import registry
    store, clock = scoring_pg
    scoring = pipeline_pg.scoring
    scoring.on_meetings_events([lecture("l1", "2026-03-10", NINE[:6])])
    drain = store()
    drain.__enter__()
    claimed = registry.claim_marks(drain.session)
    assert ("member", "m1", 2026) in claimed
    consumer = eventlet.spawn(scoring.on_meetings_events,
                              [lecture("l2", "2026-06-10", NINE[:6])])
    eventlet.sleep(0.5)
    assert not consumer.dead, "the consumer did not wait for the mark the drain holds"
    registry.recompute_marked(drain, RULES, clock.today(), claimed)
    drain.commit()
    drain.__exit__(None, None, None)
    consumer.wait()
    assert ("member", "m1", 2026) in marks(store)  # m1's second change is still to drain
    scoring.drain_dirty()
    assert marks(store) == set()
    assert registry_score(store, "m1") == 64  # 60 + both lectures


def test_a_mark_a_consumer_holds_is_left_for_the_next_drain(pipeline_pg, scoring_pg):
    """The other order: a consumer (another instance) has marked m1 and not committed yet
    when the drain claims marks: the drain skips that mark, and does not lose it."""
    from services.scoring import registry, replica
    store, clock = scoring_pg
    scoring = pipeline_pg.scoring
    scoring.on_meetings_events([lecture("l1", "2026-03-10", NINE[:6])])
    consumer = store()
    consumer.__enter__()
    changes = replica.Changes()
    envelope = lecture("l2", "2026-06-10", NINE[:6])
    consumer.first_time(envelope)
    replica.take_meeting(consumer, envelope, TZ, changes)
    registry.mark_dirty(consumer.session, changes, TZ)  # m1 marked (already was), locked
    with store() as drain:
        claimed = registry.claim_marks(drain.session)
        assert ("member", "m1", 2026) not in claimed and ("member", "m7", 2026) not in claimed
        registry.recompute_marked(drain, RULES, clock.today(), claimed)
        drain.commit()
    consumer.commit()
    consumer.__exit__(None, None, None)
    assert ("member", "m1", 2026) in marks(store)
    scoring.drain_dirty()
    assert registry_score(store, "m1") == 64 and registry_score(store, "m7") == 54


def registry_score(store, member_id, year=2026):
    from services.scoring.models import MemberScore
    with store.engine.connect() as conn:
        return conn.execute(select(MemberScore.score).where(
            MemberScore.member_id == member_id, MemberScore.year == year)).scalar()


def test_an_older_member_version_never_overwrites_a_newer_one(pipeline_pg, scoring_pg):
    """Two instances: one applies m1's version 3 (not committed yet) while the other gets
    version 2 late. The second waits for the first, then finds 3 and keeps it."""
    from services.scoring import replica
    from services.scoring.models import MemberState
    store, _ = scoring_pg
    pipeline = pipeline_pg
    pipeline.members.update_member({"member_id": "m1", "committee_member": False})  # v2
    pipeline.members.update_member({"member_id": "m1", "name": "新名字"})  # v3
    v2, v3 = [e for e in pipeline.new_events("members") if e.event_type == "member_updated"]
    assert (v2.data["version"], v3.data["version"]) == (2, 3)
    first = store()
    first.__enter__()
    replica.apply_member(first, v3, TZ, replica.Changes())
    first.session.flush()
    late = eventlet.spawn(pipeline.scoring.on_members_events, [v2])
    eventlet.sleep(0.5)
    assert not late.dead, "the late version did not wait for the row being changed"
    first.commit()
    first.__exit__(None, None, None)
    late.wait()
    with store.engine.connect() as conn:
        row = conn.execute(select(MemberState.version, MemberState.name,
                                  MemberState.committee_member)
                           .where(MemberState.member_id == "m1")).one()
    assert tuple(row) == (3, "新名字", False)


@pytest.mark.parametrize("second_revision", [1, 2])
def test_a_meeting_two_instances_store_at_once_is_counted_once(pipeline_pg, scoring_pg,
                                                               second_revision):
    """Both instances see l1 as new. The second's INSERT waits for the first's, then finds
    it stored: the same revision changes nothing; a higher one replaces it, taking the first
    one's attendance out of the tallies."""
    from services.scoring import registry, replica
    store, _ = scoring_pg
    first = store()
    first.__enter__()
    changes = replica.Changes()
    replica.take_meeting(first, lecture("l1", "2026-03-10", NINE[:6]), TZ, changes)
    registry.mark_dirty(first.session, changes, TZ)
    second = eventlet.spawn(pipeline_pg.scoring.on_meetings_events, [
        lecture("l1", "2026-03-10", NINE[:2], revision=second_revision)])
    eventlet.sleep(0.5)
    assert not second.dead, "the second instance did not wait for the first's insert"
    first.commit()
    first.__exit__(None, None, None)
    second.wait()
    present = 6 if second_revision == 1 else 2
    assert sum(tally(store, m) for m in NINE) == present
    assert sum(tally(store, m, status="absent") for m in NINE) == 9 - present
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from attendance_copy")).scalar() == 9
        assert conn.execute(text("select revision, present from meeting_copy")).one() == (
            second_revision, present)


def test_large_reads_stream_from_a_server_side_cursor(pipeline_pg, scoring_pg):
    from services.scoring import registry
    from services.scoring.models import MemberState
    store, _ = scoring_pg
    with store() as uow:
        names = []
        for _row in registry._stream(uow.session, select(MemberState.member_id), size=2):
            names += uow.session.execute(text("select name from pg_cursors")).scalars()
        assert any(name.startswith("scoring_stream_") for name in names)


def test_the_year_recalculated_and_judged_on_postgresql(pipeline_pg, scoring_pg):
    """recalculate gives what the incremental path gave; the daily run judges a closed year
    once, with two instances' runs serialized by the advisory lock."""
    from services.scoring import registry
    store, clock = scoring_pg
    pipeline = pipeline_pg
    for month in (3, 6, 9):
        pipeline.meetings.log_meeting({"meeting_id": f"a{month}", "branch_id": "b1",
                                       "type": "branch_assembly",
                                       "held_at": f"2026-{month:02d}-10T19:30:00",
                                       "topic": "学习", "attendance": attendance(
                                           present=NINE[:6], absent=NINE[6:])})
    for day in ("2026-03-02", "2026-11-02"):  # a month with a meeting, one without
        pipeline.meetings.log_activity({"member_id": "m1", "kind": "heart_talk",
                                        "held_at": f"{day}T10:00"})
    pipeline.deliver()
    scoring = pipeline.scoring
    served = scoring.ranking("c1", 2026, "member", 100), scoring.ranking("c1", 2026, "branch")

    def stored():
        with store() as uow:
            return {name: sorted(tuple(row) for row in uow.session.execute(
                text(f"SELECT * FROM {name}"))) for name in ("member_tally", "member_month")}
    incremental = stored()
    assert ("m1", "2026-11", 0, 1, 0) in incremental["member_month"]
    scoring.recalculate(2026)
    assert (scoring.ranking("c1", 2026, "member", 100),
            scoring.ranking("c1", 2026, "branch")) == served
    assert stored() == incremental
    with store() as holder:
        assert registry.daily_lock(holder.session, wait=False)
        with store() as other:
            assert not registry.daily_lock(other.session, wait=False)
            clock.set(date(2027, 1, 2))
            pipeline.make_scoring().daily_when_due()  # finds the lock taken: does nothing
        holder.rollback()
    assert [e for e in pipeline.new_events("scoring") if e.event_type != "scores_changed"] \
        == []
    scoring.daily_when_due()
    events = pipeline.new_events("scoring")
    overdue = {(e.data["type"], e.data["period"]) for e in events
               if e.event_type == "branch_overdue" and e.data["branch_id"] == "b1"}
    assert {("branch_assembly", "2026-Q4"), ("org_life", "2026"), ("theme_day", "2026-12")} \
        <= overdue
    assert {e.data["branch_id"] for e in events if e.event_type == "year_graded"} == \
        {"b1", "b2"}
    pipeline.make_scoring().run_daily()
    assert [e for e in pipeline.new_events("scoring") if e.event_type != "scores_changed"] \
        == []


def test_a_batch_arriving_while_recalculate_runs_waits_for_it(pipeline_pg, scoring_pg):
    """recalculate deletes the year's tallies and inserts them anew from the copy. A
    consumer batch committed in between (forced here: the rebuild pauses after its deletes)
    put a tally row that the rebuild's INSERT then also wrote: a unique violation. The batch
    now waits for the rebuild's transaction, then counts on top of it."""
    from sqlalchemy import event

    from services.scoring import registry
    store, clock = scoring_pg
    pipeline_pg.scoring.on_meetings_events([lecture("l1", "2026-03-10", NINE[:6])])
    pipeline_pg.scoring.drain_dirty()
    paused = eventlet.event.Event()
    arriving = []

    def pause_after_the_deletes(conn, cursor, statement, *args):
        if statement.startswith("CREATE TEMPORARY TABLE scoring_lines") and not paused.ready():
            paused.send()
            theme_day = lecture("t2", "2026-04-10", NINE[:3])  # tally rows of a new bucket
            theme_day.data["type"] = "theme_day"
            arriving.append(eventlet.spawn(pipeline_pg.scoring.on_meetings_events,
                                           [theme_day]))
            eventlet.sleep(1.0)  # the batch commits now, unless it waits for the rebuild

    with store() as rebuilding:
        event.listen(rebuilding.session.connection(), "before_cursor_execute",
                     pause_after_the_deletes)
        registry.recalculate(rebuilding, RULES, 2026, clock.today())
        assert paused.ready() and not arriving[0].dead, "the batch did not wait"
        rebuilding.commit()
    arriving[0].wait()
    assert sum(tally(store, m) for m in NINE) == 6
    assert sum(tally(store, m, bucket="meeting:theme_day") for m in NINE) == 3
    pipeline_pg.scoring.drain_dirty()
    served = pipeline_pg.scoring.ranking("c1", 2026, "member", 100)
    pipeline_pg.scoring.recalculate(2026)
    assert pipeline_pg.scoring.ranking("c1", 2026, "member", 100) == served
