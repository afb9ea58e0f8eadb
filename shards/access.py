"""Random access by key: an image or its record with ranged reads, never downloading a shard.

A key is `<synset>_<sha16>`, so its synset (everything before the last `_`) says which shards can
hold it: only that synset's shard indexes (shards/index.py, one small file per shard) are read,
then the wanted byte ranges of the shards themselves with one `fs.cat_ranges` call (concurrent
ranged GETs on an object store, seek + read on a local disk). WebDataset shards are preferred
(an image is one contiguous range); a release with Parquet shards only is read a row group at a
time (footer and the row group's column chunks, through a file opened without read-ahead).

`KeyReader` keeps the indexes of recently used synsets (an LRU, thread safe) for servers and
scripts that look up many keys; `get_many` is the one-shot call.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable

import pyarrow.parquet as pq

from synshard.errors import SynshardError

from .index import read_index
from .layout import ShardEntry, ShardError, check_name, join
from .records import image_extension
from .release import Release, open_release

PREFERRED_FORMATS = ("webdataset", "parquet")


class KeyNotFound(SynshardError, KeyError):
    """Keys that no shard of the release holds."""

    def __init__(self, keys: Iterable[str], uri: str) -> None:
        self.keys = sorted(keys)
        shown = ", ".join(self.keys[:5]) + (" ..." if len(self.keys) > 5 else "")
        super().__init__(f"{len(self.keys)} key(s) not in the release {uri}: {shown}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Location:
    """Where a key lives: its shard's entry and its index row (offsets, or row group and row)."""

    key: str
    entry: ShardEntry
    row: dict[str, Any]


def synset_of(key: str) -> str:
    """The synset part of a key (`n01440764_0123456789abcdef` -> `n01440764`); ShardError if bad."""
    check_name("key", key)
    synset, sep, digest = key.rpartition("_")
    if not sep or not synset or not digest:
        raise ShardError(f"bad key {key!r}: expected <synset>_<sha16>")
    return synset


