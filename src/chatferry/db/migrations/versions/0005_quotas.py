"""quotas per app: the apps' own quota values, and the index that counts an app's jobs
of the last hour

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("apps", sa.Column("quota_exports_per_hour", sa.Integer(), nullable=True))
    op.add_column("apps", sa.Column("quota_imports_per_hour", sa.Integer(), nullable=True))
    op.add_column("apps", sa.Column("quota_active_jobs", sa.Integer(), nullable=True))
    op.add_column("apps", sa.Column("quota_stored_bytes", sa.BigInteger(), nullable=True))
    op.create_index("ix_jobs_app_kind_created", "jobs", ["app_pk", "kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_app_kind_created", table_name="jobs")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("quota_stored_bytes")
        batch_op.drop_column("quota_active_jobs")
        batch_op.drop_column("quota_imports_per_hour")
        batch_op.drop_column("quota_exports_per_hour")
