"""notifications' use cases: storing what the planners drafted (exactly once per kind,
recipient and cause), withdrawing what no longer applies, the sender's steps (lease what is
due, mark a group of rows `sending`, record the channels' verdicts), and the reads.

The rules of who hears what are in domain.py; the words in templates/ (texts.py); the
channels in channels.py. Addresses are read from the copy at the moment of sending and never
stored on a notification, logged or put in an event.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, func, inspect, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from orglife.common.auth import Principal
from orglife.common.clock import as_utc, iso
from orglife.common.db import UnitOfWork, lookup, prefetch, under, unstorable
from orglife.common.errors import Conflict, NotFound, ValidationError
from orglife.common.rules import Rules, parse_quiet_hours, RulesError
from orglife.common.vocabulary import ACTIVE_STATUSES

from . import domain
from .channels import (
    ChannelFailure, DeliveryUnknown, TemporaryFailure, redact, robot_flavour,
    window_wait,
)
from .models import ContactCopy, Notification, OrgCopy, Preference, RobotBudget
from .texts import Texts

DEFAULT_QUIET = "default"  # the row follows the rules file's quiet hours
# A row `sending` longer than this was left by a dead sender. Far above the longest a live
# send takes (an SMTP conversation of several 15 s steps, channels.py), so a slow send is not
# taken for a dead one; a verdict arriving after a sweep all the same still counts (finish_send).
SENDING_TIMEOUT = timedelta(minutes=10)
SWEPT = "the sender stopped while sending; it may have been delivered"


def path_ids(path: str | None) -> list[str]:
    return [part for part in (path or "").split("/") if part]


# -- the copy, as the planners see it ------------------------------------------------------------
@lru_cache(maxsize=None)
def _attributes(model) -> tuple:
    """The model's column attributes, so that a select of them gives rows read like objects."""
    return tuple(getattr(model, attribute.key) for attribute in inspect(model).column_attrs)


class SessionDirectory:
    """domain.Directory over notifications' own tables, remembering what it read (a batch
    asks for the same secretary many times); `prefetch` reads a whole batch's members and
    organizations in a few queries instead of one per name."""

    def __init__(self, session, default_robot: bool,
                 available: tuple[str, ...] = domain.MEMBER_CHANNELS):
        self.session = session
        self._default_robot = default_robot
        self._available = tuple(available)
        self._contacts: dict = {}
        self._orgs: dict = {}
        self._paths: dict = {}
        self._preferences: dict = {}

    def prefetch(self, member_ids, org_ids) -> None:
        """Read these organizations, their secretaries and these members (contacts and
        preferences) at once; later questions about them are answered from memory."""
        found = self._load(OrgCopy, OrgCopy.org_id, org_ids, self._orgs)
        for org_id, row in found.items():
            self._remember_org(org_id, row)
        members = set(member_ids) | {row.secretary_id for row in found.values()
                                     if row is not None and row.secretary_id}
        for member_id, row in self._load(ContactCopy, ContactCopy.member_id, members,
                                         self._contacts).items():
            self._remember_contact(member_id, row)
        for member_id, row in self._load(Preference, Preference.member_id, members,
                                         self._preferences).items():
            self._preferences[member_id] = preference_of(row)

    def _load(self, model, column, keys, known: dict) -> dict:
        """{key: row or None} for the keys not yet in `known`, 500 to a query. Plain rows
        (named like the model's attributes), not ORM objects: they are only read, and
        building a batch's ORM objects was a tenth of the service's time."""
        wanted = sorted({key for key in keys if isinstance(key, str) and len(key) <= 200
                         and unstorable(key) is None and key not in known})
        out = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows = {getattr(row, column.key): row for row in self.session.execute(
                select(*_attributes(model)).where(column.in_(chunk)))}
            out.update({key: rows.get(key) for key in chunk})
        return out

    def _remember_contact(self, member_id: str, row) -> None:
        self._contacts[member_id] = None if row is None else domain.Contact(
            row.member_id, row.name, row.branch_id, row.status, row.phone, row.email)

    def _remember_org(self, org_id: str, row) -> None:
        self._orgs[org_id] = None if row is None else domain.Org(
            row.org_id, row.name, row.kind, row.parent_id, row.secretary_id, row.robot_url)
        self._paths[org_id] = None if row is None else row.path

    def known(self, member_id: str) -> bool:
        """The copy has heard of this member (whatever the member's status)."""
        if member_id not in self._contacts:
            self._remember_contact(member_id, self.session.get(ContactCopy, member_id))
        return self._contacts[member_id] is not None

    def contact(self, member_id: str) -> domain.Contact | None:
        found = self._contacts[member_id] if self.known(member_id) else None
        return found if found is not None and found.status in ACTIVE_STATUSES else None

    def org(self, org_id: str) -> domain.Org | None:
        if org_id not in self._orgs:
            self._remember_org(org_id, self.session.get(OrgCopy, org_id))
        return self._orgs[org_id]

    def org_path(self, org_id: str | None) -> str | None:
        if not org_id:
            return None
        self.org(org_id)
        return self._paths[org_id]

    def preference(self, member_id: str) -> domain.Preference:
        if member_id not in self._preferences:
            self._preferences[member_id] = preference_of(self.session.get(Preference,
                                                                          member_id))
        return self._preferences[member_id]

    def default_robot(self) -> bool:
        return self._default_robot

    def available(self) -> tuple[str, ...]:
        return self._available

    def forget(self) -> None:
        self._contacts.clear()
        self._orgs.clear()
        self._paths.clear()
        self._preferences.clear()


