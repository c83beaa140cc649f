"""Schema helpers shared by services: loading at the edge, ids, paging filters."""
from __future__ import annotations

import marshmallow
from marshmallow import Schema, fields, validate

from .errors import ValidationError

ID = validate.And(
    validate.Length(min=1, max=64),
    validate.Regexp(r"^[^/\s]+$", error="must not contain '/' or spaces"),
)
TRUTHY = {True, 1, "1", "true", "True", "TRUE", "yes", "Yes", "y", "Y", "是", "√"}
FALSY = {False, 0, "0", "false", "False", "FALSE", "no", "No", "n", "N", "否", ""}


def Flag(**kwargs):
    """A boolean that also reads the 是/否 of a county office's spreadsheet."""
    return fields.Boolean(truthy=TRUTHY, falsy=FALSY, **kwargs)


def load(schema: Schema, data, **kwargs):
    """Validate `data` or raise our ValidationError naming each bad field."""
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["expected an object"]})
    try:
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
