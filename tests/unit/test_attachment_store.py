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


def test_a_file_no_index_names_is_dropped_and_the_named_ones_kept(tmp_path: Path) -> None:
    named, _ = store.store_stream(tmp_path, io.BytesIO(b"named"))
    unnamed, _ = store.store_stream(tmp_path, io.BytesIO(b"left by a killed run"))
    (tmp_path / "attachments" / "notes.txt").write_text("not a content name")
    assert store.drop_unnamed(tmp_path, {named, "f" * 64}) == {named}
    names = {p.name for p in (tmp_path / "attachments").iterdir()}
    assert names == {named, "notes.txt", ".partial"} and unnamed not in names
    assert store.drop_unnamed(tmp_path / "nothing-here", {named}) == set()


def test_a_download_finalized_without_sync_is_stored_and_then_made_durable(
    tmp_path: Path,
) -> None:
    with store.open_for_write(tmp_path, "key", append=False) as handle:
        handle.write(b"fetched bytes")
    sha256 = hashlib.sha256(b"fetched bytes").hexdigest()
    target = store.finalize(tmp_path, "key", sha256, sync=False)
    assert target.read_bytes() == b"fetched bytes"
    assert store.partial_size(tmp_path, "key") == 0
    store.make_durable(tmp_path, [sha256, sha256, "0" * 64])  # a missing one is skipped
