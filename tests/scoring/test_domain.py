"""scoring's rules on hand-computed cases, without a broker or a database (SPEC §3)."""
import random
from collections import Counter
from datetime import date

import pytest

from orglife.common.rules import load_rules
from services.scoring import domain
from services.scoring.domain import Branch, MeetingFacts, Month, Participation

RULES = load_rules()


def attended(day, kind="branch_assembly", ref=None, status="present", remote=False):
    return Participation("meeting", kind, ref or f"{kind}-{day}", day, status, remote, "b1")


def test_five_assemblies_two_absences_and_a_visit():
    """60 base + 4 × 3 (the fifth assembly cut by the cap of 12) − 2 × 3 + 1 = 67: basic."""
    lines = [attended(date(2026, m, 10)) for m in (1, 3, 5, 7, 9)]
    lines += [attended(date(2026, 2, 5), "theme_day", status="absent"),
              attended(date(2026, 4, 5), "lecture", status="absent"),
              Participation("activity", "household_visit", "v1", date(2026, 6, 1), "done")]
    score = domain.member_score(RULES, lines, "formal")
    assert (score.score, score.raw, score.grade, score.recommendation) == (67, 67, "basic", None)
    assert sum(line["points"] for line in score.breakdown) == 67
    fifth = [line for line in score.breakdown if line["ref"] == "branch_assembly-2026-09-10"]
    assert fifth == [{**fifth[0], "points": 0, "capped": True}]
    assert [line["date"] for line in score.breakdown[1:]] == sorted(
        line["date"] for line in score.breakdown[1:])  # date order
    absences = [line for line in score.breakdown if line["item"] == "absence"]
    assert [line["points"] for line in absences] == [-3, -3]


def test_a_cap_cuts_a_line_in_part():
    """org_life: +4, cap 4 — and lecture +2 cap 8: the fifth lecture is cut to 0."""
    lines = [attended(date(2026, 1, d), "lecture") for d in range(1, 6)]
    score = domain.member_score(RULES, lines, "formal")
    assert [line["points"] for line in score.breakdown[1:]] == [2, 2, 2, 2, 0]
    assert score.score == 68


def test_a_probationary_member_at_84_is_extended_not_graded():
    lines = [attended(date(2026, m, 1), "theme_day") for m in range(1, 13)]  # +24
    score = domain.member_score(RULES, lines, "probationary")
    assert (score.score, score.grade, score.recommendation) == (84, None, "extend")
    assert domain.grade_of(RULES, 85, "probationary") == (None, "confirm")
    assert domain.grade_of(RULES, 69, "probationary") == (None, "review")
    assert domain.grade_of(RULES, 90, "formal") == ("excellent", None)
    assert domain.grade_of(RULES, 59, "formal") == ("unqualified", None)


def test_the_total_is_clamped_at_0_and_100_and_the_breakdown_shows_the_raw_sum():
    absent = [attended(date(2026, 1, d), "theme_day", ref=f"t{d}", status="absent")
              for d in range(1, 22)]  # 60 − 63
    low = domain.member_score(RULES, absent, "formal")
    assert (low.score, low.raw, low.clamped, low.grade) == (0, -3, True, "unqualified")
    assert sum(line["points"] for line in low.breakdown) == -3
    every = [attended(date(2026, m, 1), t, ref=f"{t}{m}{d}") for m in range(1, 13)
             for d in range(1, 3)
             for t in ("branch_assembly", "group", "lecture", "theme_day", "committee",
                       "org_life", "democratic_review", "study")]
    every += [Participation("activity", k, f"{k}{n}", date(2026, 5, 1 + n % 20), "done")
              for k in ("household_visit", "volunteer") for n in range(12)]
    high = domain.member_score(RULES, every, "formal")
    assert (high.score, high.raw, high.clamped) == (100, 162, True)  # 60 + 82 + 20


def test_counts_give_the_same_score_as_the_lines():
    rng = random.Random(5)
    for _ in range(200):
        lines = [Participation("meeting" if rng.random() < 0.8 else "activity",
                               rng.choice(("branch_assembly", "theme_day", "lecture", "study")),
                               f"r{n}", date(2026, 1, 1 + n % 28),
                               rng.choice(("present", "present", "absent", "leave")))
                 for n in range(rng.randint(0, 40))]
        lines = [line if line.kind == "meeting" else
                 Participation("activity", rng.choice(("household_visit", "volunteer",
                                                        "heart_talk")), line.ref,
                               line.held_on, "done") for line in lines]
        tally = Counter((f"{line.kind}:{line.type}", line.status) for line in lines)
        status = rng.choice(("formal", "probationary"))
        by_lines = domain.member_score(RULES, lines, status)
        by_counts = domain.score_from_tally(RULES, dict(tally), status)
        assert (by_counts.score, by_counts.raw, by_counts.grade, by_counts.recommendation) == (
            by_lines.score, by_lines.raw, by_lines.grade, by_lines.recommendation)


