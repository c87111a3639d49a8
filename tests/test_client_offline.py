"""The client without a server: planning, upload cutting, verify, config, start-up imports."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from chatferry.client.backup import last_complete_day
from chatferry.client.config import normalize_server, read_config, resolve, write_config
from chatferry.client.daycounts import parse_day_counts
from chatferry.client.errors import ClientError
from chatferry.client.manifest import Part, Window, load_manifest
from chatferry.client.plan import cut, missing_ranges, missing_windows, packed, split
from chatferry.client.restore import _Names, _Parts, chunk, content_of, plan_uploads
from chatferry.client.verify import verify_backup
from client_helpers import (
    HEAVY_MODULES,
    assert_one_line_error,
    comment,
    encode_rows,
    room,
    run_client,
    user,
    write_backup,
)

D = date(2024, 1, 1)


def day(n: int) -> date:
    return D + timedelta(days=n)


def _part(resource: str, start: int, end: int) -> Part:
    return Part(resource, day(start), day(end), 0, 2, "", f"{resource}/{start}.json")


# -- planning ---------------------------------------------------------------------------


def test_missing_ranges_fill_holes_and_extend_both_ends() -> None:
    covered = {day(i) for i in (3, 4, 5, 9)}
    assert missing_ranges(covered, day(0), day(12)) == [
        (day(0), day(2)),
        (day(6), day(8)),
        (day(10), day(12)),
    ]
    assert missing_ranges({day(i) for i in range(5)}, day(0), day(4)) == []
    assert missing_ranges(set(), day(2), day(2)) == [(day(2), day(2))]


def test_windows_are_at_most_the_range_limit_and_cover_every_day_once() -> None:
    windows = cut("comments", day(0), day(64), 30)
    assert [(w.start, w.end) for w in windows] == [
        (day(0), day(29)),
        (day(30), day(59)),
        (day(60), day(64)),
    ]
    pieces = split(Window(day(0), day(9), "comments"), 3)
    assert [w.days for w in pieces] == [4, 4, 2]
    assert split(Window(day(0), day(1), "comments"), 50) == [
        Window(day(0), day(0), "comments"),
        Window(day(1), day(1), "comments"),
    ]
    # A refused window always splits, in two at least.
    assert len(split(Window(day(0), day(9), "users"), 1)) == 2


def test_missing_windows_skip_what_parts_cover_per_type() -> None:
    parts = [_part("users", 0, 29), _part("comments", 0, 9)]
    windows = missing_windows(
        parts, ("users", "comments"), day(0), day(39), lambda r, start, end: cut(r, start, end, 30)
    )
    assert windows == [
        Window(day(10), day(39), "comments"),
        Window(day(30), day(39), "users"),
    ]


def _spans(windows: list[Window]) -> list[tuple[int, int]]:
    return [((w.start - D).days, (w.end - D).days) for w in windows]


def test_days_are_packed_into_the_fewest_windows_under_the_limit() -> None:
    rows = [3, 4, 3, 0, 9, 1, 1, 0, 0, 10, 2]
    days = [(day(i), n) for i, n in enumerate(rows)]
    windows = packed("comments", days, 10, 30)
    assert _spans(windows) == [(0, 3), (4, 5), (6, 8), (9, 9), (10, 10)]
    assert all(w.resource == "comments" for w in windows)
    # A window is full when one more day would pass the limit: 10 rows fit exactly.
    assert _spans(packed("comments", [(day(0), 6), (day(1), 4), (day(2), 1)], 10, 30)) == [
        (0, 1),
        (2, 2),
    ]


def test_packed_windows_keep_to_the_longest_export() -> None:
    empty = [(day(i), 0) for i in range(65)]
    assert _spans(packed("users", empty, 10, 30)) == [(0, 29), (30, 59), (60, 64)]
    assert _spans(packed("users", empty[:3], 10, 1)) == [(0, 0), (1, 1), (2, 2)]


def test_a_day_over_the_limit_gets_a_window_of_its_own() -> None:
    days = [(day(0), 2), (day(1), 50), (day(2), 2)]
    assert _spans(packed("rooms", days, 10, 30)) == [(0, 0), (1, 1), (2, 2)]
    assert packed("rooms", [], 10, 30) == []


def _stats(rows: list[object], **changes: object) -> dict[str, object]:
    days = [{"date": day(i).isoformat(), "rows": n, "backed_up": False} for i, n in enumerate(rows)]
    return {"days": days, "limit": 10, "max_export_days": 29, **changes}


def test_the_servers_day_counts_are_read_with_its_limits() -> None:
    counts = parse_day_counts(_stats([1, 0, 7]), day(0), day(2))
    assert counts is not None
    assert counts.days == [(day(0), 1), (day(1), 0), (day(2), 7)]
    assert (counts.limit, counts.max_days) == (10, 30)  # 29 days after the first: 30 days


@pytest.mark.parametrize(
    "results",
    [
        _stats([1, 0]),  # a day missing
        _stats([1, 0, 7, 2]),  # a day more
        _stats([1, 0, 7], limit=0),
        _stats([1, 0, 7], limit="10"),
        _stats([1, 0, 7], max_export_days=-1),
        _stats([1, 0, 7], max_export_days=None),
        _stats([1, 0, 7], days="all"),
        {**_stats([1, 0, 7]), "days": [*_stats([1, 0])["days"], "day 2"]},
        _stats([1, 0, 7], days=[{"date": day(2 - i).isoformat(), "rows": 1} for i in range(3)]),
        {**_stats([1, 0, 7]), "days": [*_stats([1, 0])["days"], {"date": day(2).isoformat()}]},
        _stats([1, -1, 7]),
        _stats([1, True, 7]),
        _stats([1, 2.5, 7]),
    ],
)
def test_day_counts_that_do_not_add_up_are_not_used(results: dict[str, object]) -> None:
    assert parse_day_counts(results, day(0), day(2)) is None


def test_until_defaults_to_the_last_whole_day_of_the_app() -> None:
    now = datetime(2024, 3, 10, 20, 0, tzinfo=UTC)
    assert last_complete_day(timezone(timedelta(hours=7)), now) == date(2024, 3, 10)
    assert last_complete_day(UTC, now) == date(2024, 3, 9)
    # Unknown offset: only days that are over everywhere on Earth.
    assert last_complete_day(None, now) == date(2024, 3, 9)
    assert last_complete_day(None, datetime(2024, 3, 10, 11, 0, tzinfo=UTC)) == date(2024, 3, 8)


# -- restore uploads --------------------------------------------------------------------


def test_uploads_stay_under_the_limit_with_whole_rows_in_order(tmp_path: Path) -> None:
    users = [user(i) for i in range(40)]
    write_backup(tmp_path, {"users": [users[:25], users[25:]]})
    manifest = load_manifest(tmp_path)
    parts = _Parts(tmp_path)
    one_row = len(encode_rows([users[0]]))
    uploads = plan_uploads(parts, manifest, one_row * 7, _Names("b1", {}))
    assert len(uploads) > 5
    restored = []
    for upload in uploads:
        content = content_of(parts, upload)
        assert len(content) == upload.bytes <= one_row * 7
        rows = json.loads(content)
        assert len(rows) == upload.rows
        restored.extend(rows)
    assert restored == users
    names = [u.name for u in uploads]
    assert names[0] == "restore-b1-users-0001.json"
    assert len(set(names)) == len(names)
    # The same backup and limit always give the same uploads (restarts rely on it).
    again = plan_uploads(parts, manifest, one_row * 7, _Names("b1", {}))
    assert [(u.name, u.segments) for u in again] == [(u.name, u.segments) for u in uploads]


def test_a_row_larger_than_the_upload_limit_is_refused_by_name(tmp_path: Path) -> None:
    big = {**user(1), "Name": "x" * 5000}
    write_backup(tmp_path, {"users": [[user(0), big]]})
    with pytest.raises(ClientError, match=r"row 2 of users/.* is \d+ bytes"):
        chunk(
            [("users/a.json", 0, 100, "a"), ("users/a.json", 1, 5100, "b")],
            "users",
            1000,
            _Names("b", {}).of("users"),
        )


# -- verify -----------------------------------------------------------------------------


def _good_backup(directory: Path) -> None:
    write_backup(
        directory,
        {
            "users": [[user(1), user(2)], [user(3)]],
            "rooms": [[room(1, 1, [2, 3])], []],
            "comments": [[comment(1, 1, 1), comment(2, 1, 2, parent=1)], [comment(3, 1, 3, 2)]],
        },
    )


def test_verify_accepts_a_consistent_backup(tmp_path: Path) -> None:
    _good_backup(tmp_path)
    report = verify_backup(tmp_path)
    assert report.ok, report.problems
    assert report.rows == {"users": 3, "rooms": 1, "comments": 3}
    assert report.parts == 6


def test_verify_lists_every_kind_of_problem(tmp_path: Path) -> None:
    write_backup(
        tmp_path,
        {
            "users": [[user(1), user(2), user(1)]],
            "rooms": [[room(1, 1, [9]), room(1, 2, [1])]],
            "comments": [
                [comment(1, 1, 1, parent=2), comment(2, 7, 1), comment(3, 1, 8, parent=99)]
            ],
        },
    )
    messages = [f"{p['where']}: {p['problem']}" for p in verify_backup(tmp_path).problems]
    text = "\n".join(messages)
    assert "row 3: Email 'user1@example.com' is also in users/" in text
    assert "row 1: participant 'user9@example.com' is not in the backup" in text
    assert "rooms/2024-01-01_2024-01-10.json row 2: UniqueId 'room-1' is also in" in text
    assert "row 2: room 'room-7' is not in the backup" in text
    assert "row 3: creator 'user8@example.com' is not in the backup" in text
    assert "row 1: its parent comment 'c-2' comes after it" in text
    assert "row 3: parent comment 'c-99' is not in the backup" in text


def test_verify_catches_a_changed_truncated_or_missing_file(tmp_path: Path) -> None:
    _good_backup(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    files = [p["file"] for p in manifest["parts"]]
    changed = tmp_path / files[0]
    changed.write_bytes(changed.read_bytes().replace(b"User 1", b"User 7"))
    (tmp_path / files[2]).write_bytes(b"[\n{")
    (tmp_path / files[4]).unlink()
    problems = verify_backup(tmp_path).problems
    found = {(p["where"], p["problem"].split(" (")[0]) for p in problems}
    assert (files[0], "the file's sha256 differs from the manifest's: it was changed") in found
    assert (files[2], "the file is not valid JSON") in found
    assert (files[4], "the file is missing") in found


def test_verify_catches_gaps_overlaps_counts_and_escapes(tmp_path: Path) -> None:
    _good_backup(tmp_path)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    users = [p for p in manifest["parts"] if p["type"] == "users"]
    users[1]["start_date"] = "2024-01-15"  # leaves 2024-01-11..14 out
    rooms = [p for p in manifest["parts"] if p["type"] == "rooms"]
    rooms[1]["start_date"] = "2024-01-05"  # overlaps the first rooms part
    comments = [p for p in manifest["parts"] if p["type"] == "comments"]
    comments[1]["rows"] = 5
    manifest["parts"].append({**users[0], "start_date": "2024-03-01", "end_date": "2024-03-01",
                              "file": "../outside.json"})  # fmt: skip
    path.write_text(json.dumps(manifest))
    text = "\n".join(f"{p['where']}: {p['problem']}" for p in verify_backup(tmp_path).problems)
    assert "no part of users covers 2024-01-11 to 2024-01-14" in text
    assert "overlaps rooms/2024-01-01_2024-01-10.json" in text
    assert "the file has 1 rows, the manifest says 5" in text
    assert "../outside.json: the file is outside the backup directory" in text


def test_verify_command_exits_4_with_a_list_and_0_when_clean(tmp_path: Path) -> None:
    _good_backup(tmp_path / "good")
    done = run_client(dict(os.environ), "verify", str(tmp_path / "good"))
    assert done.returncode == 0, done.stderr
    assert "ok: 6 parts, 3 users, 1 rooms, 3 comments" in " ".join(done.stderr.split())

    _good_backup(tmp_path / "bad")
    (tmp_path / "bad" / "users" / "2024-01-01_2024-01-10.json").write_text("[]\n")
    done = run_client(dict(os.environ), "verify", str(tmp_path / "bad"))
    assert_one_line_error(done, 4, "problem(s) in the backup")
    assert "users/2024-01-01_2024-01-10.json" in done.stdout
    as_json = run_client(dict(os.environ), "verify", str(tmp_path / "bad"), "--json")
    assert as_json.returncode == 4
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["problem_count"] >= 3
    missing = run_client(dict(os.environ), "verify", str(tmp_path / "nothing"))
    assert_one_line_error(missing, 1, "there is no backup in", "the directory does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    no_manifest = run_client(dict(os.environ), "verify", str(empty), "--json")
    assert no_manifest.returncode == 4
    assert "holds no manifest.json" in no_manifest.stdout


def test_restore_of_a_directory_without_a_backup_says_so(tmp_path: Path) -> None:
    # No server is asked: the directory is checked first (port 9 answers nothing).
    env = {**os.environ, "CHATFERRY_SERVER": "http://127.0.0.1:9", "QISCUS_SDK_APP_ID": "a",
           "QISCUS_SDK_SECRET": "s"}  # fmt: skip
    missing = run_client(env, "restore", str(tmp_path / "nothing"))
    line = assert_one_line_error(missing, 1, "there is no backup in", "does not exist")
    assert "FileNotFoundError" not in line and ".chatferry.lock" not in line
    assert not (tmp_path / "nothing").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    no_manifest = run_client(env, "restore", str(empty), "--dry-run")
    assert_one_line_error(no_manifest, 1, f"there is no backup in {empty}", "no manifest.json")
    assert list(empty.iterdir()) == []  # no lock file left in a directory that is no backup


# -- configuration ----------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("CHATFERRY_SERVER", "QISCUS_SDK_APP_ID", "QISCUS_SDK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "chatferry" / "config.json"


def test_flags_win_over_environment_over_config_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config({"server": "http://saved:1", "app_id": "saved-app", "secret": "saved-secret"})
    assert stat.S_IMODE(clean_env.stat().st_mode) == 0o600
    assert stat.S_IMODE(clean_env.parent.stat().st_mode) == 0o700
    saved = resolve()
    assert (saved.server, saved.app_id, saved.secret) == (
        "http://saved:1",
        "saved-app",
        "saved-secret",
    )
    assert saved.sources == {
        "server": "config file",
        "app_id": "config file",
        "secret": "config file",
    }
    monkeypatch.setenv("QISCUS_SDK_APP_ID", "env-app")
    mixed = resolve(server="http://flag:2/api/v2.1/rest/")
    assert (mixed.server, mixed.app_id, mixed.secret) == (
        "http://flag:2",
        "env-app",
        "saved-secret",
    )
    assert mixed.sources["server"] == "--server"
    assert mixed.sources["app_id"] == "QISCUS_SDK_APP_ID"
    assert "saved-secret" not in repr(mixed)


def test_a_config_file_others_can_read_is_refused(clean_env: Path) -> None:
    write_config({"server": "http://saved:1", "app_id": "a", "secret": "s"})
    clean_env.chmod(0o644)
    with pytest.raises(ClientError, match=r"can be read by other users \(mode 0644\).*chmod 600"):
        read_config()
    clean_env.chmod(0o600)
    clean_env.write_text("{not json")
    with pytest.raises(ClientError, match="could not be read"):
        read_config()


def test_missing_settings_and_bad_urls_name_what_to_set(clean_env: Path) -> None:
    with pytest.raises(ClientError) as missing:
        resolve(server="http://x:1")
    assert "--app-id (or QISCUS_SDK_APP_ID)" in missing.value.message
    assert "--secret (or QISCUS_SDK_SECRET)" in missing.value.message
    assert "chatferry login" in missing.value.message
    for bad in ("127.0.0.1:8000", "ftp://x", "http://"):
        with pytest.raises(ClientError, match="not an http:// or https:// URL"):
            normalize_server(bad)


def test_login_saves_0600_and_config_never_shows_the_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATFERRY_", "QISCUS_"))} | {
        "XDG_CONFIG_HOME": str(tmp_path / "cfg")
    }
    secret = "very-secret-value-123"
    done = run_client(
        env, "login", "--server", "http://127.0.0.1:9/", "--app-id", "app1", "--no-check",
        stdin=f"{secret}\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    path = tmp_path / "cfg" / "chatferry" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "server": "http://127.0.0.1:9",
        "app_id": "app1",
        "secret": secret,
    }
    shown = run_client(env, "config")
    as_json = run_client(env, "config", "--json")
    for output in (done, shown, as_json):
        assert secret not in output.stdout + output.stderr
    assert json.loads(as_json.stdout)["sources"]["secret"] == "config file"
    # The saved connection is used; a server that is not there is one line naming it.
    unreachable = run_client(env, "export", "list")
    assert_one_line_error(unreachable, 1, "cannot reach the server at http://127.0.0.1:9")
    assert secret not in unreachable.stderr
    path.chmod(0o640)
    refused = run_client(env, "export", "list")
    assert_one_line_error(refused, 1, "can be read by other users", "chmod 600")
    assert run_client(env, "logout").returncode == 0
    assert not path.exists()
    nothing = run_client(env, "export", "list")
    assert_one_line_error(nothing, 1, "no server", "--server (or CHATFERRY_SERVER)")


# -- start-up ---------------------------------------------------------------------------


def test_the_command_line_does_not_import_the_server_stack() -> None:
    """The root, every client module and httpx load without the server's libraries."""
    code = (
        "import sys, chatferry.cli.main, chatferry.client.backup, chatferry.client.restore, "
        "chatferry.client.verify, chatferry.client.schedules, httpx\n"
        "from chatferry.client.http import Api\n"
        f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY_MODULES!r}]\n"
        "print(','.join(sorted(heavy)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", done.stdout
    # A client command that runs (and fails to connect) imports nothing of the server either.
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['chatferry', 'export', 'list', '--server', 'http://127.0.0.1:9',"
        " '--app-id', 'a', '--secret', 's']\n"
        "try:\n    runpy.run_module('chatferry', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY_MODULES!r}]\n"
        "print('HEAVY=' + ','.join(sorted(heavy)))"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in ran.stdout, ran.stdout
    assert "cannot reach the server" in ran.stderr


def test_version_debug_and_usage_errors() -> None:
    env = dict(os.environ)
    version = run_client(env, "--version")
    assert version.returncode == 0 and version.stdout.strip() == "chatferry 0.1.0"
    usage = run_client(env, "export", "create", "--type", "messages")
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr
    debug = run_client(
        env, "--debug", "export", "list", "--server", "http://127.0.0.1:9", "--app-id", "a",
        "--secret", "s",
    )  # fmt: skip
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("error: cannot reach the server")
    # The server's commands end in one line too (here: a database that is not there).
    broken = {**env, "CHATFERRY_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
    server_error = run_client(broken, "apps", "list")
    assert_one_line_error(
        server_error, 1, "postgresql://postgres@127.0.0.1:1/none", "CHATFERRY_DATABASE_URL"
    )
    bad_setting = run_client({**env, "CHATFERRY_WORKER_CONCURRENCY": "-1"}, "worker")
    assert_one_line_error(bad_setting, 1, "CHATFERRY_WORKER_CONCURRENCY", "greater than 0")
    help_text = " ".join(run_client(env, "--help").stdout.split())
    assert "Exit codes: 0 ok; 1 error" in help_text and "4 verify" in help_text
