"""the rules file's content digest the stored figures were computed with, so an edit that
kept the version is noticed (and recalculated)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 21:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('daily_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rules_digest', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('daily_run', schema=None) as batch_op:
        batch_op.drop_column('rules_digest')
