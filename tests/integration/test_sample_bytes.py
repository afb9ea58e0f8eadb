"""The bundled sample, built as `make demo` builds it, gives the same bytes as the code of
2026-12-01 (before the app was grouped into subpackages): a move that changes no behaviour
changes no byte. Re-recorded once since, on purpose: 2026-12-06, shard indexes written with
snappy instead of zstd (shards/index.py; every shard and side table byte the same).

Shard records carry their source path, so the sample is first copied to one fixed path
(`/tmp/synshard-sample-<content hash>`, shared read-only by concurrent runs). To record the
fixture again after an intended change of the output:
`.venv/bin/python tests/integration/test_sample_bytes.py --record`
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from synshard.cli.demo import DEMO_OPTIONS  # what `synshard demo` passes to the build

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "data" / "sample_release.json"
NOT_CONTENT = ("build.json", "DATASHEET.md", "manifest.json")
MANIFEST_FIELDS = ("name", "config", "classes", "counts", "shards", "accounting", "tables")


def _sample_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(root)}\0".encode() + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:12]


def fixed_sample() -> Path:
    """The sample at a path that is the same on every machine (records name their source)."""
    src = REPO / "data" / "sample"
    dest = Path(f"/tmp/synshard-sample-{_sample_digest(src)}")
    if not dest.is_dir():
        tmp = Path(tempfile.mkdtemp(dir="/tmp", prefix=".synshard-sample-"))
        shutil.copytree(src, tmp / "sample")
        try:
            os.rename(tmp / "sample", dest)  # atomic; another run may have won the race
        except OSError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def release_summary(out: Path) -> dict:
    files = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(out.rglob("*")) if p.is_file() and p.name not in NOT_CONTENT}
    manifest = json.loads((out / "manifest.json").read_text())
    return {"files": files, "manifest": {k: manifest[k] for k in MANIFEST_FIELDS}}


def build_sample(out: Path) -> dict:
    import synshard

    synshard.build([str(fixed_sample())], str(out), name="sample", progress=False,
                   log=lambda m: None, **DEMO_OPTIONS)
    return release_summary(out)


def test_sample_release_bytes_unchanged(ray_local, tmp_path):
    expected = json.loads(FIXTURE.read_text())
    got = build_sample(tmp_path / "rel")
    assert got["manifest"]["shards"] == expected["manifest"]["shards"]
    assert got["files"] == expected["files"]
    assert got["manifest"] == expected["manifest"]


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    with tempfile.TemporaryDirectory() as work:
        summary = build_sample(Path(work) / "rel")
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(summary['files'])} files into {FIXTURE}")
