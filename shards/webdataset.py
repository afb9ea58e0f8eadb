"""WebDataset shards: deterministic tars of `<key>.<ext>`, `<key>.cls`, `<key>.json` per sample.

Each shard is written whole from its parts (a local temporary file renamed into place, or one
PUT on an object store), under a name that carries its content hash, so a reader never sees a
half-written file under a committed name. Tar headers are fixed (ustar, mtime 0, uid/gid 0, empty user/group names, mode
0o444, members sorted by name), so the same records give the same bytes: readable by the
`webdataset` library, Ray's `read_webdataset` and DALI, which all expect plain ustar members.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from typing import Any, Iterator, Literal

import numpy as np
import pyarrow as pa

from .atomic import put_parts
from .index import write_index
from .layout import ShardEntry, ShardError, cut_by_bytes, join, webdataset_shard_path
from .records import check_group, image_extension, metadata_jsons, records_from_samples

TAR_FORMAT: Literal[0, 1, 2] = tarfile.USTAR_FORMAT
_BLOCK = tarfile.BLOCKSIZE  # 512
_RECORD = tarfile.RECORDSIZE  # 10240: tarfile pads the archive to a multiple of this
_EOF = 2 * _BLOCK  # two zero blocks close an archive
_ZEROS = bytes(_RECORD)


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


# A member's ustar header as `tarfile` writes it for `_tar_info` (format USTAR, UTF-8), built
# from fixed parts: name (100) | mode uid gid (24) | size (12) | mtime (12) | checksum (8) |
# type (1) | linkname, magic, version, uname, gname, devmajor, devminor, prefix, padding (355).
# Only the name and the size vary, so the checksum (the sum of the header's bytes with the
# checksum field read as 8 spaces) is a constant plus theirs. tests/unit/shards/test_webdataset.py
# checks it byte for byte against `tarfile` (about 40x faster: no TarInfo objects or copies).
_MODE_IDS = b"0000444\0" + b"0000000\0" * 2
_MTIME = b"00000000000\0"
_TYPE = b"0"
_TAIL = bytes(100) + tarfile.POSIX_MAGIC + bytes(32 + 32 + 8 + 8 + 155 + 12)
_CHECKSUM_BASE = sum(_MODE_IDS) + sum(_MTIME) + 8 * ord(" ") + sum(_TYPE) + sum(_TAIL)


def _ustar_header(name: bytes, size: int) -> bytes:
    """The header block of a regular member `name` (UTF-8) of `size` bytes: tarfile's bytes."""
    if len(name) > 100 or not 0 <= size < 8 ** 11:  # a prefix split or a size field tarfile
        return _tar_info(name.decode("utf-8"), size).tobuf(TAR_FORMAT, "utf-8", "surrogateescape")
    size_field = b"%011o\0" % size
    checksum = _CHECKSUM_BASE + sum(name) + sum(size_field)
    return b"".join((name, bytes(100 - len(name)), _MODE_IDS, size_field, _MTIME,
                     b"%06o\0 " % checksum, _TYPE, _TAIL))


_TEMPLATE = np.frombuffer(_ustar_header(b"", 0), np.uint8)
_SIZE_SHIFTS = 3 * np.arange(10, -1, -1, dtype=np.int64)  # 11 octal digits, most significant first
_SUM_SHIFTS = 3 * np.arange(5, -1, -1, dtype=np.int64)  # the checksum's 6


def _ustar_headers(names: list[bytes], sizes: np.ndarray) -> bytes:
    """`_ustar_header` of each (name, size), concatenated: one block per member, all made at
    once in NumPy, with no Python call per member. Names over 100 bytes or
    sizes past ustar's 11 octal digits take the per-member path (and its `tarfile` fallback)."""
    count = len(names)
    if not count:
        return b""
    sizes = np.asarray(sizes, np.int64)
    if max(map(len, names)) > 100 or sizes.min() < 0 or sizes.max() >= 8 ** 11:
        return b"".join(_ustar_header(name, int(size)) for name, size in zip(names, sizes))
    block = np.tile(_TEMPLATE, (count, 1))
    block[:, :100] = np.array(names, dtype="S100").view(np.uint8).reshape(count, 100)
    block[:, 124:135] = 48 + ((sizes[:, None] >> _SIZE_SHIFTS) & 7)
    checksum = (_CHECKSUM_BASE + block[:, :100].sum(axis=1, dtype=np.int64)
                + block[:, 124:136].sum(axis=1, dtype=np.int64))
    block[:, 148:154] = 48 + ((checksum[:, None] >> _SUM_SHIFTS) & 7)
    return block.tobytes()


