"""day archives, prune requests, pruned chunks (retention)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 16:10:46.383307
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Retention: verified Parquet archives per table and day, the requests to prune
    # archived days, and what the writer pruned (the audit counts pruned seqs as present).
    op.create_table('day_archives',
    sa.Column('table_name', sa.String(length=64), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('path', sa.String(length=300), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('raw_bytes', sa.BigInteger(), nullable=False),
    sa.Column('elapsed_ms', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_day_archives'))
    )
    with op.batch_alter_table('day_archives', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_day_archives_table_name_trade_date'), ['table_name', 'trade_date'], unique=False)

    op.create_table('prune_requests',
    sa.Column('table_name', sa.String(length=64), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_prune_requests'))
    )
    op.create_table('pruned_chunks',
    sa.Column('table_name', sa.String(length=64), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('chunk', sa.BigInteger(), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('seqs', sa.BigInteger(), nullable=False),
    sa.Column('min_seq', sa.BigInteger(), nullable=False),
    sa.Column('max_seq', sa.BigInteger(), nullable=False),
    sa.Column('pruned_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('table_name', 'trade_date', 'source', 'chunk', name=op.f('pk_pruned_chunks'))
    )


def downgrade() -> None:
    op.drop_table('pruned_chunks')
    op.drop_table('prune_requests')
    with op.batch_alter_table('day_archives', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_day_archives_table_name_trade_date'))

    op.drop_table('day_archives')
