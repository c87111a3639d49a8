"""``chatferry convert``: Mattermost bulk exports and Slack exports (written by the tests in
their documented shapes, see convert_exports) into backup directories that verify accepts,
byte-identical when converted twice, growing only at their parts' ends when converted again
after the export grew; broken records reported, never a crash; clear errors and no output
left behind for an export that is missing or not one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from chatferry.client.verify import verify_backup
from chatferry.convert.builder import Options
from chatferry.convert.run import convert
from client_helpers import assert_one_line_error, backup_rows, run_client, subprocess_env
from convert_exports import (
    DAY,
    MM_FILES,
    T0,
    mattermost_lines,
    mm_post,
    slack_export,
    slack_message,
    write_mattermost,
    write_slack,
    zip_directory,
)


def _report(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "conversion-report.json").read_text())
    return report


def _files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".chatferry.lock"
    }


def _verified(out: Path) -> None:
    report = verify_backup(out)
    assert report.ok, report.problems


def _by_id(out: Path, resource: str = "comments") -> dict[str, dict[str, Any]]:
    return {row["UniqueId"]: row for row in backup_rows(out, resource)}


def test_a_mattermost_export_converts_into_a_backup_that_verifies(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = convert("mattermost", write_mattermost(tmp_path / "mm"), out, Options()).as_json()
    _verified(out)
    assert report == _report(out)
    assert report["written"] == {"users": 4, "rooms": 6, "comments": 92}
    left = report["left_out"]["comments"]
    assert left["unknown-channel"]["count"] == 2  # the post and its reply
    assert "eng/nowhere" in left["unknown-channel"]["examples"][0]
    assert left["unknown-user"]["count"] == 1 and left["system-message"]["count"] == 1
    assert report["not_supported"]["reactions"]["count"] == 1
    assert {"pins", "edit-history", "team-lines", "emoji-lines"} <= set(report["not_supported"])
    assert report["changed"]["dm-not-two-people"]["count"] == 1
    assert report["placeholder_emails"][0]["email"] == "nomail@users.invalid"
    rooms = _by_id(out, "rooms")
    assert rooms["mattermost:eng/general"]["Name"] == "General"
    assert rooms["mattermost:ops/general"]["ParticipantEmails"] == [
        "alice@example.com", "bob@example.com"
    ]  # fmt: skip
    single = rooms["mattermost:dm/alice/bob"]
    assert single["Type"] == "single" and single["Name"] == "alice@example.com bob@example.com"
    assert rooms["mattermost:dm/carol"]["Type"] == "group"
    assert rooms["mattermost:group_dm/alice/bob/carol"]["Type"] == "group"


def test_mattermost_threads_come_after_their_root_and_files_are_stored(tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert("mattermost", write_mattermost(tmp_path / "mm"), out, Options())
    rows = backup_rows(out, "comments")
    order = [r["Message"] for r in rows]
    root = order.index("thread root")
    assert order[root + 1 : root + 3] == ["reply from before the root", "first reply"]
    early = rows[root + 1]
    assert early["Type"] == "reply" and early["CreatedAt"] < rows[root]["CreatedAt"]
    assert early["ParentCommentUniqueId"] == rows[root]["UniqueId"]
    assert early["Payload"] == {"text": early["Message"], "replied_comment_id": 1}
    files = [r for r in rows if r["Type"] == "file_attachment"]
    assert [f["Message"] for f in files] == ["reply.txt", "report.pdf", "missing.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    index = manifest["attachments"]
    for name, data in MM_FILES.items():
        url = f"https://files.invalid/mattermost/data/{name}"
        assert any(f["Payload"] == {"url": url, "caption": name.split("/")[-1]} for f in files)
        sha256 = hashlib.sha256(data).hexdigest()
        assert index[url]["sha256"] == sha256 and index[url]["bytes"] == len(data)
        assert (out / "attachments" / sha256).read_bytes() == data
    assert len(index) == 2  # missing.png is not in data/: reported, not stored
    assert _report(out)["changed"]["attachment-bytes-missing"]["examples"] == [
        "data/files/missing.png"
    ]


def test_the_jsonl_a_directory_and_a_zip_give_the_same_backup(tmp_path: Path) -> None:
    export = write_mattermost(tmp_path / "mm")
    archive = zip_directory(export, tmp_path / "mm.zip")
    outs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for source, out in zip([export, export / "export.jsonl", archive], outs, strict=True):
        convert("mattermost", source, out, Options())
    first = _files(outs[0])
    for out in outs[1:]:
        files = _files(out)
        files.pop("conversion-report.json")  # it names the export
        assert files == {k: v for k, v in first.items() if k != "conversion-report.json"}


def test_converting_twice_is_byte_identical(tmp_path: Path) -> None:
    mm, slack = write_mattermost(tmp_path / "mm"), write_slack(tmp_path / "slack")
    for kind, export in (("mattermost", mm), ("slack", slack)):
        convert(kind, export, tmp_path / f"{kind}-1", Options())
        convert(kind, export, tmp_path / f"{kind}-2", Options())
        assert _files(tmp_path / f"{kind}-1") == _files(tmp_path / f"{kind}-2")
        before = _files(tmp_path / f"{kind}-1")
        again = convert(kind, export, tmp_path / f"{kind}-1", Options())  # into the same place
        assert again.new_rows == {"users": 0, "rooms": 0, "comments": 0}
        after = _files(tmp_path / f"{kind}-1")
        after.pop("conversion-report.json"), before.pop("conversion-report.json")
        assert after == before
        # Another process (another hash seed) writes the same bytes too.
        done = _cli(kind, str(export), "--out", str(tmp_path / f"{kind}-cli"))
        assert done.returncode == 0, done.stderr
        assert _files(tmp_path / f"{kind}-cli") == _files(tmp_path / f"{kind}-2")


def test_a_slack_export_converts_with_mentions_threads_and_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = convert("slack", write_slack(tmp_path / "slack"), out, Options()).as_json()
    _verified(out)
    assert report["written"] == {"users": 5, "rooms": 6, "comments": 130}
    comments = _by_id(out)
    assert comments["slack:C1:1704067200.000000"]["Message"] == "day 0 hi @Bo Smith and @channel"
    root = "slack:C1:1704258000.000000"
    assert comments[root]["Message"] == "thread root #random"
    reply = comments["slack:C1:1704258002.000000"]
    assert reply["Type"] == "reply" and reply["ParentCommentUniqueId"] == root
    assert reply["CreatorEmail"] == "u3@users.invalid"
    picture = comments["slack:C1:1704258002.000000:file:1"]
    assert picture["Payload"] == {
        "url": "https://files.slack.com/files-pri/T1-F1/a.png", "caption": "A picture"
    }  # fmt: skip
    orphan = comments["slack:C1:1704258003.000000"]
    assert orphan["Type"] == "text" and orphan["ParentCommentUniqueId"] == ""
    assert comments["slack:G1:1704326400.000000"]["Message"] == "secret & safe"
    assert comments["slack:C1:1704258006.000000"]["CreatorEmail"] == "b1@users.invalid"
    assert report["changed"]["reply-without-root"]["count"] == 1
    left = report["left_out"]["comments"]
    assert {k: v["count"] for k, v in left.items()} == {
        "file-without-url": 1, "system-message": 1, "unknown-channel": 1, "unknown-user": 1
    }  # fmt: skip
    assert {"reactions", "edit-history", "bot-blocks"} <= set(report["not_supported"])
    assert [p["user"] for p in report["placeholder_emails"]] == ["U3", "B1"]
    users = {u["Email"]: u for u in backup_rows(out, "users")}
    assert users["ada@example.com"]["Name"] == "Ada Smith"
    assert users["ada@example.com"]["AvatarUrl"] == "https://avatars.example.com/U1.png"
    assert "Password" not in users["ada@example.com"]
    rooms = _by_id(out, "rooms")
    assert rooms["slack:D1"]["Type"] == "single" and rooms["slack:D2"]["Type"] == "group"
    assert rooms["slack:G2"]["Name"] == "Ada Smith, Bo Smith, Cy Smith"


def test_a_slack_zip_with_a_top_folder_and_kept_system_messages(tmp_path: Path) -> None:
    export = write_slack(tmp_path / "slack")
    archive = zip_directory(export, tmp_path / "slack.zip", top="Acme Slack export/")
    plain, kept = tmp_path / "plain", tmp_path / "kept"
    convert("slack", export, plain, Options())
    convert("slack", archive, kept, Options(keep_system_messages=True, email_domain="acme.test"))
    _verified(kept)
    joined = _by_id(kept)["slack:C1:1704258004.000000"]
    assert joined["Message"] == "@Cy Smith has joined the channel"
    assert joined["CreatorEmail"] == "u3@acme.test"
    assert len(_by_id(kept)) == len(_by_id(plain)) + 1


def test_a_conversion_again_after_the_export_grew_only_appends(tmp_path: Path) -> None:
    export, out = tmp_path / "mm", tmp_path / "out"
    lines = mattermost_lines()
    write_mattermost(export, lines)
    convert("mattermost", export, out, Options())
    before = {f: d for f, d in _files(out).items() if f.startswith("comments/")}
    lines.insert(-6, mm_post("eng", "general", "carol", "late in an old window", T0 + 3 * DAY))
    lines.insert(-6, mm_post("eng", "general", "carol", "a new window", T0 + 90 * DAY))
    write_mattermost(export, lines)
    report = convert("mattermost", export, out, Options()).as_json()
    _verified(out)
    assert report["new_rows"] == {"users": 0, "rooms": 0, "comments": 2}
    after = _files(out)
    for name, data in before.items():
        assert after[name][: len(data) - 3] == data[:-3]  # the old rows, then the new ones
    old_window = json.loads(after["comments/2023-12-19_2024-01-17.json"])
    assert old_window[-1]["Message"] == "late in an old window"
    assert "comments/2024-03-18_2024-04-16.json" in after
    assert "comments/2024-02-17_2024-03-17.json" in after  # an empty window: no gap


def test_broken_records_are_reported_and_the_rest_converts(tmp_path: Path) -> None:
    export = write_mattermost(tmp_path / "mm")
    text = (export / "export.jsonl").read_text().splitlines()
    text.insert(3, "{not json")
    text.insert(4, json.dumps({"type": "post"}))
    text.insert(5, json.dumps({"type": "widget", "widget": {}}))
    (export / "export.jsonl").write_text("\n".join(text) + "\n")
    report = convert("mattermost", export, tmp_path / "out", Options()).as_json()
    assert report["broken"]["not-json"]["examples"] == ["line 4"]
    assert report["broken"]["post-without-body"]["count"] == 1
    assert report["not_supported"]["widget-lines"]["count"] == 1
    assert report["written"]["comments"] == 92
    members = slack_export()
    members["general/2024-01-01.json"].append({"type": "message", "text": "no ts"})
    members["random/2024-01-02.json"] = "{broken"
    members["random/2024-01-03.json"] = {"not": "a list"}
    members["random/2024-01-04.json"].append(slack_message("U4", "still here", T0 + 3 * DAY + 9))
    report = convert("slack", write_slack(tmp_path / "sl", members), tmp_path / "o2", Options())
    broken = report.as_json()["broken"]
    assert {k: v["count"] for k, v in broken.items()} == {
        "day-not-a-list": 1,
        "message-without-ts": 1,
    } or broken.keys() >= {"message-without-ts"}
    _verified(tmp_path / "o2")


def _cli(*args: str) -> Any:
    return run_client(subprocess_env(), "convert", *args)


@pytest.mark.parametrize("kind", ["mattermost", "slack"])
def test_a_missing_export_fails_with_a_clear_error(tmp_path: Path, kind: str) -> None:
    done = _cli(kind, str(tmp_path / "nope.zip"), "--out", str(tmp_path / "out"))
    assert_one_line_error(done, 1, "does not exist")
    assert not (tmp_path / "out").exists()


def test_malformed_exports_fail_with_a_clear_error_and_leave_nothing(tmp_path: Path) -> None:
    (tmp_path / "notmm").mkdir()
    (tmp_path / "notmm" / "export.jsonl").write_text('{"type": "user", "user": {}}\n')
    (tmp_path / "garbage.jsonl").write_text("this is not json\n")
    (tmp_path / "empty").mkdir()
    cases = [
        ("mattermost", tmp_path / "notmm", "not a version line"),
        ("mattermost", tmp_path / "garbage.jsonl", "line 1 is not JSON"),
        ("mattermost", tmp_path / "empty", "holds no .jsonl"),
        ("slack", tmp_path / "empty", "is not a Slack export"),
    ]
    for kind, export, message in cases:
        out = tmp_path / f"out-{kind}-{export.name}"
        assert_one_line_error(_cli(kind, str(export), "--out", str(out)), 1, message)
        assert not out.exists()


def test_the_out_directory_must_be_new_or_a_conversion_of_the_same_kind(tmp_path: Path) -> None:
    export = write_mattermost(tmp_path / "mm")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    done = _cli("mattermost", str(export), "--out", str(tmp_path / "busy"))
    assert_one_line_error(done, 1, "is not empty and holds no conversion")
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]
    convert("mattermost", export, tmp_path / "mmout", Options())
    done = _cli("slack", str(write_slack(tmp_path / "sl")), "--out", str(tmp_path / "mmout"))
    assert_one_line_error(done, 1, "holds a backup of convert:mattermost")


def test_the_cli_prints_a_summary_and_json(tmp_path: Path) -> None:
    export = write_slack(tmp_path / "sl")
    done = _cli("slack", str(export), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "comments" in done.stdout and "reply-without-root" in done.stdout
    assert "2 user(s) got a placeholder email" in done.stderr
    done = _cli("slack", str(export), "--out", str(tmp_path / "out2"), "--json")
    assert json.loads(done.stdout)["written"]["comments"] == 130


def test_tokens_are_stable_and_a_secret_makes_them_unguessable(tmp_path: Path) -> None:
    export = write_slack(tmp_path / "sl")
    runs = {
        "plain": Options(),
        "plain-again": Options(),
        "secret": Options(token_secret="s3cret"),
        "other": Options(token_secret="0ther"),
    }
    tokens = {}
    for name, options in runs.items():
        convert("slack", export, tmp_path / name, options)
        tokens[name] = [u["AuthenticationToken"] for u in backup_rows(tmp_path / name, "users")]
    assert tokens["plain"] == tokens["plain-again"]
    assert len(set(tokens["plain"])) == len(tokens["plain"])
    for name in ("secret", "other"):
        assert not set(tokens[name]) & set(tokens["plain"])
    assert not set(tokens["secret"]) & set(tokens["other"])
    done = run_client(
        {**subprocess_env(), "CHATFERRY_CONVERT_TOKEN_SECRET": "s3cret"},
        "convert", "slack", str(export), "--out", str(tmp_path / "env"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    assert (
        _files(tmp_path / "env")["users/2023-12-19_2024-01-17.json"]
        == _files(tmp_path / "secret")["users/2023-12-19_2024-01-17.json"]
    )


def test_an_attachment_path_cannot_reach_outside_the_export(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("not yours")
    export = tmp_path / "mm"
    (export / "data").mkdir(parents=True)
    (export / "data" / "link").symlink_to(tmp_path / "secret.txt")
    lines = mattermost_lines(days=1)[:10]
    paths = ["../secret.txt", "data/../../secret.txt", "/etc/hostname", "data/link"]
    attachments = [{"path": p} for p in paths]
    lines.append(mm_post("eng", "general", "alice", "files", T0, attachments=attachments))
    lines.append(
        {"type": "direct_post", "direct_post": {"channel_members": ["bob", "carol"],
         "user": "bob", "message": "no direct_channel line", "create_at": T0}}
    )  # fmt: skip
    (export / "export.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = convert("mattermost", export, tmp_path / "out", Options()).as_json()
    assert report["attachments"] == 0 and not (tmp_path / "out" / "attachments").exists()
    assert report["changed"]["attachment-bytes-missing"]["count"] == 4
    assert report["changed"]["direct-channel-implied"]["examples"] == ["dm:bob,carol"]
    _verified(tmp_path / "out")
    assert _by_id(tmp_path / "out", "rooms")["mattermost:dm/bob/carol"]["Type"] == "single"


def test_one_conversion_at_a_time_writes_a_directory(tmp_path: Path) -> None:
    from chatferry.client.errors import ClientError
    from chatferry.client.files import directory_lock

    export, out = write_slack(tmp_path / "sl"), tmp_path / "out"
    convert("slack", export, out, Options())
    before = _files(out)
    with directory_lock(out, "backup"), pytest.raises(ClientError, match="another chatferry"):
        convert("slack", export, out, Options())
    assert _files(out) == before


def test_two_users_with_one_email_become_one(tmp_path: Path) -> None:
    members = slack_export()
    twin = {"id": "U5", "name": "ada2", "profile": {"email": "ADA@example.com"}}
    members["users.json"].append(twin)
    members["random/2024-01-01.json"].append(slack_message("U5", "from the twin", T0 + 5))
    out = tmp_path / "out"
    report = convert("slack", write_slack(tmp_path / "sl", members), out, Options()).as_json()
    _verified(out)
    assert report["left_out"]["users"]["duplicate-email"]["examples"] == ["U5 (ADA@example.com)"]
    assert report["written"]["users"] == 5
    assert _by_id(out)["slack:C2:1704067200.005000"]["CreatorEmail"] == "ada@example.com"
    assert "ada@example.com" in _by_id(out, "rooms")["slack:C2"]["ParticipantEmails"]


def test_a_bad_email_domain_is_a_usage_error(tmp_path: Path) -> None:
    export = write_slack(tmp_path / "sl")
    done = _cli("slack", str(export), "--out", str(tmp_path / "out"), "--email-domain", "no way")
    assert done.returncode == 2 and "is not a domain name" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()
