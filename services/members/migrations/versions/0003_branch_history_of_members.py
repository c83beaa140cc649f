"""branch history of members

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:35:12.423813
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('memberships',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('branch_id', sa.String(length=64), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.Column('until', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memberships'))
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_memberships_member_id'), ['member_id'], unique=False)
    # members registered before this revision: their current branch, since they joined
    op.execute("INSERT INTO memberships (member_id, branch_id, since) "
               "SELECT member_id, branch_id, COALESCE(joined_on, CURRENT_DATE) FROM members "
               "WHERE status IN ('formal', 'probationary')")



def downgrade():
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_memberships_member_id'))

    op.drop_table('memberships')
