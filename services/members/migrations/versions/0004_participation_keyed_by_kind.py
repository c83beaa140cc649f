"""participation keyed by (member_id, kind, ref); archived members' branch history closed

A meeting and an activity may carry the same id (callers choose ids), and under the old key
(member_id, ref) the later one replaced or refused the other. Existing rows keep their kind.

Members removed or deceased before update_member closed their branch history still have an
open row: it is closed on the day of this migration (the day they were archived was not
kept), so that no history shows them in a branch for ever.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # batch mode: SQLite copies the table with the new key; PostgreSQL alters it in place
    with op.batch_alter_table('participation', schema=None) as batch_op:
        batch_op.drop_constraint('pk_participation', type_='primary')
        batch_op.create_primary_key('pk_participation', ['member_id', 'kind', 'ref'])
    op.execute("UPDATE memberships SET until = CURRENT_DATE WHERE until IS NULL AND member_id IN "
               "(SELECT member_id FROM members WHERE status IN ('removed', 'deceased'))")


def downgrade():
    # Only possible while no meeting and activity share an id for one member.
    with op.batch_alter_table('participation', schema=None) as batch_op:
        batch_op.drop_constraint('pk_participation', type_='primary')
        batch_op.create_primary_key('pk_participation', ['member_id', 'ref'])
