"""The explorer's pages and JSON API through Flask's test client (no server, no browser)."""
from __future__ import annotations

import io
import json

import fsspec
import pyarrow as pa
import pytest
from PIL import Image
from shardgen import make_record

from synshard.explore.server import create_app
from synshard.shards.manifest import Manifest, counts_from_shards
from synshard.shards.parquet import write_parquet_shards
from synshard.shards.release import commit_manifest, open_release, write_table
from synshard.shards.webdataset import write_webdataset_shards
from synshard.transforms.schema import DUPLICATE_SCHEMA, RECORD_SCHEMA, REJECT_SCHEMA

TENCH, DOG = "n01440764", "n02084071"


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (i * 20 % 255, 90, 160)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("explore") / "rel")
    fs = fsspec.filesystem("file")
    shards = []
    for synset, n in ((TENCH, 7), (DOG, 3)):
        rows = [make_record(synset, "train", _jpeg(i), i, format="jpeg", width=64, height=48,
                            bboxes=[[4.0, 6.0, 40.0, 30.0]]) for i in range(n)]
        rows.sort(key=lambda r: r["key"])
        table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
        shards += write_webdataset_shards(fs, root, table, 10**6)
        shards += write_parquet_shards(fs, root, table, 10**6)
    kept = sorted(e for e in [make_record(TENCH, "train", _jpeg(0), 0)["key"]])[0]
    dups = pa.Table.from_pylist([{"key": f"{TENCH}_00000000000000aa", "source": "/x/copy.jpg",
                                  "synset": TENCH, "split": "train", "kept_key": kept,
                                  "kept_source": "/x/orig.jpg", "kind": "near", "distance": 3}],
                                schema=DUPLICATE_SCHEMA)
    rejects = pa.Table.from_pylist([{"source": "/x/<script>bad.jpg", "synset": TENCH,
                                     "stage": "decode", "reason": "truncated"}], schema=REJECT_SCHEMA)
    manifest = Manifest(
        name="tiny", tool_version="0", config={}, classes=[], shards=tuple(shards),
        counts=counts_from_shards(shards, "webdataset"), fingerprint="0",
        tables={"rejects": write_table(fs, root, "rejects", rejects),
                "duplicates": write_table(fs, root, "duplicates", dups)},
        accounting={"inputs": 12, "accepted": 10, "rejected": 1, "duplicates": 1})
    commit_manifest(fs, root, manifest)
    app = create_app(open_release(root))
    return app.test_client(), kept, manifest


def _json(client, url: str, status: int = 200):
    r = client.get(url)
    assert r.status_code == status, (url, r.data[:300])
    return json.loads(r.data)


def test_tree_expands_to_synsets_with_counts(client) -> None:
    c, _, _ = client
    root = _json(c, "/api/tree")
    assert root["wnid"] == "n00001740" and root["images"] == 10
    assert root["synsets_with_images"] == 2
    node = root
    while node["children"]:  # walk down the biggest branch: it ends at the tench
        node = _json(c, "/api/tree?root=" + node["children"][0]["wnid"])
    assert node["wnid"] == TENCH and node["own"] == 7 and node["gloss"]
    nodes = _json(c, f"/api/treemap?root={TENCH}")
    assert [n["id"] for n in nodes] == [TENCH] and nodes[0]["value"] == 7
    assert b"tench" in c.get(f"/?root={TENCH}").data


def test_synset_pages_and_tables(client) -> None:
    c, kept, manifest = client
    first = _json(c, f"/api/synset/{TENCH}?per_page=3")
    second = _json(c, f"/api/synset/{TENCH}?per_page=3&page=3")
    assert first["total_keys"] == 7 and first["pages"] == 3 and len(first["keys"]) == 3
    assert len(second["keys"]) == 1 and not set(first["keys"]) & set(second["keys"])
    assert first["by_split"] == {"train": 7}
    assert {s["format"] for s in first["shards"]} == {"webdataset", "parquet"}
    assert first["duplicates"][0]["kept_key"] == kept
    assert first["rejects"][0]["reason"] == "truncated"
    html = c.get(f"/synset/{TENCH}").data
    assert html.count(b"/thumb/") == 7 and b"&lt;script&gt;bad.jpg" in html  # escaped
    path = first["shards"][0]["path"]
    r = c.get("/files/" + path)
    assert r.status_code == 200 and r.data == open(
        f"{open_release_root(manifest, c)}/{path}", "rb").read()


def open_release_root(manifest, c) -> str:
    return c.application.extensions["synshard_view"].release.root


def test_image_page_record_boxes_duplicates_and_thumbnail(client) -> None:
    c, kept, _ = client
    data = _json(c, f"/api/image/{kept}")
    assert data["record"]["sha256"].startswith(kept.split("_")[1])
    assert data["duplicates"][0]["source"] == "/x/copy.jpg"
    html = c.get(f"/image/{kept}").data
    assert b'class="box" x="4.0" y="6.0" width="36.0"' in html
    raw = c.get(f"/raw/{kept}")
    assert raw.mimetype == "image/jpeg" and Image.open(io.BytesIO(raw.data)).size == (64, 48)
    thumb = c.get(f"/thumb/{kept}")
    assert thumb.mimetype == "image/jpeg" and max(Image.open(io.BytesIO(thumb.data)).size) <= 160


def test_search_by_word_and_key(client) -> None:
    c, kept, _ = client
    hits = _json(c, "/api/search?q=Tinca tinca")["synsets"]
    assert hits[0]["wnid"] == TENCH
    assert TENCH in [s["wnid"] for s in _json(c, "/api/search?q=ten")["synsets"]]
    assert _json(c, f"/api/search?q={kept}")["keys"] == [kept]
    r = c.get(f"/search?q={kept}")
    assert r.status_code == 302 and r.location.endswith(f"/image/{kept}")


@pytest.mark.parametrize("url,status", [
    ("/files/../manifest.json", 404), ("/files/manifest.json", 404),
    ("/files/%2e%2e/%2e%2e/etc/passwd", 404), ("/files/index/../../../etc/passwd", 404),
    ("/raw/..%2f..%2fmanifest.json", 404), ("/raw/n01440764_..", 400),
    ("/thumb/n01440764_0000000000000000", 404), ("/api/image/n01440764_ffffffffffffffff", 404),
    ("/api/image/n99999999_ffffffffffffffff", 404), ("/api/image/x" + "a" * 300, 400),
    ("/api/synset/n99999999", 404), ("/api/synset/n01440764.tar", 400),
    ("/api/synset/n01440764?per_page=201", 400), ("/api/synset/n01440764?per_page=0", 400),
    ("/api/synset/n01440764?page=abc", 400), ("/api/tree?root=..", 400),
    ("/api/search?q=", 400), ("/api/nothing", 404),
])
def test_hostile_requests_get_clear_4xx(client, url: str, status: int) -> None:
    c, _, _ = client
    r = c.get(url)
    assert r.status_code == status, (url, r.data[:200])
    if url.startswith("/api/"):
        assert json.loads(r.data)["status"] == status
