"""universe measures: the market measures the masters list each member under

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 투자경고 ("warning"), 관리종목 ("administrative"), ...: Nextrade's after-market trades no
    # stock under some of them. Earlier universes: none known ([]).
    with op.batch_alter_table('universe_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('measures', sa.JSON(), server_default='[]', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('universe_members', schema=None) as batch_op:
        batch_op.drop_column('measures')
