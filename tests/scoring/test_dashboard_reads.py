"""scoring's bulk reads for the dashboard: `branch_overview` (every branch of a county or
township at once) and `branch_slots` (a branch's slots one by one), checked against the
reads they summarize (branch_compliance, ranking, unevenness, members_at_risk)."""
from datetime import date

import pytest

from orglife.common.errors import Forbidden, NotFound, ValidationError
from tests.scoring.conftest import attendance, register_village

NINE = [f"m{n}" for n in range(1, 10)]


def meeting(meeting_id, branch_id, type_, day, **who):
    return {"meeting_id": meeting_id, "branch_id": branch_id, "type": type_,
            "held_at": f"{day}T19:30:00", "topic": "学习", "attendance": attendance(**who)}


def a_year(pipeline):
    """b1: theme days every month from June and an assembly in Q2 and Q3 (m9 absent at each:
    a streak of six months by November); b2: one theme day in March; b3: nothing."""
    register_village(pipeline)
    for month in range(6, 11):
        pipeline.meetings.log_meeting(meeting(f"td{month}", "b1", "theme_day",
                                              f"2026-{month:02d}-15", present=NINE[:8],
                                              absent=["m9"]))
    pipeline.meetings.log_meeting(meeting("a2", "b1", "branch_assembly", "2026-05-10",
                                          present=NINE[:7], leave=["m8"], absent=["m9"]))
    pipeline.meetings.log_meeting(meeting("a3", "b1", "branch_assembly", "2026-08-10",
                                          present=NINE[:8], absent=["m9"]))
    pipeline.meetings.log_meeting(meeting("n-td", "b2", "theme_day", "2026-03-03",
                                          present=["n1"], absent=["n2"]))
    pipeline.deliver()


def test_the_overview_holds_every_branch_as_the_single_reads_give_it(pipeline, scoring_worker):
    a_year(pipeline)
    scoring = scoring_worker()
    overview = scoring.branch_overview("c1", 2026)
    assert (overview["org_id"], overview["kind"], overview["as_of"]) == ("c1", "county",
                                                                         "2026-11-20")
    assert [t["org_id"] for t in overview["townships"]] == ["t1", "t2"]
    by_id = {item["branch_id"]: item for item in overview["branches"]}
    assert set(by_id) == {"b1", "b2", "b3"}
    # b3 hangs under a general branch: its township is still t1
    assert {b: by_id[b]["township_id"] for b in by_id} == {"b1": "t1", "b2": "t2", "b3": "t1"}
    for branch_id, item in by_id.items():
        single = scoring.branch_compliance(branch_id, 2026)
        for key in ("compliance", "attendance_rate", "score", "light", "category"):
            assert item[key] == single[key], (branch_id, key)
    ranking = scoring.ranking("c1", 2026, "branch", 50)
    assert {i["branch_id"]: i["rank"] for i in ranking["items"]} == \
        {b: i["rank"] for b, i in by_id.items()}
    assert overview["categories"] == scoring.unevenness("c1", 2026)["categories"]
    lights = {"red": 0, "yellow": 0, "green": 0}
    for item in by_id.values():
        lights[item["light"]] += 1
    assert overview["lights"] == lights
    assert overview["threshold"] == 0.6


def test_the_overview_counts_members_at_risk_by_level_stored_or_computed(pipeline,
                                                                         scoring_worker):
    a_year(pipeline)
    scoring = scoring_worker()
    at_risk = scoring.members_at_risk("c1", all_streaks=True)
    assert scoring.members_at_risk("c1")["total"] == at_risk["total"] - 1  # not n2's
    levels = {}
    for item in at_risk["items"]:
        levels[item["level"] or "none"] = levels.get(item["level"] or "none", 0) + 1
    assert levels.get("review") == 1  # m9: May to October missed, six months
    assert levels.get("none") == 1  # n2: March missed, nothing expected since
    computed = scoring.branch_overview("c1", 2026)["at_risk"]
    scoring.run_daily()  # today's run: the stored streaks are current now
    stored = scoring.branch_overview("c1", 2026)["at_risk"]
    assert computed == stored
    assert stored["total"] == at_risk["total"] == sum(levels.values())
    assert {k: v for k, v in stored.items() if v and k != "total"} == levels
    # an earlier day: computed as of then (September: May to August missed, a notice)
    earlier = scoring.branch_overview("c1", 2026, "2026-09-05")["at_risk"]
    assert (earlier["review"], earlier["alert"], earlier["notice"]) == (0, 0, 1)


def test_the_overview_is_limited_to_the_callers_scope(pipeline, scoring_worker):
    a_year(pipeline)
    township = scoring_worker("township_admin", "t2")
    overview = township.branch_overview("t2", 2026)
    assert [item["branch_id"] for item in overview["branches"]] == ["b2"]
    assert [t["org_id"] for t in overview["townships"]] == ["t2"]
    assert overview["branches"][0]["township_id"] == "t2"
    with pytest.raises(Forbidden):
        township.branch_overview("t1", 2026)
    with pytest.raises(Forbidden):
        township.branch_overview("c1", 2026)
    with pytest.raises(NotFound):
        township.branch_overview("nowhere", 2026)
    secretary = scoring_worker("branch_secretary", "b1")
    assert [i["branch_id"] for i in secretary.branch_overview("b1", 2026)["branches"]] == ["b1"]
    with pytest.raises(ValidationError):
        scoring_worker().branch_overview("c1", 2027)  # has not begun


