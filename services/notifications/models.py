"""notifications' own database: its copy of members (contacts) and organizations (secretaries,
robots) built from members' events, the meetings it reminds of, members' preferences, and the
notifications themselves, each stored before it is sent."""
from __future__ import annotations

from sqlalchemy import (
    JSON, Boolean, DateTime, Index, Integer, MetaData, String, Text, UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orglife.common.db import NAMING_CONVENTION, backbone_tables


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


backbone = backbone_tables(Base.metadata)


class ContactCopy(Base):
    """A member as last announced (highest version wins): how to reach them."""

    __tablename__ = "contact_copy"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    branch_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    version: Mapped[int] = mapped_column(Integer)


class OrgCopy(Base):
    """An organization as last announced: its secretary (or officer) and its robot."""

    __tablename__ = "org_copy"

    org_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    path: Mapped[str] = mapped_column(Text, index=True)  # "/c1/t1/b1/"
    secretary_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    robot_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    version: Mapped[int] = mapped_column(Integer)


class MeetingSeen(Base):
    """The highest revision of each meeting seen, so an older event arriving late changes
    nothing (SPEC §4: the highest revision wins)."""

    __tablename__ = "meeting_seen"

    meeting_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    # the meeting as last seen, kept only while it waits for members or its branch that this
    # copy does not know yet (MeetingWait); planned again when they arrive
    waiting: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class MeetingWait(Base):
    """A meeting waiting for a member or organization notifications has not heard of yet
    (its events travel on another queue and may come later); handlers.py plans the meeting
    again when the copy gains it."""

    __tablename__ = "meeting_wait"

    waited_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    meeting_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class Preference(Base):
    """A member's own channel order and quiet hours (set_preferences)."""

    __tablename__ = "preference"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channels: Mapped[list | None] = mapped_column(JSON, nullable=True)
    quiet_hours: Mapped[str | None] = mapped_column(String(16), nullable=True)
    updated_at: Mapped[object] = mapped_column(DateTime(timezone=True))


class Notification(Base):
    """One message to one recipient about one cause, from its planning to its outcome.

    `channels` is the order to try; `channel_index` the one in use, with `attempts` made on it
    and the next at `next_attempt_at` (retries live here, so a restart forgets none). A sender
    leases a batch (`lease_owner`, `lease_until`), marks each row `sending` just before the
    channel is called and records the outcome after; a row found `sending` long after (the
    sender died in between) becomes `unknown` and is never sent again on its own.
    """

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("kind", "recipient_id", "cause", name="uq_notification_once"),
        # The sender's scan: what is pending and due, urgent first, oldest first (lease_due
        # reads only the rows it takes, whatever the backlog).
        Index("ix_notification_due", "status", "urgent", "next_attempt_at"),
        Index("ix_notification_ref", "ref", "kind"),
    )

    notification_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient_id: Mapped[str] = mapped_column(String(64), index=True)
    recipient_type: Mapped[str] = mapped_column(String(16))  # member | organization
    cause: Mapped[str] = mapped_column(String(200))
    ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    about_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    branch_path: Mapped[str | None] = mapped_column(Text, nullable=True)  # scope of readers
    channels: Mapped[list] = mapped_column(JSON)
    channel_index: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str] = mapped_column(String(16))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    quiet_hours: Mapped[str | None] = mapped_column(String(16), nullable=True)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When it was meant to go (a reminder's day-before, a follow-up's grace), and not_before
    # when it may go: planned_at moved past the recipient's quiet hours.
    planned_at: Mapped[object] = mapped_column(DateTime(timezone=True))
    not_before: Mapped[object] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[object] = mapped_column(DateTime(timezone=True))
    # after this it is pointless (a reminder's meeting): quiet hours never hold it past it
    deadline: Mapped[object | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[object] = mapped_column(DateTime(timezone=True))
    sending_since: Mapped[object | None] = mapped_column(DateTime(timezone=True), nullable=True)
    delivered_at: Mapped[object | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[object | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Every attempt: channel, time, outcome (no addresses: they stay in contact_copy).
    history: Mapped[list] = mapped_column(JSON, default=list)
    cause_event_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RobotBudget(Base):
    """The recent sends to one robot, shared by every instance (registry.take_robot_slot):
    a vendor's limit (DingTalk 20 a minute, then a 10-minute block) is per robot, not per
    process. `sent`: Unix times (real time, as the vendor counts) within the longest window."""

    __tablename__ = "robot_budget"

    robot_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    sent: Mapped[list] = mapped_column(JSON, default=list)