def assembly(day, valid=True, expected=9, present=7):
    return MeetingFacts(f"a{day}", "branch_assembly", day, valid=valid, expected=expected,
                        present=present)


def test_assemblies_in_q1_and_q3_only_one_without_quorum():
    """As of 2026-10-15: Q1 met, Q2 missed, Q3's assembly missed its quorum (points yes,
    compliance no), Q4 not ended and unmet → 1 of 3 assembly slots met."""
    meetings = [assembly(date(2026, 2, 10)),
                assembly(date(2026, 8, 10), valid=False, present=4)]
    only_assemblies = RULES.__class__({**RULES.raw, "required_meetings": {
        "branch_assembly": RULES.raw["required_meetings"]["branch_assembly"]}})
    result = domain.compliance(only_assemblies, Branch("b1"), meetings, 2026,
                               date(2026, 10, 15))
    assert (result.required, result.met, result.held) == (3, 1, 1)
    assert result.compliance == pytest.approx(1 / 3, abs=1e-4)
    assert [m["period"] for m in result.missed] == ["2026-Q2", "2026-Q3"]
    assert result.attendance_rate == pytest.approx(11 / 18, abs=1e-4)  # both meetings count
    assert result.score == pytest.approx(70 / 3 + 30 * 11 / 18, abs=0.01)
    assert domain.light(RULES, result.compliance, False, False) == "red"


def test_a_year_with_nothing_required_yet_is_compliant_and_a_met_current_slot_counts():
    result = domain.compliance(RULES, Branch("b1"), [], 2026, date(2026, 1, 20))
    assert (result.required, result.met, result.compliance) == (0, 0, 1.0)
    early = domain.compliance(RULES, Branch("b1"), [assembly(date(2026, 1, 10))], 2026,
                              date(2026, 1, 20))
    assert (early.required, early.met, early.compliance) == (1, 1, 1.0)


def test_a_branch_without_groups_or_committee_owes_no_group_or_committee_meetings():
    bare = domain.slots(RULES, Branch("b1"), [], 2026, date(2026, 12, 31))
    assert not {s.type for s in bare} & {"group", "committee"}
    full = domain.slots(RULES, Branch("b1", groups=("g1", "g2"), has_committee=True), [],
                        2026, date(2026, 12, 31))
    assert sum(1 for s in full if s.type == "group") == 24  # 2 groups × 12 months
    assert sum(1 for s in full if s.type == "committee") == 12


def test_group_slots_are_met_by_that_groups_meeting_only():
    meetings = [MeetingFacts("g", "group", date(2026, 3, 5), group_id="g1")]
    result = domain.slots(RULES, Branch("b1", groups=("g1", "g2")), meetings, 2026,
                          date(2026, 4, 1))
    march = {s.group_id: s.met for s in result if s.type == "group" and s.period.label == "2026-03"}
    assert march == {"g1": True, "g2": False}


def test_overdue_alerts_look_forward_from_registration():
    branch = Branch("b1", registered_on=date(2026, 11, 3))
    overdue = domain.overdue(RULES, branch, [], 2026, date(2026, 12, 2))
    assert {(o["type"], o["period"]) for o in overdue} == {("theme_day", "2026-11")}
    assert domain.compliance(RULES, branch, [], 2026, date(2026, 12, 2)).required > 1


def test_lights_silence_and_due_soon():
    assert domain.silence(RULES, date(2026, 10, 1), None, date(2026, 10, 30)) is None
    assert domain.silence(RULES, date(2026, 10, 1), None, date(2026, 10, 31)) == 30
    assert domain.silence(RULES, None, date(2026, 9, 1), date(2026, 10, 31)) == 60
    assert domain.light(RULES, 0.95, True, False) == "red"
    assert domain.light(RULES, 0.7, False, False) == "yellow"
    assert domain.light(RULES, 0.95, False, True) == "yellow"
    assert domain.light(RULES, 0.95, False, False) == "green"
    due = domain.compliance(RULES, Branch("b1"), [], 2026, date(2026, 3, 26)).due_soon
    assert {(d["type"], d["period"]) for d in due} >= {("theme_day", "2026-03"),
                                                       ("branch_assembly", "2026-Q1")}


def test_missed_months_are_counted_back_to_the_newest_attended_skipping_neutral_ones():
    months = [Month("2026-03", expected=2, attended=1),  # attended: the streak stops here
              Month("2026-04", expected=2),  # missed
              Month("2026-05", expected=2, leave=2),  # on leave for all: neutral
              Month("2026-06"),  # nothing expected: neutral
              Month("2026-07", expected=1),  # missed
              Month("2026-08", expected=3, leave=1)]  # missed: not on leave for all
    assert domain.streak(months) == ["2026-08", "2026-07", "2026-04"]
    assert domain.risk_level(RULES, 3) == "notice"
    assert domain.risk_level(RULES, 5) == "alert" and domain.risk_level(RULES, 6) == "review"
    assert domain.levels_reached(RULES, 5) == ["notice", "alert"]
    assert domain.risk_level(RULES, 2) is None
    assert domain.complete_months_before(date(2026, 3, 15), date(2026, 1, 20)) == [
        "2026-02", "2026-01"]