@dataclass
class Planning:
    """What a batch of events needs to turn drafts into stored notifications."""

    rules: Rules
    texts: Texts
    tz: object
    now: datetime
    directory: SessionDirectory
    event_id: str | None = None
    # members and organizations the copy gained in this batch: meetings waiting for them are
    # planned again once the whole batch is applied (handlers.replan_arrived)
    arrived: set = field(default_factory=set)


def preference_of(row: Preference | None) -> domain.Preference:
    """A stored preference: quiet_hours NULL follows the rules file, "" is none at all."""
    if row is None:
        return domain.Preference()
    own = row.quiet_hours is not None
    return domain.Preference(tuple(row.channels) if row.channels else None,
                             parse_quiet_hours(row.quiet_hours) if own else None,
                             quiet_set=own)


# -- storing drafts ---------------------------------------------------------------------------------
def quiet_text(window) -> str:
    return "" if window is None else f"{window[0]:%H:%M}-{window[1]:%H:%M}"


def window_of(rules: Rules, stored: str | None):
    if stored is None or stored == DEFAULT_QUIET:
        return rules.quiet_hours
    return parse_quiet_hours(stored)


def _branch_path(planning: Planning, draft: domain.Draft) -> str | None:
    """The branch a notification is about decides who may read it (township and branch
    scopes), whoever receives it."""
    for key in ("branch",):
        org = draft.context.get(key)
        if org is not None:
            return planning.directory.org_path(org.org_id)
    if draft.recipient_type == "organization":
        return planning.directory.org_path(draft.recipient_id)
    contact = planning.directory.contact(draft.recipient_id)
    return planning.directory.org_path(contact.branch_id) if contact else None


def row_of(planning: Planning, draft: domain.Draft) -> dict:
    subject, body = planning.texts.render(draft.template, draft.context)
    window = (planning.rules.quiet_hours if draft.quiet_hours is domain.DEFAULT
              else draft.quiet_hours)
    planned = max(draft.not_before or planning.now, planning.now)
    # One that quiet hours would hold past its deadline goes at once, keeping the rules'
    # urgency (the list shows what the rules say; lease_due never holds it either).
    beats = domain.beats_quiet_hours(draft, planned, planning.now, window, planning.tz)
    at = domain.send_after(planned, planning.now, draft.urgent or beats, window, planning.tz)
    urgent = draft.urgent
    return {
        "notification_id": "nt-" + uuid.uuid4().hex[:20], "kind": draft.kind,
        "recipient_id": draft.recipient_id, "recipient_type": draft.recipient_type,
        "cause": draft.cause[:200], "ref": draft.ref, "about_id": draft.about_id,
        "branch_path": _branch_path(planning, draft), "channels": list(draft.channels),
        "channel_index": 0, "channel": draft.channels[0], "urgent": urgent,
        "quiet_hours": (DEFAULT_QUIET if draft.quiet_hours is domain.DEFAULT
                        else quiet_text(draft.quiet_hours)),
        "subject": subject, "body": body, "status": "pending", "attempts": 0,
        "planned_at": planned, "not_before": at, "next_attempt_at": at,
        "deadline": draft.deadline, "created_at": planning.now,
        "history": [], "cause_event_id": planning.event_id,
    }


