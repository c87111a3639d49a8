"""Import memory benchmark: peak memory of the import job on hostile files.

Run: ``.venv/bin/python bench/import_memory_bench.py [--postgres URL] [--small]``
(``--small``: a 256 KB file and 10,000 rows at the cap, for CI; judges nothing)

Each measurement runs in a fresh Python process, which sets everything up (runtime,
database, app, stored file), resets its peak resident memory (``5`` into
``/proc/self/clear_refs``, so ``VmHWM`` starts again from the current ``VmRSS``), does
the one thing measured and reports ``VmHWM`` (peak) and ``VmRSS`` (kept) as growth over
the resident memory just before it.

1. Baseline: ``orjson.loads`` of a 4 MB file of ``[{},{},...]`` (about 1.4 million
   empty objects), the least any import of that file can cost.
2. The same file through the real import job (``ImportJobHandler.run``: read from the
   file store, parse, check, record the failure), users. Target: peak growth under
   150 MB (issue 7: 886 MB before the row cap and the bounded problem log).
3. A file at the row cap (``CHATFERRY_IMPORT_MAX_ROWS``, 100,000 ``{}`` comments), which
   does go through every per-row check: four problems a row, 400,000 in all, of which
   the first 1,000 are kept.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from benchlib import argument_parser, print_header, verdict

TARGET_MB = 150
FILE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_ROWS = 100_000


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> int:
    """Resets VmHWM to the current VmRSS; returns that, in KB."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status_kb("VmRSS")


def empty_objects_file(size: int) -> bytes:
    """``[{},{},...]`` of at most ``size`` bytes."""
    rows = (size - 2 + 1) // 3
    return b"[" + b"{}," * (rows - 1) + b"{}]"


def _growth(before_kb: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "peak_mb": (_status_kb("VmHWM") - before_kb) / 1024,
        "kept_mb": (_status_kb("VmRSS") - before_kb) / 1024,
        **extra,
    }


def child_baseline(path: Path) -> dict[str, Any]:
    import orjson

    data = path.read_bytes()
    before = _reset_peak()
    rows = len(orjson.loads(data))
    return _growth(before, {"rows": rows})


def _prepare_import(settings: Any, resource: str, data: bytes) -> tuple[Any, int]:
    from chatferry.apps.service import app_context, create_app
    from chatferry.db.engine import transaction
    from chatferry.imports.service import StoredUpload, create_import, storage_key_for
    from chatferry.runtime import build_runtime

    rt = build_runtime(settings)
    with transaction(rt.sessions) as session:
        app, _ = create_app(session, rt.secrets, "memory bench")
        context = app_context(app, rt.settings)
    unique_id = str(uuid.uuid4())
    key = storage_key_for(context.app_id, unique_id)
    rt.store.put_stream(key, [data])
    upload = StoredUpload(unique_id, resource, "bench.json", len(data), False, key)
    with transaction(rt.sessions) as session:
        import_id = create_import(session, rt.settings, context, upload).id
    return rt, import_id


def child_job(path: Path, resource: str, database_url: str, data_dir: Path) -> dict[str, Any]:
    from chatferry.db.engine import transaction
    from chatferry.db.models import Import
    from chatferry.imports.job import ImportJobHandler
    from chatferry.jobs.queue import ClaimedJob
    from chatferry.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=database_url)
    rt, import_id = _prepare_import(settings, resource, path.read_bytes())
    handler = ImportJobHandler()
    before = _reset_peak()
    handler.run(rt, ClaimedJob(0, "import", import_id, 1, 3, "bench"))
    growth = _growth(before, {})
    with transaction(rt.sessions) as session:
        record = session.get(Import, import_id)
        assert record is not None
        data = json.loads(record.error_data) if record.error_data else []
        growth.update(status=record.status, message=record.error_message, listed=len(data))
    rt.close()
    return growth


def _run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


_SCHEMAS: list[str] = []


def _database_url(postgres: str | None, root: Path, name: str) -> str:
    """SQLite under ``root/name``, or a new schema in the PostgreSQL database."""
    if postgres is None:
        return f"sqlite:///{root / name / 'chatferry.db'}"
    import psycopg

    schema = f"bench_mem_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    _SCHEMAS.append(schema)
    separator = "&" if "?" in postgres else "?"
    return f"{postgres}{separator}options=-csearch_path%3D{schema}"


def _drop_schemas(postgres: str | None) -> None:
    if postgres is None:
        return
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as conn:
        for schema in _SCHEMAS:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _show(name: str, result: dict[str, Any]) -> None:
    print(f"{name:<44} peak +{result['peak_mb']:7.1f} MB   kept +{result['kept_mb']:6.1f} MB")
    if "message" in result:
        message = result["message"]
        print(f"{'':<44} {result['status']}: {message[:100]}{'…' if len(message) > 100 else ''}")
        print(f"{'':<44} problems listed in errors.Data: {result['listed']}")


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--postgres", help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--small", action="store_true", help="256 KB and 10,000 rows")
    args = parser.parse_args()
    print_header("import_memory_bench")
    try:
        if args.small:
            _measure(args.postgres, 256 * 1024, 10_000, judged=False)
        else:
            _measure(args.postgres, FILE_BYTES, DEFAULT_MAX_ROWS, judged=True)
    finally:
        _drop_schemas(args.postgres)


def _measure(postgres: str | None, file_bytes: int, cap_rows: int, judged: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="chatferry-membench-") as tmp:
        root = Path(tmp)
        hostile = root / "empty-objects.json"
        hostile.write_bytes(empty_objects_file(file_bytes))
        at_cap = root / "at-cap.json"
        at_cap.write_bytes(empty_objects_file(cap_rows * 3 + 1))
        base = _run_child("baseline", str(hostile))
        print(f"file: {hostile.stat().st_size:,} bytes, {base['rows']:,} rows of {{}}")
        _show("baseline: orjson.loads of the file", base)
        job = _run_child(
            "job", str(hostile), "users", _database_url(postgres, root, "a"), str(root / "a")
        )
        _show(f"import job, users, {file_bytes / 1e6:.1f} MB of {{}}", job)
        capped = _run_child(
            "job", str(at_cap), "comments", _database_url(postgres, root, "b"), str(root / "b")
        )
        _show(f"import job, comments, {cap_rows:,} rows of {{}}", capped)
        ratio = job["peak_mb"] / base["peak_mb"] if base["peak_mb"] > 0 else float("inf")
        print(
            f"file: job peak / baseline peak = {ratio:.2f}; target peak growth < {TARGET_MB} MB "
            f"(4 MB file): {verdict(job['peak_mb'] < TARGET_MB, judged)}"
        )


def _child_main(argv: list[str]) -> None:
    kind, path = argv[0], Path(argv[1])
    if kind == "baseline":
        result = child_baseline(path)
    else:
        result = child_job(path, argv[2], argv[3], Path(argv[4]))
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child_main(sys.argv[2:])
    else:
        main()
