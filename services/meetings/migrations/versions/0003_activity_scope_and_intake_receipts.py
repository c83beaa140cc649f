"""activities carry their branch path (scoped reads); receipts of accepted intake reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 15:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('activities') as batch:
        batch.add_column(sa.Column('branch_path', sa.Text(), nullable=True))
        batch.create_index('ix_activities_branch_path', ['branch_path'])
    # Activities logged before: their branch's path from the copy of organizations.
    op.execute("UPDATE activities SET branch_path = (SELECT path FROM org_copy "
               "WHERE org_copy.org_id = activities.branch_id)")
    op.create_table('intake_receipts',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_intake_receipts'))
    )


def downgrade():
    op.drop_table('intake_receipts')
    with op.batch_alter_table('activities') as batch:
        batch.drop_index('ix_activities_branch_path')
        batch.drop_column('branch_path')
