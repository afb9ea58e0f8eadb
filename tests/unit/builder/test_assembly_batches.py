"""Assembly jobs cut into Ray tasks: every job once, largest first, runs of about equal rows."""
from __future__ import annotations

import pyarrow as pa

from synshard.builder.assembly import SynsetJob, job_batches


def _job(synset: str, rows: int) -> SynsetJob:
    keep = pa.table({"staged_row": pa.array(range(rows), pa.int32())})
    return SynsetJob(synset, (), keep)


def test_every_job_once_largest_first_and_small_ones_grouped() -> None:
    sizes = [5000, 40, 40, 30, 30, 20, 900, 10, 10, 5] + [3] * 200
    jobs = [_job(f"n{i:08d}", n) for i, n in enumerate(sizes)]
    batches = job_batches(jobs, 8)
    flat = [j for b in batches for j in b]
    assert sorted(j.synset for j in flat) == sorted(j.synset for j in jobs)
    rows = [j.keep.num_rows for j in flat]
    assert rows == sorted(rows, reverse=True)
    assert batches[0] == [jobs[0]]  # the largest synset is a task of its own
    assert len(batches) <= 8 and len(batches) < len(jobs) / 10
    target = -(-sum(sizes) // 8)
    for batch in batches:  # a run closes as soon as it reaches the target
        assert sum(j.keep.num_rows for j in batch[:-1]) < target


def test_no_jobs_and_one_part() -> None:
    assert job_batches([], 4) == []
    jobs = [_job("n00000002", 1), _job("n00000001", 1)]
    assert job_batches(jobs, 1) == [[jobs[1], jobs[0]]]  # ties by synset name
