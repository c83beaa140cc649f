"""members' service layer: each function is one use case inside one unit of work.

Entry points in service.py only validate the payload at the edge and call these; these load
what the domain rules need, apply them, store the change and emit its events together.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, or_, select, update

from orglife.common.auth import Principal
from orglife.common.clock import iso
from orglife.common.db import UnitOfWork, page, under
from orglife.common.errors import Conflict, Forbidden, NotFound, ValidationError
from orglife.common.vocabulary import ACTIVE_STATUSES, ARCHIVED_STATUSES

from . import domain
from .models import Member, Membership, Organization, Participation

NEW_ID_PREFIX = {"county": "c-", "township": "t-", "general_branch": "gb-", "branch": "b-",
                 "group": "g-"}


def _new_org_id(kind: str) -> str:
    import uuid
    return NEW_ID_PREFIX[kind] + uuid.uuid4().hex[:12]


def _load_org(session, org_id: str | None) -> Organization | None:
    return session.get(Organization, org_id) if org_id else None


def _visible_org(uow: UnitOfWork, principal: Principal, org_id: str,
                 for_update: bool = False) -> Organization:
    # A change locks the row (as _visible_member does): two instances changing one
    # organization give versions N+1 and N+2, never two different N+1.
    org = uow.session.get(Organization, org_id, with_for_update=for_update) if org_id else None
    if org is None:
        raise NotFound(f"organization {org_id!r} not found")
    principal.check_scope(domain.path_ids(org.path), f"organization {org_id!r}")
    return org


# -- organizations ---------------------------------------------------------------------------
def register_organization(uow: UnitOfWork, principal: Principal, org: dict,
                          now: datetime) -> dict:
    session = uow.session
    parent = _load_org(session, org.get("parent_id"))
    errors = domain.check_organization(org, parent)
    if errors:
        raise ValidationError(errors)
    # A scoped admin registers only under its own subtree, never a new root.
    principal.check_scope(domain.path_ids(parent.path) if parent else [],
                          "the parent organization")
    org_id = org.get("org_id") or _new_org_id(org["kind"])
    existing = session.get(Organization, org_id)
    if existing is not None:
        current = domain.organization_dict(existing)
        if domain.changed_fields(current, {**org, "org_id": org_id}):
            raise Conflict(f"organization {org_id!r} exists with different fields")
        return current
    if org.get("secretary_id") is not None:
        # Its secretary is one of its members, and a new organization has none yet.
        raise ValidationError.field(
            "secretary_id", "a new organization has no members yet: set its secretary with "
            "update_organization once they are registered")
    record = Organization(
        org_id=org_id, name=org["name"], kind=org["kind"], parent_id=org.get("parent_id"),
        category=org.get("category"), path=domain.org_path(parent.path if parent else None, org_id),
        version=1, registered_at=now, secretary_id=None, robot_url=org.get("robot_url"),
    )
    session.add(record)
    session.flush()
    data = domain.organization_dict(record)
    uow.emit("organization_registered", data)
    uow.commit()
    return data


def update_organization(uow: UnitOfWork, principal: Principal, changes: dict) -> dict:
    """Change an organization's name, category, secretary or robot (SPEC §4).

    Scope: a county admin any organization, a township admin those of its subtree, a branch
    secretary its own branch (and its groups), and that only for `secretary_id` and
    `robot_url`: names and categories are the admins'. Only the fields that differ from what
    is stored are checked and changed; nothing changed is no new version and no event.
    """
    session = uow.session
    org = _visible_org(uow, principal, changes["org_id"], for_update=True)
    if principal.role == "branch_secretary":
        refused = [name for name in domain.ORG_ADMIN_ONLY if name in changes]
        if refused:
            raise Forbidden(f"a branch secretary sets its branch's secretary_id and robot_url; "
                            f"{' and '.join(refused)} are changed by a township or county admin")
    wanted = {name: changes[name] for name in domain.ORG_CHANGEABLE
              if name in changes and getattr(org, name) != changes[name]}
    if not wanted:
        return domain.organization_dict(org)
    errors = domain.check_organization_changes(org, wanted)
    if wanted.get("secretary_id") is not None:
        error = _secretary_error(session, principal, org, wanted["secretary_id"])
        if error:
            domain.add_error(errors, "secretary_id", error)
    if errors:
        raise ValidationError(errors)
    for name, value in wanted.items():
        setattr(org, name, value)
    org.version += 1
    session.flush()
    data = domain.organization_dict(org)
    uow.emit("organization_updated", data)
    uow.commit()
    return data


def _secretary_error(session, principal: Principal, org: Organization,
                     secretary_id: str) -> str | None:
    member = session.get(Member, secretary_id)
    path: list[str] = []
    if member is not None:
        branch = session.get(Organization, member.branch_id)
        path = domain.path_ids(branch.path) if branch is not None else []
        if not principal.covers(path):
            member, path = None, []  # outside the caller's scope: not confirmed to exist
    return domain.secretary_error(org, secretary_id, member, path)


def get_organization(uow: UnitOfWork, principal: Principal, org_id: str) -> dict:
    org = _visible_org(uow, principal, org_id)
    out = domain.organization_dict(org)
    out["children"] = uow.session.scalar(
        select(func.count()).select_from(Organization).where(Organization.parent_id == org_id))
    out["members"] = uow.session.scalar(
        select(func.count()).select_from(Member).join(Organization, Member.branch_id == Organization.org_id)
        .where(under(Organization.path, org.org_id))
        .where(Member.status.in_(ACTIVE_STATUSES)))
    return out


def list_organizations(uow: UnitOfWork, principal: Principal, filters: dict) -> dict:
    query = principal.limit(select(Organization), Organization.path)
    if "under" in filters:
        subtree = _visible_org(uow, principal, filters["under"])
        query = query.where(under(Organization.path, subtree.org_id))
    for name in ("kind", "parent_id", "category"):
        if name in filters:
            query = query.where(getattr(Organization, name) == filters[name])
    if "q" in filters:
        query = query.where(Organization.name.contains(filters["q"]))
    return page(uow.session, query, [Organization.path], filters, domain.organization_dict)


# -- members ---------------------------------------------------------------------------------
def _placement(session, member: dict) -> tuple[Organization | None, Organization | None]:
    return _load_org(session, member.get("branch_id")), _load_org(session, member.get("group_id"))


def register_member(uow: UnitOfWork, principal: Principal, member: dict, today: date) -> dict:
    session = uow.session
    branch, group = _placement(session, member)
    errors = domain.check_member(member, branch, group, today)
    if errors:
        raise ValidationError(errors)
    principal.check_scope(domain.path_ids(branch.path), f"branch {branch.org_id!r}")
    member_id = member.get("member_id") or domain.generated_member_id(member)
    incoming = {**member, "member_id": member_id}
    existing = session.get(Member, member_id)
    if existing is not None:
        current = domain.member_dict(existing)
        if domain.changed_fields(current, _comparable(incoming)):
            raise Conflict(f"member {member_id!r} exists with different fields")
        return current
    record = Member(**incoming, version=1)
    session.add(record)
    session.add(Membership(member_id=member_id, branch_id=record.branch_id,
                           since=record.joined_on or today))
    session.flush()
    data = domain.member_dict(record)
    uow.emit("member_registered", data)
    uow.commit()
    return data


def _comparable(member: dict) -> dict:
    out = {key: value for key, value in member.items() if key in domain.MEMBER_FIELDS}
    if isinstance(out.get("joined_on"), date):
        out["joined_on"] = out["joined_on"].isoformat()
    return out


def _visible_member(uow: UnitOfWork, principal: Principal, member_id: str,
                    for_update: bool = False) -> Member:
    # A change locks the row, so that two instances changing one member get versions N+1
    # and N+2, never two different N+1.
    member = uow.session.get(Member, member_id, with_for_update=for_update)
    if member is None:
        raise NotFound(f"member {member_id!r} not found")
    branch = uow.session.get(Organization, member.branch_id)
    principal.check_scope(domain.path_ids(branch.path), f"member {member_id!r}")
    return member


def get_member(uow: UnitOfWork, principal: Principal, member_id: str) -> dict:
    member = _visible_member(uow, principal, member_id)
    out = domain.member_dict(member)
    out["branch_history"] = [
        {"branch_id": m.branch_id, "since": m.since.isoformat(),
         "until": m.until.isoformat() if m.until else None}
        for m in uow.session.scalars(select(Membership).where(Membership.member_id == member_id)
                                     .order_by(Membership.id))]
    out["participation"] = participation_record(uow.session, member_id)
    return out


def participation_record(session, member_id: str) -> dict:
    rows = session.scalars(
        select(Participation).where(Participation.member_id == member_id)
        .order_by(Participation.held_at, Participation.ref)).all()
    items, counts = [], {}
    for row in rows:
        items.append({
            "ref": row.ref, "kind": row.kind, "type": row.type, "branch_id": row.branch_id,
            "held_at": iso(row.held_at), "status": row.status,
            "remote": row.remote, "visiting": row.visiting, "topic": row.topic,
        })
        per_type = counts.setdefault(str(row.year), {}).setdefault(
            row.type, {"present": 0, "leave": 0, "absent": 0, "done": 0})
        per_type[row.status] = per_type.get(row.status, 0) + 1
    return {"items": items, "counts": counts}


def list_members(uow: UnitOfWork, principal: Principal, filters: dict) -> dict:
    query = principal.limit(select(Member).join(Organization,
                                                Member.branch_id == Organization.org_id),
                            Organization.path)
    if "under" in filters:
        subtree = _visible_org(uow, principal, filters["under"])
        query = query.where(under(Organization.path, subtree.org_id))
    for name in ("branch_id", "group_id", "status", "mobile", "committee_member"):
        if name in filters:
            query = query.where(getattr(Member, name) == filters[name])
    if "q" in filters:
        query = query.where(or_(Member.name.contains(filters["q"]),
                                Member.member_id == filters["q"]))
    return page(uow.session, query, [Member.member_id], filters, domain.member_dict)


def update_member(uow: UnitOfWork, principal: Principal, changes: dict, today: date) -> dict:
    session = uow.session
    member = _visible_member(uow, principal, changes["member_id"], for_update=True)
    if member.status in ARCHIVED_STATUSES:
        raise Conflict(f"member {member.member_id!r} is {member.status}; an archived record "
                       "is not changed")
    current = domain.member_dict(member)
    merged = {**current, **_comparable(changes)}
    wanted = domain.changed_fields(current, merged)
    if not wanted:
        return current
    if merged.get("joined_on") and isinstance(merged["joined_on"], str):
        merged["joined_on"] = date.fromisoformat(merged["joined_on"])
    if not merged.get("mobile"):
        merged["mobile_location"] = None if "mobile_location" not in changes else merged["mobile_location"]
    branch, group = _placement(session, merged)
    errors = domain.check_member(merged, branch, group, today)
    if errors:
        raise ValidationError(errors)
    for key in wanted:
        setattr(member, key, changes[key] if key in changes else merged[key])
    member.version += 1
    if member.status in ARCHIVED_STATUSES:  # removed or deceased: no longer in the branch
        _close_branch_history(session, member.member_id, today)
    session.flush()
    data = domain.member_dict(member)
    uow.emit("member_updated", data)
    uow.commit()
    return data


def _close_branch_history(session, member_id: str, today: date) -> None:
    """End the member's open branch history row: at a transfer, or when archived."""
    session.execute(update(Membership).where(Membership.member_id == member_id)
                    .where(Membership.until.is_(None)).values(until=today))


