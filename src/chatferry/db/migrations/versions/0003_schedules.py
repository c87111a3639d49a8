"""export schedules; scheduled, periodic and expired exports

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create_export_schedules()
    _link_exports_to_schedules()


def _create_export_schedules() -> None:
    op.create_table(
        "export_schedules",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("unique_id", sa.String(length=36), nullable=False),
        sa.Column("app_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resource_name", sa.String(length=20), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("keep_last", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["app_pk"], ["apps.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unique_id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("export_schedules", schema=None) as batch_op:
        batch_op.create_index(
            "ix_export_schedules_app_created", ["app_pk", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_export_schedules_due", ["paused", "next_run_at"], unique=False)


def _link_exports_to_schedules() -> None:
    # SQLite cannot add a foreign key or a unique constraint in place: batch mode rebuilds
    # the table, which must keep AUTOINCREMENT (ids are never reused).
    with op.batch_alter_table(
        "exports", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.add_column(
            sa.Column(
                "schedule_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("scheduled_for", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("run_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("expired_at", sa.DateTime(), nullable=True))
        batch_op.create_foreign_key(
            "fk_exports_schedule_id",
            "export_schedules",
            ["schedule_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_unique_constraint(
            "uq_exports_schedule_run", ["schedule_id", "scheduled_for"]
        )


def downgrade() -> None:
    with op.batch_alter_table(
        "exports", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_constraint("uq_exports_schedule_run", type_="unique")
        batch_op.drop_constraint("fk_exports_schedule_id", type_="foreignkey")
        batch_op.drop_column("expired_at")
        batch_op.drop_column("run_at")
        batch_op.drop_column("scheduled_for")
        batch_op.drop_column("schedule_id")

    with op.batch_alter_table("export_schedules", schema=None) as batch_op:
        batch_op.drop_index("ix_export_schedules_due")
        batch_op.drop_index("ix_export_schedules_app_created")

    op.drop_table("export_schedules")
