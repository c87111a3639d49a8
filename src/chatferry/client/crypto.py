"""Encryption at rest with age (pyrage): keys, recipients, and streaming files.

Every encrypted file is a standard age file (``age -d -i KEY FILE`` opens it). It is
written through :func:`encrypting_writer`: the plaintext streams into age's encryption
on a second thread and the ciphertext into a private temporary file, renamed over
``<name>.age`` only when the writer closes without an error; nothing else reaches the disk.
:func:`decrypt_into` streams the other way, into any writer (a hash, memory, a socket).
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
from pyrage import ssh, x25519

from chatferry.client.errors import EXIT_PROBLEMS, ClientError
from chatferry.client.files import now_rfc3339, open_private, sync_dir, temporary_name

AGE_SUFFIX = ".age"
FORMAT = "age-encryption.org/v1"
ENV_IDENTITY = "CHATFERRY_IDENTITY_FILE"
CHUNK = 1024 * 1024
_QUEUE_CHUNKS = 4
SSH_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ")

Recipient = x25519.Recipient | ssh.Recipient
Identity = x25519.Identity | ssh.Identity


class KeyProblem(ClientError):
    """A missing, unreadable or wrong identity: nothing could be decrypted (exit 4)."""

    exit_code = EXIT_PROBLEMS


class CorruptFile(ClientError):
    """An encrypted file that age cannot open with a matching key: it was changed."""


# -- keys ------------------------------------------------------------------------------


def keygen(out: Path) -> str:
    """Writes a new X25519 identity to ``out`` (0600, never over a file); its recipient."""
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    text = f"# created: {now_rfc3339()}\n# public key: {recipient}\n{identity}\n"
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ClientError(
            f"{out} already exists: an identity is never overwritten (it may be the only key "
            "to a backup); choose another --out"
        ) from None
    except OSError as exc:
        raise ClientError(f"cannot write {out}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        os.fchmod(fd, 0o600)
        handle.write(text)
    return recipient


def parse_recipient(text: str) -> Recipient:
    """An ``age1...`` recipient or an SSH public key (ssh-ed25519, ssh-rsa)."""
    value = text.strip()
    try:
        if value.startswith("age1"):
            return x25519.Recipient.from_str(value)
        if value.startswith(SSH_PREFIXES):
            return ssh.Recipient.from_str(value)
    except pyrage.RecipientError as exc:
        raise ClientError(f"{_short(value)} is not a valid age or SSH recipient ({exc})") from None
    raise ClientError(
        f"{_short(value)} is not a recipient: use an age public key (age1...) or an SSH public "
        "key (ssh-ed25519 ... or ssh-rsa ...)"
    )


def _short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def read_recipients_file(path: Path) -> list[str]:
    """The recipients in a file in age's format: one a line, ``#`` comments, blank lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClientError(f"cannot read the recipients file {path}: {exc.strerror}") from None
    lines = [line.strip() for line in text.splitlines()]
    found = [line for line in lines if line and not line.startswith("#")]
    if not found:
        raise ClientError(f"the recipients file {path} holds no recipient")
    return found


def recipient_texts(given: Iterable[str], files: Iterable[Path]) -> list[str]:
    """Every recipient of ``--encrypt-to`` and ``--recipients-file``, checked, in order,
    each once."""
    texts = [t.strip() for t in given]
    for path in files:
        texts.extend(read_recipients_file(path))
    for text in texts:
        parse_recipient(text)
    return list(dict.fromkeys(texts))