def transfer_member(uow: UnitOfWork, principal: Principal, transfer: dict, today: date) -> dict:
    session = uow.session
    member = _visible_member(uow, principal, transfer["member_id"], for_update=True)
    if member.status not in ACTIVE_STATUSES:
        raise Conflict(f"member {member.member_id!r} is {member.status} and cannot be transferred")
    from_branch_id = member.branch_id
    to_branch_id = transfer["to_branch_id"]
    if to_branch_id is None:
        member.status = "transferred_out"
        member.group_id = None
    else:
        if to_branch_id == from_branch_id:
            raise ValidationError.field("to_branch_id", "the member is already in this branch")
        target = {**domain.member_dict(member), "branch_id": to_branch_id,
                  "group_id": transfer.get("to_group_id"), "joined_on": member.joined_on}
        branch, group = _placement(session, target)
        errors = domain.check_member(target, branch, group, today)
        errors = {("to_branch_id" if k == "branch_id" else "to_group_id" if k == "group_id" else k): v
                  for k, v in errors.items()}
        if errors:
            raise ValidationError(errors)
        # Either end of the move may be the caller's: the sending branch releases the member.
        member.branch_id, member.group_id = to_branch_id, transfer.get("to_group_id")
    member.version += 1
    _close_branch_history(session, member.member_id, today)
    if to_branch_id is not None:
        session.add(Membership(member_id=member.member_id, branch_id=to_branch_id, since=today))
    session.flush()
    data = domain.member_dict(member)
    uow.emit("member_transferred", {**data, "from_branch_id": from_branch_id,
                                    "to_branch_id": to_branch_id})
    uow.commit()
    return data


