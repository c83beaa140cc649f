"""Intake: meetings and activities reported by other systems on `intake.events` (SPEC §4).

A report is checked exactly as `log_meeting` / `log_activity` check an RPC call. A report that
names members or organizations meetings does not know yet waits for their events (members'
events may still be in flight), persisted so a restart forgets nothing, until its deadline;
any other problem rejects it: the report is kept with its reasons and `intake_rejected` is
announced. The decision reads the structured `Findings` (unknown ids apart from errors), never
the wording of a message.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import select

from orglife.common.auth import SYSTEM, Principal
from orglife.common.clock import as_utc, iso
from orglife.common.db import UnitOfWork, insert_later, page, prefetch
from orglife.common.errors import Conflict, NotFound, ValidationError
from orglife.common.rules import Rules
from orglife.common.schemas import load, storable

from . import registry, schemas
from .domain import Findings
from .models import (
    Activity, IntakeReceipt, Meeting, OrgCopy, PendingIntake, RejectedIntake, backbone,
)
from .roster import RosterCache, path_ids, people_at

# Inserts built once: SQLAlchemy keeps a statement's cache key on the object, and a new
# insert() per meeting computed it again every time.
_NEW_RECEIPT = IntakeReceipt.__table__.insert()


@dataclass(frozen=True)
class ReportKind:
    """How one kind of report is validated, checked and stored."""

    schema: object  # built once: a marshmallow schema deep-copies its fields when constructed
    ref: str  # the id field of what it becomes
    check: Callable  # (uow, rules, report, now, cache) -> (Findings, store: () -> dict)

    def __call__(self, uow, rules, report, now, cache):
        """Check a loaded report: (Findings, a function that stores it)."""
        return self.check(uow, rules, report, now, cache)


def _meeting(uow: UnitOfWork, rules: Rules, report: dict, now: datetime, cache):
    prepared = registry.prepare(uow.session, rules, report, now, logged=True, cache=cache)
    return prepared.found, lambda: registry.log_meeting(uow, SYSTEM, rules, report, now,
                                                        source="intake", prepared=prepared)


def _activity(uow: UnitOfWork, rules: Rules, report: dict, now: datetime, cache):
    found, _ = registry.check_activity(uow.session, report, now)
    return found, lambda: registry.log_activity(uow, SYSTEM, report, now, source="intake")


# intake's events → how each is handled (the consumer's dispatch table, checked against
# orglife/system.py when the service starts).
HANDLERS = {
    "meeting_reported": ReportKind(schemas.LogSchema(), "meeting_id", _meeting),
    "activity_reported": ReportKind(schemas.ActivitySchema(), "activity_id", _activity),
}


@dataclass
class IntakeOutcome:
    status: str  # accepted | waiting | rejected
    reasons: dict | None = None
    result: dict | None = None


def handle_intake(uow: UnitOfWork, rules: Rules, event_type: str, body: dict, event_id: str,
                  now: datetime, tz: str, pending: PendingIntake | None = None,
                  cache: RosterCache | None = None) -> IntakeOutcome:
    """Accept, keep waiting, or reject one report (in the caller's unit of work)."""
    kind = HANDLERS[event_type]
    try:
        report = load(kind.schema, body, tz=tz)
    except ValidationError as exc:
        return _reject(uow, event_type, body, event_id, exc.errors, pending, now)
    found, store = kind(uow, rules, report, now, cache)
    if found.only_unknown:
        # The wait is counted on the service's one clock (`now`), as `received_at` is: under
        # a fixed clock (ORGLIFE_NOW) it never runs out, and the report waits for its members.
        deadline = pending.deadline if pending else now.timestamp() + rules.intake_wait_seconds
        if now.timestamp() < deadline:
            _wait(uow, event_type, body, event_id, found, pending, now, deadline)
            return IntakeOutcome("waiting", {"missing": found.missing})
        found.error("_waited", f"still unknown after {rules.intake_wait_seconds:g}s: "
                               f"{', '.join(sorted(found.missing))}")
    if found:
        return _reject(uow, event_type, body, event_id, found.all_errors(), pending, now)
    # log_meeting and log_activity raise before writing or queueing anything of this report
    # (a lookup may write what earlier reports of the batch queued: theirs to keep), so a
    # Conflict leaves this unit of work (and the batch it may be part of) clean for the
    # rejection.
    try:
        result = store()
    except Conflict as exc:
        return _reject(uow, event_type, body, event_id, {"_conflict": [str(exc)]}, pending, now)
    except ValidationError as exc:
        return _reject(uow, event_type, body, event_id, exc.errors, pending, now)
    if pending is not None:
        uow.session.delete(pending)
    insert_later(uow.session, _NEW_RECEIPT, {
        "event_id": event_id, "event_type": event_type, "ref": result[kind.ref],
        "accepted_at": now})
    uow.commit()  # a repeat report stores nothing new, but its inbox and receipt rows must
    return IntakeOutcome("accepted", result=result)


def _wait(uow, event_type, body, event_id, found: Findings, pending, now, deadline) -> None:
    if pending is None:
        uow.session.add(PendingIntake(event_id=event_id, event_type=event_type, body=body,
                                      received_at=now, deadline=deadline,
                                      missing=found.missing))
    else:
        pending.missing = found.missing
    uow.commit()


def _reject(uow: UnitOfWork, event_type: str, body: dict, event_id: str, reasons: dict,
            pending: PendingIntake | None, now: datetime) -> IntakeOutcome:
    """Keep the report with its reasons and announce `intake_rejected`. What is kept and
    announced is the report made storable (a lone surrogate or NUL that got it refused
    would make the very row and event recording the refusal fail, and park the report)."""
    session = uow.session
    body, reasons = storable(body), storable(reasons)
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


def prefetch_meetings(session, envelopes) -> None:
    """The stored meetings a batch of reports names, in one query (see db.prefetch), locked
    on PostgreSQL as `_visible_meeting` locks one (an amendment or cancellation meanwhile
    waits for the batch instead of being overwritten by its copy)."""
    prefetch(session, Meeting, [e.data.get("meeting_id") for e in envelopes
                                if e.event_type == "meeting_reported" and isinstance(e.data, dict)],
             for_update=True)


def waiting_event_ids(session) -> list[str]:
    return session.scalars(select(PendingIntake.event_id)
                           .order_by(PendingIntake.received_at)).all()


# -- reading -----------------------------------------------------------------------------------
def list_rejected_intake(uow: UnitOfWork, principal: Principal, filters: dict) -> dict:
    """Rejected reports; a scoped admin sees those of its subtree (not unplaceable ones)."""
    query = principal.limit(select(RejectedIntake), RejectedIntake.branch_path)
    if "event_type" in filters:
        query = query.where(RejectedIntake.event_type == filters["event_type"])
    return page(uow.session, query, [RejectedIntake.rejected_at.desc(), RejectedIntake.event_id],
                filters, _rejected_dict)


def _rejected_dict(row: RejectedIntake) -> dict:
    return {"event_id": row.event_id, "event_type": row.event_type, "reasons": row.reasons,
            "report": row.body, "rejected_at": iso(row.rejected_at)}


def get_intake(uow: UnitOfWork, principal: Principal, event_id: str) -> dict:
    """What became of the report sent in the envelope `event_id`: accepted (with the meeting
    or activity it became), waiting (for which ids) or rejected (with the reasons)."""
    session = uow.session
    receipt = session.get(IntakeReceipt, event_id)
    if receipt is not None:
        kind = HANDLERS[receipt.event_type]
        model = Meeting if kind.ref == "meeting_id" else Activity
        record = session.get(model, receipt.ref)
        path = (record.branch_path if record is not None else None) or ""
        principal.check_scope(path_ids(path), f"intake report {event_id!r}")
        return {"event_id": event_id, "event_type": receipt.event_type, "status": "accepted",
                kind.ref: receipt.ref, "accepted_at": iso(receipt.accepted_at)}
    rejected = session.get(RejectedIntake, event_id)
    if rejected is not None:
        principal.check_scope(path_ids(rejected.branch_path or ""), f"intake report {event_id!r}")
        return {**_rejected_dict(rejected), "status": "rejected"}
    pending = session.get(PendingIntake, event_id)
    if pending is not None:
        # SQLite hands back a naive received_at: UTC, as everything stored.
        received_at = as_utc(pending.received_at)
        principal.check_scope(path_ids(_reported_branch_path(session, pending.body,
                                                             received_at) or ""),
                              f"intake report {event_id!r}")
        return {"event_id": event_id, "event_type": pending.event_type, "status": "waiting",
                "missing": pending.missing, "received_at": iso(received_at),
                "deadline": _instant(pending.deadline)}
    handled = _handled_before_receipts(session, event_id)
    if handled is not None:
        # Accepted before receipts were kept (migration 0003): what it became was not
        # recorded, so it cannot be placed in a subtree either (county-wide callers only).
        principal.check_scope([], f"intake report {event_id!r}")
        return {"event_id": event_id, "event_type": handled.event_type, "status": "accepted",
                HANDLERS[handled.event_type].ref: None, "accepted_at": iso(handled.handled_at)}
    raise NotFound(f"no intake report {event_id!r} has been received")


def _instant(epoch: float) -> str | None:
    """An epoch deadline as ISO 8601; None beyond datetime's range (a county that set
    `intake_wait_seconds` to wait practically forever)."""
    try:
        return iso(datetime.fromtimestamp(epoch, timezone.utc))
    except (OverflowError, OSError, ValueError):
        return None


def _handled_before_receipts(session, event_id: str):
    """The inbox row of an intake report handled before migration 0003, if that is what
    `event_id` is. Since then every handled report leaves a receipt, a rejection or a
    waiting row in the same transaction as its inbox row, so an inbox row with none of
    them is a report accepted before receipts were kept."""
    inbox = backbone.inbox
    row = session.execute(select(inbox.c.event_type, inbox.c.handled_at).where(
        inbox.c.event_id == event_id, inbox.c.source == "intake")).first()
    if row is None or row.event_type not in HANDLERS:
        return None
    return row
