"""pandas kept out of synshard's own processes: nothing a build runs uses it, but pyarrow imports
it on the first `pa.array` (or `pa.table` of lists) only to ask whether the argument is a pandas
object: 0.13-0.15 s on these machines for a CLI command, 0.3-0.45 CPU-s for a fresh Ray worker.
pyarrow takes a failed import as "no pandas" and works on without it (its `to_pandas` imports
pandas again when it is asked for). This leans on pyarrow's lazy importer (`_PandasAPIShim` in
pyarrow/pandas-shim.pxi: it tries once, then remembers), checked by
tests/unit/builder/test_worker_imports.py against the pyarrow installed.
"""
from __future__ import annotations

import sys
from typing import Any


class NoPandas:
    """A `sys.meta_path` finder that refuses pandas."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (kept off synshard's workers)",
                                      name=name)
        return None


def without_pandas() -> None:
    """Refuse pandas in this process from now on (a Ray read worker: code of ours only), unless
    it is imported already."""
    if "pandas" not in sys.modules and not any(isinstance(f, NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, NoPandas())


def arrow_ignores_pandas() -> None:
    """pyarrow's question "is pandas there?" answered "no" once, while pandas is refused; then
    pandas may be imported again. For a process of synshard's own (the CLI's `run`), never a
    caller's: there pyarrow would no longer recognise a pandas Series given to `pa.array`."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    finder = NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])  # the first question: pyarrow asks it once per process
    finally:
        sys.meta_path.remove(finder)
