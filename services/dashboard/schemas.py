"""The query arguments of the pages, checked at the edge (marshmallow, like every service's
RPC arguments): a bad one is a 400 page naming the field."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate
from marshmallow import ValidationError as MarshmallowError

from orglife.common.errors import ValidationError

TABLE_KEY = validate.Regexp(r"^[a-z_]{1,40}$")
ID_ARG = validate.Length(min=1, max=64)


class PeriodArgs(Schema):
    """?year=2026&as_of=2026-11-20 (both optional; unknown arguments are ignored, as links
    and browsers add their own)."""

    class Meta:
        unknown = EXCLUDE

    year = fields.Integer(validate=validate.Range(min=2000, max=2100), load_default=None,
                          allow_none=True)
    as_of = fields.Date(load_default=None, allow_none=True)


class SigninForm(Schema):
    class Meta:
        unknown = EXCLUDE

    token = fields.String(required=True, validate=validate.Length(min=1, max=4096))
    next = fields.String(load_default="/", validate=validate.Length(max=2000))


def load_args(schema: Schema, data) -> dict:
    """`data` (a werkzeug MultiDict or a dict) through `schema`; empty values are absent."""
    plain = {key: value for key, value in data.items() if value not in ("", None)}
    try:
        return schema.load(plain)
    except MarshmallowError as exc:
        raise ValidationError({field: list(messages) if isinstance(messages, list)
                               else [str(messages)]
                               for field, messages in exc.messages.items()}) from None


def check_id(name: str, value: str) -> str:
    if not value or len(value) > 64:
        raise ValidationError.field(name, "must be 1 to 64 characters")
    return value


def check_table(value: str) -> str:
    import re
    if not re.match(r"^[a-z_]{1,40}$", value or ""):
        raise ValidationError.field("table", "unknown table")
    return value
