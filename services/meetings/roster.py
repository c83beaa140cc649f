"""meetings' own copy of members' organizations and members, built only from their events.

meetings reads no other service's database (SPEC §4): it keeps every version of each member
with the instant it took effect, so a meeting logged late is expanded with the roster of its
date, and every organization at its highest version. `HANDLERS` is the dispatch table of the
consumer of members' events (checked against orglife/system.py when the service starts).
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from sqlalchemy import select, update

from orglife.common.clock import as_utc
from orglife.common.db import UnitOfWork
from orglife.common.envelope import Envelope

from .domain import Person
from .models import Activity, CopyWatermark, MemberCopy, OrgCopy

EPOCH = datetime(1900, 1, 1, tzinfo=timezone.utc)


def path_ids(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def apply_organization(uow: UnitOfWork, envelope: Envelope, tz) -> None:
    """The organization at its highest version: organization_registered and
    organization_updated carry the whole record, so whichever arrives last, an older version
    changes nothing (a rename or a new category reaches the copy; kind and parent never
    change)."""
    data = envelope.data
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
        # Activities stored while this branch was not known yet (logged by intake, or kept
        # from before migration 0003, which filled only the branches it knew) take its path
        # now, so that scoped reads find them; a path never changes (nor does a parent).
        session.execute(update(Activity).where(Activity.branch_id == data["org_id"],
                                               Activity.branch_path.is_(None))
                        .values(branch_path=path))
    else:
        for key, value in values.items():
            setattr(current, key, value)


def apply_member(uow: UnitOfWork, envelope: Envelope, tz) -> None:
    """Keep every version of a member with the instant it took effect (see MemberCopy)."""
    data = member_data(envelope)
    session = uow.session
    if session.get(MemberCopy, (data["member_id"], data["version"])) is not None:
        return
    if data["version"] == 1:
        valid_from = joined_instant(data.get("joined_on"), tz)
    else:
        valid_from = datetime.fromisoformat(envelope.occurred_at.replace("Z", "+00:00"))
    session.add(MemberCopy(
        member_id=data["member_id"], version=data["version"], valid_from=valid_from,
        name=data["name"], branch_id=data["branch_id"], group_id=data.get("group_id"),
        status=data["status"], committee_member=bool(data.get("committee_member")),
        no_vote=bool(data.get("no_vote")), mobile=bool(data.get("mobile")),
    ))


def joined_instant(joined, tz) -> datetime:
    """When a member's first version takes effect: the start of the day they joined, in county
    time. A day that cannot be read or converted (members accepted 0001-01-01 before it
    checked joined_on, and such events may still be queued) falls back to EPOCH, a member
    since ever, instead of stopping the copy of members."""
    if not joined:
        return EPOCH
    try:
        moment = datetime.fromisoformat(joined).replace(tzinfo=tz).astimezone(timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return EPOCH
    return max(moment, EPOCH)


def member_data(envelope: Envelope) -> dict:
    """The member an event describes: flat in every event, but nested under "member" in
    member_transferred's schema version 1 (still read while such events may be queued)."""
    if envelope.event_type == "member_transferred" and envelope.schema_version == 1:
        return envelope.data["member"]
    return envelope.data


# members' events → what each does to the copy.
HANDLERS = {
    "organization_registered": apply_organization,
    "organization_updated": apply_organization,
    "member_registered": apply_member,
    "member_updated": apply_member,
    "member_transferred": apply_member,
}


PERSON_COLUMNS = (MemberCopy.member_id, MemberCopy.version, MemberCopy.valid_from,
                  MemberCopy.branch_id, MemberCopy.group_id, MemberCopy.status,
                  MemberCopy.committee_member, MemberCopy.no_vote)


def _versions(rows) -> dict[str, list[tuple]]:
    """Per member, their versions as (instant in force from, version, as a member then, as
    not yet one), ordered by instant then version: converted once, so that a cached branch
    is chosen from at each meeting without converting or building anything again."""
    versions: dict[str, list[tuple]] = {}
    for member_id, version, valid_from, branch_id, group_id, status, committee, no_vote in rows:
        member = Person(member_id, branch_id, group_id, status, bool(committee), bool(no_vote))
        versions.setdefault(member_id, []).append(
            (as_utc(valid_from), version, member, replace(member, joined=False)))
    for member_versions in versions.values():
        member_versions.sort(key=lambda v: (v[0], v[1]))
    return dict(sorted(versions.items()))


def _choose(versions: dict[str, list[tuple]], at: datetime) -> dict[str, Person]:
    """Per member, the version in force at `at`: the latest one that started by then. A
    member whose first version starts later (joined after `at`) is known but not yet a
    member (their first version, with joined=False): never expected, never counted."""
    chosen: dict[str, Person] = {}
    for member_id, member_versions in versions.items():
        if member_versions[0][0] > at:
            chosen[member_id] = member_versions[0][3]
            continue
        for since, _, member, _ in reversed(member_versions):
            if since <= at:
                chosen[member_id] = member
                break
    return chosen


def people_at(session, member_ids, at: datetime) -> dict[str, Person]:
    """Each known member as they were at `at`."""
    ids = list(member_ids)
    rows = []
    for start in range(0, len(ids), 500):
        rows += session.execute(select(*PERSON_COLUMNS).where(
            MemberCopy.member_id.in_(ids[start:start + 500]))).all()
    return _choose(_versions(rows), at)


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
        self.rows: dict[str, dict[str, list[tuple]]] = {}
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

    def branch_rows(self, session, branch_id: str) -> dict[str, list[tuple]]:
        if branch_id not in self.rows:
            self.rows[branch_id] = _branch_rows(session, branch_id)
        return self.rows[branch_id]


def _branch_rows(session, branch_id: str) -> dict[str, list[tuple]]:
    """Every version of everyone who was ever in the branch (see _versions)."""
    ever_in_branch = select(MemberCopy.member_id).where(MemberCopy.branch_id == branch_id)
    return _versions(session.execute(select(*PERSON_COLUMNS)
                                     .where(MemberCopy.member_id.in_(ever_in_branch))).all())


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
