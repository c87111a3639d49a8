"""Comments spooled to a file per window while the export streams, then sorted a window
at a time: memory holds one window, never the whole export."""

from __future__ import annotations

import shutil
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from chatferry.convert.ids import window_of

OPEN_FILES = 64
SortKey = tuple[int, int, int, str]  # (placed at, 1 for a reply, created at, unique id)


class Spool:
    def __init__(self, directory: Path) -> None:
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        self.directory = directory
        self.windows: set[int] = set()
        self._open: OrderedDict[int, IO[bytes]] = OrderedDict()

    def add(self, key: SortKey, row: dict[str, Any]) -> None:
        window = window_of(key[0])
        handle = self._open.get(window)
        if handle is None:
            if len(self._open) >= OPEN_FILES:
                self._open.popitem(last=False)[1].close()
            handle = self._path(window).open("ab")
            self._open[window] = handle
            self.windows.add(window)
        else:
            self._open.move_to_end(window)
        head = orjson.dumps([*key, row["RoomUniqueId"]])
        handle.write(head + b"\t" + orjson.dumps(row) + b"\n")  # JSON never holds a raw tab

    def _path(self, window: int) -> Path:
        return self.directory / f"{window}.jsonl"

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()

    def rows(self, window: int) -> Iterator[tuple[str, str, bytes]]:
        """The window's (UniqueId, RoomUniqueId, encoded row) in order: by placement time,
        roots before replies, then creation time and id. Rows stay encoded (a window of
        rows as bytes, not objects); an id seen twice gets a ``~n`` suffix."""
        self.close()
        path = self._path(window)
        if not path.is_file():
            return
        entries = []
        for line in path.read_bytes().splitlines():
            head, _, row = line.partition(b"\t")
            entries.append((tuple(orjson.loads(head)), row))
        entries.sort(key=lambda entry: entry[0])
        seen: dict[str, int] = {}
        for key, row in entries:
            unique_id, room = key[3], key[4]
            count = seen[unique_id] = seen.get(unique_id, 0) + 1
            if count > 1:
                unique_id = f"{unique_id}~{count}"
                row = orjson.dumps({**orjson.loads(row), "UniqueId": unique_id})
            yield unique_id, room, row

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
