"""organizations remember when they were registered (alerts look forward from then)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 18:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('organizations') as batch:
        batch.add_column(sa.Column('registered_at', sa.DateTime(timezone=True), nullable=True))
    # Organizations registered before this was recorded: from the upgrade on (the
    # conservative choice: no alert about a period that ended before anyone could see it).
    op.execute("UPDATE organizations SET registered_at = CURRENT_TIMESTAMP "
               "WHERE registered_at IS NULL")


def downgrade():
    with op.batch_alter_table('organizations') as batch:
        batch.drop_column('registered_at')
