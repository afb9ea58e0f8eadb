"""Perceptual hashes of data outside a build, and the leakage of an evaluation set into a release.

Two users: `synshard leakage RELEASE EVALSET` (which eval images have near copies in a release,
without building anything) and `synshard build --dedup-against URI...` (drop inputs that
near-duplicate an earlier release or an external evaluation set). Both need one table of phashes
per outside URI, `external_hashes`:

- a committed release: the `phash` stored in its records, read from the Parquet shards with column
  projection (no image bytes), or, for a WebDataset-only release, from the `.json` members alone
  (ranged reads through the shard indexes; a streamed tar where a shard has none);
- anything else the build can read (a folder in ImageNet layout, a flat folder of images, a tar,
  a tar of tars; any fsspec URI): read and transformed here, in this process, with the *release's*
  TransformOptions, because the phash is computed on the transform's output image. Eval sets are
  small (ImageNet's val set is 50,000 images, a few minutes on one core), so this runs without Ray;
  memory stays bounded by one candidate batch (<= 256 images, <= 64 MiB).

Eval images need no synset: a row without one is given the placeholder `n00000000` for the
transform (which otherwise rejects it as "no synset") and gets its synset and key nulled after.
Every input ends as a row: hashed (`phash` set) or not (`reason` says why).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.ingest.sources import plan_sources, read_task
from synshard.shards.layout import MANIFEST_NAME, ShardEntry, ShardError, join
from synshard.shards.manifest import Manifest
from synshard.shards.parquet import parquet_dataset
from synshard.shards.reader import shard_json
from synshard.shards.release import Release, open_release, release_fs
from synshard.shards.tables import HASH_SCHEMA, LEAKAGE_SCHEMA
from synshard.errors import SynshardError
from synshard.transforms.neardup_between import near_pairs  # noqa: F401  (re-exported)
from synshard.transforms.options import DedupOptions, ResizeSpec, TransformOptions
from synshard.transforms.process import transform_batch

PLACEHOLDER_SYNSET = "n00000000"  # not a WordNet noun offset: never a real class
NO_SYNSET = "no synset"  # ingest's reason for a readable input that no folder or label names
DEFAULT_RADIUS = DedupOptions().near_radius or 6
# Options that change the hashed image (and so the phash); the rest only change encoded bytes.
HASH_OPTIONS = ("resize", "upscale", "draft")


Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# --- options recorded in a manifest -------------------------------------------------------------


def transform_options(config: dict[str, Any]) -> TransformOptions:
    """The TransformOptions a release was built with, from its manifest `config`.

    The shape is `BuildConfig.content()["transform"]` (dataclass fields, resize as `shorter:256`).
    Unknown keys (a newer tool) are ignored and missing ones take the defaults, so that an old or
    hand-written manifest still opens; bad values raise SynshardError.
    """
    recorded = dict(config.get("transform") or {})
    names = {f.name for f in dataclasses.fields(TransformOptions)}
    values = {k: v for k, v in recorded.items() if k in names}
    if isinstance(values.get("resize"), str):
        values["resize"] = ResizeSpec.parse(values["resize"])
    try:
        return TransformOptions(**values)
    except TypeError as exc:
        raise SynshardError(f"manifest transform options are malformed: {exc}") from None


def release_radius(config: dict[str, Any]) -> int:
    """The near-dup radius a release was built with (`dedup.near_radius`), else the default 6."""
    radius = (config.get("dedup") or {}).get("near_radius")
    return radius if isinstance(radius, int) and not isinstance(radius, bool) else DEFAULT_RADIUS


def transform_mismatch(manifest: Manifest, transform: TransformOptions) -> str | None:
    """Why a release's stored phashes may not be comparable with hashes made with `transform`."""
    theirs = transform_options(manifest.config)
    differ = [n for n in HASH_OPTIONS if getattr(theirs, n) != getattr(transform, n)]
    if not differ:
        return None
    said = ", ".join(f"{n} {getattr(theirs, n)} vs {getattr(transform, n)}" for n in differ)
    return (f"release {manifest.name!r} was hashed with other transform options ({said}); "
            "distances between its copies and these images may be larger")


# --- hashes of a committed release --------------------------------------------------------------


