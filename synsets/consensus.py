"""Crowd-vote consensus: does this image show this synset? (ImageNet's labelling, Deng et al. 2009).

Public API (stable):

- `consensus(votes, method="ds"|"mv", options=None) -> Consensus` over a votes table (see
  `votes.py` for its columns). `Consensus.posteriors`: one row per (image, synset) with `image`,
  `synset`, `posterior` (P(image shows synset), float64 in [0, 1]), `yes`, `no` (vote counts),
  sorted by image then synset. `Consensus.workers`: `worker`, `votes`, `sensitivity`
  (P(yes | shows it)), `specificity` (P(no | does not)), `spammer`. `Consensus.synsets`: `synset`,
  `prior`. `Consensus.rejected`: vote rows that were not counted, with their row number and reason.
- `plan_votes(consensus, target=0.95) -> pa.Table` (from planner.py): per synset, the images still
  short of the target confidence and about how many more votes they need.
- `confidence_batch(images, synsets, posteriors)` and `min_confidence_batch(confidence, threshold)`:
  what the build calls per batch (`--votes`, `--min-confidence`).

Methods:
- `mv`: majority vote; the posterior is the share of yes votes (0.5 on a tie).
- `ds`: Dawid-Skene EM for binary labels: a 2x2 confusion matrix per worker (sensitivity and
  specificity), a prior per synset, Dirichlet (Beta) pseudo-counts on both so that a worker with
  three votes is not declared perfect and the EM keeps "yes" meaning yes; initialised from the
  majority-vote shares; stops when the log-likelihood changes by less than `tol` relative.
  Every step is a gather or a `np.bincount` over the vote arrays: no Python loop over votes.
  Votes are encoded canonically first, so the result does not depend on the input's row order.

A spammer is a worker whose votes carry no information whatever the truth: sensitivity +
specificity - 1 near zero (always-yes clickers: 1 + 0 - 1; random clickers: 0.5 + 0.5 - 1)
(Raykar & Yu 2012). An adversarial worker (sum well below 1) is informative, read backwards, and
Dawid-Skene uses them so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.errors import SynshardError

from .planner import plan_votes  # noqa: F401  (re-exported: part of this module's API)
from .votes import EncodedVotes, encode_votes

Method = Literal["ds", "mv"]
METHODS = ("ds", "mv")
LOW_CONFIDENCE = "low confidence"


@dataclass(frozen=True)
class ConsensusOptions:
    """Knobs of the EM; the defaults suit crowds of a few to a few dozen votes per image."""

    max_iter: int = 100
    tol: float = 1e-6  # stop when |delta log-likelihood| <= tol * |log-likelihood|
    worker_prior: tuple[float, float] = (2.0, 1.0)  # pseudo-votes (right, wrong) per class
    class_prior: tuple[float, float] = (1.0, 1.0)  # pseudo-images (shows it, does not) per synset
    spammer_threshold: float = 0.2  # spammer when |sensitivity + specificity - 1| is below


@dataclass(frozen=True)
class Consensus:
    """The result: see the module docstring for the tables' columns."""

    posteriors: pa.Table
    workers: pa.Table
    synsets: pa.Table
    rejected: pa.Table
    method: str
    iterations: int = 0
    log_likelihood: float = float("nan")
    converged: bool = True
    history: tuple[float, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class _Arrays:
    """The encoded votes in the layout every EM step streams over.

    Votes are sorted by item, so per-item sums are `np.add.reduceat` over contiguous runs and
    per-item values reach the votes by `np.repeat`; per-worker sums are a `np.bincount` into
    2 x workers bins (worker, answer). Four sequential passes over the votes per iteration.
    """

    answer: np.ndarray  # per vote: worker * 2 + yes
    item_start: np.ndarray
    item_votes: np.ndarray
    item_synset: np.ndarray
    n_workers: int
    n_synsets: int
    answers: np.ndarray  # (workers, 2): how often each worker said no / yes
    synset_images: np.ndarray  # per synset: how many items

    @classmethod
    def of(cls, enc: EncodedVotes) -> "_Arrays":
        n_workers = len(enc.workers)
        return cls(
            enc.answer, enc.item_start, enc.item_votes, enc.item_synset_code, n_workers,
            len(enc.synsets),
            np.bincount(enc.answer, minlength=2 * n_workers).reshape(n_workers, 2),
            np.bincount(enc.item_synset_code, minlength=len(enc.synsets)),
        )

    def per_item(self, per_answer: np.ndarray) -> np.ndarray:
        """Sum over each item's votes of a value given per (worker, answer)."""
        if not len(self.item_start):
            return np.zeros(0)
        return np.add.reduceat(per_answer.ravel().take(self.answer), self.item_start)

    def per_answer(self, per_item: np.ndarray) -> np.ndarray:
        """(workers, 2): sum over each worker's no / yes votes of a value given per item."""
        at_vote = np.repeat(per_item, self.item_votes)
        sums = np.bincount(self.answer, at_vote, minlength=2 * self.n_workers)
        return sums.reshape(self.n_workers, 2)


def _m_step(a: _Arrays, t: np.ndarray, opt: ConsensusOptions) -> tuple[np.ndarray, ...]:
    """Worker sensitivity/specificity and synset priors from posteriors `t` (MAP, smoothed)."""
    right, wrong = opt.worker_prior
    shows = a.per_answer(t)  # votes on images that show the synset, by answer
    hides = a.answers - shows
    sens = (shows[:, 1] + right) / (shows.sum(axis=1) + right + wrong)
    spec = (hides[:, 0] + right) / (hides.sum(axis=1) + right + wrong)
    b_yes, b_no = opt.class_prior
    positives = np.bincount(a.item_synset, t, a.n_synsets)
    prior = (positives + b_yes) / (a.synset_images + b_yes + b_no)
    return sens, spec, prior


def _e_step(
    a: _Arrays, sens: np.ndarray, spec: np.ndarray, prior: np.ndarray
) -> tuple[np.ndarray, float]:
    """Posteriors per item and the log-likelihood of the votes under the current parameters.

    With z = logit(prior) + sum of per-vote log likelihood ratios, P(votes) = P(votes | no) *
    (1 - prior) * (1 + e^z); the P(votes | no) part sums per worker, so only z needs a pass.
    """
    log_yes = np.stack([np.log1p(-sens), np.log(sens)], axis=1)  # log P(answer | shows)
    log_no = np.stack([np.log(spec), np.log1p(-spec)], axis=1)  # log P(answer | does not)
    logit_prior = np.log(prior) - np.log1p(-prior)
    z = logit_prior[a.item_synset] + a.per_item(log_yes - log_no)
    soft = np.logaddexp(0.0, z)
    ll = float(soft.sum() + (a.answers * log_no).sum() + (a.synset_images * np.log1p(-prior)).sum())
    return np.exp(z - soft), ll


def _majority(a: _Arrays) -> np.ndarray:
    yes = a.per_item(np.tile([0.0, 1.0], (a.n_workers, 1)))
    return yes / a.item_votes


def _dawid_skene(a: _Arrays, opt: ConsensusOptions) -> tuple[np.ndarray, tuple, list[float], bool]:
    """EM from the majority-vote shares until the log-likelihood settles (or max_iter)."""
    t = _majority(a)
    history: list[float] = []
    params: tuple = ()
    for _ in range(opt.max_iter):
        params = _m_step(a, t, opt)
        t, ll = _e_step(a, *params)
        history.append(ll)
        if len(history) > 1 and abs(ll - history[-2]) <= opt.tol * abs(ll):
            return t, params, history, True
    return t, params, history, False


def consensus(
    votes: pa.Table, method: Method = "ds", options: ConsensusOptions | None = None
) -> Consensus:
    """Posteriors per (image, synset) and worker quality from a votes table."""
    if method not in METHODS:
        raise SynshardError(f"bad consensus method {method!r}: use one of {METHODS}")
    opt = options or ConsensusOptions()
    enc = encode_votes(votes)
    a = _Arrays.of(enc)
    history: list[float] = []
    converged = True
    if method == "mv":
        t = _majority(a)
        sens, spec, prior = _m_step(a, t, opt)  # worker quality judged against the majority
    else:
        t, (sens, spec, prior), history, converged = _dawid_skene(a, opt)
    return Consensus(
        posteriors=_posteriors_table(enc, a, t),
        workers=_workers_table(enc, a, sens, spec, opt),
        synsets=pa.table({"synset": enc.synsets, "prior": pa.array(prior, pa.float64())}),
        rejected=enc.rejected,
        method=method,
        iterations=len(history),
        log_likelihood=history[-1] if history else float("nan"),
        converged=converged,
        history=tuple(history),
    )


def _posteriors_table(enc: EncodedVotes, a: _Arrays, t: np.ndarray) -> pa.Table:
    yes = np.rint(_majority(a) * a.item_votes).astype(np.int32) if len(t) else np.zeros(0, np.int32)
    return pa.table(
        {
            "image": enc.item_image,
            "synset": enc.item_synset,
            "posterior": pa.array(np.clip(t, 0.0, 1.0), pa.float64()),
            "yes": pa.array(yes, pa.int32()),
            "no": pa.array(a.item_votes.astype(np.int32) - yes, pa.int32()),
        }
    )


def _workers_table(
    enc: EncodedVotes, a: _Arrays, sens: np.ndarray, spec: np.ndarray, opt: ConsensusOptions
) -> pa.Table:
    return pa.table(
        {
            "worker": enc.workers,
            "votes": pa.array(a.answers.sum(axis=1), pa.int64()),
            "sensitivity": pa.array(sens, pa.float64()),
            "specificity": pa.array(spec, pa.float64()),
            "spammer": pa.array(np.abs(sens + spec - 1.0) < opt.spammer_threshold),
        }
    )


def confidence_batch(
    images: pa.Array | pa.ChunkedArray, synsets: pa.Array | pa.ChunkedArray, posteriors: pa.Table
) -> pa.Array:
    """The posterior of each (image, synset) pair of a batch; null where nobody voted on it.

    A hash join in Arrow: the cost is dominated by hashing `posteriors`, so pass the slice for
    the batch's synsets when the vote table is large.
    """
    n = len(images)
    left = pa.table({"image": images, "synset": synsets, "_row": pa.array(np.arange(n))})
    right = posteriors.select(["image", "synset", "posterior"])
    right = right.cast(pa.schema([("image", left["image"].type), ("synset", pa.string()),
                                  ("posterior", pa.float64())]))
    left = left.set_column(1, "synset", left["synset"].cast(pa.string()))
    joined = left.join(right, ["image", "synset"], join_type="left outer").sort_by("_row")
    return joined["posterior"].combine_chunks()


def min_confidence_batch(
    confidence: pa.Array | pa.ChunkedArray, threshold: float
) -> tuple[pa.BooleanArray, pa.StringArray]:
    """(keep, reason): reason `low confidence` where the posterior is below `threshold`.

    Rows without votes (null confidence) are kept: the threshold judges votes, it does not
    demand them.
    """
    low = pc.fill_null(pc.less(confidence, threshold), False)
    reason = pc.if_else(low, LOW_CONFIDENCE, pa.scalar(None, pa.string()))
    return pc.invert(low), reason
