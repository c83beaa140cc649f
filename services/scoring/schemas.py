"""scoring's RPC arguments, validated at the edge (SPEC §4)."""
from __future__ import annotations

from marshmallow import fields, validate

from orglife.common.schemas import ID, MAX_OFFSET, Day, PageSchema, StrictSchema

YEAR = fields.Integer(strict=True, load_default=None, allow_none=True,
                      validate=validate.Range(min=1921, max=2100))
# the alerts list_alerts shows (year_graded, also stored once by key, is a notice, not listed)
KINDS = ("branch_silent", "branch_overdue", "branch_due_soon", "member_at_risk")


class MemberScoreArgs(StrictSchema):
    member_id = fields.String(required=True, validate=ID)
    year = YEAR
    as_of = Day(load_default=None, allow_none=True)  # the score as it stood that day


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
    # a page like every list (PageSchema's bounds); by default as many as before (1,000)
    limit = fields.Integer(strict=True, load_default=1000,
                           validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(strict=True, load_default=0,
                            validate=validate.Range(min=0, max=MAX_OFFSET))
    # Also streaks too short for a level (1-2 missed months): a branch page shows every
    # member's streak; "members at risk" are those with a level (SPEC §3).
    all_streaks = fields.Boolean(load_default=False)


class YearArgs(StrictSchema):
    year = fields.Integer(strict=True, required=True, validate=validate.Range(min=1921, max=2100))


class DailyArgs(StrictSchema):
    as_of = Day(load_default=None, allow_none=True)


class AlertFilters(PageSchema):
    org_id = fields.String(validate=ID)
    kind = fields.String(validate=validate.OneOf(KINDS))
