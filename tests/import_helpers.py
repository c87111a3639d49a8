"""The import helpers' old import path, kept for ``test_import_rules.py``.

New tests import from ``support.imports``. One difference: here ``user()`` still gives a
plain ``Password`` (which the import-rule tests rely on); ``support.imports.user()``
gives a ``PasswordHash`` made once.
"""

from __future__ import annotations

from support.http import API, EXPORTS, IMPORTS
from support.imports import (
    SPEC_COMMENTS,
    SPEC_IMPORT_KEYS,
    SPEC_ROOMS,
    SPEC_USERS,
    assert_finished,
    comment,
    counts,
    export_file,
    get_import,
    messages,
    problems,
    room,
    run_import,
    upload,
    wait_import,
)
from support.imports import user_with_password as user

__all__ = [
    "API",
    "EXPORTS",
    "IMPORTS",
    "SPEC_COMMENTS",
    "SPEC_IMPORT_KEYS",
    "SPEC_ROOMS",
    "SPEC_USERS",
    "assert_finished",
    "comment",
    "counts",
    "export_file",
    "get_import",
    "messages",
    "problems",
    "room",
    "run_import",
    "upload",
    "user",
    "wait_import",
]
