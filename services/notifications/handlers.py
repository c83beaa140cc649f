"""What each event does to notifications: the copy of members and organizations it keeps
(contacts, secretaries, robots), and the notifications it plans, withdraws or refreshes.

The dispatch tables `MEMBERS_HANDLERS`, `MEETINGS_HANDLERS` and `SCORING_HANDLERS` are the
consumers' (checked against orglife/system.py). Every handler tolerates duplicates and
reordering: the copy keeps the highest version, meetings the highest revision, and a
notification exists once per (kind, recipient, cause) (registry.store).
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, select, union

from orglife.common.db import UnitOfWork, lookup, prefetch, stored
from orglife.common.envelope import Envelope

from . import domain, registry
from .models import ContactCopy, MeetingSeen, MeetingWait, OrgCopy
from .registry import Planning

log = logging.getLogger(__name__)

FOLLOW_UP_KINDS = ("absence_followup", "absence_digest")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- members' events: the copy ---------------------------------------------------------------------
def apply_organization(uow: UnitOfWork, envelope: Envelope, planning: Planning) -> None:
    data = envelope.data
    current = lookup(uow.session, OrgCopy, data["org_id"], with_for_update=True)
    if current is not None and current.version >= data["version"]:
        return
    values = dict(org_id=data["org_id"], name=data["name"], kind=data["kind"],
                  parent_id=data.get("parent_id"),
                  path="/" + "/".join(data.get("path") or [data["org_id"]]) + "/",
                  secretary_id=data.get("secretary_id"), robot_url=data.get("robot_url"),
                  version=data["version"])
    if current is None:
        uow.session.add(OrgCopy(**values))
        stored(uow.session, OrgCopy, data["org_id"])
    else:
        for key, value in values.items():
            setattr(current, key, value)
    planning.directory.forget()
    if current is None:
        planning.arrived.add(data["org_id"])


def member_data(envelope: Envelope) -> dict:
    """Flat in every event; nested under "member" in member_transferred's schema version 1."""
    if envelope.event_type == "member_transferred" and envelope.schema_version == 1:
        return envelope.data["member"]
    return envelope.data


def apply_member(uow: UnitOfWork, envelope: Envelope, planning: Planning) -> None:
    data = member_data(envelope)
    current = lookup(uow.session, ContactCopy, data["member_id"], with_for_update=True)
    if current is not None and current.version >= data["version"]:
        return
    values = dict(member_id=data["member_id"], name=data.get("name") or "",
                  branch_id=data["branch_id"], status=data["status"],
                  phone=data.get("phone") or None, email=data.get("email") or None,
                  version=data["version"])
    if current is None:
        uow.session.add(ContactCopy(**values))
        stored(uow.session, ContactCopy, data["member_id"])
    else:
        for key, value in values.items():
            setattr(current, key, value)
    planning.directory.forget()
    if current is None:
        planning.arrived.add(data["member_id"])


def prepare_members(uow: UnitOfWork, envelopes: list[Envelope], planning: Planning) -> None:
    """A batch's organizations and members read (and locked) in two queries. Read
    leniently: a malformed event is for its own handler to refuse, not for preparing to
    fail the whole batch on."""
    data = [(e.data.get("member") if e.event_type == "member_transferred"
             and e.schema_version == 1 else e.data)
            for e in envelopes if isinstance(e.data, dict)]
    data = [d for d in data if isinstance(d, dict)]
    prefetch(uow.session, OrgCopy, [d.get("org_id") for d in data], for_update=True)
    prefetch(uow.session, ContactCopy, [d.get("member_id") for d in data], for_update=True)


# -- meetings' events: reminders, follow-ups, digests -----------------------------------------------
def _seen(uow: UnitOfWork, meeting: dict) -> tuple[str, MeetingSeen | None]:
    """Record the meeting's revision: "new" (nothing was planned for it yet), "newer", or
    "stale" when a newer revision was already handled; and the row (None for a new one)."""
    seen = lookup(uow.session, MeetingSeen, meeting["meeting_id"], with_for_update=True)
    if seen is not None and seen.revision >= meeting["revision"]:
        return "stale", seen
    if seen is None:
        # A Core insert, not an ORM object and its flush (a tenth of the service's time in
        # bench/county_year.py): most meetings are new, and most never wait for anyone.
        uow.session.connection().execute(_NEW_SEEN, {"meeting_id": meeting["meeting_id"],
                                                     "revision": meeting["revision"]})
        stored(uow.session, MeetingSeen, meeting["meeting_id"])  # known absent no longer
        return "new", None
    seen.revision = meeting["revision"]
    uow.session.flush()
    return "newer", seen


