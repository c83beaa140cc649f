"""meetings' use cases: each function is one change or read inside one unit of work.

The entrypoints (service.py) validate payloads at the edge and call these; the rules live in
domain.py, the copy of members' data in roster.py, intake from peer systems in intake.py.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial

from sqlalchemy import delete, select

from orglife.common.auth import Principal
from orglife.common.clock import as_utc, iso
from orglife.common.db import (
    UnitOfWork, insert_later, lookup, page, stored, under, write_queued,
)
from orglife.common.errors import Conflict, NotFound, ValidationError
from orglife.common.rules import Rules

from . import domain
from .domain import Findings, Person
from .models import Activity, Attendance, Meeting, OrgCopy
from .roster import RosterCache, branch_people_at, path_ids, people_at, roster_at

# Inserts built once: SQLAlchemy keeps a statement's cache key on the object, and a new
# insert() per meeting computed it again every time.
_NEW_MEETING = Meeting.__table__.insert()
_NEW_ATTENDANCE = Attendance.__table__.insert()

ID_NAMESPACE = uuid.UUID("0b7f5c1e-8d2a-4c3b-9e61-5a4f3d2c1b00")


# -- meetings --------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A meeting report checked against the rules: what would be stored, or why not."""

    found: Findings
    branch: OrgCopy | None = None
    rows: list[dict] | None = None
    quorum: dict | None = None
    non_members: list[dict] | None = None  # see domain.build_attendance
    warnings: list[dict] | None = None


def prepare(session, rules: Rules, meeting: dict, now: datetime, logged: bool,
            cache: RosterCache | None = None) -> Prepared:
    if cache is not None:
        cache.check(session)
        org = partial(cache.org, session)
    else:
        org = partial(session.get, OrgCopy)
    branch = org(meeting["branch_id"])
    group = org(meeting["group_id"]) if meeting.get("group_id") else None
    listed = meeting.get("attendance") or []
    roster, known = (branch_people_at(session, branch.org_id,
                                      {entry["member_id"] for entry in listed},
                                      meeting["held_at"], cache) if branch else ([], {}))
    result = Prepared(found=domain.check_placement(meeting, branch, group, roster),
                      branch=branch)
    for key, messages in domain.check_time(meeting["held_at"], now, logged).items():
        for message in messages:
            result.found.error(key, message)
    if logged and branch is not None and branch.kind == "branch":
        built = domain.build_attendance(rules, meeting["type"], branch.org_id,
                                        meeting.get("group_id"), roster, listed, known)
        result.rows = built.rows
        result.non_members, result.warnings = built.non_members, built.warnings
        result.found.merge(built.found)
        result.quorum = domain.quorum(rules, meeting["type"], roster, built.rows)
    return result


def _check_scope(principal: Principal, branch: OrgCopy) -> None:
    principal.check_scope(path_ids(branch.path), f"branch {branch.org_id!r}")


def expected_ids(session, rules: Rules, meeting: Meeting) -> list[str]:
    """Who a scheduled meeting expects, from the branch's roster on its date."""
    roster = roster_at(session, meeting.branch_id, as_utc(meeting.held_at))
    return [p.member_id for p in domain.expected_attendees(rules, meeting.type,
                                                           meeting.group_id, roster)]


def meeting_dict(meeting: Meeting, rows: list[dict], expected: list[str] | None = None) -> dict:
    """The full meeting; a scheduled one lists its `expected` attendees instead. Its
    `non_members` and `warnings` travel with it everywhere (results, every meeting event)."""
    summary = domain.attendance_summary(rows)
    if expected is not None:
        summary["expected"] = len(expected)
    out = {
        "meeting_id": meeting.meeting_id, "branch_id": meeting.branch_id,
        "branch_path": path_ids(meeting.branch_path), "group_id": meeting.group_id,
        "type": meeting.type, "held_at": iso(meeting.held_at), "topic": meeting.topic,
        "minutes": meeting.minutes, "status": meeting.status, "revision": meeting.revision,
        "quorum_met": meeting.quorum_met, "quorum": meeting.quorum,
        "cancelled": meeting.cancelled, "cancel_reason": meeting.cancel_reason,
        "source": meeting.source,
        "attendance": rows, "summary": summary,
        "non_members": meeting.non_members or [], "warnings": meeting.warnings or [],
    }
    if expected is not None:
        out["expected"] = expected
    return out


