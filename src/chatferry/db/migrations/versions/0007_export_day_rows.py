"""exports keep their rows per day (coverage tells a day that changed since)

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-07 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table(
        "exports", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.add_column(sa.Column("day_rows", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(
        "exports", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_column("day_rows")
