"""scoring's own database: its copy of organizations, members, meetings and activities (built
only from events), the tallies it keeps up to date as they change, the figures it serves, and
the alerts it raised."""
from __future__ import annotations

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orglife.common.db import NAMING_CONVENTION, backbone_tables


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


backbone = backbone_tables(Base.metadata)


# -- the copy (highest version or revision wins) ---------------------------------------------
class OrgCopy(Base):
    __tablename__ = "org_copy"

    org_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    path: Mapped[str] = mapped_column(Text, index=True)  # "/c1/t1/b1/"
    registered_on: Mapped[object | None] = mapped_column(Date, nullable=True)
    version: Mapped[int] = mapped_column(Integer)


class MemberState(Base):
    """A member as last announced: where they are now, their status and flags."""

    __tablename__ = "member_state"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    branch_id: Mapped[str] = mapped_column(String(64), index=True)
    group_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    committee_member: Mapped[bool] = mapped_column(Boolean, default=False)
    joined_on: Mapped[object | None] = mapped_column(Date, nullable=True)
    version: Mapped[int] = mapped_column(Integer)


class MeetingCopy(Base):
    """A meeting at its highest revision, with what compliance needs of its attendance."""

    __tablename__ = "meeting_copy"

    meeting_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    branch_id: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    type: Mapped[str] = mapped_column(String(32))
    held_at: Mapped[object] = mapped_column(DateTime(timezone=True))
    held_on: Mapped[object] = mapped_column(Date)  # the county's day
    year: Mapped[int] = mapped_column(Integer)
    logged: Mapped[bool] = mapped_column(Boolean)  # held and logged (not only scheduled)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    quorum_met: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    expected: Mapped[int] = mapped_column(Integer, default=0)  # host members expected
    present: Mapped[int] = mapped_column(Integer, default=0)  # of them present


Index("ix_meeting_copy_branch_year", MeetingCopy.branch_id, MeetingCopy.year)


class AttendanceCopy(Base):
    __tablename__ = "attendance_copy"

    meeting_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    remote: Mapped[bool] = mapped_column(Boolean, default=False)
    expected: Mapped[bool] = mapped_column(Boolean, default=True)


Index("ix_attendance_copy_member", AttendanceCopy.member_id)


class ActivityCopy(Base):
    __tablename__ = "activity_copy"

    activity_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), index=True)
    branch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    held_on: Mapped[object] = mapped_column(Date)
    year: Mapped[int] = mapped_column(Integer)


# -- tallies kept up to date from the copy ---------------------------------------------------
class MemberTally(Base):
    """How many lines of each kind and status a member has in a year (points come from these:
    caps depend only on counts, domain.score_from_tally)."""

    __tablename__ = "member_tally"
    # SQLite: the primary key is the table (no rowid table beside it), so the consumer's
    # upsert of a tally updates one B-tree, not two (migration 0005)
    __table_args__ = {"sqlite_with_rowid": False}

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(48), primary_key=True)  # meeting:lecture ...
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class MemberMonth(Base):
    """A member's month for the at-risk streak: meetings expected at, attended, on leave from."""

    __tablename__ = "member_month"
    __table_args__ = {"sqlite_with_rowid": False}  # as member_tally's

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # 2026-03
    expected: Mapped[int] = mapped_column(Integer, default=0)
    attended: Mapped[int] = mapped_column(Integer, default=0)
    leave: Mapped[int] = mapped_column(Integer, default=0)


# -- the figures served --------------------------------------------------------------------------
class MemberScore(Base):
    __tablename__ = "member_score"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    score: Mapped[int] = mapped_column(Integer)  # no index on it or the path: read by key (0006)
    raw: Mapped[int] = mapped_column(Integer)
    grade: Mapped[str | None] = mapped_column(String(16), nullable=True)
    recommendation: Mapped[str | None] = mapped_column(String(16), nullable=True)
    branch_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    rules_version: Mapped[str] = mapped_column(String(32))


class BranchStat(Base):
    """A branch's compliance figures for a year as of the day they were computed (`closed`:
    computed once the year was over, every period of it ended; shown as of December 31)."""

    __tablename__ = "branch_stat"

    branch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    as_of: Mapped[object] = mapped_column(Date)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    branch_path: Mapped[str] = mapped_column(Text)  # as member_score's: no index (0006)
    compliance: Mapped[float] = mapped_column(Float)
    attendance_rate: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: nobody expected
    score: Mapped[float] = mapped_column(Float)
    light: Mapped[str] = mapped_column(String(8))
    figures: Mapped[dict] = mapped_column(JSON)  # the whole compliance record
    rules_version: Mapped[str] = mapped_column(String(32))


class MemberRisk(Base):
    """A member's at-risk streak as of the day it was computed (only members with a streak)."""

    __tablename__ = "member_risk"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    branch_id: Mapped[str] = mapped_column(String(64))
    branch_path: Mapped[str] = mapped_column(Text, index=True)
    months: Mapped[int] = mapped_column(Integer)
    level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    missed: Mapped[list] = mapped_column(JSON)  # the missed months, newest first
    as_of: Mapped[object] = mapped_column(Date)


class Alert(Base):
    """An alert raised once per occurrence (`key`), never again on a restart or redelivery."""

    __tablename__ = "alerts"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # branch_silent, branch_overdue, ... (schemas)
    branch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    member_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    branch_path: Mapped[str | None] = mapped_column(Text, nullable=True, index=True)
    data: Mapped[dict] = mapped_column(JSON)
    raised_on: Mapped[object] = mapped_column(Date, index=True)
    raised_at: Mapped[object] = mapped_column(DateTime(timezone=True))


class Dirty(Base):
    """A member's score, a branch's figures or a member's streak to recompute: written with the
    change that made it stale (so a crash forgets nothing), drained a moment later in bulk, so
    that a burst of events touching one member recomputes them once, not once per event."""

    __tablename__ = "dirty"
    # SQLite: the key is the table, so a mark is one B-tree insert and one delete, not two
    # of each (migration 0007; registry.claim_marks takes marks by their key)
    __table_args__ = {"sqlite_with_rowid": False}

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # member | branch | risk
    ident: Mapped[str] = mapped_column(String(64), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0 for risk


class ClosedYear(Base):
    """A year the daily run has judged as closed: overdue alerts for its last periods and the
    year_graded events raised (once; a run that failed leaves it to the next)."""

    __tablename__ = "closed_year"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    judged_on: Mapped[object] = mapped_column(Date)


class DailyRun(Base):
    """The last day the daily job ran (one row), so a restart does not run it twice."""

    __tablename__ = "daily_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[object] = mapped_column(Date)
    # The rules' content digest the stored figures were last computed with (Rules.digest):
    # an edited rules file that kept its version is recalculated too.
    rules_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
