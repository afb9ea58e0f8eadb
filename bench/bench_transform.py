"""Benchmark: the transform stage against plain Pillow and OpenCV (img2dataset's way), one core.

Job: ImageNet-sized photographic JPEGs -> decode, resize shorter side to 256, JPEG q90.
Prints images/s (median of --repeats runs over all photos) for
  transform     synshard.transforms.process.transform_batch (batches of --batch rows)
  decode-pil    the floor: Pillow-SIMD full decode only
  decode-sj     the floor: simplejpeg (libjpeg-turbo 3) full decode only
  pillow        plain Pillow: open, convert RGB, LANCZOS resize, save q90    (.venv-bench)
  opencv        cv2.imdecode, INTER_AREA resize, imencode q90, 1 thread     (.venv-bench)
and the ratios transform/pillow (goal >= 1.8) and transform/opencv (goal >= 1.1).

    bash bench/venv_bench.sh && .venv/bin/python bench/bench_transform.py [--photos DIR]

Photos: .cache/photos/imagenet-like (scripts/photos.py); with --make DIR, 600 crops (~500x375,
q75-95) are cut from the wallpapers under DIR first (e.g. mate-backgrounds extracted with dpkg -x).
"""
from __future__ import annotations

import argparse
import glob
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINES = r'''
import glob, io, json, statistics, sys, time
import cv2, numpy as np
from PIL import Image
cv2.setNumThreads(1)
paths, repeats = sorted(glob.glob(sys.argv[1] + "/*.jpg")), int(sys.argv[2])
blobs = [open(p, "rb").read() for p in paths]
def pillow(data):
    im = Image.open(io.BytesIO(data)).convert("RGB")
    s = 256 / min(im.size)
    im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
    out = io.BytesIO(); im.save(out, "JPEG", quality=90); return out.getvalue()
def opencv(data):
    im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    h, w = im.shape[:2]; s = 256 / min(h, w)
    im = cv2.resize(im, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
result = {}
for name, fn in (("pillow", pillow), ("opencv", opencv)):
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        for b in blobs: fn(b)
        cpu.append(len(blobs) / (time.process_time() - c))
        wall.append(len(blobs) / (time.perf_counter() - w))
    result[name] = (statistics.median(cpu), statistics.median(wall))
import PIL; result["versions"] = f"Pillow {PIL.__version__}, OpenCV {cv2.__version__}"
print(json.dumps(result))
'''


def make_photos(wallpapers: Path, out: Path, count: int = 600) -> None:
    """Crops of real photos, resized to ImageNet-like sizes, saved at q75-95."""
    import random

    from PIL import Image

    rng = random.Random(0)
    sources = sorted(glob.glob(str(wallpapers / "**" / "*.jpg"), recursive=True))
    out.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as src:
            src = src.convert("RGB")
            w = rng.randint(min(src.width, 600), src.width)
            h = min(src.height, int(w * rng.uniform(0.6, 0.8)))
            x, y = rng.randint(0, src.width - w), rng.randint(0, src.height - h)
            crop = src.crop((x, y, x + w, y + h))
            long_side = rng.randint(500, 640)
            crop = crop.resize((long_side, max(1, round(long_side * h / w))), Image.LANCZOS)
            crop.save(out / f"{i}.jpg", quality=rng.randint(75, 95))


def timed(fn, blobs: list[bytes]) -> tuple[float, float]:
    """Images per CPU-second and per wall-second (CPU time is robust on a busy machine)."""
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    fn(blobs)
    return len(blobs) / (time.process_time() - start_cpu), len(blobs) / (time.perf_counter() - start_wall)


def ours(blobs: list[bytes], batch: int) -> dict:
    """The jobs measured in this process: the transform stage and the decode floors."""
    import pyarrow as pa
    import simplejpeg
    from PIL import Image

    from synshard.transforms.options import ResizeSpec, TransformOptions
    from synshard.transforms.process import transform_batch
    from synshard.transforms.schema import CANDIDATE_SCHEMA

    opts = TransformOptions(resize=ResizeSpec("shorter", 256), format="jpeg", quality=90)
    tables = [
        pa.Table.from_pylist(
            [{"source": str(i), "synset": "n00000001", "data": b} for i, b in
             enumerate(blobs[start:start + batch])], schema=CANDIDATE_SCHEMA)
        for start in range(0, len(blobs), batch)
    ]

    def transform(_):
        for table in tables:
            out = transform_batch(table, opts)
            assert out.column("reason").null_count == out.num_rows

    def decode_pil(items):
        for data in items:
            Image.open(io.BytesIO(data)).load()

    def decode_sj(items):
        for data in items:
            simplejpeg.decode_jpeg(data, colorspace="RGB")

    return {"transform": transform, "decode-pil": decode_pil, "decode-sj": decode_sj}


def baselines(photos: Path) -> dict:
    """One round of the plain Pillow and OpenCV jobs, in .venv-bench."""
    python = ROOT / ".venv-bench" / "bin" / "python"
    if not python.exists():
        sys.exit("bench: run bash bench/venv_bench.sh first (plain Pillow + OpenCV baselines)")
    done = subprocess.run([str(python), "-c", BASELINES, str(photos), "1"],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def measure(blobs: list[bytes], photos: Path, batch: int, repeats: int) -> tuple[dict, str]:
    """Rounds interleave every job, so a change in machine load hits them all alike."""
    jobs = ours(blobs, batch)
    samples: dict[str, list[tuple[float, float]]] = {}
    for _ in range(repeats):
        for name, fn in jobs.items():
            samples.setdefault(name, []).append(timed(fn, blobs))
        base = baselines(photos)
        for name in ("pillow", "opencv"):
            samples.setdefault(name, []).append(tuple(base[name]))
    medians = {
        name: (statistics.median(c for c, _ in runs), statistics.median(w for _, w in runs))
        for name, runs in samples.items()
    }
    return medians, base["versions"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=ROOT / ".cache/photos/imagenet-like")
    parser.add_argument("--make", type=Path, help="cut photos from the wallpapers under this dir")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--core", type=int, default=0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})  # one core; the baseline subprocess inherits it
    if args.make:
        make_photos(args.make, args.photos)
    paths = sorted(glob.glob(str(args.photos / "*.jpg")))
    if not paths:
        sys.exit(f"bench: no photos in {args.photos} (use --make WALLPAPER_DIR)")
    blobs = [Path(p).read_bytes() for p in paths]
    print(f"{len(blobs)} photos from {args.photos}, one core (#{args.core}), "
          f"median of {args.repeats} runs; load average {os.getloadavg()[0]:.1f}")
    rates, versions = measure(blobs, args.photos, args.batch, args.repeats)
    print(f"  {'':<11} {'img/CPU-s':>10} {'img/wall-s':>11}")
    for name, (cpu, wall) in rates.items():
        print(f"  {name:<11} {cpu:10.0f} {wall:11.0f}")
    print(f"  baselines: {versions}")
    for other, goal in (("pillow", 1.8), ("opencv", 1.1)):
        cpu, wall = (rates["transform"][i] / rates[other][i] for i in (0, 1))
        print(f"  transform / {other:<7} = {cpu:.2f}x CPU, {wall:.2f}x wall (goal {goal}x)")


if __name__ == "__main__":
    main()
