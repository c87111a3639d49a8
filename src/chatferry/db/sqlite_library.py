"""Process-wide settings of the SQLite library behind Python's ``sqlite3`` module.

SQLite keeps global memory statistics by default (``SQLITE_CONFIG_MEMSTATUS``): every
allocation of every connection in the process takes one process-wide mutex to count
itself. Rendering an export's rows as JSON allocates for every value, so a job reading
beside the API's reads (or a second job) queues on that mutex; measured here, two threads
reading halves of a window took as long as one thread reading all of it, and one thread
alone ran 10 % faster with the statistics off. SQLite recommends them off
(``SQLITE_DEFAULT_MEMSTATUS=0``); chatferry reads none of them (no soft heap limit).

The ``sqlite3`` module has no call for it, so it is made through ``ctypes`` on the very
library the module uses (symbols looked up through the ``_sqlite3`` extension itself).
The setting can only change while the library is shut down, which is safe only while no
connection is open: call this first thing in a process, as ``serve`` and ``worker`` do.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import sys

log = logging.getLogger(__name__)

_SQLITE_OK = 0
_SQLITE_CONFIG_MEMSTATUS = 9


def _library() -> ctypes.CDLL | None:
    """The SQLite the ``sqlite3`` module is linked with (None where it cannot be told)."""
    # sqlite3_config is variadic: ctypes passes an int argument the way Linux's calling
    # conventions expect (x86-64, arm64) but not, e.g., the way Apple's arm64 does.
    if sys.platform != "linux":
        return None
    spec = importlib.util.find_spec("_sqlite3")
    if spec is None or not spec.origin:
        return None
    try:
        library = ctypes.CDLL(spec.origin)
        library.sqlite3_config  # noqa: B018 (resolves the symbol, or AttributeError)
    except (OSError, AttributeError):
        return None
    return library


@functools.cache
def turn_off_memory_statistics() -> bool:
    """Turns SQLite's global memory statistics off for this process (once); True if
    they are off. Call it before the process opens any SQLite connection."""
    library = _library()
    off = False
    if library is not None and library.sqlite3_shutdown() == _SQLITE_OK:
        off = library.sqlite3_config(_SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == _SQLITE_OK
        library.sqlite3_initialize()  # (opening a connection would initialize it too)
    if not off:
        log.debug("SQLite's memory statistics stay on (the library could not be configured)")
    return off
