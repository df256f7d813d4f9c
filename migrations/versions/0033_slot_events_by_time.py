"""slot events by time: gap recovery's sweep reads the day's placements every 30 s

Revision ID: 0033
Revises: 0032
Create Date: 2026-11-29 09:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('slot_events', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_slot_events_produced_ns'), ['produced_ns'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('slot_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slot_events_produced_ns'))