def _members(sample: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(member name, data) pairs of one sample, sorted by name."""
    key = sample["__key__"]
    return sorted((f"{key}.{ext}", data) for ext, data in sample.items() if ext != "__key__")


def _member_bytes(name: str, size: int) -> int:
    """Exact bytes one member takes in the tar: a ustar header block plus data padded to a block.

    ustar has no extended headers, so a header is always one block (names are at most 85
    characters here, within ustar's 100; a longer one is split into ustar's prefix and name, or
    fails in `tarfile`, never passes silently).
    """
    return _BLOCK + -(-size // _BLOCK) * _BLOCK


def _tar_file_bytes(members_total: int) -> int:
    """The archive's size for members taking `members_total` bytes (end blocks, record padding)."""
    return -(-(members_total + _EOF) // _RECORD) * _RECORD


def tar_bytes(samples: list[dict[str, Any]]) -> bytes:
    """A deterministic tar of the samples, in the given order."""
    return tar_with_members(samples)[0]


def tar_with_members(samples: list[dict[str, Any]]) -> tuple[bytes, list[tuple[str, int, int]]]:
    """A deterministic tar of the samples and its members as (name, header offset, data size)."""
    return _tar([[(name.encode("utf-8"), data) for name, data in _members(s)] for s in samples])


def _tar(samples: list[list[tuple[bytes, Any]]], members: bool = True
         ) -> tuple[bytes, list[tuple[str, int, int]]]:
    """The tar of samples given as their sorted (UTF-8 name, bytes-like data) members, and its
    members as (name, header offset, data size) (none unless `members`): the bytes `tarfile`
    would write, in one join."""
    parts, sizes = _tar_parts(samples)
    listed = []
    if members:
        spans = _BLOCK + -(-sizes // _BLOCK) * _BLOCK
        offsets = np.cumsum(spans) - spans
        names = [name.decode("utf-8") for sample in samples for name, _ in sample]
        listed = list(zip(names, offsets.tolist(), sizes.tolist()))
    return b"".join(parts), listed


def _tar_parts(samples: list[list[tuple[bytes, Any]]]) -> tuple[list[Any], np.ndarray]:
    """The tar of the samples as the parts whose concatenation it is (header blocks, the
    members' data as given, zero padding, the end blocks), and the members' data sizes."""
    names = [name for sample in samples for name, _ in sample]
    datas = [data for sample in samples for _, data in sample]
    sizes = np.fromiter(map(len, datas), np.int64, len(datas))
    headers = memoryview(_ustar_headers(names, sizes))
    parts: list[Any] = []
    offset = 0
    for i, (data, size) in enumerate(zip(datas, sizes.tolist())):
        padding = -size % _BLOCK
        parts += (headers[i * _BLOCK:(i + 1) * _BLOCK], data, _ZEROS[:padding])
        offset += _BLOCK + size + padding
    parts.append(bytes(_tar_file_bytes(offset) - offset))
    return parts, sizes


def _sample_members(records: pa.Table) -> list[list[tuple[bytes, Any]]]:
    """Each record's tar members, sorted by name: (UTF-8 name, data), the image as a zero-copy
    view of the Arrow buffer (nothing copies an image before it is written)."""
    images = _binary_views(records["image"])
    keys = records["key"].to_pylist()
    exts = _image_extensions(records["format"].to_pylist())
    labels = records["label"].to_pylist()
    metas = metadata_jsons(records)
    out = []
    for i, key in enumerate(keys):
        image = (f"{key}.{exts[i]}".encode(), images[i])
        meta = (f"{key}.json".encode(), metas[i])
        cls = (f"{key}.cls".encode(), str(labels[i]).encode("ascii"))
        # sorted by name: the key is common, so by extension (each sorts after "cls": checked)
        out.append([cls, image, meta] if exts[i] < "json" else [cls, meta, image])
    return out


def _image_extensions(formats: list[str]) -> list[str]:
    """Each record's image extension; ShardError for one that would not sort after `cls` (the
    tar layout, `_sample_members` and `_SampleLayout` rely on `.cls` being the first member)."""
    known = {fmt: image_extension(fmt) for fmt in set(formats)}
    if any(ext <= "cls" for ext in known.values()):
        raise ShardError(f"image extensions {sorted(known.values())}: the tar layout expects "
                         "each to sort after 'cls'")
    return [known[fmt] for fmt in formats]


def _binary_views(column: pa.ChunkedArray | pa.Array) -> list[memoryview]:
    """The values of a binary column as memoryviews into its Arrow buffers (no copies)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        raise ShardError("records have a null image")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset:]
    data = memoryview(array.buffers()[2] or b"")
    bounds = offsets[:len(array) + 1].tolist()
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def write_webdataset_shards(
    fs: Any, root: str, records: pa.Table, target_bytes: int
) -> list[ShardEntry]:
    """Write one (split, synset) group's records as tar shards of at most `target_bytes` each.

    Shard sizes are exact: a shard is cut when the next sample would make the file pass the
    target (a sample larger than the target gets a shard of its own). A shard's parts (header
    blocks, the images as views of the Arrow buffers, padding) are hashed and written as they
    are (`put_parts`), never joined into one buffer on a local disk. Each shard's key index
    (shards/index.py) is written right after it. Returns the entries (index fields set) in shard
    order; paths are relative to `root`.
    """
    records, split, synset = check_group(records)
    samples = _sample_members(records)
    layout = _SampleLayout.of(samples, records["format"].to_pylist())
    runs = cut_by_bytes(layout.span.tolist(), target_bytes, _tar_file_bytes)
    entries = []
    for index, (start, stop) in enumerate(runs):
        parts = _tar_parts(samples[start:stop])[0]
        hashed = hashlib.sha256()
        for part in parts:
            hashed.update(part)
        digest = hashed.hexdigest()
        path = webdataset_shard_path(split, synset, index, digest)
        fs.makedirs(join(root, path.rsplit("/", 1)[0]), exist_ok=True)
        put_parts(fs, join(root, path), parts)
        size = sum(map(len, parts))
        entry = ShardEntry(path, "webdataset", split, synset, stop - start, size, digest)
        entries.append(write_index(fs, root, entry, layout.index_columns(samples, start, stop)))
    return entries


@dataclass(frozen=True)
class _SampleLayout:
    """Where each sample's members lie in a tar of `_sample_members` samples (three members,
    sorted by name: `.cls`, then the image and `.json` in the order of their extensions), from
    their sizes alone: the index rows `index.tar_index_rows` makes from the tar's members,
    without parsing names or a dict per member (tests/unit/shards/test_index.py compares them)."""

    sizes: np.ndarray  # (samples, 3) data bytes of each member, in tar order
    padded: np.ndarray  # the same, padded to whole blocks
    image_first: np.ndarray  # the image is the second member (`.jpg` sorts before `.json`)
    exts: list[str]

    @classmethod
    def of(cls, samples: list[list[tuple[bytes, Any]]], formats: list[str]) -> "_SampleLayout":
        exts = _image_extensions(formats)
        sizes = np.array([(len(a), len(b), len(c)) for (_, a), (_, b), (_, c) in samples],
                         np.int64).reshape(-1, 3)
        image_first = np.array([ext < "json" for ext in exts], bool)
        return cls(sizes, -(-sizes // _BLOCK) * _BLOCK, image_first, exts)

    @property
    def span(self) -> np.ndarray:
        """Each sample's bytes in the tar: headers, data and padding."""
        return 3 * _BLOCK + self.padded.sum(axis=1)

    def index_columns(self, samples: list[list[tuple[bytes, Any]]], start: int,
                      stop: int) -> dict[str, Any]:
        """TAR_INDEX_SCHEMA columns of the tar of samples [start, stop), in key order (the
        samples' order: check_group has them sorted)."""
        sizes, first = self.sizes[start:stop], self.image_first[start:stop]
        padded = self.padded[start:stop]
        span = 3 * _BLOCK + padded.sum(axis=1)
        offset = np.cumsum(span) - span
        data0 = offset + _BLOCK  # the .cls member's data
        data1 = data0 + padded[:, 0] + _BLOCK
        data2 = data1 + padded[:, 1] + _BLOCK
        return {
            "key": [name[:name.index(b".")].decode() for (name, _), _, _ in samples[start:stop]],
            "offset": offset, "size": span, "image_ext": self.exts[start:stop],
            "image_offset": np.where(first, data1, data2),
            "image_size": np.where(first, sizes[:, 1], sizes[:, 2]),
            "cls_offset": data0, "cls_size": sizes[:, 0],
            "json_offset": np.where(first, data2, data1),
            "json_size": np.where(first, sizes[:, 2], sizes[:, 1]),
        }


def iter_webdataset_shard(fs: Any, path: str) -> Iterator[dict[str, Any]]:
    """Stream the samples of one tar shard as dicts keyed by extension (plus `__key__`)."""
    with fs.open(path, "rb") as raw:
        yield from iter_tar_samples(raw, path)


def iter_tar_samples(fileobj: Any, name: str) -> Iterator[dict[str, Any]]:
    """Samples of a tar read as a stream from `fileobj` (only `.read` is used).

    Members are grouped by the part of their name before the first dot, as WebDataset does.
    Anything but flat regular files is refused: a shard is ours, and a link or folder means it
    is not. `name` only labels errors.
    """
    yield from _group_members(_ustar_members(fileobj, name), name)


def _group_members(members: Iterator[tuple[str, bytes]], path: str) -> Iterator[dict[str, Any]]:
    sample: dict[str, Any] = {}
    for member, data in members:
        if "/" in member or "." not in member:
            raise ShardError(f"{path}: unexpected member {member!r}")
        key, ext = member.split(".", 1)
        if sample and sample["__key__"] != key:
            yield sample
            sample = {}
        if ext in sample:
            raise ShardError(f"{path}: member {member!r} appears twice")
        sample["__key__"] = key
        sample[ext] = data
    if sample:
        yield sample


_READ_CHUNK = 1 << 20


def _ustar_members(fileobj: Any, path: str) -> Iterator[tuple[str, bytes]]:
    """(name, data) of each member of a plain ustar stream, read in 1 MiB chunks.

    Shards are plain ustar with regular files only (see `_tar_info`), so this reads them without
    `tarfile`'s per-member objects: the loader's hot path. Headers are checksummed; anything but
    a regular file, or a stream that ends inside a member, is a ShardError.
    """
    buf, pos = b"", 0
    while True:
        header, buf, pos = _take(fileobj, buf, pos, _BLOCK, path, allow_eof=True)
        if header is None or header == bytes(_BLOCK):
            return  # end of archive (two zero blocks; trailing padding is not read)
        name, size = _parse_header(header, path)
        padded = -(-size // _BLOCK) * _BLOCK
        data, buf, pos = _take(fileobj, buf, pos, padded, path)
        yield name, data[:size]


def _take(fileobj: Any, buf: bytes, pos: int, n: int, path: str, allow_eof: bool = False):
    while len(buf) - pos < n:
        chunk = fileobj.read(max(_READ_CHUNK, n))
        if not chunk:
            if allow_eof and len(buf) == pos:
                return None, buf, pos
            raise ShardError(f"{path}: not a readable tar: unexpected end of data")
        buf = buf[pos:] + chunk
        pos = 0
    return buf[pos:pos + n], buf, pos + n


def _parse_header(header: bytes, path: str) -> tuple[str, int]:
    try:
        stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
        size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        raise ShardError(f"{path}: not a readable tar: bad header") from None
    if stored != sum(header[:148]) + 256 + sum(header[156:]):
        raise ShardError(f"{path}: not a readable tar: bad header checksum")
    if header[156:157] not in (b"0", b"\0"):
        raise ShardError(f"{path}: unexpected member type {header[156:157]!r}")
    name = header[:100].split(b"\0", 1)[0]
    prefix = header[345:500].split(b"\0", 1)[0]
    full = (prefix + b"/" + name if prefix else name).decode("utf-8", "replace")
    return full, size


def records_from_webdataset(fs: Any, path: str) -> pa.Table:
    """Read one tar shard back as a RECORD_SCHEMA table (the exact records that were written)."""
    return records_from_samples(iter_webdataset_shard(fs, path))

