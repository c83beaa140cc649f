"""members' own database: the organization tree, members, and their participation records."""
from __future__ import annotations

from sqlalchemy import (
    Boolean, Date, DateTime, ForeignKey, Index, Integer, MetaData, String, Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orglife.common.db import NAMING_CONVENTION, backbone_tables


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


backbone = backbone_tables(Base.metadata)


class Organization(Base):
    __tablename__ = "organizations"

    org_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.org_id"), index=True, nullable=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # "/county/t01/b0001/": ancestors and self, for scope checks and subtree filters.
    path: Mapped[str] = mapped_column(Text, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # When it joined orglife: alerts look forward from here (SPEC §3).
    registered_at: Mapped[object | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A member: the branch's secretary, or for a township or county the officer who receives
    # its alerts (kept by update_organization; not a foreign key: a member stays a member).
    secretary_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The organization's work-chat group robot (DingTalk, WeCom or Feishu webhook).
    robot_url: Mapped[str | None] = mapped_column(String(500), nullable=True)


class Member(Base):
    __tablename__ = "members"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    branch_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id"), index=True)
    group_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.org_id"), nullable=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    mobile: Mapped[bool] = mapped_column(Boolean, default=False)
    mobile_location: Mapped[str | None] = mapped_column(String(200), nullable=True)
    committee_member: Mapped[bool] = mapped_column(Boolean, default=False)
    no_vote: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    joined_on: Mapped[object | None] = mapped_column(Date, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Membership(Base):
    """Which branch a member belonged to, and when: opened at registration, closed and
    reopened by each transfer, so a member's history follows them."""

    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(64), index=True)
    branch_id: Mapped[str] = mapped_column(String(64))
    since: Mapped[object] = mapped_column(Date)
    until: Mapped[object | None] = mapped_column(Date, nullable=True)  # None: current


class Participation(Base):
    """One line of a member's record: a meeting they were expected at or attended, or an
    activity. Built from meetings' events only; the highest meeting revision wins.

    Keyed by (member_id, kind, ref): meeting ids and activity ids are chosen apart (callers
    may supply either), so a meeting and an activity may share an id and both stay."""

    __tablename__ = "participation"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # meeting | activity
    ref: Mapped[str] = mapped_column(String(80), primary_key=True)  # meeting_id / activity_id
    type: Mapped[str] = mapped_column(String(32))  # meeting type or activity kind
    branch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # host branch
    held_at: Mapped[object] = mapped_column(DateTime(timezone=True))
    year: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # present | leave | absent | done
    remote: Mapped[bool] = mapped_column(Boolean, default=False)
    visiting: Mapped[bool] = mapped_column(Boolean, default=False)
    topic: Mapped[str | None] = mapped_column(String(300), nullable=True)


# A member's lines are found by the primary key (member_id first); no index by held_at
# (migration 0007: every line paid for it, no read needed it).
# A new revision replaces a meeting's lines: found by `ref` without scanning every record.
Index("ix_participation_ref", Participation.ref)


class MeetingVersion(Base):
    """The highest revision of each meeting seen, so an older event never overwrites a newer."""

    __tablename__ = "meeting_versions"

    meeting_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
