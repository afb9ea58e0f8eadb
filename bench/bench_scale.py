"""Scale benchmark: N small crops of real photos in 1,000 ILSVRC synsets, built, measured.

    .venv/bin/python bench/bench_scale.py --counts 100000[,1000000] [--cache DIR] [--keep]

Generation (once, into an ignored cache folder, default `.cache/scale/`): image i is a random crop
(random photo of scripts/photos.py's originals, random position and scale, random mirror) resized
to 96x72, JPEG quality 75-95, written to `images/<wnid>/<wnid>_<i>.JPEG` with wnid the ILSVRC-2012
class i % 1000. Every image depends on i alone, so generation is resumable (a `generated` file
records how many exist) and incremental: 100,000 is a prefix of 1,000,000. A build of N reads a
view folder of hard links to the first N images (`view-<N>/`, made once).

Each count is built with `synshard build VIEW --resize shorter:64` as a subprocess under
`/usr/bin/time -v`, while a sampler thread reads /proc once a second (bench/timed_build.py): the
driver's own peak RSS (VmHWM of the `synshard build` process; /usr/bin/time's figure can be a
descendant's), the peak RSS of the largest worker (Ray's, titled `ray::...`, or a local build's forked ones), and the
staging folder's peak size; `--trajectory FILE` also logs every sample (the driver's RSS over time).
It prints images/s, every phase's seconds (build.json), those peaks, the CPU seconds of the
whole process tree, and with two counts the per-image slope of the driver's peak RSS.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

from timed_build import timed_build  # noqa: E402

SIZE = (96, 72)
CHUNK = 5000  # images per generation unit (the prefix property holds for any N)
SYNSETS = 1000
_PHOTOS: list = []


# ---------------------------------------------------------------- generation

def _load_photos() -> list:
    """The originals, decoded once per process and downscaled to a longer side of 1600 px."""
    if not _PHOTOS:
        from PIL import Image
        import photos

        originals = photos.ensure_originals()
        index = json.loads((originals / "index.json").read_text())
        for entry in index["photos"]:
            with Image.open(originals / entry["file"]) as im:
                im.draft("RGB", (1600, 1600))
                im = im.convert("RGB")
                im.thumbnail((1600, 1600))
                _PHOTOS.append(im)
    return _PHOTOS


def _wnids() -> list[str]:
    from synshard.synsets.subsets import load_subset

    wnids = load_subset("ilsvrc2012")
    assert len(wnids) == SYNSETS, len(wnids)
    return list(wnids)


def render(i: int, photos: list):
    """Image i (a PIL image and its JPEG quality): depends on i alone."""
    import random

    from PIL import Image

    rng = random.Random(20120 * 10**9 + i)
    photo = photos[rng.randrange(len(photos))]
    pw, ph = photo.size
    scale = rng.uniform(0.06, 0.5)
    bw = max(SIZE[0], round(min(pw, ph * 4 / 3) * scale))
    bh = round(bw * 3 / 4)
    x0, y0 = rng.randint(0, pw - bw), rng.randint(0, ph - bh)
    image = photo.resize(SIZE, Image.Resampling.BILINEAR, box=(x0, y0, x0 + bw, y0 + bh),
                         reducing_gap=2.0)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image, rng.randint(75, 95)


def _generate_chunk(args: tuple[Path, int, int]) -> int:
    images, start, stop = args
    photos = _load_photos()
    wnids = _wnids()
    for i in range(start, stop):
        wnid = wnids[i % SYNSETS]
        image, quality = render(i, photos)
        image.save(images / wnid / f"{wnid}_{i:08d}.JPEG", "JPEG", quality=quality)
    return stop - start


def generate(cache: Path, count: int, procs: int) -> Path:
    """At least `count` images under `cache/images` (resumes from the `generated` record)."""
    images = cache / "images"
    record = cache / "generated"
    have = int(record.read_text()) if record.exists() else 0
    if have >= count:
        return images
    for wnid in _wnids():
        (images / wnid).mkdir(parents=True, exist_ok=True)
    chunks = [(images, s, min(s + CHUNK, count)) for s in range(have - have % CHUNK, count, CHUNK)]
    t0 = time.perf_counter()
    done = have - have % CHUNK
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        # imap keeps the order: `generated` only ever records a complete prefix
        for n in pool.imap(_generate_chunk, chunks):
            done += n
            record.write_text(str(done))
            rate = (done - have) / (time.perf_counter() - t0)
            print(f"  generated {done:,} of {count:,} ({rate:,.0f} img/s)", flush=True)
    return images


def wait_for(cache: Path, count: int, poll_s: float = 30.0) -> Path:
    """`cache/images` once another process's `generated` record says `count` images exist."""
    record = cache / "generated"
    while (have := int(record.read_text()) if record.exists() else 0) < count:
        print(f"  waiting for generation: {have:,} of {count:,}", flush=True)
        time.sleep(poll_s)
    return cache / "images"