# -- bulk import -----------------------------------------------------------------------------
ORG_ROW = (Organization.org_id, Organization.name, Organization.kind, Organization.parent_id,
           Organization.path)


class OrgIndex:
    """The organizations an import refers to, as plain rows (this runs for every import call
    of a county's thousands of rows): by id on demand, by name only when a sheet uses names."""

    def __init__(self, session):
        self.session = session
        self.by_id: dict = {}
        self._by_name: dict | None = None

    def load(self, org_ids) -> None:
        missing = [org_id for org_id in set(org_ids) if org_id and org_id not in self.by_id]
        for start in range(0, len(missing), 500):
            for row in self.session.execute(select(*ORG_ROW).where(
                    Organization.org_id.in_(missing[start:start + 500]))):
                self.by_id[row.org_id] = row

    def get(self, org_id: str):
        self.load([org_id])
        return self.by_id.get(org_id)

    def resolve(self, kind: str, ref: str, parent_id: str | None = None):
        """(org, error): by id first, then by unique name (within `parent_id` for groups)."""
        org = self.get(ref)
        if org is not None:
            return org, None
        if self._by_name is None:
            self._by_name = {}
            for row in self.session.execute(select(*ORG_ROW)):
                self._by_name.setdefault((row.kind, row.name), []).append(row)
        matches = [o for o in self._by_name.get((kind, ref), [])
                   if parent_id is None or o.parent_id == parent_id]
        if len(matches) == 1:
            return matches[0], None
        if not matches:
            return None, f"unknown {kind} {ref!r}"
        return None, f"{len(matches)} {kind}es are named {ref!r}: use the id"


