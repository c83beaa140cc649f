"""The daily run around New Year and before a period ends (scoring, SQLite, the real members
and meetings workers' events): a closed year's last periods are judged (overdue for December,
Q4 and the year's own slots) by the first daily run after it, whichever day that is; each
branch gets one year_graded; slots about to fall due raise branch_due_soon once."""
from datetime import date, datetime, timezone

import pytest

from tests.scoring.conftest import attendance, register_village

NINE = [f"m{n}" for n in range(1, 10)]


def meeting(meeting_id, type_, day, group_id=None, present=NINE[:6]):
    report = {"meeting_id": meeting_id, "branch_id": "b1", "type": type_,
              "held_at": f"{day}T19:30:00", "topic": "学习", "attendance": attendance(
                  present=present)}
    if group_id:
        report["group_id"] = group_id
    return report


def alerts_of(events, kind, branch_id="b1"):
    return [e.data for e in events if e.event_type == kind
            and e.data["branch_id"] == branch_id]


@pytest.fixture
def a_year_without_its_last_periods(pipeline, clock):
    """b1 (registered on New Year's Day 2026, group g1, no committee) holds everything it owes
    from January to November: no December theme day or group meeting, no Q4 lecture or
    assembly, no org_life or democratic_review all year."""
    now = clock.fixed
    clock.fixed = datetime(2026, 1, 1, 2, tzinfo=timezone.utc)
    register_village(pipeline, committee=())
    clock.fixed = now
    pipeline.members.update_member({"member_id": "m5", "status": "probationary"})
    for month in range(1, 12):
        pipeline.meetings.log_meeting(meeting(f"t{month}", "theme_day", f"2026-{month:02d}-05"))
        pipeline.meetings.log_meeting(meeting(f"g{month}", "group", f"2026-{month:02d}-06",
                                              "g1", present=NINE[:3]))
    for quarter in range(1, 4):
        pipeline.meetings.log_meeting(meeting(f"l{quarter}", "lecture",
                                              f"2026-{3 * quarter:02d}-10"))
        pipeline.meetings.log_meeting(meeting(f"a{quarter}", "branch_assembly",
                                              f"2026-{3 * quarter:02d}-11"))
    pipeline.deliver()
    pipeline.new_events("scoring")
    return pipeline


LAST_PERIODS = {("theme_day", "2026-12"), ("group", "2026-12"), ("lecture", "2026-Q4"),
                ("branch_assembly", "2026-Q4"), ("org_life", "2026"),
                ("democratic_review", "2026")}


@pytest.mark.parametrize("days", [
    [date(2026, 12, 31), date(2027, 1, 1), date(2027, 1, 2)],
    [date(2026, 12, 31), date(2027, 1, 3)],  # no daily run on January 1 or 2
], ids=["on-new-years-day", "two-days-late"])
def test_a_closed_year_raises_overdue_for_its_last_periods_once(
        a_year_without_its_last_periods, scoring_worker, scoring_clock, days):
    pipeline = a_year_without_its_last_periods
    scoring = scoring_worker()
    scoring_clock.set(days[0])
    scoring.daily_when_due()
    december = pipeline.new_events("scoring")
    # on December 31 nothing of December, Q4 or the year has ended yet
    assert alerts_of(december, "branch_overdue") == []
    raised = []
    for day in days[1:]:
        scoring_clock.set(day)
        scoring.daily_when_due()
        raised += pipeline.new_events("scoring")
    overdue = alerts_of(raised, "branch_overdue")
    assert {(o["type"], o["period"]) for o in overdue} == LAST_PERIODS
    assert len(overdue) == len(LAST_PERIODS)  # each once
    assert [o.get("group_id") for o in overdue if o["type"] == "group"] == ["g1"]
    figures = scoring.branch_compliance("b1", 2026)
    assert figures["as_of"] == "2026-12-31" and figures["closed"] is True
    assert figures["by_type"]["org_life"] == {"required": 1, "met": 0, "held": 0}
    assert figures["by_type"]["theme_day"] == {"required": 12, "met": 11, "held": 11}
    assert figures["by_type"]["lecture"]["required"] == 4
    assert (figures["required"], figures["met"]) == (12 + 12 + 4 + 4 + 1 + 1, 11 + 11 + 3 + 3)
    assert {(m["type"], m["period"]) for m in figures["missed"]} == LAST_PERIODS
    # the ranking and unevenness of 2026 count the same closed year
    [b1] = [i for i in scoring.ranking("c1", 2026, "branch")["items"] if i["branch_id"] == "b1"]
    assert (b1["score"], b1["compliance"]) == (figures["score"], figures["compliance"])

    # later runs raise nothing more for 2026
    scoring_clock.set(date(2027, 1, 9))
    scoring.daily_when_due()
    scoring_worker().run_daily()
    later = pipeline.new_events("scoring")
    assert [e for e in later if e.event_type in ("branch_overdue", "year_graded")
            and e.data.get("period", "2026").startswith("2026")] == []


