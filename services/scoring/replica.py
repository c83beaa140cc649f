"""scoring's own copy of organizations, members, meetings and activities, built only from
members' and meetings' events, and the tallies it keeps up to date with them.

The highest version (members) or revision (meetings) wins, so duplicates and reordering change
nothing; an amendment replaces a meeting's attendance and a cancellation takes it out of the
tallies. Each handler records what it touched in `Changes`, so that the service recomputes
only those members and branches (registry.apply_changes). `MEMBERS_HANDLERS` and
`MEETINGS_HANDLERS` are the consumers' dispatch tables (checked against orglife/system.py).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import delete, select

from orglife.common.db import UnitOfWork
from orglife.common.envelope import Envelope

from .models import ActivityCopy, AttendanceCopy, MeetingCopy, MemberMonth, MemberState, \
    MemberTally, OrgCopy
from .tallies import add_counts


@dataclass
class Changes:
    """What a batch of events touched, and the tally deltas it owes."""

    members: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))  # year →
    branches: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    risk_members: set[str] = field(default_factory=set)
    tally: dict = field(default_factory=lambda: defaultdict(int))  # (member, year, bucket, status)
    months: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))

    def flush(self, session) -> None:
        """Write the accumulated deltas (one upsert per table), then forget them."""
        add_counts(session, MemberTally.__table__,
                   ("member_id", "year", "bucket", "status"), ("count",),
                   [(*key, n) for key, n in self.tally.items() if n])
        add_counts(session, MemberMonth.__table__, ("member_id", "month"),
                   ("expected", "attended", "leave"),
                   [(*key, *values) for key, values in self.months.items() if any(values)])
        self.tally.clear()
        self.months.clear()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local_day(text: str, tz) -> date:
    return instant(text).astimezone(tz).date()


# -- members' events -----------------------------------------------------------------------------
def apply_organization(uow: UnitOfWork, envelope: Envelope, tz, changes: Changes) -> None:
    data = envelope.data
    current = uow.session.get(OrgCopy, data["org_id"])
    if current is not None and current.version >= data["version"]:
        return
    values = dict(org_id=data["org_id"], name=data["name"], kind=data["kind"],
                  parent_id=data.get("parent_id"), category=data.get("category"),
                  path="/" + "/".join(data.get("path") or [data["org_id"]]) + "/",
                  registered_on=(local_day(data["registered_at"], tz)
                                 if data.get("registered_at") else None),
                  version=data["version"])
    if current is None:
        uow.session.add(OrgCopy(**values))
    else:
        for key, value in values.items():
            setattr(current, key, value)
    year = envelope_year(envelope, tz)
    if data["kind"] == "branch":
        changes.branches[year].add(data["org_id"])
    elif data["kind"] == "group" and data.get("parent_id"):
        changes.branches[year].add(data["parent_id"])  # a new group owes group meetings


def member_data(envelope: Envelope) -> dict:
    """Flat in every event; nested under "member" in member_transferred's schema version 1."""
    if envelope.event_type == "member_transferred" and envelope.schema_version == 1:
        return envelope.data["member"]
    return envelope.data


def apply_member(uow: UnitOfWork, envelope: Envelope, tz, changes: Changes) -> None:
    data = member_data(envelope)
    current = uow.session.get(MemberState, data["member_id"])
    if current is not None and current.version >= data["version"]:
        return
    year = envelope_year(envelope, tz)
    if current is not None:
        changes.branches[year].add(current.branch_id)  # committee and roster may change
    joined = data.get("joined_on")
    values = dict(member_id=data["member_id"], name=data.get("name") or "",
                  branch_id=data["branch_id"], group_id=data.get("group_id"),
                  status=data["status"], committee_member=bool(data.get("committee_member")),
                  joined_on=_day(joined), version=data["version"])
    if current is None:
        uow.session.add(MemberState(**values))
    else:
        for key, value in values.items():
            setattr(current, key, value)
    changes.members[year].add(data["member_id"])  # status decides grade or recommendation
    changes.branches[year].add(data["branch_id"])
    changes.risk_members.add(data["member_id"])


def _day(text) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


def envelope_year(envelope: Envelope, tz) -> int:
    return local_day(envelope.occurred_at, tz).year


