"""The scoring service on real SQLite files, fed by the real members and meetings workers'
events (tests/scoring/conftest.py Pipeline): figures, incremental updates, recalculation,
alerts, scopes."""
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text

from orglife.common.errors import Forbidden, NotFound, ValidationError
from tests.scoring.conftest import attendance, register_village

NINE = [f"m{n}" for n in range(1, 10)]


def assembly(meeting_id, day, **who):
    return {"meeting_id": meeting_id, "branch_id": "b1", "type": "branch_assembly",
            "held_at": f"{day}T19:30:00", "topic": "学习", "attendance": attendance(**who)}


def table(store, name):
    with store.engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(text(f"select * from {name}")))


def test_log_amend_cancel_follow_with_one_scores_changed_per_batch(pipeline, scoring_worker):
    register_village(pipeline)
    pipeline.meetings.log_meeting(assembly("a1", "2026-03-10", present=NINE[:6],
                                           absent=["m7"]))
    pipeline.meetings.log_meeting(assembly("a2", "2026-06-10", present=NINE[:5],
                                           remote=["m6"]))
    [changed] = [e for e in pipeline.deliver() if e.event_type == "scores_changed"]
    assert changed.data == {"year": 2026, "member_ids": NINE, "branch_ids": ["b1"]}
    scoring = scoring_worker()
    m1 = scoring.member_score("m1", 2026)
    assert (m1["score"], m1["grade"], m1["rules_version"]) == (66, "basic", "2026.1")
    assert [(line["ref"], line["points"]) for line in m1["breakdown"]] == [
        (None, 60), ("a1", 3), ("a2", 3)]
    m7 = scoring.member_score("m7", 2026)
    assert (m7["score"], [line["item"] for line in m7["breakdown"]]) == (54, [
        "base", "absence", "absence"])  # absent at both (not listed at a2: absent)

    pipeline.meetings.amend_meeting({"meeting_id": "a1", "revision": 1, "attendance":
                                     attendance(present=NINE[:6], leave=["m7"])})
    [changed] = [e for e in pipeline.deliver() if e.event_type == "scores_changed"]
    assert "m7" in changed.data["member_ids"]
    assert scoring.member_score("m7", 2026)["score"] == 57  # leave 0, one absence left

    before = scoring.branch_compliance("b1", 2026)
    pipeline.meetings.cancel_meeting({"meeting_id": "a2", "reason": "重复登记"})
    pipeline.deliver()
    assert scoring.member_score("m1", 2026)["score"] == 63
    after = scoring.branch_compliance("b1", 2026)
    assert after["by_type"]["branch_assembly"]["met"] == \
        before["by_type"]["branch_assembly"]["met"] - 1  # Q2 lost its only assembly
    assert {"type": "branch_assembly", "period": "2026-Q2", "group_id": None} in after["missed"]


def test_duplicates_and_reordering_change_nothing(pipeline, scoring_worker, scoring_store,
                                                  members_worker):
    register_village(pipeline)
    pipeline.meetings.log_meeting(assembly("a1", "2026-03-10", present=NINE[:6]))
    pipeline.meetings.amend_meeting({"meeting_id": "a1", "revision": 1, "attendance":
                                     attendance(present=NINE[:5], absent=["m6"])})
    pipeline.meetings.log_activity({"activity_id": "v1", "member_id": "m2",
                                    "kind": "household_visit", "held_at": "2026-04-01T10:00",
                                    "household": "李大爷家"})
    events = pipeline.new_events("meetings")
    scoring = scoring_worker()
    scoring.on_members_events(pipeline.new_events("members"))
    scoring.on_meetings_events(list(reversed(events)))  # newest revision first
    scoring.drain_dirty()
    snapshot = {name: table(scoring_store, name) for name in (
        "member_tally", "member_month", "member_score", "meeting_copy", "attendance_copy")}
    scoring.on_meetings_events(events)  # every one again
    for event in events:
        scoring.on_meetings_events([event])
    scoring.drain_dirty()
    assert {name: table(scoring_store, name) for name in snapshot} == snapshot
    assert scoring.member_score("m6", 2026)["score"] == 57
    assert scoring.member_score("m2", 2026)["score"] == 64  # 60 + 3 + visit 1


