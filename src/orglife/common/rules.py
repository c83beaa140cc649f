"""The rules file (ORGLIFE_RULES, default src/orglife/rules.yaml), loaded and checked once.

Services read rules only through `Rules`; a county changes the YAML, never the code.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from functools import cached_property, lru_cache
from pathlib import Path

import yaml
from nameko.extensions import DependencyProvider

from .config import DEFAULT_RULES, DEFAULT_TZ
from .vocabulary import ACTIVITY_KINDS, MEETING_TYPES

EXPECTED_KINDS = ("committee_members", "group_members", "branch_members")
QUORUM_BASES = ("voting_members", "committee_members")


log = logging.getLogger(__name__)


class RulesError(ValueError):
    pass


@dataclass(frozen=True)
class Quorum:
    more_than: float
    of: str

    def needed(self, eligible: int) -> int:
        """Smallest head count that is more than `more_than` of `eligible` (in decimal, so
        that 0.29 of 100 needs 30, not 29)."""
        return int(Decimal(str(self.more_than)) * eligible) + 1 if eligible else 1


@dataclass(frozen=True)
class ItemPoints:
    """Points for one kind of participation, and the yearly cap on its positive points."""
    points: int
    cap: int


@dataclass(frozen=True)
class Requirement:
    """A meeting type a branch owes: `at_least` valid meetings `per` period (one slot per
    group of the branch when `per_group`)."""
    type: str
    at_least: int
    per: str  # month | quarter | year
    per_group: bool = False


@dataclass(frozen=True)
class Rules:
    raw: dict

    # -- identity --------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """Named on every figure computed with these rules."""
        if self.raw.get("version"):
            return str(self.raw["version"])
        import hashlib
        import json
        return "sha1:" + hashlib.sha1(json.dumps(self.raw, sort_keys=True, default=str)
                                      .encode()).hexdigest()[:10]

    @property
    def digest(self) -> str:
        """The SHA-1 of what figures are computed from (every section but `notifications`),
        whatever the version says: an edit that forgot to change the version changes it."""
        import hashlib
        import json
        scored = {k: v for k, v in self.raw.items() if k != "notifications"}
        return hashlib.sha1(json.dumps(scored, sort_keys=True, default=str).encode()
                            ).hexdigest()

    # -- what a branch owes ------------------------------------------------------------------
    @property
    def requirements(self) -> tuple[Requirement, ...]:
        return tuple(Requirement(t, int(r.get("at_least", 1)), r["per"], bool(r.get("per_group")))
                     for t, r in self.required_meetings.items())

    # -- assessment points -------------------------------------------------------------------
    @property
    def base_points(self) -> int:
        return int(self.raw["points"]["base"])

    def attendance_points(self, meeting_type: str) -> ItemPoints:
        rule = self.raw["points"]["attendance"].get(meeting_type) or {"points": 0, "cap": 0}
        return ItemPoints(int(rule["points"]), int(rule["cap"]))

    def activity_points(self, kind: str) -> ItemPoints:
        rule = self.raw["points"]["activities"].get(kind) or {"points": 0, "cap": 0}
        return ItemPoints(int(rule["points"]), int(rule["cap"]))

    @cached_property
    def point_table(self) -> dict[str, tuple[int, int | None]]:
        """Cap bucket (`meeting:<type>`, `activity:<kind>`, `absence`, `leave`) → (points,
        yearly cap on positive points or None), computed once: scoring reads it per line."""
        table: dict[str, tuple[int, int | None]] = {
            f"meeting:{t}": (r.points, r.cap) for t in MEETING_TYPES
            for r in [self.attendance_points(t)]}
        table.update({f"activity:{k}": (r.points, r.cap) for k in ACTIVITY_KINDS
                      for r in [self.activity_points(k)]})
        table["absence"] = (self.absence_points, None)
        table["leave"] = (self.leave_points, None)
        return table

    @property
    def absence_points(self) -> int:
        return int(self.raw["points"]["unexcused_absence"])

    @property
    def leave_points(self) -> int:
        return int(self.raw["points"].get("leave", 0))

    @property
    def clamp(self) -> tuple[int, int]:
        low, high = self.raw["points"].get("clamp", [0, 100])
        return int(low), int(high)

    @property
    def grades(self) -> tuple[tuple[int, str], ...]:
        """(lowest score, grade), best first."""
        return tuple(sorted(((int(g["from"]), g["grade"]) for g in self.raw["grades"]),
                            reverse=True))

    @property
    def recommendations(self) -> tuple[tuple[int, str], ...]:
        """(lowest score, recommendation) for probationary members, best first."""
        return tuple(sorted(((int(g["from"]), g["recommendation"])
                             for g in self.raw["probationary_recommendation"]), reverse=True))

    # -- branches ------------------------------------------------------------------------------
    @property
    def branch_score_weights(self) -> tuple[float, float]:
        weights = self.raw["branch_score"]
        return float(weights["compliance_weight"]), float(weights["attendance_weight"])

    @property
    def red_below(self) -> float:
        return float(self.raw.get("lights", {}).get("red_below", 0.6))

    @property
    def yellow_below(self) -> float:
        return float(self.raw.get("lights", {}).get("yellow_below", 0.8))

    @property
    def due_soon_days(self) -> int:
        return int(self.raw.get("due_soon_days", 7))

    @property
    def silent_branch_days(self) -> int:
        return int(self.raw.get("silent_branch_days", 30))

    @property
    def unevenness_threshold(self) -> float:
        return float(self.raw.get("unevenness_threshold", 0.6))

    # -- notifications ---------------------------------------------------------------------------
    @property
    def notifications(self) -> dict:
        return self.raw.get("notifications") or {}

    @property
    def meeting_reminder_hours(self) -> float:
        return float(self.notifications.get("meeting_reminder_hours", 24))

    @property
    def quiet_hours(self) -> tuple[time, time] | None:
        """(start, end) in county time, e.g. 22:00 and 07:00; None: no quiet hours."""
        return parse_quiet_hours(self.notifications.get("quiet_hours", "22:00-07:00"))

    def urgent(self, kind: str, level: str | None = None) -> bool:
        marks = set(self.notifications.get("urgent", ["branch_overdue",
                                                       "member_at_risk:review"]))
        return kind in marks or (level is not None and f"{kind}:{level}" in marks)

    @property
    def absence_followup_delay_seconds(self) -> float:
        return 60.0 * float(self.notifications.get("absence_followup_delay_minutes", 10))

    @property
    def reply_within_days(self) -> int:
        return int(self.notifications.get("reply_within_days", 7))

    @property
    def followups_within_days(self) -> int:
        return int(self.notifications.get("followups_within_days", 14))

    @property
    def attempts_per_channel(self) -> int:
        return int(self.notifications.get("attempts_per_channel", 5))

    @property
    def backoff_seconds(self) -> tuple[float, ...]:
        return tuple(60.0 * float(m) for m in self.notifications.get("backoff_minutes",
                                                                     [1, 5, 30, 120]))

    # -- members at risk -----------------------------------------------------------------------
    @property
    def at_risk_levels(self) -> tuple[tuple[int, str], ...]:
        """(missed months, level), fewest first."""
        return tuple(sorted((int(r["months"]), r["level"]) for r in self.raw["at_risk_levels"]))

    @property
    def required_meetings(self) -> dict:
        return self.raw["required_meetings"]

    def expected_for(self, meeting_type: str) -> str:
        table = self.raw["expected_attendees"]
        return table.get(meeting_type, table["default"])

    def quorum_for(self, meeting_type: str) -> Quorum | None:
        rule = self.raw.get("quorum", {}).get(meeting_type)
        return Quorum(float(rule["more_than"]), rule["of"]) if rule else None

    @property
    def intake_wait_seconds(self) -> float:
        return float(self.raw.get("intake_wait_seconds", 300))


SECTIONS = ("version", "required_meetings", "expected_attendees", "quorum",
            "intake_wait_seconds", "points", "grades", "probationary_recommendation",
            "branch_score", "lights", "due_soon_days", "silent_branch_days",
            "unevenness_threshold", "at_risk_levels", "notifications")


def validate(raw: dict, tz: str | None = None) -> Rules:
    """Check a rules file. The county's time zone is ORGLIFE_TZ (one source of truth); copies
    of the rules file made before that still carry a `timezone:` key, which is accepted (and
    ignored) when it says the same as ORGLIFE_TZ, and refused when it contradicts it."""
    if not isinstance(raw, dict):
        raise RulesError("the rules file must be a YAML mapping")
    raw = dict(raw)
    if "timezone" in raw:
        named = raw.pop("timezone")
        if named != (tz or DEFAULT_TZ):
            raise RulesError(f"rules: timezone {named!r} contradicts ORGLIFE_TZ "
                             f"{tz or DEFAULT_TZ!r}; the time zone is set by ORGLIFE_TZ alone: "
                             "remove the key")
        log.warning("rules: the timezone key is ignored (ORGLIFE_TZ sets it); remove it")
    for key in raw:
        if key not in SECTIONS:
            raise RulesError(f"rules: unknown section {key!r} (known: {', '.join(SECTIONS)})")
    for key in ("required_meetings", "expected_attendees", "quorum", "points"):
        if key not in raw:
            raise RulesError(f"rules: missing section {key!r}")
    for meeting_type, rule in raw["required_meetings"].items():
        if meeting_type not in MEETING_TYPES:
            raise RulesError(f"rules.required_meetings: unknown meeting type {meeting_type!r}")
        if rule.get("per") not in ("month", "quarter", "year"):
            raise RulesError(f"rules.required_meetings.{meeting_type}.per: month, quarter or year")
    if "default" not in raw["expected_attendees"]:
        raise RulesError("rules.expected_attendees: needs a default")
    for meeting_type, kind in raw["expected_attendees"].items():
        if kind not in EXPECTED_KINDS:
            raise RulesError(f"rules.expected_attendees.{meeting_type}: one of {EXPECTED_KINDS}")
    for meeting_type, rule in raw["quorum"].items():
        if rule.get("of") not in QUORUM_BASES or not 0 <= float(rule.get("more_than", -1)) < 1:
            raise RulesError(f"rules.quorum.{meeting_type}: more_than in [0, 1) of {QUORUM_BASES}")
    _check_points(raw)
    _check_notifications(raw.get("notifications") or {})
    return Rules(raw)


def _check_notifications(section: dict) -> None:
    parse_quiet_hours(section.get("quiet_hours", "22:00-07:00"))
    try:
        if int(section.get("attempts_per_channel", 5)) < 1:
            raise RulesError("rules.notifications.attempts_per_channel: at least 1")
        float(section.get("meeting_reminder_hours", 24))
        float(section.get("absence_followup_delay_minutes", 10))
        int(section.get("followups_within_days", 14))
        int(section.get("reply_within_days", 7))
        [float(m) for m in section.get("backoff_minutes", [1, 5, 30, 120])]
    except (TypeError, ValueError):
        raise RulesError("rules.notifications: a number is not a number") from None


def parse_quiet_hours(text) -> tuple[time, time] | None:
    """"22:00-07:00" → (22:00, 07:00); None or "" → None; anything else → RulesError."""
    if not text:
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in str(text).split("-"))
    except ValueError:
        raise RulesError(f"quiet hours {text!r}: HH:MM-HH:MM, e.g. 22:00-07:00") from None
    return start, end


def _check_points(raw: dict) -> None:
    """The scoring sections: every number present and of the right kind, so a county's edit
    fails at start with the key named, not in the middle of a recalculation."""
    points = raw["points"]
    try:
        int(points["base"]), int(points["unexcused_absence"])
        for section, codes in (("attendance", MEETING_TYPES), ("activities", ACTIVITY_KINDS)):
            for code, rule in (points.get(section) or {}).items():
                if code not in codes:
                    raise RulesError(f"rules.points.{section}: unknown {code!r}")
                if int(rule["cap"]) < 0:
                    raise RulesError(f"rules.points.{section}.{code}.cap: not negative")
                int(rule["points"])
        low, high = points.get("clamp", [0, 100])
        if int(low) > int(high):
            raise RulesError("rules.points.clamp: [low, high]")
        for section, key in (("grades", "grade"),
                             ("probationary_recommendation", "recommendation")):
            entries = raw.get(section) or []
            if not entries or min(int(e["from"]) for e in entries) > int(low):
                raise RulesError(f"rules.{section}: needs an entry from the lowest score")
            for entry in entries:
                str(entry[key])
        for entry in raw.get("at_risk_levels") or []:
            if int(entry["months"]) < 1:
                raise RulesError("rules.at_risk_levels: months from 1")
        float(raw["branch_score"]["compliance_weight"])
        float(raw["branch_score"]["attendance_weight"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RulesError(f"rules: a scoring rule is missing or not a number ({exc!r})") from None


@lru_cache(maxsize=8)
def load_rules(path: str | Path | None = None, tz: str | None = None) -> Rules:
    path = Path(path or DEFAULT_RULES)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path}: {exc}") from None
    return validate(raw, tz)


class RulesProvider(DependencyProvider):
    """The rules file named in the config (ORGLIFE_RULES), read and checked once per
    container: a bad rules file stops the service at start, not at the first meeting."""

    def setup(self):
        config = self.container.config
        self.rules = load_rules(config.get("ORGLIFE_RULES"), config.get("ORGLIFE_TZ"))

    def get_dependency(self, worker_ctx):
        return self.rules
