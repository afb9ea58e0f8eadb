"""Benchmark: synshard's training loader against the loaders people use, in one run, alternating.

Job: one epoch over the same resized images (a release built from scripts/photos.py photographs:
shorter side 256, JPEG q90), shuffled, each image decoded and centre-cropped to 224 x 224 uint8
on the same Pillow. The peers decode with the plain Pillow path a user writes (`plain_pillow`:
`Image.open`, centre crop, `np.asarray`; no RGB copy, `draft` as synshard asks); synshard with
its own decode (`synshard.shards.augment`: only the rows the crop needs, packed straight to
RGB), which gives the same pixels (checked on 300 images in each venv before timing). Loaders,
each in its own process, in turn, `--repeats` rounds (median):

  synshard    ShardDataset over the release (index reads; in one process its default 2 decode
              threads; in DataLoader workers inline). `synshard1t`: one process, threads=1
  webdataset  `webdataset` over the release's own tars (shuffle buffer 1000)
  imagefolder torchvision's ImageFolder over the same JPEG bytes, one file each
  streaming   mosaicml-streaming's StreamingDataset over MDS written from the same bytes
  litdata     LitData's StreamingDataset over its `optimize` output of the same bytes
  floor       the raw decode floor: the peers' `plain_pillow` over the bytes already in memory
  synfloor    synshard's decode over the bytes already in memory (what its loader adds = the gap)

Jobs: "1 process" (iterate the dataset in the main process), then "DataLoader(num_workers=2)"
(batches of 64; LitData with its own StreamingDataLoader). The peers and synshard-on-Pillow run in
.venv-peers/loader (bench/peers/venv.sh loader: plain Pillow; synshard installed --no-deps);
synshard and the floors run again in .venv on its Pillow-SIMD. Prints img/s, CPU ms per image,
the load average before and after, and the ratios to the fastest peer and to the floor;
`--json PATH` writes the rows `make bench-peers` reads.

    .venv/bin/python bench/bench_loader.py [--count 3000] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("webdataset", "imagefolder", "streaming", "litdata")
JOBS = {"1proc": "1 process", "dl2": "DataLoader(num_workers=2)"}
BATCH = 64


# -- children: one measurement each, in the venv given -------------------------------------------
def plain_pillow(data: bytes) -> Any:
    """The peers' decode: what a user of a peer writes with Pillow, at its best (as synshard's
    loader decoded before it read only the crop's rows): open, `draft` when a smaller DCT scale
    serves, no RGB copy of an RGB image, centre crop (or resize with box), `np.asarray`."""
    import io
    import math

    import numpy as np
    from PIL import Image
    from synshard.shards.augment import center_crop_box

    im = Image.open(io.BytesIO(data))
    w, h = im.size
    box = center_crop_box(w, h, 256, 224)
    if im.format == "JPEG":
        need = 224 / min(box[2] - box[0], box[3] - box[1])
        im.draft("RGB", (math.ceil(w * need), math.ceil(h * need)))
    sx, sy = im.size[0] / w, im.size[1] / h
    scaled = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    if im.mode != "RGB":
        im = im.convert("RGB")
    if abs(scaled[2] - scaled[0] - 224) < 1e-6 and abs(scaled[3] - scaled[1] - 224) < 1e-6:
        x0, y0 = round(scaled[0]), round(scaled[1])
        return np.asarray(im.crop((x0, y0, x0 + 224, y0 + 224)))
    return np.asarray(im.resize((224, 224), Image.Resampling.BILINEAR, box=scaled))


def decoder() -> Callable[[bytes], Any]:
    return plain_pillow


def synshard_decoder() -> Callable[[bytes], Any]:
    from synshard.shards.augment import AugmentOptions, augment

    opts = AugmentOptions(image_size=224, mode="eval")
    return lambda data: augment(data, None, opts, None)[0]


def check_pixels(work: Path, count: int = 300) -> None:
    """synshard's decode gives the peers' pixels exactly (on this venv's Pillow), or exit."""
    import numpy as np

    mine = synshard_decoder()
    for f in sorted((work / "files").rglob("*.jpg"))[:count]:
        data = f.read_bytes()
        if not np.array_equal(mine(data), plain_pillow(data)):
            raise SystemExit(f"bench_loader: synshard's decode of {f} differs from plain Pillow's")


def stack(samples: list[Any]) -> Any:
    """The peers' collate: torch's default (numpy arrays to one tensor, in shared memory when in
    a worker), what a user gets without writing one."""
    from torch.utils.data import default_collate

    return default_collate(samples)


def _imagefolder(work: Path, decode: Callable) -> Any:
    from torchvision.datasets import ImageFolder

    def read(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    return ImageFolder(str(work / "files"), loader=read, transform=decode,
                       is_valid_file=lambda p: p.endswith(".jpg"))  # fmt: skip


def make(name: str, work: Path, job: str) -> tuple[Iterator[Any], Callable[[Any], int]]:
    """(an iterable over one epoch, how many images an item holds)."""
    import torch

    decode = decoder()
    one, batch = (lambda item: 1), (lambda b: len(b))
    if name in ("floor", "synfloor"):
        fn = decode if name == "floor" else synshard_decoder()
        return (fn(b) for b in _BLOBS), one
    if name in ("synshard", "synshard1t"):
        from synshard.shards import ShardDataset
        from synshard.shards.torch_adapter import data_loader

        threads = 1 if name == "synshard1t" else None  # None: the loader's default
        ds = ShardDataset(str(work / "release"), "train", transform="eval", image_size=224, seed=0,
                          threads=threads)  # fmt: skip
        if job == "1proc":
            return iter(ds), one
        return iter(data_loader(ds, BATCH, num_workers=2, stateful=False)), lambda b: len(b["key"])
    if name == "webdataset":
        import webdataset as wds

        tars = sorted(str(p) for p in (work / "release").rglob("*.tar"))
        ds = (wds.WebDataset(tars, shardshuffle=len(tars), empty_check=False, seed=0)
              .shuffle(1000).map(lambda s: decode(s["jpg"])))  # fmt: skip
    elif name == "imagefolder":
        ds = _imagefolder(work, lambda b: decode(b))
        if job == "1proc":
            order = torch.randperm(len(ds)).tolist()
            return (ds[i][0] for i in order), one
        loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=2,
                                             collate_fn=lambda s: stack([x for x, _ in s]))  # fmt: skip
        return iter(loader), batch
    elif name == "streaming":
        from streaming import StreamingDataset
        from streaming.base.util import clean_stale_shared_memory

        clean_stale_shared_memory()

        class MDS(StreamingDataset):
            def __getitem__(self, i: int) -> Any:
                return decode(super().__getitem__(i)["image"])

        ds = MDS(local=str(work / "mds"), shuffle=True, shuffle_seed=0, batch_size=BATCH)
    elif name == "litdata":
        import litdata

        class Lit(litdata.StreamingDataset):
            def __getitem__(self, i: Any) -> Any:
                return decode(super().__getitem__(i)["image"])

        ds = Lit(str(work / "litdata"), shuffle=True, seed=0)
        if job != "1proc":
            return iter(litdata.StreamingDataLoader(ds, batch_size=BATCH, num_workers=2, collate_fn=stack)), batch
    else:
        raise SystemExit(f"bench_loader: unknown loader {name!r}")
    if job == "1proc":
        return iter(ds), one
    return iter(torch.utils.data.DataLoader(ds, batch_size=BATCH, num_workers=2, collate_fn=stack)), batch


PRELOAD = {"synshard": ["synshard.shards.loader", "synshard.shards.torch_adapter"],
           "webdataset": ["webdataset"], "imagefolder": ["torchvision.datasets"],
           "streaming": ["streaming"], "litdata": ["litdata"]}  # fmt: skip


_SHIM: list[Any] = []
_BLOBS: list[bytes] = []


def torchvision_shim() -> None:
    """torchvision 0.28.0 is the release for torch 2.13, but its PyPI wheel's C++ ops link
    against CUDA torch, so on this machine's CPU torch they do not load, and `import torchvision`
    then fails on its two unguarded fake registrations (`nms`, `qnms`). Defining those two
    schemas first lets it import; ImageFolder and mosaicml-streaming never call the ops."""
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018
    except (AttributeError, RuntimeError):
        lib = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _SHIM.append(lib)  # keeps the definitions alive


def child(name: str, work: Path, job: str) -> None:
    """One epoch, timed from building the dataset (imports done before) to its last image."""
    import importlib

    torchvision_shim()
    for module in ["numpy", "torch", "PIL.Image", "synshard.shards.augment", *PRELOAD.get(name.removesuffix("1t"), [])]:
        importlib.import_module(module)
    if name in ("floor", "synfloor"):  # the floors time decoding only: bytes read beforehand
        _BLOBS.extend(p.read_bytes() for p in sorted((work / "files").rglob("*.jpg")))
    start, cpu = time.perf_counter(), _cpu()
    items, size = make(name, work, job)
    n = sum(size(item) for item in items)
    del items  # DataLoader workers exit and are waited for, so their CPU time counts
    print(json.dumps({"images": n, "seconds": time.perf_counter() - start, "cpu": _cpu() - cpu}))


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (the DataLoader workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def prepare(work: Path) -> None:
    """In the peers' venv: the pixel check, MDS and LitData outputs from the release's own JPEG
    bytes."""
    torchvision_shim()
    check_pixels(work)
    files = sorted((work / "files").rglob("*.jpg"))
    labels = {d: i for i, d in enumerate(sorted({f.parent.name for f in files}))}
    if not (work / "mds" / "index.json").exists():
        from streaming import MDSWriter

        shutil.rmtree(work / "mds", ignore_errors=True)
        with MDSWriter(out=str(work / "mds"), columns={"image": "bytes", "label": "int"},
                       size_limit=1 << 26) as out:  # fmt: skip
            for f in files:
                out.write({"image": f.read_bytes(), "label": labels[f.parent.name]})
    if not (work / "litdata" / "index.json").exists():
        import litdata

        shutil.rmtree(work / "litdata", ignore_errors=True)
        litdata.optimize(fn=_lit_item, inputs=[str(f) for f in files], output_dir=str(work / "litdata"),
                         chunk_bytes="64MB", num_workers=1, mode="overwrite")  # fmt: skip


def _lit_item(path: str) -> dict[str, Any]:
    return {"image": Path(path).read_bytes(), "label": Path(path).parent.name}


# -- parent: build inputs, run the children alternately, report -----------------------------------
def build_inputs(work: Path, count: int) -> None:
    """The release (built by synshard from photographs) and its train images as plain files."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import photos
    import synshard
    from synshard.shards.release import open_release
    from synshard.shards.webdataset import iter_webdataset_shard

    rel = work / "release"
    if not (rel / "manifest.json").exists():
        synsets = sorted(p.name for p in (ROOT / "data" / "sample").iterdir() if p.is_dir())
        layout = work / "imagenet"
        for i, f in enumerate(photos.photo_paths(count)):
            d = layout / synsets[i % len(synsets)]
            d.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, d / f"{d.name}_{f.name}")
        synshard.build([str(layout)], str(rel), progress=False, log=lambda s: None)
        shutil.rmtree(work / "files", ignore_errors=True)
    if not (work / "files").exists():
        release = open_release(str(rel))
        for e in release.shards(split="train", format="webdataset"):
            d = work / "files" / e.synset
            d.mkdir(parents=True, exist_ok=True)
            for s in iter_webdataset_shard(release.fs, str(rel / e.path)):
                (d / f"{s['__key__']}.jpg").write_bytes(s["jpg"])


def peer_python() -> str:
    out = subprocess.run(["bash", str(ROOT / "bench/peers/venv.sh"), "loader"], cwd=ROOT,
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode:
        raise SystemExit(out.stderr.strip() or "bench_loader: bench/peers/venv.sh loader failed")
    py = str(ROOT / out.stdout.strip().splitlines()[-1])
    probe = "import synshard.shards.loader, PIL; assert 'SIMD' not in PIL.__version__"
    if subprocess.run([py, "-c", probe], capture_output=True).returncode:
        subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(ROOT)],
                       check=True)  # fmt: skip
    return py


def versions(py: str) -> dict[str, str]:
    code = ("import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in "
            "('pillow', 'webdataset', 'torchvision', 'mosaicml-streaming', 'litdata')}))")  # fmt: skip
    return json.loads(subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout)


def measure(py: str, name: str, work: Path, job: str) -> tuple[float, float]:
    """(img/s, CPU ms per image) of one epoch in a fresh process."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TQDM_DISABLE": "1"}
    out = subprocess.run([py, __file__, "--child", name, "--dir", str(work), "--job", job],
                         capture_output=True, text=True, env=env)  # fmt: skip
    if out.returncode:
        raise SystemExit(f"bench_loader: {name} ({job}) failed: {out.stderr.strip().splitlines()[-1:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["images"] / result["seconds"], 1000 * result["cpu"] / result["images"]


def rows(rates: dict, cpu: dict, ver: dict[str, str], simd: str) -> list[dict]:
    pil = f"Pillow {ver['pillow']}"
    names = {"webdataset": f"webdataset {ver['webdataset']}", "imagefolder": f"torchvision ImageFolder {ver['torchvision']}",
             "streaming": f"mosaicml-streaming {ver['mosaicml-streaming']}", "litdata": f"LitData {ver['litdata']}",
             "floor": "raw decode floor, plain Pillow path", "synfloor": "synshard's decode alone"}  # fmt: skip
    pairs = [(job, ("peer", p), ("peer", me), pil) for job in JOBS for me in MINE for p in PEERS
             if me == "synshard" or job == "1proc"]  # fmt: skip
    pairs += [("1proc", (v, floor), (v, me), pillow) for me in MINE for floor in ("floor", "synfloor")
              for v, pillow in (("peer", pil), ("simd", f"Pillow-SIMD {simd}"))]  # fmt: skip
    out = []
    for job, (pv, pn), (mv, mn), pillow in pairs:
        peer, me = (pv, pn, job), (mv, mn, job)
        if peer not in rates or me not in rates:
            continue
        how = MINE[mn] if job == "1proc" else "inline in each worker"
        note = (f"both on {pillow}; synshard {how}; CPU ms/img: synshard {cpu[me]:.2f}, peer {cpu[peer]:.2f}"
                + (f"; load average {LOAD[0]:.1f} before, {LOAD[1]:.1f} after" if len(LOAD) == 2 else ""))  # fmt: skip
        label = "" if mn == "synshard" else ", synshard inline (threads=1)"
        out.append({"job": f"loader, one epoch, decode + centre crop 224, {JOBS[job]}{label}",
                    "peer": names[pn] + ("" if pn not in ("floor", "synfloor") else f" ({pillow})"),
                    "peer_value": rates[peer], "synshard_value": rates[me], "unit": "img/s",
                    "higher_is_better": True, "note": note})  # fmt: skip
    return out


MINE = {"synshard": "with its default 2 decode threads", "synshard1t": "inline (threads=1)"}
LOAD: list[float] = []


def report(rates: dict, cpu: dict) -> None:
    """Every figure, then synshard against the fastest peer and against the floors."""
    for (venv, name, job), rate in rates.items():
        pil = "Pillow-SIMD" if venv == "simd" else "Pillow"
        print(f"{JOBS[job]:26s} {name:12s} {pil:12s} {rate:8.1f} img/s  {cpu[venv, name, job]:5.2f} CPU ms/img")
    for job in JOBS:
        peers = {p: rates[("peer", p, job)] for p in PEERS if ("peer", p, job) in rates}
        if not peers:
            continue
        best = max(peers, key=peers.get)  # type: ignore[arg-type]
        for me in MINE:
            if ("peer", me, job) in rates:
                print(f"ratio  {JOBS[job]:26s} {me:11s} / fastest peer ({best}, Pillow): "
                      f"{rates['peer', me, job] / peers[best]:5.2f}")  # fmt: skip
    for venv in ("peer", "simd"):
        for floor in ("floor", "synfloor"):
            for me in MINE:
                if (venv, me, "1proc") in rates and (venv, floor, "1proc") in rates:
                    print(f"ratio  1 process {me:11s} / {floor:8s} ({'Pillow-SIMD' if venv == 'simd' else 'Pillow'}): "
                          f"{rates[venv, me, '1proc'] / rates[venv, floor, '1proc']:5.2f}")  # fmt: skip
    if len(LOAD) == 2:
        print(f"load average (1 min): {LOAD[0]:.1f} before, {LOAD[1]:.1f} after")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3000, help="photographs in the release")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", default=str(ROOT / ".cache/bench-loader"))
    ap.add_argument("--json", default=None, help="write the rows for `make bench-peers` here")
    ap.add_argument("--only", default=None, help="comma-separated loaders (default: all)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--job", default="1proc", help=argparse.SUPPRESS)
    ap.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.dir) if args.dir else Path(args.work) / str(args.count)
    if args.child:
        return child(args.child, work, args.job)
    if args.prepare:
        return prepare(work)
    build_inputs(work, args.count)
    py = peer_python()
    subprocess.run([py, __file__, "--prepare", "--dir", str(work)], check=True)
    ver = versions(py)
    import PIL

    check_pixels(work)  # on this venv's Pillow-SIMD too
    pythons = {"peer": py, "simd": sys.executable}
    wanted = set(args.only.split(",")) if args.only else None
    mine = [("simd", "floor"), ("peer", "floor"), ("simd", "synfloor"), ("peer", "synfloor"),
            ("simd", "synshard"), ("peer", "synshard"), ("simd", "synshard1t"), ("peer", "synshard1t")]  # fmt: skip
    plan = [(v, n, j) for j in JOBS for v, n in mine + [("peer", p) for p in PEERS]
            if not (n in ("floor", "synfloor", "synshard1t") and j != "1proc")]
    plan = [p for p in plan if wanted is None or p[1] in wanted]
    images = sum(1 for _ in (work / "files").rglob("*.jpg"))
    LOAD.append(os.getloadavg()[0])
    print(f"{images} train images; Pillow {ver['pillow']} (peers) and Pillow-SIMD {PIL.__version__}; "
          f"{args.repeats} rounds, alternating; median img/s; load average {LOAD[0]:.1f}", file=sys.stderr)  # fmt: skip
    runs: dict[tuple[str, str, str], list[tuple[float, float]]] = {p: [] for p in plan}
    for r in range(args.repeats):
        for key in plan:
            runs[key].append(measure(pythons[key[0]], key[1], work, key[2]))
        print(f"round {r + 1}/{args.repeats} done", file=sys.stderr)
    LOAD.append(os.getloadavg()[0])
    rates = {k: statistics.median(x for x, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    report(rates, cpu)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows(rates, cpu, ver, PIL.__version__)}, indent=1))


if __name__ == "__main__":
    main()
