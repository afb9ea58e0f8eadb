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
from synshard.builder.decide.near_ray import near_search
from synshard.shards.splits import assign_splits_batch, cap_per_synset_mask
from synshard.transforms.dedup import exact_dedup
from synshard.transforms.neardup_between import near_pairs
from synshard.shards.tables import CONFLICT_SCHEMA, REMOVAL_SCHEMA
from synshard.transforms.neardup_policy import near_dedup
from synshard.transforms.schema import DUPLICATE_SCHEMA, REJECT_SCHEMA

REJECT_COLUMNS = REJECT_SCHEMA.names


@dataclass(frozen=True)
class Decisions:
    kept: pa.Table  # metadata of accepted new samples with split, label; sorted by key
    rejects: pa.Table  # REJECT_SCHEMA
    duplicates: pa.Table  # DUPLICATE_SCHEMA
    conflicts: pa.Table  # CONFLICT_SCHEMA: near pairs across synsets that both survived
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
    """Settle every input: accepted, rejected (with stage and reason) or duplicate."""
    ledger = _Ledger()
    ok = pc.is_null(meta.column("reason"))
    ledger.reject(meta.filter(pc.invert(ok)))
    accepted = assign_splits_batch(meta.filter(ok), cfg.splits)
    accepted = _confidence_step(accepted, cfg, posteriors, ledger)
    accepted = _takedown_step(accepted, takedown, ledger)
    accepted = _external_step(accepted, external, cfg, ledger)
    base_kept, removals = None, REMOVAL_SCHEMA.empty_table()
    if base is not None:
        base_kept, removals = settle_base(base, cfg, takedown, classes)
        found = against_base(accepted, base_kept, cfg)
        ledger.duplicates.append(found.duplicates)
        ledger.conflicts.append(found.conflicts)
        accepted = accepted.filter(pa.array(found.keep))
    accepted = _dedup_step(accepted, cfg, ledger)
    accepted = _classes_step(accepted, classes, ledger)
    accepted = _cap_step(accepted, cfg, ledger)
    if classes is None:
        synsets = set(accepted["synset"].to_pylist())
        synsets |= set(base_kept["synset"].to_pylist()) if base_kept is not None else set()
        classes = sorted(synsets)
    accepted = _with_labels(accepted, classes).sort_by("key")
    if base_kept is not None:
        base_kept = _with_labels(base_kept, classes).sort_by("key")
    return _finish(meta.num_rows, accepted, ledger, classes, base_kept, removals)


def _finish(inputs: int, accepted: pa.Table, ledger: _Ledger, classes: list[str],
            base_kept: pa.Table | None, removals: pa.Table) -> Decisions:
    rejects = pa.concat_tables(ledger.rejects or [REJECT_SCHEMA.empty_table()])
    rejects = rejects.sort_by([("source", "ascending"), ("stage", "ascending")])
    duplicates = pa.concat_tables([d.cast(DUPLICATE_SCHEMA) for d in ledger.duplicates]
                                  or [DUPLICATE_SCHEMA.empty_table()])
    duplicates = duplicates.sort_by([("key", "ascending"), ("source", "ascending")])
    conflicts = pa.concat_tables([c.cast(CONFLICT_SCHEMA) for c in ledger.conflicts]
                                 or [CONFLICT_SCHEMA.empty_table()])
    conflicts = conflicts.sort_by([("key", "ascending"), ("other_key", "ascending")])
    accounting = {"inputs": inputs, "accepted": accepted.num_rows,
                  "rejected": rejects.num_rows, "duplicates": duplicates.num_rows}
    if inputs != accounting["accepted"] + accounting["rejected"] + accounting["duplicates"]:
        raise AssertionError(f"input accounting does not add up: {accounting}")
    return Decisions(accepted, rejects, duplicates, conflicts, list(classes), accounting,
                     base_kept, removals)


