"""member_tally and member_month as SQLite WITHOUT ROWID tables: every meeting adds to a
dozen members' rows of each, and an upsert then updates one B-tree (the primary key's)
instead of the key's index and the rowid table it points into. Rebuilt with their rows.
bench/tally_tables.py, the tallies with the dirty marks (0007): 93% of the CPU and 89% of
the time of rowid tables; the tallies alone, in an earlier form of it, 81% and 77%.
(The attendance copy and members' participation, inserted at random keys, took longer
WITHOUT ROWID in a trial of the same shape: they keep their rowid.) PostgreSQL has no
rowid: nothing to do there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 03:55:00
"""
from alembic import op

from orglife.common.migrate import set_sqlite_rowid


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TABLES = ('member_tally', 'member_month')


def upgrade():
    set_sqlite_rowid(op, TABLES, with_rowid=False)


def downgrade():
    set_sqlite_rowid(op, TABLES, with_rowid=True)
