"""meetings' service layer: each function is one use case inside one unit of work."""
from __future__ import annotations

import time
import uuid
from functools import partial
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import delete, select, update

from orglife.common.auth import Principal
from orglife.common.clock import as_utc, iso
from orglife.common.db import UnitOfWork, page, under
from orglife.common.envelope import Envelope
from orglife.common.errors import Conflict, Forbidden, NotFound, ValidationError
from orglife.common.rules import Rules

from . import domain
from .domain import Person
from .models import (
    Activity, Attendance, CopyWatermark, Meeting, MemberCopy, OrgCopy, PendingIntake,
    RejectedIntake,
)

EPOCH = datetime(1900, 1, 1, tzinfo=timezone.utc)
ID_NAMESPACE = uuid.UUID("0b7f5c1e-8d2a-4c3b-9e61-5a4f3d2c1b00")


def path_ids(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


# -- the copy of members' data ---------------------------------------------------------------
def apply_organization(uow: UnitOfWork, data: dict) -> None:
    session = uow.session
    current = session.get(OrgCopy, data["org_id"])
    if current is not None and current.version >= data["version"]:
        return
    path = "/" + "/".join(data.get("path") or [data["org_id"]]) + "/"
    values = dict(org_id=data["org_id"], name=data["name"], kind=data["kind"],
                  parent_id=data.get("parent_id"), category=data.get("category"), path=path,
                  version=data["version"])
    if current is None:
        session.add(OrgCopy(**values))
    else:
        for key, value in values.items():
            setattr(current, key, value)


def apply_member(uow: UnitOfWork, envelope: Envelope, tz) -> None:
    """Keep every version of a member with the instant it took effect (see MemberCopy)."""
    data = envelope.data["member"] if envelope.event_type == "member_transferred" else envelope.data
    session = uow.session
    if session.get(MemberCopy, (data["member_id"], data["version"])) is not None:
        return
    if data["version"] == 1:
        joined = data.get("joined_on")
        valid_from = (datetime.fromisoformat(joined).replace(tzinfo=tz).astimezone(timezone.utc)
                      if joined else EPOCH)
    else:
        valid_from = datetime.fromisoformat(envelope.occurred_at.replace("Z", "+00:00"))
    session.add(MemberCopy(
        member_id=data["member_id"], version=data["version"], valid_from=valid_from,
        name=data["name"], branch_id=data["branch_id"], group_id=data.get("group_id"),
        status=data["status"], committee_member=bool(data.get("committee_member")),
        no_vote=bool(data.get("no_vote")), mobile=bool(data.get("mobile")),
    ))


PERSON_COLUMNS = (MemberCopy.member_id, MemberCopy.version, MemberCopy.valid_from,
                  MemberCopy.branch_id, MemberCopy.group_id, MemberCopy.status,
                  MemberCopy.committee_member, MemberCopy.no_vote)


def _choose(rows, at: datetime) -> dict[str, Person]:
    """Per member, the version in force at `at`. A member whose first version starts later
    (joined after `at`) is known but not yet a member: never expected, never counted."""
    chosen: dict[str, tuple] = {}
    for member_id, version, valid_from, branch_id, group_id, status, committee, no_vote in rows:
        since = as_utc(valid_from)
        joined = since <= at
        key = (1, since, version) if joined else (0, -since.timestamp(), -version)
        if member_id not in chosen or key > chosen[member_id][0]:
            chosen[member_id] = (key, Person(member_id, branch_id, group_id, status,
                                             bool(committee), bool(no_vote), joined))
    return {member_id: person for member_id, (_, person) in chosen.items()}


def people_at(session, member_ids, at: datetime) -> dict[str, Person]:
    """Each known member as they were at `at`."""
    ids = list(member_ids)
    rows = []
    for start in range(0, len(ids), 500):
        rows += session.execute(select(*PERSON_COLUMNS).where(
            MemberCopy.member_id.in_(ids[start:start + 500]))).all()
    return _choose(rows, at)


def bump_watermark(session) -> None:
    """Call in every transaction that changes the copy of members (see CopyWatermark)."""
    if session.execute(update(CopyWatermark).where(CopyWatermark.id == 1)
                       .values(seq=CopyWatermark.seq + 1)).rowcount == 0:
        session.add(CopyWatermark(id=1, seq=1))


class RosterCache:
    """Every version of the members who ever belonged to a branch, per branch, as of a
    watermark; emptied as soon as the database's watermark moves."""

    def __init__(self):
        self.watermark = None
        self.rows: dict[str, list] = {}
        self.orgs: dict[str, OrgCopy | None] = {}
        self._checked_in = None

    def check(self, session) -> None:
        """Once per transaction: drop everything if the copy changed since it was cached."""
        if self._checked_in is session.get_transaction():
            return
        seq = session.scalar(select(CopyWatermark.seq).where(CopyWatermark.id == 1))
        if seq != self.watermark:
            self.rows.clear()
            self.orgs.clear()
            self.watermark = seq
        self._checked_in = session.get_transaction()

    def org(self, session, org_id: str) -> OrgCopy | None:
        if org_id not in self.orgs:
            org = session.get(OrgCopy, org_id)
            if org is not None:
                session.expunge(org)  # kept across sessions, read only
            self.orgs[org_id] = org
        return self.orgs[org_id]

    def branch_rows(self, session, branch_id: str) -> list:
        if branch_id not in self.rows:
            self.rows[branch_id] = _branch_rows(session, branch_id)
        return self.rows[branch_id]


def _branch_rows(session, branch_id: str) -> list:
    ever_in_branch = select(MemberCopy.member_id).where(MemberCopy.branch_id == branch_id)
    return session.execute(select(*PERSON_COLUMNS)
                           .where(MemberCopy.member_id.in_(ever_in_branch))).all()


def branch_people_at(session, branch_id: str, listed_ids, at: datetime,
                     cache: RosterCache | None = None):
    """(the branch's active members at `at`, the listed members as they were then)."""
    listed = list(listed_ids)
    rows = cache.branch_rows(session, branch_id) if cache else _branch_rows(session, branch_id)
    people = _choose(rows, at)
    visitors = [m for m in listed if m not in people]
    if visitors:  # members of other branches (or unknown): looked up one by one batch
        people.update(people_at(session, visitors, at))
    roster = sorted((p for p in people.values() if p.branch_id == branch_id and p.active),
                    key=lambda p: p.member_id)
    return roster, {m: people[m] for m in listed if m in people}


def roster_at(session, branch_id: str, at: datetime) -> list[Person]:
    """The branch's active members at `at`: everyone whose version then was in this branch."""
    return branch_people_at(session, branch_id, [], at)[0]


# -- meetings --------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A meeting report checked against the rules: what would be stored, or why not."""

    errors: dict = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # ids meetings does not know yet
    branch: OrgCopy | None = None
    rows: list[dict] = field(default_factory=list)
    quorum: dict | None = None


def prepare(session, rules: Rules, meeting: dict, now: datetime, logged: bool,
            cache: RosterCache | None = None) -> Prepared:
    result = Prepared()
    if cache is not None:
        cache.check(session)
        org = partial(cache.org, session)
    else:
        org = partial(session.get, OrgCopy)
    branch = org(meeting["branch_id"])
    group = org(meeting["group_id"]) if meeting.get("group_id") else None
    if branch is None:
        result.missing.append(meeting["branch_id"])
    if meeting.get("group_id") and group is None:
        result.missing.append(meeting["group_id"])
    listed = meeting.get("attendance") or []
    roster, known = (branch_people_at(session, branch.org_id,
                                      {entry["member_id"] for entry in listed},
                                      meeting["held_at"], cache) if branch else ([], {}))
    result.branch = branch
    result.errors.update(domain.check_time(meeting["held_at"], now, logged))
    result.errors.update(domain.check_placement(meeting, branch, group, roster))
    if logged and branch is not None and branch.kind == "branch":
        built = domain.build_attendance(rules, meeting["type"], branch.org_id,
                                        meeting.get("group_id"), roster, listed, known)
        result.rows = built.rows
        result.missing.extend(built.unknown)
        for key, messages in built.errors.items():
            result.errors.setdefault(key, []).extend(messages)
        result.quorum = domain.quorum(rules, meeting["type"], roster, built.rows)
    return result


def _check_scope(principal: Principal | None, branch: OrgCopy) -> None:
    if principal is not None and not principal.covers(path_ids(branch.path)):
        raise Forbidden(f"branch {branch.org_id!r} is outside your scope")


def expected_ids(session, rules: Rules, meeting: Meeting) -> list[str]:
    """Who a scheduled meeting expects, from the branch's roster on its date."""
    roster = roster_at(session, meeting.branch_id, as_utc(meeting.held_at))
    return [p.member_id for p in domain.expected_attendees(rules, meeting.type,
                                                           meeting.group_id, roster)]


def meeting_dict(meeting: Meeting, rows: list[dict], expected: list[str] | None = None) -> dict:
    """The full meeting; a scheduled one lists its `expected` attendees instead."""
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
    if replace:
        session.execute(delete(Attendance).where(Attendance.meeting_id == meeting_id))
    if rows:
        session.execute(Attendance.__table__.insert(),
                        [{"meeting_id": meeting_id, **row} for row in rows])


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
    errors = dict(prepared.errors)
    if prepared.branch is None:
        errors.setdefault("branch_id", [f"unknown branch {meeting['branch_id']!r}"])
    if errors:
        raise ValidationError(errors)
    _check_scope(principal, prepared.branch)
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


def log_meeting(uow: UnitOfWork, principal: Principal | None, rules: Rules, meeting: dict,
                now: datetime, source: str = "rpc", prepared: Prepared | None = None) -> dict:
    """Store a held meeting with its complete attendance; the same report again is a no-op."""
    session = uow.session
    prepared = prepared or prepare(session, rules, meeting, now, logged=True)
    if prepared.branch is not None:
        _check_scope(principal, prepared.branch)  # before telling anything about its members
    if prepared.errors:
        raise ValidationError(prepared.errors)
    digest = domain.report_digest(_report(meeting))
    meeting_id = meeting.get("meeting_id") or "mt-" + uuid.uuid5(ID_NAMESPACE, digest).hex[:16]
    existing = session.get(Meeting, meeting_id)
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
        session.add(record)
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
    record.source = source
    record.report_digest = digest
    session.flush()
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
    if not principal.covers(path_ids(meeting.branch_path)):
        raise Forbidden(f"meeting {meeting_id!r} is outside your scope")
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
    if prepared.errors:
        raise ValidationError(prepared.errors)
    for key in ("group_id", "type", "held_at", "topic", "minutes"):
        setattr(record, key, merged[key])
    record.revision += 1
    if logged:
        record.quorum_met = prepared.quorum["met"]
        record.quorum = prepared.quorum
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
    query = select(Meeting)
    if principal.org_id:
        query = query.where(under(Meeting.branch_path, principal.org_id))
    if "under" in filters:
        query = query.where(under(Meeting.branch_path, filters["under"]))
    for name in ("branch_id", "type", "status", "cancelled"):
        if name in filters:
            query = query.where(getattr(Meeting, name) == filters[name])
    if "from_" in filters:
        start = datetime.combine(filters["from_"], datetime.min.time(), tz).astimezone(timezone.utc)
        query = query.where(Meeting.held_at >= start)
    if "to" in filters:
        end = datetime.combine(filters["to"], datetime.max.time(), tz).astimezone(timezone.utc)
        query = query.where(Meeting.held_at <= end)
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


def check_activity(session, activity: dict, now: datetime) -> tuple[dict, list[str], Person | None]:
    errors: dict = {}
    if activity["held_at"] > now:
        domain.add_error(errors, "held_at", "an activity cannot be in the future")
    person = people_at(session, [activity["member_id"]], activity["held_at"]).get(
        activity["member_id"])
    missing = []
    if person is None:
        missing.append(activity["member_id"])
        domain.add_error(errors, "member_id", f"unknown member {activity['member_id']!r}")
    elif not person.active:
        domain.add_error(errors, "member_id", f"member {activity['member_id']!r} is {person.status}")
    return errors, missing, person


def log_activity(uow: UnitOfWork, principal: Principal | None, activity: dict, now: datetime,
                 source: str = "rpc") -> dict:
    session = uow.session
    errors, _, person = check_activity(session, activity, now)
    if errors:
        raise ValidationError(errors)
    branch = session.get(OrgCopy, person.branch_id)
    if branch is not None:
        _check_scope(principal, branch)
    elif principal is not None and principal.org_id:
        raise Forbidden(f"the branch of member {person.member_id!r} is not known here yet")
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
                      branch_id=person.branch_id, kind=activity["kind"],
                      held_at=activity["held_at"], note=activity.get("note"),
                      household=activity.get("household"), opinions=activity.get("opinions"),
                      source=source, report_digest=digest)
    session.add(record)
    session.flush()
    data = activity_dict(record)
    uow.emit("activity_logged", data)
    uow.commit()
    return data


