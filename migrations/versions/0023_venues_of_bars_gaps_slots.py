"""venues of bars, gaps, slots and reconciliations: where each was, and in which session

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-26 21:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

# table: whether it gets a venue (KRX for the rows stored before), a session, or both
VENUE, SESSION = 1, 2
TABLES = {
    'minute_bar_batches': VENUE,
    'minute_bars': VENUE | SESSION,
    'gaps': VENUE | SESSION,
    'slot_events': VENUE | SESSION,
    'reconciliations': VENUE,
    'reconciliation_minutes': VENUE | SESSION,
}


def upgrade() -> None:
    # Every row stored before was KRX's (H0STCNT0, FID J); its session was not recorded: NULL.
    for table, columns in TABLES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            if columns & VENUE:
                batch_op.add_column(sa.Column('venue', sa.String(length=8), server_default='KRX', nullable=False))
            if columns & SESSION:
                batch_op.add_column(sa.Column('trading_session', sa.String(length=24), nullable=True))
    # A gap's history: its detection rows carry the venue and session, its state rows none.
    with op.batch_alter_table('gap_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('venue', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('trading_session', sa.String(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('gap_events', schema=None) as batch_op:
        batch_op.drop_column('trading_session')
        batch_op.drop_column('venue')
    for table, columns in reversed(TABLES.items()):
        with op.batch_alter_table(table, schema=None) as batch_op:
            if columns & SESSION:
                batch_op.drop_column('trading_session')
            if columns & VENUE:
                batch_op.drop_column('venue')
