"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 09:18:42.082984
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('activities',
    sa.Column('activity_id', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('branch_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('household', sa.String(length=200), nullable=True),
    sa.Column('opinions', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('report_digest', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('activity_id', name=op.f('pk_activities'))
    )
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activities_member_id'), ['member_id'], unique=False)

    op.create_table('attendance',
    sa.Column('meeting_id', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('remote', sa.Boolean(), nullable=False),
    sa.Column('expected', sa.Boolean(), nullable=False),
    sa.Column('visiting', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('meeting_id', 'member_id', name=op.f('pk_attendance'))
    )
    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.create_index('ix_attendance_member', ['member_id'], unique=False)

    op.create_table('inbox',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('handled_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_inbox'))
    )
    op.create_table('meetings',
    sa.Column('meeting_id', sa.String(length=64), nullable=False),
    sa.Column('branch_id', sa.String(length=64), nullable=False),
    sa.Column('branch_path', sa.Text(), nullable=False),
    sa.Column('group_id', sa.String(length=64), nullable=True),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('topic', sa.String(length=300), nullable=True),
    sa.Column('minutes', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('quorum_met', sa.Boolean(), nullable=True),
    sa.Column('quorum', sa.JSON(), nullable=True),
    sa.Column('cancelled', sa.Boolean(), nullable=False),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('report_digest', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('meeting_id', name=op.f('pk_meetings'))
    )
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meetings_branch_id'), ['branch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_meetings_branch_path'), ['branch_path'], unique=False)
        batch_op.create_index(batch_op.f('ix_meetings_held_at'), ['held_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_meetings_type'), ['type'], unique=False)

    op.create_table('member_copy',
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('branch_id', sa.String(length=64), nullable=False),
    sa.Column('group_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('committee_member', sa.Boolean(), nullable=False),
    sa.Column('no_vote', sa.Boolean(), nullable=False),
    sa.Column('mobile', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('member_id', 'version', name=op.f('pk_member_copy'))
    )
    with op.batch_alter_table('member_copy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_copy_branch_id'), ['branch_id'], unique=False)

    op.create_table('org_copy',
    sa.Column('org_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('category', sa.String(length=32), nullable=True),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', name=op.f('pk_org_copy'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('exchange', sa.String(length=128), nullable=False),
    sa.Column('routing_key', sa.String(length=128), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_outbox_event_id'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_unsent', ['id'], unique=False, sqlite_where=sa.text('sent_at IS NULL'), postgresql_where=sa.text('sent_at IS NULL'))

    op.create_table('pending_intake',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline', sa.Float(), nullable=False),
    sa.Column('missing', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_pending_intake'))
    )
    with op.batch_alter_table('pending_intake', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_intake_deadline'), ['deadline'], unique=False)

    op.create_table('rejected_intake',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('rejected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('branch_path', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_rejected_intake'))
    )
    with op.batch_alter_table('rejected_intake', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rejected_intake_rejected_at'), ['rejected_at'], unique=False)

    op.create_table('relay_lease',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_relay_lease'))
    )


def downgrade():
    op.drop_table('relay_lease')
    with op.batch_alter_table('rejected_intake', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rejected_intake_rejected_at'))

    op.drop_table('rejected_intake')
    with op.batch_alter_table('pending_intake', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_intake_deadline'))

    op.drop_table('pending_intake')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_unsent', sqlite_where=sa.text('sent_at IS NULL'), postgresql_where=sa.text('sent_at IS NULL'))

    op.drop_table('outbox')
    op.drop_table('org_copy')
    with op.batch_alter_table('member_copy', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_copy_branch_id'))

    op.drop_table('member_copy')
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meetings_type'))
        batch_op.drop_index(batch_op.f('ix_meetings_held_at'))
        batch_op.drop_index(batch_op.f('ix_meetings_branch_path'))
        batch_op.drop_index(batch_op.f('ix_meetings_branch_id'))

    op.drop_table('meetings')
    op.drop_table('inbox')
    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.drop_index('ix_attendance_member')

    op.drop_table('attendance')
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_activities_member_id'))

    op.drop_table('activities')
