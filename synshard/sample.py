"""Where the bundled sample lives: `data/sample` in a checkout (what `make demo` builds)."""
from __future__ import annotations

from pathlib import Path

from synshard.errors import SynshardError


def sample_path() -> Path:
    here = Path(__file__).resolve().parent.parent / "data" / "sample"
    for candidate in (Path.cwd() / "data" / "sample", here):
        if candidate.is_dir():
            return candidate
    raise SynshardError("the bundled sample (data/sample) is not here: run from a checkout")
