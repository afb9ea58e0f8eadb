"""The inputs of `make bench-peers`, generated once per setting into .cache/bench-peers/.

Every generator is deterministic for its seed (the photo ones for a given Pillow build), and each
writes a small JSON manifest of what it made, so both tools of a job read the same files.

- `simulate_votes(images, votes_per_image, workers, classes, seed)`: a simulated crowd with known
  truth, numpy only (the crowd-kit venv reads it too). classes=2 is yes/no (truth True with
  probability 0.3); classes>2 is one label out of `classes` (uniform truth). Workers come in
  blocks: 60% reliable (right with probability 0.85, otherwise a uniform wrong label), 20%
  spammers that always answer the same (yes; label 0) or, with spammers="random", answer at
  random, 10% random clickers, 10% adversarial
  (wrong with probability 0.85). The same mix as synshard.synsets.simulate.CrowdSpec's defaults.
- `plant_copies(photos, out, copies, seed)`: the distinct photos plus `copies` planted near
  copies, each made by one of COPY_KINDS from a distinct source photo.
- `url_photos(...)` / `write_url_lists(...)`: the crawl's URL lists for a local server.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

KINDS = ("reliable", "spammer", "random", "adversarial")
SHARES = (0.6, 0.2, 0.1, 0.1)
ACCURACY = 0.85
POSITIVE_RATE = 0.3


def worker_kinds(workers: int) -> np.ndarray:
    """0 reliable, 1 spammer, 2 random, 3 adversarial, in blocks by SHARES."""
    counts = np.floor(np.array(SHARES) * workers).astype(int)
    counts[0] += workers - counts.sum()
    return np.repeat(np.arange(len(KINDS)), counts)


def _other_label(rng: np.random.Generator, truth: np.ndarray, classes: int) -> np.ndarray:
    """A uniformly chosen label different from `truth`."""
    return (truth + rng.integers(1, classes, truth.size)) % classes


def simulate_votes(images: int, votes_per_image: int, workers: int, classes: int = 2,
                   seed: int = 0, spammers: str = "constant") -> dict[str, np.ndarray]:
    """`image`, `worker`, `label` per vote (int arrays) and `truth` per image.

    spammers="constant": the spammers always give the same answer (yes; label 0);
    "random": they answer uniformly at random (like the random clickers).
    """
    if spammers not in ("constant", "random"):
        raise ValueError(f"spammers must be constant or random, not {spammers!r}")
    if classes < 2:
        raise ValueError("classes must be >= 2")
    rng = np.random.default_rng(seed)
    truth = (rng.random(images) < POSITIVE_RATE).astype(np.int64) if classes == 2 \
        else rng.integers(0, classes, images)
    image = np.repeat(np.arange(images), votes_per_image)
    worker = rng.integers(0, workers, image.size)  # with replacement, as CrowdSpec does
    kind = worker_kinds(workers)[worker]
    true = truth[image]
    right = rng.random(image.size) < ACCURACY
    wrong = _other_label(rng, true, classes)
    spam = np.ones_like(true) if classes == 2 else np.zeros_like(true)
    if spammers == "random":
        spam = rng.integers(0, classes, image.size)
    label = np.select([kind == 0, kind == 1, kind == 2],
                      [np.where(right, true, wrong), spam, rng.integers(0, classes, image.size)],
                      default=np.where(right, wrong, true))
    return {"image": image, "worker": worker, "label": label.astype(np.int64), "truth": truth}


def save_votes(votes: dict[str, np.ndarray], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **votes)
    return path


def load_votes(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def one_vs_rest(votes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Multi-class votes as yes/no votes on (image, candidate label) pairs, the ImageNet way.

    The candidates of an image are the labels any of its workers gave; each of its workers then
    answers yes for the label they gave and no for every other candidate.
    """
    image, worker, label = votes["image"], votes["worker"], votes["label"]
    classes = int(label.max()) + 1
    given = np.zeros((int(image.max()) + 1, classes), dtype=bool)
    given[image, label] = True
    cand_image, cand_label = np.nonzero(given)
    per_image = np.bincount(cand_image, minlength=given.shape[0])
    starts = np.concatenate([[0], np.cumsum(per_image)[:-1]])
    reps = per_image[image]  # each vote expands to its image's candidates
    vote_idx = np.repeat(np.arange(image.size), reps)
    within = np.arange(vote_idx.size) - np.repeat(np.cumsum(reps) - reps, reps)
    cand = cand_label[starts[image[vote_idx]] + within]
    return {"image": image[vote_idx], "synset": cand, "worker": worker[vote_idx],
            "vote": cand == label[vote_idx]}


