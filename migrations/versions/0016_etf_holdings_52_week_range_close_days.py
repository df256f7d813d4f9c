"""etf holdings; 52-week range close days

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-22 18:45:10.896608
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import observer.db.models


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ETF constituents (weekly, append-only: a set per ETF and session, its lines beside it)
    # and the days of a 52-week range read from closes.
    op.create_table('etf_holding_sets',
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('line_count', sa.BigInteger(), nullable=False),
    sa.Column('reported_count', sa.BigInteger(), nullable=True),
    sa.Column('quote_count', sa.BigInteger(), nullable=True),
    sa.Column('pages', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_etf_holding_sets'))
    )
    with op.batch_alter_table('etf_holding_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_etf_holding_sets_symbol_trade_date'), ['symbol', 'trade_date'], unique=False)

    op.create_table('etf_holdings',
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('weight_pct', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True),
    sa.Column('value_krw', sa.BigInteger(), nullable=True),
    sa.Column('idx', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('idx', 'source', 'seq', name=op.f('pk_etf_holdings'))
    )
    with op.batch_alter_table('etf_holdings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_etf_holdings_symbol_trade_date'), ['symbol', 'trade_date'], unique=False)

    with op.batch_alter_table('etf_details', schema=None) as batch_op:
        batch_op.add_column(sa.Column('range_52w_close_days', sa.BigInteger(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('etf_details', schema=None) as batch_op:
        batch_op.drop_column('range_52w_close_days')

    with op.batch_alter_table('etf_holdings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_etf_holdings_symbol_trade_date'))

    op.drop_table('etf_holdings')
    with op.batch_alter_table('etf_holding_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_etf_holding_sets_symbol_trade_date'))

    op.drop_table('etf_holding_sets')
