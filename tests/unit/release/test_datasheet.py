"""The datasheet of a tiny release written without Ray: sources, counts, licences, settings,
limitations and the removal log, with credentials and removed sources kept out of it."""
from __future__ import annotations

import io
import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pytest
from PIL import Image

from synshard.release.datasheet import datasheet_markdown, redact_config, redact_uri
from synshard.release.report import render_report, gather, treemap_nodes
from synshard.shards.manifest import Manifest, counts_from_shards
from synshard.shards.parquet import write_parquet_shards
from synshard.shards.release import commit_manifest, open_release, write_table
from synshard.synsets.hierarchy import load_hierarchy
from synshard.transforms.schema import RECORD_SCHEMA

SECRET_SOURCE = "https://alice:hunter2@images.example.org/list.csv?X-Amz-Signature=deadbeef"
TENCH, GOLDFISH = "n01440764", "n01443537"


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, "JPEG")
    return buf.getvalue()


def _records(synset: str, label: int, licences: list[str | None]) -> pa.Table:
    rows = []
    for i, lic in enumerate(licences):
        sha = f"{i:02x}{label}".ljust(64, "0")
        rows.append({"key": f"{synset}_{sha[:16]}", "synset": synset, "label": label,
                     "split": "train", "image": _jpeg((40 * i, 200, 90)), "format": "jpeg",
                     "width": 8, "height": 8, "orig_width": 8, "orig_height": 8,
                     "orig_format": "jpeg", "sha256": sha, "phash": i, "source": f"s/{i}.jpg",
                     "bboxes": None, "confidence": None, "license": lic, "attribution": None,
                     "ops": "encode"})
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


@pytest.fixture
def release(tmp_path: Path):
    fs, root = fsspec.filesystem("file"), str(tmp_path / "rel")
    entries = write_parquet_shards(fs, root, _records(TENCH, 0, ["CC-BY-4.0", "CC-BY-4.0", None]),
                                   1 << 20)
    entries += write_parquet_shards(fs, root, _records(GOLDFISH, 1, ["CC0-1.0"] * 12), 1 << 20)
    rejects = pa.table({
        "source": [SECRET_SOURCE, "https://takedown.example/face.jpg", "a|b.jpg"],
        "stage": ["decode", "takedown", "validate"],
        "reason": ["truncated", "person request", "too small: 3x3 | tiny"],
        "key": [None, f"{TENCH}_00ff00ff00ff00ff", None]})  # fmt: skip
    dups = pa.table({"key": ["k"], "source": ["s"], "kept_key": ["k2"], "kept_source": ["s2"],
                     "kind": ["exact"], "distance": [0]})
    tables = {"rejects": write_table(fs, root, "rejects", rejects),
              "duplicates": write_table(fs, root, "duplicates", dups)}
    config = {"sources": [SECRET_SOURCE, "/data/train"],
              "transform": {"resize": "shorter:256", "quality": 90},
              "dedup": {"label_conflict": "drop"},
              "splits": {"val_fraction": 0.0, "test_fraction": 0.0}}
    manifest = Manifest(
        name="tiny", tool_version="0.1.0", config=config,
        classes=[{"synset": TENCH, "label": 0, "lemmas": ["tench", "Tinca_tinca"]},
                 {"synset": GOLDFISH, "label": 1, "lemmas": ["goldfish"]}],
        counts=counts_from_shards(entries, "parquet"), shards=tuple(entries),
        accounting={"inputs": 19, "accepted": 15, "rejected": 3, "duplicates": 1},
        tables=tables, fingerprint="0" * 64)  # fmt: skip
    commit_manifest(fs, root, manifest)
    return open_release(root)


