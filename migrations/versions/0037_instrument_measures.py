"""instrument measures: the market measures the domestic masters list each listing under

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-03 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0037'
down_revision = '0036'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 투자경고 ("warning"), 관리종목 ("administrative"), ...: a pin outside the day's universe
    # holds no feed of an after-market that excludes them. Earlier listings: none known ([]),
    # until the next master file's diff names them.
    for table in ('instruments', 'listing_changes'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column('measures', sa.JSON(), server_default='[]', nullable=False)
            )


def downgrade() -> None:
    for table in ('instruments', 'listing_changes'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('measures')
