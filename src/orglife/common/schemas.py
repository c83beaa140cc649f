"""Schema helpers shared by services: loading at the edge, ids, paging filters.

Every payload schema derives from `StrictSchema`: unknown fields are refused, and before any
field is read the whole payload is walked (nested lists and dicts included) for strings that
no database can store (lone surrogates, NUL characters) and for nesting deeper than any
payload needs; each is named by its path ("attendance.3.member_id"). `load` turns whatever
else a payload could make a schema raise into a ValidationError, so bad input never crashes.
"""
from __future__ import annotations

import logging
import math
import re
import traceback
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import marshmallow
from marshmallow import Schema, fields, pre_load, validate

from .clock import InstantOutOfRange, parse_instant
from .errors import ValidationError

log = logging.getLogger(__name__)

# The county's time zone while a payload is loaded (instants without an offset are read in it).
COUNTY_TZ: ContextVar[str] = ContextVar("county_tz", default="Asia/Shanghai")

ID_PATTERN = re.compile(r"^[^/\s]{1,64}\Z")
ID_MESSAGE = "must be 1 to 64 characters, without '/' or spaces"
ID = validate.Regexp(ID_PATTERN, error=ID_MESSAGE)
TRUTHY = {True, 1, "1", "true", "True", "TRUE", "yes", "Yes", "y", "Y", "是", "√"}
FALSY = {False, 0, "0", "false", "False", "FALSE", "no", "No", "n", "N", "否", ""}

# -- string hygiene ----------------------------------------------------------------------------
# Lone surrogates ("\ud800" is valid JSON) cannot be encoded as UTF-8, so no database stores
# them; PostgreSQL refuses NUL in text. Neither is ever meant in a payload.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_DEPTH = 16  # the deepest real payload (import rows, attendance entries) is 3 levels