def test_datasheet_says_what_is_in_the_release(release) -> None:
    text = datasheet_markdown(release)
    assert text.startswith("# Datasheet: tiny\n")
    assert "15 images (train 15) in 2 classes" in text
    assert f"| {TENCH} | 0 | tench | 3 | 3 |" in text
    assert "| CC0-1.0 | 12 |" in text and "| CC-BY-4.0 | 2 |" in text
    assert "| (not given by the source) | 1 |" in text
    assert "19 inputs = 15 accepted + 3 rejected + 1 duplicates" in text
    assert '| resize | "shorter:256" |' in text and '| label_conflict | "drop" |' in text
    assert "| exact | 1 |" in text
    # limitations follow the facts: the small class, no votes, no test split
    assert f"1 classes have fewer than 10 images ({TENCH})" in text
    assert "not verified by people" in text and "no test split" in text


def test_removal_log_lists_keys_and_reasons_but_not_sources(release) -> None:
    text = datasheet_markdown(release)
    log = text.split("## Removal log", 1)[1]
    assert "1 images were removed on purpose" in log
    assert f"| {TENCH}_00ff00ff00ff00ff | person request |" in log
    assert "takedown.example" not in text


def test_no_credentials_and_cells_stay_cells(release) -> None:
    text = datasheet_markdown(release)
    assert "hunter2" not in text and "alice" not in text and "deadbeef" not in text
    assert "`https://images.example.org/list.csv`" in text
    assert "too small: 3x3 \\| tiny" in text  # a pipe in a reason does not split the row


def test_redaction() -> None:
    assert redact_uri(SECRET_SOURCE) == "https://images.example.org/list.csv"
    assert redact_uri("s3://bucket/prefix/x.tar") == "s3://bucket/prefix/x.tar"
    assert redact_uri("/data/with?odd=name") == "/data/with?odd=name"  # a path, not a URL
    assert redact_uri("http://u:p@host:8080/a") == "http://host:8080/a"
    assert redact_config({"a": [SECRET_SOURCE], "b": 3}) == {
        "a": ["https://images.example.org/list.csv"], "b": 3}


def test_report_page_escapes_and_redacts(release) -> None:
    """The HTML report (rendered without a browser) shares the datasheet's readers and rules."""
    page = render_report(gather(release, thumbnails_per_synset=2))
    assert "hunter2" not in page and "deadbeef" not in page
    assert page.count('<img src="data:image/jpeg;base64,') == 4
    assert 'id="treemap"' in page and "tench" in page


def test_treemap_counts_each_image_once() -> None:
    h = load_hierarchy()
    nodes = {n["id"]: n for n in treemap_nodes(h, {TENCH: 3, GOLDFISH: 12, "nBOGUS": 2})}
    roots = [n for n in nodes.values() if n["parent"] == ""]
    assert len(roots) == 1 and roots[0]["value"] == 17
    for node in nodes.values():  # branchvalues="total": a parent holds its children exactly
        kids = [k for k in nodes.values() if k["parent"] == node["id"]]
        if kids:
            assert node["value"] == node["own"] + sum(k["value"] for k in kids)
    assert nodes["nBOGUS"]["parent"] == "unknown"


def test_votes_and_timings_from_build_json(release) -> None:
    """Worker quality and per-stage throughput appear only when build.json has them."""
    page = render_report(gather(release, thumbnails_per_synset=0))
    assert "Worker quality" not in page and "No build.json timings" in page
    build = {"stats": {"timings_s": {"read+transform+stage": 2.0, "assemble": 0.5},
                       "votes": {"method": "ds", "workers": 40, "spammers": 3,
                                 "mean_sensitivity": 0.91}}}
    release.fs.pipe_file(release.root + "/build.json", json.dumps(build).encode())
    page = render_report(gather(release, thumbnails_per_synset=0))
    assert "Worker quality" in page and "mean_sensitivity" in page
    assert 'id="throughput-chart"' in page and "<td>10</td>" in page  # 19 inputs / 2.0 s
    assert "crowd votes (ds, 40 workers, 3 flagged" in datasheet_markdown(release)
