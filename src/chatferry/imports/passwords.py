"""Password hashes for imported users.

Plain passwords (the ``Password`` key) are hashed with Argon2id using these parameters:

- memory ``m = 19456 KiB`` (19 MiB), iterations ``t = 2``, parallelism ``p = 1``,
- a 16-byte random salt and a 32-byte tag (argon2-cffi's defaults),

which is the OWASP Password Storage Cheat Sheet's minimum recommended Argon2id
configuration. One hash costs a few tens of milliseconds on one core, so a file of many
users is hashed in parallel by a process pool with one process per core
(``os.cpu_count()``), started with "spawn" so that no lock held by another thread of
the server is inherited by a forked child.

Already hashed passwords (the ``PasswordHash`` key, as written by an export) are stored
as they are when they are an Argon2 (``$argon2id$``, ``$argon2i$``) or bcrypt (``$2a$``,
``$2b$``, ``$2y$``) hash, so users keep their passwords across a backup and restore.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

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

# Below this many passwords, starting worker processes costs more than it saves.
_MIN_FOR_POOL = 4


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
    workers = min(os.cpu_count() or 1, len(passwords))
    if len(passwords) < _MIN_FOR_POOL or workers < 2:
        results = []
        for done, password in enumerate(passwords, 1):
            results.append(hash_password(password))
            if progress is not None:
                progress(done)
        return results
    context = multiprocessing.get_context("spawn")
    chunksize = max(1, min(64, len(passwords) // (workers * 8)))
    results = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for done, hashed in enumerate(pool.map(hash_password, passwords, chunksize=chunksize), 1):
            results.append(hashed)
            if progress is not None:
                progress(done)
    return results
