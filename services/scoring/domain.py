"""scoring's rules as plain functions (SPEC §3): points, grades, slots and compliance,
attendance rate, branch score, lights, silence, at-risk streaks, rankings, unevenness.

No nameko, no database: the service layer hands plain values in (a member's participation
lines, a branch's meetings) and stores what comes out. Every number comes from the rules file
through `Rules` (orglife/common/rules.py); each rule is written here once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from statistics import fmean
from typing import NamedTuple

from orglife.common.rules import Rules

# -- assessment points -------------------------------------------------------------------------


@dataclass(frozen=True)
class Participation:
    """One line of a member's year: a meeting they attended, were absent from or on leave
    from, or an activity they did."""

    kind: str  # meeting | activity
    type: str  # meeting type or activity kind
    ref: str  # meeting_id or activity_id
    held_on: date  # the county's day
    status: str  # present | leave | absent (meetings); done (activities)
    remote: bool = False
    branch_id: str | None = None
    expected: bool = True  # False: a visitor (a member of another branch, or not expected)


@dataclass
class Score:
    score: int  # after the clamp
    raw: int  # before the clamp: the breakdown sums to this
    grade: str | None
    recommendation: str | None
    breakdown: list[dict] = field(default_factory=list)
    clamped: bool = False


def counts(status: str, expected: bool) -> bool:
    """Whether an attendance line counts for points and tallies at all. SPEC §3: absences
    apply to expected attendees only, so a visitor listed `absent` (expected: false) is
    neither charged nor shown; a visitor present earns their points, on leave nothing."""
    return expected or status != "absent"


def bucket_of(kind: str, item: str, status: str) -> str:
    """The cap bucket of a line: what its points and yearly cap are looked up by."""
    if kind == "activity":
        return f"activity:{item}"
    if status == "present":
        return f"meeting:{item}"
    return "absence" if status == "absent" else "leave"


def _earn(rules: Rules, line: Participation) -> tuple[str, int, int | None]:
    """(cap bucket, points, cap) of one line before caps; cap None for unlimited lines."""
    bucket = bucket_of(line.kind, line.type, line.status)
    points, cap = rules.point_table.get(bucket, (0, 0))
    return bucket, points, cap


def member_score(rules: Rules, lines: list[Participation], status: str) -> Score:
    """A member's points for a year: the base, then each line in date order, positive points
    of each kind capped for the year (a line the cap cut says so), unexcused absences without
    a cap; the total clamped. The breakdown sums to the score before the clamp."""
    breakdown = [{"item": "base", "ref": None, "date": None, "type": None, "branch_id": None,
                  "status": None, "points": rules.base_points, "capped": False}]
    earned: dict[str, int] = {}
    raw = rules.base_points
    for line in sorted(lines, key=lambda x: (x.held_on, x.kind, x.ref)):
        if not counts(line.status, line.expected):
            continue
        bucket, points, cap = _earn(rules, line)
        capped = False
        if cap is not None and points > 0:
            allowed = max(0, cap - earned.get(bucket, 0))
            if points > allowed:
                points, capped = allowed, True
            earned[bucket] = earned.get(bucket, 0) + points
        raw += points
        breakdown.append({"item": line.kind if line.kind == "activity" else
                          {"present": "attended", "absent": "absence",
                           "leave": "leave"}[line.status],
                          "ref": line.ref, "date": line.held_on.isoformat(), "type": line.type,
                          "branch_id": line.branch_id, "status": line.status,
                          "remote": line.remote, "points": points, "capped": capped})
    return _finish(rules, raw, status, breakdown)


def score_from_tally(rules: Rules, tally: dict[tuple[str, str], int], status: str) -> Score:
    """The same score from counts alone ((kind:type, status) → number of lines): caps depend
    only on how many lines a kind has, so the incremental path needs no dates. Equal to
    `member_score` of the lines counted (held to it by tests)."""
    table, finished = _tally_points(rules)
    raw = table.get("base")
    if raw is None:
        raw = table["base"] = rules.base_points
    for key, count in tally.items():
        found = table.get(key)
        if found is None:
            kind, _, item = key[0].partition(":")
            found = table[key] = rules.point_table.get(bucket_of(kind, item, key[1]), (0, 0))
        points, cap = found
        total = points * count
        if cap is not None and points > 0 and total > cap:
            total = cap
        raw += total
    done = finished.get((raw, status))
    if done is None:
        result = _finish(rules, raw, status, [])
        done = finished[(raw, status)] = (result.score, result.grade, result.recommendation,
                                          result.clamped)
    score, grade, recommendation, clamped = done
    return Score(score, raw, grade, recommendation, [], clamped)


_TALLY_POINTS: dict[int, tuple] = {}


def _tally_points(rules: Rules) -> tuple[dict, dict]:
    """For these rules: (tally bucket, status) → (points, cap), filled as met, and (raw,
    status) → (score, grade, recommendation, clamped): a county's recalculation scores
    35,000 members from a few dozen distinct keys and a few hundred distinct raw sums, and
    the rules' properties are recomputed at each access."""
    cached = _TALLY_POINTS.get(id(rules))
    if cached is None or cached[0] is not rules:
        cached = _TALLY_POINTS[id(rules)] = (rules, {}, {})
    return cached[1], cached[2]


