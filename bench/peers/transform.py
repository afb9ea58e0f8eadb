"""Transform-kernel job: decode, resize shorter side 256, JPEG q90, one core, images per CPU-s.

    python bench/peers/transform.py simd|plain PHOTOS_DIR      # prints one JSON line

Reuses bench/bench_transform.py: `simd` (in .venv, Pillow-SIMD) runs one round of its
`measure` (synshard's transform_batch, then plain Pillow and OpenCV in .venv-bench, made by
bench/venv_bench.sh); `plain` (in .venv-peers/synshard-plain: plain Pillow, synshard installed
with --no-deps) times the same transform_batch on plain Pillow, so the ratio against plain
Pillow is also given like for like.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_transform  # noqa: E402  (bench/bench_transform.py)


def main() -> None:
    side, photos = sys.argv[1], Path(sys.argv[2])
    os.sched_setaffinity(0, {0})  # one core, as bench_transform; the baselines inherit it
    blobs = [p.read_bytes() for p in sorted(photos.glob("*.jpg"))]
    import PIL

    if side == "simd":
        rates, versions = bench_transform.measure(blobs, photos, batch=100, repeats=1)
        out = {name: rates[name][0] for name in ("transform", "pillow", "opencv")}
        out["versions"] = versions
    else:
        cpu, _ = bench_transform.timed(bench_transform.ours(blobs, 100)["transform"], blobs)
        out = {"transform": cpu}
    out["pil"] = f"{PIL.__name__} {PIL.__version__}"
    out["photos"] = len(blobs)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
