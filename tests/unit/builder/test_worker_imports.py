"""What synshard keeps out of its own processes (builder/nopandas.py)."""
from __future__ import annotations

import subprocess
import sys

WORKER = r"""
import sys
from synshard.builder import raysession  # a Ray worker's: Ray imported, as on a worker
from synshard.builder.nopandas import NoPandas, without_pandas
assert raysession.without_pandas is without_pandas  # what read_on_worker calls
without_pandas()
without_pandas()  # twice: one finder
import pyarrow as pa
pa.array(["a"]); pa.table({"a": [1]})
from synshard.builder import stages  # what a read task imports
try:
    import pandas  # noqa: F401
    refused = False
except ModuleNotFoundError:
    refused = True
print("pandas" in sys.modules, refused, sum(isinstance(f, NoPandas) for f in sys.meta_path))
"""

CLI = r"""
import sys
from synshard.builder.nopandas import NoPandas, arrow_ignores_pandas
arrow_ignores_pandas()
import pyarrow as pa
table = pa.table({"a": pa.array([1, 2]), "b": ["x", None]})
asked = "pandas" in sys.modules
frame = table.to_pandas()  # pandas itself is still there for whoever asks for it
print(asked, type(frame).__name__, frame["a"].tolist(), any(isinstance(f, NoPandas)
                                                            for f in sys.meta_path))
"""


COMMAND = r"""
import atexit, sys
sys.argv = ["synshard", "synsets", "find", "tench"]

def check():  # at the command's end: pyarrow, asked again, has its answer already
    import pyarrow as pa
    pa.array([1])
    print("pandas imported:", "pandas" in sys.modules, file=sys.stderr)

atexit.register(check)
from synshard.cli import run
run()
"""


def _run(code: str) -> list[str]:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.split()


def test_a_read_worker_never_imports_pandas():
    """pyarrow would import pandas on the first pa.array (0.3-0.45 CPU-s a worker); nothing a
    build runs needs it, and pyarrow works on without it."""
    assert _run(WORKER) == ["False", "True", "1"]


def test_the_cli_process_does_not_import_pandas_for_pyarrow():
    """The CLI's `run` answers pyarrow's pandas question once (0.13-0.15 s of every command);
    Arrow works on, pandas is not refused afterwards, and `to_pandas` still works."""
    assert _run(CLI) == ["False", "DataFrame", "[1,", "2]", "False"]


def test_a_cli_command_runs_without_pandas() -> None:
    """`synshard.cli.run` (the console script, `python -m synshard.cli`) makes the call."""
    run = subprocess.run([sys.executable, "-c", COMMAND], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "n01440764" in run.stdout and "pandas imported: False" in run.stderr
