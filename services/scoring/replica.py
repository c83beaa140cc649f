"""scoring's own copy of organizations, members, meetings and activities, built only from
members' and meetings' events, and the tallies it keeps up to date with them.

The highest version (members) or revision (meetings) wins, so duplicates and reordering change
nothing; an amendment replaces a meeting's attendance and a cancellation takes it out of the
tallies. Each batch records what it touched in `Changes`; the service marks those members
and branches stale, to be recomputed in bulk a moment later (registry.mark_dirty, drain). `MEMBERS_HANDLERS` and
`MEETINGS_HANDLERS` are the consumers' dispatch tables (checked against orglife/system.py).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import delete, select

from orglife.common.db import UnitOfWork
from orglife.common.envelope import Envelope

from .models import ActivityCopy, AttendanceCopy, BranchStat, MeetingCopy, MemberMonth, \
    MemberState, MemberTally, OrgCopy
from .tallies import add_counts, replacing_upsert


@dataclass
class Changes:
    """What a batch of events touched, and the tally deltas it owes."""

    members: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))  # year →
    branches: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    risk_members: set[str] = field(default_factory=set)
    meetings: dict[str, dict] = field(default_factory=dict)  # the batch's, newest revision
    activities: dict[str, dict] = field(default_factory=dict)
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
    """organization_registered and organization_updated: the whole organization, the highest
    version wins (an older one arriving late changes nothing)."""
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
        if current is not None:
            # A rename or a new category (organization_updated): the figures stored for
            # other years carry the old ones too (rankings and unevenness read the copy).
            for stored_year in uow.session.scalars(select(BranchStat.year).where(
                    BranchStat.branch_id == data["org_id"])):
                changes.branches[stored_year].add(data["org_id"])
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
    "organization_updated": apply_organization,
    "member_registered": apply_member,
    "member_updated": apply_member,
    "member_transferred": apply_member,
}


# -- meetings' events ------------------------------------------------------------------------------
# A batch of meeting events is applied in bulk (a few statements for the whole batch, not a few
# per meeting): the handlers only keep, per meeting, the highest revision of the batch, and
# `apply_pending` compares those with the copy and replaces what is older.
def take_meeting(uow: UnitOfWork, envelope: Envelope, tz, changes: Changes) -> None:
    data = envelope.data
    kept = changes.meetings.get(data["meeting_id"])
    if kept is None or kept["revision"] < data["revision"]:
        changes.meetings[data["meeting_id"]] = data


def take_activity(uow: UnitOfWork, envelope: Envelope, tz, changes: Changes) -> None:
    changes.activities.setdefault(envelope.data["activity_id"], envelope.data)


MEETING_COLUMNS = ("meeting_id", "revision", "branch_id", "group_id", "type", "held_at",
                   "held_on", "year", "logged", "cancelled", "quorum_met", "expected", "present")


def apply_pending(session, changes: Changes, tz) -> None:
    """The batch's meetings and activities into the copy and the tallies."""
    if changes.meetings:
        _apply_meetings(session, changes, tz)
    if changes.activities:
        _apply_activities(session, changes, tz)
    changes.meetings.clear()
    changes.activities.clear()


