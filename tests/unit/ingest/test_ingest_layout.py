"""Path rules: synsets and splits from folders, tar names, hostile member names and types."""

from __future__ import annotations

import tarfile

import pytest
from synshard.ingest.layout import is_unsafe, locate, member_reason, path_parts, tar_kind, tar_stem


@pytest.mark.parametrize(
    "path, expected",
    [
        ("n01440764/a.jpg", ("n01440764", None)),
        ("N01440764/a.JPEG", ("n01440764", None)),
        ("train/n01440764/a", ("n01440764", "train")),
        ("VAL/n01440764/deeper/x.png", ("n01440764", "val")),
        ("Test/x.jpg", (None, "test")),
        ("n01440764/n02102040/a.jpg", ("n02102040", None)),  # nearest ancestor wins
        ("n01440764", (None, None)),  # a file named like a wnid is not a folder
        ("n0144076/a.jpg", (None, None)),  # 7 digits
        ("n014407641/a.jpg", (None, None)),  # 9 digits
        ("./train/./n01440764/a.jpg", ("n01440764", "train")),
        ("training/n01440764/a.jpg", ("n01440764", None)),
    ],
)
def test_locate(path, expected):
    assert locate(path_parts(path)) == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.tar", (True, None)),
        ("A.TAR", (True, None)),
        ("a.tar.gz", (True, "gz")),
        ("a.TGZ", (True, "gz")),
        ("a.tar.xz", (True, "xz")),
        ("a.jpg", (False, None)),
        ("tar", (False, None)),
        ("a.gz", (False, None)),
    ],
)
def test_tar_kind(name, expected):
    assert tar_kind(name) == expected


def test_tar_stem():
    assert tar_stem("train/n01440764.TAR") == "train/n01440764"
    assert tar_stem("x.tar.gz") == "x"


@pytest.mark.parametrize(
    "name, unsafe",
    [
        ("../evil", True),
        ("a/../../b", True),
        ("/abs/x", True),
        ("C:/x", True),
        ("a/..b/c", False),
        ("n01440764/x.jpg", False),
        ("./x", False),
    ],
)
def test_is_unsafe(name, unsafe):
    assert is_unsafe(name) is unsafe


def _info(name="a.jpg", kind=tarfile.REGTYPE, size=10):
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info


@pytest.mark.parametrize(
    "info, reason",
    [
        (_info(), None),
        (_info("../x"), "unsafe path"),
        (_info(kind=tarfile.SYMTYPE), "link member"),
        (_info(kind=tarfile.LNKTYPE), "link member"),
        (_info(kind=tarfile.CHRTYPE), "special file"),
        (_info(kind=tarfile.BLKTYPE), "special file"),
        (_info(kind=tarfile.FIFOTYPE), "special file"),
        (_info(size=101), "too large: 101 bytes"),
        (_info(size=100), None),
    ],
)
def test_member_reason(info, reason):
    assert member_reason(info, max_bytes=100) == reason