# --- near duplicates -------------------------------------------------------------------------

COPY_KINDS = ("q60", "half", "bright8", "half+q60")


def make_copy(data: bytes, kind: str) -> bytes:
    """A planted near copy of a JPEG: re-encoded at q60, halved, 8% brighter, or halved at q60."""
    from PIL import Image, ImageEnhance

    with Image.open(io.BytesIO(data)) as src:
        im = src.convert("RGB")
    quality = 90
    if "half" in kind:
        im = im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.LANCZOS)
    if "bright8" in kind:
        im = ImageEnhance.Brightness(im).enhance(1.08)
    if "q60" in kind:
        quality = 60
    if kind not in COPY_KINDS:
        raise ValueError(f"unknown copy kind {kind!r}")
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()


def plant_copies(photos: list[Path], out: Path, copies: int, seed: int = 0) -> dict:
    """Writes out/<i>.jpg: the photos (distinct), then `copies` near copies; returns the manifest.

    Manifest: `files` (name per index), `distinct` (how many of them are the photos),
    `planted` ([copy index, source index, kind] per copy, distinct sources).
    """
    if copies > len(photos):
        raise ValueError(f"{copies} copies need at least as many photos, got {len(photos)}")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    names, planted = [], []
    for i, p in enumerate(photos):
        names.append(f"{i:05d}.jpg")
        (out / names[-1]).write_bytes(Path(p).read_bytes())
    sources = rng.choice(len(photos), copies, replace=False)
    for k, src in enumerate(sources.tolist()):
        kind = COPY_KINDS[k % len(COPY_KINDS)]
        names.append(f"{len(names):05d}.jpg")
        (out / names[-1]).write_bytes(make_copy(Path(photos[src]).read_bytes(), kind))
        planted.append([len(names) - 1, src, kind])
    manifest = {"files": names, "distinct": len(photos), "planted": planted, "seed": seed,
                "sha256": [hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names]}
    (out / "manifest.json").write_text(json.dumps(manifest) + "\n")
    return manifest


def score_pairs(pairs: set[tuple[int, int]], manifest: dict) -> dict:
    """Recall of the planted copies and the false pairs among the distinct photos.

    `pairs`: unordered index pairs (i < j) a tool reported within the radius.
    """
    planted = {(min(c, s), max(c, s)) for c, s, _ in manifest["planted"]}
    distinct = manifest["distinct"]
    found = len(planted & pairs)
    false_distinct = sum(1 for i, j in pairs if i < distinct and j < distinct)
    return {"recall": found / max(len(planted), 1), "found": found, "planted": len(planted),
            "false_pairs_distinct": false_distinct, "pairs": len(pairs)}


# --- crawl ------------------------------------------------------------------------------------

CRAWL_SYNSET = "n01440764"  # tench: any WordNet noun synset; the crawl ignores labels


def write_url_lists(base: str, names: list[str], out: Path) -> tuple[Path, Path]:
    """urls.txt (img2dataset's txt input) and urls.csv (synshard's `url,synset` list), same URLs."""
    out.mkdir(parents=True, exist_ok=True)
    urls = [f"{base}/{name}" for name in names]
    txt, csv = out / "urls.txt", out / "urls.csv"
    txt.write_text("\n".join(urls) + "\n")
    csv.write_text("url,synset\n" + "".join(f"{u},{CRAWL_SYNSET}\n" for u in urls))
    return txt, csv
