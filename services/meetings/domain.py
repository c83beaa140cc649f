"""meetings' domain rules as plain functions: expected attendees, attendance, quorum, checks.

No nameko, no session: the service layer loads the branch's roster as it was on the meeting's
date and passes plain `Person` values in; the rules file decides who is expected and what a
quorum is (SPEC §3).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from orglife.common.rules import Rules
from orglife.common.vocabulary import ACTIVE_STATUSES


@dataclass(frozen=True)
class Person:
    """A member as they were at a given instant (from meetings' copy of members)."""

    member_id: str
    branch_id: str
    group_id: str | None
    status: str
    committee_member: bool
    no_vote: bool
    joined: bool = True  # False: known, but not yet a member at that instant

    @property
    def active(self) -> bool:
        return self.joined and self.status in ACTIVE_STATUSES

    @property
    def voting(self) -> bool:
        return self.status == "formal" and not self.no_vote


def add_error(errors: dict, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


@dataclass
class Findings:
    """What checking a report found: problems that refuse it as it is (`errors`), and ids
    meetings does not know (yet), kept apart so that intake can tell "wait for members'
    events" from "reject" without reading messages (`unknown`: field → (what, id))."""

    errors: dict = field(default_factory=dict)
    unknown: dict = field(default_factory=dict)

    def error(self, key: str, message: str) -> None:
        add_error(self.errors, key, message)

    def not_known(self, key: str, what: str, ident: str) -> None:
        self.unknown[key] = (what, ident)

    def merge(self, other: "Findings") -> None:
        for key, messages in other.errors.items():
            self.errors.setdefault(key, []).extend(messages)
        self.unknown.update(other.unknown)

    @property
    def missing(self) -> list[str]:
        """The unknown ids, in the order they were found."""
        return list(dict.fromkeys(ident for _, ident in self.unknown.values()))

    @property
    def only_unknown(self) -> bool:
        """Nothing but unknown ids stands in the way: worth waiting for their events."""
        return bool(self.unknown) and not self.errors

    def all_errors(self) -> dict:
        """Every problem as {field: [messages]}, unknown ids included."""
        out = {key: list(messages) for key, messages in self.errors.items()}
        for key, (what, ident) in self.unknown.items():
            out.setdefault(key, []).insert(0, f"unknown {what} {ident!r}")
        return out

    def __bool__(self) -> bool:
        return bool(self.errors or self.unknown)


def expected_attendees(rules: Rules, meeting_type: str, group_id: str | None,
                       roster: list[Person]) -> list[Person]:
    """Who the branch owes at this meeting; `roster` = the branch's active members then."""
    kind = rules.expected_for(meeting_type)
    if kind == "committee_members":
        return [p for p in roster if p.committee_member]
    if kind == "group_members":
        return [p for p in roster if p.group_id == group_id]
    return list(roster)


def check_placement(meeting: dict, branch, group, roster: list[Person]) -> Findings:
    """Branch and group exist and fit the meeting type; `branch`/`group` are org copies."""
    found = Findings()
    if branch is None:
        found.not_known("branch_id", "branch", meeting["branch_id"])
    elif branch.kind != "branch":
        found.error("branch_id", f"{meeting['branch_id']!r} is a {branch.kind}, not a branch")
    group_id = meeting.get("group_id")
    if meeting["type"] == "group" and not group_id:
        found.error("group_id", "a group meeting needs its group")
    if group_id:
        if group is None:
            found.not_known("group_id", "group", group_id)
        elif group.kind != "group":
            found.error("group_id", f"{group_id!r} is a {group.kind}, not a group")
        elif branch is not None and group.parent_id != branch.org_id:
            found.error("group_id", f"group {group_id!r} is not in branch {branch.org_id!r}")
    if (meeting["type"] == "committee" and branch is not None and branch.kind == "branch"
            and not any(p.committee_member for p in roster)):
        found.error("type", "a committee meeting needs a branch with committee members")
    return found


def check_time(held_at: datetime, now: datetime, logged: bool) -> dict:
    if logged and held_at > now:
        return {"held_at": ["a logged meeting cannot be in the future"]}
    if not logged and held_at <= now:
        return {"held_at": ["a scheduled meeting must be in the future"]}
    return {}


@dataclass
class AttendanceResult:
    rows: list[dict]
    found: Findings  # unknown members: intake waits for them
    # listed people who were not members on the meeting's date, and a warning for each
    non_members: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)


def build_attendance(rules: Rules, meeting_type: str, branch_id: str, group_id: str | None,
                     roster: list[Person], listed: list[dict],
                     known: dict[str, Person]) -> AttendanceResult:
    """The complete attendance list: every expected member, absent unless listed.

    `known` maps listed member ids to their state at the meeting (any branch). A listed member
    of another branch is a visitor: recorded for their own record, never for this branch's
    quorum or attendance rate.

    A meeting that happened is kept whoever else was in the room: a listed person who was not
    a member on that date (joined later, as activists invited to a meeting often do, or
    already removed) is a non-member attendee. They are kept apart in `non_members`, count
    for nothing (no line in anyone's record, not in the quorum or the attendance rate), and
    each gets a warning naming the entry, so that the other members' attendance is not lost.
    """
    found = Findings()
    seen: dict[str, int] = {}
    rows: dict[str, dict] = {}
    non_members: list[dict] = []
    warnings: list[dict] = []
    expected_ids = {p.member_id for p in expected_attendees(rules, meeting_type, group_id, roster)}
    for position, entry in enumerate(listed):
        member_id = entry["member_id"]
        key = f"attendance.{position}.member_id"
        if member_id in seen:
            found.error(key, f"member {member_id!r} is listed twice "
                               f"(also at attendance.{seen[member_id]})")
            continue
        seen[member_id] = position
        person = known.get(member_id)
        if person is None:
            found.not_known(key, "member", member_id)
            continue
        if not person.active:
            why = ("was not yet a member on that date" if not person.joined
                   else f"was {person.status} on that date")
            non_members.append({"member_id": member_id, "status": entry["status"],
                                "remote": entry.get("remote", False)})
            # code, member_id and member_status: for readers that word it themselves (the
            # dashboard says it in Chinese); message: for the CLI and logs
            warnings.append({"field": key, "code": "non_member_attendee",
                             "member_id": member_id,
                             "member_status": person.status if person.joined else None,
                             "message": f"{member_id!r} {why}: recorded as a "
                             "non-member attendee, counting for nothing"})
            continue
        rows[member_id] = {
            "member_id": member_id, "status": entry["status"], "remote": entry.get("remote", False),
            "expected": member_id in expected_ids, "visiting": person.branch_id != branch_id,
        }
    for member_id in sorted(expected_ids - rows.keys()):
        if member_id not in seen:
            rows[member_id] = {"member_id": member_id, "status": "absent", "remote": False,
                               "expected": True, "visiting": False}
    return AttendanceResult(sorted(rows.values(), key=lambda r: r["member_id"]), found,
                            non_members, warnings)


def quorum(rules: Rules, meeting_type: str, roster: list[Person], rows: list[dict]) -> dict:
    """Whether the meeting counts: more than the rule's share of its eligible members present."""
    rule = rules.quorum_for(meeting_type)
    if rule is None:
        return {"met": True, "rule": None}
    if rule.of == "voting_members":
        eligible = {p.member_id for p in roster if p.voting}
        label = "voting members"
    else:
        eligible = {p.member_id for p in roster if p.committee_member}
        label = "committee members"
    present = sum(1 for r in rows if r["member_id"] in eligible and r["status"] == "present")
    needed = rule.needed(len(eligible))
    met = present >= needed
    out = {"met": met, "rule": f"more than {rule.more_than:g} of {label}",
           "eligible": len(eligible), "needed": needed, "present": present}
    if not met:
        out["reason"] = (f"{present} of {len(eligible)} {label} present; "
                         f"{needed} needed (more than {rule.more_than:g})")
    return out


def attendance_summary(rows: list[dict]) -> dict:
    expected = [r for r in rows if r["expected"]]
    return {
        "expected": len(expected),
        "present": sum(1 for r in rows if r["status"] == "present"),
        "leave": sum(1 for r in rows if r["status"] == "leave"),
        "absent": sum(1 for r in rows if r["status"] == "absent"),
        "remote": sum(1 for r in rows if r["status"] == "present" and r["remote"]),
        "visiting": sum(1 for r in rows if r["visiting"]),
    }


def report_digest(report: dict) -> str:
    """Fingerprint of what a caller reported, to tell a repeat from a different report."""
    text = json.dumps(report, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
