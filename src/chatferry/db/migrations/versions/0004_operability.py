"""schedule names and coverage, fair and crash-aware jobs, split schedule runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table(
        "export_schedules", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.add_column(
            sa.Column("name", sa.String(length=200), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("coverage_start", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("covered_through", sa.Date(), nullable=True))

    with op.batch_alter_table(
        "jobs", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.add_column(sa.Column("app_pk", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("ref", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("app_ref", sa.String(length=100), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("errors", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("crashes", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("max_crashes", sa.Integer(), server_default="10", nullable=False)
        )
        batch_op.create_index("ix_jobs_status_app", ["status", "app_pk"], unique=False)

    # SQLite rebuilds the table to change a unique constraint; keep AUTOINCREMENT.
    with op.batch_alter_table(
        "exports", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_constraint("uq_exports_schedule_run", type_="unique")
        batch_op.create_unique_constraint(
            "uq_exports_schedule_run", ["schedule_id", "scheduled_for", "start_date"]
        )


def downgrade() -> None:
    with op.batch_alter_table(
        "exports", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_constraint("uq_exports_schedule_run", type_="unique")
        batch_op.create_unique_constraint(
            "uq_exports_schedule_run", ["schedule_id", "scheduled_for"]
        )

    with op.batch_alter_table(
        "jobs", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_index("ix_jobs_status_app")
        batch_op.drop_column("max_crashes")
        batch_op.drop_column("crashes")
        batch_op.drop_column("errors")
        batch_op.drop_column("app_ref")
        batch_op.drop_column("ref")
        batch_op.drop_column("app_pk")

    with op.batch_alter_table(
        "export_schedules", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_column("covered_through")
        batch_op.drop_column("coverage_start")
        batch_op.drop_column("name")