def load_identities(path: Path) -> list[Identity]:
    """The identities in an age identity file (``AGE-SECRET-KEY-1...`` lines, as keygen and
    age-keygen write) or an unencrypted SSH private key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyProblem(
            f"cannot read the identity file {path} ({exc.strerror}): nothing was decrypted"
        ) from None
    try:
        if b"PRIVATE KEY-----" in data:
            return [ssh.Identity.from_buffer(data)]
        lines = [line.strip() for line in data.decode().splitlines()]
        keys = [line for line in lines if line and not line.startswith("#")]
        identities: list[Identity] = [x25519.Identity.from_str(k) for k in keys]
    except (pyrage.IdentityError, UnicodeDecodeError, ValueError) as exc:
        raise KeyProblem(f"{path} is not an age identity file or SSH private key ({exc})") from None
    if not identities:
        raise KeyProblem(f"the identity file {path} holds no key")
    return identities


def recipients_of(texts: Sequence[str]) -> list[Recipient]:
    return [parse_recipient(t) for t in texts]


# -- streams ---------------------------------------------------------------------------


class _Pipe(io.RawIOBase):
    """The plaintext side of a running encryption: what ``write`` puts in, age reads."""

    def __init__(self) -> None:
        self._chunks: queue.Queue[bytes | None] = queue.Queue(_QUEUE_CHUNKS)
        self._current = memoryview(b"")
        self._ended = False
        self._closed = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._current and not self._ended:
            chunk = self._chunks.get()
            if chunk is None:
                self._ended = True
            else:
                self._current = memoryview(chunk)
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def feed(self, chunk: bytes) -> None:
        if self._closed:
            raise BrokenPipeError("the other side of the stream stopped")
        self._chunks.put(chunk)

    def finish(self) -> None:
        """The end of the stream."""
        self._chunks.put(None)

    def drain(self) -> None:
        """The reading side stops: a writer waiting on a full queue goes on, and its next
        ``feed`` fails."""
        self._ended = self._closed = True
        while True:
            try:
                self._chunks.get_nowait()
            except queue.Empty:
                return


class HashingWriter(io.RawIOBase):
    """Writes through to ``target`` (if any), counting and hashing every byte."""

    def __init__(self, target: BinaryIO | None = None) -> None:
        self.target = target
        self.size = 0
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.target is not None:
            self.target.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


class EncryptingWriter:
    """The object :func:`encrypting_writer` yields: ``write(bytes)``, plus what was written."""

    def __init__(self, pipe: _Pipe, worker: threading.Thread, errors: list[BaseException]):
        self._pipe = pipe
        self._worker = worker
        self._errors = errors
        self.plain_size = 0
        self.encrypted: HashingWriter | None = None

    def write(self, data: bytes) -> int:
        if self._errors or not self._worker.is_alive():
            raise ClientError(f"the encryption stopped: {self._errors[0] if self._errors else ''}")
        if data:
            self._pipe.feed(bytes(data))
            self.plain_size += len(data)
        return len(data)

    @property
    def size(self) -> int:
        """The encrypted file's size (once the writer closed)."""
        return self.encrypted.size if self.encrypted else 0

    @property
    def sha256(self) -> str:
        """The encrypted file's sha256 (once the writer closed)."""
        return self.encrypted.hexdigest() if self.encrypted else ""


@contextmanager
def encrypting_writer(path: Path, recipients: Sequence[Recipient]) -> Iterator[EncryptingWriter]:
    """Encrypts what the block writes into the age file ``path``, streaming.

    The ciphertext goes to a private temporary name and is renamed over ``path`` (synced)
    only when the block ends without an error; otherwise it is removed. After the block the
    writer knows the encrypted file's size and sha256.
    """
    temporary = temporary_name(path)
    pipe, errors = _Pipe(), []
    with open_private(temporary) as handle:
        hashed = HashingWriter(handle)

        def run() -> None:
            try:
                pyrage.encrypt_io(pipe, hashed, recipients)  # type: ignore[arg-type]
            except BaseException as exc:
                errors.append(exc)
                pipe.drain()

        worker = threading.Thread(target=run, name=f"encrypt {path.name}", daemon=True)
        writer = EncryptingWriter(pipe, worker, errors)
        worker.start()
        try:
            yield writer
            pipe.finish()
            worker.join()
            if errors:
                raise ClientError(f"could not encrypt {path.name}: {errors[0]}")
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            pipe.finish()  # age ends its file early; the file is removed
            worker.join()
            handle.close()
            temporary.unlink(missing_ok=True)
            raise
    os.replace(temporary, path)
    sync_dir(path.parent)
    writer.encrypted = hashed