def _confidence_step(accepted: pa.Table, cfg: BuildConfig, posteriors: pa.Table | None,
                     ledger: _Ledger) -> pa.Table:
    if posteriors is None:
        return accepted
    from synshard.builder.decide.votes import confidence_column

    column = confidence_column(accepted, posteriors)
    accepted = accepted.set_column(accepted.schema.get_field_index("confidence"), "confidence",
                                   column)
    if cfg.min_confidence is None:
        return accepted
    low = pc.fill_null(pc.less(accepted["confidence"], cfg.min_confidence), False)
    ledger.reject(accepted.filter(low), "consensus", "low confidence")
    return accepted.filter(pc.invert(low))


def _takedown_step(accepted: pa.Table, takedown: Takedown | None, ledger: _Ledger) -> pa.Table:
    if not takedown:
        return accepted
    down, reasons = takedown.mask(accepted)
    ledger.reject(accepted.filter(pa.array(down)), "takedown", [r for r in reasons if r])
    return accepted.filter(pa.array(~down))


def _external_step(accepted: pa.Table, external: pa.Table | None, cfg: BuildConfig,
                   ledger: _Ledger) -> pa.Table:
    """`--dedup-against`: drop new samples that near-duplicate another release or eval set."""
    if external is None or not external.num_rows or not accepted.num_rows:
        return accepted
    radius = cfg.dedup.near_radius if cfg.dedup.near_radius is not None else 0
    theirs = external.filter(pc.is_valid(external["phash"]))
    ours = accepted["phash"].to_numpy(zero_copy_only=False).astype(np.uint64)
    i, j, d = near_pairs(ours, theirs["phash"].to_numpy().astype(np.uint64), radius)
    reason: dict[int, str] = {}
    sources = theirs["source"].to_pylist()
    for a, b, dist in sorted(zip(i.tolist(), j.tolist(), d.tolist()), key=lambda t: t[2]):
        reason.setdefault(a, f"near copy of {sources[b]} (distance {dist})")
    hit = np.zeros(accepted.num_rows, dtype=bool)
    hit[list(reason)] = True
    ledger.reject(accepted.filter(pa.array(hit)), "dedup-against",
                  [reason[k] for k in sorted(reason)])
    return accepted.filter(pa.array(~hit))


def _dedup_step(accepted: pa.Table, cfg: BuildConfig, ledger: _Ledger) -> pa.Table:
    dedup = exact_dedup(accepted, cfg.dedup)
    if len(dedup.conflict_rows):
        ledger.reject(accepted.take(pa.array(dedup.conflict_rows)), "dedup",
                      dedup.conflict_reasons)
    accepted = accepted.filter(pa.array(dedup.keep))
    ledger.duplicates.append(dedup.duplicates)
    if cfg.dedup.near_radius is None:
        return accepted
    near = near_dedup(accepted, cfg.dedup.near_radius, cfg.dedup.near_conflicts,
                      search=near_search(cfg.dedup, accepted.num_rows))  # big: Ray tasks
    ledger.duplicates.append(near.duplicates)
    ledger.conflicts.append(near.conflicts)
    return accepted.filter(pa.array(near.keep))


def _classes_step(accepted: pa.Table, classes: list[str] | None, ledger: _Ledger) -> pa.Table:
    if classes is None:
        return accepted
    known = pc.is_in(accepted.column("synset"), value_set=pa.array(classes))
    ledger.reject(accepted.filter(pc.invert(known)), "classes",
                  "synset not in the pinned class list")
    return accepted.filter(known)


def _cap_step(accepted: pa.Table, cfg: BuildConfig, ledger: _Ledger) -> pa.Table:
    capped = cap_per_synset_mask(accepted, cfg.max_per_synset)
    if capped.all():
        return accepted
    ledger.reject(accepted.filter(pa.array(~capped)), "limit",
                  f"over max_per_synset {cfg.max_per_synset}")
    return accepted.filter(pa.array(capped))


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
    index = {wnid: i for i, wnid in enumerate(classes)}
    labels = np.array([index[s] for s in table["synset"].to_pylist()], dtype=np.int32)
    if "label" in table.column_names:
        table = table.drop_columns(["label"])
    return table.append_column("label", pa.array(labels, pa.int32()))
