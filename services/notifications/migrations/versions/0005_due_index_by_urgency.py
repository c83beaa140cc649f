"""notifications: the sender's due index leads with urgency, so that a lease reads only the
rows it takes, urgent ones first, however many are due (it sorted every due row at each lease:
50 ms for 200 rows behind a backlog of 85,000, bench/county_year.py on the whole county)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 14:00:00
"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    # SQLite's schema changes are not transactional here: a run cut between the two
    # statements is finished by the next
    op.drop_index('ix_notification_due', table_name='notification', if_exists=True)
    op.create_index('ix_notification_due', 'notification',
                    ['status', 'urgent', 'next_attempt_at'])


def downgrade():
    op.drop_index('ix_notification_due', table_name='notification')
    op.create_index('ix_notification_due', 'notification', ['status', 'next_attempt_at'])
