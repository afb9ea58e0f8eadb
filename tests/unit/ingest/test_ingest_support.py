"""Support for the ingest tests (no tests here): tiny real JPEGs, folder trees, tars, memory fs."""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path

import fsspec
from PIL import Image


def jpeg(seed: int = 0, size: int = 8) -> bytes:
    """A real, decodable JPEG, distinct per seed."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (seed * 37 % 256, seed * 91 % 256, 128)).save(buf, "JPEG")
    return buf.getvalue()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    """A tar (mode `w` or `w:gz`) of regular-file members, in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def add_special(tf: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tf.addfile(info)


def huge_header(name: str, claimed: int) -> bytes:
    """A lone header claiming `claimed` bytes, followed by only a little data (a hostile tar)."""
    info = tarfile.TarInfo(name)
    info.size = claimed
    return info.tobuf(format=tarfile.GNU_FORMAT) + b"x" * 512


def memory_corner():
    """A private corner of fsspec's in-memory filesystem, removed afterwards (fixture body)."""
    fs = fsspec.filesystem("memory")
    root = f"/t{uuid.uuid4().hex}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)