def test_each_branch_gets_its_year_graded_once(a_year_without_its_last_periods, scoring_worker,
                                              scoring_clock):
    pipeline = a_year_without_its_last_periods
    scoring = scoring_worker()
    scoring_clock.set(date(2027, 1, 2))
    summary = scoring.run_daily()
    graded = [e.data for e in pipeline.new_events("scoring") if e.event_type == "year_graded"]
    # b3 has no members: no notice; b1 and b2 one each
    assert sorted(g["branch_id"] for g in graded) == ["b1", "b2"]
    assert summary["raised"]["year_graded"] == 2
    b1 = next(g for g in graded if g["branch_id"] == "b1")
    assert b1["year"] == 2026
    assert [g["member_id"] for g in b1["grades"]] == NINE
    for grade in b1["grades"]:
        score = scoring.member_score(grade["member_id"], 2026)
        assert grade == {"member_id": grade["member_id"], "score": score["score"],
                         "grade": score["grade"], "recommendation": score["recommendation"]}
    m5 = next(g for g in b1["grades"] if g["member_id"] == "m5")
    assert m5["grade"] is None and m5["recommendation"] is not None  # probationary
    b2 = next(g for g in graded if g["branch_id"] == "b2")
    assert b2["grades"] == [{"member_id": m, "score": 60, "grade": "basic",
                             "recommendation": None} for m in ("n1", "n2")]  # the base
    scoring_clock.set(date(2027, 1, 3))
    scoring.daily_when_due()
    scoring_worker().run_daily()
    assert [e for e in pipeline.new_events("scoring") if e.event_type == "year_graded"] == []
    # a notice, not an alert: list_alerts does not show it
    assert scoring.list_alerts({"limit": 1000})["total"] == sum(
        1 for _ in scoring.list_alerts({"limit": 1000})["items"])
    assert "year_graded" not in {a["kind"] for a in scoring.list_alerts({"limit": 1000})["items"]}


def test_no_grades_or_overdue_for_a_branch_registered_after_the_year(pipeline, scoring_worker,
                                                                     clock, scoring_clock):
    now = clock.fixed
    clock.fixed = datetime(2027, 1, 1, 2, tzinfo=timezone.utc)  # onboarded on New Year's Day
    register_village(pipeline)
    clock.fixed = now
    pipeline.new_events("scoring")
    scoring_clock.set(date(2027, 1, 2))
    scoring_worker().daily_when_due()
    events = pipeline.new_events("scoring")
    assert [e for e in events if e.event_type in ("year_graded", "branch_overdue")] == []


def test_slots_about_to_fall_due_raise_branch_due_soon_once(pipeline, scoring_worker, clock,
                                                           scoring_clock):
    register_village(pipeline)  # registered on 2026-11-20, committee m1–m3, group g1
    pipeline.meetings.log_meeting(meeting("t11", "theme_day", "2026-11-05"))
    pipeline.deliver()
    pipeline.new_events("scoring")
    scoring = scoring_worker()
    scoring_clock.set(date(2026, 11, 22))  # November ends in 8 days: not yet
    scoring.daily_when_due()
    assert alerts_of(pipeline.new_events("scoring"), "branch_due_soon") == []
    scoring_clock.set(date(2026, 11, 24))  # within 7 days of November 30
    scoring.daily_when_due()
    due = alerts_of(pipeline.new_events("scoring"), "branch_due_soon")
    assert sorted(due, key=lambda d: d["type"]) == [
        {"branch_id": "b1", "type": "committee", "period": "2026-11", "due_on": "2026-11-30"},
        {"branch_id": "b1", "type": "group", "period": "2026-11", "group_id": "g1",
         "due_on": "2026-11-30"}]  # the theme day of November was held
    listed = scoring.list_alerts({"kind": "branch_due_soon", "org_id": "b1"})
    assert listed["total"] == 2 and {a["kind"] for a in listed["items"]} == {"branch_due_soon"}
    for day in (date(2026, 11, 25), date(2026, 11, 26)):
        scoring_clock.set(day)
        scoring.daily_when_due()
    assert alerts_of(pipeline.new_events("scoring"), "branch_due_soon") == []  # once each
    scoring_clock.set(date(2026, 12, 26))  # December, Q4 and the year end within 7 days
    scoring.daily_when_due()
    due = alerts_of(pipeline.new_events("scoring"), "branch_due_soon")
    assert {(d["type"], d["period"]) for d in due} == {
        ("committee", "2026-12"), ("group", "2026-12"), ("theme_day", "2026-12"),
        ("lecture", "2026-Q4"), ("branch_assembly", "2026-Q4"), ("org_life", "2026"),
        ("democratic_review", "2026")}
    assert {d["due_on"] for d in due} == {"2026-12-31"}


def test_due_soon_looks_forward_from_registration(pipeline, scoring_worker, clock,
                                                  scoring_clock):
    now = clock.fixed
    clock.fixed = datetime(2026, 11, 27, 2, tzinfo=timezone.utc)
    register_village(pipeline)
    clock.fixed = now
    pipeline.new_events("scoring")
    scoring_clock.set(date(2026, 11, 28))
    scoring = scoring_worker()
    scoring.run_daily("2026-11-25")  # before the branches were registered: nothing
    assert alerts_of(pipeline.new_events("scoring"), "branch_due_soon") == []
    scoring.run_daily()
    assert {d["period"] for d in alerts_of(pipeline.new_events("scoring"),
                                           "branch_due_soon")} == {"2026-11"}