def test_ties_share_a_rank():
    assert domain.ranked([("b", 80.0), ("a", 90.0), ("c", 80.0), ("d", 70.0)]) == [
        (1, "a", 90.0), (2, "b", 80.0), (2, "c", 80.0), (4, "d", 70.0)]


def test_unevenness_by_category():
    rows = domain.unevenness(RULES, [("village", 0.5), ("village", 0.9), ("enterprise", 0.4),
                                     ("community", 1.0)])
    assert rows == [
        {"category": "community", "branches": 1, "mean": 1.0, "min": 1.0, "max": 1.0,
         "below_0_6": 0},
        {"category": "enterprise", "branches": 1, "mean": 0.4, "min": 0.4, "max": 0.4,
         "below_0_6": 1},
        {"category": "village", "branches": 2, "mean": 0.7, "min": 0.5, "max": 0.9,
         "below_0_6": 1}]


def test_a_visitor_listed_absent_is_not_charged():
    lines = [attended(date(2026, 3, 1)),
             Participation("meeting", "lecture", "visit", date(2026, 3, 2), "absent",
                           branch_id="b2", expected=False),
             Participation("meeting", "lecture", "visit2", date(2026, 3, 3), "present",
                           branch_id="b2", expected=False)]
    score = domain.member_score(RULES, lines, "formal")
    assert score.score == 65  # 60 + 3 + 2: the absence at b2, where they were a visitor, is 0
    assert "visit" not in {line["ref"] for line in score.breakdown}
    assert domain.counts("absent", False) is False and domain.counts("leave", False)
    assert domain.counts("absent", True) and domain.counts("present", False)


def test_a_closed_year_counts_every_period_as_ended():
    dec31 = date(2026, 12, 31)
    open_ = domain.compliance(RULES, Branch("b1"), [], 2026, dec31)
    closed = domain.compliance(RULES, Branch("b1"), [], 2026, dec31, closed=True)
    assert open_.by_type["org_life"]["required"] == 0  # the year's own slot: not ended yet
    assert closed.by_type["org_life"]["required"] == 1
    assert closed.by_type["theme_day"]["required"] == 12
    assert closed.by_type["lecture"]["required"] == 4 and closed.due_soon == []
    overdue = domain.overdue(RULES, Branch("b1"), [], 2026, dec31, closed=True)
    assert {o["period"] for o in overdue} >= {"2026-12", "2026-Q4", "2026"}
    assert not domain.year_closed(2026, dec31) and domain.year_closed(2026, date(2027, 1, 1))


def test_a_branch_that_held_nothing_has_no_attendance_rate_and_never_outranks_real_work():
    """January: nothing is required yet. The idle branch's compliance is 1.0 (nothing owed),
    but without anybody expected it has no attendance rate and no attendance term: 70. The
    branch that met January's slot with 8 of 10 present: 70 + 30 × 0.8 = 94."""
    day = date(2026, 1, 20)
    idle = domain.compliance(RULES, Branch("b1"), [], 2026, day)
    assert (idle.compliance, idle.attendance_rate, idle.score) == (1.0, None, 70.0)
    active = domain.compliance(RULES, Branch("b2"), [MeetingFacts(
        "t1", "theme_day", date(2026, 1, 10), expected=10, present=8)], 2026, day)
    assert (active.compliance, active.attendance_rate, active.score) == (1.0, 0.8, 94.0)
    # mid-year, an idle branch with compliance 0 scores 0, not 30
    assert domain.compliance(RULES, Branch("b1"), [], 2026, date(2026, 7, 1)).score == 0.0
    everyone_absent = domain.compliance(RULES, Branch("b3"), [MeetingFacts(
        "t1", "theme_day", date(2026, 1, 10), expected=10, present=0)], 2026, day)
    assert everyone_absent.score == idle.score  # the idle branch is at best level with it


def test_a_group_formed_mid_year_raises_no_alert_about_the_months_before_it():
    """Its missed months still count in the figures (as a branch's do), but the alerts look
    forward from the day the group was registered."""
    branch = Branch("b1", groups=("g1", "g2"), registered_on=date(2025, 1, 1),
                    groups_registered=(("g1", date(2025, 1, 1)), ("g2", date(2026, 9, 15))))
    overdue = domain.overdue(RULES, branch, [], 2026, date(2026, 12, 2))
    group_months = {o["period"] for o in overdue if o["group_id"] == "g2"}
    assert group_months == {"2026-09", "2026-10", "2026-11"}
    assert len({o["period"] for o in overdue if o["group_id"] == "g1"}) == 11
    figures = domain.compliance(RULES, branch, [], 2026, date(2026, 12, 2))
    assert figures.by_type["group"]["required"] == 22  # both groups, January to November