_NEW_SEEN = MeetingSeen.__table__.insert()


def prepare_meetings(uow: UnitOfWork, envelopes: list[Envelope], planning: Planning) -> None:
    """A batch's meetings, branches, secretaries and the members its plans name, read in a few
    queries before its events are handled one by one (one SELECT per name and meeting was most
    of the service's time in bench/county_year.py). The members a plan names: a scheduled
    meeting's expected attendees (reminders), a held meeting's absentees (follow-ups and the
    digest), not everyone who came; any other is read when asked for."""
    meetings = [envelope.data for envelope in envelopes if isinstance(envelope.data, dict)]
    prefetch(uow.session, MeetingSeen, [m.get("meeting_id") for m in meetings],
             for_update=True)
    members = set()
    for meeting in meetings:  # read leniently: preparing must never fail a message itself
        if meeting.get("status") == "scheduled":
            expected = meeting.get("expected")
            members.update(m for m in (expected if isinstance(expected, list) else [])
                           if isinstance(m, str))
            continue
        attendance = meeting.get("attendance")
        members.update(row.get("member_id") for row in
                       (attendance if isinstance(attendance, list) else [])
                       if isinstance(row, dict) and row.get("status") == "absent"
                       and isinstance(row.get("member_id"), str))
    planning.directory.prefetch(members, [m.get("branch_id") for m in meetings])


def on_meeting(uow: UnitOfWork, envelope: Envelope, planning: Planning) -> None:
    meeting = envelope.data
    verdict, seen = _seen(uow, meeting)
    if verdict == "stale":
        return
    plan_meeting(uow, meeting, planning, first=verdict == "new")
    wait_for_unknown(uow, meeting, planning, seen)


def plan_meeting(uow: UnitOfWork, meeting: dict, planning: Planning, first: bool) -> None:
    """Plan (or plan again) what a meeting's current revision calls for."""
    session, meeting_id = uow.session, meeting["meeting_id"]
    if first and not meeting.get("cancelled"):
        # The common case (a meeting reported once): nothing to withdraw or refresh.
        held_at = instant(meeting["held_at"])
        if meeting.get("status") == "scheduled":
            drafts = domain.plan_reminders(planning.rules, planning.directory, meeting,
                                           held_at, planning.now)
        else:
            drafts = domain.plan_followups(planning.rules, planning.directory, meeting,
                                           held_at, planning.now)
        registry.store(session, planning, drafts)
        return
    held_at = instant(meeting["held_at"])
    if meeting.get("cancelled"):
        reminded = registry.reached(session, meeting_id, "meeting_reminder",
                                    f"meeting:{meeting_id}@")
        registry.withdraw(session, meeting_id, ("meeting_reminder",) + FOLLOW_UP_KINDS)
        registry.store(session, planning, domain.plan_cancellation_notices(
            planning.directory, meeting, held_at, sorted(set(reminded))))
        return
    if meeting.get("status") == "scheduled":
        drafts = domain.plan_reminders(planning.rules, planning.directory, meeting, held_at,
                                       planning.now)
        # A moved meeting is a new cause; someone no longer expected hears nothing more.
        registry.withdraw(session, meeting_id, ("meeting_reminder",),
                          keep={(d.recipient_id, d.cause) for d in drafts})
        registry.store(session, planning, drafts, refresh=True)
        return
    # Held: reminders are moot; follow-ups match the attendance as it now stands.
    registry.withdraw(session, meeting_id, ("meeting_reminder",))
    absent = set(domain.absentees(meeting))
    registry.withdraw(session, meeting_id, ("absence_followup",), keep_about=absent)
    if not absent:
        registry.withdraw(session, meeting_id, ("absence_digest",))
    registry.store(session, planning, domain.plan_followups(
        planning.rules, planning.directory, meeting, held_at, planning.now), refresh=True)