ONCE_ROWS = 20  # drafts per INSERT: one statement and one round trip for a meeting's drafts


@lru_cache(maxsize=64)
def _once(dialect, columns: tuple[str, ...], count: int):
    """INSERT ... VALUES (row 0), ..., (row count-1) ON CONFLICT (kind, recipient_id, cause)
    DO NOTHING, in the spelling SQLite (3.24+) and PostgreSQL share, as text with typed
    parameters: SQLAlchemy caches the compiled form of a text, never that of a dialect insert
    with on_conflict_do_nothing (compiled again at every call: a twentieth of the service's
    time in bench/county_year.py); several rows in one statement are one round trip on
    PostgreSQL, where an executemany of a text is one per row. DO NOTHING also skips a row
    repeating an earlier one of the same statement."""
    quote = dialect.identifier_preparer.quote
    table = Notification.__table__
    values = ", ".join("(" + ", ".join(f":{c}_{n}" for c in columns) + ")"
                       for n in range(count))
    return text(
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES {values} ON CONFLICT (kind, recipient_id, cause) DO NOTHING"
    ).bindparams(*[bindparam(f"{c}_{n}", type_=table.c[c].type)
                   for n in range(count) for c in columns])


def store(session, planning: Planning, drafts: list[domain.Draft],
          refresh: bool = False) -> int:
    """Store the drafts, one notification per (kind, recipient, cause) whatever happened
    before. With `refresh` (a changed meeting planned again), one already stored and still
    pending takes the new words (an amended meeting's digest lists the absentees as they now
    are), and one withdrawn earlier is owed again and goes back to pending from its first
    channel (a meeting moved and moved back, a member absent, on leave, then absent again);
    one sent, sending or failed is never touched. Returns how many are new."""
    if not drafts:
        return 0
    rows = [row_of(planning, draft) for draft in drafts]
    columns, dialect, inserted = tuple(rows[0]), session.get_bind().dialect, 0
    for start in range(0, len(rows), ONCE_ROWS):
        chunk = rows[start:start + ONCE_ROWS]
        inserted += session.connection().execute(
            _once(dialect, columns, len(chunk)),
            {f"{column}_{n}": row[column] for n, row in enumerate(chunk) for column in columns}
        ).rowcount
    if refresh:
        for row in rows:
            same = (Notification.kind == row["kind"],
                    Notification.recipient_id == row["recipient_id"],
                    Notification.cause == row["cause"],
                    Notification.notification_id != row["notification_id"])
            session.execute(update(Notification).where(*same, Notification.status == "pending")
                            .values(subject=row["subject"], body=row["body"]))
            session.execute(update(Notification).where(*same, Notification.status == "withdrawn")
                            .values(status="pending", subject=row["subject"], body=row["body"],
                                    channels=row["channels"], channel_index=0,
                                    channel=row["channel"], attempts=0, last_error=None,
                                    planned_at=row["planned_at"], not_before=row["not_before"],
                                    next_attempt_at=row["next_attempt_at"],
                                    urgent=row["urgent"], deadline=row["deadline"],
                                    quiet_hours=row["quiet_hours"], about_id=row["about_id"]))
    return max(inserted, 0)


def withdraw(session, ref: str, kinds: tuple[str, ...], *, keep_about: set[str] | None = None,
             keep: set[tuple[str, str]] | None = None) -> int:
    """Pending notifications about `ref` of these kinds that no longer apply become
    `withdrawn` (those already sending or sent are past recall). `keep_about`: members still
    concerned (their follow-ups stay); `keep`: the (recipient, cause) pairs still wanted (a
    scheduled meeting's current reminders)."""
    query = update(Notification).where(Notification.ref == ref, Notification.kind.in_(kinds),
                                       Notification.status == "pending")
    if keep_about is not None:
        query = query.where(or_(Notification.about_id.is_(None),
                                Notification.about_id.not_in(keep_about)))
    if keep is not None:
        stale = [notification_id for notification_id, recipient, cause in session.execute(
            select(Notification.notification_id, Notification.recipient_id, Notification.cause)
            .where(Notification.ref == ref, Notification.kind.in_(kinds),
                   Notification.status == "pending"))
            if (recipient, cause) not in keep]
        if not stale:
            return 0
        query = query.where(Notification.notification_id.in_(stale))
    return session.execute(query.values(status="withdrawn", lease_owner=None,
                                        lease_until=None)).rowcount