MEMBERS_HANDLERS = {
    "organization_registered": apply_organization,
    "member_registered": apply_member,
    "member_updated": apply_member,
    "member_transferred": apply_member,
}


# -- meetings' events ------------------------------------------------------------------------------
def counted(meeting: MeetingCopy) -> bool:
    """Whether a meeting's attendance counts at all: held and logged, not cancelled."""
    return meeting.logged and not meeting.cancelled


def apply_meeting(uow: UnitOfWork, envelope: Envelope, tz, changes: Changes) -> None:
    """Replace the meeting by this revision unless a newer one is known; its old attendance
    leaves the tallies and the new one enters them."""
    data = envelope.data
    session = uow.session
    current = session.get(MeetingCopy, data["meeting_id"], with_for_update=True)
    if current is not None and current.revision >= data["revision"]:
        return
    if current is not None:
        old_rows = session.scalars(select(AttendanceCopy).where(
            AttendanceCopy.meeting_id == current.meeting_id)).all()
        if counted(current):
            _tally_meeting(changes, current, [(r.member_id, r.status, r.expected)
                                              for r in old_rows], -1)
        changes.branches[current.year].add(current.branch_id)
        session.execute(delete(AttendanceCopy).where(
            AttendanceCopy.meeting_id == current.meeting_id))
    else:
        current = MeetingCopy(meeting_id=data["meeting_id"])
        session.add(current)
    held_on = local_day(data["held_at"], tz)
    rows = data.get("attendance") or []
    host = [r for r in rows if r.get("expected")]
    current.revision = data["revision"]
    current.branch_id = data["branch_id"]
    current.group_id = data.get("group_id")
    current.type = data["type"]
    current.held_at = instant(data["held_at"])
    current.held_on = held_on
    current.year = held_on.year
    current.logged = data.get("status") == "logged"
    current.cancelled = bool(data.get("cancelled"))
    current.quorum_met = data.get("quorum_met")
    current.expected = len(host)
    current.present = sum(1 for r in host if r["status"] == "present")
    session.flush()
    if rows:
        session.execute(AttendanceCopy.__table__.insert(), [
            {"meeting_id": current.meeting_id, "member_id": r["member_id"],
             "status": r["status"], "remote": bool(r.get("remote")),
             "expected": bool(r.get("expected"))} for r in rows])
    if counted(current):
        _tally_meeting(changes, current, [(r["member_id"], r["status"], bool(r.get("expected")))
                                          for r in rows], +1)
    changes.branches[current.year].add(current.branch_id)


def _tally_meeting(changes: Changes, meeting: MeetingCopy, rows, sign: int) -> None:
    bucket = f"meeting:{meeting.type}"
    month = meeting.held_on.strftime("%Y-%m")
    for member_id, status, expected in rows:
        changes.tally[(member_id, meeting.year, bucket, status)] += sign
        counts = changes.months[(member_id, month)]
        counts[0] += sign if expected else 0
        counts[1] += sign if status == "present" else 0
        counts[2] += sign if expected and status == "leave" else 0
        changes.members[meeting.year].add(member_id)
        changes.risk_members.add(member_id)


def apply_activity(uow: UnitOfWork, envelope: Envelope, tz, changes: Changes) -> None:
    data = envelope.data
    if uow.session.get(ActivityCopy, data["activity_id"]) is not None:
        return  # activities are never amended: the first copy is the copy
    held_on = local_day(data["held_at"], tz)
    uow.session.add(ActivityCopy(activity_id=data["activity_id"], member_id=data["member_id"],
                                 branch_id=data.get("branch_id"), kind=data["kind"],
                                 held_on=held_on, year=held_on.year))
    changes.tally[(data["member_id"], held_on.year, f"activity:{data['kind']}", "done")] += 1
    if data["kind"] == "heart_talk":  # a heart talk makes a month attended (SPEC §3)
        changes.months[(data["member_id"], held_on.strftime("%Y-%m"))][1] += 1
        changes.risk_members.add(data["member_id"])
    changes.members[held_on.year].add(data["member_id"])


MEETINGS_HANDLERS = {
    "meeting_logged": apply_meeting,
    "meeting_amended": apply_meeting,
    "meeting_cancelled": apply_meeting,
    "activity_logged": apply_activity,
}
