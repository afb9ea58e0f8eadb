"""Path rules shared by folder and tar sources: which names are synsets, splits, tars or hostile.

Pure functions on strings (no I/O), so folders, tars and tars of tars read a layout the same way:
a path is split into parts, the nearest wnid-named ancestor gives the synset and the nearest
`train`/`val`/`test` ancestor gives the split.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Sequence
from typing import Literal

from synshard.transforms.schema import SPLITS

WNID_RE = re.compile(r"^[nN]\d{8}$")
Compression = Literal["gz", "bz2", "xz"]

# Longest suffix first: `.tar.gz` must win over a bare `.gz` check elsewhere.
_TAR_SUFFIXES: tuple[tuple[str, Compression | None], ...] = (
    (".tar.gz", "gz"),
    (".tgz", "gz"),
    (".tar.bz2", "bz2"),
    (".tbz2", "bz2"),
    (".tar.xz", "xz"),
    (".txz", "xz"),
    (".tar", None),
)
TAR_SUFFIXES = tuple(suffix for suffix, _ in _TAR_SUFFIXES)  # lower case


def as_wnid(name: str) -> str | None:
    """The wnid a folder name spells (`n` + 8 digits, any case, lower-cased), else None."""
    return name.lower() if WNID_RE.match(name) else None


def path_parts(name: str) -> list[str]:
    """Split a relative path on `/` and drop empty and `.` parts (tars often store `./x`)."""
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def locate(parts: Sequence[str]) -> tuple[str | None, str | None]:
    """(synset, split) of a file from its path parts: nearest wnid / split-named ancestor folder.

    The last part is the file itself and never names a synset: `n01440764` as a *file* name
    under no wnid folder is an input without a synset, not a class.
    """
    synset = split = None
    for folder in reversed(parts[:-1]):
        if synset is None:
            synset = as_wnid(folder)
        if split is None and folder.lower() in SPLITS:
            split = folder.lower()
    return synset, split


def tar_kind(name: str) -> tuple[bool, Compression | None]:
    """(is a tar, its compression) judged by the name's suffix, case-insensitive."""
    lower = name.lower()
    for suffix, compression in _TAR_SUFFIXES:
        if lower.endswith(suffix):
            return True, compression
    return False, None


def tar_stem(name: str) -> str:
    """`train/n01440764.tar` -> `train/n01440764`: an inner tar acts as a folder of that name."""
    lower = name.lower()
    for suffix, _ in _TAR_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_unsafe(name: str) -> bool:
    """Absolute paths, drive letters and `..` parts: names an extractor could be tricked by."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return True
    return ".." in norm.split("/")


def member_reason(info: tarfile.TarInfo, max_bytes: int) -> str | None:
    """Why a tar member is rejected before its bytes are read; None for a readable file.

    Directories are not inputs and must be filtered out before (see `is_input`).
    """
    if is_unsafe(info.name):
        return "unsafe path"
    if info.issym() or info.islnk():
        return "link member"
    if not info.isreg():
        return "special file"  # character/block devices, fifos, unknown types
    if info.size > max_bytes:
        return f"too large: {info.size} bytes"
    return None


def is_input(info: tarfile.TarInfo) -> bool:
    """Every member but a directory is an input (hostile ones become rejected rows)."""
    return not info.isdir()


def is_inner_tar(info: tarfile.TarInfo) -> bool:
    """A safe regular member named like a tar: read as a nested archive, not as an image."""
    return info.isreg() and not is_unsafe(info.name) and tar_kind(info.name)[0]
