"""members' domain rules as plain functions: no nameko, no database session.

The service loads what these need (the organization, its parent, the existing member) and
passes plain values in; each check returns the errors it finds as {field: [messages]}.
"""
from __future__ import annotations

import re
import uuid
from datetime import date

from orglife.common.vocabulary import ARCHIVED_STATUSES, ORG_PARENT_KINDS

MOBILE_PHONE = re.compile(r"^1[3-9]\d{9}$")
MEMBER_FIELDS = (
    "member_id", "name", "branch_id", "group_id", "status", "mobile", "mobile_location",
    "committee_member", "no_vote", "phone", "email", "joined_on", "version",
)
ORG_FIELDS = ("org_id", "name", "kind", "parent_id", "category", "version")
# Namespace for ids generated from a row's natural key, so a re-import finds the same member.
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
    if org["kind"] not in ("branch", "general_branch") and org.get("category"):
        add_error(errors, "category", "only branches have a category")
    return errors


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
    """A stable id for a row without one: its phone, else its name, branch and joining date."""
    if member.get("phone"):
        key = f"phone:{member['phone']}"
    else:
        key = f"name:{member['name']}|{member['branch_id']}|{member.get('joined_on') or ''}"
    return "m-" + uuid.uuid5(MEMBER_ID_NAMESPACE, key).hex[:16]


def member_dict(member) -> dict:
    out = {name: getattr(member, name) for name in MEMBER_FIELDS}
    if out["joined_on"] is not None:
        out["joined_on"] = out["joined_on"].isoformat()
    return out


def organization_dict(org) -> dict:
    out = {name: getattr(org, name) for name in ORG_FIELDS}
    out["path"] = path_ids(org.path)
    return out


def changed_fields(current: dict, incoming: dict) -> dict:
    """The fields of `incoming` whose value differs from `current` (version aside)."""
    return {key: value for key, value in incoming.items()
            if key != "version" and current.get(key) != value}
