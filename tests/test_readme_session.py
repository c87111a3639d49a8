"""The README's "Try it" session, run as written, and what a restore does with time zones.

The shell blocks are read from README.md and run by bash in an empty directory that has
``.venv/bin/chatferry`` (a link to this install) and nothing else, as a newcomer would:
terminal 1's commands, then ``serve`` in the background, then terminal 2's block and the
curl lines of "The API by hand". The only change is the port (8000 may be taken): every
``127.0.0.1:8000`` becomes the test's free port. The session is shared by the module's
tests (it is the slow part, about half a minute); the later tests use its server, data
and backup.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.servers import free_port
from support.waiting import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SECRET = "2820ae9dfc5362f7f3a10381fb89afc7"
FENCE = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def readme_blocks() -> tuple[str, str, str]:
    """Terminal 1's block, terminal 2's block and the curl block of "The API by hand"."""
    text = (ROOT / "README.md").read_text()
    try_it = text[text.index("## Try it") : text.index("### The API by hand")]
    by_hand = text[text.index("### The API by hand") :]
    by_hand = by_hand[: by_hand.index("\n## ")]
    terminal_1, terminal_2 = FENCE.findall(try_it)
    (curl,) = FENCE.findall(by_hand)
    return terminal_1, terminal_2, curl


@dataclass
class Session:
    cwd: Path
    env: dict[str, str]
    url: str
    output: str  # terminal 2's stdout and stderr
    failures: list[str]  # "<exit code> <command>" of each command that failed
    curl_output: str

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [".venv/bin/chatferry", *args],
            cwd=self.cwd,
            env=env or self.client_env("sdksample", SECRET),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def client_env(self, app_id: str, secret: str) -> dict[str, str]:
        return {
            **self.env,
            "CHATFERRY_SERVER": self.url,
            "QISCUS_SDK_APP_ID": app_id,
            "QISCUS_SDK_SECRET": secret,
        }

    def api(self, app_id: str, secret: str, path: str) -> Any:
        headers = {"QISCUS-SDK-APP-ID": app_id, "QISCUS-SDK-SECRET": secret}
        response = httpx.get(f"{self.url}/api/v2.1/rest{path}", headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()["results"]


def _newcomer_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHATFERRY_", "QISCUS_", "AWS_", "COLUMNS"))
    }
    return {**env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config")}


def _bash(script: str, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    cwd = tmp_path_factory.mktemp("newcomer")
    (cwd / ".venv" / "bin").mkdir(parents=True)
    (cwd / ".venv" / "bin" / "chatferry").symlink_to(Path(sys.executable).parent / "chatferry")
    env = _newcomer_env(cwd)
    port = free_port()
    terminal_1, terminal_2, curl = (
        b.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for b in readme_blocks()
    )
    setup, serve = terminal_1.rsplit(".venv/bin/chatferry serve", 1)
    assert serve.strip() == "", "terminal 1 ends with serve"
    setup_output = _bash("set -e\n" + setup, cwd, env, timeout=300)
    log = (cwd / "serve.log").open("wb")
    server = subprocess.Popen(
        [".venv/bin/chatferry", "serve", "--port", str(port)], cwd=cwd, env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url, server), timeout=60)
        trap = "trap 'echo \"$? $BASH_COMMAND\" >> failures.txt' ERR\n"
        output = setup_output + _bash(trap + terminal_2, cwd, env, timeout=600)
        failures_file = cwd / "failures.txt"
        failures = failures_file.read_text().splitlines() if failures_file.exists() else []
        curl_output = _bash("set -e\n" + curl, cwd, env, timeout=60)
        yield Session(cwd, env, url, output, failures, curl_output)
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        print((cwd / "serve.log").read_text(errors="replace")[-20000:])


def _answers(url: str, server: subprocess.Popen[bytes]) -> bool:
    assert server.poll() is None, "serve exited"
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_try_it_session_runs_as_written(session: Session) -> None:
    # Every command succeeds but the one the README says fails (exit 3, and why).
    assert session.failures == ["3 .venv/bin/chatferry import users.json --type users --dry-run"], (
        session.output
    )
    assert "Email 'ayu@example.com'" in session.output and "already exists" in session.output
    assert "ok:" in session.output and "checksums and references match" in session.output
    assert "restore into restored" in session.output
    assert '"status":"ready"' in session.output.replace(" ", "")
    assert "chatferry_jobs_waiting" in session.output
    (downloaded,) = (session.cwd / "exports").iterdir()
    assert downloaded.name.endswith("_exported_comments.json") and ":" not in downloaded.name
    assert '"status": 200' in session.curl_output.replace('"status":200', '"status": 200')


def test_the_restore_made_the_same_rows_in_the_same_time_zone(session: Session) -> None:
    source = session.api("sdksample", SECRET, "/stats/daily?type=comments")
    restored = session.api("restored", "restored-secret-1", "/stats/daily?type=comments")
    assert restored["timezone"] == source["timezone"] == "Asia/Jakarta"
    assert [d["rows"] for d in restored["days"]][:-1] == [d["rows"] for d in source["days"]][:-1]


def test_the_backup_records_the_zone_and_the_exports_own_names(session: Session) -> None:
    manifest = json.loads((session.cwd / "sample-backup" / "manifest.json").read_text())
    assert manifest["timezone"] == "Asia/Jakarta" and manifest["utc_offset"] == "+07:00"
    names = [p["original_filename"] for p in manifest["parts"]]
    assert names and all(n.endswith(f"_exported_{p['type']}.json") for n, p in
                         zip(names, manifest["parts"], strict=True))  # fmt: skip
    assert all(":" in n for n in names)  # the spec's name, kept as it is


def test_a_restore_into_an_app_of_another_zone_is_refused_before_it_starts(
    session: Session,
) -> None:
    made = session.run("apps", "create", "--name", "UTC", "--app-id", "utc-app",
                       "--secret", "utc-secret-123", env=session.env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    env = session.client_env("utc-app", "utc-secret-123")
    refused = session.run("restore", "sample-backup", env=env)
    assert refused.returncode == 1, refused.stderr
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
    assert "time zone Asia/Jakarta" in line and "utc-app is in UTC" in line
    assert "chatferry apps update utc-app --timezone Asia/Jakarta" in line
    assert "--timezone-from sample-backup" in line and "--ignore-timezone" in line
    assert session.api("utc-app", "utc-secret-123", "/imports")["backup_histories"] == []
    forced = session.run("restore", "sample-backup", "--dry-run", "--ignore-timezone", env=env)
    assert forced.returncode == 0, forced.stderr
    assert "restoring a backup of Asia/Jakarta into an app in UTC" in forced.stderr


def test_apps_create_takes_the_zone_from_a_backup(session: Session) -> None:
    offset_only = session.cwd / "offset-only"
    offset_only.mkdir()
    manifest = json.loads((session.cwd / "sample-backup" / "manifest.json").read_text())
    del manifest["timezone"]  # as written by a client before this one
    (offset_only / "manifest.json").write_text(json.dumps(manifest))
    made = session.run("apps", "create", "--name", "Offset", "--timezone-from", "offset-only",
                       env=session.env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["timezone"] == "Etc/GMT-7"  # UTC+07:00 all year
    missing = session.run("apps", "create", "--name", "X", "--timezone-from", "nowhere",
                          env=session.env)  # fmt: skip
    assert missing.returncode == 1
    assert "there is no backup in nowhere: the directory does not exist" in missing.stderr
    both = session.run("apps", "create", "--name", "X", "--timezone", "UTC",
                       "--timezone-from", "sample-backup", env=session.env)  # fmt: skip
    assert both.returncode == 1 and "not both" in both.stderr


def _in_terminal(session: Session, columns: int, *args: str) -> str:
    """The command's output in a pseudo-terminal ``columns`` wide."""
    controller, terminal = pty.openpty()
    env = {**session.client_env("sdksample", SECRET), "COLUMNS": str(columns), "LINES": "50"}
    process = subprocess.Popen([".venv/bin/chatferry", *args], cwd=session.cwd, env=env,
                               stdout=terminal, stderr=terminal)  # fmt: skip
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(60)
    os.close(controller)
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode())


@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("kind", ["export", "import"])
def test_lists_show_whole_ids_in_a_narrow_terminal(
    session: Session, kind: str, columns: int
) -> None:
    listed = json.loads(session.run(kind, "list", "--json").stdout)
    assert listed
    shown = _in_terminal(session, columns, kind, "list")
    for record in listed:
        assert record["unique_id"] in shown, shown
    assert "…" not in shown
    assert max(len(line) for line in shown.splitlines()) <= columns