def attendance_rows(session, meeting_id: str) -> list[dict]:
    rows = session.scalars(select(Attendance).where(Attendance.meeting_id == meeting_id)
                           .order_by(Attendance.member_id))
    return [{"member_id": r.member_id, "status": r.status, "remote": bool(r.remote),
             "expected": bool(r.expected), "visiting": bool(r.visiting)} for r in rows]


def _store_attendance(session, meeting_id: str, rows: list[dict], replace: bool = True) -> None:
    """A new meeting's rows are queued (db.insert_later, written when the unit of work
    commits); replaced ones are deleted and written at once."""
    lines = [{"meeting_id": meeting_id, **row} for row in rows]
    if not replace:
        insert_later(session, _NEW_ATTENDANCE, lines)
        return
    write_queued(session)  # nothing queued escapes the delete
    session.execute(delete(Attendance).where(Attendance.meeting_id == meeting_id))
    if lines:
        session.connection().execute(_NEW_ATTENDANCE, lines)


def _store_non_members(record: Meeting, prepared: Prepared) -> None:
    record.non_members = prepared.non_members or None
    record.warnings = prepared.warnings or None


def _report(meeting: dict) -> dict:
    """The caller's report in a comparable form (the digest ignores the generated id)."""
    out = {k: v for k, v in meeting.items() if k != "meeting_id"}
    out["held_at"] = iso(meeting["held_at"])
    return out


def schedule_meeting(uow: UnitOfWork, principal: Principal, rules: Rules, meeting: dict,
                     now: datetime) -> dict:
    session = uow.session
    prepared = prepare(session, rules, meeting, now, logged=False)
    if prepared.branch is not None:
        _check_scope(principal, prepared.branch)  # before telling anything about its members
    if prepared.found:
        raise ValidationError(prepared.found.all_errors())
    digest = domain.report_digest(_report(meeting))
    meeting_id = meeting.get("meeting_id") or "mt-" + uuid.uuid4().hex[:16]
    existing = session.get(Meeting, meeting_id)
    if existing is not None:
        if existing.report_digest == digest and existing.status == "scheduled":
            return meeting_dict(existing, [], expected_ids(session, rules, existing))
        raise Conflict(f"meeting {meeting_id!r} exists")
    record = Meeting(
        meeting_id=meeting_id, branch_id=meeting["branch_id"], branch_path=prepared.branch.path,
        group_id=meeting.get("group_id"), type=meeting["type"], held_at=meeting["held_at"],
        topic=meeting["topic"], minutes=meeting.get("minutes"), status="scheduled", revision=1,
        quorum_met=None, quorum=None, cancelled=False, source="rpc", report_digest=digest)
    session.add(record)
    session.flush()
    data = meeting_dict(record, [], expected_ids(session, rules, record))
    uow.emit("meeting_scheduled", data)
    uow.commit()
    return data


def log_meeting(uow: UnitOfWork, principal: Principal, rules: Rules, meeting: dict,
                now: datetime, source: str = "rpc", prepared: Prepared | None = None) -> dict:
    """Store a held meeting with its complete attendance; the same report again is a no-op."""
    session = uow.session
    prepared = prepared or prepare(session, rules, meeting, now, logged=True)
    if prepared.branch is not None:
        _check_scope(principal, prepared.branch)  # before telling anything about its members
    if prepared.found:
        raise ValidationError(prepared.found.all_errors())
    digest = domain.report_digest(_report(meeting))
    meeting_id = meeting.get("meeting_id") or "mt-" + uuid.uuid5(ID_NAMESPACE, digest).hex[:16]
    existing = lookup(session, Meeting, meeting_id)
    if existing is not None:
        if existing.cancelled:
            raise Conflict(f"meeting {meeting_id!r} was cancelled")
        if existing.status == "logged":
            if existing.report_digest == digest:
                return meeting_dict(existing, attendance_rows(session, meeting_id))
            raise Conflict(f"meeting {meeting_id!r} was logged with a different report; "
                           f"amend it (revision {existing.revision}) instead")
        if existing.branch_id != meeting["branch_id"]:
            raise Conflict(f"meeting {meeting_id!r} was scheduled for branch {existing.branch_id!r}")
        record = existing  # a scheduled meeting, now held
        record.revision += 1
    else:
        record = Meeting(meeting_id=meeting_id, revision=1, cancelled=False)
    record.branch_id = meeting["branch_id"]
    record.branch_path = prepared.branch.path
    record.group_id = meeting.get("group_id")
    record.type = meeting["type"]
    record.held_at = meeting["held_at"]
    record.topic = meeting["topic"]
    record.minutes = meeting.get("minutes")
    record.status = "logged"
    record.quorum_met = prepared.quorum["met"]
    record.quorum = prepared.quorum
    _store_non_members(record, prepared)
    record.source = source
    record.report_digest = digest
    if existing is None:
        # A new meeting is a Core INSERT, queued with its attendance and written with the
        # unit of work (intake stores hundreds per batch; an ORM flush per meeting cost more
        # than the rest of storing it). `record` stays transient.
        insert_later(session, _NEW_MEETING, {
            column.key: getattr(record, column.key) for column in Meeting.__table__.columns})
        stored(session, Meeting, meeting_id)
    _store_attendance(session, meeting_id, prepared.rows, replace=existing is not None)
    data = meeting_dict(record, prepared.rows)
    uow.emit("meeting_logged", data)
    uow.commit()
    return data