def _finish(rules: Rules, raw: int, status: str, breakdown: list[dict]) -> Score:
    low, high = rules.clamp
    score = min(max(raw, low), high)
    grade, recommendation = grade_of(rules, score, status)
    return Score(score, raw, grade, recommendation, breakdown, clamped=score != raw)


def grade_of(rules: Rules, score: int, status: str) -> tuple[str | None, str | None]:
    """(grade, recommendation): probationary members are not graded (SPEC §3)."""
    table = rules.recommendations if status == "probationary" else rules.grades
    label = next((name for lowest, name in table if score >= lowest), table[-1][1])
    return (None, label) if status == "probationary" else (label, None)


# -- periods and compliance --------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    label: str  # 2026-03 | 2026-Q1 | 2026
    start: date
    end: date  # the last day

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end


@lru_cache(maxsize=64)
def periods(per: str, year: int) -> tuple[Period, ...]:
    """A year's periods of one kind."""
    if per == "year":
        return (Period(str(year), date(year, 1, 1), date(year, 12, 31)),)
    if per == "quarter":
        return tuple(Period(f"{year}-Q{q}", date(year, 3 * q - 2, 1), _month_end(year, 3 * q))
                     for q in range(1, 5))
    return tuple(Period(f"{year}-{m:02d}", date(year, m, 1), _month_end(year, m))
                 for m in range(1, 13))


def _month_end(year: int, month: int) -> date:
    return (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1))


class MeetingFacts(NamedTuple):
    """What compliance needs of one of a branch's meetings (a tuple: a county's branch
    figures are computed from 100,000 of them at once)."""

    meeting_id: str
    type: str
    held_on: date
    group_id: str | None = None
    valid: bool = True  # logged, not cancelled, quorum met
    cancelled: bool = False
    expected: int = 0  # host-branch members expected
    present: int = 0  # of them present (remote counts)


@dataclass(frozen=True)
class Branch:
    """What compliance needs of the branch itself."""

    branch_id: str
    groups: tuple[str, ...] = ()
    has_committee: bool = False
    registered_on: date | None = None
    # (group_id, the day it was registered): a group formed in September raises no alert
    # about January's group meetings
    groups_registered: tuple[tuple[str, date | None], ...] = ()


# Not frozen: a drain builds the slots of most of a county's branches, and a frozen
# dataclass's __init__ took 3.7 µs a slot against 0.6 (py-spy on a burst: 1.7% of scoring).
@dataclass(slots=True)
class Slot:
    type: str
    period: Period
    group_id: str | None
    met: bool
    required: bool  # ended, or current and already met
    ended: bool
    held: int  # valid meetings in it


def year_closed(year: int, today: date) -> bool:
    """A year is closed once its last day is over: every period of it has ended, December's,
    the fourth quarter's and the year's own included."""
    return today > date(year, 12, 31)


def slots(rules: Rules, branch: Branch, meetings: list[MeetingFacts], year: int,
          as_of: date, closed: bool = False) -> list[Slot]:
    """Each (type, period) the branch owes, and each (group, month) for group meetings, up to
    `as_of`: a slot is met by at least `at_least` valid meetings of its type in its period.
    A period has ended when `as_of` is past its last day, or when the year is `closed`: the
    figures of a past year are shown as of December 31 (its last day, on which December
    had not ended yet) but every period of it has ended."""
    out = []
    days: dict[tuple[str, str | None], list[date]] = {}  # (type, group or None) → held days
    for m in meetings:
        if m.valid and m.held_on <= as_of:
            days.setdefault((m.type, None), []).append(m.held_on)
            if m.group_id:
                days.setdefault((m.type, m.group_id), []).append(m.held_on)
    for requirement in rules.requirements:
        if requirement.type == "committee" and not branch.has_committee:
            continue  # no committee, no committee slots
        owners = list(branch.groups) if requirement.per_group else [None]
        # valid meetings per period, counted in one pass over the held days (a county's
        # recalculation builds 100,000 slots: a pass per slot was most of its branch figures)
        held_in = {group_id: _held_per_period(requirement.per, year,
                                              days.get((requirement.type, group_id), ()))
                   for group_id in owners}
        for index, period in enumerate(periods(requirement.per, year)):
            if period.start > as_of:
                break
            for group_id in owners:
                held = held_in[group_id][index]
                met = held >= requirement.at_least
                ended = closed or period.end < as_of
                out.append(Slot(requirement.type, period, group_id, met, ended or met, ended,
                                held))
    return out


