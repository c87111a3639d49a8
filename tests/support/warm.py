"""``python -m chatferry ARGS`` without paying Python's start-up on every command.

A CLI process spends about a second (of CPU) importing Typer, Rich, SQLAlchemy, Alembic
and the server stack before it does anything; the suite runs a few hundred of them. So
each test process keeps one warm interpreter (``warm_zygote.py``) that has imported
chatferry once, and ``run`` asks it to fork: the command then runs in a REAL process of
its own, with the test's arguments, environment, working directory, stdin, stdout and
stderr, its own exit code (``-9`` if it is killed) and the interpreter's normal exit.
What it does not repeat is only the import of modules that do not depend on the
environment.

Tests about start-up itself (which modules a command imports, how fast ``--help`` is)
run ``python -m chatferry`` directly; so does ``run`` whenever the environment differs
from the warm interpreter's in a variable that is not read at run time (only
``CHATFERRY_*``, ``QISCUS_*``, ``AWS_*``, ``XDG_*``, ``HOME`` and pytest's own may), or
with ``CHATFERRY_TEST_WARM_CLI=0``.
"""

from __future__ import annotations

import atexit
import json
import locale
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

ZYGOTE = Path(__file__).with_name("warm_zygote.py")
RUNTIME_PREFIXES = ("CHATFERRY_", "QISCUS_", "AWS_", "XDG_", "PYTEST_")
RUNTIME_NAMES = {"HOME"}
ENABLED = os.environ.get("CHATFERRY_TEST_WARM_CLI", "1") != "0"
# The warm interpreter's environment: this process's, before any test changed it.
BASE_ENV = dict(os.environ)


class _Zygote:
    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="chatferry-warm-")
        self.socket_path = os.path.join(self.directory, "zygote.sock")
        self.log_path = os.path.join(self.directory, "zygote.log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')",
                    str(ZYGOTE),
                    self.socket_path,
                ],
                stdin=subprocess.PIPE,  # its end of file tells the zygote to stop
                stdout=log,
                stderr=subprocess.STDOUT,
                env=BASE_ENV,
                cwd=self.directory,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.socket_path):
            if self.process.poll() is not None:
                raise RuntimeError(f"the warm CLI exited: {Path(self.log_path).read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the warm CLI is not ready after {timeout}s")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for name in (self.socket_path, self.log_path):
            if os.path.exists(name):
                os.unlink(name)
        os.rmdir(self.directory)


_zygote: _Zygote | None = None
_lock = threading.Lock()


def _get_zygote() -> _Zygote:
    global _zygote
    with _lock:
        if _zygote is None or _zygote.process.poll() is not None:
            _zygote = _Zygote()
            atexit.register(_zygote.stop)
        zygote = _zygote
    zygote.wait_ready()
    return zygote


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatferry", *args]


def run(
    args: tuple[str, ...] | list[str],
    env: Mapping[str, str],
    *,
    timeout: float,
    cwd: Path | str | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """What ``subprocess.run(python -m chatferry ARGS, env=env, cwd=cwd, input=input,
    capture_output=True, text=True, timeout=timeout)`` returns, from a forked process."""
    if not ENABLED or not _fits(env):
        return subprocess.run(
            command(*args),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
            cwd=cwd,
        )
    zygote = _get_zygote()
    stdin_r, stdin_w = os.pipe() if input is not None else (os.open(os.devnull, os.O_RDONLY), -1)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(zygote.socket_path)
        request = json.dumps(
            {"args": list(args), "env": dict(env), "cwd": str(cwd or os.getcwd())}
        ).encode()
        socket.send_fds(conn, [b"R"], [stdin_r, out_w, err_w])
        conn.sendall(struct.pack("!I", len(request)) + request)
    finally:
        for fd in (stdin_r, out_w, err_w):
            os.close(fd)
    reply = conn.makefile("rb")
    pid = int(reply.readline())
    try:
        stdout, stderr = _communicate(pid, stdin_w, input, out_r, err_r, timeout, args)
        line = reply.readline()
        if not line:
            raise RuntimeError(f"the warm CLI lost the exit code of {args}")
        code = int(line)
    finally:
        reply.close()
        conn.close()
    return subprocess.CompletedProcess(command(*args), code, _text(stdout), _text(stderr))


def _fits(env: Mapping[str, str]) -> bool:
    """Whether a fork of the warm interpreter behaves as a fresh process with ``env``:
    they differ only in variables read at run time."""
    names = (set(env) | set(BASE_ENV)) - RUNTIME_NAMES
    return all(
        env.get(name) == BASE_ENV.get(name)
        for name in names
        if not name.startswith(RUNTIME_PREFIXES)
    )


def _communicate(
    pid: int,
    stdin_w: int,
    input: str | None,
    out_r: int,
    err_r: int,
    timeout: float,
    args: tuple[str, ...] | list[str],
) -> tuple[bytes, bytes]:
    if stdin_w >= 0:
        data = (input or "").encode(locale.getpreferredencoding(False))

        def feed() -> None:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(stdin_w, view) :]
            except BrokenPipeError:
                pass  # the command exited without reading it all, as it may
            finally:
                os.close(stdin_w)

        threading.Thread(target=feed, daemon=True).start()
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        try:
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(command(*args), timeout)
                for key, _ in selector.select(left):
                    data = os.read(key.fd, 65536)
                    if data:
                        chunks[key.fd].append(data)  # type: ignore[index]
                    else:
                        selector.unregister(key.fd)
        finally:
            os.close(out_r)
            os.close(err_r)
    return b"".join(chunks[out_r]), b"".join(chunks[err_r])


def _text(data: bytes) -> str:
    """As ``subprocess.run(text=True)`` decodes: the locale's encoding, universal newlines."""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")
