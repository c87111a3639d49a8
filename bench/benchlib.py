"""What the bench scripts share: the machine's description, a ``chatferry serve``
subprocess on a free loopback port, fresh PostgreSQL schemas, the memory of a process
tree, and the verdict and summary lines.

The scripts import it as ``benchlib`` (``python bench/x.py`` puts ``bench/`` on the path).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

API = "/api/v2.1/rest"

# Bytecode: an installed chatferry has its modules compiled (pip does it at install). Where
# PYTHONDONTWRITEBYTECODE is set (as on this project's machines), every chatferry process a
# bench starts would compile chatferry from source first (about 0.1 s of each client's
# start-up here); their bytecode goes to a cache outside the source tree instead, as in
# the tests (tests/conftest.py).
if sys.dont_write_bytecode and not sys.pycache_prefix:
    sys.pycache_prefix = os.path.join(tempfile.gettempdir(), f"chatferry-pycache-{os.getuid()}")
    sys.dont_write_bytecode = False
    os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
SERVER_START_SECONDS = 90.0


# ---------------------------------------------------------------- the machine


def _proc_value(path: str, key: str) -> str:
    with suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return "?"


def machine() -> str:
    """CPU model, cores, RAM, OS and Python, from /proc (one line)."""
    memory_kb = _proc_value("/proc/meminfo", "MemTotal").split()[0]
    memory = f"{int(memory_kb) / 1024 / 1024:.1f} GiB" if memory_kb.isdigit() else "?"
    return (
        f"{_proc_value('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores, {memory} RAM, "
        f"{platform.system()} {platform.release()}, Python {sys.version.split()[0]}"
    )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (``/proc/loadavg``)."""
    with suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def command_line() -> str:
    """How this bench was started, with the interpreter's path relative to here."""
    python = Path(sys.executable)
    with suppress(ValueError):
        python = python.relative_to(Path.cwd())
    return " ".join([str(python), *sys.argv])


def print_header(title: str) -> None:
    """The first lines of every bench's output: what, where, when, how loaded."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# {title}")
    print(f"command: {command_line()}")
    print(f"machine: {machine()}")
    print(f"date: {now}; load average at start: {load_average()}")


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A bench's parser: its docstring's first paragraph as the description, defaults
    shown in --help."""
    first = " ".join((doc or "").split("\n\n")[0].split())
    return argparse.ArgumentParser(
        description=first, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )


def run_flags(parser: argparse.ArgumentParser, small: str, profile: str | None = None) -> None:
    """The flags every bench has: ``--small`` (what it then runs), ``--keep`` and, if the
    bench can profile, ``--profile`` (what it then profiles, under py-spy)."""
    parser.add_argument("--small", action="store_true", help=small)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    if profile is not None:
        again = f"then {profile} again under py-spy (pip install py-spy)"
        parser.add_argument("--profile", action="store_true", help=again)


def run_main(
    title: str,
    parse_args: Callable[[], argparse.Namespace],
    body: Callable[[argparse.Namespace, Path, Summary], None],
) -> None:
    """A bench's main: its arguments, the header, a temporary directory for ``body``
    (kept with ``--keep``), then the summary table and how long it all took."""
    args = parse_args()
    print_header(title)
    root = Path(tempfile.mkdtemp(prefix=f"chatferry-{title.replace('_', '-')}-"))
    started = time.perf_counter()
    summary = Summary(title, judged=not args.small)
    try:
        body(args, root, summary)
        summary.print()
        print(f"bench took {time.perf_counter() - started:.0f} s")
    finally:
        if getattr(args, "keep", False):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- verdicts and figures


def verdict(ok: bool, judged: bool = True) -> str:
    """PASS or FAIL; a small run reports its figures but is never judged."""
    if not judged:
        return "not judged (--small)"
    return "PASS" if ok else "FAIL"


