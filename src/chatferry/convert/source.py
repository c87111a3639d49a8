"""An export as named members, read one at a time: a ``.zip`` or a directory (or one file).

Members are read on demand (a zip member is streamed, never the whole archive), so memory
stays flat with the export's size.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from chatferry.client.errors import ClientError


class Source:
    """The members of an export by their ``/``-separated names."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if not path.exists():
            raise ClientError(f"{path} does not exist: give the export's file or directory")
        if path.is_file() and zipfile.is_zipfile(path):
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise ClientError(f"{path} is not a readable zip file ({exc})") from None
            self._names = sorted(n for n in self._zip.namelist() if not n.endswith("/"))
        elif path.is_dir():
            self._names = sorted(
                p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()
            )
        else:
            self._names = [path.name]

    @property
    def name(self) -> str:
        return self.path.name

    def names(self) -> list[str]:
        return self._names

    def has(self, name: str) -> bool:
        if self._zip is not None:
            return name in self._set()
        return self._file(name).is_file()

    def _set(self) -> set[str]:
        if not hasattr(self, "_name_set"):
            self._name_set = set(self._names)
        return self._name_set

    def _file(self, name: str) -> Path:
        """The member's path; never outside the export (a path like ``../x`` or a link
        out of it names no member), so an export cannot make us read other files."""
        root = (self.path.parent if self.path.is_file() else self.path).resolve()
        if self.path.is_file() and name == self.path.name:
            return self.path
        path = (root / name).resolve()
        return path if root in path.parents else root / ".chatferry-outside-the-export"

    def open(self, name: str) -> IO[bytes]:
        """The member as a binary stream; ClientError if it is missing."""
        try:
            if self._zip is not None:
                return self._zip.open(name)
            return self._file(name).open("rb")
        except (KeyError, FileNotFoundError, IsADirectoryError):
            raise ClientError(f"{self.path} has no {name}") from None

    def read(self, name: str) -> bytes:
        with self.open(name) as handle:
            return handle.read()

    def lines(self, name: str) -> Iterator[bytes]:
        """The member's lines, streamed."""
        with self.open(name) as handle:
            yield from handle

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