def test_recalculate_gives_exactly_what_the_incremental_path_gave(pipeline, scoring_worker,
                                                                  scoring_store):
    register_village(pipeline)
    for month, present in ((1, NINE[:7]), (2, NINE[:3]), (4, NINE[:8]), (7, NINE)):
        pipeline.meetings.log_meeting(assembly(f"a{month}", f"2026-{month:02d}-12",
                                               present=present, leave=NINE[8:9]
                                               if month == 2 else ()))
    for month in range(1, 11):
        pipeline.meetings.log_meeting({"meeting_id": f"t{month}", "branch_id": "b1",
                                       "type": "theme_day", "held_at": f"2026-{month:02d}-20T09:00",
                                       "topic": "主题党日",
                                       "attendance": attendance(present=NINE[month % 3:])})
    pipeline.meetings.amend_meeting({"meeting_id": "t5", "revision": 1,
                                     "attendance": attendance(present=NINE[:2])})
    pipeline.meetings.cancel_meeting({"meeting_id": "t6", "reason": "x"})
    # heart talks in a month with meetings and in one without (recalculate adds the first
    # to the month's row and makes one of the second: tallies.rebuild_year)
    pipeline.meetings.log_activity({"member_id": "m3", "kind": "heart_talk",
                                    "held_at": "2026-08-02T10:00"})
    pipeline.meetings.log_activity({"member_id": "m3", "kind": "heart_talk",
                                    "held_at": "2026-11-02T10:00"})
    # last year's meeting, a member who left, one who joined this year, a visitor absent
    pipeline.meetings.log_meeting(assembly("old", "2025-12-10", present=NINE[:6]))
    pipeline.members.transfer_member({"member_id": "m8", "to_branch_id": None})
    pipeline.members.register_member({"member_id": "new", "name": "新党员", "branch_id": "b2",
                                      "joined_on": "2026-05-01"})
    pipeline.deliver()
    pipeline.meetings.log_meeting({"meeting_id": "l1", "branch_id": "b2", "type": "lecture",
                                   "held_at": "2026-09-01T09:00", "topic": "党课",
                                   "attendance": attendance(present=["n1", "new", "m1"],
                                                            absent=["n2", "m2"])})
    # a status that changes now is rescored for last year too (a grade becomes a
    # recommendation), as a recalculation does
    pipeline.members.update_member({"member_id": "m3", "status": "probationary"})
    pipeline.deliver()
    tables = ("member_tally", "member_month", "member_score", "member_risk")
    incremental = {name: table(scoring_store, name) for name in tables}
    incremental["branch_stat"] = [r for r in table(scoring_store, "branch_stat") if r[1] == 2026]
    scoring = scoring_worker()

    def served():
        return {(year, level): scoring.ranking("c1", year, level, 100)
                for year in (2025, 2026) for level in ("member", "branch")} | {
            year: scoring.unevenness("c1", year) for year in (2025, 2026)}
    before = served()
    assert before[(2025, "member")]["total"] == 10  # m8 left; `new` was no member in 2025
    assert before[(2026, "member")]["total"] == 11  # n1, n2 and `new` too
    for year in (2026, 2025):
        result = scoring.recalculate(year)
        assert result["branches"] == 3
    assert result["members"] == 9  # members with lines in 2025 (absentees are lines too)
    after = {name: table(scoring_store, name) for name in tables}
    after["branch_stat"] = [r for r in table(scoring_store, "branch_stat") if r[1] == 2026]
    assert after == incremental  # (2025's figures of b2 and b3, never asked for, now stored)
    assert served() == before


