"""vi notices: Track B's real-time volatility interruptions

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-28 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import observer.db.models


revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # H0STVIC0, H0NXVIC0, H0UNVIC0 as sent: each VI's start and end the moment it happens.
    op.create_table('vi_notices',
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('received_ns', sa.BigInteger(), nullable=False),
    sa.Column('applies', sa.Boolean(), nullable=False),
    sa.Column('started_ns', sa.BigInteger(), nullable=False),
    sa.Column('ended_ns', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('market_class', sa.String(length=8), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('static_base', sa.BigInteger(), nullable=False),
    sa.Column('static_move_pct', observer.db.models.ExactDecimal(precision=24, scale=8), nullable=False),
    sa.Column('dynamic_base', sa.BigInteger(), nullable=False),
    sa.Column('dynamic_move_pct', observer.db.models.ExactDecimal(precision=24, scale=8), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('etp', sa.Boolean(), nullable=False),
    sa.Column('exchange', sa.String(length=8), nullable=True),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('venue', sa.String(length=8), nullable=False),
    sa.Column('trading_session', sa.String(length=24), nullable=True),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_vi_notices'))
    )
    with op.batch_alter_table('vi_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vi_notices_symbol_received_ns'), ['symbol', 'received_ns'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('vi_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vi_notices_symbol_received_ns'))
    op.drop_table('vi_notices')