# -- meetings seen before the members they name ----------------------------------------------------
def unknown_ids(uow: UnitOfWork, meeting: dict, planning: Planning) -> set[str]:
    """The members (and branch) a meeting's plan needs that this copy has not heard of yet.
    members' events come on another queue and may lag behind meetings' (a bulk import, a
    restart): such a meeting waits for them instead of silently planning nothing. A meeting
    that would plan nothing anyway (past, cancelled, history outside the follow-up window)
    waits for nobody."""
    if meeting.get("cancelled"):
        return set()
    held_at = instant(meeting["held_at"])
    if meeting.get("status") == "scheduled":
        if held_at <= planning.now:
            return set()
        members = set(meeting.get("expected") or [])
    else:
        members = set(domain.absentees(meeting))
        if not members or not domain.followups_apply(planning.rules, held_at, planning.now):
            return set()
    missing = set()
    branch = planning.directory.org(meeting["branch_id"])
    if branch is None:
        missing.add(meeting["branch_id"])
    elif branch.secretary_id:
        members.add(branch.secretary_id)
    return missing | {member_id for member_id in members
                      if not planning.directory.known(member_id)}


def arrived_meanwhile(session, ids: set[str]) -> bool:
    """Some of these members or organizations are in the copy now (asked afresh, not from
    what the batch read when it began)."""
    wanted = sorted(ids)
    return bool(session.scalar(select(ContactCopy.member_id).where(
        ContactCopy.member_id.in_(wanted)).limit(1)) or session.scalar(
        select(OrgCopy.org_id).where(OrgCopy.org_id.in_(wanted)).limit(1)))


def wait_for_unknown(uow: UnitOfWork, meeting: dict, planning: Planning,
                     seen: MeetingSeen | None) -> None:
    """Remember the meeting for each unknown member or branch (replan_waiting plans it again
    when they arrive), or forget that it waited; `seen` is the meeting's MeetingSeen row, None
    for one just inserted (it waited for nothing yet)."""
    session, meeting_id = uow.session, meeting["meeting_id"]
    missing = unknown_ids(uow, meeting, planning)
    if missing and arrived_meanwhile(session, missing):
        # Another instance committed them after this batch read the copy: its wake-up found
        # no wait (ours is not committed), so nothing would ever wake this one. Plan with
        # them now instead (stored once per kind, recipient and cause: nothing twice).
        planning.directory.forget()
        plan_meeting(uow, meeting, planning, first=False)
        missing = unknown_ids(uow, meeting, planning)
    if seen is None:
        if not missing:
            return
        seen = lookup(session, MeetingSeen, meeting_id)
    if seen.waiting is not None:
        session.execute(delete(MeetingWait).where(MeetingWait.meeting_id == meeting_id))
    seen.waiting = meeting if missing else None
    session.add_all([MeetingWait(waited_id=waited, meeting_id=meeting_id)
                     for waited in sorted(missing)])


def replan_arrived(uow: UnitOfWork, planning: Planning) -> None:
    """Members or organizations the copy gained in this batch: meetings that waited for them
    are planned again, once the batch is applied (an organization and its secretary arriving
    in one batch plan the digest to the secretary). Storing is once per kind, recipient and
    cause, so what was planned before stays once."""
    if not planning.arrived:
        return
    session = uow.session
    waited = sorted(planning.arrived)
    planning.arrived.clear()
    meeting_ids = set()
    for start in range(0, len(waited), 500):
        meeting_ids.update(session.scalars(select(MeetingWait.meeting_id).where(
            MeetingWait.waited_id.in_(waited[start:start + 500]))))
    if meeting_ids:
        replan(uow, planning, meeting_ids)


