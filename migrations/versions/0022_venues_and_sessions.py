"""venues and sessions: where each trade, book and snapshot traded, and in which session

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-26 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

TABLES = ('price_snapshots', 'trade_ticks', 'order_books')


def upgrade() -> None:
    # Every row stored before came from KRX (H0STCNT0, H0STASP0, FID J): its venue is KRX.
    # Its session was not recorded: NULL, never a guess from the clock.
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('venue', sa.String(length=8), server_default='KRX', nullable=False))
            batch_op.add_column(sa.Column('trading_session', sa.String(length=24), nullable=True))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('trading_session')
            batch_op.drop_column('venue')
