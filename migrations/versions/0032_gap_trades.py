"""gap trades: the exchange's trades gap recovery stored for a gap, and the shares they closed

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-28 19:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Gaps recovered with bars alone, and older rows: 0 trades, 0 shares.
    with op.batch_alter_table('gaps', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('trades', sa.BigInteger(), server_default='0', nullable=False)
        )
        batch_op.add_column(
            sa.Column('trade_volume', sa.BigInteger(), server_default='0', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('gaps', schema=None) as batch_op:
        batch_op.drop_column('trade_volume')
        batch_op.drop_column('trades')
