"""members' RPC payloads, validated at the edge (SPEC §4 field names)."""
from __future__ import annotations

import marshmallow
from marshmallow import fields, post_load, validate

from orglife.common.schemas import ID, Flag, JoinedOn, PageSchema, StrictSchema
from orglife.common.vocabulary import (
    ACTIVE_STATUSES, BRANCH_CATEGORIES, MEMBER_STATUSES, ORG_KINDS,
)

from .domain import normalize_phone


NOT_BLANK = validate.Regexp(r"\s*\S", error="must not be blank")


def RobotUrl(**kwargs):
    """An organization's work-chat group robot: the webhook of a DingTalk, WeCom or Feishu
    group (any http(s) URL: a county may run its own gateway, by IP or host name)."""
    return fields.Url(schemes={"http", "https"}, require_tld=False, allow_none=True,
                      validate=validate.Length(max=500),
                      error_messages={"invalid": "must be an http(s) URL (the group robot's "
                                                 "webhook)"}, **kwargs)


class Unchangeable(fields.Field):
    """A field that may not be given at all (whatever its value, null included)."""

    def __init__(self, message: str, **kwargs):
        super().__init__(**kwargs)
        self.message = message

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if value is marshmallow.missing:
            return value
        raise marshmallow.ValidationError(self.message)


class OrganizationSchema(StrictSchema):
    org_id = fields.String(validate=ID)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(ORG_KINDS))
    parent_id = fields.String(load_default=None, allow_none=True, validate=ID)
    category = fields.String(load_default=None, allow_none=True,
                             validate=validate.OneOf(BRANCH_CATEGORIES))
    # Optional, and without defaults: a repeated registration that leaves them out is still
    # the same organization after update_organization set them.
    secretary_id = fields.String(allow_none=True, validate=ID)
    robot_url = RobotUrl()

    @post_load
    def strip(self, data, **kwargs):
        data["name"] = data["name"].strip()
        return data


class OrganizationChangesSchema(StrictSchema):
    """update_organization: `org_id` and the fields to change (null clears secretary_id and
    robot_url); kind and parent never change."""

    org_id = fields.String(required=True, validate=ID)
    name = fields.String(validate=[validate.Length(min=1, max=200), NOT_BLANK])
    category = fields.String(allow_none=True, validate=validate.OneOf(BRANCH_CATEGORIES))
    secretary_id = fields.String(allow_none=True, validate=ID)
    robot_url = RobotUrl()
    kind = Unchangeable("an organization's kind never changes")
    parent_id = Unchangeable("an organization never moves: its parent never changes")

    @post_load
    def strip(self, data, **kwargs):
        if "name" in data:
            data["name"] = data["name"].strip()
        return data


class MemberFieldsSchema(StrictSchema):
    """The member fields a caller may set; status limited per operation by subclasses."""

    name = fields.String(validate=validate.Length(min=1, max=100))
    group_id = fields.String(allow_none=True, validate=ID)
    mobile = Flag()
    mobile_location = fields.String(allow_none=True, validate=validate.Length(max=200))
    committee_member = Flag()
    no_vote = Flag()
    phone = fields.String(allow_none=True, validate=validate.Length(max=20))
    email = fields.Email(allow_none=True, validate=validate.Length(max=200))
    joined_on = JoinedOn(allow_none=True)

    @post_load
    def normalize(self, data, **kwargs):
        if "name" in data:
            data["name"] = data["name"].strip()
        if data.get("phone") is not None:
            data["phone"] = normalize_phone(data["phone"]) or None
        if data.get("email") == "":
            data["email"] = None
        return data


class NewMemberSchema(MemberFieldsSchema):
    member_id = fields.String(validate=ID)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    branch_id = fields.String(required=True, validate=ID)
    status = fields.String(load_default="formal", validate=validate.OneOf(ACTIVE_STATUSES))
    group_id = fields.String(load_default=None, allow_none=True, validate=ID)
    mobile = Flag(load_default=False)
    mobile_location = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(max=200))
    committee_member = Flag(load_default=False)
    no_vote = Flag(load_default=False)
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=200))
    joined_on = JoinedOn(load_default=None, allow_none=True)


class ImportRowSchema(NewMemberSchema):
    """A spreadsheet row: the branch and group may be given by id or by name.

    The fields of a new member, validated alike, but without their defaults: a row may be
    an existing member, for whom an absent column or an empty cell (None, "") changes nothing
    (SPEC §4, Import). registry.import_members applies the defaults when it creates one.
    """

    branch_id = fields.String(validate=ID)
    branch = fields.String(validate=validate.Length(min=1, max=200))
    group = fields.String(validate=validate.Length(min=1, max=200))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():  # this instance's copies, not NewMemberSchema's
            field.load_default = marshmallow.missing

    @marshmallow.pre_load
    def drop_empty_cells(self, data, **kwargs):
        """An empty cell is no value at all, not "no group", "not mobile" or "no phone"."""
        if not isinstance(data, dict):
            return data
        return {key: value for key, value in data.items()
                if key not in self.fields or not (
                    value is None or (isinstance(value, str) and not value.strip()))}

    @post_load
    def need_branch(self, data, **kwargs):
        if not data.get("branch_id") and not data.get("branch"):
            raise marshmallow.ValidationError("a branch (id or name) is required", "branch")
        return data


class MemberChangesSchema(MemberFieldsSchema):
    member_id = fields.String(required=True, validate=ID)
    status = fields.String(validate=validate.OneOf(
        [s for s in MEMBER_STATUSES if s != "transferred_out"],
        error="must be one of formal, probationary, removed, deceased "
              "(use transfer_member to transfer a member out)"))
    branch_id = fields.String(validate=validate.Equal(
        "", error="a member changes branch through transfer_member"))


class TransferSchema(StrictSchema):
    member_id = fields.String(required=True, validate=ID)
    to_branch_id = fields.String(required=True, allow_none=True, validate=ID)
    to_group_id = fields.String(load_default=None, allow_none=True, validate=ID)


class OrganizationFilters(PageSchema):
    kind = fields.String(validate=validate.OneOf(ORG_KINDS))
    parent_id = fields.String(validate=ID)
    under = fields.String(validate=ID)
    category = fields.String(validate=validate.OneOf(BRANCH_CATEGORIES))
    q = fields.String(validate=validate.Length(min=1, max=100))


class MemberFilters(PageSchema):
    branch_id = fields.String(validate=ID)
    group_id = fields.String(validate=ID)
    under = fields.String(validate=ID)
    status = fields.String(validate=validate.OneOf(MEMBER_STATUSES))
    mobile = Flag()
    committee_member = Flag()
    q = fields.String(validate=validate.Length(min=1, max=100))
