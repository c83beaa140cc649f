"""scoring's RPC arguments, validated at the edge (SPEC §4)."""
from __future__ import annotations

from marshmallow import fields, validate

from orglife.common.schemas import ID, Day, PageSchema, StrictSchema

YEAR = fields.Integer(strict=True, load_default=None, allow_none=True,
                      validate=validate.Range(min=1921, max=2100))
KINDS = ("branch_silent", "branch_overdue", "member_at_risk")


class MemberScoreArgs(StrictSchema):
    member_id = fields.String(required=True, validate=ID)
    year = YEAR


class ComplianceArgs(StrictSchema):
    branch_id = fields.String(required=True, validate=ID)
    year = YEAR
    as_of = Day(load_default=None, allow_none=True)


class RankingArgs(StrictSchema):
    org_id = fields.String(required=True, validate=ID)
    year = YEAR
    level = fields.String(required=True, validate=validate.OneOf(("branch", "member")))
    limit = fields.Integer(strict=True, load_default=50, validate=validate.Range(min=1, max=5000))


class UnevennessArgs(StrictSchema):
    org_id = fields.String(required=True, validate=ID)
    year = YEAR
    as_of = Day(load_default=None, allow_none=True)


class AtRiskArgs(StrictSchema):
    org_id = fields.String(required=True, validate=ID)
    as_of = Day(load_default=None, allow_none=True)


class YearArgs(StrictSchema):
    year = fields.Integer(strict=True, required=True, validate=validate.Range(min=1921, max=2100))


class DailyArgs(StrictSchema):
    as_of = Day(load_default=None, allow_none=True)


class AlertFilters(PageSchema):
    org_id = fields.String(validate=ID)
    kind = fields.String(validate=validate.OneOf(KINDS))
