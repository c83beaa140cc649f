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
from functools import lru_cache

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from orglife.common.db import UnitOfWork
from orglife.common.envelope import Envelope

from . import domain
from .models import ActivityCopy, AttendanceCopy, BranchStat, MeetingCopy, MemberMonth, \
    MemberState, MemberTally, OrgCopy
from .tallies import add_counts, execute_many, newer_upsert

# Inserts built once: SQLAlchemy keeps a statement's cache key on the object, and a new
# insert() per meeting computed it again every time.
_NEW_ATTENDANCE = AttendanceCopy.__table__.insert()
_NEW_ACTIVITY = ActivityCopy.__table__.insert()


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
def insert_or_lock(session, model, values: dict):
    """The stored row of `values`' key, or None when there was none and `values` is now
    inserted. On PostgreSQL the stored row is read FOR UPDATE, so that two instances applying
    versions of one record do so in turn: the second compares its version with what the first
    committed, and an older version never overwrites a newer one. A row another instance is
    inserting at this moment is waited for (the conflicting INSERT waits), then read locked.
    SQLite needs no lock: its transactions take the write lock when they begin."""
    table = model.__table__
    dialect = session.get_bind().dialect.name
    if session.execute(_inserting(table, dialect), values).rowcount:
        return None
    key = tuple(values[c.name] for c in table.primary_key.columns)
    return session.get(model, key[0] if len(key) == 1 else key, populate_existing=True,
                       with_for_update=True if dialect == "postgresql" else None)


@lru_cache(maxsize=16)
def _inserting(table, dialect_name: str):
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def apply_organization(uow: UnitOfWork, envelope: Envelope, tz, changes: Changes) -> None:
    """organization_registered and organization_updated: the whole organization, the highest
    version wins (an older one arriving late changes nothing)."""
    data = envelope.data
    values = dict(org_id=data["org_id"], name=data["name"], kind=data["kind"],
                  parent_id=data.get("parent_id"), category=data.get("category"),
                  path="/" + "/".join(data.get("path") or [data["org_id"]]) + "/",
                  registered_on=(local_day(data["registered_at"], tz)
                                 if data.get("registered_at") else None),
                  version=data["version"])
    current = insert_or_lock(uow.session, OrgCopy, values)
    if current is not None:
        if current.version >= data["version"]:
            return
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
    joined = data.get("joined_on")
    values = dict(member_id=data["member_id"], name=data.get("name") or "",
                  branch_id=data["branch_id"], group_id=data.get("group_id"),
                  status=data["status"], committee_member=bool(data.get("committee_member")),
                  joined_on=_day(joined), version=data["version"])
    current = insert_or_lock(uow.session, MemberState, values)
    if current is not None and current.version >= data["version"]:
        return
    year = envelope_year(envelope, tz)
    if current is None or current.status != data["status"]:
        # the status decides grade or recommendation in every year scored (member_score
        # reads the current one): a member confirmed in January is rescored for last year too,
        # as a recalculation would
        for stored_year in uow.session.scalars(select(MemberTally.year).distinct().where(
                MemberTally.member_id == data["member_id"])):
            changes.members[stored_year].add(data["member_id"])
    if current is not None:
        changes.branches[year].add(current.branch_id)  # committee and roster may change
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


