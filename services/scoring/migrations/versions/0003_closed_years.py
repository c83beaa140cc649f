"""closed years: branch figures say whether their year was over; years judged as closed;
attendance rate null when nobody was expected

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('branch_stat', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.alter_column('attendance_rate', existing_type=sa.Float(), nullable=True)
    op.create_table('closed_year',
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('judged_on', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('year', name=op.f('pk_closed_year'))
    )


def downgrade():
    op.drop_table('closed_year')
    with op.batch_alter_table('branch_stat', schema=None) as batch_op:
        batch_op.alter_column('attendance_rate', existing_type=sa.Float(), nullable=False)
        batch_op.drop_column('closed')
