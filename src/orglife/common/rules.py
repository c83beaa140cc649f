"""The rules file (ORGLIFE_RULES, default src/orglife/rules.yaml), loaded and checked once.

Services read rules only through `Rules`; a county changes the YAML, never the code.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import yaml
from nameko.extensions import DependencyProvider

from .config import DEFAULT_RULES, DEFAULT_TZ
from .vocabulary import MEETING_TYPES

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
class Rules:
    raw: dict

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


SECTIONS = ("required_meetings", "expected_attendees", "quorum", "intake_wait_seconds",
            "points", "grades", "probationary_recommendation", "branch_score",
            "silent_branch_days", "at_risk_levels")


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
    return Rules(raw)


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
