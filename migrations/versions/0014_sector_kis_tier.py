"""sector enrichment: KIS per-symbol tier and cross-check counts on enrichment_runs

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22 19:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The enrich job's per-symbol KIS lookups (HHDFS76200200, CTPF1702R) and its
    # HHDFS76370000 cross-check, counted per region per run (earlier rows: zero, none).
    with op.batch_alter_table('enrichment_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kis_detail', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('kis_info', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('kis_calls', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cross_compared', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cross_disagreeing', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cross_disagreements', sa.JSON(), server_default='[]', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('enrichment_runs', schema=None) as batch_op:
        for column in ('cross_disagreements', 'cross_disagreeing', 'cross_compared',
                       'kis_calls', 'kis_info', 'kis_detail'):
            batch_op.drop_column(column)