def reached(session, ref: str, kind: str, cause_prefix: str) -> list[str]:
    """Members a notification of this kind about `ref` went out to (or may have)."""
    return list(session.scalars(select(Notification.recipient_id).where(
        Notification.ref == ref, Notification.kind == kind,
        Notification.recipient_type == "member",
        Notification.cause.like(cause_prefix.replace("%", r"\%").replace("_", r"\_") + "%",
                                escape="\\"),
        Notification.about_id.is_(None),
        Notification.status.in_(("delivered", "sending", "unknown")))).all())


# -- sending -------------------------------------------------------------------------------------------
def lease_due(session, rules: Rules, tz, owner: str, now: datetime, limit: int,
              lease: timedelta) -> list[str]:
    """Up to `limit` due notifications leased to this sender (another instance skips them);
    a non-urgent one found inside its recipient's quiet hours is moved past them instead (unless
    that would pass its deadline: a reminder after its meeting is no reminder)."""
    found: list = []
    for urgent in (True, False):  # urgent first; each an ordered range of ix_notification_due
        if len(found) >= limit:
            break
        query = (select(Notification.notification_id, Notification.urgent,
                        Notification.quiet_hours, Notification.deadline)
                 .where(Notification.status == "pending", Notification.urgent == urgent,
                        Notification.next_attempt_at <= now,
                        or_(Notification.lease_until.is_(None), Notification.lease_until < now))
                 .order_by(Notification.next_attempt_at)
                 .limit(limit - len(found)))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        found += session.execute(query).all()
    leased = []
    for notification_id, urgent, quiet, deadline in found:
        later = None if urgent else domain.quiet_until(now, window_of(rules, quiet), tz)
        if later is not None and domain.holds_past(later, as_utc(deadline), now):
            later = None  # held, it would come after its meeting: it goes now
        if later is not None:
            session.execute(update(Notification).where(
                Notification.notification_id == notification_id)
                .values(next_attempt_at=later))
        else:
            leased.append(notification_id)
    if leased:
        session.execute(update(Notification).where(Notification.notification_id.in_(leased))
                        .values(lease_owner=owner, lease_until=now + lease))
    return leased


@dataclass(frozen=True)
class Outgoing:
    """One send, as the channel needs it: never stored, never logged."""

    notification_id: str
    channel: str
    address: str | None
    subject: str
    body: str


def begin_send(session, notification_id: str, owner: str, now: datetime,
               default_robot: str | None = None) -> Outgoing | None:
    """Mark a leased row `sending` just before the channel is called, with the address as
    the copy holds it now. None when the row was withdrawn or taken meanwhile, or when its
    robot has no slot left in the vendor's window (it waits, unleased, until one frees)."""
    row = lookup(session, Notification, notification_id, with_for_update=True)
    if row is None or row.status != "pending" or row.lease_owner != owner:
        return None
    address = address_of(session, row)
    robot = (address or default_robot) if row.channel == "robot" else None
    if robot:
        wait = take_robot_slot(session, robot, time.time())
        if wait > 0:
            row.next_attempt_at = now + timedelta(seconds=wait)
            row.lease_owner = row.lease_until = None
            return None
    row.status = "sending"
    row.sending_since = now
    return Outgoing(row.notification_id, row.channel, address, row.subject, row.body)


_TABLE = Notification.__table__
# The common case of a group, as Core statements built once: a member's e-mail, SMS or in-app
# row marked `sending`, and a delivery recorded (ORM objects and their flush were most of the
# sender's own CPU). Robots (their budget) and every failure still go row by row below.
_MARK_SENDING = (update(_TABLE).where(_TABLE.c.notification_id == bindparam("b_id"))
                 .values(status="sending",
                         sending_since=bindparam("b_now", type_=_TABLE.c.sending_since.type)))
