"""Which images need more votes, and about how many: ImageNet's dynamic consensus.

`plan_votes(consensus, target=0.95) -> pa.Table`, one row per synset (sorted):
`synset`, `images`, `accepted` (posterior >= target), `rejected` (posterior <= 1 - target),
`pending` (in between), `votes_needed` (sum over pending images), and `pending_images`:
list<struct<image, posterior, votes_needed>>, the neediest first.

The estimate: a further vote comes from a worker drawn from the pool in proportion to how much
each worker has voted. If the image leans towards showing the synset, each vote moves its log-odds
by, on average, the KL divergence KL(P(vote | shows) || P(vote | does not)) of that worker, and
the other way round when it leans against. Votes needed = the log-odds still missing to reach
logit(target) (or logit(1 - target)) divided by that expected step, rounded up. When the pool
carries no information (all spammers) the estimate is null: more votes from them will not help.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:  # pragma: no cover
    from .consensus import Consensus

PENDING_TYPE = pa.struct(
    [("image", pa.string()), ("posterior", pa.float64()), ("votes_needed", pa.int64())]
)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL divergence between Bernoulli(p) and Bernoulli(q), in nats."""
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def expected_steps(workers: pa.Table) -> tuple[float, float]:
    """Mean log-odds step per vote towards yes (image shows it) and towards no."""
    sens = workers["sensitivity"].to_numpy()
    spec = workers["specificity"].to_numpy()
    weight = workers["votes"].to_numpy().astype(np.float64)
    if weight.sum() == 0:
        return 0.0, 0.0
    up = _kl(sens, 1 - spec)  # truth yes: votes ~ Bernoulli(sens) vs Bernoulli(1 - spec)
    down = _kl(1 - spec, sens)
    return float(np.average(up, weights=weight)), float(np.average(down, weights=weight))


def votes_needed(posterior: np.ndarray, target: float, steps: tuple[float, float]) -> np.ndarray:
    """Votes still needed per image (0 when settled, -1 when more votes cannot settle it)."""
    p = np.clip(posterior, 1e-12, 1 - 1e-12)
    logit, goal = np.log(p / (1 - p)), np.log(target / (1 - target))
    leans_yes = p >= 0.5
    gap = np.where(leans_yes, goal - logit, logit + goal)  # log-odds still to travel
    step = np.where(leans_yes, steps[0], steps[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(step > 1e-9, np.ceil(gap / step), -1)
    settled = (posterior >= target) | (posterior <= 1 - target)
    return np.where(settled, 0, np.maximum(need, 1) * (need >= 0) - (need < 0)).astype(np.int64)


def plan_votes(consensus: "Consensus", target: float = 0.95) -> pa.Table:
    """Per synset: how many images are settled, which are not, and the votes they still need."""
    if not 0.5 < target < 1:
        raise ValueError(f"target {target} must lie strictly between 0.5 and 1")
    post = consensus.posteriors
    p = post["posterior"].to_numpy()
    need = votes_needed(p, target, expected_steps(consensus.workers))
    table = pa.table(
        {
            "synset": post["synset"],
            "accepted": pa.array(p >= target),
            "rejected": pa.array(p <= 1 - target),
            "pending": pa.array((p < target) & (p > 1 - target)),
            "need": pa.array(np.where(need > 0, need, 0)),
            "item": pa.StructArray.from_arrays(
                [post["image"].combine_chunks().cast(pa.string()),
                 post["posterior"].combine_chunks(), pa.array(need, pa.int64())],
                fields=list(PENDING_TYPE),
            ),
        }
    )
    return _per_synset(table)


def _per_synset(table: pa.Table) -> pa.Table:
    counts = table.group_by("synset", use_threads=False).aggregate(
        [("synset", "count"), ("accepted", "sum"), ("rejected", "sum"), ("pending", "sum"),
         ("need", "sum")]
    ).sort_by("synset")
    pending = table.filter(table["pending"])
    pending = pending.sort_by([("synset", "ascending"), ("need", "descending")])
    # Arrow cannot aggregate structs into lists (no hash_list kernel for them): cut the sorted
    # pending rows into one list per synset run instead.
    runs = pc.run_end_encode(pending["synset"].combine_chunks())
    offsets = pa.array(np.concatenate([[0], runs.run_ends.to_numpy()]).astype(np.int32))
    lists = pa.ListArray.from_arrays(offsets, pending["item"].combine_chunks())
    where = pc.index_in(counts["synset"], value_set=runs.values)
    empty = pa.array([[]] * counts.num_rows, pa.list_(PENDING_TYPE))
    return pa.table(
        {
            "synset": counts["synset"],
            "images": counts["synset_count"].cast(pa.int64()),
            "accepted": counts["accepted_sum"].cast(pa.int64()),
            "rejected": counts["rejected_sum"].cast(pa.int64()),
            "pending": counts["pending_sum"].cast(pa.int64()),
            "votes_needed": counts["need_sum"].cast(pa.int64()),
            "pending_images": pc.coalesce(lists.take(where), empty),
        }
    )
