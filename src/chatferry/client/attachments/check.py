"""``verify``'s attachment checks: every stored file (or a random share of them) has the
size and sha256 its index entry says, under the name the index gives it."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatferry.client.attachments import store
from chatferry.client.attachments.store import ATTACHMENTS_DIR

SHA256 = re.compile(r"[0-9a-f]{64}")
Problem = Callable[[str, str], None]


def stored_files(index: dict[str, dict[str, Any]], problem: Problem) -> dict[str, tuple[int, str]]:
    """sha256 -> (bytes, one URL) of every fetched entry; malformed entries are problems."""
    files: dict[str, tuple[int, str]] = {}
    for url, entry in index.items():
        if "error" in entry and "sha256" not in entry:
            continue
        sha256, size = entry.get("sha256"), entry.get("bytes")
        if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
            problem(f"attachment {url}", "its index entry has no valid sha256")
        elif not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problem(f"attachment {url}", "its index entry has no valid byte count")
        elif files.setdefault(sha256, (size, url))[0] != size:
            problem(f"attachment {url}", f"other URLs give {sha256} another byte count")
    return files


def sample(files: list[str], percent: float | None, rng: random.Random | None = None) -> list[str]:
    """All of ``files``, or a random ``percent`` of them (at least one when there are any)."""
    if percent is None or percent >= 100 or not files:
        return files
    count = max(1, math.ceil(len(files) * percent / 100))
    return sorted((rng or random.SystemRandom()).sample(files, count))


def check_files(
    directory: Path, files: dict[str, tuple[int, str]], chosen: list[str], problem: Problem
) -> None:
    for sha256 in chosen:
        size, url = files[sha256]
        where = f"{ATTACHMENTS_DIR}/{sha256}"
        if not store.is_stored(directory, sha256):
            problem(where, f"the file is missing (the attachment of {url})")
            continue
        got_size, got_sha256 = store.digest(directory, sha256)
        if got_size != size:
            problem(where, f"the file has {got_size} bytes, the index says {size} ({url})")
        if got_sha256 != sha256:
            problem(where, f"the file's sha256 differs from its name: it was changed ({url})")