def test_rankings_unevenness_and_scopes(pipeline, scoring_worker):
    register_village(pipeline)
    pipeline.meetings.log_meeting(assembly("a1", "2026-03-10", present=NINE[:6]))
    pipeline.meetings.log_meeting({"meeting_id": "c1", "branch_id": "b2", "type": "lecture",
                                   "held_at": "2026-03-11T09:00", "topic": "党课",
                                   "attendance": attendance(present=["n1"], absent=["n2"])})
    pipeline.deliver()
    county = scoring_worker()
    members = county.ranking("c1", 2026, "member", 50)
    ranks = {item["member_id"]: item["rank"] for item in members["items"]}
    assert ranks["m1"] == ranks["m6"] == 1 and ranks["n1"] == 7  # six tied at 63
    assert ranks["n2"] == ranks["m7"] == 8 and members["total"] == 11  # four tied at 57
    branches = county.ranking("c1", 2026, "branch")
    assert {item["branch_id"] for item in branches["items"]} == {"b1", "b2", "b3"}
    uneven = {row["category"]: row for row in county.unevenness("c1", 2026)["categories"]}
    assert set(uneven) == {"village", "community", "enterprise"}
    assert uneven["village"]["branches"] == 1
    township = scoring_worker("township_admin", "t2")
    assert [i["branch_id"] for i in township.ranking("t2", 2026, "branch")["items"]] == ["b2"]
    with pytest.raises(Forbidden):
        township.ranking("t1", 2026, "branch")
    secretary = scoring_worker("branch_secretary", "b1")
    assert secretary.member_score("m1", 2026)["score"] == 63
    with pytest.raises(Forbidden):
        secretary.member_score("n1", 2026)
    with pytest.raises(Forbidden):
        secretary.branch_compliance("b2", 2026)
    with pytest.raises(NotFound):
        county.member_score("ghost", 2026)
    with pytest.raises(ValidationError) as err:
        county.ranking("c1", 2026, "province", 0)
    assert set(err.value.errors) == {"level", "limit"}
    with pytest.raises(Forbidden):
        scoring_worker("township_admin", "t1").recalculate(2026)


def test_rankings_and_unevenness_are_served_from_the_stored_branch_rows(pipeline,
                                                                        scoring_worker,
                                                                        monkeypatch):
    """Once drained, a county's branch ranking and unevenness read the per-branch rows the
    drain stored (no branch recomputed per call); a branch an undrained event made stale is
    the only one computed, and its figures are the new ones."""
    from services.scoring import registry
    register_village(pipeline)
    pipeline.meetings.log_meeting(assembly("a1", "2026-03-10", present=NINE[:6]))
    pipeline.deliver()
    scoring = scoring_worker()
    ranking, uneven = scoring.ranking("c1", 2026, "branch"), scoring.unevenness("c1", 2026)
    computed = []
    real_inputs = registry.branch_inputs

    def recording(session, branch_ids, year, as_of):
        computed.append(sorted(branch_ids))
        return real_inputs(session, branch_ids, year, as_of)
    monkeypatch.setattr(registry, "branch_inputs", recording)
    assert scoring.ranking("c1", 2026, "branch") == ranking
    assert scoring.unevenness("c1", 2026) == uneven
    assert computed == []  # every figure from the stored rows
    # a lecture at b2, consumed but not drained yet: b2 is marked stale
    pipeline.meetings.log_meeting({"meeting_id": "l1", "branch_id": "b2", "type": "lecture",
                                   "held_at": "2026-03-11T09:00", "topic": "党课",
                                   "attendance": attendance(present=["n1", "n2"])})
    scoring.on_meetings_events(pipeline.new_events("meetings"))
    fresh = {i["branch_id"]: i for i in scoring.ranking("c1", 2026, "branch")["items"]}
    assert computed == [["b2"]]
    before = {i["branch_id"]: i for i in ranking["items"]}
    assert fresh["b1"]["score"] == before["b1"]["score"]
    assert fresh["b2"]["score"] > before["b2"]["score"]  # its lecture counts already
    scoring.drain_dirty()
    computed.clear()
    assert {i["branch_id"]: i for i in scoring.ranking("c1", 2026, "branch")["items"]} == fresh
    assert computed == []


def test_a_transfer_in_june_the_points_follow_the_member(pipeline, scoring_worker, clock):
    register_village(pipeline)
    pipeline.meetings.log_meeting(assembly("a1", "2026-03-10", present=NINE))
    pipeline.deliver()
    # m9 moves to b2 on June 15: b1's later meetings no longer expect them
    now = clock.fixed
    clock.fixed = datetime(2026, 6, 15, 2, tzinfo=timezone.utc)
    pipeline.members.transfer_member({"member_id": "m9", "to_branch_id": "b2"})
    clock.fixed = now
    pipeline.deliver()
    pipeline.meetings.log_meeting({"meeting_id": "l2", "branch_id": "b2", "type": "lecture",
                                   "held_at": "2026-11-19T09:00", "topic": "党课",
                                   "attendance": attendance(present=["m9", "n1", "n2"])})
    pipeline.meetings.log_meeting(assembly("a4", "2026-11-19", present=NINE[:8]))
    pipeline.deliver()
    scoring = scoring_worker()
    m9 = scoring.member_score("m9", 2026)
    assert m9["branch_id"] == "b2" and m9["score"] == 65  # 60 + 3 (at b1) + 2 (at b2)
    assert {line["branch_id"] for line in m9["breakdown"][1:]} == {"b1", "b2"}
    b1 = scoring.branch_compliance("b1", 2026)
    assert b1["attendance_rate"] == 1.0  # a4 expected eight: m9 had left
    secretary = scoring_worker("branch_secretary", "b2")
    assert secretary.member_score("m9", 2026)["score"] == 65  # m9 is b2's now


