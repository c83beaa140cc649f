"""notifications' RPC arguments, validated at the edge (SPEC §4)."""
from __future__ import annotations

from marshmallow import ValidationError as SchemaError
from marshmallow import fields, validate, validates

from orglife.common.rules import RulesError, parse_quiet_hours
from orglife.common.schemas import ID, PageSchema, StrictSchema

from .domain import KINDS, MEMBER_CHANNELS, STATUSES

CHANNELS = MEMBER_CHANNELS + ("robot",)


class NotificationFilters(PageSchema):
    recipient_id = fields.String(validate=ID)
    org_id = fields.String(validate=ID)
    kind = fields.String(validate=validate.OneOf(KINDS))
    status = fields.String(validate=validate.OneOf(STATUSES))
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    cause = fields.String(validate=validate.Length(min=1, max=200))
    ref = fields.String(validate=ID)


class SummaryArgs(StrictSchema):
    org_id = fields.String(load_default=None, allow_none=True, validate=ID)


class PreferencesArgs(StrictSchema):
    member_id = fields.String(required=True, validate=ID)
    channels = fields.List(fields.String(validate=validate.OneOf(MEMBER_CHANNELS)),
                           allow_none=True, validate=validate.Length(min=1, max=3))
    quiet_hours = fields.String(allow_none=True)

    @validates("channels")
    def _no_repeats(self, value, **_):
        if value is not None and len(set(value)) != len(value):
            raise SchemaError("names a channel twice")

    @validates("quiet_hours")
    def _window(self, value, **_):
        try:
            parse_quiet_hours(value)
        except RulesError as error:
            raise SchemaError(str(error)) from None


class ResendArgs(StrictSchema):
    notification_id = fields.String(required=True, validate=ID)