_MARK_DELIVERED = (update(_TABLE).where(_TABLE.c.notification_id == bindparam("b_id"))
                   .values(status="delivered", lease_owner=None, lease_until=None,
                           sending_since=None,
                           delivered_at=bindparam("b_now", type_=_TABLE.c.delivered_at.type),
                           attempts=bindparam("b_attempts", type_=_TABLE.c.attempts.type),
                           history=bindparam("b_history", type_=_TABLE.c.history.type)))


_CONTACTS = (select(ContactCopy.member_id, ContactCopy.email, ContactCopy.phone)
             .where(ContactCopy.member_id.in_(bindparam("keys", expanding=True))))


@lru_cache(maxsize=8)
def _group_query(columns: tuple[str, ...], for_update: bool):
    query = (select(*(_TABLE.c[name] for name in ("notification_id", *columns)))
             .where(_TABLE.c.notification_id.in_(bindparam("keys", expanding=True)))
             .order_by(_TABLE.c.notification_id))
    return query.with_for_update() if for_update else query


def _group_rows(session, notification_ids: list[str], *columns: str) -> dict:
    """The group's rows as plain tuples, locked in key order on PostgreSQL."""
    query = _group_query(columns, session.get_bind().dialect.name == "postgresql")
    return {row.notification_id: row for row in session.connection().execute(
        query, {"keys": sorted(set(notification_ids))})}


def begin_sends(session, notification_ids: list[str], owner: str, now: datetime,
                default_robot: str | None = None) -> list[Outgoing]:
    """begin_send for a group, in a few statements: the rows, their recipients' contacts, one
    UPDATE for them all. Rows for a robot or an organization go through begin_send."""
    rows = _group_rows(session, notification_ids, "status", "lease_owner", "channel",
                       "recipient_type", "recipient_id", "subject", "body")
    ours = [rows[key] for key in notification_ids if key in rows
            and rows[key].status == "pending" and rows[key].lease_owner == owner]
    plain = [row for row in ours if row.recipient_type == "member" and row.channel != "robot"]
    contacts = {}
    wanted = sorted({row.recipient_id for row in plain if row.channel != "in_app"})
    for start in range(0, len(wanted), 500):
        contacts.update((c.member_id, c) for c in session.connection().execute(
            _CONTACTS, {"keys": wanted[start:start + 500]}))
    outgoing = {}
    for row in plain:
        contact = contacts.get(row.recipient_id)
        address = (None if row.channel == "in_app" or contact is None
                   else {"email": contact.email, "sms": contact.phone}.get(row.channel))
        outgoing[row.notification_id] = Outgoing(row.notification_id, row.channel, address,
                                                 row.subject, row.body)
    if outgoing:
        session.connection().execute(_MARK_SENDING, [{"b_id": key, "b_now": now}
                                                     for key in outgoing])
    for row in ours:
        if row.notification_id not in outgoing:
            found = begin_send(session, row.notification_id, owner, now, default_robot)
            if found is not None:
                outgoing[row.notification_id] = found
    return [outgoing[key] for key in notification_ids if key in outgoing]


def finish_sends(uow: UnitOfWork, rules: Rules, answers: list, now: datetime,
                 owner: str | None = None) -> list[str]:
    """finish_send for a group of (notification_id, receipt, failure), their new statuses in
    order: the deliveries in one UPDATE, each failure through finish_send."""
    keys = [key for key, _, _ in answers]
    rows = _group_rows(uow.session, keys, "status", "last_error", "lease_owner", "channel",
                       "attempts", "history", "recipient_id", "kind", "cause")
    prefetch(uow.session, Notification, [key for key, _, failure in answers
                                         if failure is not None], for_update=True)
    delivered, statuses = [], []
    for key, receipt, failure in answers:
        row = rows.get(key)
        if failure is not None:
            statuses.append(finish_send(uow, rules, key, now, None, failure, owner))
        elif row is None:
            statuses.append("missing")
        elif not _answer_counts(row.status, row.last_error, row.lease_owner, owner):
            statuses.append(row.status)
        else:
            delivered.append({"b_id": key, "b_now": now, "b_attempts": row.attempts + 1,
                              "b_history": [*row.history, delivered_entry(
                                  {"channel": row.channel, "at": iso(now)}, receipt)]})
            uow.emit("notification_delivered", {**_event(row), "delivered_at": iso(now)})
            statuses.append("delivered")
    if delivered:
        uow.session.connection().execute(_MARK_DELIVERED, delivered)
    return statuses


