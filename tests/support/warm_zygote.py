"""The warm interpreter behind ``support.warm``: imports chatferry once, then forks one
real process per command. Started by ``support.warm`` as

    python -c "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')" \
        <this file> <socket path>

(``-c`` keeps this directory, which holds a module named ``http``, off ``sys.path``).

A request on the Unix socket carries three file descriptors (the command's stdin, stdout
and stderr) and a JSON object: ``args``, ``env``, ``cwd``. This process forks; the child
takes the descriptors as 0, 1 and 2, the environment, the directory and the arguments,
and runs ``chatferry`` as ``python -m chatferry`` would (``runpy.run_module`` as
``__main__``), then exits through the interpreter's normal shutdown (atexit handlers,
threads joined, output flushed) with the command's own exit code. The parent answers
the child's pid at once and its exit code (``Popen.returncode`` style: ``-N`` for a
signal) when it ends. This process exits when its stdin (a pipe from the test process)
reaches end of file.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import pkgutil
import runpy
import selectors
import signal
import socket
import struct
import sys
from typing import Any

# Imported up front: every chatferry module (the CLI loads most of them lazily, inside
# its commands) and the database drivers. Never ``__main__`` (it runs the CLI) nor the
# migration scripts (Alembic loads them itself, in the child, as in a fresh process).
SKIP = ("chatferry.__main__", "chatferry.db.migrations")
EXTRA = (
    "sqlalchemy.dialects.sqlite.pysqlite",
    "sqlalchemy.dialects.postgresql.psycopg",
    "alembic.command",
    "alembic.runtime.migration",
    "alembic.ddl.sqlite",
    "alembic.ddl.postgresql",
    "uvicorn",
)


def preload() -> None:
    import chatferry

    names = [m.name for m in pkgutil.walk_packages(chatferry.__path__, "chatferry.")]
    for name in [*names, *EXTRA]:
        if name.startswith(SKIP):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # a module being changed right now: the child imports it
            print(f"warm: not preloaded: {name}: {exc!r}", file=sys.stderr, flush=True)


def read_request(conn: socket.socket) -> tuple[list[int], dict[str, Any]]:
    _, fds, _, _ = socket.recv_fds(conn, 1, 3)
    size = struct.unpack("!I", recv_exactly(conn, 4))[0]
    return fds, json.loads(recv_exactly(conn, size))


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("the test process hung up mid-request")
        data += chunk
    return data


def serve(listener: socket.socket) -> tuple[list[int], dict[str, Any]]:
    """Forks a child per request; returns (in the child only) the child's request."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "reap")
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    children: dict[int, socket.socket] = {}
    while True:
        for key, _ in selector.select():
            if key.data == "stdin" and not os.read(sys.stdin.fileno(), 4096):
                sys.exit(0)  # the test process is gone
            if key.data == "reap":
                while os.read(wake_r, 4096) == 4096:
                    pass
                reap(children)
            if key.data != "accept":
                continue
            conn, _ = listener.accept()
            fds, request = read_request(conn)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: leave the loop with its request
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                selector.close()
                for fd in (wake_r, wake_w):
                    os.close(fd)
                for other in (listener, conn, *children.values()):
                    other.close()
                return fds, request
            for fd in fds:
                os.close(fd)
            conn.sendall(f"{pid}\n".encode())
            children[pid] = conn
            reap(children)  # in case it ended before it was registered


def reap(children: dict[int, socket.socket]) -> None:
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            # OSError: the test side stopped waiting (a timeout), nothing to tell.
            with contextlib.suppress(OSError):
                conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            conn.close()


def become(fds: list[int], request: dict[str, Any]) -> None:
    """Turns this forked child into ``python -m chatferry ARGS`` (minus the imports)."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()  # as ``python -m`` sets it
    sys.argv = ["-m", *request["args"]]  # runpy puts the module's path first, as -m does


def main() -> None:
    socket_path = sys.argv[2]
    preload()
    tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["1"]
    if len(tasks) != 1:  # forking a process with threads is not safe
        sys.exit(f"warm: the preloaded interpreter runs {len(tasks)} threads; refusing")
    # What is imported stays for good: the children's collections (and their shutdown,
    # which is most of a short command's time) skip it, and its pages stay shared.
    gc.collect()
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path + ".tmp")
    listener.listen(16)
    os.rename(socket_path + ".tmp", socket_path)  # ready: the path appears once bound
    fds, request = serve(listener)
    become(fds, request)
    runpy.run_module("chatferry", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
