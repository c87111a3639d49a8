"""The attachment store's layout: ``attachments/<sha256>``, 0600 files, same bytes once."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from chatferry.client.attachments import store


def test_streams_are_stored_under_their_sha256_once(tmp_path: Path) -> None:
    data = b"converted file" * 1000
    sha256, size = store.store_stream(tmp_path, io.BytesIO(data))
    again = store.store_stream(tmp_path, io.BytesIO(data))
    assert (sha256, size) == again == (hashlib.sha256(data).hexdigest(), len(data))
    path = tmp_path / "attachments" / sha256
    assert path.read_bytes() == data and (path.stat().st_mode & 0o777) == 0o600
    assert (tmp_path / "attachments").stat().st_mode & 0o777 == 0o700
    assert [p.name for p in (tmp_path / "attachments").iterdir() if p.is_file()] == [sha256]
    assert list((tmp_path / "attachments" / ".partial").iterdir()) == []
    assert store.digest(tmp_path, sha256) == (len(data), sha256)
