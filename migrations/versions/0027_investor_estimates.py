"""investor estimates: a stock's estimated foreign and institutional net buying per posting

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-28 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # HHPTJ04160200's postings (09:30, 10:00, 11:20, 13:20, 14:30): KIS keeps today's alone.
    op.create_table('investor_estimates',
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('posting', sa.BigInteger(), nullable=False),
    sa.Column('foreign_qty', sa.BigInteger(), nullable=False),
    sa.Column('institution_qty', sa.BigInteger(), nullable=False),
    sa.Column('total_qty', sa.BigInteger(), nullable=False),
    sa.Column('fetched_ns', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_investor_estimates'))
    )
    with op.batch_alter_table('investor_estimates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_investor_estimates_trade_date_symbol_posting'), ['trade_date', 'symbol', 'posting'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('investor_estimates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_investor_estimates_trade_date_symbol_posting'))
    op.drop_table('investor_estimates')
