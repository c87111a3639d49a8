"""Password hashes for imported users.

Plain passwords (the ``Password`` key) are hashed with Argon2id using these parameters:

- memory ``m = 19456 KiB`` (19 MiB), iterations ``t = 2``, parallelism ``p = 1``,
- a 16-byte random salt and a 32-byte tag (argon2-cffi's defaults),

which is the OWASP Password Storage Cheat Sheet's minimum recommended Argon2id
configuration. One hash costs a few tens of milliseconds on one core, so a file of many
users is hashed in parallel on every core (``os.cpu_count()``) by a pool of threads
shared by the whole process. Threads, not processes: argon2-cffi releases the GIL while
the C code hashes, so threads use all cores as well as processes do, without starting
interpreters (a "spawn" child re-imports the server's main module, seconds per import
on a small machine) and without a forked child inheriting another thread's locks. One
pool for the process means that imports running at the same time share the cores
instead of each starting a core's worth of hashing.

Already hashed passwords (the ``PasswordHash`` key, as written by an export) are stored
as they are when they are an Argon2 (``$argon2id$``, ``$argon2i$``) or bcrypt (``$2a$``,
``$2b$``, ``$2y$``) hash, so users keep their passwords across a backup and restore.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError

ARGON2_MEMORY_KIB = 19456
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1

_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)

_ARGON2_HASH = re.compile(
    r"^\$argon2(id|i)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$"
)
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    """The process's hashing threads (started on first use, one per core)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="chatferry-argon2"
            )
        return _pool


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if ``password`` matches an Argon2 hash (used by tests and tools)."""
    try:
        return _hasher.verify(password_hash, password)
    except Exception:
        return False


def hash_problem(value: str) -> str | None:
    """Why ``value`` is not an accepted password hash, or None if it is one."""
    if _ARGON2_HASH.match(value):
        try:
            extract_parameters(value)
        except InvalidHashError:
            return "is not a valid Argon2 hash (its parameters cannot be read)"
        return None
    if _BCRYPT_HASH.match(value):
        return None
    return (
        "is not a supported password hash: use an Argon2 hash ($argon2id$ or $argon2i$) "
        "or a bcrypt hash ($2a$, $2b$ or $2y$), or send the plain password as Password"
    )


def hash_many(passwords: Sequence[str], progress: Callable[[int], None] | None = None) -> list[str]:
    """Hashes every password, over all cores; ``progress(done)`` is called as it goes."""
    if not passwords:
        return []
    if len(passwords) == 1 or (os.cpu_count() or 1) < 2:
        results = []
        for done, password in enumerate(passwords, 1):
            results.append(hash_password(password))
            if progress is not None:
                progress(done)
        return results
    results = []
    for done, hashed in enumerate(_shared_pool().map(hash_password, passwords), 1):
        results.append(hashed)
        if progress is not None:
            progress(done)
    return results