@lru_cache(maxsize=4)
def _budget_row(dialect_name: str):
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(RobotBudget).on_conflict_do_nothing(index_elements=["robot_key"])


def take_robot_slot(session, url: str, at: float) -> float:
    """Take one send in the robot's windows (its vendor's limits, counted in real time as
    the vendor counts), shared by every instance through the locked `robot_budget` row: 0.0,
    or the seconds until a slot frees (nothing taken)."""
    try:
        limits = robot_flavour(url).limits
    except ValueError:
        return 0.0  # not a robot URL at all: the channel refuses it
    key = hashlib.sha256(url.encode()).hexdigest()[:32]  # the URL holds the robot's token
    session.connection().execute(_budget_row(session.get_bind().dialect.name),
                                 {"robot_key": key, "sent": []})
    budget = session.get(RobotBudget, key, with_for_update=True, populate_existing=True)
    longest = max(seconds for _, seconds in limits)
    sent = [t for t in budget.sent if t > at - longest]
    wait = window_wait(sent, at, limits)
    if wait > 0:
        return wait
    budget.sent = sent + [at]
    session.flush()  # the next take in this transaction reads it back (populate_existing)
    return 0.0


def address_of(session, row: Notification) -> str | None:
    if row.channel == "in_app":
        return None
    if row.recipient_type == "organization":
        org = lookup(session, OrgCopy, row.recipient_id)
        return org.robot_url if org is not None else None
    contact = lookup(session, ContactCopy, row.recipient_id)
    if contact is None:
        return None
    return {"email": contact.email, "sms": contact.phone}.get(row.channel)


def _event(row: Notification) -> dict:
    return {"notification_id": row.notification_id, "recipient_id": row.recipient_id,
            "kind": row.kind, "channel": row.channel, "cause": row.cause}


def _answer_counts(status: str, last_error: str | None, lease_owner: str | None,
                   owner: str | None) -> bool:
    """Is the row still waiting for this sender's answer? `sending` by this sender (with
    `owner`: a record retried after a commit whose answer was lost must not land on another
    instance's later attempt), or `unknown` by the sweep's guess, which a verdict beats."""
    if status == "sending":
        return owner is None or lease_owner == owner
    return status == "unknown" and last_error == SWEPT


def finish_send(uow: UnitOfWork, rules: Rules, notification_id: str, now: datetime,
                receipt: str | None = None, failure: ChannelFailure | None = None,
                owner: str | None = None) -> str:
    """Record what the channel answered; returns the row's new status."""
    row = lookup(uow.session, Notification, notification_id, with_for_update=True)
    if row is None:
        return "missing"
    if not _answer_counts(row.status, row.last_error, row.lease_owner, owner):
        return row.status
    row.lease_owner = row.lease_until = None
    row.sending_since = None
    entry = {"channel": row.channel, "at": iso(now)}
    if failure is None:
        row.status = "delivered"
        row.delivered_at = now
        row.attempts += 1
        row.history = [*row.history, delivered_entry(entry, receipt)]
        uow.emit("notification_delivered", {**_event(row), "delivered_at": iso(now)})
        return row.status
    detail = redact(failure.detail)
    row.last_error = detail
    row.history = [*row.history, {**entry, "outcome": type(failure).__name__,
                                  "detail": detail}]
    if isinstance(failure, DeliveryUnknown):
        row.status = "unknown"
        row.attempts += 1
        return row.status
    if isinstance(failure, TemporaryFailure) and not failure.attempted:
        # Our own rate limit held it back: nothing was tried, so no attempt is spent.
        row.status = "pending"
        row.next_attempt_at = now + timedelta(seconds=failure.retry_after or 1.0)
        return row.status
    row.attempts += 1
    if isinstance(failure, TemporaryFailure) and row.attempts < rules.attempts_per_channel:
        pause = max(domain.backoff(rules, row.attempts), failure.retry_after or 0)
        row.status = "pending"
        row.next_attempt_at = now + timedelta(seconds=pause)
        return row.status
    return next_channel(uow, row, now, detail)


