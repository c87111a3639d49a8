"""A manifest is saved after every part: each part's JSON is cached, and a changed part is
serialised again."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from chatferry.client.manifest import GroupSaver, Manifest, Part, load_manifest


def _part() -> Part:
    return Part("comments", date(2026, 1, 1), date(2026, 1, 2), 5, 10, "ab" * 32, "c.json")


def test_a_part_changed_after_a_save_is_saved_as_it_is_now(tmp_path: Path) -> None:
    manifest = Manifest.new("http://127.0.0.1:1", "app")
    part = _part()
    manifest.parts.append(part)
    manifest.save(tmp_path)
    first = part.as_json()
    assert first["start_date"] == "2026-01-01" and first["provisional"] is False
    first["rows"] = 99  # a caller's copy: the cache is not changed through it
    assert part.as_json()["rows"] == 5
    part.provisional = True
    part.rows = 7
    manifest.save(tmp_path)
    again = load_manifest(tmp_path).parts[0]
    assert again.provisional is True and again.rows == 7 and again == part


def test_saves_that_queue_up_share_one_write_of_the_latest_state(tmp_path: Path) -> None:
    manifest = Manifest.new("http://127.0.0.1:1", "app")
    saver = GroupSaver(manifest, tmp_path)
    first = saver.stage()
    manifest.parts.append(_part())
    second = saver.stage()
    saver.commit(first)  # writes the latest snapshot, which holds the first's changes too
    assert [p.file for p in load_manifest(tmp_path).parts] == ["c.json"]
    (tmp_path / "manifest.json").unlink()
    saver.commit(second)  # on disk already: not written again
    assert not (tmp_path / "manifest.json").exists()
    manifest.parts.clear()
    saver.commit(saver.stage())
    assert load_manifest(tmp_path).parts == []