def seconds_list(values: Iterable[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


@dataclass
class Summary:
    """The bench's figures as a markdown table, printed last (to paste into BENCHMARKS.md)."""

    title: str
    judged: bool
    rows: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)

    def add(
        self,
        figure: str,
        value: str,
        baseline: str,
        ratio: str,
        target: str,
        ok: bool,
        counted: bool = True,
    ) -> None:
        """A figure with a target; ``counted=False`` shows the verdict, out of the overall."""
        result = verdict(ok, self.judged)
        if not counted and self.judged:
            result = f"({result}, not counted)"
        self.rows.append((figure, value, baseline, ratio, target, result))

    def note(self, figure: str, value: str, baseline: str = "", ratio: str = "") -> None:
        """A figure shown for information, with no target."""
        self.rows.append((figure, value, baseline, ratio, "", ""))

    def print(self) -> None:
        print(f"\n## {self.title} (load average at the end: {load_average()})\n")
        print("| figure | measured | baseline | ratio | target | result |")
        print("| --- | --- | --- | --- | --- | --- |")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")
        outcome = [row[5] for row in self.rows if row[5] in ("PASS", "FAIL")]
        if not self.judged:
            print("\noverall: not judged (--small)")
        else:
            print(f"\noverall: {'PASS' if all(r == 'PASS' for r in outcome) else 'FAIL'}")


# ---------------------------------------------------------------- chatferry serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chatferry_env(data_dir: Path, database_url: str | None, **settings: object) -> dict[str, str]:
    """The environment of a chatferry process: this data dir and database, and settings
    given as ``name=value`` (``export_max_comments=10`` is CHATFERRY_EXPORT_MAX_COMMENTS)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHATFERRY_")}
    env["CHATFERRY_DATA_DIR"] = str(data_dir)
    if database_url:
        env["CHATFERRY_DATABASE_URL"] = database_url
    for name, value in settings.items():
        env[f"CHATFERRY_{name.upper()}"] = str(value)
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        if server.process.poll() is not None:
            raise SystemExit(f"chatferry serve exited:\n{server.log.read_text()[-5000:]}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"chatferry serve did not start:\n{server.log.read_text()[-5000:]}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM (after SIGCONT, in case the bench stopped it), then SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serve(env: dict[str, str], log: Path, *args: str) -> Iterator[Server]:
    """``chatferry serve`` on a free loopback port (embedded workers unless ``--no-worker``
    is among ``args``), until it answers /healthz; stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "chatferry", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), *args]
    with log.open("ab") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_healthy(server)
        yield server
    finally:
        stop_process(process)


def headers(app_id: str, secret: str) -> dict[str, str]:
    return {"QISCUS-SDK-APP-ID": app_id, "QISCUS-SDK-SECRET": secret}


# ---------------------------------------------------------------- PostgreSQL


def with_schema(url: str, schema: str) -> str:
    """The URL with every connection's search_path set to ``schema``."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def postgres_problem(url: str) -> str | None:
    """None if PostgreSQL answers at ``url``, else why not."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


@contextmanager
def fresh_schemas(url: str, count: int = 1) -> Iterator[list[str]]:
    """``count`` new schemas; yields URLs that use them, and drops them after."""
    import psycopg

    names = [f"bench_{uuid.uuid4().hex[:10]}" for _ in range(count)]
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield [with_schema(url, name) for name in names]
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@contextmanager
def postgres_schemas(url: str | None, count: int = 1) -> Iterator[list[str]]:
    """``count`` fresh schemas of the PostgreSQL at ``url`` (dropped after); none when
    ``url`` is None; a clear exit when it does not answer."""
    if url is None:
        yield []
        return
    problem = postgres_problem(url)
    if problem:
        raise SystemExit(f"PostgreSQL at {url}: {problem} (or run the bench without it)")
    with fresh_schemas(url, count) as urls:
        yield urls


def vacuum_analyze(url: str, tables: Iterable[str]) -> None:
    """Settles a freshly loaded schema (statistics, visibility map, hint bits), so the
    first measured run does not pay for it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {table}")


# ---------------------------------------------------------------- memory of a process tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server's job processes, if it has any)."""
    pids = [pid]
    for parent in pids:
        with suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                children = (task / "children").read_text().split()
                pids.extend(int(child) for child in children)
    return pids