def delivered_entry(entry: dict, receipt: str | None) -> dict:
    """A delivery in a notification's history, with the channel's acceptance (an e-mail's
    Message-ID: what a mail server's log can be searched for). Receipts are the channels' own
    words (channels.py), never an address: kept as they are."""
    return {**entry, "outcome": "delivered", **({"receipt": receipt[:200]} if receipt else {})}


def next_channel(uow: UnitOfWork, row: Notification, now: datetime, reason: str) -> str:
    """This channel is done with (its attempts spent, or it refused for good): say so, and
    move to the recipient's next channel; after the last one the notification has failed."""
    final = row.channel_index + 1 >= len(row.channels)
    uow.emit("notification_failed", {**_event(row), "reason": reason, "attempts": row.attempts,
                                     "final": final,
                                     "next_channel": None if final
                                     else row.channels[row.channel_index + 1]})
    if final:
        row.status = "failed"
        return row.status
    row.channel_index += 1
    row.channel = row.channels[row.channel_index]
    row.attempts = 0
    row.status = "pending"
    row.next_attempt_at = now
    return row.status


def sweep_stale(session, now: datetime) -> int:
    """Rows left `sending` by a sender that died between calling the channel and recording its
    answer: the channel may have taken them, so they are `unknown` (an admin may resend)."""
    return session.execute(update(Notification).where(
        Notification.status == "sending", Notification.sending_since < now - SENDING_TIMEOUT)
        .values(status="unknown", lease_owner=None, lease_until=None, sending_since=None,
                last_error=SWEPT)
    ).rowcount


# -- reads and admin changes -------------------------------------------------------------------------
def notification_dict(row: Notification, recipient_name: str | None = None) -> dict:
    return {
        "notification_id": row.notification_id, "recipient_id": row.recipient_id,
        "recipient_type": row.recipient_type, "recipient_name": recipient_name,
        "kind": row.kind, "channel": row.channel,
        "channels": list(row.channels), "subject": row.subject, "body": row.body,
        "status": row.status, "attempts": row.attempts, "urgent": bool(row.urgent),
        "not_before": iso(as_utc(row.not_before)), "created_at": iso(as_utc(row.created_at)),
        "delivered_at": iso(as_utc(row.delivered_at)) if row.delivered_at else None,
        "next_attempt_at": (iso(as_utc(row.next_attempt_at)) if row.status == "pending"
                            else None),
        "cause": row.cause, "ref": row.ref, "about_id": row.about_id,
        "last_error": row.last_error, "history": list(row.history or []),
    }


def list_notifications(uow: UnitOfWork, principal: Principal, filters: dict) -> dict:
    session = uow.session
    query = principal.limit(select(Notification), Notification.branch_path)
    if "org_id" in filters:
        org = session.get(OrgCopy, filters["org_id"])
        if org is None:
            raise NotFound(f"organization {filters['org_id']!r} not found")
        principal.check_scope(path_ids(org.path), f"organization {org.org_id!r}")
        query = query.where(under(Notification.branch_path, org.org_id))
    for key in ("recipient_id", "kind", "status", "channel", "cause", "ref"):
        if key in filters:
            query = query.where(getattr(Notification, key) == filters[key])
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(Notification.created_at.desc(),
                                          Notification.notification_id)
                           .limit(filters["limit"]).offset(filters["offset"])).all()
    names = recipient_names(session, rows)
    return {"items": [notification_dict(row, names.get((row.recipient_type, row.recipient_id)))
                      for row in rows], "total": total}


def recipient_names(session, rows) -> dict[tuple[str, str], str]:
    """{(recipient_type, id): name} of a page of notifications, in two queries: a list an
    admin reads names people and branches, not ids."""
    wanted = defaultdict(set)
    for row in rows:
        wanted[row.recipient_type].add(row.recipient_id)
    names = {}
    for kind, model, key in (("member", ContactCopy, ContactCopy.member_id),
                             ("organization", OrgCopy, OrgCopy.org_id)):
        ids = sorted(wanted.get(kind, ()))
        for start in range(0, len(ids), 500):
            names.update({(kind, ident): name for ident, name in session.execute(
                select(key, model.name).where(key.in_(ids[start:start + 500])))})
    return names


