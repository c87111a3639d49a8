"""a failed import's problems number their rows from 1 (errors.Data's row, issue 22)

Before, errors.Data's ``row`` was the object's index in the file (0 for the first), and
the CLI and the console added 1; now the API gives the row number itself. The problems
kept for the imports that failed before are renumbered so that every record reads alike
(a problem of the whole file keeps its null row).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 01:20:00.000000
"""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_imports = sa.table("imports", sa.column("id", sa.BigInteger()), sa.column("error_data", sa.Text()))


def _renumbered(text: str, by: int) -> str:
    problems = orjson.loads(text)
    if not isinstance(problems, list):
        return text
    for problem in problems:
        row = problem.get("row") if isinstance(problem, dict) else None
        if isinstance(row, int) and not isinstance(row, bool):
            problem["row"] = row + by
    return orjson.dumps(problems).decode()


def _shift_rows(by: int) -> None:
    """Adds ``by`` to the row of every kept problem, one import at a time (an import
    keeps at most 1,000 problems)."""
    conn = op.get_bind()
    has_data = _imports.c.error_data.is_not(None)
    ids = conn.execute(sa.select(_imports.c.id).where(has_data)).scalars().all()
    for pk in ids:
        text = conn.execute(sa.select(_imports.c.error_data).where(_imports.c.id == pk)).scalar()
        if text:
            renumbered = _renumbered(text, by)
            update = sa.update(_imports).where(_imports.c.id == pk)
            conn.execute(update.values(error_data=renumbered))


def upgrade() -> None:
    _shift_rows(1)


def downgrade() -> None:
    _shift_rows(-1)