@dataclass(frozen=True)
class SealedFile:
    """An age file written: its encrypted bytes' size and sha256."""

    size: int
    sha256: str


def encrypt_bytes(
    path: Path, data: bytes, recipients: Sequence[Recipient], sync: bool = True
) -> SealedFile:
    """``data``, encrypted in memory, as the age file ``path`` (written under a temporary
    name and renamed). ``sync``: the file and the rename are synced here; else the caller
    syncs them before anything names the file. Its size and sha256."""
    sealed = pyrage.encrypt(bytes(data), list(recipients))
    temporary = temporary_name(path)
    try:
        with open_private(temporary) as handle:
            handle.write(sealed)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sync:
        sync_dir(path.parent)
    return SealedFile(len(sealed), hashlib.sha256(sealed).hexdigest())


class _HashingReader(io.RawIOBase):
    """Reads ``source``, hashing every byte read."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.hashed = HashingWriter()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.source.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self.hashed.write(memoryview(buffer)[:count])
        return int(count or 0)


def decrypt_into(
    path: Path, identities: Sequence[Identity], sink: Callable[[bytes], Any]
) -> tuple[int, str]:
    """Streams the plaintext of the age file ``path`` into ``sink`` (a write function);
    returns the encrypted file's size and sha256, read on the way.

    KeyProblem if no identity opens the file; CorruptFile if it is damaged.
    """

    class _Sink(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            sink(bytes(data))
            return len(data)

    with path.open("rb") as handle:
        reader = _HashingReader(handle)
        try:
            pyrage.decrypt_io(reader, _Sink(), identities)  # type: ignore[arg-type]
        except (pyrage.DecryptError, OSError) as exc:  # OSError: a damaged payload
            raise _decrypt_problem(path, str(exc)) from None
    return reader.hashed.size, reader.hashed.hexdigest()


def _decrypt_problem(path: Path, detail: str) -> ClientError:
    if "No matching keys" in detail:
        return KeyProblem(
            f"the identity does not open {path.name}: it is not one of the keys the backup "
            "was encrypted to; nothing was decrypted"
        )
    return CorruptFile(f"{path.name} cannot be decrypted: it was changed or cut ({detail})")


def decrypt_bytes(path: Path, identities: Sequence[Identity]) -> tuple[bytes, int, str]:
    """The plaintext of ``path`` in memory, and the encrypted file's size and sha256."""
    buffer = io.BytesIO()
    size, sha256 = decrypt_into(path, identities, buffer.write)
    return buffer.getvalue(), size, sha256


@contextmanager
def decrypting_reader(path: Path, identities: Sequence[Identity]) -> Iterator[BinaryIO]:
    """A readable stream of the plaintext of ``path`` (decrypted on a second thread as the
    block reads; nothing is written to disk). Errors surface from ``read``."""
    pipe, errors = _Pipe(), []

    def run() -> None:
        try:
            decrypt_into(path, identities, pipe.feed)
        except BaseException as exc:
            errors.append(exc)
        finally:
            pipe.finish()

    worker = threading.Thread(target=run, name=f"decrypt {path.name}", daemon=True)
    worker.start()
    stream = _CheckedReader(pipe, errors)
    try:
        yield stream
    finally:
        pipe.drain()
        worker.join()


class _CheckedReader(io.BufferedReader):
    """The pipe's plaintext; raises the decryption's error instead of a quiet end."""

    def __init__(self, pipe: _Pipe, errors: list[BaseException]) -> None:
        super().__init__(pipe, CHUNK)
        self._errors = errors

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if not data and self._errors:
            raise self._errors[0]
        return data
