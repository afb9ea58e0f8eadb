"""URL lists as read tasks: chunks of a list, with every copy of a URL in the same chunk.

The list is read once on the driver (small: URLs and labels, no images), sorted by URL so that
repeated URLs are adjacent, and cut into chunks at URL boundaries: the fetcher fetches a URL once
per chunk and hands every copy the same bytes, so the exact dedup settles the copies (duplicates,
or a label conflict when they disagree on the synset), and nothing is fetched twice.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from .urllist import list_format, read_url_list

CHUNK_ROWS = 256


@dataclass(frozen=True, eq=False)
class UrlTask:
    uri: str  # the URL list
    start: int  # index of the first row in the list's URL order
    urls: pa.Table = field(repr=False)  # URLLIST rows of this chunk

    @property
    def order(self) -> tuple[str, int]:
        return (self.uri, self.start)


def is_url_list(uri: str) -> bool:
    try:
        list_format(uri)
    except Exception:  # noqa: BLE001 - SynshardError: not a list name
        return False
    return True


def plan_url_lists(uris: Sequence[str], storage_options: dict[str, Any] | None = None,
                   limit: int | None = None, chunk_rows: int = CHUNK_ROWS
                   ) -> tuple[list[UrlTask], str]:
    """(tasks, fingerprint of the lists' content) for the URL lists among the sources."""
    tasks: list[UrlTask] = []
    digest = hashlib.sha256()
    for uri in sorted(set(uris)):
        table = read_url_list(uri, storage_options)
        if limit is not None:
            table = table.slice(0, limit)
        table = _sorted_by_url(table)
        digest.update(uri.encode() + b"\0" + _content_hash(table).encode())
        for start, stop in _chunks(table["url"].to_pylist(), chunk_rows):
            tasks.append(UrlTask(uri, start, table.slice(start, stop - start)))
    return tasks, digest.hexdigest()


def _sorted_by_url(table: pa.Table) -> pa.Table:
    """Stable order by URL (rows without one last), then by the list's row number."""
    url = pc.fill_null(table["url"], "\U0010ffff")
    keyed = table.append_column("_url", url)
    order = ["_url", "row"] if "row" in table.column_names else ["_url"]
    return keyed.sort_by([(c, "ascending") for c in order]).drop_columns(["_url"])


def _chunks(urls: list[str | None], size: int) -> list[tuple[int, int]]:
    """[start, stop) runs of about `size` rows that never split a run of equal URLs."""
    runs, start = [], 0
    while start < len(urls):
        stop = min(start + size, len(urls))
        while stop < len(urls) and urls[stop] is not None and urls[stop] == urls[stop - 1]:
            stop += 1
        runs.append((start, stop))
        start = stop
    return runs


def _content_hash(table: pa.Table) -> str:
    h = hashlib.sha256()
    for name in sorted(table.column_names):
        h.update(name.encode())
        h.update(repr(table[name].to_pylist()).encode())
    return h.hexdigest()
