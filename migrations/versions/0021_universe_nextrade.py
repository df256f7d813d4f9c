"""universe nextrade: each universe member's Nextrade standing, as KIS answered it that morning

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-26 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: NULL is a standing not known (a paper account cannot ask, the call failed,
    # or the row predates this column).
    with op.batch_alter_table('universe_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nxt_eligible', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('nxt_halted', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('universe_members', schema=None) as batch_op:
        batch_op.drop_column('nxt_halted')
        batch_op.drop_column('nxt_eligible')
