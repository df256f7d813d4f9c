"""gap volumes: a volume-chain gap's shares missing and the cumulative volumes around them

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-28 16:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Track B's volume chain (ACML_VOL): NULL for every other kind of gap, and for older rows.
    with op.batch_alter_table('gaps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('missing_volume', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('cum_before', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('cum_after', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('gaps', schema=None) as batch_op:
        batch_op.drop_column('cum_after')
        batch_op.drop_column('cum_before')
        batch_op.drop_column('missing_volume')
