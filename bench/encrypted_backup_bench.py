"""Encrypted backup benchmark: ``backup --encrypt-to`` against a plain backup of the same
app in the same run, and the memory of encrypting and decrypting a 1 GiB stream.

Run: ``.venv/bin/python bench/encrypted_backup_bench.py [--comments 100000] [--days 90]
[--repeat 3] [--stream-mib 1024] [--small] [--keep]``

A real ``chatferry serve`` (SQLite, local files, default limits) holds one app filled by
``chatferry demo-data``. ``chatferry backup`` (a real client process) backs it up from its
first day to yesterday, plain and encrypted to a fresh age key (``chatferry keygen``),
alternately, ``--repeat`` times each, each into a new directory; the figures are the
medians of the wall times (client start-up included). Target: encrypted / plain <= 1.2.

Memory: a fresh Python process streams ``--stream-mib`` MiB through the client's
``encrypting_writer`` into an age file, another decrypts it with ``decrypt_into`` into a
sha256 (checked against the plaintext's); each reports its peak resident memory
(``ru_maxrss``, the interpreter and pyrage included). Target: < 100 MB each.

``--small`` runs 5,000 comments over 20 days, once each, and a 64 MiB stream: it checks
that the bench works and prints its figures; the targets are judged at full size only.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib import (
    Summary,
    argument_parser,
    chatferry,
    chatferry_env,
    client_env,
    demo_app,
    mb,
    print_header,
    serve,
)

RATIO_TARGET = 1.2
MEMORY_TARGET_MB = 100
BLOCK = 1024 * 1024


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _backup(env: dict[str, str], out: Path, days: int, *extra: str) -> tuple[float, float]:
    """The backup's wall time and the client process's CPU time (user + system)."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    since = yesterday - timedelta(days=days + 1)
    started, cpu = time.monotonic(), _cpu()
    chatferry("backup", "--out", str(out), "--since", since.isoformat(),
              "--until", yesterday.isoformat(), *extra, env=env)  # fmt: skip
    return time.monotonic() - started, _cpu() - cpu


Timed = list[tuple[float, float]]


def _backups(
    env: dict[str, str], directory: Path, days: int, repeat: int
) -> tuple[Timed, Timed, int]:
    """Plain and encrypted backups, alternately; their wall times and the backup's bytes."""
    recipient = chatferry("keygen", "--out", str(directory / "key.txt"), env=env).strip()
    _backup(env, directory / "warm-up", 1)  # the server's first exports, not measured
    plain: Timed = []
    encrypted: Timed = []
    for round_ in range(repeat):
        out = directory / f"encrypted-{round_}"
        if round_ % 2:  # each kind goes first every other round
            encrypted.append(_backup(env, out, days, "--encrypt-to", recipient))
        plain.append(_backup(env, directory / f"plain-{round_}", days))
        if not round_ % 2:
            encrypted.append(_backup(env, out, days, "--encrypt-to", recipient))
        (p_wall, p_cpu), (e_wall, e_cpu) = plain[-1], encrypted[-1]
        print(f"round {round_ + 1}: plain {p_wall:.2f} s (client CPU {p_cpu:.2f} s), "
              f"encrypted {e_wall:.2f} s (client CPU {e_cpu:.2f} s)")  # fmt: skip
    size = sum(p.stat().st_size for p in (directory / "encrypted-0").rglob("*.age"))
    return plain, encrypted, size


# -- the 1 GiB stream, in fresh processes ----------------------------------------------


def _stream_child(mode: str, path: Path, key: Path, mib: int) -> None:
    """Runs in a fresh interpreter: prints ``<peak KiB> <seconds> <sha256>``."""
    from chatferry.client import crypto

    started = time.monotonic()
    digest = hashlib.sha256()
    if mode == "encrypt":
        recipients = crypto.recipients_of([key.read_text().split("public key: ")[1].split()[0]])
        block = os.urandom(BLOCK)
        with crypto.encrypting_writer(path, recipients) as writer:
            for _ in range(mib):
                digest.update(block)
                writer.write(block)
    else:
        crypto.decrypt_into(path, crypto.load_identities(key), digest.update)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(peak, round(time.monotonic() - started, 3), digest.hexdigest())


