"""Each member's participation record, built from meetings' events only.

A meeting event carries the whole meeting with its complete attendance and a `revision`; the
highest revision wins, so an amendment replaces the earlier attendance, a cancellation removes
it, and events that arrive twice or out of order leave the same record.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from orglife.common.db import insert_later, lookup, prefetch, stored, write_queued

from .models import MeetingVersion, Participation

# Inserts built once: SQLAlchemy keeps a statement's cache key on the object, and a new
# insert() per meeting computed it again every time.
_NEW_VERSION = MeetingVersion.__table__.insert()
_NEW_PARTICIPATION = Participation.__table__.insert()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def apply_meeting(session, meeting: dict, tz) -> bool:
    """Replace the meeting's lines by those of this revision, unless a newer one is known.

    One line per entry of `attendance`; the meeting's `non_members` (attendees who were not
    members on its date) count for nothing and get none."""
    # Locked on PostgreSQL so two revisions handled at once are applied one after the other
    # (the consumer locks a whole batch's versions at once: prefetch_versions).
    seen = lookup(session, MeetingVersion, meeting["meeting_id"], with_for_update=True)
    if seen is not None and seen.revision >= meeting["revision"]:
        return False
    if seen is None:  # a first revision: no lines of it to replace
        insert_later(session, _NEW_VERSION, {
            "meeting_id": meeting["meeting_id"], "revision": meeting["revision"],
            "cancelled": meeting["cancelled"]})
        stored(session, MeetingVersion, meeting["meeting_id"])  # a later revision finds it
    else:
        seen.revision, seen.cancelled = meeting["revision"], meeting["cancelled"]
        write_queued(session)  # lines an earlier revision of this batch queued are deleted too
        session.execute(delete(Participation).where(Participation.ref == meeting["meeting_id"])
                        .where(Participation.kind == "meeting"))
    if meeting["cancelled"] or meeting.get("status") != "logged":
        return True
    held_at = instant(meeting["held_at"])
    year = held_at.astimezone(tz).year
    rows = [{
        "member_id": row["member_id"], "ref": meeting["meeting_id"], "kind": "meeting",
        "type": meeting["type"], "branch_id": meeting["branch_id"], "held_at": held_at,
        "year": year, "status": row["status"], "remote": bool(row.get("remote")),
        "visiting": bool(row.get("visiting")), "topic": (meeting.get("topic") or "")[:300],
    } for row in meeting["attendance"]]
    insert_later(session, _NEW_PARTICIPATION, rows)  # with the batch's others, at commit
    return True


def apply_activity(session, activity: dict, tz) -> bool:
    if session.get(Participation, (activity["member_id"], "activity",
                                   activity["activity_id"])) is not None:
        return False
    held_at = instant(activity["held_at"])
    session.add(Participation(
        member_id=activity["member_id"], ref=activity["activity_id"], kind="activity",
        type=activity["kind"], branch_id=activity.get("branch_id"), held_at=held_at,
        year=held_at.astimezone(tz).year, status="done", remote=False, visiting=False,
        topic=(activity.get("household") or activity.get("note") or "")[:300] or None))
    return True


def prefetch_versions(session, envelopes) -> None:
    """The known revisions of a batch's meetings in one query (locked on PostgreSQL)."""
    prefetch(session, MeetingVersion,
             [e.data.get("meeting_id") for e in envelopes if e.event_type != "activity_logged"
              and isinstance(e.data, dict)], for_update=True)


# meetings' events → what each does to the record (members' consumer dispatches on this).
HANDLERS = {
    "meeting_logged": apply_meeting,
    "meeting_amended": apply_meeting,
    "meeting_cancelled": apply_meeting,
    "activity_logged": apply_activity,
}
