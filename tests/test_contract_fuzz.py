"""schemathesis against a real ``chatferry serve``: every operation of /openapi.json,
fuzzed with valid credentials, must answer as the document says.

The run is schemathesis's own CLI (all its phases: the spec's examples, boundary
"coverage" cases, random fuzzing, and stateful sequences that create records and then
read, change and delete them by their ids) with the checks below, bounded by the number
of examples per operation. The seed is fixed so that CI is repeatable; set
CHATFERRY_FUZZ_SEED (and CHATFERRY_FUZZ_MAX_EXAMPLES) to explore further by hand.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support.apps import NewApp
from support.servers import StartServer

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
]
MAX_EXAMPLES = os.environ.get("CHATFERRY_FUZZ_MAX_EXAMPLES", "100")
SEED = os.environ.get("CHATFERRY_FUZZ_SEED", "20260707")


def schemathesis_run(base_url: str, headers: dict[str, str], work_dir: Path) -> str:
    """Runs ``schemathesis run`` against the server; returns its report (exit 0 asserted)."""
    header_args = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    done = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "run", f"{base_url}/openapi.json"),
            *("--checks", ",".join(CHECKS)),
            *header_args,
            # One worker: with two threads CPython 3.11 can fail in its AST constructor
            # ("AST constructor recursion depth mismatch", python/cpython gh-106905).
            *("--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1"),
            *("--request-timeout", "20", "--generation-database", "none", "--no-color"),
        ],
        cwd=work_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = done.stdout + done.stderr
    (work_dir / "schemathesis.log").write_text(report)  # printed after the test
    assert done.returncode == 0, report[-15000:]
    return report


def test_every_operation_survives_the_fuzzer(
    start_server: StartServer, new_app: NewApp, tmp_path: Path
) -> None:
    # A positive UTC offset: dates near the ends of the calendar overflow there first.
    creds = new_app("Fuzzed", "Asia/Tokyo")
    # A ?wait= holds a request at most 1 s here (the fuzzer sends the documented wait=30
    # on exports that never end while it runs).
    server = start_server({"CHATFERRY_WAIT_MAX_SECONDS": "1"})
    report = schemathesis_run(server.base_url, creds.headers, tmp_path)
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", report)
    assert selected, report[-3000:]
    chosen, total, tested = map(int, selected.groups())
    assert chosen == total == tested >= 18, "every operation is fuzzed"
