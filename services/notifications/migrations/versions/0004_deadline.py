"""notifications: a message's deadline (a reminder's meeting), kept so that a later change
of quiet hours never holds it past that

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 03:00:00
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('notification', sa.Column('deadline', sa.DateTime(timezone=True),
                                            nullable=True))
    # reminders still pending: their meeting is in their cause, meeting:ID@HELD_AT[|...]
    # (services/notifications/domain.py reminder_cause); cancellation notices
    # (meeting:ID@cancelled) do not name it and keep none
    notification = sa.table('notification', sa.column('notification_id', sa.String),
                            sa.column('kind', sa.String), sa.column('status', sa.String),
                            sa.column('cause', sa.String),
                            sa.column('deadline', sa.DateTime(timezone=True)))
    connection = op.get_bind()
    for notification_id, cause in connection.execute(
            sa.select(notification.c.notification_id, notification.c.cause).where(
                notification.c.kind == 'meeting_reminder',
                notification.c.status == 'pending')).all():
        held_at = cause.split('|')[0].rpartition('@')[2]
        try:
            deadline = datetime.fromisoformat(held_at)
        except ValueError:
            continue  # a cancellation notice
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=timezone.utc)
        connection.execute(notification.update()
                           .where(notification.c.notification_id == notification_id)
                           .values(deadline=deadline.astimezone(timezone.utc)))


def downgrade():
    with op.batch_alter_table('notification') as batch:
        batch.drop_column('deadline')
