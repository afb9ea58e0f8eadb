"""`get` from an S3 server on 127.0.0.1 (moto's server mode, through real s3fs): ranged reads.

The release is written straight to the bucket by the shard writers; every key's bytes must equal
its tar member, and only the keys' index files and the images' byte ranges are read.
"""
from __future__ import annotations

import dataclasses
import io
import sys
import tarfile
from pathlib import Path

import pyarrow as pa
from s3 import s3  # noqa: F401 - the fixture

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit" / "explore"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit" / "shards"))
from counting import CountingFS  # noqa: E402
from shardgen import make_record  # noqa: E402

from synshard.shards.access import KeyReader, get_many  # noqa: E402
from synshard.shards.manifest import Manifest, counts_from_shards  # noqa: E402
from synshard.shards.release import commit_manifest, open_release  # noqa: E402
from synshard.shards.webdataset import write_webdataset_shards  # noqa: E402
from synshard.transforms.schema import RECORD_SCHEMA  # noqa: E402


def _write_release(fs, root: str) -> list:
    entries = []
    for synset, n in (("n01440764", 40), ("n02084071", 12)):
        rows = [make_record(synset, "train", bytes([i]) * (30_000 + 97 * i), i) for i in range(n)]
        rows.sort(key=lambda r: r["key"])
        entries += write_webdataset_shards(fs, root, pa.Table.from_pylist(rows, RECORD_SCHEMA),
                                           target_bytes=600_000)
    manifest = Manifest(name="s3", tool_version="0", config={}, classes=[], tables={},
                        counts=counts_from_shards(entries, "webdataset"), shards=tuple(entries),
                        fingerprint="0",
                        accounting={"inputs": 52, "accepted": 52, "rejected": 0, "duplicates": 0})
    commit_manifest(fs, root, manifest)
    return entries


def test_get_from_s3_matches_every_member_with_ranged_reads(s3) -> None:  # noqa: F811
    fs = s3.fs()
    root = f"{s3.bucket}/rel"
    entries = _write_release(fs, root)
    members: dict[str, bytes] = {}
    for e in entries:
        with tarfile.open(fileobj=io.BytesIO(fs.cat_file(f"{root}/{e.path}"))) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".jpg") or m.name.endswith(".webp") or m.name.endswith(".png"):
                    members[m.name.split(".")[0]] = tar.extractfile(m).read()
    assert len(members) == 52

    got = get_many(s3.uri("rel"), list(members), storage_options=s3.storage_options())
    assert got == members

    release = open_release(s3.uri("rel"), s3.storage_options())
    counting = CountingFS(release.fs)
    reader = KeyReader(dataclasses.replace(release, fs=counting))
    key = sorted(k for k in members if k.startswith("n02084071"))[3]
    assert reader.images([key]) == {key: members[key]}
    (entry,) = [e for e in entries if e.synset == "n02084071"]
    assert counting.bytes_read == len(members[key]) + entry.index_bytes
    assert counting.bytes_read < entry.bytes / 5
    assert all("n02084071" in path for path, _ in counting.reads)


def test_get_and_report_write_their_outputs_to_s3(s3, tmp_path, monkeypatch) -> None:  # noqa: F811
    """`-o s3://bucket/prefix/` writes objects through fsspec, for `get` (one key, several) and
    `report` alike; a folder-like -o (ending in /, or a prefix holding objects) gets the
    command's own file names. Before: `get` wrote local paths (`s3:/bucket/...` folders)."""
    import fsspec
    import s3fs
    from shardgen import build_release

    from synshard.cli.app import main

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)  # the CLI reads the standard environment
    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.chdir(tmp_path)  # a local file written by mistake would land here
    root = str(tmp_path / "rel")
    build_release(fsspec.filesystem("file"), root, formats=("parquet",))
    reader = KeyReader(open_release(root))
    keys = sorted({key for wnid in ("n01440764", "n02084071") for key in reader.synset_index(wnid)})
    assert len(keys) == 10
    files = reader.image_files(keys)
    one, (one_name, one_bytes) = keys[0], files[keys[0]]

    assert main(["get", root, *keys, "-o", s3.uri("many")]) == 0
    assert main(["get", root, one, "-o", s3.uri("one") + "/"]) == 0
    assert main(["get", root, one, "-o", s3.uri("named.bin")]) == 0
    assert main(["report", root, "-o", s3.uri("reports") + "/", "--thumbnails", "0"]) == 0
    assert main(["report", root, "-o", s3.uri("many"), "--thumbnails", "0"]) == 0  # a prefix

    fs, bucket = s3.fs(), s3.bucket
    assert {p.rsplit("/", 1)[1]: fs.cat_file(p) for p in fs.find(f"{bucket}/many")
            if not p.endswith(".html")} == dict(files.values())
    assert fs.cat_file(f"{bucket}/one/{one_name}") == one_bytes
    assert fs.cat_file(f"{bucket}/named.bin") == one_bytes
    for report in (f"{bucket}/reports/report.html", f"{bucket}/many/report.html"):
        assert fs.cat_file(report).lstrip().lower().startswith(b"<!doctype html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"]  # nothing written locally
