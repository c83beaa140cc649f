"""members' domain rules as plain functions: no nameko, no database session.

The service loads what these need (the organization, its parent, the existing member) and
passes plain values in; each check returns the errors it finds as {field: [messages]}.
"""
from __future__ import annotations

import re
import uuid
from datetime import date

from orglife.common.clock import iso
from orglife.common.vocabulary import ACTIVE_STATUSES, ARCHIVED_STATUSES, ORG_PARENT_KINDS

MOBILE_PHONE = re.compile(r"^1[3-9]\d{9}$")
MEMBER_FIELDS = (
    "member_id", "name", "branch_id", "group_id", "status", "mobile", "mobile_location",
    "committee_member", "no_vote", "phone", "email", "joined_on", "version",
)
ORG_FIELDS = ("org_id", "name", "kind", "parent_id", "category", "secretary_id", "robot_url",
              "version")
# What update_organization may change (SPEC §4); kind and parent never change. A branch
# secretary sets only its own branch's secretary and robot: names and categories are the
# admins' (they decide how branches are counted and ranked).
ORG_CHANGEABLE = ("name", "category", "secretary_id", "robot_url")
ORG_ADMIN_ONLY = ("name", "category")
CATEGORIZED_KINDS = ("branch", "general_branch")  # as check_organization accepts them
# Namespace for ids generated from a new member's identity (see generated_member_id).
MEMBER_ID_NAMESPACE = uuid.UUID("6f1d2c1e-4b7a-4f7e-9a57-0c8f4e1b2a90")


def add_error(errors: dict, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def normalize_phone(value: str | None) -> str | None:
    """Accept spaces, dashes and a +86/0086 prefix; store the 11 bare digits."""
    if value is None:
        return None
    digits = re.sub(r"[\s\-()]", "", str(value))
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix):]
    return digits


def phone_error(phone: str | None) -> str | None:
    if phone and not MOBILE_PHONE.match(phone):
        return "not a Chinese mobile number (11 digits starting 13-19)"
    return None


def org_path(parent_path: str | None, org_id: str) -> str:
    return f"{parent_path or '/'}{org_id}/"


