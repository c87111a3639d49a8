"""``verify``'s checks of an encrypted backup's attachments.

Without a key: every encrypted attachment and index file the manifest's
``encrypted_files`` lists is there with that size and sha256 (of its encrypted bytes).
With identities: the index files are decrypted and merged, and each attachment (or a
random share) is decrypted as it is read: its encrypted bytes and its plaintext both have
the size and sha256 the manifest and the index give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatferry.client.attachments.check import SHA256, Problem, sample
from chatferry.client.attachments.sealed import index_files, read_index
from chatferry.client.attachments.store import path_digest

if TYPE_CHECKING:
    from chatferry.client.crypto import Identity

Files = dict[str, dict[str, Any]]


@dataclass
class SealedCounts:
    files: int = 0
    checked: int = 0
    failed: int = 0


def _path(directory: Path, name: str, problem: Problem) -> Path | None:
    path = (directory / name).resolve()
    if directory.resolve() not in path.parents:
        problem(name, "the file is outside the backup directory")
        return None
    if not path.is_file():
        problem(name, "the file is missing")
        return None
    return path


def _compare(name: str, expected: dict[str, Any], size: int, sha256: str, problem: Problem) -> None:
    if size != expected["bytes"]:
        problem(name, f"the file has {size} bytes, the manifest says {expected['bytes']}")
    if sha256 != expected["sha256"]:
        problem(name, "the file's sha256 differs from the manifest's: it was changed")


def check_encrypted(directory: Path, files: Files, names: list[str], problem: Problem) -> None:
    """Size and sha256 of each encrypted file in ``names``, no key needed."""
    for name in names:
        path = _path(directory, name, problem)
        if path is not None:
            _compare(name, files[name], *path_digest(path), problem)


def attachment_names(files: Files) -> list[str]:
    indexes = set(index_files(files))
    return sorted(name for name in files if name not in indexes)


def check_without_key(
    directory: Path, files: Files, percent: float | None, problem: Problem
) -> SealedCounts:
    attachments = attachment_names(files)
    chosen = sample(attachments, percent)
    check_encrypted(directory, files, index_files(files) + chosen, problem)
    return SealedCounts(len(attachments), len(chosen))


def _plain_files(index: dict[str, dict[str, Any]], files: Files, problem: Problem) -> Files:
    """file -> its index entry (with one of its URLs) of every fetched attachment."""
    found: Files = {}
    for url, entry in index.items():
        if "sha256" not in entry and "error" in entry:
            continue
        name, sha256, size = entry.get("file"), entry.get("sha256"), entry.get("bytes")
        if not isinstance(sha256, str) or not SHA256.fullmatch(sha256) or not isinstance(size, int):
            problem(f"attachment {url}", "its index entry has no valid sha256 and byte count")
        elif not isinstance(name, str) or name not in files:
            problem(f"attachment {url}", f"its file {name!r} is not listed in the manifest")
        else:
            found.setdefault(name, {**entry, "url": url})
    return found


def _check_decrypted(
    directory: Path, name: str, files: Files, entry: dict[str, Any], identities: Sequence[Identity]
) -> list[str]:
    """The problems of one encrypted attachment, decrypted into a hash."""
    from chatferry.client.crypto import CorruptFile, HashingWriter, decrypt_into

    plain = HashingWriter()
    try:
        size, sha256 = decrypt_into(directory / name, identities, plain.write)
    except CorruptFile as exc:
        return [exc.message]
    found: list[str] = []
    _compare(name, files[name], size, sha256, lambda _, message: found.append(message))
    if (plain.size, plain.hexdigest()) != (entry["bytes"], entry["sha256"]):
        found.append(f"its plaintext is not the {entry['bytes']} bytes the index says")
    return found


def check_with_key(
    directory: Path,
    files: Files,
    identities: Sequence[Identity],
    percent: float | None,
    problem: Problem,
) -> SealedCounts:
    """The index files decrypted and merged; each chosen attachment decrypted and hashed."""
    from chatferry.client.crypto import CorruptFile

    check_encrypted(directory, files, index_files(files), problem)
    try:
        index = read_index(directory, files, identities)
    except (CorruptFile, FileNotFoundError) as exc:
        problem("attachments/index", f"the attachment index cannot be read: {exc}")
        return SealedCounts(len(attachment_names(files)))
    plain = _plain_files(index, files, problem)
    chosen = sample(sorted(plain), percent)
    for name in chosen:
        if _path(directory, name, problem) is None:
            continue
        for message in _check_decrypted(directory, name, files, plain[name], identities):
            problem(name, f"{message} (the attachment of {plain[name]['url']})")
    failed = sum("sha256" not in e for e in index.values())
    return SealedCounts(len(plain), len(chosen), failed)
