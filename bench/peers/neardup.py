"""Near-duplicate job: perceptual hashes within a Hamming radius, synshard vs imagededup PHash.

    python bench/peers/neardup.py synshard|imagededup DIR RADIUS     # prints one JSON line

DIR holds the photos and planted copies of `peer_inputs.plant_copies` (with manifest.json).
Each side hashes every file and then searches for all pairs within RADIUS; hashing and search
are timed apart in wall seconds (imagededup hashes and searches with a process pool sized to
the CPUs, on its defaults; synshard's search is single-threaded), and the pairs are scored by
`peer_inputs.score_pairs`.
- imagededup (installed without its CNN extras, torch and torchvision: see
  requirements/imagededup.txt): `PHash().encode_images(image_dir=DIR)`, then
  `find_duplicates(encoding_map=..., max_distance_threshold=RADIUS)` (default brute-force
  search, Cython).
- synshard: `synshard.transforms.phash.phash_image` per decoded RGB image (what a build hashes),
  then `synshard.transforms.neardup.find_pairs(hashes, RADIUS)` (exact multi-block index).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

import peer_inputs


def run_synshard(root: Path, manifest: dict, radius: int) -> dict:
    from PIL import Image

    from synshard.transforms import neardup
    from synshard.transforms.phash import phash_image

    t0 = time.perf_counter()
    hashes = []
    for name in manifest["files"]:
        with Image.open(root / name) as im:
            hashes.append(phash_image(im.convert("RGB")))
    h = np.array(hashes, dtype=np.uint64)
    t1 = time.perf_counter()
    i, j, _ = neardup.find_pairs(h, radius)
    t2 = time.perf_counter()
    pairs = {(min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist())}
    return {"hash_s": t1 - t0, "search_s": t2 - t1, **peer_inputs.score_pairs(pairs, manifest)}


def _imagededup_phash():
    """imagededup's PHash, without its CNN extras (see requirements/imagededup.txt).

    `imagededup.methods` and `imagededup.utils` import their CNN modules eagerly, and those
    import torch and torchvision; PHash never calls them, so the two modules are stubbed.
    """
    import types

    for name, attr in (("imagededup.methods.cnn", "CNN"), ("imagededup.utils.models", "CustomModel")):
        stub = types.ModuleType(name, "stub: the CNN method is not installed (PHash only)")
        setattr(stub, attr, None)
        sys.modules[name] = stub
    from imagededup.methods import PHash

    return PHash


def run_imagededup(root: Path, manifest: dict, radius: int) -> dict:
    PHash = _imagededup_phash()

    index = {name: k for k, name in enumerate(manifest["files"])}
    phasher = PHash(verbose=False)
    t0 = time.perf_counter()
    encodings = phasher.encode_images(image_dir=str(root))
    t1 = time.perf_counter()
    dups = phasher.find_duplicates(encoding_map=encodings, max_distance_threshold=radius)
    t2 = time.perf_counter()
    pairs = {(min(index[a], index[b]), max(index[a], index[b]))
             for a, others in dups.items() for b in others}
    return {"hash_s": t1 - t0, "search_s": t2 - t1, "hashed": len(encodings),
            **peer_inputs.score_pairs(pairs, manifest)}


def main() -> None:
    side, root, radius = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    manifest = json.loads((root / "manifest.json").read_text())
    fn = {"synshard": run_synshard, "imagededup": run_imagededup}[side]
    print(json.dumps(fn(root, manifest, radius)))


if __name__ == "__main__":
    main()