def _visible_meeting(uow: UnitOfWork, principal: Principal, meeting_id: str,
                     for_update: bool = False) -> Meeting:
    # A change locks the row: two concurrent amends of revision N cannot both become N+1.
    meeting = uow.session.get(Meeting, meeting_id, with_for_update=for_update)
    if meeting is None:
        raise NotFound(f"meeting {meeting_id!r} not found")
    principal.check_scope(path_ids(meeting.branch_path), f"meeting {meeting_id!r}")
    return meeting


def amend_meeting(uow: UnitOfWork, principal: Principal, rules: Rules, changes: dict,
                  now: datetime) -> dict:
    session = uow.session
    record = _visible_meeting(uow, principal, changes["meeting_id"], for_update=True)
    if record.cancelled:
        raise Conflict(f"meeting {record.meeting_id!r} is cancelled; it cannot be amended")
    if changes["revision"] != record.revision:
        raise Conflict(f"stale revision {changes['revision']}: meeting {record.meeting_id!r} "
                       f"is at revision {record.revision}")
    logged = record.status == "logged"
    if not logged and "attendance" in changes:
        raise ValidationError.field("attendance", "a scheduled meeting has no attendance yet; "
                                                  "log it when it is held")
    current_listed = [{"member_id": r["member_id"], "status": r["status"], "remote": r["remote"]}
                      for r in attendance_rows(session, record.meeting_id)
                      if r["status"] != "absent" or not r["expected"]]
    current_listed += [dict(entry) for entry in record.non_members or []]
    merged = {
        "meeting_id": record.meeting_id, "branch_id": record.branch_id,
        "group_id": changes.get("group_id", record.group_id),
        "type": changes.get("type", record.type),
        "held_at": changes.get("held_at", as_utc(record.held_at)),
        "topic": changes.get("topic", record.topic),
        "minutes": changes.get("minutes", record.minutes),
        "attendance": changes.get("attendance", current_listed),
    }
    prepared = prepare(session, rules, merged, now, logged=logged)
    if prepared.found:
        raise ValidationError(prepared.found.all_errors())
    for key in ("group_id", "type", "held_at", "topic", "minutes"):
        setattr(record, key, merged[key])
    record.revision += 1
    if logged:
        record.quorum_met = prepared.quorum["met"]
        record.quorum = prepared.quorum
        _store_non_members(record, prepared)
        _store_attendance(session, record.meeting_id, prepared.rows)
    session.flush()
    data = (meeting_dict(record, prepared.rows) if logged
            else meeting_dict(record, [], expected_ids(session, rules, record)))
    uow.emit("meeting_amended", data)
    uow.commit()
    return data


def cancel_meeting(uow: UnitOfWork, principal: Principal, rules: Rules, cancel: dict) -> dict:
    session = uow.session
    record = _visible_meeting(uow, principal, cancel["meeting_id"], for_update=True)
    if record.cancelled:
        return _stored_meeting(session, rules, record)
    record.cancelled = True
    record.cancel_reason = cancel["reason"]
    record.revision += 1
    session.flush()
    data = _stored_meeting(session, rules, record)
    uow.emit("meeting_cancelled", data)
    uow.commit()
    return data


def get_meeting(uow: UnitOfWork, principal: Principal, rules: Rules, meeting_id: str) -> dict:
    record = _visible_meeting(uow, principal, meeting_id)
    return _stored_meeting(uow.session, rules, record)


def _stored_meeting(session, rules: Rules, record: Meeting) -> dict:
    if record.status == "scheduled":
        return meeting_dict(record, [], expected_ids(session, rules, record))
    return meeting_dict(record, attendance_rows(session, record.meeting_id))


