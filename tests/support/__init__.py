"""Fixtures and helpers shared by every test module, loaded by ``tests/conftest.py``.

- ``db``: the database each test runs on (SQLite and PostgreSQL), its settings, runtime.
- ``waiting``: ``wait_for`` and ``wait_final`` (an export's or import's final record).
- ``apps``: apps (``new_app``) and hand-made rows (users, rooms, comments).
- ``servers``: the in-process ``client``, real ``chatferry`` processes, the CLI.
- ``warm``: CLI commands, servers and workers as real processes forked from an
  interpreter that has imported chatferry once (``warm_zygote``), instead of a fresh
  ``python -m chatferry`` each.
- ``http``: API paths and the error-envelope check.
- ``exports`` / ``imports``: creating, waiting for and reading exports and imports.
- ``curl``: the real ``curl`` binary and the spec's curl examples.
- ``s3``: a real S3-compatible server (moto) on loopback.
"""
