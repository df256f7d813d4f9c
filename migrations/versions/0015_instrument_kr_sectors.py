"""instruments and listing_changes: the domestic 중분류 code and KOSPI 200 sector

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-22 19:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The domestic masters' bstp_medm_div_code and kospi200_apnt_cls_code, kept for the
    # enrich job's KR sectors ("" overseas, and on rows before the next master-file run).
    for table in ('instruments', 'listing_changes'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('industry_code', sa.String(length=16), server_default='', nullable=False))
            batch_op.add_column(sa.Column('kospi200_sector', sa.String(length=4), server_default='', nullable=False))


def downgrade() -> None:
    for table in ('listing_changes', 'instruments'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('kospi200_sector')
            batch_op.drop_column('industry_code')