def test_a_probationary_member_gets_a_recommendation(pipeline, scoring_worker):
    register_village(pipeline)
    pipeline.members.update_member({"member_id": "m5", "status": "probationary"})
    pipeline.meetings.log_meeting(assembly("a1", "2026-03-10", present=NINE))
    pipeline.deliver()
    m5 = scoring_worker().member_score("m5", 2026)
    assert (m5["grade"], m5["recommendation"]) == (None, "review")  # 63 < 70


def test_alerts_are_raised_once_each_as_the_year_goes_by(pipeline, scoring_worker, clock,
                                                         scoring_clock, scoring_store):
    now = clock.fixed  # the county registers its organizations on New Year's Day
    clock.fixed = datetime(2026, 1, 1, 2, tzinfo=timezone.utc)
    register_village(pipeline, committee=())
    clock.fixed = now
    pipeline.meetings.log_meeting(assembly("a1", "2026-01-10", present=NINE[:6],
                                           absent=NINE[6:]))
    for month in (2, 3, 4, 5):
        pipeline.meetings.log_meeting({"meeting_id": f"t{month}", "branch_id": "b1",
                                       "type": "theme_day",
                                       "held_at": f"2026-{month:02d}-05T09:00",
                                       "topic": "主题党日",
                                       "attendance": attendance(present=NINE[:6],
                                                                absent=NINE[6:])})
    scoring_clock.set(date(2026, 3, 15))  # scoring hears of them in March
    events = [e for e in pipeline.deliver() if e.event_type != "scores_changed"]
    assert [e.event_type for e in events] == []  # two complete months: nobody at risk yet
    scoring = scoring_worker()
    kinds = []
    for day in (date(2026, 4, 1), date(2026, 5, 1), date(2026, 6, 1), date(2026, 6, 2),
                date(2026, 7, 10), date(2026, 8, 10)):
        scoring_clock.set(day)
        scoring.daily_when_due()
        scoring.daily_when_due()  # the same day again: nothing more
        kinds = [row[1] for row in table(scoring_store, "alerts")]
    events = [e for e in pipeline.new_events("scoring") if e.event_type != "scores_changed"]
    at_risk = [e.data for e in events if e.event_type == "member_at_risk"]
    assert {(a["member_id"], a["level"]) for a in at_risk if a["level"] == "notice"} == {
        (m, "notice") for m in NINE[6:]}
    # m7–m9 missed January to May (five complete months by June): notice, then alert
    assert sorted((a["member_id"], a["level"]) for a in at_risk) == sorted(
        (m, level) for m in NINE[6:] for level in ("notice", "alert"))
    first = next(a for a in at_risk if a["member_id"] == "m7" and a["level"] == "notice")
    assert [m["month"] for m in first["months_list"]] == ["2026-03", "2026-02", "2026-01"]
    assert first["months_list"][2]["meetings"][0]["meeting_id"] == "a1"
    overdue = [e.data for e in events if e.event_type == "branch_overdue"]
    # as of August 10: January to July have ended (org_life and Q3 have not)
    assert {(o["type"], o["period"]) for o in overdue if o["branch_id"] == "b1"} == (
        {("theme_day", f"2026-{m:02d}") for m in (1, 6, 7)}
        | {("lecture", "2026-Q1"), ("lecture", "2026-Q2"), ("branch_assembly", "2026-Q2")}
        | {("group", f"2026-{m:02d}") for m in range(1, 8)})
    assert all(o.get("group_id") == "g1" for o in overdue if o["type"] == "group")
    assert len(overdue) == len({(o["branch_id"], o["type"], o["period"], o.get("group_id"))
                                for o in overdue})  # each once
    silent = [e.data for e in events if e.event_type == "branch_silent"]
    assert [(s["branch_id"], s["days"]) for s in silent if s["branch_id"] == "b1"] == [
        ("b1", 66), ("b1", 97)]  # silent since May 5: raised again after each further 30 days
    assert len(kinds) == len(events)
    # a restarted service (a new worker on the same database) raises nothing again
    scoring_worker().run_daily()
    assert [e for e in pipeline.new_events("scoring") if e.event_type != "scores_changed"] == []
    listed = scoring.list_alerts({"kind": "member_at_risk"})
    assert listed["total"] == 6
    assert scoring_worker("branch_secretary", "b2").list_alerts({"kind": "member_at_risk"})[
        "total"] == 0