def _held_per_period(per: str, year: int, days) -> list[int]:
    """How many of `days` fall in each of `year`'s periods of kind `per` (in `periods`'
    order); days of other years count nowhere."""
    held = [0] * len(periods(per, year))
    for day in days:
        if day.year == year:
            held[0 if per == "year" else (day.month - 1) // 3 if per == "quarter"
                 else day.month - 1] += 1
    return held


@dataclass
class Compliance:
    required: int
    met: int
    held: int
    compliance: float
    by_type: dict
    missed: list[dict]
    attendance_rate: float | None  # None: nobody was expected at any meeting
    score: float
    due_soon: list[dict]


def branch_score(rules: Rules, ratio: float, rate: float | None) -> float:
    """Branch score = compliance weight × compliance + attendance weight × attendance rate
    (70 and 30 by default).

    When nobody was expected at any meeting of the year so far (no meeting held), there is no
    attendance rate (null) and the attendance term adds nothing: the score is the compliance
    term alone (at most 70 by default). Counting "nothing expected" as a perfect rate of 1.0
    made a branch that did nothing score 100 in January (nothing required yet, so compliance
    1.0) and outrank one that met its slot with 8 of 10 present (94); scaling the compliance
    weight up to 100 in its place would do the same. With the term left out, a branch that
    held nothing never outranks one with the same compliance that held meetings."""
    weight_c, weight_a = rules.branch_score_weights
    return round(weight_c * ratio + (weight_a * rate if rate is not None else 0.0), 2)


def compliance(rules: Rules, branch: Branch, meetings: list[MeetingFacts], year: int,
               as_of: date, closed: bool = False) -> Compliance:
    """SPEC §3: `required` = slots whose period has ended plus current ones already met;
    `met` = the met ones among them; `held` = valid meetings held; compliance = met /
    required (1.0 when nothing is required yet); attendance rate = present / expected over
    the year's meetings that were not cancelled, host-branch members only (None when nobody
    was expected); branch score: `branch_score`. `closed`: see `slots`."""
    owed = slots(rules, branch, meetings, year, as_of, closed)
    required = [s for s in owed if s.required]
    by_type: dict = {}
    for slot in owed:
        entry = by_type.setdefault(slot.type, {"required": 0, "met": 0, "held": 0})
        entry["required"] += slot.required
        entry["met"] += slot.required and slot.met
    in_year = [m for m in meetings if m.held_on.year == year and m.held_on <= as_of]
    for meeting in in_year:
        if meeting.valid and meeting.type in by_type:
            by_type[meeting.type]["held"] += 1
    held = sum(1 for m in in_year if m.valid)
    met = sum(1 for s in required if s.met)
    ratio = met / len(required) if required else 1.0
    counted = [m for m in in_year if not m.cancelled]
    expected = sum(m.expected for m in counted)
    rate = sum(m.present for m in counted) / expected if expected else None
    missed = [{"type": s.type, "period": s.period.label, "group_id": s.group_id}
              for s in owed if s.ended and not s.met]
    soon = as_of + timedelta(days=rules.due_soon_days)
    due_soon = [{"type": s.type, "period": s.period.label, "group_id": s.group_id,
                 "due": s.period.end.isoformat()}
                for s in owed if not s.ended and not s.met and s.period.end <= soon]
    return Compliance(len(required), met, held, round(ratio, 4), by_type, missed,
                      None if rate is None else round(rate, 4), branch_score(rules, ratio, rate),
                      due_soon)


def alerts_apply(branch: Branch, day: date) -> bool:
    """Alerts look forward from the day a branch is registered (SPEC §3): something that
    ended or fell due before then raises nothing (onboarding in November raises nothing about
    January), though it still counts in the figures. A branch whose registration day is not
    known is treated as registered long ago."""
    return branch.registered_on is None or day >= branch.registered_on


