"""venue of Track A's cycles: KRX's, or Nextrade's in the hours only it trades

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-27 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every cycle stored before asked KRX's prices (FID J).
    with op.batch_alter_table('track_a_cycles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('venue', sa.String(length=8), server_default='KRX', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('track_a_cycles', schema=None) as batch_op:
        batch_op.drop_column('venue')
