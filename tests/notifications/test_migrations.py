"""notifications' migrations on a database that already holds rows, on SQLite and
PostgreSQL."""
from datetime import datetime, timezone

from sqlalchemy import text

from orglife.common.clock import as_utc
from orglife.common.db import make_engine
from orglife.common.migrate import upgrade


def test_reminders_pending_before_0004_get_their_meeting_as_deadline(db_url):
    """0004 gives pending reminders the meeting their cause names (meeting:ID@HELD_AT, a
    relay's with |...), so that quiet hours set after the upgrade never hold them past it;
    cancellation notices, sent rows and other kinds keep none."""
    upgrade("notifications", db_url, revision="0003")
    engine = make_engine(db_url)
    rows = {"r1": ("meeting_reminder", "pending", "meeting:s@1@2026-11-23T11:30:00+00:00"),
            "r2": ("meeting_reminder", "pending",
                   "meeting:s2@2026-11-24T11:30:00+00:00|relay:m3"),
            "r3": ("meeting_reminder", "pending", "meeting:s3@cancelled"),
            "r4": ("meeting_reminder", "delivered", "meeting:s4@2026-11-25T11:30:00+00:00"),
            "r5": ("absence_followup", "pending", "meeting:s5@2026-11-25T11:30:00+00:00")}
    with engine.begin() as conn:
        for notification_id, (kind, status, cause) in rows.items():
            conn.execute(text(
                "INSERT INTO notification (notification_id, kind, recipient_id, recipient_type,"
                " cause, channels, channel_index, channel, urgent, subject, body, status,"
                " attempts, planned_at, not_before, next_attempt_at, created_at, history)"
                " VALUES (:id, :kind, 'm1', 'member', :cause, '[\"email\"]', 0, 'email',"
                " false, 's', 'b', :status, 0, :at, :at, :at, :at, '[]')"),
                {"id": notification_id, "kind": kind, "cause": cause, "status": status,
                 "at": datetime(2026, 11, 20, 2, tzinfo=timezone.utc)})
    upgrade("notifications", db_url)
    with engine.connect() as conn:
        deadlines = {key: as_utc(datetime.fromisoformat(value) if isinstance(value, str)
                                 else value)  # SQLite's text, PostgreSQL's timestamptz
                     for key, value in conn.execute(
            text("SELECT notification_id, deadline FROM notification")).all()}
    engine.dispose()
    assert deadlines == {"r1": datetime(2026, 11, 23, 11, 30, tzinfo=timezone.utc),
                         "r2": datetime(2026, 11, 24, 11, 30, tzinfo=timezone.utc),
                         "r3": None, "r4": None, "r5": None}