# -- intake ----------------------------------------------------------------------------------
@dataclass
class IntakeOutcome:
    status: str  # accepted | waiting | rejected | duplicate
    reasons: dict | None = None
    result: dict | None = None


def handle_intake(uow: UnitOfWork, rules: Rules, event_type: str, body: dict, event_id: str,
                  loaded: dict | ValidationError, now: datetime, pending: PendingIntake | None,
                  wait_seconds: float, cache: RosterCache | None = None) -> IntakeOutcome:
    """Accept, keep waiting, or reject one intake report (in the caller's unit of work).

    A report naming members or organizations meetings does not know yet waits for their
    events (they may still be in flight) until its deadline; any other problem rejects it.
    """
    session = uow.session
    if isinstance(loaded, ValidationError):
        return _reject(uow, event_type, body, event_id, loaded.errors, pending, now)
    if event_type == "meeting_reported":
        prepared = prepare(session, rules, loaded, now, logged=True, cache=cache)
        errors, missing = prepared.errors, prepared.missing
    else:
        prepared = None
        errors, missing, _ = check_activity(session, loaded, now)
    only_missing = missing and all(
        all(_names_missing(message, missing) for message in messages)
        for key, messages in errors.items())
    if missing and (only_missing or not errors):
        deadline = pending.deadline if pending else time.time() + wait_seconds
        if time.time() < deadline:
            if pending is None:
                session.add(PendingIntake(event_id=event_id, event_type=event_type, body=body,
                                          received_at=now, deadline=deadline, missing=missing))
            else:
                pending.missing = missing
            uow.commit()
            return IntakeOutcome("waiting", {"missing": missing})
        errors = {**errors, "_waited": [f"still unknown after {wait_seconds:g}s: "
                                        f"{', '.join(sorted(set(missing)))}"]}
    if errors:
        return _reject(uow, event_type, body, event_id, errors, pending, now)
    # log_meeting and log_activity raise before writing anything, so a Conflict leaves this
    # unit of work (and the batch it may be part of) clean for the rejection.
    try:
        if event_type == "meeting_reported":
            result = log_meeting(uow, None, rules, loaded, now, source="intake",
                                 prepared=prepared)
        else:
            result = log_activity(uow, None, loaded, now, source="intake")
    except Conflict as exc:
        return _reject(uow, event_type, body, event_id, {"_conflict": [str(exc)]}, pending,
                       now)
    if pending is not None:
        session.delete(pending)
    uow.commit()  # a repeat report stores nothing new, but its inbox and pending rows must
    return IntakeOutcome("accepted", result=result)