def status_kb(pid: int, field_name: str) -> int:
    """A memory figure of ``/proc/<pid>/status`` (VmRSS, VmHWM) in KiB; 0 if gone."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> int:
    """Resets the peak resident memory (VmHWM) of the tree to its current VmRSS
    (``5`` into ``/proc/<pid>/clear_refs``); returns the tree's VmRSS in KiB."""
    for member in process_tree(pid):
        with suppress(OSError):
            Path(f"/proc/{member}/clear_refs").write_text("5")
    return sum(status_kb(member, "VmRSS") for member in process_tree(pid))


def peak_kb(pid: int) -> int:
    """The tree's peak resident memory since the last reset: the sum of each process's
    VmHWM (an upper bound when the tree has several processes)."""
    return sum(status_kb(member, "VmHWM") for member in process_tree(pid))


def mb(kib: float) -> str:
    return f"{kib / 1024:.1f} MB"


# ---------------------------------------------------------------- tools


def require_tool(name: str, package: str) -> str:
    """The path of a command-line tool the bench needs, or a clear exit."""
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} is not installed: apt-get install -y {package}")
    return path


def count_lines(path: Path) -> int:
    """Newlines in a file, read in blocks."""
    count = 0
    with path.open("rb") as source:
        while block := source.read(1 << 20):
            count += block.count(b"\n")
    return count


# ---------------------------------------------------------------- profiling


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return require_tool("py-spy", "py-spy (pip install py-spy)")


@contextmanager
def py_spy(pid: int, out: Path, rate: int = 500) -> Iterator[None]:
    """py-spy samples the process (and its children) while the block runs, and writes
    collapsed stacks (``--format raw``: one line a stack, per thread) to ``out``."""
    command = [_py_spy(), "record", "--pid", str(pid), "--subprocesses", "--threads"]
    command += ["--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking"]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # attached
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        _, errors = recorder.communicate(timeout=60)
        if not out.exists():
            print(f"  py-spy wrote nothing: {errors.decode(errors='replace')[-500:]}")


def _frame_name(frame: str) -> str:
    """``fetch (chatferry/exports/formats.py:412)`` -> ``fetch (chatferry/exports/formats.py)``."""
    name, _, where = frame.rpartition(" (")
    file = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{name} ({file})"


Stacks = dict[str, list[tuple[list[str], int]]]  # by thread: (frames, samples)

# Leaves of a thread that waits rather than works (py-spy --nonblocking counts some).
WAITING = ("Condition.wait (", "Queue.get (queue.py)", "EpollSelector.select (", "Event.wait (")


def _thread_name(heads: list[str]) -> str:
    """``process 12:"python -m ..."`` and ``thread (13): chatferry-worker-0`` ->
    ``pid 12 chatferry-worker-0``."""
    names = []
    for head in heads:
        if head.startswith("process "):
            names.append("pid " + head.split()[1].split(":")[0])
        else:
            names.append(head.rpartition("): ")[2] or head)
    return " ".join(names)


def read_stacks(raw: Path) -> Stacks:
    """py-spy's raw output by thread (its leading ``process ...``/``thread ...`` parts)."""
    by_thread: Stacks = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        parts = stack.split(";")
        heads = [p for p in parts if p.startswith(("process ", "thread "))]
        frames = [_frame_name(p) for p in parts if p not in heads]
        if frames and frames[-1].startswith(WAITING):
            continue
        by_thread.setdefault(_thread_name(heads), []).append((frames, int(count)))
    return by_thread


def _ranked(table: dict[str, int], total: int, limit: int) -> list[str]:
    ranked = sorted(table.items(), key=lambda item: -item[1])[:limit]
    return [f"  {count / total:6.1%}  {frame}" for frame, count in ranked]