def find_release(uri: str, storage_options: dict | None = None) -> Release | None:
    """The committed release at `uri`, or None when `uri` is not one (a folder of images, a tar).

    A release whose manifest exists but cannot be read raises: it is not an image folder.
    """
    fs, root = release_fs(uri, storage_options)
    try:
        present = fs.isfile(join(root, MANIFEST_NAME))
    except OSError:
        present = False
    return open_release(uri, storage_options) if present else None


def release_hashes(release: Release) -> pa.Table:
    """HASH_SCHEMA rows of every record of `release`, reading no image bytes."""
    parquet = release.shards(format="parquet")
    try:
        if parquet:
            return _parquet_hashes(release, parquet)
        return _webdataset_hashes(release, release.shards(format="webdataset"))
    except (ShardError, OSError, ValueError, pa.ArrowInvalid) as exc:
        raise SynshardError(f"cannot read phashes of {release.uri('')}: {exc}") from None


def _parquet_hashes(release: Release, entries: list[ShardEntry]) -> pa.Table:
    """Column projection over the committed Parquet shards: key, source, phash (+ partitions)."""
    dataset = parquet_dataset(release.fs, release.root, [e.path for e in entries])
    table = dataset.to_table(columns=["source", "key", "synset", "split", "phash"])
    return _with_reason(table)


def _with_reason(table: pa.Table) -> pa.Table:
    table = table.append_column("reason", pa.nulls(table.num_rows, pa.string()))
    return table.select(HASH_SCHEMA.names).cast(HASH_SCHEMA)


def _webdataset_hashes(release: Release, entries: list[ShardEntry]) -> pa.Table:
    """The `.json` members of each tar shard (ranged reads where the shard has an index)."""
    rows: list[dict[str, Any]] = []
    for entry in entries:
        for meta in shard_json(release, entry):
            rows.append({name: meta.get(name) for name in HASH_SCHEMA.names})
    return pa.Table.from_pylist(rows, schema=HASH_SCHEMA)


# --- hashes of images (folders, tars) -----------------------------------------------------------


def hash_candidates_batch(candidates: pa.Table, transform: TransformOptions) -> pa.Table:
    """CANDIDATE_SCHEMA rows -> HASH_SCHEMA rows, same count and order (pure; no I/O).

    Rows without a synset are transformed under PLACEHOLDER_SYNSET, then given a null synset and
    key again, so a flat folder of eval images hashes like any other.
    """
    done = transform_batch(_with_placeholder(candidates), transform)
    missing = pc.is_null(candidates["synset"])
    null = pa.nulls(done.num_rows, pa.string())
    reason = pc.binary_join_element_wise(done["stage"], done["reason"], ": ")
    return pa.table(
        {
            "source": done["source"],
            "key": pc.if_else(missing, null, done["key"]),
            "synset": pc.if_else(missing, null, done["synset"]),
            "split": done["split"],
            "phash": done["phash"],
            "reason": reason,
        },
        schema=HASH_SCHEMA,
    )


def _with_placeholder(candidates: pa.Table) -> pa.Table:
    """Rows without a synset get PLACEHOLDER_SYNSET, and lose ingest's `no synset` rejection
    (ingest keeps their bytes), so the transform hashes them; other rejections stay."""
    missing = pc.is_null(candidates["synset"])
    unlabelled = pc.and_kleene(missing, pc.equal(candidates["reason"], NO_SYNSET))
    synset = pc.if_else(missing, pa.scalar(PLACEHOLDER_SYNSET), candidates["synset"])
    reason = pc.if_else(unlabelled, pa.scalar(None, pa.string()), candidates["reason"])
    for name, column in (("synset", synset), ("reason", reason)):
        candidates = candidates.set_column(candidates.schema.get_field_index(name), name, column)
    return candidates


def source_hashes(uri: str, transform: TransformOptions, storage_options: dict | None = None,
                  log: Log = _quiet) -> pa.Table:
    """HASH_SCHEMA rows of every input of a build source (folder, tar, ...), in plan order.

    Runs in this process, one candidate batch at a time: meant for evaluation-set sizes.
    """
    plan = plan_sources([uri], storage_options=storage_options)
    parts, done = [], 0
    for task in plan.tasks:
        for batch in read_task(task, storage_options):
            parts.append(hash_candidates_batch(batch, transform))
            done += batch.num_rows
        log(f"hashed {done} inputs of {uri}")
    return pa.concat_tables(parts) if parts else HASH_SCHEMA.empty_table()


