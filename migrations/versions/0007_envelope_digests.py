"""envelope digests and conflicts

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 13:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Envelopes committed before 0007 have no digest: a repeat of one is counted as
    # unverified, never as a conflict.
    op.create_table('bus_digests',
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('first_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('digests', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'first_seq', name=op.f('pk_bus_digests'))
    )
    op.create_table('bus_conflicts',
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.LargeBinary(length=16), nullable=False),
    sa.Column('committed_digest', sa.LargeBinary(length=16), nullable=False),
    sa.Column('received_ns', sa.BigInteger(), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('envelope', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', 'digest', name=op.f('pk_bus_conflicts'))
    )


def downgrade() -> None:
    op.drop_table('bus_conflicts')
    op.drop_table('bus_digests')
