"""the toy's tables

Revision ID: 0001
Revises:
Create Date: 2026-11-25 16:00:00
"""
from alembic import op
import sqlalchemy as sa

from orglife.common.migrate import create_backbone_tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    create_backbone_tables(op)
    op.create_table('noted',
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_noted'))
    )


def downgrade():
    for table in ('noted', 'relay_lease', 'inbox', 'outbox'):
        op.drop_table(table)
