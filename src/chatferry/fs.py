"""Files at rest: what chatferry writes is readable by its owner only."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def make_private(path: Path, directory: bool = False) -> None:
    """Sets 0600 (0700 for a directory) if the file exists and is ours to change."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        mode = PRIVATE_DIR if directory else PRIVATE_FILE
        if path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)
