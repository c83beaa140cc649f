"""Schema helpers shared by services: loading at the edge, ids, paging filters."""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from zoneinfo import ZoneInfo

import marshmallow
from marshmallow import Schema, fields, validate

from .clock import parse_instant
from .errors import ValidationError

# The county's time zone while a payload is loaded (instants without an offset are read in it).
COUNTY_TZ: ContextVar[str] = ContextVar("county_tz", default="Asia/Shanghai")

ID_PATTERN = re.compile(r"^[^/\s]{1,64}\Z")
ID_MESSAGE = "must be 1 to 64 characters, without '/' or spaces"
ID = validate.Regexp(ID_PATTERN, error=ID_MESSAGE)
TRUTHY = {True, 1, "1", "true", "True", "TRUE", "yes", "Yes", "y", "Y", "是", "√"}
FALSY = {False, 0, "0", "false", "False", "FALSE", "no", "No", "n", "N", "否", ""}


def Flag(**kwargs):
    """A boolean that also reads the 是/否 of a county office's spreadsheet."""
    return fields.Boolean(truthy=TRUTHY, falsy=FALSY, **kwargs)


class Instant(fields.Field):
    """ISO 8601 instant, loaded as an aware UTC datetime; one without an offset is read in the
    county's time zone (SPEC §2)."""

    default_error_messages = {"invalid": "not an ISO 8601 date-time"}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return parse_instant(value, ZoneInfo(COUNTY_TZ.get()))
        except ValueError:
            raise self.make_error("invalid") from None


@contextmanager
def county_time_zone(tz: str):
    token = COUNTY_TZ.set(tz)
    try:
        yield
    finally:
        COUNTY_TZ.reset(token)


def load(schema: Schema, data, tz: str | None = None, **kwargs):
    """Validate `data` or raise our ValidationError naming each bad field."""
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["expected an object"]})
    try:
        if tz is None:
            return schema.load(data, **kwargs)
        with county_time_zone(tz):
            return schema.load(data, **kwargs)
    except marshmallow.ValidationError as exc:
        raise ValidationError(flatten_messages(exc.messages)) from None


def flatten_messages(messages, prefix: str = "") -> dict:
    """marshmallow's nested message dicts → {"attendance.2.status": [...]} for readable errors."""
    out: dict = {}
    if isinstance(messages, list):
        out[prefix or "_schema"] = [str(m) for m in messages]
        return out
    for key, value in messages.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten_messages(value, name))
        else:
            out[name] = [str(m) for m in value]
    return out


class PageSchema(Schema):
    class Meta:
        unknown = marshmallow.RAISE

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))
