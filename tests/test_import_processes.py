"""Imports through a real ``chatferry serve`` process, sent by the real ``curl`` binary.

The spec's example files go in as a user would send them (``curl -F type=users -F
file=@users.json``); uploads far over the limit are refused without the server's memory
growing; a worker killed in the middle of an import leaves nothing behind, and the next
worker imports the file exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from chatferry.db.engine import transaction
from chatferry.db.models import App, Import, Job, User
from chatferry.imports.passwords import verify_password
from chatferry.runtime import Runtime
from chatferry.settings import Settings
from support.apps import TEST_PASSWORD_HASH, NewApp
from support.curl import run_curl, spec_curl_args
from support.exports import create_export, stored_files, wait_finished
from support.http import IMPORTS, RFC3339_WITH_OFFSET
from support.imports import upload
from support.servers import ServerProcess, StartServer, StartWorker, run_cli_json
from support.waiting import read_record, wait_final, wait_for

pytestmark = pytest.mark.slow  # every test starts chatferry processes

APP_ID = "sdksample"
SECRET = "2820ae9dfc5362f7f3a10381fb89afc7"
HEADERS = {"QISCUS-SDK-APP-ID": APP_ID, "QISCUS-SDK-SECRET": SECRET}
MB = 1024 * 1024

# The spec's example files, verbatim.
SPEC_USERS_FILE = """[
{
"Email": "mymail@mymail.com",
"Name": "Nama",
"AvatarUrl": "https://placehold.it/20x20",
"AuthenticationToken": "randomstring",
"Password": "password",
"CreateAt": "2017-05-10T11:46:30Z"
}
]
"""

SPEC_ROOMS_FILE = """[
{
"Name": "demo1@linkdokter.com 4992614d-9d32-4cc4-ae8e-310a7a0fdbb9",
"Type": "single",
"Options": "",
"CreatorEmail": "user@mymail.com",
"CreatedAt": "2017-05-11T06:35:27Z",
"AvatarUrl": "",
"UniqueId": "f82e5262-e9c4-4b7b-867a-ea890ba64f43",
"ParticipantEmails": ["user@mymail.com", "mymail@mymail.com"]
},
{
"Name": "Qiscus Family Super",
"Type": "group",
"Options": "",
"CreatorEmail": "user@mymail.com",
"CreatedAt": "2017-05-11T06:35:27Z",
"AvatarUrl": "",
"UniqueId": "f82e5262-e9c4-4b7b-867a-ea890ba64f43",
"ParticipantEmails": [
"user@mymail.com",
"mymail@mymail.com",
"newuser@mymail.com"
]
}
]
"""

SPEC_COMMENTS_FILE = """[
{
"Message": "Halo doc",
"DisableLinkPreview": false,
"Type": "text",
"UniqueId": "android_14945300625232b81ffc0520f961",
"CreatorEmail": "userid_844_6285868233422@kiwari-stag.com",
"RoomUniqueId": "4e6c208b-3436-46a0-a6d7-add9b90dfc77",
"CreatedAt": "2017-05-11T19:14:24Z",
"Payload": null,
"ParentCommentUniqueId": ""
},
{
"Message": "Maaf mau tanya..",
"DisableLinkPreview": false,
"Type": "reply",
"UniqueId": "android_14945300625232b81ffc0520f962",
"CreatorEmail": "userid_844_6285868233422@kiwari-stag.com",
"RoomUniqueId": "4e6c208b-3436-46a0-a6d7-add9b90dfc77",
"CreatedAt": "2017-05-11T19:14:24Z",
"Payload": {
"text": "Maaf mau tanya..",
"replied_comment_id": 1
},
"ParentCommentUniqueId": "android_14945300625232b81ffc0520f961"
}
]
"""

SPEC_LIST_IMPORTS = r"""
curl -X GET \
'https://api.qiscus.com/api/v2.1/rest/imports?page=1' \
-H 'QISCUS-SDK-APP-ID: sdksample' \
-H 'QISCUS-SDK-SECRET: 2820ae9dfc5362f7f3a10381fb89afc7'
"""

DUPLICATE_ROOM = "f82e5262-e9c4-4b7b-867a-ea890ba64f43"
SECOND_ROOM = "0b5d9c8e-6a43-4f0e-9a55-2f1d3c7b8e90"
COMMENT_ROOM = "4e6c208b-3436-46a0-a6d7-add9b90dfc77"
CHAT_USER = "userid_844_6285868233422@kiwari-stag.com"

# What the spec's rooms and comments examples need but its users example does not create.
MY_USERS = [
    {
        "Email": email,
        "Name": name,
        "PasswordHash": TEST_PASSWORD_HASH,
        "CreateAt": "2017-05-10T12:00:00Z",
    }
    for email, name in (
        ("user@mymail.com", "User"),
        ("newuser@mymail.com", "New user"),
        (CHAT_USER, "Pasien"),
    )
]
MY_ROOMS = [
    {
        "Name": "ignored for single rooms",
        "Type": "single",
        "Options": "",
        "CreatorEmail": CHAT_USER,
        "CreatedAt": "2017-05-11T19:00:00Z",
        "AvatarUrl": "",
        "UniqueId": COMMENT_ROOM,
        "ParticipantEmails": [CHAT_USER, "user@mymail.com"],
    }
]


def _curl_import(
    server: ServerProcess, tmp_path: Path, resource: str, path: Path
) -> dict[str, Any]:
    """``curl -X POST .../imports -H ... -F type=R -F file=@path`` as a user types it."""
    result = run_curl(
        [
            "curl",
            "-X",
            "POST",
            f"{server.base_url}{IMPORTS}",
            "-H",
            f"QISCUS-SDK-APP-ID: {APP_ID}",
            "-H",
            f"QISCUS-SDK-SECRET: {SECRET}",
            "-F",
            f"type={resource}",
            "-F",
            f"file=@{path}",
        ],
        tmp_path,
    )
    assert result.status == 200, result.body
    body = result.json()
    assert set(body) == {"results", "status"} and body["status"] == 200
    record: dict[str, Any] = body["results"]["backup_history"]
    assert record["status"] == "started"
    assert record["errors"] == {"Message": "", "Data": None}
    assert record["resource_name"] == resource
    assert record["original_filename"] == path.name
    assert record["size"] == path.stat().st_size
    assert record["total_rows"] == 0
    assert RFC3339_WITH_OFFSET.match(record["created_at"]), record
    return record


def _wait_import(server: ServerProcess, unique_id: str) -> dict[str, Any]:
    return wait_final(server.http, "imports", unique_id, HEADERS, timeout=60)


def _assert_finished(record: dict[str, Any], rows: int) -> None:
    assert record["status"] == "finished", record
    assert record["errors"] == {"Message": "", "Data": None}
    assert (record["total_rows"], record["percentage"]) == (rows, 100)


def _assert_errors_shape(record: dict[str, Any]) -> list[dict[str, Any]]:
    assert record["status"] == "failed", record
    errors = record["errors"]
    assert set(errors) == {"Message", "Data"}
    assert isinstance(errors["Message"], str) and errors["Message"], errors
    assert isinstance(errors["Data"], list) and errors["Data"], errors
    for problem in errors["Data"]:
        assert set(problem) == {"row", "key", "field", "message"}, problem
        assert isinstance(problem["row"], int)
        assert problem["key"] is None or isinstance(problem["key"], str)
        assert isinstance(problem["field"], str) and isinstance(problem["message"], str)
        assert problem["message"]
    data: list[dict[str, Any]] = errors["Data"]
    return data


def _export_rows(server: ServerProcess, tmp_path: Path, resource: str) -> list[dict[str, Any]]:
    """POST /exports for May 2017, wait for it, and download download_url with curl."""
    body = {"type": resource, "start_date": "2017-05-01", "end_date": "2017-05-30"}
    created = create_export(server.http, HEADERS, **body)
    record = wait_finished(server.http, HEADERS, created["unique_id"])
    download = run_curl(["curl", record["download_url"]], tmp_path)
    assert download.status == 200, download.body
    assert len(download.body) == record["size"]
    rows: list[dict[str, Any]] = json.loads(download.body)
    return rows


def test_spec_example_files_imported_with_curl(
    settings_env: dict[str, str], start_server: StartServer, tmp_path: Path
) -> None:
    created = run_cli_json(
        settings_env, "apps", "create", "--name", "Sample", "--app-id", APP_ID, "--secret", SECRET
    )
    assert (created["app_id"], created["secret"]) == (APP_ID, SECRET)
    server = start_server()
    files = tmp_path / "files"
    files.mkdir()

    def write(name: str, content: str | list[dict[str, Any]]) -> Path:
        path = files / name
        path.write_text(content if isinstance(content, str) else json.dumps(content, indent=1))
        return path

    imported: list[str] = []

    def run(resource: str, path: Path) -> dict[str, Any]:
        record = _curl_import(server, tmp_path, resource, path)
        imported.append(record["unique_id"])
        final = _wait_import(server, record["unique_id"])
        assert final["unique_id"] == record["unique_id"]
        assert final["created_at"] == record["created_at"]
        assert final["size"] == record["size"]
        return final

    # Users: the spec's example, then the people its other examples talk about.
    _assert_finished(run("users", write("users.json", SPEC_USERS_FILE)), 1)
    _assert_finished(run("users", write("my_users.json", MY_USERS)), 3)

    # Rooms: the spec's example repeats its UniqueId; refused, naming the duplicate.
    refused = run("rooms", write("rooms.json", SPEC_ROOMS_FILE))
    data = _assert_errors_shape(refused)
    assert [(p["row"], p["key"], p["field"]) for p in data] == [(2, DUPLICATE_ROOM, "UniqueId")]
    assert DUPLICATE_ROOM in data[0]["message"] and "row 1" in data[0]["message"]
    assert "nothing was imported" in refused["errors"]["Message"]
    assert refused["total_rows"] == 2  # a failed import records how many rows were checked

    # With the second id changed, the same file imports; then the room the comments use.
    head, _, tail = SPEC_ROOMS_FILE.rpartition(DUPLICATE_ROOM)
    fixed = head + SECOND_ROOM + tail
    assert fixed.count(DUPLICATE_ROOM) == 1 and fixed.count(SECOND_ROOM) == 1
    _assert_finished(run("rooms", write("rooms_fixed.json", fixed)), 2)
    _assert_finished(run("rooms", write("my_rooms.json", MY_ROOMS)), 1)

    # Comments: the spec's example, with its reply.
    _assert_finished(run("comments", write("comments.json", SPEC_COMMENTS_FILE)), 2)

    # The spec's list example, as written: every import, newest first.
    listed = run_curl(spec_curl_args(SPEC_LIST_IMPORTS, server.base_url), tmp_path)
    assert listed.status == 200, listed.body
    histories = listed.json()["results"]["backup_histories"]
    assert [h["unique_id"] for h in histories] == imported[::-1]
    assert [(h["resource_name"], h["status"], h["total_rows"]) for h in histories] == [
        ("comments", "finished", 2),
        ("rooms", "finished", 1),
        ("rooms", "finished", 2),
        ("rooms", "failed", 2),
        ("users", "finished", 3),
        ("users", "finished", 1),
    ]
    assert histories[3]["errors"] == refused["errors"]
    assert [h["original_filename"] for h in histories][-1] == "users.json"

    # An export shows the imported rows.
    users = {row["Email"]: row for row in _export_rows(server, tmp_path, "users")}
    assert sorted(users) == sorted(["mymail@mymail.com", *(u["Email"] for u in MY_USERS)])
    spec_user = users["mymail@mymail.com"]
    assert {k: v for k, v in spec_user.items() if k != "PasswordHash"} == {
        "Email": "mymail@mymail.com",
        "Name": "Nama",
        "AvatarUrl": "https://placehold.it/20x20",
        "AuthenticationToken": "randomstring",
        "CreateAt": "2017-05-10T11:46:30Z",
    }
    assert spec_user["PasswordHash"].startswith("$argon2id$")
    assert "password" not in json.dumps(users).replace("PasswordHash", "")

    rooms = {row["UniqueId"]: row for row in _export_rows(server, tmp_path, "rooms")}
    assert sorted(rooms) == sorted([DUPLICATE_ROOM, SECOND_ROOM, COMMENT_ROOM])
    assert rooms[DUPLICATE_ROOM]["Name"] == "user@mymail.com mymail@mymail.com"
    assert rooms[DUPLICATE_ROOM]["ParticipantEmails"] == ["user@mymail.com", "mymail@mymail.com"]
    assert rooms[SECOND_ROOM]["Name"] == "Qiscus Family Super"
    assert rooms[SECOND_ROOM]["Type"] == "group"
    assert rooms[SECOND_ROOM]["ParticipantEmails"] == [
        "user@mymail.com",
        "mymail@mymail.com",
        "newuser@mymail.com",
    ]
    assert rooms[COMMENT_ROOM]["Name"] == f"{CHAT_USER} user@mymail.com"

    comments = _export_rows(server, tmp_path, "comments")
    expected = json.loads(SPEC_COMMENTS_FILE)
    assert [c["UniqueId"] for c in comments] == [c["UniqueId"] for c in expected]
    text, reply = comments
    assert text == expected[0]
    assert {k: v for k, v in reply.items() if k != "Payload"} == {
        k: v for k, v in expected[1].items() if k != "Payload"
    }
    # replied_comment_id now holds the parent's real id (the spec's "1" meant "yes").
    assert reply["Payload"]["text"] == "Maaf mau tanya.."
    assert isinstance(reply["Payload"]["replied_comment_id"], int)


# --- uploads over the limit, against the real server ---------------------------------


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


def _reset_peak(pid: int) -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _RssSampler:
    """Samples a process's VmRSS every few milliseconds while a request runs."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _memory(self.pid)["VmRSS"])
            self._stop.wait(0.002)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


