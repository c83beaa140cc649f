"""meetings' own database: meetings, attendance, activities, intake, and its copy of the
organization tree and members (built only from members' events)."""
from __future__ import annotations

from sqlalchemy import (
    JSON, Boolean, DateTime, Float, Integer, MetaData, String, Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orglife.common.db import NAMING_CONVENTION, backbone_tables


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


backbone = backbone_tables(Base.metadata)


class OrgCopy(Base):
    """members' organizations as last announced (highest version wins)."""

    __tablename__ = "org_copy"

    org_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    path: Mapped[str] = mapped_column(Text)  # "/c1/t1/b1/"
    version: Mapped[int] = mapped_column(Integer)


class MemberCopy(Base):
    """One version of a member as announced by members.

    Every version is kept with the instant it took effect, so that a meeting logged late is
    expanded with the branch and flags its members had on the meeting's date. The first
    version takes effect from the member's joining date (or always, without one): an imported
    registry describes members who were already there.
    """

    __tablename__ = "member_copy"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_from: Mapped[object] = mapped_column(DateTime(timezone=True))
    name: Mapped[str] = mapped_column(String(100))
    branch_id: Mapped[str] = mapped_column(String(64), index=True)
    group_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    committee_member: Mapped[bool] = mapped_column(Boolean, default=False)
    no_vote: Mapped[bool] = mapped_column(Boolean, default=False)
    mobile: Mapped[bool] = mapped_column(Boolean, default=False)


class CopyWatermark(Base):
    """A counter bumped in every transaction that changes the copy of members, so each
    instance can tell whether its cached rosters are still those of the database."""

    __tablename__ = "copy_watermark"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)


class Meeting(Base):
    __tablename__ = "meetings"

    meeting_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    branch_id: Mapped[str] = mapped_column(String(64), index=True)
    branch_path: Mapped[str] = mapped_column(Text, index=True)
    group_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    held_at: Mapped[object] = mapped_column(DateTime(timezone=True), index=True)
    topic: Mapped[str | None] = mapped_column(String(300), nullable=True)
    minutes: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # scheduled | logged
    revision: Mapped[int] = mapped_column(Integer)
    quorum_met: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    quorum: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Listed people who were not members on the meeting's date ({member_id, status, remote}):
    # kept, counting for nothing, with a warning ({field, message}) for each (None: none).
    non_members: Mapped[list | None] = mapped_column(JSON, nullable=True)
    warnings: Mapped[list | None] = mapped_column(JSON, nullable=True)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # rpc | intake
    report_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Attendance(Base):
    __tablename__ = "attendance"

    meeting_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # present | leave | absent
    remote: Mapped[bool] = mapped_column(Boolean, default=False)
    expected: Mapped[bool] = mapped_column(Boolean, default=True)
    visiting: Mapped[bool] = mapped_column(Boolean, default=False)


# No index by member: no read of meetings needs one, and every row paid for it (0005).


class Activity(Base):
    __tablename__ = "activities"

    activity_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), index=True)
    branch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The member's branch path when logged (None: branch not known yet), for scoped reads.
    branch_path: Mapped[str | None] = mapped_column(Text, nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    held_at: Mapped[object] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    household: Mapped[str | None] = mapped_column(String(200), nullable=True)
    opinions: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    report_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PendingIntake(Base):
    """An intake report naming members or organizations not known yet: it waits (persisted,
    so a restart does not lose it) until their events arrive or its deadline passes."""

    __tablename__ = "pending_intake"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[object] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[float] = mapped_column(Float, index=True)  # epoch seconds
    missing: Mapped[list] = mapped_column(JSON)


class IntakeReceipt(Base):
    """An accepted intake report: which meeting or activity its envelope became, so a peer
    can find it by the `event_id` it sent."""

    __tablename__ = "intake_receipts"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(64))  # meeting_id or activity_id
    accepted_at: Mapped[object] = mapped_column(DateTime(timezone=True))


class RejectedIntake(Base):
    """A report intake refused, kept for inspection with its reasons."""

    __tablename__ = "rejected_intake"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict] = mapped_column(JSON)
    reasons: Mapped[dict] = mapped_column(JSON)
    rejected_at: Mapped[object] = mapped_column(DateTime(timezone=True), index=True)
    # The reported branch's path when it could be resolved, so scoped admins see their own.
    branch_path: Mapped[str | None] = mapped_column(Text, nullable=True)
