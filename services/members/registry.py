"""members' service layer: each function is one use case inside one unit of work.

Entry points in service.py only validate the payload at the edge and call these; these load
what the domain rules need, apply them, store the change and emit its events together.
"""
from __future__ import annotations

from datetime import date

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


def _visible_org(uow: UnitOfWork, principal: Principal, org_id: str) -> Organization:
    org = _load_org(uow.session, org_id)
    if org is None:
        raise NotFound(f"organization {org_id!r} not found")
    principal.check_scope(domain.path_ids(org.path), f"organization {org_id!r}")
    return org


# -- organizations ---------------------------------------------------------------------------
def register_organization(uow: UnitOfWork, principal: Principal, org: dict) -> dict:
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
    record = Organization(
        org_id=org_id, name=org["name"], kind=org["kind"], parent_id=org.get("parent_id"),
        category=org.get("category"), path=domain.org_path(parent.path if parent else None, org_id),
        version=1,
    )
    session.add(record)
    session.flush()
    data = domain.organization_dict(record)
    uow.emit("organization_registered", data)
    uow.commit()
    return data


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
    session.flush()
    data = domain.member_dict(member)
    uow.emit("member_updated", data)
    uow.commit()
    return data


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
    session.execute(update(Membership).where(Membership.member_id == member.member_id)
                    .where(Membership.until.is_(None)).values(until=today))
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


def import_members(uow: UnitOfWork, principal: Principal, rows: list[dict], loaded: list,
                   today: date) -> dict:
    """Store every valid row, none of the invalid ones; unchanged rows emit nothing.

    `loaded[i]` is row i after schema validation, or a ValidationError for it.
    """
    session = uow.session
    index = OrgIndex(session)
    index.load([item.get("branch") or item.get("branch_id") for item in loaded
                if not isinstance(item, ValidationError)]
               + [item.get("group") or item.get("group_id") for item in loaded
                  if not isinstance(item, ValidationError)])
    errors: list[dict] = []
    candidates: list[tuple[int, dict]] = []
    seen_ids: dict[str, int] = {}
    for number, item in enumerate(loaded, start=1):
        if isinstance(item, ValidationError):
            errors.extend(_row_errors(number, item.errors))
            continue
        member = dict(item)
        row_errors: dict = {}
        branch_ref = member.pop("branch", None) or member.get("branch_id")
        branch, error = index.resolve("branch", branch_ref)
        if error:
            domain.add_error(row_errors, "branch", error)
        else:
            member["branch_id"] = branch.org_id
        group_ref = member.pop("group", None) or member.get("group_id")
        group = None
        if group_ref and branch is not None:
            group, error = index.resolve("group", group_ref, parent_id=branch.org_id)
            if error:
                domain.add_error(row_errors, "group", error)
            else:
                member["group_id"] = group.org_id
        if not row_errors:
            row_errors = domain.check_member(member, branch, group, today)
        if not row_errors and not principal.covers(domain.path_ids(branch.path)):
            row_errors = {"branch": [f"branch {branch.org_id!r} is outside your scope"]}
        if not row_errors:
            member["member_id"] = member.get("member_id") or domain.generated_member_id(member)
            first = seen_ids.setdefault(member["member_id"], number)
            if first != number:
                row_errors = {"member_id": [f"the same member as row {first}"]}
        if row_errors:
            errors.extend(_row_errors(number, row_errors))
            continue
        candidates.append((number, member))

    existing = _existing_members(session, [m["member_id"] for _, m in candidates])
    created, updated, unchanged = [], [], []
    inserts, events = [], []
    for number, member in candidates:
        current = existing.get(member["member_id"])
        if current is None:
            record = {**{k: None for k in domain.MEMBER_FIELDS}, **member, "version": 1}
            inserts.append(record)
            created.append(member["member_id"])
            events.append(("member_registered", record))
            continue
        if current.status not in ACTIVE_STATUSES:
            errors.extend(_row_errors(number, {"member_id": [
                f"member {current.member_id!r} is {current.status}; it is not re-imported"]}))
            continue
        if not principal.covers(domain.path_ids(index.get(current.branch_id).path)):
            errors.extend(_row_errors(number, {"member_id": ["this member is outside your scope"]}))
            continue
        if member["branch_id"] != current.branch_id:
            errors.extend(_row_errors(number, {"branch": [
                f"member {current.member_id!r} is in branch {current.branch_id!r}; "
                "moving a member is a transfer (transfer_member), not an import"]}))
            continue
        before = domain.member_dict(current)
        changed = domain.changed_fields(before, _comparable(member))
        if not changed:
            unchanged.append(current.member_id)
            continue
        for key in changed:
            setattr(current, key, member[key])
        current.version += 1
        updated.append(current.member_id)
        events.append(("member_updated", domain.member_dict(current)))
    if inserts:
        session.execute(Member.__table__.insert(), inserts)
        session.execute(Membership.__table__.insert(), [
            {"member_id": row["member_id"], "branch_id": row["branch_id"],
             "since": row["joined_on"] or today} for row in inserts])
    for event_type, record in events:
        data = {k: record[k] for k in domain.MEMBER_FIELDS}
        if isinstance(data["joined_on"], date):
            data["joined_on"] = data["joined_on"].isoformat()
        uow.emit(event_type, data)
    uow.commit()
    return {"created": created, "updated": updated, "unchanged": unchanged,
            "errors": sorted(errors, key=lambda e: (e["row"], e["field"]))}


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
