"""final flows: the flows job's investor flows, daily program trades and VIs

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-28 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import observer.db.models


revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def _audited() -> list[sa.Column]:
    return [
        sa.Column('source', sa.String(length=120), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    # FHPTJ04160001 after a venue's close: net buying by investor group, a stock and day.
    op.create_table('investor_flows',
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('venue', sa.String(length=8), nullable=False),
    sa.Column('individual_qty', sa.BigInteger(), nullable=False),
    sa.Column('foreign_qty', sa.BigInteger(), nullable=False),
    sa.Column('institution_qty', sa.BigInteger(), nullable=False),
    sa.Column('other_corp_qty', sa.BigInteger(), nullable=False),
    sa.Column('individual_value', sa.BigInteger(), nullable=False),
    sa.Column('foreign_value', sa.BigInteger(), nullable=False),
    sa.Column('institution_value', sa.BigInteger(), nullable=False),
    sa.Column('other_corp_value', sa.BigInteger(), nullable=False),
    sa.Column('volume', sa.BigInteger(), nullable=False),
    sa.Column('fetched_ns', sa.BigInteger(), nullable=False),
    *_audited(),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_investor_flows'))
    )
    # FHPPG04650201: a stock's program trading on a day and venue.
    op.create_table('program_trades_daily',
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('venue', sa.String(length=8), nullable=False),
    sa.Column('sell_qty', sa.BigInteger(), nullable=False),
    sa.Column('buy_qty', sa.BigInteger(), nullable=False),
    sa.Column('net_qty', sa.BigInteger(), nullable=False),
    sa.Column('sell_value', sa.BigInteger(), nullable=False),
    sa.Column('buy_value', sa.BigInteger(), nullable=False),
    sa.Column('net_value', sa.BigInteger(), nullable=False),
    sa.Column('fetched_ns', sa.BigInteger(), nullable=False),
    *_audited(),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_program_trades_daily'))
    )
    for table in ('investor_flows', 'program_trades_daily'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f'ix_{table}_trade_date_symbol_venue'), ['trade_date', 'symbol', 'venue'], unique=False)
    # FHPST01390000 by stock after KRX's day: each volatility interruption as KIS lists it.
    op.create_table('volatility_interruptions',
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('started_ns', sa.BigInteger(), nullable=False),
    sa.Column('ended_ns', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('static_base', sa.BigInteger(), nullable=False),
    sa.Column('static_move_pct', observer.db.models.ExactDecimal(precision=24, scale=8), nullable=False),
    sa.Column('dynamic_base', sa.BigInteger(), nullable=False),
    sa.Column('dynamic_move_pct', observer.db.models.ExactDecimal(precision=24, scale=8), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('fetched_ns', sa.BigInteger(), nullable=False),
    *_audited(),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_volatility_interruptions'))
    )
    with op.batch_alter_table('volatility_interruptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volatility_interruptions_trade_date_symbol'), ['trade_date', 'symbol'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('volatility_interruptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volatility_interruptions_trade_date_symbol'))
    op.drop_table('volatility_interruptions')
    for table in ('program_trades_daily', 'investor_flows'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_trade_date_symbol_venue'))
        op.drop_table(table)
