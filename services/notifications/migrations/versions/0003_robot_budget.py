"""notifications: each robot's recent sends, shared by every instance

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('robot_budget',
    sa.Column('robot_key', sa.String(length=64), nullable=False),
    sa.Column('sent', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('robot_key', name=op.f('pk_robot_budget'))
    )


def downgrade():
    op.drop_table('robot_budget')