def _names_missing(message: str, missing: list[str]) -> bool:
    return any(f"unknown member {m!r}" in message or f"unknown branch {m!r}" in message
               or f"unknown group {m!r}" in message for m in missing)


def _reject(uow: UnitOfWork, event_type: str, body: dict, event_id: str, reasons: dict,
            pending: PendingIntake | None, now: datetime) -> IntakeOutcome:
    session = uow.session
    if pending is not None:
        session.delete(pending)
    if session.get(RejectedIntake, event_id) is None:
        session.add(RejectedIntake(event_id=event_id, event_type=event_type, body=body,
                                   reasons=reasons, rejected_at=now,
                                   branch_path=_reported_branch_path(session, body, now)))
        uow.emit("intake_rejected", {"event_id": event_id, "event_type": event_type,
                                     "reasons": reasons, "report": body})
    uow.commit()
    return IntakeOutcome("rejected", reasons=reasons)


def _reported_branch_path(session, body: dict, now: datetime) -> str | None:
    """Where a rejected report belongs, if that can be told: its branch, or its member's."""
    if not isinstance(body, dict):
        return None
    branch_id = body.get("branch_id")
    if not branch_id and isinstance(body.get("member_id"), str):
        person = people_at(session, [body["member_id"]], now).get(body["member_id"])
        branch_id = person.branch_id if person else None
    branch = session.get(OrgCopy, branch_id) if isinstance(branch_id, str) else None
    return branch.path if branch is not None else None


def list_rejected_intake(uow: UnitOfWork, principal: Principal, filters: dict) -> dict:
    """Rejected reports; a scoped admin sees those of its subtree (not unplaceable ones)."""
    query = select(RejectedIntake)
    if principal.org_id:
        query = query.where(under(RejectedIntake.branch_path, principal.org_id))
    if "event_type" in filters:
        query = query.where(RejectedIntake.event_type == filters["event_type"])
    return page(uow.session, query, [RejectedIntake.rejected_at.desc(), RejectedIntake.event_id],
                filters, lambda r: {"event_id": r.event_id, "event_type": r.event_type,
                                    "reasons": r.reasons, "report": r.body,
                                    "rejected_at": iso(r.rejected_at)})
