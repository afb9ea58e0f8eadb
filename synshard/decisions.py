"""The global decisions of a build, on metadata only: splits, dedup, caps, class list, labels.

Pure functions over the metadata table that the transform stage returns (no image bytes), so they
cost well under 100 bytes an image and never touch Ray, the network or the disk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.config import BuildConfig
from synshard.shards.splits import assign_splits_batch, cap_per_synset_mask
from synshard.transforms.dedup import exact_dedup
from synshard.transforms.neardup_policy import CONFLICT_SCHEMA, near_dedup
from synshard.transforms.schema import DUPLICATE_SCHEMA, REJECT_SCHEMA

REJECT_COLUMNS = REJECT_SCHEMA.names


@dataclass(frozen=True)
class Decisions:
    kept: pa.Table  # metadata of accepted samples with split, label; sorted by key
    rejects: pa.Table  # REJECT_SCHEMA
    duplicates: pa.Table  # DUPLICATE_SCHEMA
    conflicts: pa.Table  # CONFLICT_SCHEMA: near pairs across synsets that both survived
    classes: list[str]  # wnids in label order
    accounting: dict[str, int]


def decide(meta: pa.Table, cfg: BuildConfig, classes: list[str] | None = None,
           posteriors: pa.Table | None = None) -> Decisions:
    """Settle every input: accepted, rejected (with stage and reason) or duplicate."""
    inputs = meta.num_rows
    ok = pc.is_null(meta.column("reason"))
    rejects = [_reject_rows(meta.filter(pc.invert(ok)))]
    accepted = assign_splits_batch(meta.filter(ok), cfg.splits)
    if posteriors is not None:
        accepted = _with_confidence(accepted, posteriors)
        if cfg.min_confidence is not None:
            conf = accepted["confidence"]
            low = pc.fill_null(pc.less(conf, cfg.min_confidence), False)
            rejects.append(_reject_rows(accepted.filter(low), "consensus", "low confidence"))
            accepted = accepted.filter(pc.invert(low))

    dedup = exact_dedup(accepted, cfg.dedup)
    if len(dedup.conflict_rows):
        conflicted = accepted.take(pa.array(dedup.conflict_rows))
        rejects.append(_reject_rows(conflicted, "dedup", dedup.conflict_reasons))
    accepted = accepted.filter(pa.array(dedup.keep))
    duplicates = [dedup.duplicates.cast(DUPLICATE_SCHEMA)]
    conflicts = CONFLICT_SCHEMA.empty_table()
    if cfg.dedup.near_radius is not None:
        near = near_dedup(accepted, cfg.dedup.near_radius, cfg.dedup.near_conflicts)
        duplicates.append(near.duplicates.cast(DUPLICATE_SCHEMA))
        conflicts = near.conflicts.cast(CONFLICT_SCHEMA)
        accepted = accepted.filter(pa.array(near.keep))

    if classes is not None:
        known = pc.is_in(accepted.column("synset"), value_set=pa.array(classes))
        rejects.append(_reject_rows(accepted.filter(pc.invert(known)), "classes",
                                    "synset not in the pinned class list"))
        accepted = accepted.filter(known)

    capped = cap_per_synset_mask(accepted, cfg.max_per_synset)
    if not capped.all():
        rejects.append(_reject_rows(accepted.filter(pa.array(~capped)), "limit",
                                    f"over max_per_synset {cfg.max_per_synset}"))
        accepted = accepted.filter(pa.array(capped))

    classes = classes if classes is not None else sorted(set(accepted["synset"].to_pylist()))
    accepted = _with_labels(accepted, classes).sort_by("key")
    rejects_table = pa.concat_tables([r.cast(REJECT_SCHEMA) for r in rejects])
    rejects_table = rejects_table.sort_by([("source", "ascending"), ("stage", "ascending")])
    duplicates = pa.concat_tables(duplicates).sort_by(
        [("key", "ascending"), ("source", "ascending")])
    conflicts = conflicts.sort_by([("key", "ascending"), ("other_key", "ascending")])
    accounting = {"inputs": inputs, "accepted": accepted.num_rows,
                  "rejected": rejects_table.num_rows, "duplicates": duplicates.num_rows}
    if inputs != accounting["accepted"] + accounting["rejected"] + accounting["duplicates"]:
        raise AssertionError(f"input accounting does not add up: {accounting}")
    return Decisions(accepted, rejects_table, duplicates, conflicts, list(classes), accounting)


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


def _with_confidence(accepted: pa.Table, posteriors: pa.Table) -> pa.Table:
    from synshard.votes import confidence_column

    column = confidence_column(accepted, posteriors)
    return accepted.set_column(accepted.schema.get_field_index("confidence"), "confidence", column)


def _with_labels(accepted: pa.Table, classes: list[str]) -> pa.Table:
    index = {wnid: i for i, wnid in enumerate(classes)}
    labels = np.array([index[s] for s in accepted["synset"].to_pylist()], dtype=np.int32)
    if "label" in accepted.column_names:
        accepted = accepted.drop_columns(["label"])
    return accepted.append_column("label", pa.array(labels, pa.int32()))