def test_members_at_risk_lists_the_missed_meetings(pipeline, scoring_worker, scoring_clock):
    register_village(pipeline)
    for month in (1, 2, 3, 4):
        pipeline.meetings.log_meeting({"meeting_id": f"t{month}", "branch_id": "b1",
                                       "type": "theme_day",
                                       "held_at": f"2026-{month:02d}-05T09:00", "topic": "主题党日",
                                       "attendance": attendance(present=NINE[:8],
                                                                leave=["m9"] if month == 3
                                                                else ())})
    pipeline.deliver()
    scoring_clock.set(date(2026, 5, 3))
    risk = scoring_worker().members_at_risk("c1")
    [m9] = risk["items"]
    assert (m9["member_id"], m9["months"], m9["level"]) == ("m9", 3, "notice")
    assert [m["month"] for m in m9["months_list"]] == ["2026-04", "2026-02", "2026-01"]
    # As of March m9 had missed two months: a streak without a level, not "at risk" (SPEC
    # §3: notice at 3), listed only when every streak is asked for (a branch page's view).
    earlier = scoring_worker().members_at_risk("c1", "2026-03-01")
    assert (earlier["items"], earlier["total"]) == ([], 0)
    streaks = scoring_worker().members_at_risk("c1", "2026-03-01", all_streaks=True)
    assert [(i["member_id"], i["months"], i["level"]) for i in streaks["items"]] == [
        ("m9", 2, None)]
    scoring_worker().run_daily()  # the same from the streaks the daily run keeps
    assert scoring_worker().members_at_risk("c1")["total"] == 1
    scoring_clock.set(date(2026, 4, 3))
    scoring_worker().run_daily()
    assert scoring_worker().members_at_risk("c1")["total"] == 0
    assert scoring_worker().members_at_risk("c1", all_streaks=True)["total"] == 1


def test_branch_compliance_as_of_a_day_and_bad_arguments(pipeline, scoring_worker):
    register_village(pipeline)
    pipeline.meetings.log_meeting(assembly("a1", "2026-02-10", present=NINE))
    pipeline.deliver()
    scoring = scoring_worker()
    march = scoring.branch_compliance("b1", 2026, "2026-03-31")
    assert march["as_of"] == "2026-03-31" and march["rules_version"] == "2026.1"
    assert march["by_type"]["branch_assembly"] == {"required": 1, "met": 1, "held": 1}
    assert march["by_type"]["theme_day"] == {"required": 2, "met": 0, "held": 0}
    assert march["light"] == "red"
    for args, field in ((("b1", 2026, "2027-01-01"), "as_of"), (("b1", 1800), "year"),
                        (("t1", 2026), "branch_id")):
        with pytest.raises(ValidationError) as err:
            scoring.branch_compliance(*args)
        assert field in err.value.errors


def test_a_year_that_has_not_begun_is_refused_naming_the_right_field(pipeline,
                                                                     scoring_worker):
    register_village(pipeline)
    scoring = scoring_worker()  # today: 2026-11-20
    for call, field in ((lambda: scoring.unevenness("c1", 2026, "2025-06-01"), "as_of"),
                        (lambda: scoring.branch_compliance("b1", 2026, "2025-06-01"), "as_of"),
                        (lambda: scoring.branch_compliance("b1", 2027), "year"),
                        (lambda: scoring.unevenness("c1", 2027), "year"),
                        (lambda: scoring.ranking("c1", 2027, "branch"), "year"),
                        (lambda: scoring.ranking("c1", 2027, "member"), "year"),
                        (lambda: scoring.member_score("m1", 2027), "year")):
        with pytest.raises(ValidationError) as err:
            call()
        assert set(err.value.errors) == {field}
    assert scoring.unevenness("c1", 2025, "2026-06-01")["as_of"] == "2025-12-31"


