"""The global decisions of a build, on metadata only: splits, dedup, caps, class list, labels.

Pure functions over the metadata table that the transform stage returns (no image bytes), so they
cost well under 100 bytes an image and never touch Ray, the network or the disk. Each step moves
rows out of `accepted` into the ledger (rejects with stage and reason, duplicates with the kept
copy), so `inputs = accepted + rejected + duplicates` holds by construction, and is checked.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.config import BuildConfig
from synshard.builder.decide.base import against_base, settle_base
from synshard.builder.decide.incremental import BaseRelease, Takedown
from synshard.builder.decide.memory import bound_heap, release, unbound_heap
from synshard.builder.decide.near_ray import near_search
from synshard.builder.decide.rows import Accepted, plain
from synshard.shards.splits import assign_splits_batch, cap_per_synset_mask
from synshard.transforms.dedup import exact_dedup, sha256_block
from synshard.transforms.neardup_between import near_pairs
from synshard.shards.tables import CONFLICT_SCHEMA, REMOVAL_SCHEMA
from synshard.transforms.neardup_policy import near_dedup
from synshard.transforms.takes import shared_dictionary, take_column
from synshard.transforms.schema import DUPLICATE_SCHEMA, REJECT_SCHEMA

REJECT_COLUMNS = REJECT_SCHEMA.names


@dataclass(frozen=True)
class Decisions:
    kept: pa.Table  # metadata of accepted new samples with split, label; sorted by key
    rejects: pa.Table  # REJECT_SCHEMA
    duplicates: pa.Table  # DUPLICATE_SCHEMA
    conflicts: pa.Table  # CONFLICT_SCHEMA: near pairs across synsets that both survived (its
    # strings may be dictionary-encoded: write_table decodes them)
    classes: list[str]  # wnids in label order
    accounting: dict[str, int]  # this build's inputs: inputs = accepted + rejected + duplicates
    base_kept: pa.Table | None = None  # base samples carried over (label, base_label, shard)
    removals: pa.Table = field(default_factory=REMOVAL_SCHEMA.empty_table)


@dataclass
class _Ledger:
    rejects: list[pa.Table] = field(default_factory=list)
    duplicates: list[pa.Table] = field(default_factory=list)
    conflicts: list[pa.Table] = field(default_factory=list)

    def reject(self, rows: pa.Table, stage: str | None = None,
               reason: str | list[str] | None = None) -> None:
        self.rejects.append(_reject_rows(rows, stage, reason).cast(REJECT_SCHEMA))


def decide(meta: pa.Table, cfg: BuildConfig, classes: list[str] | None = None,
           posteriors: pa.Table | None = None, base: BaseRelease | None = None,
           takedown: Takedown | None = None, external: pa.Table | None = None) -> Decisions:
    """Settle every input: accepted, rejected (with stage and reason) or duplicate.

    The accepted rows are row numbers into `meta` (decide/rows.py): each step reads the columns
    it needs, and the kept table is taken once, at the end, sorted by key."""
    bound_heap()  # (decide/memory.py)
    try:
        return _decide(meta, cfg, classes, posteriors, base, takedown, external)
    finally:
        unbound_heap()


def _decide(meta: pa.Table, cfg: BuildConfig, classes: list[str] | None,
            posteriors: pa.Table | None, base: BaseRelease | None, takedown: Takedown | None,
            external: pa.Table | None) -> Decisions:
    release()  # what the gather freed
    ledger = _Ledger()
    ok = pc.is_null(meta.column("reason"))
    ledger.reject(plain(meta.filter(pc.invert(ok))))
    accepted = Accepted(meta, np.flatnonzero(ok.to_numpy(zero_copy_only=False)))
    hashed = cfg.splits.val_fraction or cfg.splits.test_fraction  # else no key is read
    accepted.set("split", assign_splits_batch(accepted.table(["key", "split"] if hashed
                                                             else ["split"]), cfg.splits)["split"])
    _confidence_step(accepted, cfg, posteriors, ledger)
    _takedown_step(accepted, takedown, ledger)
    _external_step(accepted, external, cfg, ledger)
    base_kept, removals = None, REMOVAL_SCHEMA.empty_table()
    if base is not None:
        base_kept, removals = settle_base(base, cfg, takedown, classes)
        found = against_base(accepted.table(BASE_COLUMNS), base_kept, cfg)
        ledger.duplicates.append(found.duplicates)
        ledger.conflicts.append(found.conflicts)
        accepted.keep(found.keep)
    _dedup_step(accepted, cfg, ledger)
    _classes_step(accepted, classes, ledger)
    _cap_step(accepted, cfg, ledger)
    if classes is None:
        synsets = set(pc.unique(accepted.column("synset")).to_pylist())
        synsets |= set(base_kept["synset"].to_pylist()) if base_kept is not None else set()
        classes = sorted(synsets)
    kept = _kept_table(accepted, classes)
    del accepted  # (its row numbers and splits, before the ledger is sorted)
    if base_kept is not None:
        base_kept = _with_labels(base_kept, classes).sort_by("key")
    return _finish(meta.num_rows, kept, ledger, classes, base_kept, removals)


# What a step reads of the accepted rows; the kept table leaves out what nothing after the
# decisions reads (sources, hashes, sizes, the read stage's verdict: assembly reads the records
# themselves from staging by `staged_path` and `staged_row`).
BASE_COLUMNS = ["key", "source", "synset", "split", "sha256", "phash"]
KEPT_DROP = ("source", "sha256", "phash", "width", "height", "stage", "reason", "label")


def _kept_table(accepted: Accepted, classes: list[str]) -> pa.Table:
    """The kept rows in key order, without what nothing after the decisions reads. Assembly
    takes its columns per synset, so they come as one chunk each; the key (read whole, once)
    may stay in the take's batches (decide/rows.py `Accepted.take`). The synset stays
    dictionary-encoded where the gathered table has it so (4 bytes a row, not ~13)."""
    order = _key_order(accepted).astype(accepted.rows.dtype)  # (int32 below 2**31 rows)
    release()
    columns = [c for c in accepted.column_names if c not in KEPT_DROP]
    return _with_labels(accepted.take(order, columns, chunked=("key",), encoded=("synset",)),
                        classes)


def _key_order(accepted: Accepted) -> np.ndarray:
    """The accepted rows' stable order by key (what sort_by("key") did).

    A gathered key is `<synset>_<16 lowercase hex digits>` (the sha256's first 64-bit block),
    so where no synset holds a `_`, key order is the order of `synset + "_"` then of the block:
    two integer columns sorted with NumPy (12 bytes a row), not ten million strings made and
    compared. A table that holds its keys (or hex hashes, or such synsets) sorts the keys."""
    meta, rows = accepted.meta, accepted.rows
    ranks = None
    if "key" not in meta.column_names and pa.types.is_fixed_size_binary(meta.schema.field(
            "sha256").type):
        ranks = _synset_ranks(meta.column("synset"), rows)
    if ranks is None:
        return pc.sort_indices(accepted.column("key")).to_numpy()
    return np.lexsort((sha256_block(meta.column("sha256"))[rows], ranks))


def _synset_ranks(synset: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray | None:
    """Per row, the rank of `synset + "_"` among the table's synsets (int32), or None where a
    synset holds a `_` or is empty or null (its key order is not that of its synset)."""
    synset = pc.dictionary_encode(synset) if not pa.types.is_dictionary(synset.type) else \
        _one_dictionary(synset)
    names = synset.chunk(0).dictionary if synset.num_chunks else pa.array([], pa.string())
    taken = take_column(synset, rows)
    if taken.null_count or pc.any(pc.match_substring(names, "_")).as_py() or \
            pc.any(pc.equal(names, "")).as_py():
        return None
    order = pc.sort_indices(pc.binary_join_element_wise(names, "", "_")).to_numpy()
    rank = np.empty(len(names), np.int32)
    rank[order] = np.arange(len(names), dtype=np.int32)
    return np.concatenate([np.empty(0, np.int32)] + [
        rank[c.indices.to_numpy(zero_copy_only=False)] for c in taken.chunks])


def _one_dictionary(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """`column` with one dictionary for all chunks: as it is where they share one (as the
    gather's `unify_dictionaries` leaves them: unifying ~39,000 chunks again took GBs)."""
    return column if not column.num_chunks or shared_dictionary(column) is not None else \
        column.unify_dictionaries()


def _conflicts(tables: list[pa.Table]) -> pa.Table:
    """The conflicts in (key, other_key) order. Near dedup's come in that order and
    dictionary-encoded (transforms/neardup_policy.py): a lone one is kept as it is, since casting
    or sorting it would make every pair's strings (they are decoded as the side table is written)."""
    if len(tables) == 1 and _in_key_order(tables[0]):
        return tables[0]
    conflicts = pa.concat_tables([c.cast(CONFLICT_SCHEMA) for c in tables]
                                 or [CONFLICT_SCHEMA.empty_table()])
    return conflicts.sort_by([("key", "ascending"), ("other_key", "ascending")])


ORDER_SLICE = 1 << 16  # conflict rows whose keys are made at a time to check their order


def _in_key_order(table: pa.Table) -> bool:
    """Whether a conflicts table's rows are in (key, other_key) order (vectorised, a slice at
    a time: the keys of 1.18M encoded pairs made at once were +67 MiB at decide's end)."""
    return all(_slice_in_key_order(table.slice(at, ORDER_SLICE + 1))
               for at in range(0, max(table.num_rows - 1, 1), ORDER_SLICE))


def _slice_in_key_order(table: pa.Table) -> bool:
    n = table.num_rows
    if n < 2:
        return True
    key, other = (table[c].cast(pa.string()) for c in ("key", "other_key"))
    k0, k1, o0, o1 = key.slice(0, n - 1), key.slice(1), other.slice(0, n - 1), other.slice(1)
    ordered = pc.or_(pc.greater(k1, k0), pc.and_(pc.equal(k1, k0), pc.greater_equal(o1, o0)))
    return bool(pc.all(ordered, skip_nulls=False).as_py())  # a null key: not in order


def _finish(inputs: int, accepted: pa.Table, ledger: _Ledger, classes: list[str],
            base_kept: pa.Table | None, removals: pa.Table) -> Decisions:
    rejects = pa.concat_tables(ledger.rejects or [REJECT_SCHEMA.empty_table()])
    rejects = rejects.sort_by([("source", "ascending"), ("stage", "ascending")])
    duplicates = pa.concat_tables([d.cast(DUPLICATE_SCHEMA) for d in ledger.duplicates]
                                  or [DUPLICATE_SCHEMA.empty_table()])
    duplicates = duplicates.sort_by([("key", "ascending"), ("source", "ascending")])
    conflicts = _conflicts([c for c in ledger.conflicts if c.num_rows])
    accounting = {"inputs": inputs, "accepted": accepted.num_rows,
                  "rejected": rejects.num_rows, "duplicates": duplicates.num_rows}
    if inputs != accounting["accepted"] + accounting["rejected"] + accounting["duplicates"]:
        raise AssertionError(f"input accounting does not add up: {accounting}")
    return Decisions(accepted, rejects, duplicates, conflicts, list(classes), accounting,
                     base_kept, removals)


def _confidence_step(accepted: Accepted, cfg: BuildConfig, posteriors: pa.Table | None,
                     ledger: _Ledger) -> None:
    if posteriors is None:
        return
    from synshard.builder.decide.votes import confidence_column

    column = confidence_column(accepted.table(["key", "synset", "source"]), posteriors)
    accepted.set("confidence", column)
    if cfg.min_confidence is None:
        return
    low = pc.fill_null(pc.less(accepted.column("confidence"), cfg.min_confidence), False)
    ledger.reject(accepted.where(low), "consensus", "low confidence")
    accepted.keep(pc.invert(low))


def _takedown_step(accepted: Accepted, takedown: Takedown | None, ledger: _Ledger) -> None:
    if not takedown:
        return
    down, reasons = takedown.mask(accepted.table(["key", "source", "sha256", "phash"]))
    ledger.reject(accepted.where(down), "takedown", [r for r in reasons if r])
    accepted.keep(~down)


def _external_step(accepted: Accepted, external: pa.Table | None, cfg: BuildConfig,
                   ledger: _Ledger) -> None:
    """`--dedup-against`: drop new samples that near-duplicate another release or eval set."""
    if external is None or not external.num_rows or not accepted.num_rows:
        return
    radius = cfg.dedup.near_radius if cfg.dedup.near_radius is not None else 0
    theirs = external.filter(pc.is_valid(external["phash"]))
    ours = accepted.column("phash").to_numpy().astype(np.uint64)
    i, j, d = near_pairs(ours, theirs["phash"].to_numpy().astype(np.uint64), radius)
    reason: dict[int, str] = {}
    sources = theirs["source"].to_pylist()
    for a, b, dist in sorted(zip(i.tolist(), j.tolist(), d.tolist()), key=lambda t: t[2]):
        reason.setdefault(a, f"near copy of {sources[b]} (distance {dist})")
    hit = np.zeros(accepted.num_rows, dtype=bool)
    hit[list(reason)] = True
    ledger.reject(accepted.where(hit), "dedup-against", [reason[k] for k in sorted(reason)])
    accepted.keep(~hit)


def _dedup_step(accepted: Accepted, cfg: BuildConfig, ledger: _Ledger) -> None:
    block = sha256_block(accepted.meta.column("sha256"))[accepted.rows]  # 8 B a row
    dedup = exact_dedup(accepted, cfg.dedup, block)
    del block
    if len(dedup.conflict_rows):
        ledger.reject(accepted.take(dedup.conflict_rows), "dedup", dedup.conflict_reasons)
    accepted.keep(dedup.keep)
    ledger.duplicates.append(dedup.duplicates)
    release()
    if cfg.dedup.near_radius is None:
        return
    near = near_dedup(accepted, cfg.dedup.near_radius,  # reads phash, then the hot rows
                      cfg.dedup.near_conflicts,
                      search=near_search(cfg.dedup, accepted.num_rows))  # big: Ray tasks
    ledger.duplicates.append(near.duplicates)
    ledger.conflicts.append(near.conflicts)
    accepted.keep(near.keep)
    del near
    release()


def _classes_step(accepted: Accepted, classes: list[str] | None, ledger: _Ledger) -> None:
    if classes is None:
        return
    known = pc.is_in(accepted.column("synset"), value_set=pa.array(classes))
    ledger.reject(accepted.where(pc.invert(known)), "classes",
                  "synset not in the pinned class list")
    accepted.keep(known)


def _cap_step(accepted: Accepted, cfg: BuildConfig, ledger: _Ledger) -> None:
    if cfg.max_per_synset is None:
        return  # (without reading keys, splits and synsets of every row)
    capped = cap_per_synset_mask(accepted.table(["key", "split", "synset"]), cfg.max_per_synset)
    if capped.all():
        return
    ledger.reject(accepted.where(~capped), "limit", f"over max_per_synset {cfg.max_per_synset}")
    accepted.keep(capped)


def _reject_rows(rows: pa.Table, stage: str | None = None,
                 reason: str | list[str] | None = None) -> pa.Table:
    n = rows.num_rows
    cols = {}
    for name in ("source", "synset", "split", "key", "sha256"):
        cols[name] = rows.column(name) if name in rows.column_names else pa.nulls(n, pa.string())
    cols["stage"] = rows.column("stage") if stage is None else pa.array([stage] * n, pa.string())
    if reason is None:
        cols["reason"] = rows.column("reason")
    elif isinstance(reason, str):
        cols["reason"] = pa.array([reason] * n, pa.string())
    else:
        cols["reason"] = pa.array(reason, pa.string())
    return pa.table(cols).select(REJECT_COLUMNS)


def _with_labels(table: pa.Table, classes: list[str]) -> pa.Table:
    labels = _labels(table["synset"], pa.array(classes, pa.string()))
    if labels.null_count:
        raise AssertionError("a kept sample's synset is not in the class list")
    if "label" in table.column_names:
        table = table.drop_columns(["label"])
    return table.append_column("label", labels.cast(pa.int32()).combine_chunks())  # one chunk,
    # as the other columns assembly takes per synset (a take of a chunked column joins them)


def _labels(synset: pa.ChunkedArray, classes: pa.Array) -> pa.ChunkedArray:
    """Each row's index in `classes` (null if absent); a dictionary chunk looks up its
    dictionary once and takes by its indices."""
    if not pa.types.is_dictionary(synset.type):
        return pc.index_in(synset, value_set=classes)
    return pa.chunked_array([pc.index_in(c.dictionary, value_set=classes).take(c.indices)
                             for c in synset.chunks], pa.int32())