@dataclass
class ImportRow:
    """One valid row on its way in: the member it describes and, if it exists, the stored one."""

    number: int
    member: dict
    current: Member | None = None
    generated: bool = False  # its member_id was generated here (the row gave none)
    matched: bool = False  # its member_id is that of the stored member its identity matched

    # what identity_matches reads, so later rows of the same call can match a new member
    @property
    def name(self):
        return self.member["name"]

    @property
    def phone(self):
        return self.member.get("phone")

    @property
    def branch_id(self):
        return self.member["branch_id"]

    @property
    def member_id(self):
        # set (given or generated) before the row can be matched: it joins `by_name` then
        return self.member.get("member_id")


def import_members(uow: UnitOfWork, principal: Principal, rows: list[dict], loaded: list,
                   today: date) -> dict:
    """Store every valid row, none of the invalid ones; unchanged rows emit nothing.

    `loaded[i]` is row i after schema validation, or a ValidationError for it. A row is the
    member its `member_id` names, or else the one its identity matches (name and phone, or
    name and branch without a phone; domain.identity_matches); two matches are an error
    naming the row. A new member gets the defaults for what its row leaves out; an existing
    one changes only in the cells its row fills (SPEC §4, Import).

    The members an import changes are locked (PostgreSQL; on SQLite the unit of work holds
    the write lock from its start) and re-read before they change, so each change is the next
    version of the member as stored, never a second "version N+1" beside a concurrent
    update_member that meetings would have to choose from.
    """
    session = uow.session
    valid = [item for item in loaded if not isinstance(item, ValidationError)]
    index = OrgIndex(session)
    index.load([item.get("branch") or item.get("branch_id") for item in valid]
               + [item.get("group") or item.get("group_id") for item in valid])
    stored = _existing_members(session, [item["member_id"] for item in valid
                                         if item.get("member_id")])
    # Whom a row without member_id may be, by name: stored members, then the members this
    # call creates (a later row naming one of them again is a duplicate).
    by_name: dict[str, list] = {}
    for person in _people_named(session, {item["name"] for item in valid
                                          if not item.get("member_id")}, principal):
        by_name.setdefault(person.name, []).append(person)
    errors: list[dict] = []
    accepted: list[ImportRow] = []
    for number, item in enumerate(loaded, start=1):
        if isinstance(item, ValidationError):
            errors.extend(_row_errors(number, item.errors))
            continue
        member, row_errors = _placed(index, item)
        if not row_errors and not principal.covers(
                domain.path_ids(index.get(member["branch_id"]).path)):
            row_errors = {"branch": [f"branch {member['branch_id']!r} is outside your scope"]}
        if row_errors:
            errors.extend(_row_errors(number, row_errors))
            continue
        row = ImportRow(number, member)
        if member.get("member_id"):
            row.current = stored.get(member["member_id"])
        else:
            matches = domain.identity_matches(member, by_name.get(member["name"], []))
            if len(matches) > 1:
                errors.extend(_row_errors(number, {"member_id": [_ambiguous(member, matches)]}))
                continue
            if matches and isinstance(matches[0], ImportRow):
                errors.extend(_row_errors(number, {"member_id": [
                    f"the same member as row {matches[0].number}"]}))
                continue
            if matches:
                member["member_id"] = matches[0].member_id
                row.matched = True
            else:
                namesakes = domain.namesakes(member, [
                    p for p in by_name.get(member["name"], []) if not isinstance(p, ImportRow)])
                if namesakes:
                    # The same name in the same branch, with another phone or none: the same
                    # person whose phone the sheet now has, or a namesake. Not a guess to make.
                    errors.extend(_row_errors(number, {"member_id": [_namesake(member,
                                                                               namesakes)]}))
                    continue
                member["member_id"] = domain.generated_member_id(member)
                row.generated = True
        if row.current is None and not row.matched:
            by_name.setdefault(member["name"], []).append(row)
        accepted.append(row)
    stored.update(_existing_members(session, [row.member["member_id"] for row in accepted
                                              if row.matched]))
    for row in accepted:
        if row.matched:
            row.current = stored[row.member["member_id"]]

    # A generated id another member (or another row) already holds is not theirs to take.
    given_ids = {row.member["member_id"] for row in accepted if not row.generated}
    taken = given_ids | set(_existing_members(session, [
        row.member["member_id"] for row in accepted if row.generated]))
    seen: dict[str, int] = {}
    creates: list[ImportRow] = []
    changes: list[ImportRow] = []
    unchanged: list[str] = []
    for row in accepted:
        member = row.member
        if row.generated and member["member_id"] in taken:
            member["member_id"] = domain.random_member_id()
        first = seen.setdefault(member["member_id"], row.number)
        if first != row.number:
            errors.extend(_row_errors(row.number, {"member_id": [f"the same member as row {first}"]}))
            continue
        if row.current is None:
            record = {**domain.NEW_MEMBER_DEFAULTS, **member}
            row_errors = domain.check_member(record, index.get(record["branch_id"]),
                                             index.get(record["group_id"]) if record["group_id"]
                                             else None, today)
            if row_errors:
                errors.extend(_row_errors(row.number, row_errors))
            else:
                row.member = record
                creates.append(row)
            continue
        wanted, row_errors = _plan_update(index, principal, row.current, member, today)
        if row_errors:
            errors.extend(_row_errors(row.number, row_errors))
        elif wanted:
            changes.append(row)
        else:
            unchanged.append(row.current.member_id)

    # Lock what changes, then plan again on what is stored now (another writer may have
    # been first); in member_id order, so two imports never wait for each other in a circle.
    _lock_members(session, sorted(row.current.member_id for row in changes))
    created, updated, events = [], [], []
    for row in changes:
        current = row.current
        wanted, row_errors = _plan_update(index, principal, current, row.member, today)
        if row_errors:
            errors.extend(_row_errors(row.number, row_errors))
            continue
        if not wanted:
            unchanged.append(current.member_id)
            continue
        for key, value in wanted.items():
            setattr(current, key, value)
        current.version += 1
        updated.append(current.member_id)
        events.append(("member_updated", domain.member_dict(current)))
    inserts = [{**row.member, "version": 1} for row in creates]
    if inserts:
        session.execute(Member.__table__.insert(), inserts)
        session.execute(Membership.__table__.insert(), [
            {"member_id": row["member_id"], "branch_id": row["branch_id"],
             "since": row["joined_on"] or today} for row in inserts])
        for record in inserts:
            created.append(record["member_id"])
            events.append(("member_registered", record))
    session.flush()
    for event_type, record in events:
        data = {k: record[k] for k in domain.MEMBER_FIELDS}
        if isinstance(data["joined_on"], date):
            data["joined_on"] = data["joined_on"].isoformat()
        uow.emit(event_type, data)
    uow.commit()
    return {"created": created, "updated": updated, "unchanged": unchanged,
            "errors": sorted(errors, key=lambda e: (e["row"], e["field"]))}


