"""bench/bench_scale.py's generation: image i depends on i alone, so a smaller count is a prefix
of a larger one, generation resumes, and a view holds exactly the first N images. No timing."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
import bench_scale as bs  # noqa: E402


@pytest.fixture
def photos(monkeypatch):
    """Two small stand-in photographs (the real ones come from scripts/photos.py)."""
    fake = [Image.linear_gradient("L").convert("RGB").resize((400, 300)),
            Image.radial_gradient("L").convert("RGB").resize((300, 400))]
    monkeypatch.setattr(bs, "_PHOTOS", fake)
    monkeypatch.setattr(bs, "CHUNK", 7)
    return fake


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.JPEG"))}


def test_render_depends_on_the_index_alone(photos):
    a, qa = bs.render(5, photos)
    b, qb = bs.render(5, photos)
    c, _ = bs.render(6, photos)
    assert a.size == bs.SIZE and a.tobytes() == b.tobytes() and qa == qb
    assert a.tobytes() != c.tobytes() and 75 <= qa <= 95


def test_generation_is_a_resumable_prefix(tmp_path, photos, monkeypatch):
    monkeypatch.setattr(bs.multiprocessing, "get_context", lambda _: _Inline())
    whole = tmp_path / "whole"
    bs.generate(whole, 30, procs=1)
    assert (whole / "generated").read_text() == "30"
    part = tmp_path / "part"
    bs.generate(part, 10, procs=1)  # 10 = one chunk of 7 and a partial one
    assert (part / "generated").read_text() == "10"
    bs.generate(part, 30, procs=1)  # resumes from the record, redoes the partial chunk
    assert _digests(part / "images") == _digests(whole / "images")
    view = bs.view(whole, whole / "images", 12)
    names = sorted(_digests(view))
    assert len(names) == 12 and all(n in _digests(whole / "images") for n in names)
    assert {int(n.rsplit("_", 1)[1][:8]) for n in names} == set(range(12))
    first = bs._wnids()[0]
    assert (view / first / f"{first}_00000000.JPEG").stat().st_ino == \
        (whole / "images" / first / f"{first}_00000000.JPEG").stat().st_ino


class _Inline:
    """multiprocessing's spawn context, run in this process (the fixture's photos hold)."""

    def Pool(self, procs):  # noqa: N802
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def imap(self, fn, items):
        return map(fn, items)