def view(cache: Path, images: Path, count: int) -> Path:
    """A folder of hard links to the first `count` images, made once."""
    dest = cache / f"view-{count}"
    done = dest.with_suffix(".done")
    if done.exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    wnids = _wnids()
    for wnid in wnids:
        (dest / wnid).mkdir(parents=True)
    for i in range(count):
        wnid = wnids[i % SYNSETS]
        name = f"{wnid}/{wnid}_{i:08d}.JPEG"
        os.link(images / name, dest / name)
    done.touch()
    return dest


# ---------------------------------------------------------------- measurement

def build(src: Path, out: Path, count: int, extra: list[str],
          trajectory: Path | None = None, interval_peaks: bool = False) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    args = [str(src), "--out", str(out), "--resize", "shorter:64", "--no-progress", "--name",
            f"scale-{count}", *extra]
    r = timed_build(args, out, trajectory=trajectory, interval_peaks=interval_peaks)
    r.pop("stdout")
    return {"count": count, **r}


def report(r: dict) -> None:
    mib = 1024 * 1024
    t = r["timings"]
    stage = t.get("read+transform+stage", 0.0)
    print(f"\n== {r['count']:,} images: whole command {r['count'] / r['wall_s']:,.0f} img/s "
          f"(wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.0f} s in the build's process tree, sampled); "
          f"read+transform+stage {r['count'] / max(stage, 1e-9):,.0f} img/s")
    print("   phases s: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    print(f"   accounting: {r['accounting']}")
    print(f"   driver peak RSS {r['driver_peak'] / mib:,.0f} MiB "
          f"({r['driver_peak'] / r['count']:,.0f} B/image all told; until the first synset was "
          f"assembled {r['driver_peak_before_assembly'] / mib:,.0f} MiB); /usr/bin/time max RSS "
          f"{r['time_v_max_rss'] / mib:,.0f} MiB")
    print(f"   largest worker peak RSS {r['worker_peak'] / mib:,.0f} MiB (anonymous "
          f"{r['worker_peak_anon'] / mib:,.0f} MiB; {r['workers_seen']} workers seen)")
    print(f"   staging peak {r['staging_peak'] / 1e6:,.0f} MB "
          f"({r['staging_peak'] / r['count']:,.0f} B/image); release "
          f"{r['release_bytes'] / 1e6:,.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="100000",
                    help="comma-separated image counts to build (default 100000)")
    ap.add_argument("--cache", default=str(ROOT / ".cache" / "scale"))
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1,
                    help="generation processes")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--wait-for-generation", action="store_true",
                    help="another process is generating into --cache: before each build, wait "
                    "until its `generated` record covers the count (never generate here)")
    ap.add_argument("--keep", action="store_true", help="keep the releases (default: removed)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--trajectory", help="append every sample of the driver's RSS to this file")
    ap.add_argument("--interval-peaks", action="store_true",
                    help="reset the driver's peak RSS after each sample: each --trajectory line's "
                    "hwm is its peak since the previous one (/usr/bin/time's figure is then "
                    "only the last second's)")
    ap.add_argument("build_args", nargs="*", help="extra `synshard build` flags (after --)")
    args = ap.parse_args()
    counts = sorted(int(c.replace("_", "")) for c in args.counts.split(","))
    cache = Path(args.cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.1f}; generating up to {counts[-1]:,} into {cache}")
    if not args.wait_for_generation:
        images = generate(cache, counts[-1], args.procs)
    if args.generate_only:
        return
    results = []
    for count in counts:
        if args.wait_for_generation:
            images = wait_for(cache, count)
        src = view(cache, images, count)
        out = cache / f"release-{count}"
        if args.trajectory:
            with open(args.trajectory, "a") as f:
                f.write(f"# build of {count:,}\n")
        r = build(src, out, count, args.build_args,
                  Path(args.trajectory) if args.trajectory else None, args.interval_peaks)
        report(r)
        results.append(r)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    if len(results) >= 2:
        a, b = results[0], results[-1]
        slope = (b["driver_peak"] - a["driver_peak"]) / (b["count"] - a["count"])
        print(f"\ndriver peak RSS slope {a['count']:,} -> {b['count']:,}: {slope:,.0f} B/image")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