def group_alerts_apply(branch: Branch, group_id: str | None, day: date) -> bool:
    """The same for one group's slots, from the day the group was registered."""
    since = dict(branch.groups_registered).get(group_id) if group_id else None
    return since is None or day >= since


def overdue(rules: Rules, branch: Branch, meetings: list[MeetingFacts], year: int,
            as_of: date, closed: bool = False) -> list[dict]:
    """Slots whose period ended unmet, for alerts (`alerts_apply` to their last day)."""
    return [{"type": s.type, "period": s.period.label, "group_id": s.group_id,
             "ended": s.period.end.isoformat()}
            for s in slots(rules, branch, meetings, year, as_of, closed)
            if s.ended and not s.met and alerts_apply(branch, s.period.end)
            and group_alerts_apply(branch, s.group_id, s.period.end)]


def due_soon(rules: Rules, branch: Branch, meetings: list[MeetingFacts], year: int,
             as_of: date) -> list[dict]:
    """Slots of a current period that ends within `due_soon_days` and still unmet, for the
    事前提醒 (`branch_due_soon`): only for a branch registered by `as_of` (alerts look forward
    from registration, `alerts_apply`)."""
    if not alerts_apply(branch, as_of):
        return []
    return compliance(rules, branch, meetings, year, as_of).due_soon


def silence(rules: Rules, last_meeting_on: date | None, registered_on: date | None,
            as_of: date) -> int | None:
    """Days without any meeting held, counted from the last one (or from registration when
    there was none); None while shorter than `silent_branch_days`."""
    since = last_meeting_on or registered_on
    if since is None:
        return None
    days = (as_of - since).days
    return days if days >= rules.silent_branch_days else None


def light(rules: Rules, ratio: float, silent: bool, due_soon: bool) -> str:
    """三色预警 (SPEC §3)."""
    if silent or ratio < rules.red_below:
        return "red"
    if ratio < rules.yellow_below or due_soon:
        return "yellow"
    return "green"


# -- members at risk ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Month:
    """A member's complete month: meetings expected at, attended (present or remote at any
    meeting, or a heart talk), on leave from."""

    month: str  # 2026-03
    expected: int = 0
    attended: int = 0
    leave: int = 0

    @property
    def status(self) -> str:
        if self.attended:
            return "attended"
        if self.expected and self.leave < self.expected:
            return "missed"
        return "neutral"


def streak(months: list[Month]) -> list[str]:
    """The missed months back to the newest attended one, newest first, skipping neutral
    months (SPEC §3: Party Constitution Art. 9)."""
    missed = []
    for month in sorted(months, key=lambda m: m.month, reverse=True):
        if month.status == "attended":
            break
        if month.status == "missed":
            missed.append(month.month)
    return missed


def risk_level(rules: Rules, missed: int) -> str | None:
    """The highest level whose threshold the streak reaches."""
    level = None
    for months, name in rules.at_risk_levels:
        if missed >= months:
            level = name
    return level


def levels_reached(rules: Rules, missed: int) -> list[str]:
    return [name for months, name in rules.at_risk_levels if missed >= months]


def complete_months_before(as_of: date, since: date | None, limit: int = 36) -> list[str]:
    """The complete months before `as_of`'s month, newest first, back to `since`'s month."""
    year, month = as_of.year, as_of.month
    out = []
    for _ in range(limit):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        if since is not None and (year, month) < (since.year, since.month):
            break
        out.append(f"{year}-{month:02d}")
    return out


# -- rankings and unevenness ---------------------------------------------------------------------


def ranked(items: list[tuple[str, float]]) -> list[tuple[int, str, float]]:
    """(rank, id, score), best first; ties share a rank (1, 2, 2, 4); ids break ties in the
    order only."""
    out = []
    for position, (ident, score) in enumerate(sorted(items, key=lambda x: (-x[1], x[0])), 1):
        rank = out[-1][0] if out and out[-1][2] == score else position
        out.append((rank, ident, score))
    return out


def unevenness(rules: Rules, branches: list[tuple[str, float]]) -> list[dict]:
    """Per branch category: branches, mean, min and max compliance, and how many are below
    the threshold (the seed's "unevenness" made visible)."""
    by_category: dict[str, list[float]] = {}
    for category, ratio in branches:
        by_category.setdefault(category or "other", []).append(ratio)
    return [{"category": category, "branches": len(values), "mean": round(fmean(values), 4),
             "min": min(values), "max": max(values),
             "below_0_6": sum(1 for v in values if v < rules.unevenness_threshold)}
            for category, values in sorted(by_category.items())]
