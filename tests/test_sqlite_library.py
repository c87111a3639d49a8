"""SQLite's global memory statistics can be turned off for a process (they serialise
every allocation of every connection: see chatferry/db/sqlite_library.py). That serve and
worker do it is checked in their logs (test_logs.py).

Each case runs in a fresh interpreter: the setting is per process and must come before
any connection, which the test process itself has long opened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,  # starts interpreters
    pytest.mark.skipif(sys.platform != "linux", reason="applied on Linux only"),
]

# Opens a database, writes and reads it, then prints what SQLite counted as allocated
# (the statistics stay at 0 while they are off) and whether the rows came back.
_PROGRAM = """
import ctypes, importlib.util, json, sqlite3, sys
from chatferry.db.sqlite_library import turn_off_memory_statistics
turned_off = [turn_off_memory_statistics() for _ in range(2)] if sys.argv[1] == "off" else []
db = sqlite3.connect(sys.argv[2])
db.execute("CREATE TABLE t (x TEXT)")
db.executemany("INSERT INTO t VALUES (?)", [("a" * 100,)] * 1000)
rows = db.execute("SELECT count(*), max(x) FROM t").fetchone()
library = ctypes.CDLL(importlib.util.find_spec("_sqlite3").origin)
library.sqlite3_memory_used.restype = ctypes.c_int64
print(json.dumps({"turned_off": turned_off, "rows": rows, "used": library.sqlite3_memory_used()}))
"""


def _run(mode: str, tmp_path: Path) -> dict[str, object]:
    database = tmp_path / f"{mode}.db"
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode, str(database)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_statistics_are_off_and_sqlite_still_works(tmp_path: Path) -> None:
    on, off = _run("on", tmp_path), _run("off", tmp_path)
    assert on["rows"] == off["rows"] == [1000, "a" * 100]
    assert isinstance(on["used"], int) and on["used"] > 0  # counted while on
    assert off == {"turned_off": [True, True], "rows": [1000, "a" * 100], "used": 0}
