"""Drop the indexes on member_score (score, branch_path) and branch_stat (branch_path, score)
that no read uses: the scores and figures are read by their keys or joined to the members'
and organizations' copies, whose paths are matched with a leading wildcard (`db.under`),
which no B-tree index serves (EXPLAIN QUERY PLAN of year_scores: the primary key only). Each
drain rewrites the score of every member it marks and the figures of every branch, and an
index on a rewritten column is rewritten with it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 04:15:00
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

INDEXES = {'member_score': ('score', 'branch_path'), 'branch_stat': ('branch_path', 'score')}


def upgrade():
    for table, columns in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.drop_index(batch_op.f(f'ix_{table}_{column}'))


def downgrade():
    for table, columns in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.create_index(batch_op.f(f'ix_{table}_{column}'), [column], unique=False)