def list_meetings(uow: UnitOfWork, principal: Principal, rules: Rules, filters: dict,
                  tz) -> dict:
    query = principal.limit(select(Meeting), Meeting.branch_path)
    if "under" in filters:
        query = query.where(under(Meeting.branch_path, filters["under"]))
    for name in ("branch_id", "type", "status", "cancelled"):
        if name in filters:
            query = query.where(getattr(Meeting, name) == filters[name])
    query = within_dates(query, Meeting.held_at, filters, tz)
    session = uow.session

    def item(record):
        out = _stored_meeting(session, rules, record)
        out.pop("attendance")
        out.pop("expected", None)
        return out
    return page(session, query, [Meeting.held_at.desc(), Meeting.meeting_id], filters, item)


# -- activities ------------------------------------------------------------------------------
def activity_dict(activity: Activity) -> dict:
    return {"activity_id": activity.activity_id, "member_id": activity.member_id,
            "branch_id": activity.branch_id, "kind": activity.kind,
            "held_at": iso(activity.held_at), "note": activity.note,
            "household": activity.household, "opinions": activity.opinions,
            "source": activity.source}


def check_activity(session, activity: dict, now: datetime) -> tuple[Findings, Person | None]:
    found = Findings()
    if activity["held_at"] > now:
        found.error("held_at", "an activity cannot be in the future")
    person = people_at(session, [activity["member_id"]], activity["held_at"]).get(
        activity["member_id"])
    if person is None:
        found.not_known("member_id", "member", activity["member_id"])
    elif not person.active:
        found.error("member_id", f"member {activity['member_id']!r} is {person.status}")
    return found, person


def log_activity(uow: UnitOfWork, principal: Principal, activity: dict, now: datetime,
                 source: str = "rpc") -> dict:
    session = uow.session
    found, person = check_activity(session, activity, now)
    if found:
        raise ValidationError(found.all_errors())
    branch = session.get(OrgCopy, person.branch_id)
    # A member's branch is announced before the member; without it only the system may log.
    principal.check_scope(path_ids(branch.path) if branch else [],
                          f"the branch of member {person.member_id!r}")
    report = {k: v for k, v in activity.items() if k != "activity_id"}
    report["held_at"] = iso(activity["held_at"])
    digest = domain.report_digest(report)
    activity_id = activity.get("activity_id") or "ac-" + uuid.uuid5(ID_NAMESPACE, digest).hex[:16]
    existing = session.get(Activity, activity_id)
    if existing is not None:
        if existing.report_digest == digest:
            return activity_dict(existing)
        raise Conflict(f"activity {activity_id!r} was logged with a different report")
    record = Activity(activity_id=activity_id, member_id=activity["member_id"],
                      branch_id=person.branch_id, branch_path=branch.path if branch else None,
                      kind=activity["kind"], held_at=activity["held_at"],
                      note=activity.get("note"), household=activity.get("household"),
                      opinions=activity.get("opinions"), source=source, report_digest=digest)
    session.add(record)
    session.flush()
    data = activity_dict(record)
    uow.emit("activity_logged", data)
    uow.commit()
    return data


def get_activity(uow: UnitOfWork, principal: Principal, activity_id: str) -> dict:
    activity = uow.session.get(Activity, activity_id)
    if activity is None:
        raise NotFound(f"activity {activity_id!r} not found")
    principal.check_scope(path_ids(activity.branch_path or ""), f"activity {activity_id!r}")
    return activity_dict(activity)


def list_activities(uow: UnitOfWork, principal: Principal, filters: dict, tz) -> dict:
    query = principal.limit(select(Activity), Activity.branch_path)
    if "under" in filters:
        query = query.where(under(Activity.branch_path, filters["under"]))
    for name in ("member_id", "branch_id", "kind"):
        if name in filters:
            query = query.where(getattr(Activity, name) == filters[name])
    query = within_dates(query, Activity.held_at, filters, tz)
    return page(uow.session, query, [Activity.held_at.desc(), Activity.activity_id], filters,
                activity_dict)


def within_dates(query, column, filters: dict, tz):
    """`from`/`to` filters: whole days in the county's time zone."""
    if "from_" in filters:
        start = datetime.combine(filters["from_"], datetime.min.time(), tz)
        query = query.where(column >= start.astimezone(timezone.utc))
    if "to" in filters:
        end = datetime.combine(filters["to"], datetime.max.time(), tz)
        query = query.where(column <= end.astimezone(timezone.utc))
    return query