def _placed(index: OrgIndex, item: dict) -> tuple[dict, dict]:
    """The row with its branch (and group, if it names one) resolved to ids, or the errors."""
    member = dict(item)
    errors: dict = {}
    branch_ref = member.pop("branch", None) or member.get("branch_id")
    branch, error = index.resolve("branch", branch_ref)
    if error:
        domain.add_error(errors, "branch", error)
    else:
        member["branch_id"] = branch.org_id
    group_ref = member.pop("group", None) or member.get("group_id")
    if group_ref and branch is not None:
        group, error = index.resolve("group", group_ref, parent_id=branch.org_id)
        if error:
            domain.add_error(errors, "group", error)
        else:
            member["group_id"] = group.org_id
    if not errors and branch.kind != "branch":
        domain.add_error(errors, "branch" if item.get("branch") else "branch_id",
                         f"{branch.org_id!r} is a {branch.kind}, not a branch")
    return member, errors


def _namesake(member: dict, namesakes: list) -> str:
    ids = ", ".join(sorted(m.member_id for m in namesakes)[:5])
    return (f"{member['name']} is already in branch {member['branch_id']} ({ids}) with "
            "another phone or none: give the member_id (编号) to update that member, or a "
            "new member_id to add a namesake")


def _ambiguous(member: dict, matches: list) -> str:
    """The stored members and the earlier rows of this sheet (new members) a row matches."""
    ids = ", ".join(sorted(f"{m.member_id} (row {m.number})" if isinstance(m, ImportRow)
                           else m.member_id for m in matches)[:5])
    by = "name and phone" if member.get("phone") else "name and branch"
    return f"{len(matches)} members match this row's {by} ({ids}); give the member_id"


