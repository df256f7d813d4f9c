"""book top index: the top of the book in the books' symbol index

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None

_TOP = ['symbol', 'exchange_ns', 'ask_price_1', 'bid_price_1', 'ask_qty_1', 'bid_qty_1']


def upgrade() -> None:
    # A spread, a mid or an imbalance over a day reads the index alone, not every row's 40
    # level columns. It replaces the (symbol, exchange_ns) index, which it serves as well;
    # on PostgreSQL each day's partition gets its own.
    op.drop_index('ix_order_books_symbol_exchange_ns', table_name='order_books')
    op.create_index('ix_order_books_top', 'order_books', _TOP, unique=False)


def downgrade() -> None:
    op.drop_index('ix_order_books_top', table_name='order_books')
    op.create_index(
        'ix_order_books_symbol_exchange_ns', 'order_books', ['symbol', 'exchange_ns'], unique=False
    )
