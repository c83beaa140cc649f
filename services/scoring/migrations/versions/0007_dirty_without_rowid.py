"""dirty (the marks on what a batch made stale) as a SQLite WITHOUT ROWID table: the consumer
writes a mark for every member a meeting touches and the drain deletes it a moment later;
with a rowid, each is done in the key's index and in the table beside it. Rebuilt with its
marks; registry.claim_marks takes marks by their key since. PostgreSQL: nothing to do.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 04:20:00
"""
from alembic import op

from orglife.common.migrate import set_sqlite_rowid


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    set_sqlite_rowid(op, ('dirty',), with_rowid=False)


def downgrade():
    set_sqlite_rowid(op, ('dirty',), with_rowid=True)
