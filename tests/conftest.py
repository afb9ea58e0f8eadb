"""Shared fixtures: the repository root and the bundled sample."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return REPO / "data" / "sample"
