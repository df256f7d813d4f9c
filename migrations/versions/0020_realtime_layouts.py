"""realtime layouts: the session and mid-point fields of the newer real-time layouts

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-26 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import observer.db.models


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows of a layout without these fields (every row stored before) hold NULL.
    with op.batch_alter_table('trade_ticks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('market_session', sa.String(length=8), nullable=True))
    with op.batch_alter_table('order_books', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mid_price', observer.db.models.ExactDecimal(precision=24, scale=8), nullable=True))
        batch_op.add_column(sa.Column('mid_qty', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('mid_side', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('market_session', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('order_books', schema=None) as batch_op:
        batch_op.drop_column('market_session')
        batch_op.drop_column('mid_side')
        batch_op.drop_column('mid_qty')
        batch_op.drop_column('mid_price')
    with op.batch_alter_table('trade_ticks', schema=None) as batch_op:
        batch_op.drop_column('market_session')
