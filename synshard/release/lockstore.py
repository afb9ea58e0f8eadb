"""Compare-and-swap on one small file, per storage kind: what the build lock is made of.

A token is the md5 of the file's content (for a single S3 PUT that is also its ETag, so it doubles
as the `If-Match` value). `create` and `replace` return the new token, or None when the file
already exists / no longer has the expected token; `read` returns (content, token) or None.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from typing import Any, Iterator, Protocol

from fsspec.implementations.local import LocalFileSystem


def digest(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class LockStore(Protocol):
    def create(self, data: bytes) -> str | None: ...
    def read(self) -> tuple[bytes, str] | None: ...
    def replace(self, data: bytes, token: str) -> str | None: ...
    def delete(self, token: str) -> bool: ...


class LocalStore:
    """O_EXCL create; replace and delete under flock on `<lock>.guard` (dies with its process)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path + ".guard", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def create(self, data: bytes) -> str | None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with self._guard():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return None
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        return digest(data)

    def read(self) -> tuple[bytes, str] | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data, digest(data)

    def replace(self, data: bytes, token: str) -> str | None:
        with self._guard():
            current = self.read()
            if current is None or current[1] != token:
                return None
            fd, tmp = tempfile.mkstemp(prefix=".lock-", dir=os.path.dirname(self.path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        return digest(data)

    def delete(self, token: str) -> bool:
        with self._guard():
            current = self.read()
            if current is None or current[1] != token:
                return False
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.unlink(self.path + ".guard")
        return True


class S3Store:
    """Conditional PUTs: If-None-Match: * to create, If-Match: <etag> to replace."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs, self.path = fs, path

    def create(self, data: bytes) -> str | None:
        try:
            self.fs.pipe_file(self.path, data, mode="create")
        except FileExistsError:
            return None
        return digest(data)

    def read(self) -> tuple[bytes, str] | None:
        try:
            data = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        return data, digest(data)

    def replace(self, data: bytes, token: str) -> str | None:
        try:
            self.fs.pipe_file(self.path, data, IfMatch=f'"{token}"')
        except (FileNotFoundError, FileExistsError):
            return None
        except OSError as exc:  # s3fs maps 412 PreconditionFailed to EINVAL
            if "pre-condition" in str(exc) or "PreconditionFailed" in str(exc):
                return None
            raise
        return digest(data)

    def delete(self, token: str) -> bool:
        current = self.read()
        if current is None or current[1] != token:
            return False
        self.fs.rm_file(self.path)
        return True


class FsspecStore(S3Store):
    """Any other fsspec store: exists-then-write, read back to confirm (best effort)."""

    def create(self, data: bytes) -> str | None:
        if self.fs.exists(self.path):
            return None
        self.fs.pipe_file(self.path, data)
        current = self.read()
        return current[1] if current and current[0] == data else None

    def replace(self, data: bytes, token: str) -> str | None:
        current = self.read()
        if current is None or current[1] != token:
            return None
        self.fs.pipe_file(self.path, data)
        return digest(data)


def store_for(fs: Any, path: str) -> LockStore:
    """The strongest compare-and-swap this filesystem offers."""
    if isinstance(fs, LocalFileSystem):
        return LocalStore(fs._strip_protocol(path))
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if "s3" in protocols:
        return S3Store(fs, path)
    return FsspecStore(fs, path)