def test_branch_slots_are_the_slots_compliance_counts(pipeline, scoring_worker):
    a_year(pipeline)
    scoring = scoring_worker()
    for as_of in (None, "2026-07-01", "2026-11-20"):
        slots = scoring.branch_slots("b1", 2026, as_of)
        figures = scoring.branch_compliance("b1", 2026, as_of)
        assert slots["as_of"] == figures["as_of"]
        required = [s for s in slots["slots"] if s["required"]]
        assert len(required) == figures["required"]
        assert sum(1 for s in required if s["met"]) == figures["met"]
        assert [{"type": s["type"], "period": s["period"], "group_id": s["group_id"]}
                for s in slots["slots"] if s["ended"] and not s["met"]] == figures["missed"]
        for type_, counts in figures["by_type"].items():
            assert sum(1 for s in required if s["type"] == type_) == counts["required"]
    slots = scoring.branch_slots("b1", 2026)
    june = next(s for s in slots["slots"] if s["type"] == "theme_day"
                and s["period"] == "2026-06")
    assert (june["met"], june["held"], june["start"], june["end"]) == (
        True, 1, "2026-06-01", "2026-06-30")
    q1 = next(s for s in slots["slots"] if s["type"] == "branch_assembly"
              and s["period"] == "2026-Q1")
    assert (q1["met"], q1["ended"]) == (False, True)
    assert slots["groups"] == ["g1"]
    assert {s["group_id"] for s in slots["slots"] if s["type"] == "group"} == {"g1"}
    assert {r["type"] for r in slots["requirements"]} >= {"branch_assembly", "theme_day"}
    with pytest.raises(ValidationError):
        scoring.branch_slots("t1", 2026)
    with pytest.raises(Forbidden):
        scoring_worker("township_admin", "t2").branch_slots("b1", 2026)
    assert date.fromisoformat(slots["as_of"]) == date(2026, 11, 20)


def test_a_daily_run_for_an_earlier_day_leaves_todays_figures_as_they_were(pipeline,
                                                                          scoring_worker):
    """run_daily(as_of) stores figures and streaks as of that day; today's reads answer
    from what is stored, so they must be today's again afterwards (they were emptied)."""
    a_year(pipeline)
    scoring = scoring_worker()
    scoring.run_daily()  # today's: the stored figures are what reads give
    before = (scoring.members_at_risk("c1"), scoring.branch_overview("c1", 2026),
              scoring.ranking("c1", 2026, "branch", 50))
    assert before[0]["total"] == 1  # m9, six months
    scoring.run_daily("2026-06-20")
    after = (scoring.members_at_risk("c1"), scoring.branch_overview("c1", 2026),
             scoring.ranking("c1", 2026, "branch", 50))
    assert after == before
    # and that day's own figures are still answered as of it
    assert scoring.members_at_risk("c1", "2026-06-20", all_streaks=True)["items"][0][
        "months"] == 1


def test_a_past_days_streaks_computed_live_are_those_its_daily_run_stores(pipeline,
                                                                         scoring_worker,
                                                                         scoring_clock):
    """A past day's overview and at-risk list judge only the members who may have a streak
    (`streak_candidates`), as the daily run does; they must give what that day's run stored."""
    a_year(pipeline)
    # n2 misses March's theme day in b2: a streak that a later month with nothing expected
    # does not break; m9 misses every month of b1 from May
    scoring = scoring_worker()
    days = sorted([date(2026, month, 1) for month in range(3, 12)] + [date(2026, 7, 20)])
    live = {day: (scoring.branch_overview("c1", 2026, day.isoformat()),
                  scoring.members_at_risk("c1", day.isoformat(), all_streaks=True))
            for day in days}
    for day in days:
        scoring_clock.set(day)
        scoring.run_daily()
        stored = (scoring.branch_overview("c1", 2026), scoring.members_at_risk(
            "c1", all_streaks=True))
        assert stored[0]["at_risk"] == live[day][0]["at_risk"], day
        assert stored[0]["branches"] == live[day][0]["branches"], day
        assert stored[1]["items"] == live[day][1]["items"], day
    assert live[date(2026, 11, 1)][1]["items"][0]["months"] == 6  # m9: May to October
    assert {i["member_id"] for i in live[date(2026, 4, 1)][1]["items"]} == {"n2"}  # March


def test_a_meeting_counts_from_its_own_day_on(pipeline, scoring_worker):
    """As of the day a meeting was held it counts (held, its slot met, the branch's last
    meeting); as of the day before it does not: the reads load meetings held by `as_of`."""
    a_year(pipeline)
    scoring = scoring_worker()
    before, on = (scoring.branch_compliance("b1", 2026, day) for day in ("2026-06-14",
                                                                          "2026-06-15"))
    assert on["held"] == before["held"] + 1  # td6, June 15
    assert (before["last_meeting_on"], on["last_meeting_on"]) == ("2026-05-10", "2026-06-15")
    overview = {day: {b["branch_id"]: b for b in scoring.branch_overview(
        "c1", 2026, day)["branches"]} for day in ("2026-06-14", "2026-06-15")}
    assert overview["2026-06-15"]["b1"]["compliance"] == on["compliance"]
    assert overview["2026-06-14"]["b1"]["compliance"] == before["compliance"]