def test_a_visitor_listed_absent_loses_nothing(pipeline, scoring_worker, scoring_store):
    register_village(pipeline)
    pipeline.meetings.log_meeting({"meeting_id": "l1", "branch_id": "b2", "type": "lecture",
                                   "held_at": "2026-09-01T09:00", "topic": "党课",
                                   "attendance": attendance(present=["n1", "n2", "m1"],
                                                            absent=["m2"])})
    pipeline.deliver()
    scoring = scoring_worker()
    assert scoring.member_score("m1", 2026)["score"] == 62  # a visitor present: +2
    m2 = scoring.member_score("m2", 2026)
    assert (m2["score"], m2["breakdown"][1:]) == (60, [])  # not b2's: no absence charged
    assert scoring.ranking("b1", 2026, "member")["items"][0]["member_id"] == "m1"
    assert [r for r in table(scoring_store, "member_tally") if r[0] == "m2"] == []
    scoring.recalculate(2026)
    assert [r for r in table(scoring_store, "member_tally") if r[0] == "m2"] == []


def test_members_at_risk_pages_like_every_list(pipeline, scoring_worker, scoring_clock):
    register_village(pipeline)
    for month in (1, 2, 3):
        pipeline.meetings.log_meeting({"meeting_id": f"t{month}", "branch_id": "b1",
                                       "type": "theme_day",
                                       "held_at": f"2026-{month:02d}-05T09:00", "topic": "主题党日",
                                       "attendance": attendance(present=NINE[:5])})
    pipeline.deliver()
    scoring_clock.set(date(2026, 5, 3))
    scoring = scoring_worker()
    for prepare in (lambda: None, scoring.run_daily):  # computed, then as kept by the daily run
        prepare()
        everyone = scoring.members_at_risk("c1")
        assert everyone["total"] == 4 and [i["member_id"] for i in everyone["items"]] == NINE[5:]
        page = scoring.members_at_risk("c1", limit=2, offset=1)
        assert page["total"] == 4 and page["items"] == everyone["items"][1:3]
    with pytest.raises(ValidationError) as err:
        scoring.members_at_risk("c1", limit=0, offset=-1)
    assert set(err.value.errors) == {"limit", "offset"}


def test_the_daily_job_runs_at_start():
    from services.scoring.service import ScoringService
    [timer] = ScoringService.daily_when_due.nameko_entrypoints
    assert timer.eager and timer.interval == 60


def test_the_last_meeting_is_the_newest_held_by_the_day_asked_of_any_year(pipeline,
                                                                         scoring_worker,
                                                                         scoring_clock):
    """A branch's last meeting (silence, the light) comes from the year's meetings when one
    was held by the day asked, else from an earlier year's."""
    register_village(pipeline)
    pipeline.meetings.log_meeting(assembly("a1", "2026-10-10", present=NINE))
    pipeline.meetings.log_meeting(assembly("a2", "2026-11-18", present=NINE))
    pipeline.deliver()
    scoring = scoring_worker()
    assert scoring.branch_compliance("b1", 2026, "2026-11-01")["last_meeting_on"] \
        == "2026-10-10"  # the meeting of November 18 was not held yet
    november = scoring.branch_compliance("b1", 2026, "2026-11-19")
    assert november["last_meeting_on"] == "2026-11-18" and november["silent_days"] is None
    scoring_clock.set(date(2027, 3, 1))
    march = scoring.branch_compliance("b1", 2027, "2027-03-01")
    assert march["last_meeting_on"] == "2026-11-18"  # none this year: the newest of 2026
    assert march["silent_days"] == 103


