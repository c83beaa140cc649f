"""dirty marks: what to recompute, drained in bulk

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('dirty',
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('ident', sa.String(length=64), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'ident', 'year', name=op.f('pk_dirty'))
    )


def downgrade():
    op.drop_table('dirty')
