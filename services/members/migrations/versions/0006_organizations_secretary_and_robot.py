"""organizations get a secretary (a member) and a work-chat group robot

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    # Both optional: organizations registered before this have neither until an admin sets
    # them (update_organization).
    with op.batch_alter_table('organizations') as batch:
        batch.add_column(sa.Column('secretary_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('robot_url', sa.String(length=500), nullable=True))


def downgrade():
    with op.batch_alter_table('organizations') as batch:
        batch.drop_column('robot_url')
        batch.drop_column('secretary_id')