def unstorable(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "holds a NUL character, which cannot be stored"
    return (f"holds a character that cannot be stored "
            f"(a lone surrogate, U+{ord(found.group()):04X})")


def _key_name(key) -> str:
    """A field name fit for an error message, whatever characters the key holds ('""' for the
    empty name, which would otherwise name nothing)."""
    name = key if isinstance(key, str) else str(key)
    return name.encode("utf-8", "backslashreplace").decode("utf-8") or '""'


def _plainly_storable(value, depth: int = 0) -> bool:
    """True when nothing in `value` needs naming: no unstorable string or key, no bytes, no
    nesting past MAX_DEPTH. The common case, answered without building a path per field
    (naming every field of every meeting was a sixth of the meetings service's intake);
    recursion stops at MAX_DEPTH, so no payload exhausts the stack."""
    if isinstance(value, str):
        return UNSTORABLE.search(value) is None
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return False
        for key, item in value.items():
            if isinstance(key, str) and UNSTORABLE.search(key) is not None:
                return False
            if not isinstance(item, (int, float, type(None))) and \
                    not _plainly_storable(item, depth + 1):
                return False
        return True
    if isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            return False
        return all(isinstance(item, (int, float, type(None)))
                   or _plainly_storable(item, depth + 1) for item in value)
    return not isinstance(value, (bytes, bytearray))


def unstorable_fields(payload, prefix: str = "") -> dict:
    """{path: [message]} for every string in `payload` (keys included) that cannot be stored,
    every value that is not UTF-8 text, and every container nested deeper than MAX_DEPTH.
    Iterative: a deeply nested payload cannot exhaust the stack."""
    if _plainly_storable(payload):
        return {}
    problems: dict = {}
    stack = [(prefix, payload, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            problem = unstorable(value)
            if problem:
                problems[path or "_schema"] = [problem]
        elif isinstance(value, (bytes, bytearray)):
            try:
                problem = unstorable(bytes(value).decode("utf-8"))
            except UnicodeDecodeError:
                problem = "is not UTF-8 text"
            if problem:
                problems[path or "_schema"] = [problem]
        elif isinstance(value, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                problems[path or "_schema"] = ["nested too deeply"]
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                name = _key_name(key)
                child = f"{path}.{name}" if path else name
                if isinstance(key, str) and unstorable(key):
                    problems[child] = ["the field name " + unstorable(key)]
                    continue
                stack.append((child, item, depth + 1))
    return problems


def storable(value, depth: int = 0):
    """A copy of a JSON-like `value` that can be stored and published: unstorable characters
    replaced by U+FFFD, non-finite numbers and foreign types written as text, nesting cut at
    MAX_DEPTH. For keeping a refused payload for inspection."""
    if isinstance(value, str):
        return UNSTORABLE.sub("\ufffd", value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list, tuple)):
        if depth >= MAX_DEPTH:
            return "(nested too deeply)"
        if isinstance(value, dict):
            return {storable(_key_name(k)): storable(v, depth + 1) for k, v in value.items()}
        return [storable(v, depth + 1) for v in value]
    return storable(repr(value))


class StrictSchema(Schema):
    """Base of every payload schema: unknown fields refused, unstorable strings named."""

    class Meta:
        unknown = marshmallow.RAISE

    @pre_load
    def refuse_unstorable(self, data, **kwargs):
        problems = unstorable_fields(data)
        if problems:
            raise marshmallow.ValidationError(problems)
        return data


def id_argument(name: str, value) -> str:
    """A bare id argument of an RPC method (get_member(member_id), ...), checked like an id
    field: anything else is a ValidationError naming the argument."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise ValidationError({name: [ID_MESSAGE]})
    problem = unstorable(value)
    if problem:
        raise ValidationError({name: [problem]})
    return value


def Flag(**kwargs):
    """A boolean that also reads the 是/否 of a county office's spreadsheet."""
    return fields.Boolean(truthy=TRUTHY, falsy=FALSY, **kwargs)


# -- instants and days -------------------------------------------------------------------------
# Sane bounds: nothing the county records happened before the Party was founded or after 2100,
# and every conversion between time zones stays far from datetime's own limits.
EARLIEST_INSTANT = datetime(1921, 1, 1, tzinfo=timezone.utc)
LATEST_INSTANT = datetime(2101, 1, 1, tzinfo=timezone.utc)  # exclusive
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2100, 12, 31)
PARTY_FOUNDED = date(1921, 7, 1)  # no one joined before


class Instant(fields.Field):
    """ISO 8601 instant, loaded as an aware UTC datetime; one without an offset is read in the
    county's time zone (SPEC §2). Limited to the years 1921 to 2100."""

    default_error_messages = {
        "invalid": "not an ISO 8601 date-time",
        "range": "must be between 1921-01-01 and 2100-12-31",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            moment = parse_instant(value, ZoneInfo(COUNTY_TZ.get()))
        except InstantOutOfRange:
            raise self.make_error("range") from None
        except ValueError:
            raise self.make_error("invalid") from None
        if not EARLIEST_INSTANT <= moment < LATEST_INSTANT:
            raise self.make_error("range")
        return moment


class Day(fields.Date):
    """An ISO 8601 date between `earliest` and `latest` (by default 1900 to 2100)."""

    def __init__(self, earliest: date = EARLIEST_DAY, latest: date = LATEST_DAY, **kwargs):
        super().__init__(**kwargs)
        self.earliest, self.latest = earliest, latest

    def _deserialize(self, value, attr, data, **kwargs):
        day = super()._deserialize(value, attr, data, **kwargs)
        if not self.earliest <= day <= self.latest:
            raise marshmallow.ValidationError(
                f"must be between {self.earliest.isoformat()} and {self.latest.isoformat()}")
        return day


def JoinedOn(**kwargs):
    """The day a member joined the Party: not before its founding (the future is checked
    against the service's clock by the use case)."""
    return Day(earliest=PARTY_FOUNDED, **kwargs)


@contextmanager
def county_time_zone(tz: str):
    token = COUNTY_TZ.set(tz)
    try:
        yield
    finally:
        COUNTY_TZ.reset(token)


def load(schema: Schema, data, tz: str | None = None, **kwargs):
    """Validate `data` or raise our ValidationError naming each bad field.

    Last line of defence: anything else a payload makes the schema raise (TypeError,
    OverflowError, RecursionError, ...) is a ValidationError on `_schema`, logged with its
    traceback but never with the payload (it may hold phone numbers)."""
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["expected an object"]})
    try:
        if tz is None:
            return schema.load(data, **kwargs)
        with county_time_zone(tz):
            return schema.load(data, **kwargs)
    except marshmallow.ValidationError as exc:
        raise ValidationError(flatten_messages(exc.messages)) from None
    except Exception as exc:  # noqa: BLE001 - bad input never crashes a caller
        log.error("%s failed on a payload with %s; traceback (payload not logged):\n%s",
                  type(schema).__name__, type(exc).__name__,
                  "".join(traceback.format_tb(exc.__traceback__)))
        raise ValidationError({"_schema": [
            f"could not be read ({type(exc).__name__})"]}) from None


def flatten_messages(messages, prefix: str = "") -> dict:
    """marshmallow's nested message dicts → {"attendance.2.status": [...]} for readable errors."""
    out: dict = {}
    if isinstance(messages, list):
        out[prefix or "_schema"] = [str(m) for m in messages]
        return out
    for key, value in messages.items():
        name = f"{prefix}.{_key_name(key)}" if prefix else _key_name(key)
        if isinstance(value, dict):
            out.update(flatten_messages(value, name))
        else:
            out[name] = [str(m) for m in value]
    return out


MAX_OFFSET = 10_000_000


class PageSchema(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
