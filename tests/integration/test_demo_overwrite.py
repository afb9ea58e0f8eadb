"""`synshard demo --out X` over another release: refused, then built over with --overwrite (the
replaced release's files stay, as after `build --overwrite`); the result is a demo release, which
the next demo replaces without --overwrite, removing the replaced files (gc)."""
from __future__ import annotations

import sys
from pathlib import Path

import fsspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit" / "shards"))
from shardgen import build_release  # noqa: E402

from synshard.cli.app import main  # noqa: E402
from synshard.cli.demo import is_demo_config  # noqa: E402
from synshard.shards.release import open_release  # noqa: E402
from synshard.shards.verify import verify_release  # noqa: E402

SHARD_DIRS = ("webdataset/", "parquet/", "index/")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_demo_over_another_release(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    build_release(fsspec.filesystem("file"), str(out))
    theirs = {p: b for p, b in _files(out).items() if p.startswith(SHARD_DIRS)}
    assert main(["demo", "--out", str(out)]) == 2
    assert "holds another release ('tiny'" in capsys.readouterr().err

    assert main(["demo", "--out", str(out), "--overwrite"]) == 0
    assert "its files stay" in capsys.readouterr().out
    files = _files(out)
    assert all(files.get(p) == data for p, data in theirs.items())  # kept until gc
    assert is_demo_config(open_release(str(out)).manifest.config)
    problems = verify_release(str(out))
    assert problems and {p.kind for p in problems} == {"extra"}  # the replaced release's files

    assert main(["demo", "--out", str(out)]) == 0  # a demo now: replaced without --overwrite
    assert not set(theirs) & set(_files(out))
    assert verify_release(str(out)) == []