def test_a_rules_file_edited_without_a_new_version_is_recalculated(pipeline, scoring_store,
                                                                   scoring_clock):
    """The version names the rules on every figure; an edit that forgot to change it must
    not leave figures computed with the old content (the daily check compares the content's
    digest too, says so in the log, and recalculates once)."""
    from nameko.testing.services import worker_factory

    from orglife.common.rules import load_rules
    from services.scoring.service import ScoringService, Unpaced
    from tests.conftest import auth_as
    register_village(pipeline)
    pipeline.meetings.log_meeting({"meeting_id": "a1", "branch_id": "b1",
                                   "type": "branch_assembly", "held_at": "2026-02-10T19:30",
                                   "topic": "学习", "attendance": attendance(present=NINE)})
    pipeline.deliver()
    rules = load_rules()
    points = rules.raw["points"]
    edited_raw = {**rules.raw, "points": {**points, "attendance": {
        **points["attendance"], "branch_assembly": {"points": 5, "cap": 12}}}}
    edited = type(rules)(edited_raw)
    assert edited.version == rules.version and edited.digest != rules.digest

    def scoring(with_rules):
        return worker_factory(ScoringService, store=scoring_store, auth=auth_as("county_admin"),
                              clock=scoring_clock, rules=with_rules, pace=Unpaced())
    scoring(rules).daily_when_due()
    assert scoring(rules).member_score("m1", 2026)["score"] == 63
    quiet = type(rules)({**rules.raw, "notifications": {**rules.raw["notifications"],
                                                         "quiet_hours": None}})
    assert quiet.digest == rules.digest  # notification settings compute no figure
    def stored(with_rules):  # rankings read the stored scores
        items = scoring(with_rules).ranking("b1", 2026, "member")["items"]
        return next(i["score"] for i in items if i["member_id"] == "m1")
    assert stored(edited) == 63  # computed with the content before the edit
    scoring(edited).daily_when_due()  # the same day: the daily run is done, nothing yet
    assert stored(edited) == 63
    scoring_clock.set(date(2026, 11, 21))  # the next daily run notices the edit
    scoring(edited).daily_when_due()
    assert stored(edited) == 65
    with scoring_store() as uow:  # and once: the digest is kept with the figures
        from services.scoring import registry
        assert not registry.rules_edited(uow.session, edited)
        assert registry.rules_edited(uow.session, rules)


def test_a_members_score_as_of_a_day_counts_what_was_held_by_then(pipeline, scoring_worker):
    register_village(pipeline)
    for meeting_id, day in (("a1", "2026-02-10"), ("a2", "2026-08-10")):
        pipeline.meetings.log_meeting({"meeting_id": meeting_id, "branch_id": "b1",
                                       "type": "branch_assembly", "held_at": f"{day}T19:30",
                                       "topic": "学习", "attendance": attendance(present=NINE)})
    pipeline.deliver()
    scoring = scoring_worker()
    assert scoring.member_score("m1", 2026)["score"] == 66
    march = scoring.member_score("m1", 2026, "2026-03-01")
    assert (march["score"], march["as_of"]) == (63, "2026-03-01")
    assert [line["ref"] for line in march["breakdown"] if line.get("ref")] == ["a1"]
    with pytest.raises(ValidationError) as err:
        scoring.member_score("m1", 2026, "2025-12-31")
    assert set(err.value.errors) == {"as_of"}


@pytest.fixture
def paced(monkeypatch):
    """services/scoring/service.py's DrainPace on a clock the test moves by hand: (pace,
    now), the clock at now[0] = 100.0 s."""
    from types import SimpleNamespace

    from services.scoring import service
    now = [100.0]
    monkeypatch.setattr(service, "time", SimpleNamespace(monotonic=lambda: now[0]))
    pace = service.DrainPace()
    pace.setup()
    return pace, now


def test_drains_wait_twice_their_length_while_batches_come_and_half_a_second_after(paced):
    """services/scoring/service.py, DrainPace: a short drain is followed by the next after
    MIN_SECONDS (a quiet stream stays fresh); a long one, while the consumers still apply
    batches (a burst: here a batch is always running), by twice its length; once no batch
    came since it ended (the burst's tail), by MIN_SECONDS again; streaks every
    RISK_SECONDS."""
    pace, now = paced
    assert pace.due() and pace.risks_due()
    pace.drained(0.1, risks=True)
    pace.applying()
    pace.applied()
    pace.applying()  # the next batch is being applied
    now[0] = 100.49
    assert not pace.due()
    now[0] = 100.5
    assert pace.due() and not pace.risks_due()
    pace.drained(1.5, risks=False)  # at 100.5: the next at 103.5 while batches come
    pace.applied()
    pace.applying()
    now[0] = 103.49
    assert not pace.due() and pace.risks_due()
    now[0] = 103.5
    assert pace.due()
    pace.applied()
    now[0] = 103.6
    pace.drained(1.5, risks=True)  # at 103.6, and then no batch: half a second later
    now[0] = 104.09
    assert not pace.due()
    now[0] = 104.1
    assert pace.due()
    pace.applying()  # batches after all (one committed, the next running): the burst's pace
    pace.applied()
    pace.applying()
    assert not pace.due()
    now[0] = 106.6
    assert pace.due()


