"""Every client command against a fake of the vendor's API that speaks the spec alone."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from client_helpers import (
    assert_one_line_error,
    backup_rows,
    client_env,
    run_client,
    run_client_json,
)
from fake_vendor import FakeVendor, VendorApp, _day_of, running, seed

pytestmark = pytest.mark.slow


@pytest.fixture
def vendor() -> Iterator[FakeVendor]:
    fake = FakeVendor(apps={"vendor-a": VendorApp("secret-a"), "vendor-b": VendorApp("secret-b")})
    seed(fake.apps["vendor-a"])
    fake.limits["comments"] = 40  # 30 days hold about 75: windows must be split
    with running(fake):
        yield fake


def _env(fake: FakeVendor, app_id: str = "vendor-a") -> dict[str, str]:
    return client_env(dict(os.environ), fake.base_url, app_id, fake.apps[app_id].secret)


def _no_extension_was_used(fake: FakeVendor) -> None:
    assert "validate_only" not in fake.seen_form_fields
    assert not any("limit" in q for q in fake.seen_queries), fake.seen_queries
    assert not any("wait" in q for q in fake.seen_queries), fake.seen_queries
    assert not any(r.startswith("GET /api/v2.1/rest/imports/") for r in fake.requests)


def test_export_commands_work_without_extensions(vendor: FakeVendor, tmp_path: Path) -> None:
    env = _env(vendor)
    days = sorted(_day_of(u, "users").isoformat() for u in vendor.apps["vendor-a"].rows["users"])
    got = run_client_json(env, "export", "create", "--type", "users", "--start-date", days[0],
                          "--end-date", days[-1], "--download", str(tmp_path))  # fmt: skip
    record, file = got["export"], got["file"]
    assert "sha256" not in record and file["sha256_checked"] is False
    assert file["rows"] == record["total_rows"] == 8
    saved = Path(file["path"])
    # The spec's name has colons (its created_at), which Windows and sync tools refuse.
    assert ":" in record["original_filename"]
    assert saved.name == record["original_filename"].replace(":", "-")
    assert saved.parent == tmp_path
    assert saved.read_bytes() == vendor.apps["vendor-a"].files[record["unique_id"]]
    assert record["unique_id"] in vendor.broken_once  # the first download broke halfway

    again = run_client_json(
        env, "export", "download", record["unique_id"], "-o", str(tmp_path / "x.json")
    )
    assert (tmp_path / "x.json").read_bytes() == saved.read_bytes()
    assert again["file"]["rows"] == 8
    vendor.expire_next = True  # the link has expired: the client fetches a fresh one
    again = run_client_json(env, "export", "download", record["unique_id"], "-o", str(tmp_path))
    assert Path(again["file"]["path"]).read_bytes() == saved.read_bytes()
    vendor.apps["vendor-a"].files.pop(record["unique_id"])  # the file is gone for good
    gone = run_client(env, "export", "download", record["unique_id"], "-o", str(tmp_path / "y"))
    line = assert_one_line_error(gone, 1, "answered HTTP 404", "no longer stored")
    assert "signature" not in line and "s3cr3t" not in gone.stderr + gone.stdout
    listed = run_client_json(env, "export", "list", "--all")
    assert [r["unique_id"] for r in listed] == [record["unique_id"]]
    assert run_client_json(env, "export", "get", record["unique_id"])["status"] == "finished"
    assert (
        run_client_json(env, "export", "delete", record["unique_id"])["unique_id"]
        == record["unique_id"]
    )
    assert_one_line_error(
        run_client(env, "export", "get", record["unique_id"]), 1, "backup not found"
    )
    over = run_client(env, "export", "create", "--type", "comments")
    assert_one_line_error(over, 1, "maximum total comments rows of export is 40")
    wrong = run_client({**env, "QISCUS_SDK_SECRET": "nope"}, "export", "list")
    assert_one_line_error(wrong, 1, "unauthorized")
    _no_extension_was_used(vendor)


def test_import_commands_work_without_extensions(vendor: FakeVendor, tmp_path: Path) -> None:
    env = _env(vendor, "vendor-b")
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"Email": "new@example.com", "Name": "New",
                                  "AuthenticationToken": "t", "Password": "pw"}]))  # fmt: skip
    refused = run_client(env, "import", str(users), "--type", "users", "--dry-run")
    assert_one_line_error(refused, 1, "does not support dry runs", "import the file for real")
    assert vendor.apps["vendor-b"].imports == []  # nothing was sent

    done = run_client_json(env, "import", str(users), "--type", "users", "--wait")
    assert done["status"] == "finished" and done["total_rows"] == 1
    assert vendor.apps["vendor-b"].rows["users"][0]["Email"] == "new@example.com"
    duplicate = run_client(env, "import", str(users), "--type", "users", "--wait")
    assert_one_line_error(duplicate, 3, "ended failed", "duplicates")
    assert "│ 1   │ new@example.com │ Email │ already exists │" in duplicate.stdout
    listed = run_client_json(env, "import", "list")
    assert [r["status"] for r in listed] == ["failed", "finished"]
    fetched = run_client_json(env, "import", "get", done["unique_id"])
    assert fetched["unique_id"] == done["unique_id"]
    missing = run_client(env, "import", "get", "no-such-import")
    assert_one_line_error(missing, 1, "no import with unique_id 'no-such-import'")
    _no_extension_was_used(vendor)


def test_schedules_say_the_server_has_none(vendor: FakeVendor) -> None:
    env = _env(vendor)
    for args in (("list",), ("get", "x"), ("pause", "x"),
                 ("create", "--type", "users", "--cron", "@daily")):  # fmt: skip
        done = run_client(env, "schedules", *args)
        assert_one_line_error(done, 1, "has no export schedules", "chatferry extension")


def test_backup_verify_restore_round_trip_on_the_spec_alone(
    vendor: FakeVendor, tmp_path: Path
) -> None:
    out = tmp_path / "backup"
    result = run_client_json(_env(vendor), "backup", "--out", str(out))
    manifest = result["manifest"]
    assert manifest["utc_offset"] == "+07:00"
    comments = [p for p in manifest["parts"] if p["type"] == "comments"]
    assert max(p["rows"] for p in comments) <= 40
    assert all(not p["sha256_from_server"] for p in manifest["parts"])
    source = vendor.apps["vendor-a"].rows
    for resource in ("users", "rooms", "comments"):
        assert backup_rows(out, resource) == source[resource]
    assert run_client(dict(os.environ), "verify", str(out)).returncode == 0
    assert vendor.apps["vendor-a"].exports == []  # deleted once verified

    summary = run_client_json(
        _env(vendor, "vendor-b"), "restore", str(out), "--upload-limit", "4000"
    )
    assert summary["uploads"] >= 5 and summary["checked_on_server"] == []
    assert vendor.apps["vendor-b"].rows == source
    again = run_client_json(_env(vendor, "vendor-b"), "restore", str(out))
    assert again["imported_now"] == 0
    into_source = run_client(_env(vendor), "restore", str(out))
    assert_one_line_error(into_source, 3, "ended failed", "duplicates")
    assert "already exists" in into_source.stdout  # the problems, as a table
    plan = run_client(_env(vendor, "vendor-b"), "restore", str(out), "--dry-run")
    assert plan.returncode == 0 and "this server has no dry run" in " ".join(plan.stderr.split())
    _no_extension_was_used(vendor)


def test_one_day_over_the_limit_names_the_day_on_the_spec_alone(
    vendor: FakeVendor, tmp_path: Path
) -> None:
    vendor.limits["comments"] = 1
    done = run_client(_env(vendor), "backup", "--out", str(tmp_path / "b"), "--types", "comments")
    line = assert_one_line_error(done, 1, "refused the export of comments of", "alone")
    assert "maximum total comments rows of export is 1" in line


def test_backup_refuses_what_it_cannot_do_safely(vendor: FakeVendor, tmp_path: Path) -> None:
    env = _env(vendor)
    today = datetime.now(UTC).astimezone(timezone(timedelta(hours=7))).date()
    not_over = run_client(env, "backup", "--out", str(tmp_path / "a"), "--until", str(today))
    assert_one_line_error(not_over, 1, f"--until {today} is not over yet", "whole days only")
    backwards = run_client(env, "backup", "--out", str(tmp_path / "a"), "--since", "2099-01-01")
    assert_one_line_error(backwards, 1, "--since 2099-01-01 is after the last day")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    not_empty = run_client(env, "backup", "--out", str(tmp_path / "full"))
    assert_one_line_error(not_empty, 1, "is not empty and holds no manifest.json")
    mine = tmp_path / "mine"
    since = str(today - timedelta(days=5))
    assert run_client(env, "backup", "--out", str(mine), "--since", since).returncode == 0
    other = run_client(_env(vendor, "vendor-b"), "backup", "--out", str(mine))
    assert_one_line_error(other, 1, "holds a backup of app 'vendor-a'", "another directory")
    with (mine / ".chatferry.lock").open("a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = run_client(env, "backup", "--out", str(mine))
        restore_busy = run_client(_env(vendor, "vendor-b"), "restore", str(mine))
    assert_one_line_error(busy, 1, "another chatferry command is using")
    assert_one_line_error(restore_busy, 1, "another chatferry command is using")
    missing = run_client(env, "import", str(tmp_path / "nope.json"), "--type", "users")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_an_extended_backup_restores_only_what_it_added(vendor: FakeVendor, tmp_path: Path) -> None:
    out = tmp_path / "backup"
    source, target = vendor.apps["vendor-a"].rows, vendor.apps["vendor-b"].rows
    yesterday = datetime.now(timezone(timedelta(hours=7))).date() - timedelta(days=1)
    middle = str(yesterday - timedelta(days=10))
    run_client_json(_env(vendor), "backup", "--out", str(out), "--until", middle)
    first = run_client_json(_env(vendor, "vendor-b"), "restore", str(out))
    assert 0 < len(target["comments"]) < len(source["comments"])
    run_client_json(_env(vendor), "backup", "--out", str(out))
    second = run_client_json(_env(vendor, "vendor-b"), "restore", str(out))
    assert second["imported_now"] >= 1
    assert second["already_imported"] == first["uploads"]
    assert target == source