def external_hashes(uris: Sequence[str], transform: TransformOptions,
                    storage_options: dict | None = None, *, log: Log = _quiet) -> pa.Table:
    """HASH_SCHEMA rows of every image of `uris` (releases, folders, tars), in the given order.

    `transform` must be the options of the release these hashes are compared with (a build's own,
    for `--dedup-against`). A release's stored hashes are used as they are; when it was built
    with other hash-affecting options, `log` says so. A URI that cannot be found raises
    SynshardError; an image that cannot be hashed is a row with a reason.
    """
    parts = []
    for uri in uris:
        release = find_release(uri, storage_options)
        if release is None:
            parts.append(source_hashes(uri, transform, storage_options, log))
            continue
        note = transform_mismatch(release.manifest, transform)
        if note:
            log(f"note: {note}")
        parts.append(release_hashes(release))
    return pa.concat_tables(parts) if parts else HASH_SCHEMA.empty_table()


# --- leakage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leakage:
    """What `find_leakage` found: the pairs and how many eval images took part."""

    pairs: pa.Table  # LEAKAGE_SCHEMA, one row per (eval image, release image) within radius
    evaluated: int  # eval images hashed (each compared with every release image)
    unhashed: pa.Table  # HASH_SCHEMA rows of eval inputs that could not be hashed
    release_images: int
    radius: int
    notes: tuple[str, ...] = ()

    @property
    def leaked(self) -> int:
        """Eval images with at least one copy in the release."""
        return len(set(zip(self.pairs["eval_source"].to_pylist(),
                           self.pairs["eval_key"].to_pylist())))


def find_leakage(release_uri: str, evalset_uri: str, radius: int | None = None,
                 storage_options: dict | None = None, log: Log = _quiet) -> Leakage:
    """Which images of `evalset_uri` have near copies (phash within `radius`) in the release."""
    release = open_release(release_uri, storage_options)
    radius = release_radius(release.manifest.config) if radius is None else radius
    if not 0 <= radius <= 32:
        raise SynshardError(f"bad radius {radius}: use 0..32")
    transform = transform_options(release.manifest.config)
    theirs = release_hashes(release)
    ours, notes = _eval_hashes(evalset_uri, transform, storage_options, log)
    hashed = ours.filter(pc.is_valid(ours["phash"]))
    theirs = theirs.filter(pc.is_valid(theirs["phash"]))
    i, j, dist = near_pairs(_u64(hashed), _u64(theirs), radius)
    order = np.lexsort((j, dist, i))  # eval images in input order, closest copies first
    i, j, dist = i[order], j[order], dist[order]
    pairs = _pair_table(hashed.take(pa.array(i)), theirs.take(pa.array(j)), dist)
    unhashed = ours.filter(pc.is_null(ours["phash"]))
    return Leakage(pairs, hashed.num_rows, unhashed, theirs.num_rows, radius, notes)


def _eval_hashes(uri: str, transform: TransformOptions, storage_options: dict | None,
                 log: Log) -> tuple[pa.Table, tuple[str, ...]]:
    """The eval set's hashes, and a note when it is a release hashed with other options."""
    evalset = find_release(uri, storage_options)
    if evalset is None:
        return source_hashes(uri, transform, storage_options, log), ()
    note = transform_mismatch(evalset.manifest, transform)
    return release_hashes(evalset), (note,) if note else ()


def leakage(release_uri: str, evalset_uri: str, radius: int | None = None,
            storage_options: dict | None = None) -> pa.Table:
    """LEAKAGE_SCHEMA pairs: eval images with near copies in the release (see `find_leakage`)."""
    return find_leakage(release_uri, evalset_uri, radius, storage_options).pairs


def _u64(table: pa.Table) -> np.ndarray:
    return table["phash"].to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)


def _pair_table(ev: pa.Table, rel: pa.Table, dist: np.ndarray) -> pa.Table:
    columns = {
        "eval_source": ev["source"], "eval_key": ev["key"], "eval_synset": ev["synset"],
        "release_key": rel["key"], "release_source": rel["source"],
        "release_split": rel["split"], "release_synset": rel["synset"],
        "distance": pa.array(dist.astype(np.int32), pa.int32()),
    }  # fmt: skip
    return pa.table(columns, schema=LEAKAGE_SCHEMA)
