"""auction expected: Track B's records of an auction's expected match

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-28 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # H0STANC0, H0NXANC0, H0UNANC0 as sent: the path of expected prices nobody keeps.
    op.create_table('auction_expected',
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('exchange_ns', sa.BigInteger(), nullable=False),
    sa.Column('received_ns', sa.BigInteger(), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('change', sa.BigInteger(), nullable=False),
    sa.Column('volume', sa.BigInteger(), nullable=False),
    sa.Column('cumulative_volume', sa.BigInteger(), nullable=False),
    sa.Column('ask_price', sa.BigInteger(), nullable=False),
    sa.Column('bid_price', sa.BigInteger(), nullable=False),
    sa.Column('ask_qty', sa.BigInteger(), nullable=False),
    sa.Column('bid_qty', sa.BigInteger(), nullable=False),
    sa.Column('total_ask_qty', sa.BigInteger(), nullable=False),
    sa.Column('total_bid_qty', sa.BigInteger(), nullable=False),
    sa.Column('hour_class', sa.String(length=8), nullable=False),
    sa.Column('halted', sa.Boolean(), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('venue', sa.String(length=8), nullable=False),
    sa.Column('trading_session', sa.String(length=24), nullable=True),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_auction_expected'))
    )
    with op.batch_alter_table('auction_expected', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auction_expected_symbol_exchange_ns'), ['symbol', 'exchange_ns'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('auction_expected', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auction_expected_symbol_exchange_ns'))
    op.drop_table('auction_expected')
