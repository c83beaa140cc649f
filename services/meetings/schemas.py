"""meetings' RPC and intake payloads, validated at the edge (SPEC §4 field names)."""
from __future__ import annotations

import marshmallow
from marshmallow import fields, validate, validates_schema

from orglife.common.schemas import (
    FALSY, ID, ID_MESSAGE, ID_PATTERN, TRUTHY, Day, Flag, Instant, PageSchema, StrictSchema,
)
from orglife.common.vocabulary import ACTIVITY_KINDS, ATTENDANCE_STATUSES, MEETING_TYPES


MAX_REVISION = 1_000_000_000  # far beyond any meeting's amendments, within every INTEGER


class AttendanceList(fields.Field):
    """The attendance list: entries `{member_id, status, remote}`, checked in plain Python.

    It runs for every attendee of about 110,000 meetings a year, where a nested schema per
    entry costs most of a meeting's validation; the rules and the error paths
    ("attendance.2.status") are those of AttendanceSchema below, which tests hold it to.
    """

    default_error_messages = {"invalid": "Not a valid list."}
    KEYS = {"member_id", "status", "remote"}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise self.make_error("invalid")
        errors, entries = {}, []
        for position, entry in enumerate(value):
            problems = {}
            if not isinstance(entry, dict):
                errors[position] = {"_schema": ["Invalid input type."]}
                continue
            for key in entry.keys() - self.KEYS:
                problems[key] = ["Unknown field."]
            member_id = entry.get("member_id")
            if member_id is None:
                problems["member_id"] = ["Missing data for required field."]
            elif not isinstance(member_id, str) or not ID_PATTERN.match(member_id):
                problems["member_id"] = [ID_MESSAGE]
            status = entry.get("status")
            if status is None:
                problems["status"] = ["Missing data for required field."]
            elif status not in ATTENDANCE_STATUSES:
                problems["status"] = [f"Must be one of: {', '.join(ATTENDANCE_STATUSES)}."]
            remote = entry.get("remote", False)
            try:
                truthy, falsy = remote in TRUTHY, remote in FALSY
            except TypeError:  # unhashable: a list or a dict is no flag
                truthy = falsy = False
            if truthy:
                remote = True
            elif falsy:
                remote = False
            else:
                problems["remote"] = ["Not a valid boolean."]
            if remote is True and status != "present" and "status" not in problems:
                problems["remote"] = ["remote attendance is presence: status present"]
            if problems:
                errors[position] = problems
            else:
                entries.append({"member_id": member_id, "status": status, "remote": remote})
        if errors:
            raise marshmallow.ValidationError(errors)
        return entries


class AttendanceSchema(StrictSchema):
    """One attendance entry (the reference AttendanceList is held to in the tests)."""

    member_id = fields.String(required=True, validate=ID)
    status = fields.String(required=True, validate=validate.OneOf(ATTENDANCE_STATUSES))
    remote = Flag(load_default=False)

    @validates_schema
    def remote_is_presence(self, data, **kwargs):
        if data.get("remote") and data.get("status") != "present":
            raise marshmallow.ValidationError("remote attendance is presence: status present",
                                              "remote")


class ScheduleSchema(StrictSchema):
    meeting_id = fields.String(validate=ID)
    branch_id = fields.String(required=True, validate=ID)
    group_id = fields.String(load_default=None, allow_none=True, validate=ID)
    type = fields.String(required=True, validate=validate.OneOf(MEETING_TYPES))
    held_at = Instant(required=True)
    topic = fields.String(required=True, validate=validate.Length(min=1, max=300))
    minutes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20000))


class LogSchema(ScheduleSchema):
    attendance = AttendanceList(required=True)


class AmendSchema(StrictSchema):
    meeting_id = fields.String(required=True, validate=ID)
    revision = fields.Integer(required=True, strict=True,
                              validate=validate.Range(min=1, max=MAX_REVISION))
    group_id = fields.String(allow_none=True, validate=ID)
    type = fields.String(validate=validate.OneOf(MEETING_TYPES))
    held_at = Instant()
    topic = fields.String(validate=validate.Length(min=1, max=300))
    minutes = fields.String(allow_none=True, validate=validate.Length(max=20000))
    attendance = AttendanceList()

    @validates_schema
    def something_changes(self, data, **kwargs):
        if not set(data) - {"meeting_id", "revision"}:
            raise marshmallow.ValidationError("nothing to amend", "_schema")


class CancelSchema(StrictSchema):
    meeting_id = fields.String(required=True, validate=ID)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class ActivitySchema(StrictSchema):
    activity_id = fields.String(validate=ID)
    member_id = fields.String(required=True, validate=ID)
    kind = fields.String(required=True, validate=validate.OneOf(ACTIVITY_KINDS))
    held_at = Instant(required=True)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=5000))
    household = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    opinions = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=5000))

    @validates_schema
    def visit_names_household(self, data, **kwargs):
        if data.get("kind") == "household_visit" and not data.get("household"):
            raise marshmallow.ValidationError("a household visit names the household", "household")


class MeetingFilters(PageSchema):
    branch_id = fields.String(validate=ID)
    under = fields.String(validate=ID)
    type = fields.String(validate=validate.OneOf(MEETING_TYPES))
    status = fields.String(validate=validate.OneOf(("scheduled", "logged")))
    cancelled = Flag()
    from_ = Day(data_key="from")
    to = Day()


class ActivityFilters(PageSchema):
    member_id = fields.String(validate=ID)
    branch_id = fields.String(validate=ID)
    under = fields.String(validate=ID)
    kind = fields.String(validate=validate.OneOf(ACTIVITY_KINDS))
    from_ = Day(data_key="from")
    to = Day()


def intake_report_types() -> tuple[str, ...]:
    """The kinds of report peers send on `intake.events`, as meetings' subscription in the
    system declaration (orglife/system.py) lists them: the one place a new kind is added
    (intake.HANDLERS is checked against it when the service starts)."""
    from orglife.common.system import load_system
    return load_system().service("meetings").subscribes["intake"]


class RejectedFilters(PageSchema):
    event_type = fields.String(validate=validate.OneOf(intake_report_types()))
