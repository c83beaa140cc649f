"""Drop ix_participation_member_held (member_id, held_at): the one read of a member's lines
(`registry.participation_record`) finds them by the primary key, which starts with
member_id, and sorts a member's few hundred lines at most; every attendance line of every
meeting (1.4 million a county year) paid one more insert at a random place of that index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 04:25:00
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('participation', schema=None) as batch_op:
        batch_op.drop_index('ix_participation_member_held')


def downgrade():
    with op.batch_alter_table('participation', schema=None) as batch_op:
        batch_op.create_index('ix_participation_member_held', ['member_id', 'held_at'],
                              unique=False)
