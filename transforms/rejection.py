"""The one way a transform step says "this input is bad": raise `Rejected(stage, reason)`.

`process.transform_batch` turns it into a rejected row, so a bad image never crashes a batch and is
never dropped silently. Only expected per-image failures are converted into it; programming errors
propagate.
"""
from __future__ import annotations


class Rejected(Exception):
    """An input that cannot become a sample: `stage` says where (decode, validate), `reason` why."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
