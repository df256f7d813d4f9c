"""realtime rejections: the real-time records and frames Track B refused, with their text

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A record or frame refused (not registered, a price or time that cannot be, unreadable,
    # oversized): kept with the frame's text, at most 4,096 characters, a few a day per kind.
    op.create_table('realtime_rejections',
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('tr_id', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('received_ns', sa.BigInteger(), nullable=False),
    sa.Column('exchange_ns', sa.BigInteger(), nullable=False),
    sa.Column('text', sa.String(length=4096), nullable=False),
    sa.Column('length', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_realtime_rejections'))
    )
    with op.batch_alter_table('realtime_rejections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_realtime_rejections_received_ns'), ['received_ns'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('realtime_rejections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_realtime_rejections_received_ns'))
    op.drop_table('realtime_rejections')
