"""``OPTIONS`` on any route's path: 204 with ``Allow`` listing every method of the path.

A pure ASGI middleware in front of the routes (behind the edge, which adds the security
headers and counts the request under the route's template). The table of paths and
their methods is built from the app's routes on the first ``OPTIONS``; a path that no
route has goes on to the router's 404.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class PathMethods:
    path: str  # the route template (what the edge's metrics count it under)
    pattern: re.Pattern[str]
    methods: frozenset[str]


def path_table(routes: Iterable[BaseRoute]) -> list[PathMethods]:
    """Every route template with the union of its routes' methods, plus OPTIONS."""
    methods: dict[str, set[str]] = {}
    for context in iter_route_contexts(list(routes)):
        if context.path and context.methods:  # not a mount (the console's files)
            methods.setdefault(context.path, set()).update(context.methods)
    return [
        PathMethods(path, compile_path(path)[0], frozenset(found | {"OPTIONS"}))
        for path, found in methods.items()
    ]


def allowed(table: list[PathMethods], path: str) -> PathMethods | None:
    """The first template that matches the path, with every method its routes have."""
    matches = [entry for entry in table if entry.pattern.match(path)]
    if not matches:
        return None
    methods = frozenset().union(*(entry.methods for entry in matches))
    return PathMethods(matches[0].path, matches[0].pattern, methods)


class OptionsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._table: list[PathMethods] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        if self._table is None:
            self._table = path_table(scope["app"].routes)
        found = allowed(self._table, scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = found  # the edge counts it under found.path
        allow = ", ".join(sorted(found.methods))
        headers = [(b"allow", allow.encode()), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
