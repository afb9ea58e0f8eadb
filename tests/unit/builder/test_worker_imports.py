"""What a read worker keeps out of its process (raysession._without_pandas)."""
from __future__ import annotations

import subprocess
import sys

PROBE = r"""
import sys
from synshard.builder.raysession import _without_pandas
_without_pandas()
_without_pandas()  # twice: one finder
import pyarrow as pa
pa.array(["a"]); pa.table({"a": [1]})
from synshard.builder import stages  # what a read task imports
try:
    import pandas  # noqa: F401
    refused = False
except ModuleNotFoundError:
    refused = True
from synshard.builder.raysession import _NoPandas
print("pandas" in sys.modules, refused, sum(isinstance(f, _NoPandas) for f in sys.meta_path))
"""


def test_a_read_worker_never_imports_pandas():
    """pyarrow would import pandas on the first pa.array (0.3-0.45 CPU-s a worker); nothing a
    build runs needs it, and pyarrow works on without it."""
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False", "True", "1"]
