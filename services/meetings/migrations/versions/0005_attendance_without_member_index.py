"""Drop attendance's index by member (ix_attendance_member): no read of meetings uses it (a
meeting's rows are read and replaced by its id, the primary key's first column; a member's
lines are served by members' participation records), yet every attendance row paid for it:
an entry at a random place of a B-tree of 1.4 million a county year, a 4 KB page of its own
written to the WAL and again at the checkpoint (README, Benchmarks: where the cores go).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 11:30:00
"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_attendance_member', table_name='attendance')


def downgrade():
    op.create_index('ix_attendance_member', 'attendance', ['member_id'], unique=False)
