"""Releases on the S3 protocol (moto's server on 127.0.0.1, real s3fs), through faults too.

Builds run as subprocesses (`python -c "synshard.build(...)"`), each with its own embedded Ray, so
that credentials reach Ray's workers the production way: from the standard AWS environment of the
process that starts Ray (the session's shared Ray in conftest was started without them).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import s3fs

sys.path.insert(0, str(Path(__file__).parent))
from faultproxy import FaultProxy  # noqa: E402
from s3 import ACCESS_KEY, S3Endpoint, s3, upload_folder  # noqa: E402,F401  (s3: a fixture)

from synshard.release.gc import collect_garbage  # noqa: E402
from synshard.release.lock import BuildLock, LockHeld  # noqa: E402
from synshard.shards.release import open_release  # noqa: E402
from synshard.shards.verify import verify_release  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUILD = """
import json, sys, synshard
args = json.loads(sys.argv[1])
try:
    r = synshard.build(args["sources"], args["out"], storage_options=args["so"], progress=False,
                       name="r", log=lambda m: print("log:", m, flush=True), **args.get("opts", {}))
except Exception as exc:
    print("ERROR", type(exc).__name__, exc, flush=True)
    sys.exit(3)
print("RESULT", json.dumps({"noop": r.noop, "accounting": r.accounting}), flush=True)
"""


def _build(ep: S3Endpoint, sources: list[str], out: str, so: dict, timeout: float = 300,
           **opts) -> subprocess.CompletedProcess:
    env = {**os.environ, **ep.env(), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("AWS_ENDPOINT_URL")  # the endpoint comes from storage options, as configured
    args = json.dumps({"sources": sources, "out": out, "so": so, "opts": opts})
    return subprocess.run([sys.executable, "-c", BUILD, args], env=env, cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def _release_files(fs, root: str) -> dict[str, bytes]:
    """Every file of a release but build.json; the manifest without its creation time."""
    out = {}
    for path in sorted(fs.find(root)):
        rel = path[len(root) + 1:]
        if rel not in ("build.json", "DATASHEET.md"):
            out[rel] = fs.cat_file(path)
    manifest = json.loads(out.pop("manifest.json"))
    manifest.pop("created")
    out["manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    return out


@pytest.fixture
def sample_on_s3(s3, sample_dir) -> str:
    upload_folder(s3.fs(), str(sample_dir), f"{s3.bucket}/src")
    return s3.uri("src")


@pytest.mark.slow
def test_build_verify_open_and_faults_on_s3(s3, sample_on_s3):
    direct = _build(s3, [sample_on_s3], s3.uri("r1"), s3.storage_options())
    assert direct.returncode == 0, direct.stdout + direct.stderr
    release = open_release(s3.uri("r1"), s3.storage_options())
    result = json.loads(direct.stdout.split("RESULT ", 1)[1])
    assert result["accounting"]["inputs"] == 42  # 41 images and the sample's README
    assert release.manifest.counts["total"] == result["accounting"]["accepted"] > 30
    assert all(u.startswith(f"s3://{s3.bucket}/r1/") for u in release.files())
    assert verify_release(s3.uri("r1"), storage_options=s3.storage_options()) == []

    proxy = FaultProxy(s3.url, rate=0.15, seed=11, slow_s=0.5).start()
    try:
        faulty = _build(s3, [sample_on_s3], s3.uri("r2"), s3.storage_options(proxy.url, 10))
        assert faulty.returncode == 0, faulty.stdout + faulty.stderr
        # Loading through the faults: a full verify downloads and re-hashes every file.
        assert verify_release(s3.uri("r2"), storage_options=s3.storage_options(proxy.url, 10)) == []
    finally:
        proxy.stop()
    assert set(proxy.counts) == {"503", "reset", "slow"}, proxy.counts
    print(f"fault proxy: {proxy.requests} requests, injected {dict(proxy.counts)}")
    fs = s3.fs()
    assert _release_files(fs, f"{s3.bucket}/r2") == _release_files(fs, f"{s3.bucket}/r1")

    again = _build(s3, [sample_on_s3], s3.uri("r1"), s3.storage_options())
    assert again.returncode == 0 and '"noop": true' in again.stdout

    # The secret is nowhere: not in any stored object, nor in any output of the builds.
    for path in fs.find(s3.bucket):
        assert s3.secret.encode() not in fs.cat_file(path), path
    for run in (direct, faulty, again):
        assert s3.secret not in run.stdout + run.stderr


def test_readers_forked_beside_a_starting_ray_read_and_stage_on_s3(s3, sample_on_s3):
    """Many read tasks: readers forked from the driver (synshard/builder/forkreads.py) read the
    sources and write staging through s3fs, whose filesystems refuse to run in a fork of the
    process that made them; each reader makes its own, as a Ray worker does."""
    run = _build(s3, [sample_on_s3], s3.uri("forked"), s3.storage_options(), files_per_task=4,
                 num_cpus=2, embedded_ray="always")
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert result["accounting"]["inputs"] == 42
    fs = s3.fs()
    stats = json.loads(fs.cat_file(f"{s3.bucket}/forked/build.json"))["stats"]
    assert stats["tasks"] > 2
    assert stats["cluster"]["read_before_ray"]["forked_readers"] == 2
    assert stats["cluster"]["read_before_ray"]["inputs"] > 0
    assert verify_release(s3.uri("forked"), storage_options=s3.storage_options()) == []


def test_failed_build_does_not_leak_credentials(s3, sample_on_s3):
    so = {**s3.storage_options(), "key": ACCESS_KEY, "secret": s3.secret}  # explicit, worst case
    run = _build(s3, [s3.uri("no-such-folder")], s3.uri("r"), so, timeout=180)
    assert run.returncode != 0
    assert "ERROR" in run.stdout
    assert s3.secret not in run.stdout + run.stderr


def test_quick_verify_downloads_no_shard(s3, tmp_path):
    from synshard.shards.release import release_fs

    sys.path.insert(0, str(REPO / "tests" / "unit" / "shards"))
    from shardgen import build_release

    fs, root = release_fs(s3.uri("q"), s3.storage_options())
    build_release(fs, root)
    proxy = FaultProxy(s3.url, rate=0.0).start()
    try:
        so = s3.storage_options(proxy.url)
        assert verify_release(s3.uri("q"), quick=True, storage_options=so) == []
        quick = [p for m, p in proxy.seen if m == "GET" and p.endswith((".tar", ".parquet"))]
        assert quick == [], quick  # presence and sizes from listings only
        fs.pipe_file(f"{root}/webdataset/extra.tar", b"x")
        fs.rm_file(f"{root}/" + open_release(s3.uri("q"), so).manifest.shards[0].path)
        s3fs.S3FileSystem.clear_instance_cache()  # verify's cached listing predates the change
        kinds = {p.kind for p in verify_release(s3.uri("q"), quick=True, storage_options=so)}
        assert kinds == {"missing", "extra"}
        proxy.seen.clear()
        verify_release(s3.uri("q"), storage_options=so)
        assert any(m == "GET" and p.endswith(".tar") for m, p in proxy.seen)  # full mode reads
    finally:
        proxy.stop()


def test_lock_on_s3_uses_conditional_puts(s3):
    so = s3.storage_options()
    with BuildLock(s3.uri("locked"), so, heartbeat=False) as first:
        with pytest.raises(LockHeld, match="refusing to start a second one"):
            BuildLock(s3.uri("locked"), so, heartbeat=False).acquire()
        first.ensure_held()
    later = BuildLock(s3.uri("locked"), so, ttl=5, heartbeat=False).acquire()  # free again
    import time

    taker = BuildLock(s3.uri("locked"), so, heartbeat=False, clock=lambda: time.time() + 6)
    taker.acquire()  # the first lease expired: If-Match on its ETag takes it over
    from synshard.release.lock import LockLost

    with pytest.raises(LockLost):
        later.ensure_held()
    taker.release()


def test_gc_on_s3_removes_debris_and_aborts_uploads(s3):
    from synshard.shards.release import release_fs

    sys.path.insert(0, str(REPO / "tests" / "unit" / "shards"))
    from shardgen import build_release

    so = s3.storage_options()
    fs, root = release_fs(s3.uri("g"), so)
    build_release(fs, root)
    committed = sorted(fs.find(root))
    fs.pipe_file(f"{root}/webdataset/train/n01440764/n01440764-000009-deadbeef.tar", b"x" * 10)
    fs.pipe_file(f"{root}/_staging/0123456789abcdef/n01440764/a.parquet", b"y" * 20)
    fs.call_s3("create_multipart_upload", Bucket=s3.bucket,
               Key="g/parquet/split=train/synset=n01440764/part-000009-00000000.parquet")
    fs.call_s3("create_multipart_upload", Bucket=s3.bucket, Key="other/keep-me")
    dry = collect_garbage(s3.uri("g"), so, dry_run=True)
    assert len(dry.shards) == 1 and len(dry.staging) == 1 and len(dry.uploads) == 1
    report = collect_garbage(s3.uri("g"), so)
    assert report.bytes == 30 and report.uploads == dry.uploads
    fs.invalidate_cache()
    assert sorted(fs.find(root)) == committed
    left = fs.call_s3("list_multipart_uploads", Bucket=s3.bucket).get("Uploads", [])
    assert [u["Key"] for u in left] == ["other/keep-me"]  # outside the release: untouched
    assert verify_release(s3.uri("g"), storage_options=so) == []
