"""copy watermark for roster caches

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:51:48.293068
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('copy_watermark',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_copy_watermark'))
    )


def downgrade():
    op.drop_table('copy_watermark')
