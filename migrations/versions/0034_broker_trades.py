"""broker trades: Track B's brokers' trading records, one row a ranked broker

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-30 12:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import observer.db.models


revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # H0STMBC0, H0NXMBC0, H0UNMBC0 as sent: the five brokers each side ranks first, with the
    # foreign brokers' totals on each of a record's rows.
    op.create_table('broker_trades',
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('received_ns', sa.BigInteger(), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('rank', sa.BigInteger(), nullable=False),
    sa.Column('broker', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('name_en', sa.String(length=64), nullable=False),
    sa.Column('qty', sa.BigInteger(), nullable=False),
    sa.Column('qty_change', sa.BigInteger(), nullable=False),
    sa.Column('share_pct', observer.db.models.ExactDecimal(precision=24, scale=8), nullable=False),
    sa.Column('foreign_broker', sa.Boolean(), nullable=False),
    sa.Column('foreign_sell_qty', sa.BigInteger(), nullable=False),
    sa.Column('foreign_buy_qty', sa.BigInteger(), nullable=False),
    sa.Column('foreign_sell_change', sa.BigInteger(), nullable=False),
    sa.Column('foreign_buy_change', sa.BigInteger(), nullable=False),
    sa.Column('foreign_net_qty', sa.BigInteger(), nullable=False),
    sa.Column('foreign_sell_share_pct', observer.db.models.ExactDecimal(precision=24, scale=8), nullable=False),
    sa.Column('foreign_buy_share_pct', observer.db.models.ExactDecimal(precision=24, scale=8), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('venue', sa.String(length=8), nullable=False),
    sa.Column('trading_session', sa.String(length=24), nullable=True),
    sa.Column('idx', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', 'idx', name=op.f('pk_broker_trades'))
    )
    with op.batch_alter_table('broker_trades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_broker_trades_symbol_received_ns'), ['symbol', 'received_ns'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('broker_trades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_broker_trades_symbol_received_ns'))
    op.drop_table('broker_trades')
