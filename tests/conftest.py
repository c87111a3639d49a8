"""The suite's fixtures live in ``tests/support/`` (see its ``__init__``), loaded here.

Every test that uses ``database_url`` (directly or through ``settings``, ``runtime``,
``client``...) runs on SQLite and on PostgreSQL. Tests that start processes or servers
are marked ``slow``: ``pytest -m "not slow"`` is the fast inner loop.
"""

from __future__ import annotations

import os
import sys
import tempfile

import pytest

# Bytecode: with PYTHONDONTWRITEBYTECODE set (as in this project's environment) every
# test process and every chatferry process it starts would compile chatferry, the tests
# (after pytest's assertion rewriting) and their helpers from source again: seconds per
# process. Their bytecode goes to a cache outside the source tree instead, for this
# process and the processes it starts (the source tree stays free of __pycache__).
if sys.dont_write_bytecode and not sys.pycache_prefix:
    sys.pycache_prefix = os.path.join(tempfile.gettempdir(), f"chatferry-pycache-{os.getuid()}")
    sys.dont_write_bytecode = False
    os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

pytest.register_assert_rewrite("support")

from support.apps import Credentials  # noqa: E402
from support.db import BACKENDS, IN_CI, POSTGRES_URL  # noqa: E402
from support.servers import ServerProcess, cli_command, free_port  # noqa: E402
from support.waiting import wait_for  # noqa: E402

pytest_plugins = [
    "support.db",
    "support.apps",
    "support.servers",
    "support.s3",
    "support.browser",
    "support.receiver",
]

# Names this module used to define, for tests that still import them from here.
__all__ = [
    "BACKENDS",
    "IN_CI",
    "POSTGRES_URL",
    "Credentials",
    "ServerProcess",
    "cli_command",
    "free_port",
    "wait_for",
]

# Fixtures that start a process: a test using one is ``slow`` even if it forgot to say so.
PROCESS_FIXTURES = {"start_server", "start_worker", "moto_server", "s3_bucket"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