def _plan_update(index: OrgIndex, principal: Principal, current: Member, member: dict,
                 today: date) -> tuple[dict, dict]:
    """(the fields a row changes in a stored member, or the errors that refuse the row).

    Only the cells the row fills count: the rest of the member stays as stored."""
    if current.status not in ACTIVE_STATUSES:
        return {}, {"member_id": [f"member {current.member_id!r} is {current.status}; "
                                  "it is not re-imported"]}
    branch = index.get(current.branch_id)
    if not principal.covers(domain.path_ids(branch.path)):
        return {}, {"member_id": ["this member is outside your scope"]}
    if member["branch_id"] != current.branch_id:
        return {}, {"branch": [f"member {current.member_id!r} is in branch "
                               f"{current.branch_id!r}; moving a member is a transfer "
                               "(transfer_member), not an import"]}
    given = {key: value for key, value in member.items()
             if key in domain.MEMBER_FIELDS and key not in ("member_id", "version")}
    if given.get("mobile") is False and "mobile_location" not in given:
        given["mobile_location"] = None  # as update_member: no longer mobile, no location
    stored = {name: getattr(current, name) for name in domain.MEMBER_FIELDS}
    wanted = {key: value for key, value in given.items() if stored[key] != value}
    if not wanted:
        return {}, {}
    merged = {**stored, **wanted}
    group = index.get(merged["group_id"]) if merged["group_id"] else None
    errors = domain.check_member(merged, branch, group, today)
    return ({}, errors) if errors else (wanted, {})


def _lock_members(session, member_ids: list[str]) -> None:
    """SELECT ... FOR UPDATE the members about to change, refreshing them from the database.
    SQLite has no row locks: there the unit of work took the write lock when it began."""
    if not member_ids or session.get_bind().dialect.name == "sqlite":
        return
    for start in range(0, len(member_ids), 500):
        session.scalars(select(Member).where(Member.member_id.in_(member_ids[start:start + 500]))
                        .order_by(Member.member_id).with_for_update()
                        .execution_options(populate_existing=True)).all()


def _people_named(session, names, principal: Principal) -> list:
    """Who bears one of `names` (any branch, any status) within the caller's scope: what
    identity_matches reads. A scoped admin's sheet is matched against its own subtree only,
    so an error can never name (or confirm) a member outside it."""
    names = sorted(names)
    found = []
    for start in range(0, len(names), 500):
        query = select(Member.member_id, Member.name, Member.phone, Member.branch_id).join(
            Organization, Organization.org_id == Member.branch_id).where(
            Member.name.in_(names[start:start + 500]))
        found += session.execute(principal.limit(query, Organization.path)).all()
    return found


def _existing_members(session, member_ids: list[str]) -> dict[str, Member]:
    found: dict[str, Member] = {}
    for start in range(0, len(member_ids), 500):
        chunk = member_ids[start:start + 500]
        for member in session.scalars(select(Member).where(Member.member_id.in_(chunk))):
            found[member.member_id] = member
    return found


def _row_errors(number: int, errors: dict) -> list[dict]:
    return [{"row": number, "field": field, "message": message}
            for field, messages in errors.items() for message in messages]