def replan(uow: UnitOfWork, planning: Planning, meeting_ids, isolated: bool = False) -> int:
    """Plan waiting meetings again, each locked in id order (one lock order for every
    instance). `isolated`: each in a savepoint of its own, so that one failing to plan is
    logged and left waiting while the others go on (the timer's sweep; a consumer's batch
    fails whole instead and is retried message by message). Returns how many were planned."""
    session = uow.session
    session.flush()
    planning.directory.forget()
    planned = 0
    for meeting_id in sorted(meeting_ids):
        seen = lookup(session, MeetingSeen, meeting_id, with_for_update=True)
        if seen is None or seen.waiting is None:  # planned meanwhile: nothing left to wake
            session.execute(delete(MeetingWait).where(MeetingWait.meeting_id == meeting_id))
            continue
        if not isolated:
            plan_meeting(uow, seen.waiting, planning, first=False)
            wait_for_unknown(uow, seen.waiting, planning, seen)
            planned += 1
            continue
        try:
            with session.begin_nested():
                plan_meeting(uow, seen.waiting, planning, first=False)
                wait_for_unknown(uow, seen.waiting, planning, seen)
            planned += 1
        except Exception:  # noqa: BLE001 - one meeting's failure must not hold the others
            log.exception("meeting %s could not be planned again; it keeps waiting", meeting_id)
            planning.directory.forget()
    return planned


def overlooked(session, limit: int = 200) -> list[str]:
    """Meetings still waiting for a member or their branch that the copy already has: what
    the window between two instances' commits can leave behind (wake_overlooked). A wait for
    the meeting's branch is matched against organizations, any other against members, each
    by its primary key (a member and an organization may share an id)."""
    branch = MeetingSeen.waiting["branch_id"].as_string()

    def waiting_for(model, key, for_branch: bool):
        return (select(MeetingWait.meeting_id)
                .join(model, key == MeetingWait.waited_id)
                .join(MeetingSeen, MeetingSeen.meeting_id == MeetingWait.meeting_id)
                .where(MeetingWait.waited_id == branch if for_branch
                       else MeetingWait.waited_id != branch))
    found = union(waiting_for(ContactCopy, ContactCopy.member_id, False),
                  waiting_for(OrgCopy, OrgCopy.org_id, True)).subquery()
    return list(session.scalars(select(found.c.meeting_id).order_by(found.c.meeting_id)
                                .limit(limit)))


def wake_overlooked(uow: UnitOfWork, planning: Planning, limit: int = 200) -> int:
    """Plan the meetings `overlooked` finds. With several instances one can commit a member
    in the instant between another's last look (wait_for_unknown's re-check) and the commit of
    its wait: the member's batch found no wait to wake, and nothing else would. The service's
    timer runs this; it finds nothing in the usual case. Returns how many meetings it planned
    (one that fails is logged and stays waiting: found again, and logged again, next time)."""
    meeting_ids = overlooked(uow.session, limit)
    return replan(uow, planning, meeting_ids, isolated=True) if meeting_ids else 0


# -- scoring's events: alerts -------------------------------------------------------------------------
def _planned(planner):
    def handle(uow: UnitOfWork, envelope: Envelope, planning: Planning) -> None:
        registry.store(uow.session, planning,
                       planner(planning.rules, planning.directory, envelope.data))
    handle.__name__ = f"on_{planner.__name__.removeprefix('plan_')}"
    handle.__doc__ = planner.__doc__
    return handle


def on_grades(uow: UnitOfWork, envelope: Envelope, planning: Planning) -> None:
    registry.store(uow.session, planning, domain.plan_grades(planning.directory, envelope.data))


MEMBERS_HANDLERS = {
    "organization_registered": apply_organization,
    "organization_updated": apply_organization,
    "member_registered": apply_member,
    "member_updated": apply_member,
    "member_transferred": apply_member,
}
MEETINGS_HANDLERS = {
    "meeting_scheduled": on_meeting,
    "meeting_logged": on_meeting,
    "meeting_amended": on_meeting,
    "meeting_cancelled": on_meeting,
}
# Changed figures message nobody (scores_changed is not consumed); alerts come as events.
SCORING_HANDLERS = {
    "branch_overdue": _planned(domain.plan_overdue),
    "branch_silent": _planned(domain.plan_silent),
    "branch_due_soon": _planned(domain.plan_due_soon),
    "member_at_risk": _planned(domain.plan_at_risk),
    "year_graded": on_grades,
}
