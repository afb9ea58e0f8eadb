"""Where a command writes its output files (`synshard get -o`, `synshard report -o`).

Both commands treat `-o` alike, on a local disk or any fsspec URI (`s3://bucket/prefix/`): a path
naming a folder (one ending in `/`, an existing folder, or an S3 prefix that holds objects) gets
the command's own file name inside it, and missing local parent folders are created (an object
store needs none).
"""
from __future__ import annotations

import os
from typing import Any

from fsspec.core import url_to_fs


def output_file(output: str, name: str) -> str:
    """The file to write for `-o output`: `output`, or `output/name` when `output` names a
    folder; a local file's parent folders are created."""
    fs, path = url_to_fs(output)
    if output.endswith(("/", os.sep)) or fs.isdir(path):
        output = join_output(output, name)
    _make_parent(fs, url_to_fs(output)[1])
    return output


def output_folder(output: str) -> str:
    """`-o output` as the folder of several files; a local one is created if missing."""
    fs, path = url_to_fs(output)
    if _is_local(fs):
        fs.makedirs(path, exist_ok=True)
    return output


def join_output(folder: str, name: str) -> str:
    """`folder/name`, for a local path or a URI (one `/`, whatever `folder` ends with)."""
    return f"{folder.rstrip('/' + os.sep)}/{name}"


def write_outputs(files: dict[str, bytes]) -> None:
    """Write each file's bytes (paths or URIs on one filesystem, as output_file and join_output
    give them); an object store gets them as concurrent PUTs."""
    if files:
        fs = url_to_fs(next(iter(files)))[0]
        fs.pipe({url_to_fs(target)[1]: data for target, data in files.items()})


def _is_local(fs: Any) -> bool:
    return bool(getattr(fs, "local_file", False))


def _make_parent(fs: Any, path: str) -> None:
    if _is_local(fs):
        fs.makedirs(os.path.dirname(path), exist_ok=True)
