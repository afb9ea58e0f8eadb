"""The explorer tests reuse the shard tests' record generators (tests/unit/shards/shardgen.py)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "shards"))
