"""sector enrichment: instrument sectors, KIS code catalogs, runs

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22 16:33:41.229641
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import observer.db.models


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sector enrichment: the current sector per instrument (history: sector_metadata, which
    # gains the enrich job's fields), KIS's industry catalogs in place with their history,
    # and one row per region per run.
    op.create_table('enrichment_runs',
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('fresh_skipped', sa.BigInteger(), nullable=False),
    sa.Column('manual', sa.BigInteger(), nullable=False),
    sa.Column('kis_mapped', sa.BigInteger(), nullable=False),
    sa.Column('fallback_ok', sa.BigInteger(), nullable=False),
    sa.Column('fallback_failed', sa.BigInteger(), nullable=False),
    sa.Column('unresolved', sa.BigInteger(), nullable=False),
    sa.Column('deferred', sa.BigInteger(), nullable=False),
    sa.Column('changed', sa.BigInteger(), nullable=False),
    sa.Column('retries', sa.BigInteger(), nullable=False),
    sa.Column('breaker_opens', sa.BigInteger(), nullable=False),
    sa.Column('calls', sa.BigInteger(), nullable=False),
    sa.Column('duration_ms', sa.BigInteger(), nullable=False),
    sa.Column('mapping_version', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_enrichment_runs'))
    )
    with op.batch_alter_table('enrichment_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrichment_runs_region'), ['region'], unique=False)

    op.create_table('instrument_sectors',
    sa.Column('market', sa.String(length=16), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('exchange', sa.String(length=16), nullable=False),
    sa.Column('kis_sector_code', sa.String(length=16), nullable=False),
    sa.Column('kis_sector_name', sa.String(length=120), nullable=False),
    sa.Column('gics_sector_code', sa.String(length=2), nullable=False),
    sa.Column('gics_sector', sa.String(length=64), nullable=False),
    sa.Column('gics_ig_code', sa.String(length=4), nullable=False),
    sa.Column('gics_ig', sa.String(length=120), nullable=False),
    sa.Column('origin', sa.String(length=32), nullable=False),
    sa.Column('confidence', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=False),
    sa.Column('fallback_sector_key', sa.String(length=64), nullable=False),
    sa.Column('fallback_industry_key', sa.String(length=120), nullable=False),
    sa.Column('mapping_version', sa.String(length=32), nullable=False),
    sa.Column('enriched_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('market', 'symbol', name=op.f('pk_instrument_sectors'))
    )
    with op.batch_alter_table('instrument_sectors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instrument_sectors_region_gics_sector_code'), ['region', 'gics_sector_code'], unique=False)

    op.create_table('kis_sector_codes',
    sa.Column('exchange', sa.String(length=16), nullable=False),
    sa.Column('icod', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('updated_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('exchange', 'icod', name=op.f('pk_kis_sector_codes'))
    )
    op.create_table('sector_code_lists',
    sa.Column('exchange', sa.String(length=16), nullable=False),
    sa.Column('code_count', sa.BigInteger(), nullable=False),
    sa.Column('codes', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_sector_code_lists'))
    )
    with op.batch_alter_table('sector_metadata', schema=None) as batch_op:
        batch_op.add_column(sa.Column('market', sa.String(length=16), server_default='', nullable=False))
        batch_op.add_column(sa.Column('exchange', sa.String(length=16), server_default='', nullable=False))
        batch_op.add_column(sa.Column('kis_sector_name', sa.String(length=120), server_default='', nullable=False))
        batch_op.add_column(sa.Column('gics_sector_code', sa.String(length=2), server_default='', nullable=False))
        batch_op.add_column(sa.Column('gics_ig_code', sa.String(length=4), server_default='', nullable=False))
        batch_op.add_column(sa.Column('gics_ig', sa.String(length=120), server_default='', nullable=False))
        batch_op.add_column(sa.Column('fallback_sector_key', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('fallback_industry_key', sa.String(length=120), server_default='', nullable=False))
        batch_op.add_column(sa.Column('mapping_version', sa.String(length=32), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('sector_metadata', schema=None) as batch_op:
        batch_op.drop_column('mapping_version')
        batch_op.drop_column('fallback_industry_key')
        batch_op.drop_column('fallback_sector_key')
        batch_op.drop_column('gics_ig')
        batch_op.drop_column('gics_ig_code')
        batch_op.drop_column('gics_sector_code')
        batch_op.drop_column('kis_sector_name')
        batch_op.drop_column('exchange')
        batch_op.drop_column('market')

    op.drop_table('sector_code_lists')
    op.drop_table('kis_sector_codes')
    with op.batch_alter_table('instrument_sectors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instrument_sectors_region_gics_sector_code'))

    op.drop_table('instrument_sectors')
    with op.batch_alter_table('enrichment_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrichment_runs_region'))

    op.drop_table('enrichment_runs')
