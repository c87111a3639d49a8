"""A backup of one app restores into an empty app and backs up again to the same files."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import select

from chatferry.db.engine import transaction
from chatferry.db.models import App, Comment
from chatferry.demo.generate import DemoSpec, generate
from chatferry.imports.passwords import verify_password
from chatferry.runtime import Runtime
from support.apps import NewApp
from support.imports import assert_finished, counts, export_file, run_import


def _fill(runtime: Runtime, app_id: str) -> dict[str, int]:
    with transaction(runtime.sessions) as session:
        pk = session.scalar(select(App.id).where(App.app_id == app_id))
        assert pk is not None
        return generate(session, pk, DemoSpec(users=25, rooms=12, comments=400, days=6, seed=7))


def _without_reply_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        payload = row["Payload"]
        if row["Type"] == "reply":
            payload = {k: v for k, v in payload.items() if k != "replied_comment_id"}
        out.append({**row, "Payload": payload})
    return out


def _reply_targets(rt: Runtime, app_id: str) -> dict[str, str]:
    """Each reply's UniqueId -> the UniqueId of the comment its payload's id names."""
    with transaction(rt.sessions) as session:
        pk = session.scalar(select(App.id).where(App.app_id == app_id))
        comments = list(session.scalars(select(Comment).where(Comment.app_pk == pk)))
    by_id = {c.id: c.unique_id for c in comments}
    return {
        c.unique_id: by_id[orjson.loads(c.payload or "null")["replied_comment_id"]]
        for c in comments
        if c.type == "reply"
    }


def test_export_import_export_round_trip(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    source, target = new_app("A"), new_app("B")
    made = _fill(runtime, source.app_id)
    files = {r: export_file(client, source, r) for r in ("users", "rooms", "comments")}
    for resource in ("users", "rooms", "comments"):
        rows = orjson.loads(files[resource])
        assert len(rows) == made[resource]
        record = run_import(client, target, resource, files[resource])
        assert_finished(record, made[resource])
    assert counts(runtime, target.app_id) == made

    again = {r: orjson.loads(export_file(client, target, r)) for r in files}
    before = {r: orjson.loads(files[r]) for r in files}
    assert again["users"] == before["users"]
    assert again["rooms"] == before["rooms"]
    assert _without_reply_ids(again["comments"]) == _without_reply_ids(before["comments"])
    replies = [c for c in again["comments"] if c["Type"] == "reply"]
    assert replies, "the demo data should contain replies"
    # The ids differ between the apps, but each reply still names the same parent.
    assert _reply_targets(runtime, target.app_id) == _reply_targets(runtime, source.app_id)
    for reply in replies:
        assert (
            reply["ParentCommentUniqueId"]
            == _reply_targets(runtime, target.app_id)[reply["UniqueId"]]
        )
    for row in again["users"]:
        assert verify_password(row["PasswordHash"], "password")
