"""The real ``curl`` binary, and the spec's curl examples run as they are written."""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

SPEC_HOST = "https://api.qiscus.com"


@dataclass(frozen=True)
class CurlResult:
    status: int
    headers: dict[str, str]  # lower-cased names, last value wins
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def spec_curl_args(
    example: str, base_url: str, replacements: dict[str, str] | None = None
) -> list[str]:
    """A curl example as the spec prints it, split like a shell would, host replaced."""
    text = example.strip().replace(SPEC_HOST, base_url)
    for old, new in (replacements or {}).items():
        text = text.replace(old, new)
    args = shlex.split(text.replace("\\\n", " "))
    assert args[0] == "curl", args
    return args


def run_curl(args: list[str], tmp_dir: Path) -> CurlResult:
    """Runs the real ``curl`` with ``args`` (a full command line starting with ``curl``).

    Only output options are added: the request itself is exactly what ``args`` says.
    """
    assert args[0] == "curl"
    tag = uuid.uuid4().hex
    head_path, body_path = tmp_dir / f"curl-{tag}.head", tmp_dir / f"curl-{tag}.body"
    done = subprocess.run(
        [
            *args,
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--dump-header",
            str(head_path),
            "--output",
            str(body_path),
            "--write-out",
            "%{http_code}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"curl failed ({done.returncode}): {done.stderr}"
    headers: dict[str, str] = {}
    for line in head_path.read_text("latin-1").splitlines()[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return CurlResult(int(done.stdout.strip()), headers, body_path.read_bytes())


def content_disposition_filename(value: str) -> str:
    """The file name of a Content-Disposition header (RFC 6266 / 5987 ``filename*``)."""
    parts = [p.strip() for p in value.split(";")]
    assert parts[0].lower() == "attachment", value
    params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    if "filename*" in params:
        charset, _lang, encoded = params["filename*"].split("'", 2)
        assert charset.lower() == "utf-8", value
        return unquote(encoded, encoding="utf-8")
    return params["filename"].strip('"')