BOUNDARY = "chatferry-test-boundary"


def _multipart(total: int) -> tuple[bytes, bytes, int]:
    """Head and tail of a multipart body whose file part holds ``total`` bytes."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="type"\r\n\r\nusers\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.json"\r\n'
        "Content-Type: application/json\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, tail, len(head) + total + len(tail)


def _stream(total: int, sent: list[int]) -> Iterator[bytes]:
    """A multipart body with a ``total``-byte file, made 64 KiB at a time."""
    head, tail, _ = _multipart(total)
    yield head
    chunk = b" " * (64 * 1024)
    left = total
    while left > 0:
        piece = chunk[: min(left, len(chunk))]
        left -= len(piece)
        sent[0] += len(piece)
        yield piece
    yield tail


def _upload_headers() -> list[str]:
    return ["-H", f"QISCUS-SDK-APP-ID: {APP_ID}", "-H", f"QISCUS-SDK-SECRET: {SECRET}"]


def test_uploads_over_the_limit_are_refused_without_the_server_growing(
    settings_env: dict[str, str],
    settings: Settings,
    new_app: NewApp,
    start_server: StartServer,
    tmp_path: Path,
) -> None:
    new_app(app_id=APP_ID, secret=SECRET)
    assert "CHATFERRY_IMPORT_MAX_BYTES" not in settings_env  # the default: 4 MB
    server = start_server()
    pid = server.process.pid
    url = f"{server.base_url}{IMPORTS}"
    big = tmp_path / "big.json"
    with big.open("wb") as out:
        out.truncate(50 * MB)  # 50 MB (sparse: the test itself stays small)
    just_over = tmp_path / "just_over.json"
    just_over.write_bytes(b" " * (4 * MB + 1))

    # A first authenticated request: the app secret's Argon2 check (then cached) must not
    # count as the upload's memory.
    assert httpx.get(f"{url}?page=1", headers=HEADERS, timeout=10).status_code == 200

    def curl(*args: str) -> tuple[int, bytes]:
        result = run_curl(["curl", "-X", "POST", url, *_upload_headers(), *args], tmp_path)
        return result.status, result.body

    def httpx_stream(with_length: bool) -> tuple[int, bytes]:
        sent = [0]
        _, _, length = _multipart(50 * MB)
        headers = {**HEADERS, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        if with_length:
            headers["Content-Length"] = str(length)
        response = httpx.post(url, content=_stream(50 * MB, sent), headers=headers, timeout=60)
        return response.status_code, response.content

    senders = {
        "curl, file with Content-Length": lambda: curl("-F", "type=users", "-F", f"file=@{big}"),
        "curl, chunked": lambda: curl(
            "-H", "Transfer-Encoding: chunked", "-F", "type=users", "-F", f"file=@{big}"
        ),
        "httpx generator, chunked": lambda: httpx_stream(False),
        "httpx generator, Content-Length": lambda: httpx_stream(True),
        "curl, 4 MB + 1 byte": lambda: curl("-F", "type=users", "-F", f"file=@{just_over}"),
    }
    for name, send in senders.items():
        can_reset = _reset_peak(pid)
        before = _memory(pid)
        with _RssSampler(pid) as sampler:
            status, body = send()
        after = _memory(pid)
        assert status == 413, (name, body[:500])
        error = json.loads(body)
        assert set(error) == {"status", "error"} and error["status"] == 413, (name, error)
        message = error["error"]["message"]
        assert "over the import limit of 4 MB (4194304 bytes)" in message, (name, message)
        assert "CHATFERRY_IMPORT_MAX_BYTES" in message
        growth = {
            "sampled peak": sampler.peak - before["VmRSS"],
            "RSS": after["VmRSS"] - before["VmRSS"],
        }
        if can_reset:
            growth["peak (VmHWM)"] = after["VmHWM"] - before["VmRSS"]
        assert all(g < 20 * MB for g in growth.values()), (name, growth, before, after)

    # Nothing was recorded or stored for the refused uploads, and the server still works.
    listed = httpx.get(f"{url}?page=1", headers=HEADERS, timeout=10).json()
    assert listed["results"]["backup_histories"] == []
    assert stored_files(settings) == []
    small = tmp_path / "users.json"
    small.write_text(SPEC_USERS_FILE)
    record = _curl_import(server, tmp_path, "users", small)
    _assert_finished(_wait_import(server, record["unique_id"]), 1)


# --- a worker killed in the middle of an import --------------------------------------


def _children(pid: int) -> set[int]:
    """The process's children (of all its threads)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_worker_killed_mid_import_writes_nothing_and_the_next_one_imports_once(
    settings_env: dict[str, str],
    runtime: Runtime,
    new_app: NewApp,
    start_server: StartServer,
    start_worker: StartWorker,
) -> None:
    assert settings_env["CHATFERRY_JOB_LEASE_SECONDS"] == "3"
    creds = new_app()
    # Plain passwords on purpose: Argon2id at OWASP parameters is several seconds of
    # hashing on 2 cores, the window in which the worker is killed.
    count = 150
    rows = [
        {"Email": f"killed{i}@example.com", "Name": f"User {i}", "Password": f"pw-{i}"}
        for i in range(count)
    ]
    server = start_server(None, "--no-worker")
    response = upload(server.http, creds, "users", rows, "users.json")
    assert response.status_code == 200, response.text
    unique_id = response.json()["results"]["backup_history"]["unique_id"]

    def get() -> dict[str, Any]:
        return read_record(server.http, "imports", unique_id, creds.headers)

    def users_in_db() -> list[str]:
        with transaction(runtime.sessions) as session:
            pk = session.scalar(select(App.id).where(App.app_id == creds.app_id))
            return list(session.scalars(select(User.email).where(User.app_pk == pk)))

    def job() -> Job:
        with transaction(runtime.sessions) as session:
            import_id = session.scalar(select(Import.id).where(Import.unique_id == unique_id))
            [row] = session.scalars(
                select(Job).where(Job.kind == "import", Job.target_id == import_id)
            )
            return row

    first = start_worker(name="worker-first", ready=False)

    # Hashing under way: past the checks (10) and some passwords into the hashing.
    def hashing() -> dict[str, Any] | None:
        record = get()
        assert record["status"] == "started", record
        return record if 10 < record["percentage"] < 90 else None

    progress = wait_for(hashing, timeout=60, interval=0.05)["percentage"]
    pool = _children(first.pid)
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL

    record = get()
    assert record["status"] == "started" and record["percentage"] < 100, record
    assert record["total_rows"] == 0
    assert users_in_db() == []
    killed = job()
    assert (killed.status, killed.attempts) == ("running", 1)
    assert str(first.pid) in (killed.lease_owner or "")
    # Nothing the killed worker started lives on (a process pool's workers, say, blocked
    # for ever on their task queue, a core's worth of memory each, per killed worker).
    try:
        wait_for(lambda: not any(_alive(pid) for pid in pool), timeout=10)
    finally:
        for pid in pool:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    second = start_worker(name="worker-second", ready=False)
    started = time.monotonic()
    final = wait_final(server.http, "imports", unique_id, creds.headers, timeout=90)
    rerun_seconds = time.monotonic() - started
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0
    assert final["status"] == "finished", final
    assert final["errors"] == {"Message": "", "Data": None}
    assert (final["total_rows"], final["percentage"]) == (count, 100)
    emails = users_in_db()
    assert sorted(emails) == sorted(r["Email"] for r in rows)  # each exactly once
    done = job()
    assert (done.status, done.attempts) == ("done", 2)
    assert done.lease_owner and f":{second.pid}:" in done.lease_owner, done.lease_owner
    with transaction(runtime.sessions) as session:
        stored = session.scalar(
            select(User.password_hash).where(User.email == "killed7@example.com")
        )
    assert stored and verify_password(stored, "pw-7")
    print(f"killed at {progress}%; the new worker finished the import in {rerun_seconds:.1f}s")