class KeyReader:
    """Looks keys up in a release's shard indexes and reads their bytes by ranges."""

    def __init__(self, release: Release, cached_synsets: int = 256) -> None:
        self.release = release
        self._cache: OrderedDict[str, dict[str, Location]] = OrderedDict()
        self._size = cached_synsets
        self._lock = threading.Lock()

    def synset_index(self, synset: str) -> dict[str, Location]:
        """key -> Location for every key of a synset, sorted by key; {} for a synset not present."""
        check_name("synset", synset)
        with self._lock:
            if synset in self._cache:
                self._cache.move_to_end(synset)
                return self._cache[synset]
        found = self._load(synset)
        with self._lock:
            self._cache[synset] = found
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return found

    def _load(self, synset: str) -> dict[str, Location]:
        for fmt in PREFERRED_FORMATS:
            entries = self.release.shards(synset=synset, format=fmt)
            if entries:
                break
        found: dict[str, Location] = {}
        for entry in entries:
            for row in read_index(self.release.fs, self.release.root, entry).to_pylist():
                found[row["key"]] = Location(row["key"], entry, row)
        return dict(sorted(found.items()))

    def locate(self, keys: Iterable[str]) -> dict[str, Location]:
        """Location of each key; KeyNotFound naming every key that is absent."""
        out, missing = {}, []
        for key in dict.fromkeys(keys):
            loc = self.synset_index(synset_of(key)).get(key)
            if loc is None:
                missing.append(key)
            else:
                out[key] = loc
        if missing:
            raise KeyNotFound(missing, self.release.uri(""))
        return out

    def images(self, keys: Iterable[str]) -> dict[str, bytes]:
        """key -> the encoded image bytes, exactly as stored in the shard."""
        return {k: s["image"] for k, s in self.samples(keys, parts=("image",)).items()}

    def image_files(self, keys: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """key -> (`<key>.<ext>`, the stored image bytes): the name a WebDataset shard gives the
        image member, `ext` from the record's format (`jpg`, `webp`, `png`) whatever the shard
        format (a Parquet release's index rows carry no extension: its `format` column does)."""
        found = self.samples(keys, parts=("image", "ext"))
        return {k: (f"{k}.{s['ext']}", s["image"]) for k, s in found.items()}

    def records(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """key -> the record's metadata (every RECORD_SCHEMA field but `image`)."""
        return {k: s["meta"] for k, s in self.samples(keys, parts=("meta",)).items()}

    def samples(
        self, keys: Iterable[str], parts: tuple[str, ...] = ("image", "meta")
    ) -> dict[str, dict[str, Any]]:
        """key -> {"image": bytes, "meta": dict, "ext": str} (the parts asked for: `ext` is the
        image's file extension, from the record's format), in the order asked."""
        locations = self.locate(keys)
        tar = {k: loc for k, loc in locations.items() if loc.entry.format == "webdataset"}
        other = {k: loc for k, loc in locations.items() if loc.entry.format != "webdataset"}
        found = {**self._tar_samples(tar, parts), **self._parquet_samples(other, parts)}
        return {k: found[k] for k in locations}

    def _tar_samples(
        self, locations: dict[str, Location], parts: tuple[str, ...]
    ) -> dict[str, dict[str, Any]]:
        names = {"image": "image", "meta": "json"}
        ranges = [(k, part, loc) for k, loc in locations.items() for part in parts if part in names]
        paths = [join(self.release.root, loc.entry.path) for _, _, loc in ranges]
        starts = [loc.row[f"{names[p]}_offset"] for _, p, loc in ranges]
        ends = [s + loc.row[f"{names[p]}_size"] for s, (_, p, loc) in zip(starts, ranges)]
        datas = self.release.fs.cat_ranges(paths, starts, ends) if ranges else []
        out: dict[str, dict[str, Any]] = {
            k: {"ext": loc.row["image_ext"]} if "ext" in parts else {} for k, loc in locations.items()
        }
        for (key, part, loc), data in zip(ranges, datas):
            if isinstance(data, BaseException):
                raise ShardError(f"{loc.entry.path}: cannot read {key}: {data}")
            if len(data) != loc.row[f"{names[part]}_size"]:
                raise ShardError(f"{loc.entry.path}: short read of {key} (shard altered?)")
            out[key][part] = _parse_meta(data, key, loc) if part == "meta" else data
        return out

    def _parquet_samples(
        self, locations: dict[str, Location], parts: tuple[str, ...]
    ) -> dict[str, dict[str, Any]]:
        groups: dict[tuple[str, int], list[Location]] = {}
        for loc in locations.values():
            groups.setdefault((loc.entry.path, loc.row["row_group"]), []).append(loc)
        out: dict[str, dict[str, Any]] = {}
        for (path, group), locs in sorted(groups.items()):
            table = self._read_row_group(path, group, parts)
            for loc in locs:
                row = table.slice(loc.row["row"], 1).to_pylist()[0]
                if row["key"] != loc.key:
                    raise ShardError(f"{path}: index says {loc.key}, row holds {row['key']}")
                image = row.pop("image", None)
                meta = {**row, "split": loc.entry.split, "synset": loc.entry.synset}
                out[loc.key] = {"image": image["bytes"]} if "image" in parts else {}
                if "meta" in parts:
                    out[loc.key]["meta"] = meta
                if "ext" in parts:
                    out[loc.key]["ext"] = image_extension(row["format"])
        return out

    def _read_row_group(self, path: str, group: int, parts: tuple[str, ...]) -> Any:
        full = join(self.release.root, path)
        with self.release.fs.open(full, "rb", cache_type="none") as f:
            pf = pq.ParquetFile(f)
            columns = (pf.schema_arrow.names if "meta" in parts
                       else ["key", "image", "format"] if "ext" in parts else ["key", "image"])
            return pf.read_row_group(group, columns=columns, use_threads=False)  # see pyfiles


def _parse_meta(data: bytes, key: str, loc: Location) -> dict[str, Any]:
    try:
        meta = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ShardError(f"{loc.entry.path}: the .json of {key} is not JSON") from None
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise ShardError(f"{loc.entry.path}: the .json at {key}'s offset is another sample's")
    return meta


def get_many(
    uri: str | Release, keys: Iterable[str], storage_options: dict[str, Any] | None = None
) -> dict[str, bytes]:
    """key -> image bytes for every key, from a release URI (or an open Release).

    Reads the manifest, the indexes of the keys' synsets and the images' byte ranges; nothing
    else. Raises KeyNotFound (a SynshardError and a KeyError) naming the absent keys.
    """
    release = uri if isinstance(uri, Release) else open_release(uri, storage_options)
    return KeyReader(release).images(keys)


def get_records(
    uri: str | Release, keys: Iterable[str], storage_options: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """key -> the record's metadata (no image), as `get_many` reads images."""
    release = uri if isinstance(uri, Release) else open_release(uri, storage_options)
    return KeyReader(release).records(keys)