def _stream(mode: str, path: Path, key: Path, mib: int) -> tuple[int, float, str]:
    command = [sys.executable, __file__, "--child", mode, str(path), str(key), str(mib)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {mode} process failed:\n{done.stderr}")
    peak, seconds, sha256 = done.stdout.split()
    return int(peak), float(seconds), sha256


def _memory(directory: Path, mib: int, summary: Summary) -> None:
    path, key = directory / "stream.age", directory / "key.txt"
    enc_peak, enc_seconds, plain_sha = _stream("encrypt", path, key, mib)
    size = path.stat().st_size
    dec_peak, dec_seconds, dec_sha = _stream("decrypt", path, key, mib)
    path.unlink()
    if dec_sha != plain_sha:
        raise SystemExit("the decrypted stream differs from the plaintext")
    print(f"stream of {mib} MiB: encrypted in {enc_seconds:.2f} s ({size} bytes), peak "
          f"{mb(enc_peak)}; decrypted in {dec_seconds:.2f} s, peak {mb(dec_peak)}; "
          "the same sha256")  # fmt: skip
    target = f"< {MEMORY_TARGET_MB} MB"
    for name, peak in (("encrypt", enc_peak), ("decrypt", dec_peak)):
        summary.add(f"peak memory, {name} {mib} MiB", mb(peak), "", "", target,
                    peak / 1024 < MEMORY_TARGET_MB)  # fmt: skip


def _wall_times(
    env: dict[str, str], directory: Path, size: tuple[int, int, int], summary: Summary
) -> None:
    comments, days, repeat = size
    demo_app(env, comments, days)
    with serve(env, directory / "serve.log") as server:
        client = client_env(env, server.url)
        plain, encrypted, total = _backups(client, directory, days, repeat)
    wall = [statistics.median(t[0] for t in runs) for runs in (encrypted, plain)]
    cpu = [statistics.median(t[1] for t in runs) for runs in (encrypted, plain)]
    summary.note("encrypted backup size", f"{total / 1e6:.1f} MB")
    summary.add("backup wall time, encrypted (median)", f"{wall[0]:.2f} s",
                f"{wall[1]:.2f} s plain", f"{wall[0] / wall[1]:.2f}",
                f"<= {RATIO_TARGET}", wall[0] / wall[1] <= RATIO_TARGET)  # fmt: skip
    summary.note("client CPU time, encrypted (median)", f"{cpu[0]:.2f} s",
                 f"{cpu[1]:.2f} s plain", f"{cpu[0] / cpu[1]:.2f}")  # fmt: skip


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _stream_child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argument_parser(__doc__)
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=3, help="backups of each kind")
    parser.add_argument("--stream-mib", type=int, default=1024, help="the stream's size")
    parser.add_argument("--small", action="store_true", help="5,000 comments, 1 round, 64 MiB")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--stream-only", action="store_true", help="only the memory figures")
    args = parser.parse_args()
    comments, days, repeat, mib = (args.comments, args.days, args.repeat, args.stream_mib)
    if args.small:
        comments, days, repeat, mib = 5_000, 20, 1, 64
    print_header("encrypted backup: wall time against a plain backup, and stream memory")
    directory = Path(tempfile.mkdtemp(prefix="chatferry-encrypted-bench-"))
    env = chatferry_env(directory / "data", None)
    summary = Summary("encrypted backup", judged=not args.small)
    try:
        if args.stream_only:
            chatferry("keygen", "--out", str(directory / "key.txt"), env=env)
        else:
            _wall_times(env, directory, (comments, days, repeat), summary)
        _memory(directory, mib, summary)
    finally:
        if args.keep:
            print(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
        summary.print()
    judged = [row[5] for row in summary.rows if row[5] in ("PASS", "FAIL")]
    sys.exit(1 if "FAIL" in judged else 0)


if __name__ == "__main__":
    main()