def summary(uow: UnitOfWork, principal: Principal, org_id: str | None) -> dict:
    """Counts by kind, channel and status (the demo's and the dashboard's overview)."""
    session = uow.session
    query = principal.limit(select(Notification.kind, Notification.channel,
                                   Notification.status, func.count()),
                            Notification.branch_path)
    if org_id:
        query = query.where(under(Notification.branch_path, org_id))
    rows = session.execute(query.group_by(Notification.kind, Notification.channel,
                                          Notification.status)).all()
    return {"items": [{"kind": k, "channel": c, "status": s, "count": n}
                      for k, c, s, n in sorted(rows)]}


def _visible_member(session, principal: Principal, member_id: str) -> ContactCopy:
    contact = session.get(ContactCopy, member_id)
    if contact is None:
        raise NotFound(f"member {member_id!r} not found")
    org = session.get(OrgCopy, contact.branch_id)
    principal.check_scope(path_ids(org.path if org else None), f"member {member_id!r}")
    return contact


def set_preferences(uow: UnitOfWork, principal: Principal, rules: Rules, prefs: dict,
                    now: datetime, tz, available=domain.MEMBER_CHANNELS) -> dict:
    """A member's channel order and quiet hours (null: none at all; never set: the rules
    file's); notifications not yet tried follow them."""
    session = uow.session
    contact = _visible_member(session, principal, prefs["member_id"])
    row = session.get(Preference, contact.member_id, with_for_update=True)
    if row is None:
        row = Preference(member_id=contact.member_id, updated_at=now)
        session.add(row)
    if "channels" in prefs:
        row.channels = prefs["channels"]
    if "quiet_hours" in prefs:
        try:
            window = parse_quiet_hours(prefs["quiet_hours"])
        except RulesError as error:
            raise ValidationError.field("quiet_hours", str(error)) from None
        row.quiet_hours = quiet_text(window)
    row.updated_at = now
    session.flush()
    preference = preference_of(row)
    window = preference.quiet_hours if preference.quiet_set else rules.quiet_hours
    person = domain.Contact(contact.member_id, contact.name, contact.branch_id, contact.status,
                            contact.phone, contact.email)
    channels = domain.member_channels(person, preference, available)
    for pending in session.scalars(select(Notification).where(
            Notification.recipient_id == contact.member_id,
            Notification.recipient_type == "member", Notification.status == "pending",
            Notification.attempts == 0, Notification.channel_index == 0)):
        pending.channels = channels
        pending.channel = channels[0]
        pending.quiet_hours = quiet_text(window) if preference.quiet_set else DEFAULT_QUIET
        planned = as_utc(pending.planned_at)
        # the new quiet hours would hold a reminder past its meeting: it goes at once
        beats = not pending.urgent and domain.holds_past(
            domain.send_after(planned, now, False, window, tz), as_utc(pending.deadline), now)
        pending.not_before = pending.next_attempt_at = domain.send_after(
            planned, now, pending.urgent or beats, window, tz)
    uow.commit()
    return {"member_id": contact.member_id, "channels": channels if row.channels else None,
            "quiet_hours": quiet_text(window) or None,
            "quiet_hours_default": not preference.quiet_set, "effective_channels": channels}


def resend(uow: UnitOfWork, principal: Principal, notification_id: str, now: datetime) -> dict:
    """An admin's retry of a failed or unknown notification: from its first channel again."""
    row = uow.session.get(Notification, notification_id, with_for_update=True)
    if row is None:
        raise NotFound(f"notification {notification_id!r} not found")
    principal.check_scope(path_ids(row.branch_path), f"notification {notification_id!r}")
    if row.status not in ("failed", "unknown"):
        raise Conflict(f"notification {notification_id!r} is {row.status}; only a failed or "
                       f"unknown one is sent again")
    row.history = [*row.history, {"at": iso(now), "outcome": "resend", "by": principal.sub}]
    row.status = "pending"
    row.channel_index = 0
    row.channel = row.channels[0]
    row.attempts = 0
    row.next_attempt_at = row.not_before = now
    row.lease_owner = row.lease_until = row.sending_since = None
    row.last_error = None
    name = recipient_names(uow.session, [row]).get((row.recipient_type, row.recipient_id))
    uow.commit()
    return notification_dict(row, name)

