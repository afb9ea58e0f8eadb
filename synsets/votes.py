"""Crowd votes: validating a votes table and encoding it as integer arrays for the EM.

A votes table has `image` (a key, source path or URL), `synset` (wnid), `worker` and `vote`
(yes/no as bool, 0/1 or the strings yes/no/y/n/true/false/1/0, any case); an optional `time` is
ignored. Rows with a missing field or an unreadable vote are not counted: they come back as
rejected rows (input row number, reason), never a crash and never a silent drop.

The encoding is canonical: image, synset and worker codes are ranks in the sorted distinct values,
and the votes are sorted by (image, synset, worker, vote). So the consensus computed from it is
bit-for-bit the same whatever the order of the input rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.errors import SynshardError

REQUIRED = ("image", "synset", "worker", "vote")
YES = ["yes", "y", "true", "t", "1"]
NO = ["no", "n", "false", "f", "0"]
REJECTED_SCHEMA = pa.schema([pa.field("row", pa.int64()), pa.field("reason", pa.string())])


@dataclass(frozen=True)
class EncodedVotes:
    """Votes as sorted integer arrays. `item` indexes the distinct (image, synset) pairs."""

    answer: np.ndarray  # int64 per vote: worker * 2 + (1 if yes else 0); sorted by item
    item_start: np.ndarray  # int64 per item: its first vote (votes of an item are contiguous)
    item_votes: np.ndarray  # int64 per item: how many votes it has
    item_image: pa.Array  # per item
    item_synset: pa.Array  # per item
    item_synset_code: np.ndarray  # per item, index into `synsets`
    synsets: pa.Array  # sorted distinct synsets
    workers: pa.Array  # sorted distinct workers
    rejected: pa.Table  # REJECTED_SCHEMA

    @property
    def n_items(self) -> int:
        return len(self.item_image)


def parse_vote(column: pa.Array) -> pa.Array:
    """yes/no in any of the accepted spellings -> bool; anything else -> null."""
    if pa.types.is_boolean(column.type):
        return column
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        ok = pc.is_in(column, pa.array([0, 1], column.type))
        return pc.if_else(ok, pc.equal(column, pa.scalar(1, column.type)), None)
    text = pc.utf8_lower(pc.utf8_trim_whitespace(column.cast(pa.string())))
    is_yes, is_no = pc.is_in(text, pa.array(YES)), pc.is_in(text, pa.array(NO))
    return pc.if_else(pc.or_(is_yes, is_no), is_yes, None)


def _reasons(votes: pa.Table, vote: pa.Array) -> pa.Array | None:
    """Per row: null when usable, else why not (the first problem found); None if all usable."""
    checks = [(vote, "bad vote")] + [(votes[n], f"missing {n}") for n in ("worker", "synset", "image")]
    if not any(col.null_count for col, _ in checks):
        return None  # the common case, without touching ten million rows four times
    reason = pa.nulls(votes.num_rows, pa.string())
    for col, text in checks:
        reason = pc.if_else(pc.is_null(col), text, reason)
    return reason


def _dictionary(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(index per row, dictionary), reusing an existing dictionary encoding (Parquet's)."""
    if isinstance(column, pa.ChunkedArray):
        if pa.types.is_dictionary(column.type) and column.num_chunks:
            column = column.unify_dictionaries()
            idx = [c.indices.to_numpy(zero_copy_only=False) for c in column.chunks]
            return np.concatenate(idx).astype(np.int64), column.chunk(0).dictionary
        column = column.combine_chunks()
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    return column.indices.to_numpy(zero_copy_only=False).astype(np.int64), column.dictionary


def _ranked_codes(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(code per row, sorted distinct values): codes are ranks, so independent of row order.

    Values the dictionary holds but no row uses are dropped, and duplicates in a foreign
    dictionary are merged, so the codes depend only on the set of values present.
    """
    index, dictionary = _dictionary(column)
    used = np.bincount(index, minlength=len(dictionary)) > 0
    if not used.all():
        dictionary = dictionary.filter(pa.array(used))
        index = (np.cumsum(used) - 1)[index]
    dictionary = dictionary.cast(pa.string()) if pa.types.is_large_string(dictionary.type) \
        else dictionary
    order = pc.sort_indices(dictionary).to_numpy()
    ordered = dictionary.take(order)
    # Equal neighbours after sorting are duplicates: they share the first one's rank.
    new = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        new[1:] = pc.not_equal(ordered[1:], ordered[:-1]).to_numpy(zero_copy_only=False)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.cumsum(new) - 1
    return rank[index], ordered.filter(pa.array(new))


def _sorted_votes(
    image: np.ndarray, synset: np.ndarray, worker: np.ndarray, vote: np.ndarray, n: tuple[int, int]
) -> tuple[np.ndarray, int, np.ndarray]:
    """Sort votes by (image, synset, worker, vote): (pair code per vote, synset bits, answer).

    The four codes are packed into one int64 (image | synset | worker | vote bit fields), sorted
    in place and unpacked with shifts and masks: one sort, no divisions. When the fields do not
    fit in 63 bits, a lexsort does the same more slowly.
    """
    s_bits, w_bits = (max(int(k) - 1, 1).bit_length() for k in n)
    i_bits = max(int(image.max()) if len(image) else 0, 1).bit_length()
    answer = worker * 2 + vote  # worker * 2 + yes: the low bits of the packed key
    if i_bits + s_bits + w_bits + 1 <= 63:
        key = (image << (s_bits + w_bits + 1)) | (synset << (w_bits + 1)) | answer
        key.sort()
        return key >> (w_bits + 1), s_bits, key & ((1 << (w_bits + 1)) - 1)
    order = np.lexsort((answer, synset, image))
    return (image[order] << s_bits) | synset[order], s_bits, answer[order]


def encode_votes(votes: pa.Table) -> EncodedVotes:
    """Validate `votes` and encode it canonically (see the module docstring)."""
    missing = [c for c in REQUIRED if c not in votes.column_names]
    if missing:
        raise SynshardError(f"votes table lacks column(s) {', '.join(missing)}: needs {REQUIRED}")
    votes = votes.select(list(REQUIRED))
    vote = parse_vote(votes["vote"].combine_chunks())
    reason = _reasons(votes, vote)
    rejected = REJECTED_SCHEMA.empty_table()
    if reason is not None:
        bad = pc.is_valid(reason)
        rejected = pa.table({"row": pc.indices_nonzero(bad).cast(pa.int64()),
                             "reason": reason.filter(bad)}, schema=REJECTED_SCHEMA)
        votes, vote = votes.filter(pc.invert(bad)), vote.filter(pc.invert(bad))
    image_c, _images = _ranked_codes(votes["image"])
    synset_c, synsets = _ranked_codes(votes["synset"])
    worker_c, workers = _ranked_codes(votes["worker"])
    vote_np = vote.to_numpy(zero_copy_only=False).astype(np.int64)
    pair, s_bits, answer = _sorted_votes(
        image_c, synset_c, worker_c, vote_np, (len(synsets), len(workers))
    )
    new_item = np.ones(len(pair), dtype=bool)
    new_item[1:] = pair[1:] != pair[:-1]
    first = np.flatnonzero(new_item)
    image_c, synset_c = pair[first] >> s_bits, pair[first] & ((1 << s_bits) - 1)
    return EncodedVotes(
        answer=answer,
        item_start=first,
        item_votes=np.diff(np.append(first, len(pair))),
        item_image=_images.take(pa.array(image_c)),
        item_synset=synsets.take(pa.array(synset_c)),
        item_synset_code=synset_c,
        synsets=synsets,
        workers=workers,
        rejected=rejected,
    )
