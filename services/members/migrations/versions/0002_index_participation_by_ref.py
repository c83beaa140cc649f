"""index participation by ref

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:40:07.682684
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('participation', schema=None) as batch_op:
        batch_op.create_index('ix_participation_ref', ['ref'], unique=False)



def downgrade():
    with op.batch_alter_table('participation', schema=None) as batch_op:
        batch_op.drop_index('ix_participation_ref')

