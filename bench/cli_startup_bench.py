"""Start-up benchmark: how long ``chatferry`` takes before it does anything.

Run: ``.venv/bin/python bench/cli_startup_bench.py [--repeat 5] [--report-only] [--small]``

Times (best of N, wall clock, a fresh interpreter each time) ``chatferry --help``,
``chatferry export create --help``, and two client commands that run to the end without
a server: ``chatferry config`` (connection from the environment) and ``chatferry verify``
of a small backup. Baselines from the same run: ``python -c pass`` and ``python -c
"import typer, rich.console"`` (the framework every command needs). Target: every command
under 0.5 s. Then the slowest modules ``chatferry --help`` imports (``-X importtime``), to
show it imports no part of the server (SQLAlchemy, FastAPI, storage, Argon2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import argument_parser, print_header

TARGET = 0.5
IMPORT_FRAMEWORK = "import typer, rich.console"


def _best(command: list[str], env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.monotonic()
        subprocess.run(command, env=env, capture_output=True, check=False)
        times.append(time.monotonic() - started)
    return min(times)


def _tiny_backup(directory: Path) -> Path:
    directory.mkdir()
    (directory / "users").mkdir()
    data = b'[\n{"Email": "a@example.com", "AuthenticationToken": "t"}\n]\n'
    (directory / "users" / "2024-01-01_2024-01-30.json").write_bytes(data)
    import hashlib

    part = {"type": "users", "start_date": "2024-01-01", "end_date": "2024-01-30", "rows": 1,
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "file": "users/2024-01-01_2024-01-30.json"}  # fmt: skip
    manifest = {"server": "http://127.0.0.1:1", "app_id": "a", "parts": [part]}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def _slowest_imports(env: dict[str, str]) -> list[tuple[int, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "chatferry", "--help"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("   "):
            rows.append((int(parts[1]), parts[2].strip()))
    return sorted(rows, reverse=True)[:8]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--report-only", action="store_true", help="exit 0 over the target (a loaded CI box)"
    )
    parser.add_argument("--small", action="store_true", help="--repeat 3 --report-only (CI)")
    args = parser.parse_args()
    if args.small:
        args.repeat, args.report_only = 3, True
    print_header("cli_startup_bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATFERRY_", "QISCUS_"))}
    env |= {"CHATFERRY_SERVER": "http://127.0.0.1:9", "QISCUS_SDK_APP_ID": "a",
            "QISCUS_SDK_SECRET": "s"}  # fmt: skip
    py = [sys.executable]
    cf = [sys.executable, "-m", "chatferry"]
    with tempfile.TemporaryDirectory() as tmp:
        backup = _tiny_backup(Path(tmp) / "backup")
        env["XDG_CONFIG_HOME"] = tmp
        rows = [
            ("baseline: python -c pass", [*py, "-c", "pass"], False),
            (
                "baseline: import typer, rich.console",
                [*py, "-c", "import typer, rich.console"],
                False,
            ),
            ("chatferry --help", [*cf, "--help"], True),
            ("chatferry export create --help", [*cf, "export", "create", "--help"], True),
            ("chatferry config", [*cf, "config"], True),
            ("chatferry verify (1 part)", [*cf, "verify", str(backup)], True),
        ]
        worst = 0.0
        for label, command, judged in rows:
            seconds = _best(command, env, args.repeat)
            worst = max(worst, seconds) if judged else worst
            print(f"{label:45} {seconds * 1000:7.0f} ms")
    verdict = "ok" if worst < TARGET else "OVER TARGET"
    print(f"slowest command {worst * 1000:.0f} ms (target < {TARGET * 1000:.0f} ms: {verdict})")
    print("slowest top-level imports of 'chatferry --help' (cumulative):")
    for micros, module in _slowest_imports(env):
        print(f"  {micros / 1000:7.1f} ms  {module}")
    sys.exit(0 if worst < TARGET or args.report_only else 1)


if __name__ == "__main__":
    main()
