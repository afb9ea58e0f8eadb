"""Where a command writes its output file (`synshard get -o`, `synshard report -o`).

Both commands treat `-o` alike: a path naming a folder (an existing one, or one ending in `/`)
gets the command's own file name inside it, and missing parent folders are created.
"""
from __future__ import annotations

import os
from pathlib import Path


def output_file(output: str, name: str) -> str:
    """The local file to write for `-o output`: `output`, or `output/name` when `output` names a
    folder; its parent folders are created. A URI with a scheme (`s3://...`) is returned as it
    is (fsspec creates what it needs)."""
    if "://" in output:
        return f"{output.rstrip('/')}/{name}" if output.endswith("/") else output
    path = Path(output)
    if output.endswith(("/", os.sep)) or path.is_dir():
        path = path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)
