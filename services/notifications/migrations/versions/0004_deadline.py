"""notifications: a message's deadline (a reminder's meeting), kept so that a later change
of quiet hours never holds it past that

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('notification', sa.Column('deadline', sa.DateTime(timezone=True),
                                            nullable=True))


def downgrade():
    with op.batch_alter_table('notification') as batch:
        batch.drop_column('deadline')
