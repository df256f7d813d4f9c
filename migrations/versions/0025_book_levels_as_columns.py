"""a book's levels as integer columns: ask_price_1..10, ask_qty_1..10, bid_price_1..10, bid_qty_1..10

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-27 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

DEPTH = 10
# The JSON array each group of columns comes from, in the order of the columns.
SIDES = (
    ('ask_prices', 'ask_price'),
    ('ask_qtys', 'ask_qty'),
    ('bid_prices', 'bid_price'),
    ('bid_qtys', 'bid_qty'),
)
_DOWNGRADE_ROWS = 5_000


def _columns() -> list[tuple[str, str, int]]:
    """(array, column, index) of every level column."""
    return [
        (array, f'{prefix}_{n + 1}', n) for array, prefix in SIDES for n in range(DEPTH)
    ]


def upgrade() -> None:
    with op.batch_alter_table('order_books', schema=None) as batch_op:
        for _, column, _ in _columns():
            batch_op.add_column(sa.Column(column, sa.BigInteger(), nullable=True))
    # Each level from its array, NULL past the levels the array holds: nothing else is lost.
    if op.get_bind().dialect.name == 'postgresql':
        level = "({array}->>{n})::bigint"
    else:
        level = "json_extract({array}, '$[{n}]')"
    assignments = ', '.join(
        f'{column} = ' + level.format(array=array, n=n) for array, column, n in _columns()
    )
    op.execute(f'UPDATE order_books SET {assignments}')  # noqa: S608
    with op.batch_alter_table('order_books', schema=None) as batch_op:
        for array, _ in SIDES:
            batch_op.drop_column(array)


def downgrade() -> None:
    with op.batch_alter_table('order_books', schema=None) as batch_op:
        for array, _ in SIDES:
            batch_op.add_column(sa.Column(array, sa.JSON(), nullable=True))
    # The arrays again, as long as the levels that were sent (trailing NULLs dropped).
    conn = op.get_bind()
    names = [column for _, column, _ in _columns()]
    books = sa.table(
        'order_books',
        sa.column('source'),
        sa.column('seq'),
        *(sa.column(name) for name in names),
        *(sa.column(array, sa.JSON()) for array, _ in SIDES),
    )
    rows = conn.execute(sa.select(books.c.source, books.c.seq, *(books.c[n] for n in names)))
    update = (
        books.update()
        .where(books.c.source == sa.bindparam('b_source'), books.c.seq == sa.bindparam('b_seq'))
        .values({array: sa.bindparam(array) for array, _ in SIDES})
    )
    while part := rows.fetchmany(_DOWNGRADE_ROWS):
        values = []
        for row in part:
            found = {'b_source': row[0], 'b_seq': row[1]}
            for s, (array, _) in enumerate(SIDES):
                levels = list(row[2 + s * DEPTH : 2 + (s + 1) * DEPTH])
                while levels and levels[-1] is None:
                    levels.pop()
                found[array] = levels
            values.append(found)
        conn.execute(update, values)
    with op.batch_alter_table('order_books', schema=None) as batch_op:
        for array, _ in SIDES:
            batch_op.alter_column(array, existing_type=sa.JSON(), nullable=False)
        for _, column, _ in _columns():
            batch_op.drop_column(column)
