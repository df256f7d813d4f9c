"""alert subjects, resolutions, acks and deliveries

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 15:33:13.440782
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An alert's subject names the condition with its code; rows from before are ''.
    op.create_table('alert_acks',
    sa.Column('alert_source', sa.String(length=120), nullable=False),
    sa.Column('alert_seq', sa.BigInteger(), nullable=False),
    sa.Column('by', sa.String(length=64), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_alert_acks'))
    )
    op.create_table('alert_deliveries',
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('alerts', sa.JSON(), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('error', sa.String(length=2000), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_alert_deliveries'))
    )
    op.create_table('alert_resolutions',
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('message', sa.String(length=2000), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_alert_resolutions'))
    )
    with op.batch_alter_table('alert_resolutions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_resolutions_code'), ['code'], unique=False)

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject', sa.String(length=200), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('subject')

    with op.batch_alter_table('alert_resolutions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_resolutions_code'))

    op.drop_table('alert_resolutions')
    op.drop_table('alert_deliveries')
    op.drop_table('alert_acks')