def path_ids(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def check_organization(org: dict, parent) -> dict:
    """Kinds and parents (SPEC §2); `parent` is the stored parent organization or None."""
    errors: dict = {}
    allowed = ORG_PARENT_KINDS[org["kind"]]
    if org.get("parent_id") is None:
        if None not in allowed:
            add_error(errors, "parent_id", f"a {org['kind']} needs a parent ({' or '.join(allowed)})")
    elif None in allowed:
        add_error(errors, "parent_id", f"a {org['kind']} has no parent")
    elif parent is None:
        add_error(errors, "parent_id", f"unknown organization {org['parent_id']!r}")
    elif parent.kind not in allowed:
        add_error(errors, "parent_id",
                  f"a {org['kind']} belongs to a {' or '.join(allowed)}, not a {parent.kind}")
    if org["kind"] == "branch" and not org.get("category"):
        add_error(errors, "category", "a branch needs a category")
    if org["kind"] not in CATEGORIZED_KINDS and org.get("category"):
        add_error(errors, "category", "only branches have a category")
    return errors


def check_organization_changes(org, changes: dict) -> dict:
    """The changed fields of a stored organization (`org`), beyond what the schema checks."""
    errors: dict = {}
    if "category" in changes:
        if org.kind not in CATEGORIZED_KINDS:
            if changes["category"] is not None:
                add_error(errors, "category", f"only branches have a category, not a {org.kind}")
        elif org.kind == "branch" and changes["category"] is None:
            add_error(errors, "category", "a branch needs a category")
    return errors


def secretary_error(org, secretary_id: str, member, member_path) -> str | None:
    """Why `member` cannot be the secretary of `org`, or None (SPEC §4): an active member
    within the organization: of the branch itself for a branch, of the group for a group, and
    for a county, township or general branch any active member of a branch under it (the
    officer who receives its alerts). `member` is the stored member, or None when unknown (or
    outside the caller's scope: not confirmed to exist); `member_path` the org ids from the
    county down to the member's branch."""
    if member is None:
        return f"unknown member {secretary_id!r}"
    if member.status not in ACTIVE_STATUSES:
        return f"member {secretary_id!r} is {member.status}, not an active member"
    if org.kind == "branch":
        if member.branch_id != org.org_id:
            return (f"member {secretary_id!r} is in branch {member.branch_id!r}: a branch's "
                    f"secretary is one of its own members")
    elif org.kind == "group":
        if member.group_id != org.org_id:
            return f"member {secretary_id!r} is not in group {org.org_id!r}"
    elif org.org_id not in member_path:
        return (f"member {secretary_id!r} is in branch {member.branch_id!r}, which is not "
                f"under {org.kind} {org.org_id!r}")
    return None


def check_member(member: dict, branch, group, today: date) -> dict:
    """Placement and values of a member; `branch`/`group` are the stored orgs or None."""
    errors: dict = {}
    branch_id = member.get("branch_id")
    if branch is None:
        add_error(errors, "branch_id", f"unknown branch {branch_id!r}")
    elif branch.kind != "branch":
        add_error(errors, "branch_id", f"{branch_id!r} is a {branch.kind}, not a branch")
    group_id = member.get("group_id")
    if group_id is not None:
        if group is None:
            add_error(errors, "group_id", f"unknown group {group_id!r}")
        elif group.kind != "group":
            add_error(errors, "group_id", f"{group_id!r} is a {group.kind}, not a group")
        elif branch is not None and group.parent_id != branch.org_id:
            add_error(errors, "group_id", f"group {group_id!r} is not in branch {branch_id!r}")
    if member.get("mobile") and not member.get("mobile_location"):
        add_error(errors, "mobile_location", "a mobile member needs a mobile_location")
    error = phone_error(member.get("phone"))
    if error:
        add_error(errors, "phone", error)
    joined_on = member.get("joined_on")
    if joined_on is not None and joined_on > today:
        add_error(errors, "joined_on", "is in the future")
    if member.get("status") in ARCHIVED_STATUSES and member.get("_new", False):
        add_error(errors, "status", "a new member is formal or probationary")
    return errors


def generated_member_id(member: dict) -> str:
    """A stable id for a new member given without one, from who they are (SPEC §4, Import):
    name and phone, or name and branch when there is no phone. Never the phone alone: two
    people may share one (a couple, a parent and child). Existing members may carry ids
    generated the older way (from the phone), so a re-import looks its member up by
    identity (`identity_matches`) and never recomputes the id."""
    if member.get("phone"):
        key = f"name+phone:{member['name']}|{member['phone']}"
    else:
        key = f"name+branch:{member['name']}|{member['branch_id']}"
    return "m-" + uuid.uuid5(MEMBER_ID_NAMESPACE, key).hex[:16]


def random_member_id() -> str:
    """For a new member whose generated id another member already holds (a member renamed,
    say): never take over someone else's id."""
    return "m-" + uuid.uuid4().hex[:16]


def identity_matches(row: dict, people) -> list:
    """The people (anything with `name`, `phone` and `branch_id`) a sheet row without a
    `member_id` is: same name and phone, in any branch; with no phone, same name and branch.
    More than one is ambiguous: the caller names the row and asks for the member_id."""
    if row.get("phone"):
        return [p for p in people if p.name == row["name"] and p.phone == row["phone"]]
    return [p for p in people if p.name == row["name"] and p.branch_id == row["branch_id"]]


def namesakes(row: dict, stored) -> list:
    """Stored members with the row's name in its branch whom its identity did not match: the
    same person with a phone added or changed since, or another person of that name."""
    return [p for p in stored if p.name == row["name"] and p.branch_id == row["branch_id"]]


# What a member created by an import has where its row says nothing (SPEC §4, Import). An
# existing member keeps what it has instead: an absent column or an empty cell changes nothing.
NEW_MEMBER_DEFAULTS = {
    "group_id": None, "status": "formal", "mobile": False, "mobile_location": None,
    "committee_member": False, "no_vote": False, "phone": None, "email": None,
    "joined_on": None,
}


def member_dict(member) -> dict:
    out = {name: getattr(member, name) for name in MEMBER_FIELDS}
    if out["joined_on"] is not None:
        out["joined_on"] = out["joined_on"].isoformat()
    return out


def organization_dict(org) -> dict:
    out = {name: getattr(org, name) for name in ORG_FIELDS}
    out["path"] = path_ids(org.path)
    out["registered_at"] = iso(org.registered_at)
    return out


def changed_fields(current: dict, incoming: dict) -> dict:
    """The fields of `incoming` whose value differs from `current` (version aside)."""
    return {key: value for key, value in incoming.items()
            if key != "version" and current.get(key) != value}