def top_frames(raw: Path, limit: int = 15, all_threads: bool = False) -> list[str]:
    """Where the samples of the busiest thread (or of all threads) went: the top functions
    by own time and by time including callees, as lines to print."""
    by_thread = read_stacks(raw)
    totals = {t: sum(n for _, n in stacks) for t, stacks in by_thread.items()}
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:6]
    lines = ["samples by thread: " + ", ".join(f"{t} {n}" for t, n in ranked)]
    busiest = ranked[0][0]
    if all_threads:
        busiest = "all threads"
        by_thread[busiest] = [stack for stacks in list(by_thread.values()) for stack in stacks]
        totals[busiest] = sum(totals.values())
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    for frames, count in by_thread[busiest]:
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            if "chatferry/" in frame:
                inclusive[frame] = inclusive.get(frame, 0) + count
    tables = (("own time", own), ("time including callees, chatferry's own functions", inclusive))
    for title, table in tables:
        lines.append(f"{busiest}: top {limit} by {title} (of {totals[busiest]} samples)")
        lines += _ranked(table, totals[busiest], limit)
    return lines


# ---------------------------------------------------------------- the chatferry client

APP_ID, SECRET = "bench", "bench-secret-123"


def chatferry(
    *args: str, env: dict[str, str], allowed: tuple[int, ...] = (0,), profile: Path | None = None
) -> str:
    """Runs ``chatferry ARGS`` as a process; its stdout, or a clear exit if it failed.
    With ``profile``, under py-spy, its collapsed stacks written there (see top_frames)."""
    command = [sys.executable, "-m", "chatferry", *args]
    if profile is not None:
        spy = [_py_spy(), "record", "--rate", "250", "--format", "raw", "--output"]
        command = [*spy, str(profile), "--", *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in allowed:
        raise SystemExit(f"chatferry {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def timed_chatferry(
    *args: str, env: dict[str, str], allowed: tuple[int, ...] = (0,), profile: Path | None = None
) -> float:
    """The wall time of ``chatferry ARGS`` as a process (its start-up included)."""
    started = time.perf_counter()
    chatferry(*args, env=env, allowed=allowed, profile=profile)
    return time.perf_counter() - started


def client_env(env: dict[str, str], url: str, app_id: str = APP_ID) -> dict[str, str]:
    """The environment of a ``chatferry`` client of the app ``app_id`` at ``url``."""
    return {**env, "CHATFERRY_SERVER": url, "QISCUS_SDK_APP_ID": app_id,
            "QISCUS_SDK_SECRET": SECRET}  # fmt: skip


def create_app(env: dict[str, str], app_id: str) -> None:
    """A new app (``chatferry apps create``, on the server's data) with the bench's secret."""
    chatferry("apps", "create", "--name", app_id, "--app-id", app_id, "--secret", SECRET, env=env)


def demo_app(
    env: dict[str, str],
    comments: int,
    days: int,
    app_id: str = APP_ID,
    users: int | None = None,
    extra: tuple[str, ...] = (),
) -> None:
    """A new app filled by ``chatferry demo-data``: N comments over D days, ``users`` users
    (by default in proportion to the comments) and half as many rooms."""
    create_app(env, app_id)
    users = users or max(200, min(2000, comments // 50))
    spec = ("--users", str(users), "--rooms", str(users // 2), "--comments", str(comments))
    started = time.perf_counter()
    chatferry("demo-data", "--app-id", app_id, *spec, "--days", str(days), "--seed", "1",
              *extra, env=env)  # fmt: skip
    print(f"data ({app_id}): {users} users, {users // 2} rooms, {comments} comments over "
          f"{days} days ({time.perf_counter() - started:.1f} s to generate)")  # fmt: skip


def backup_days(days: int) -> tuple[str, str]:
    """The first and last day (ISO) that hold all of demo data over ``days`` days but the
    day in progress: from the day before its first to yesterday."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    return (yesterday - timedelta(days=days)).isoformat(), yesterday.isoformat()
