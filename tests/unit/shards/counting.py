"""A filesystem wrapper that counts the bytes a reader takes, to prove reads are ranged."""
from __future__ import annotations

from typing import Any


class CountingFS:
    """Delegates to `fs`; counts bytes returned by cat_file/cat_ranges/open().read."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs
        self.bytes_read = 0
        self.reads: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    def _count(self, path: str, n: int) -> None:
        self.bytes_read += n
        self.reads.append((path, n))

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kw: Any) -> bytes:
        data = self._fs.cat_file(path, start=start, end=end, **kw)
        self._count(path, len(data))
        return data

    def cat_ranges(self, paths: list, starts: list, ends: list, **kw: Any) -> list:
        out = self._fs.cat_ranges(paths, starts, ends, **kw)
        for path, data in zip(paths, out):
            self._count(path, len(data) if isinstance(data, bytes) else 0)
        return out

    def open(self, path: str, mode: str = "rb", **kw: Any) -> Any:
        f = self._fs.open(path, mode, **kw)
        outer = self

        class _Counted:
            def __getattr__(self, name: str) -> Any:
                return getattr(f, name)

            def read(self, n: int = -1) -> bytes:
                data = f.read(n)
                outer._count(path, len(data))
                return data

            def __enter__(self) -> "_Counted":
                return self

            def __exit__(self, *exc: Any) -> None:
                f.close()

        return _Counted()