ATTENDANCE = ("meeting_id", "member_id", "status", "remote", "expected")
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
    """New meetings (nearly all of a burst) are inserted at once; the others are read locked
    (PostgreSQL) and replaced when the batch holds a higher revision: their old attendance
    leaves the tallies, the new one enters them. Tallies move only for rows actually written,
    so a meeting another instance has just stored is not counted twice."""
    pending = changes.meetings
    copy = MeetingCopy.__table__
    connection = session.connection()
    dialect = connection.dialect.name
    rows = {mid: _meeting_row(mid, data, tz) for mid, data in sorted(pending.items())}
    written = set()
    for chunk in _chunks(list(rows.values())):
        # INSERT .. ON CONFLICT DO NOTHING RETURNING: a meeting another instance is inserting
        # at this moment is waited for, then handled below as a stored one
        written.update(connection.execute(_inserting_new(copy, dialect), chunk).scalars())
    stored = {}
    for chunk in _chunks([mid for mid in rows if mid not in written]):
        query = select(copy.c.meeting_id, copy.c.revision, copy.c.branch_id, copy.c.type,
                       copy.c.held_on, copy.c.year, copy.c.logged, copy.c.cancelled
                       ).where(copy.c.meeting_id.in_(chunk)).order_by(copy.c.meeting_id)
        if dialect == "postgresql":
            query = query.with_for_update()  # two instances apply one meeting in turn
        stored.update({row.meeting_id: row for row in connection.execute(query).all()})
    newer = [rows[mid] for mid, old in stored.items() if old.revision < rows[mid]["revision"]]
    replaced = set()
    for chunk in _chunks(newer):
        # guarded (WHERE revision < excluded.revision): only what is really older is replaced
        replaced.update(connection.execute(newer_upsert(copy, dialect, ("meeting_id",),
                                                        "revision"), chunk).scalars())
    for chunk in _chunks(sorted(replaced)):
        old_rows = defaultdict(list)
        for meeting_id, member_id, status, expected in connection.execute(
                select(AttendanceCopy.meeting_id, AttendanceCopy.member_id,
                       AttendanceCopy.status, AttendanceCopy.expected)
                .where(AttendanceCopy.meeting_id.in_(chunk))):
            old_rows[meeting_id].append((member_id, status, expected))
        for meeting_id in chunk:
            old = stored[meeting_id]
            if old.logged and not old.cancelled:
                _tally(changes, old.type, old.held_on, old.year, old_rows[meeting_id], -1)
            changes.branches[old.year].add(old.branch_id)
        connection.execute(delete(AttendanceCopy).where(AttendanceCopy.meeting_id.in_(chunk)))
    attendance = []
    for meeting_id in sorted(written | replaced):
        data, row = pending[meeting_id], rows[meeting_id]
        lines = data.get("attendance") or []
        attendance += [(meeting_id, r["member_id"], r["status"], bool(r.get("remote")),
                        bool(r.get("expected"))) for r in lines]
        if row["logged"] and not row["cancelled"]:
            _tally(changes, row["type"], row["held_on"], row["year"],
                   [(r["member_id"], r["status"], bool(r.get("expected"))) for r in lines], +1)
        changes.branches[row["year"]].add(row["branch_id"])
    execute_many(connection, _NEW_ATTENDANCE, ATTENDANCE, attendance)


def _meeting_row(meeting_id: str, data: dict, tz) -> dict:
    held_on = local_day(data["held_at"], tz)
    host = [r for r in data.get("attendance") or [] if r.get("expected")]
    return {"meeting_id": meeting_id, "revision": data["revision"],
            "branch_id": data["branch_id"], "group_id": data.get("group_id"),
            "type": data["type"], "held_at": instant(data["held_at"]), "held_on": held_on,
            "year": held_on.year, "logged": data.get("status") == "logged",
            "cancelled": bool(data.get("cancelled")), "quorum_met": data.get("quorum_met"),
            "expected": len(host), "present": sum(1 for r in host if r["status"] == "present")}


@lru_cache(maxsize=4)
def _inserting_new(table, dialect_name: str):
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(
        index_elements=["meeting_id"]).returning(table.c.meeting_id)


def _tally(changes: Changes, meeting_type: str, held_on: date, year: int, rows,
           sign: int) -> None:
    bucket = f"meeting:{meeting_type}"
    month = held_on.strftime("%Y-%m")
    for member_id, status, expected in rows:
        if not domain.counts(status, expected):
            continue  # a visitor listed absent: not charged (SPEC §3)
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
        session.connection().execute(_NEW_ACTIVITY, rows)


def _chunks(items, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start:start + size]


MEETINGS_HANDLERS = {
    "meeting_logged": take_meeting,
    "meeting_amended": take_meeting,
    "meeting_cancelled": take_meeting,
    "activity_logged": take_activity,
}
