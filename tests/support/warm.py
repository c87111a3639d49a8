"""``python -m chatferry ARGS`` without paying Python's start-up on every command.

A chatferry process spends over a second (of CPU) importing Typer, Rich, SQLAlchemy,
Alembic, FastAPI and uvicorn before it does anything; the suite starts a few hundred
(CLI commands, ``serve``, ``worker``). So each test process keeps one warm interpreter
(``warm_zygote.py``) that has imported chatferry once, and asks it to fork: ``run`` (a
command, like ``subprocess.run``) and ``WarmProcess`` (a server or worker, like
``Popen``). Each is a REAL process of its own, with the test's arguments, environment,
working directory, stdin, stdout and stderr, its own pid (signals, SIGKILL included, go
to it), its own exit code (``-9`` once killed) and the interpreter's normal exit. What it
does not repeat is only the import of modules that do not depend on the environment.

A fresh ``python -m chatferry`` still runs where start-up is the subject (which modules a
command imports, in test_client_offline), for the killed-at-random client commands and
the client tests' servers (test_client_processes) and the preflight's worker (so the
real entry point of every command kind stays covered); it also runs whenever the
environment differs from the warm interpreter's in a variable that is not read at run
time (only ``CHATFERRY_*``, ``QISCUS_*``, ``AWS_*``, ``XDG_*``, ``HOME`` and pytest's own
may), and for everything with ``CHATFERRY_TEST_WARM_CLI=0``.
"""

from __future__ import annotations

import atexit
import json
import locale
import os
import select
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
from typing import TypeVar

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


def fits(env: Mapping[str, str]) -> bool:
    """Whether a fork of the warm interpreter behaves as a fresh process with ``env``:
    they differ only in variables read at run time (and the warm CLI is on)."""
    names = (set(env) | set(BASE_ENV)) - RUNTIME_NAMES
    return ENABLED and all(
        env.get(name) == BASE_ENV.get(name)
        for name in names
        if not name.startswith(RUNTIME_PREFIXES)
    )


class WarmProcess:
    """``python -m chatferry ARGS`` forked by the warm interpreter, with the given file
    descriptors as its stdin, stdout and stderr (the caller closes its own copies): the
    part of ``subprocess.Popen`` the tests use (``pid``, ``returncode``, ``poll``,
    ``wait``, ``send_signal``, ``terminate``, ``kill``)."""

    def __init__(
        self,
        args: tuple[str, ...] | list[str],
        env: Mapping[str, str],
        *,
        stdin: int,
        stdout: int,
        stderr: int,
        cwd: Path | str | None = None,
    ) -> None:
        zygote = _get_zygote()
        self.args = command(*args)
        self.returncode: int | None = None
        self._buffer = b""
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._conn.connect(zygote.socket_path)
        request = json.dumps(
            {"args": list(args), "env": dict(env), "cwd": str(cwd or os.getcwd())}
        ).encode()
        socket.send_fds(self._conn, [b"R"], [stdin, stdout, stderr])
        self._conn.sendall(struct.pack("!I", len(request)) + request)
        pid = self._line(None)
        assert pid is not None
        self.pid = int(pid)

    def _line(self, timeout: float | None) -> bytes | None:
        """The zygote's next line (the pid, then the exit code), or None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self._conn], [], [], left)
            if not readable:
                return None
            chunk = self._conn.recv(256)
            if not chunk:
                raise RuntimeError(f"the warm interpreter hung up on {self.args}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _ended(self, line: bytes | None) -> int | None:
        if line is not None:
            self.returncode = int(line)
            self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        return self.returncode if self.returncode is not None else self._ended(self._line(0))

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self._ended(self._line(timeout)) is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # never signal a pid that may have been reused
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


W = TypeVar("W", bound=WarmProcess)


def start_logged(
    cls: type[W], args: tuple[str, ...] | list[str], env: Mapping[str, str], log_path: Path
) -> W:
    """A long-running ``cls`` process: stdin from /dev/null, stdout and stderr to
    ``log_path`` (as ``Popen(stdout=log_path.open("wb"), stderr=STDOUT)``)."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        with log_path.open("wb") as log:
            return cls(args, env, stdin=devnull, stdout=log.fileno(), stderr=log.fileno())
    finally:
        os.close(devnull)


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
    if not fits(env):
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
    stdin_r, stdin_w = os.pipe() if input is not None else (os.open(os.devnull, os.O_RDONLY), -1)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        process = WarmProcess(args, env, stdin=stdin_r, stdout=out_w, stderr=err_w, cwd=cwd)
    finally:
        for fd in (stdin_r, out_w, err_w):
            os.close(fd)
    stdout, stderr = _communicate(process, stdin_w, input, out_r, err_r, timeout)
    code = process.wait()
    return subprocess.CompletedProcess(process.args, code, _text(stdout), _text(stderr))


def _communicate(
    process: WarmProcess,
    stdin_w: int,
    input: str | None,
    out_r: int,
    err_r: int,
    timeout: float,
) -> tuple[bytes, bytes]:
    if stdin_w >= 0:
        payload = (input or "").encode(locale.getpreferredencoding(False))

        def feed() -> None:
            try:
                view = memoryview(payload)
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
                    process.kill()
                    raise subprocess.TimeoutExpired(process.args, timeout)
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
