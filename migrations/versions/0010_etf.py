"""etf list, daily rows, runs and detail windows

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 16:13:46.605185
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import observer.db.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('etf_daily',
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('close', sa.BigInteger(), nullable=True),
    sa.Column('open', sa.BigInteger(), nullable=True),
    sa.Column('high', sa.BigInteger(), nullable=True),
    sa.Column('low', sa.BigInteger(), nullable=True),
    sa.Column('volume', sa.BigInteger(), nullable=True),
    sa.Column('nav', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True),
    sa.Column('premium_pct', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True),
    sa.Column('premium_calc_pct', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True),
    sa.Column('net_assets_krw', sa.BigInteger(), nullable=True),
    sa.Column('listed_units', sa.BigInteger(), nullable=True),
    sa.Column('circulating_units', sa.BigInteger(), nullable=True),
    sa.Column('holdings', sa.BigInteger(), nullable=True),
    sa.Column('tracking_error_rate', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True),
    sa.Column('nav_final', sa.Boolean(), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_etf_daily'))
    )
    with op.batch_alter_table('etf_daily', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_etf_daily_symbol_trade_date'), ['symbol', 'trade_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_etf_daily_trade_date'), ['trade_date'], unique=False)

    op.create_table('etf_listing_changes',
    sa.Column('change', sa.String(length=16), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('isin', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_full', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('listed_on', sa.Date(), nullable=True),
    sa.Column('underlying_index', sa.String(length=200), nullable=False),
    sa.Column('index_provider', sa.String(length=64), nullable=False),
    sa.Column('multiple', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True),
    sa.Column('multiple_label', sa.String(length=32), nullable=False),
    sa.Column('replication', sa.String(length=32), nullable=False),
    sa.Column('base_market', sa.String(length=32), nullable=False),
    sa.Column('asset_class', sa.String(length=32), nullable=False),
    sa.Column('listed_units', sa.BigInteger(), nullable=True),
    sa.Column('manager', sa.String(length=64), nullable=False),
    sa.Column('cu_units', sa.BigInteger(), nullable=True),
    sa.Column('fee_pct', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True),
    sa.Column('tax_type', sa.String(length=64), nullable=False),
    sa.Column('changed_fields', sa.JSON(), nullable=False),
    sa.Column('initial', sa.Boolean(), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_etf_listing_changes'))
    )
    with op.batch_alter_table('etf_listing_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_etf_listing_changes_symbol'), ['symbol'], unique=False)

    op.create_table('etf_runs',
    sa.Column('job', sa.String(length=32), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('applied', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('listed', sa.BigInteger(), nullable=False),
    sa.Column('collected', sa.BigInteger(), nullable=False),
    sa.Column('calls', sa.BigInteger(), nullable=False),
    sa.Column('failures', sa.BigInteger(), nullable=False),
    sa.Column('have', sa.JSON(), nullable=False),
    sa.Column('duration_ms', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_etf_runs'))
    )
    with op.batch_alter_table('etf_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_etf_runs_job_trade_date'), ['job', 'trade_date'], unique=False)

    op.create_table('etfs',
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('isin', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_full', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('listed_on', sa.Date(), nullable=True),
    sa.Column('underlying_index', sa.String(length=200), nullable=False),
    sa.Column('index_provider', sa.String(length=64), nullable=False),
    sa.Column('multiple', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True),
    sa.Column('multiple_label', sa.String(length=32), nullable=False),
    sa.Column('replication', sa.String(length=32), nullable=False),
    sa.Column('base_market', sa.String(length=32), nullable=False),
    sa.Column('asset_class', sa.String(length=32), nullable=False),
    sa.Column('listed_units', sa.BigInteger(), nullable=True),
    sa.Column('manager', sa.String(length=64), nullable=False),
    sa.Column('cu_units', sa.BigInteger(), nullable=True),
    sa.Column('fee_pct', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True),
    sa.Column('tax_type', sa.String(length=64), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('listed_ns', sa.BigInteger(), nullable=False),
    sa.Column('updated_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('symbol', name=op.f('pk_etfs'))
    )
    with op.batch_alter_table('etf_details', schema=None) as batch_op:
        batch_op.add_column(sa.Column('premium_abs_20d', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True))
        batch_op.add_column(sa.Column('premium_abs_60d', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True))
        batch_op.add_column(sa.Column('premium_abs_120d', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True))
        batch_op.add_column(sa.Column('premium_abs_250d', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True))
        batch_op.add_column(sa.Column('n_20d', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('n_60d', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('n_120d', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('n_250d', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('high_52w_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('low_52w_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('range_52w_basis', sa.String(length=16), server_default='', nullable=False))
        batch_op.add_column(sa.Column('aum_source', sa.String(length=16), server_default='', nullable=False))
        batch_op.add_column(sa.Column('aum_check_pct', observer.db.models.base.ExactDecimal(precision=24, scale=8), nullable=True))
        batch_op.add_column(sa.Column('market_value', sa.BigInteger(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('etf_details', schema=None) as batch_op:
        batch_op.drop_column('market_value')
        batch_op.drop_column('aum_check_pct')
        batch_op.drop_column('aum_source')
        batch_op.drop_column('range_52w_basis')
        batch_op.drop_column('low_52w_date')
        batch_op.drop_column('high_52w_date')
        batch_op.drop_column('n_250d')
        batch_op.drop_column('n_120d')
        batch_op.drop_column('n_60d')
        batch_op.drop_column('n_20d')
        batch_op.drop_column('premium_abs_250d')
        batch_op.drop_column('premium_abs_120d')
        batch_op.drop_column('premium_abs_60d')
        batch_op.drop_column('premium_abs_20d')

    op.drop_table('etfs')
    with op.batch_alter_table('etf_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_etf_runs_job_trade_date'))

    op.drop_table('etf_runs')
    with op.batch_alter_table('etf_listing_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_etf_listing_changes_symbol'))

    op.drop_table('etf_listing_changes')
    with op.batch_alter_table('etf_daily', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_etf_daily_trade_date'))
        batch_op.drop_index(batch_op.f('ix_etf_daily_symbol_trade_date'))

    op.drop_table('etf_daily')
