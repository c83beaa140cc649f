"""meetings keep their non-member attendees and the warnings about them

A meeting listing someone who was not a member on its date (joined later, or already
removed) was refused whole; it is now stored, that attendee kept apart in `non_members`
(counting for nothing) and named in `warnings`. Meetings stored before have neither.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('meetings') as batch:
        batch.add_column(sa.Column('non_members', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('warnings', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('meetings') as batch:
        batch.drop_column('warnings')
        batch.drop_column('non_members')
