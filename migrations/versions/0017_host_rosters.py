"""host rosters: every roster a supervisor published, and the latest per supervisor

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-23 00:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # What each host's supervisor runs (whole-market programs, account aliases and app-key
    # fingerprints, Track B's shard): the store host compares them to catch two hosts doing the same work.
    op.create_table('host_roster_events',
    sa.Column('host', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('whole_market', sa.JSON(), nullable=False),
    sa.Column('accounts', sa.JSON(), nullable=False),
    sa.Column('track_b_shard', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('produced_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'seq', name=op.f('pk_host_roster_events'))
    )
    op.create_table('host_rosters',
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('host', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('whole_market', sa.JSON(), nullable=False),
    sa.Column('accounts', sa.JSON(), nullable=False),
    sa.Column('track_b_shard', sa.String(length=200), nullable=False),
    sa.Column('published_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_host_rosters'))
    )


def downgrade() -> None:
    op.drop_table('host_rosters')
    op.drop_table('host_roster_events')
