"""The local file store when its directories are not what it expects: a file where a
key's directory should be is a StorageError from the write (which the export reports as
the storage's fault), never an internal error from the clean-up of staging files."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatferry.storage.store import FileStore, StorageError


def test_a_file_in_the_way_of_a_keys_directory_is_a_storage_error(tmp_path: Path) -> None:
    store = FileStore((tmp_path / "files").as_uri())
    (tmp_path / "files" / "exports").mkdir(parents=True)
    (tmp_path / "files" / "exports" / "app-a").write_text("in the way")
    with pytest.raises(StorageError):
        store.put_stream("exports/app-a/e.json", iter([b"[]"]))
    with pytest.raises(StorageError):
        store.delete("exports/app-a/e.json")


def test_staging_files_a_killed_writer_left_are_removed(tmp_path: Path) -> None:
    store = FileStore((tmp_path / "files").as_uri())
    store.put_stream("exports/app-a/e.json", iter([b"[1]"]))
    left = tmp_path / "files" / "exports" / "app-a" / "e.json#3"
    left.write_bytes(b"[")
    other = tmp_path / "files" / "exports" / "app-a" / "f.json#1"
    other.write_bytes(b"[")
    store.put_stream("exports/app-a/e.json", iter([b"[2]"]))
    assert not left.exists() and other.exists()
    assert store.read_bytes("exports/app-a/e.json") == b"[2]"