def _apply_meetings(session, changes: Changes, tz) -> None:
    pending = changes.meetings
    copy = MeetingCopy.__table__
    stored = {}
    for chunk in _chunks(list(pending)):
        query = select(copy.c.meeting_id, copy.c.revision, copy.c.branch_id, copy.c.type,
                       copy.c.held_on, copy.c.year, copy.c.logged, copy.c.cancelled
                       ).where(copy.c.meeting_id.in_(chunk))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()  # two instances apply one meeting in turn
        stored.update({row.meeting_id: row for row in session.execute(query)})
    newer = {mid: data for mid, data in pending.items()
             if mid not in stored or stored[mid].revision < data["revision"]}
    if not newer:
        return
    replaced = [mid for mid in newer if mid in stored]
    for chunk in _chunks(replaced):
        old_rows = defaultdict(list)
        for meeting_id, member_id, status, expected in session.execute(
                select(AttendanceCopy.meeting_id, AttendanceCopy.member_id,
                       AttendanceCopy.status, AttendanceCopy.expected)
                .where(AttendanceCopy.meeting_id.in_(chunk))):
            old_rows[meeting_id].append((member_id, status, expected))
        for meeting_id in chunk:
            old = stored[meeting_id]
            if old.logged and not old.cancelled:
                _tally(changes, old.type, old.held_on, old.year, old_rows[meeting_id], -1)
            changes.branches[old.year].add(old.branch_id)
        session.execute(delete(AttendanceCopy).where(AttendanceCopy.meeting_id.in_(chunk)))
    meetings, attendance = [], []
    for meeting_id, data in newer.items():
        held_on = local_day(data["held_at"], tz)
        rows = data.get("attendance") or []
        host = [r for r in rows if r.get("expected")]
        logged = data.get("status") == "logged"
        cancelled = bool(data.get("cancelled"))
        meetings.append({
            "meeting_id": meeting_id, "revision": data["revision"],
            "branch_id": data["branch_id"], "group_id": data.get("group_id"),
            "type": data["type"], "held_at": instant(data["held_at"]), "held_on": held_on,
            "year": held_on.year, "logged": logged, "cancelled": cancelled,
            "quorum_met": data.get("quorum_met"), "expected": len(host),
            "present": sum(1 for r in host if r["status"] == "present")})
        attendance += [{"meeting_id": meeting_id, "member_id": r["member_id"],
                        "status": r["status"], "remote": bool(r.get("remote")),
                        "expected": bool(r.get("expected"))} for r in rows]
        if logged and not cancelled:
            _tally(changes, data["type"], held_on, held_on.year,
                   [(r["member_id"], r["status"], bool(r.get("expected"))) for r in rows], +1)
        changes.branches[held_on.year].add(data["branch_id"])
    session.execute(replacing_upsert(copy, session.get_bind().dialect.name, ("meeting_id",)),
                    meetings)
    if attendance:
        session.execute(AttendanceCopy.__table__.insert(), attendance)


def _tally(changes: Changes, meeting_type: str, held_on: date, year: int, rows,
           sign: int) -> None:
    bucket = f"meeting:{meeting_type}"
    month = held_on.strftime("%Y-%m")
    for member_id, status, expected in rows:
        changes.tally[(member_id, year, bucket, status)] += sign
        counts = changes.months[(member_id, month)]
        counts[0] += sign if expected else 0
        counts[1] += sign if status == "present" else 0
        counts[2] += sign if expected and status == "leave" else 0
        changes.members[year].add(member_id)
        changes.risk_members.add(member_id)


def _apply_activities(session, changes: Changes, tz) -> None:
    """Activities are never amended: the first copy is the copy."""
    pending = changes.activities
    known = set()
    for chunk in _chunks(list(pending)):
        known.update(session.scalars(select(ActivityCopy.activity_id).where(
            ActivityCopy.activity_id.in_(chunk))))
    rows = []
    for activity_id, data in pending.items():
        if activity_id in known:
            continue
        held_on = local_day(data["held_at"], tz)
        rows.append({"activity_id": activity_id, "member_id": data["member_id"],
                     "branch_id": data.get("branch_id"), "kind": data["kind"],
                     "held_on": held_on, "year": held_on.year})
        changes.tally[(data["member_id"], held_on.year, f"activity:{data['kind']}", "done")] += 1
        if data["kind"] == "heart_talk":  # a heart talk makes a month attended (SPEC §3)
            changes.months[(data["member_id"], held_on.strftime("%Y-%m"))][1] += 1
            changes.risk_members.add(data["member_id"])
        changes.members[held_on.year].add(data["member_id"])
    if rows:
        session.execute(ActivityCopy.__table__.insert(), rows)


def _chunks(items, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start:start + size]


MEETINGS_HANDLERS = {
    "meeting_logged": take_meeting,
    "meeting_amended": take_meeting,
    "meeting_cancelled": take_meeting,
    "activity_logged": take_activity,
}
