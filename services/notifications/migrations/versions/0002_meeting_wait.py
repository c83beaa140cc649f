"""notifications: meetings waiting for members or organizations the copy does not know yet

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:15:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('meeting_seen', sa.Column('waiting', sa.JSON(), nullable=True))
    op.create_table('meeting_wait',
    sa.Column('waited_id', sa.String(length=64), nullable=False),
    sa.Column('meeting_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('waited_id', 'meeting_id', name=op.f('pk_meeting_wait'))
    )


def downgrade():
    op.drop_table('meeting_wait')
    with op.batch_alter_table('meeting_seen') as batch:
        batch.drop_column('waiting')
