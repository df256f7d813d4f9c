"""market status and program trades: Track B's market-operation and program-trading records

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-28 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def _audited() -> list[sa.Column]:
    return [
        sa.Column('source', sa.String(length=120), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    # A watched symbol's halts, VIs and session events (H0STMKO0, H0NXMKO0), as sent.
    op.create_table('market_status',
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('received_ns', sa.BigInteger(), nullable=False),
    sa.Column('halted', sa.Boolean(), nullable=False),
    sa.Column('halt_reason', sa.String(length=200), nullable=False),
    sa.Column('operation', sa.String(length=8), nullable=False),
    sa.Column('expected_operation', sa.String(length=8), nullable=False),
    sa.Column('extension', sa.String(length=8), nullable=False),
    sa.Column('allocation', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('vi', sa.String(length=8), nullable=False),
    sa.Column('overtime_vi', sa.String(length=8), nullable=False),
    sa.Column('exchange', sa.String(length=8), nullable=True),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('venue', sa.String(length=8), nullable=False),
    sa.Column('trading_session', sa.String(length=24), nullable=True),
    *_audited(),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_market_status'))
    )
    with op.batch_alter_table('market_status', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_market_status_symbol_received_ns'), ['symbol', 'received_ns'], unique=False)
    # A watched symbol's program trading so far today (H0STPGM0, H0NXPGM0, H0UNPGM0).
    op.create_table('program_trades',
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('exchange_ns', sa.BigInteger(), nullable=False),
    sa.Column('received_ns', sa.BigInteger(), nullable=False),
    sa.Column('sell_qty', sa.BigInteger(), nullable=False),
    sa.Column('sell_value', sa.BigInteger(), nullable=False),
    sa.Column('buy_qty', sa.BigInteger(), nullable=False),
    sa.Column('buy_value', sa.BigInteger(), nullable=False),
    sa.Column('net_qty', sa.BigInteger(), nullable=False),
    sa.Column('net_value', sa.BigInteger(), nullable=False),
    sa.Column('ask_residual', sa.BigInteger(), nullable=False),
    sa.Column('bid_residual', sa.BigInteger(), nullable=False),
    sa.Column('net_residual', sa.BigInteger(), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('venue', sa.String(length=8), nullable=False),
    sa.Column('trading_session', sa.String(length=24), nullable=True),
    *_audited(),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_program_trades'))
    )
    with op.batch_alter_table('program_trades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_program_trades_symbol_exchange_ns'), ['symbol', 'exchange_ns'], unique=False)


def downgrade() -> None:
    for table, columns in (
        ('program_trades', 'symbol_exchange_ns'),
        ('market_status', 'symbol_received_ns'),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_{columns}'))
        op.drop_table(table)