def test_once_the_consumers_are_idle_the_marks_left_are_drained_without_waiting(paced):
    """services/scoring/service.py, DrainPace: after a burst's last batch (none running, none
    for IDLE_SECONDS) the next drain comes MIN_SECONDS after the last one, not twice its
    length, and takes the streaks along; a drain that stopped at its limit with marks left
    is followed at once. While a batch runs, or just after one, the burst's pace holds."""
    pace, now = paced
    pace.drained(3.0, risks=True)  # a long drain ends at 100: under a burst, the next at 106
    pace.applying()
    now[0] = 100.3
    pace.applied()  # the burst's last batch
    now[0] = 100.3 + pace.IDLE_SECONDS - 0.01
    assert not pace.due() and not pace.risks_due()  # a batch came too recently
    now[0] = 100.3 + pace.IDLE_SECONDS
    assert pace.due() and pace.risks_due()  # idle: no need to wait for 106 nor for 103
    pace.applying()  # a batch running: not idle
    assert not pace.due() and not pace.risks_due()
    pace.applied()
    now[0] += pace.IDLE_SECONDS - 0.01
    assert not pace.due()
    now[0] += 0.01
    assert pace.due()
    pace.drained(2.0, risks=True, more=True)  # stopped at its limit, marks left
    assert not pace.due()
    now[0] += pace.AFTER_LIMIT_SECONDS
    assert pace.due()  # no batch came: the next at once
    pace.applying()  # a batch running after all: the burst's pace (twice the drain)
    assert not pace.due()
    pace.applied()
    now[0] += pace.IDLE_SECONDS
    assert pace.due()
    pace.drained(2.0, risks=True)  # nothing left: the quiet pace
    assert not pace.due()
    now[0] += pace.MIN_SECONDS
    assert pace.due()


def test_a_drain_does_not_count_as_time_the_consumers_were_idle(paced):
    """services/scoring/service.py, DrainPace.idle: a drain holds SQLite's database, so no
    batch can commit during it; right after a long one, before any batch could, the
    consumers are not idle and the streaks wait for RISK_SECONDS (under a burst they used
    to be drained along after every drain longer than IDLE_SECONDS). Idle once they had
    IDLE_SECONDS outside drains; of a drain that began before the last batch, only the
    part after it counts."""
    pace, now = paced
    pace.drained(0.1, risks=True)  # streaks drained at 100: next due by time at 103
    pace.applying()
    now[0] = 100.2
    pace.applied()  # a batch at 100.2, then a burst's drain of 1.5 s from 100.3
    now[0] = 101.8
    pace.drained(1.5, risks=False, more=True)  # stopped at its limit: member marks left
    assert not pace.idle() and not pace.risks_due()  # 1.6 s since the batch, 0.1 of them free
    now[0] = 102.69
    assert not pace.idle() and not pace.risks_due()
    now[0] = 102.7  # IDLE_SECONDS outside the drain: the consumers have caught up
    assert pace.idle() and pace.risks_due() and pace.due()
    pace.drained(0.2, risks=True, more=True)  # at 102.7; the streaks' pace from here: 105.7
    pace.applying()
    now[0] = 103.0
    pace.applied()  # a batch at 103.0 during a drain of 2 s from 102.9 to 104.9
    now[0] = 104.9
    pace.drained(2.0, risks=False, more=True)  # 1.9 s of it after the batch
    now[0] = 105.69
    assert not pace.idle() and not pace.risks_due()
    now[0] = 105.7
    assert not pace.idle() and pace.risks_due()  # by RISK_SECONDS
    now[0] = 105.9
    assert pace.idle()


def test_streaks_are_drained_once_nothing_else_can_be_left(paced):
    """services/scoring/service.py, DrainPace.risks_due: after a drain that took every mark
    but the streaks (not at its limit) with no batch since, none running, only streaks can
    be left: the next drain takes them without waiting for IDLE_SECONDS or RISK_SECONDS.
    Not after a drain that stopped at its limit, nor once a batch came or runs."""
    pace, now = paced
    pace.drained(0.1, risks=True)  # streaks drained at 100: next due by time at 103
    pace.applying()
    now[0] = 100.2
    pace.applied()
    now[0] = 100.5
    pace.drained(0.3, risks=False, more=True)  # at its limit: marks other than streaks left
    assert not pace.risks_due()
    now[0] = 100.7
    pace.drained(0.1, risks=False)  # took the rest; no batch since the one at 100.2
    assert not pace.idle() and pace.risks_due()
    pace.applying()  # a batch running: it marks members, their streaks can wait
    assert not pace.risks_due()
    pace.applied()
    assert not pace.risks_due()  # it came after the drain
