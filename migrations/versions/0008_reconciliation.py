"""reconciliation of the stream with the minute bars

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 15:33:36.441058
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # New tables only: days before 0008 simply have no reconciliation.
    op.create_table('reconciliation_minutes',
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('minute_ns', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stored_volume', sa.BigInteger(), nullable=False),
    sa.Column('bar_volume', sa.BigInteger(), nullable=False),
    sa.Column('stored_trades', sa.BigInteger(), nullable=False),
    sa.Column('gap_id', sa.String(length=64), nullable=False),
    sa.Column('idx', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('idx', 'source', 'seq', name=op.f('pk_reconciliation_minutes'))
    )
    with op.batch_alter_table('reconciliation_minutes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconciliation_minutes_trade_date_symbol'), ['trade_date', 'symbol'], unique=False)

    op.create_table('reconciliations',
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('minute_count', sa.BigInteger(), nullable=False),
    sa.Column('missing_volume', sa.BigInteger(), nullable=False),
    sa.Column('misses', sa.BigInteger(), nullable=False),
    sa.Column('calls', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_reconciliations'))
    )
    with op.batch_alter_table('reconciliations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconciliations_trade_date_symbol'), ['trade_date', 'symbol'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reconciliations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliations_trade_date_symbol'))

    op.drop_table('reconciliations')
    with op.batch_alter_table('reconciliation_minutes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliation_minutes_trade_date_symbol'))

    op.drop_table('reconciliation_minutes')
