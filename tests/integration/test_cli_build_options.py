"""Build options no other test exercised, through the command line as a user types them:
`--votes/--min-confidence` (votes and sources meet by one spelling), `--max-per-synset`,
`--classes FILE`, `--config build.toml` (flags win) and `--test-fraction`."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from synshard.cli import main
from synshard.shards.release import open_release

REPO = Path(__file__).resolve().parents[2]
LADYBUG = "n02165456"
X, Y, Z = "n02165456_10551", "n02165456_19644", "n02165456_304"


def _run(capsys, *argv: str) -> str:
    rc = main(["build", *argv, "--no-progress"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


def _records(out: Path) -> dict[str, dict]:
    release = open_release(str(out))
    rows = {}
    for e in release.shards(format="parquet"):
        for r in pq.read_table(release.uri(e.path)).drop_columns(["image"]).to_pylist():
            rows[Path(r["source"]).stem] = {**r, "split": e.split, "synset": e.synset}
    return rows


def _wds_json(out: Path) -> dict[str, dict]:
    import tarfile

    release = open_release(str(out))
    found = {}
    for e in release.shards(format="webdataset"):
        with tarfile.open(release.uri(e.path)) as tar:
            for m in tar:
                if m.name.endswith(".json"):
                    meta = json.loads(tar.extractfile(m).read())  # strict JSON: no NaN
                    found[Path(meta["source"]).stem] = meta
    return found


def test_votes_keyed_by_absolute_paths_meet_a_relative_source(ray_local, capsys, tmp_path,
                                                              monkeypatch):
    monkeypatch.chdir(REPO)
    here = REPO / "data" / "sample" / LADYBUG
    votes = tmp_path / "votes.csv"
    rows = [f"{here / (X + '.JPEG')},{LADYBUG},w{i},no" for i in range(3)]
    rows += [f"{here / (Y + '.JPEG')},{LADYBUG},w{i},yes" for i in range(3)]
    rows += [f"./data/sample/{LADYBUG}/{Z}.JPEG,{LADYBUG},w1,no"]  # relative: the same image
    rows += [f"/nowhere/ghost.JPEG,{LADYBUG},w{i},yes" for i in range(2)] + ["ghostkey,n1,w1,no"]
    votes.write_text("image,synset,worker,vote\n" + "\n".join(rows) + "\n")
    out = tmp_path / "rel"
    printed = _run(capsys, "data/sample", "--out", str(out), "--votes", str(votes),
                   "--vote-method", "mv", "--min-confidence", "0.5", "--val-fraction", "0.2")
    assert "3 votes for images not in this build" in printed
    build = json.loads((out / "build.json").read_text())
    assert build["stats"]["votes"]["votes_not_in_build"] == 3
    assert build["stats"]["votes"]["images_not_in_build"] == 2
    rejects = {Path(r["source"]).stem: r["reason"]
               for r in open_release(str(out)).read_table("rejects").to_pylist()}
    assert rejects[X] == rejects[Z] == "low confidence"
    records, metas = _records(out), _wds_json(out)
    assert X not in records and Z not in records
    assert records[Y]["confidence"] == 1.0 and metas[Y]["confidence"] == 1.0
    others = [m["confidence"] for k, m in metas.items() if k != Y]
    assert others and all(c is None for c in others)  # no votes: null, never NaN
    assert open_release(str(out)).manifest.config["sources"] == [str(REPO / "data" / "sample")]


def test_max_per_synset_caps_each_split_of_each_synset(ray_local, capsys, sample_dir, tmp_path):
    out = tmp_path / "rel"
    _run(capsys, str(sample_dir), "--out", str(out), "--max-per-synset", "2",
         "--val-fraction", "0.3")
    per = Counter((r["synset"], r["split"]) for r in _records(out).values())
    assert per and max(per.values()) == 2
    release = open_release(str(out))
    capped = [r for r in release.read_table("rejects").to_pylist()
              if r["reason"] == "over max_per_synset 2"]
    assert capped  # the sample has more than 2 train images of every synset
    assert release.manifest.accounting["accepted"] == sum(per.values())


def test_classes_file_pins_the_label_order(ray_local, capsys, sample_dir, tmp_path):
    order = ["n11939491", "n02165456", "n09428293", "n09332890", "n01440764"]  # tench: absent
    classes = tmp_path / "classes.txt"
    classes.write_text("# pinned\n" + "\n".join(order) + "\n")
    out = tmp_path / "rel"
    _run(capsys, str(sample_dir), "--out", str(out), "--classes", str(classes))
    manifest = open_release(str(out)).manifest
    assert [c["synset"] for c in manifest.classes] == order
    for r in _records(out).values():
        assert r["label"] == order.index(r["synset"])


def test_config_file_with_flags_on_top_and_a_test_split(ray_local, capsys, sample_dir, tmp_path):
    toml = tmp_path / "build.toml"
    toml.write_text('name = "from-toml"\nshard_bytes = 1048576\n'
                    '[splits]\nval_fraction = 0.5\ntest_fraction = 0.1\n'
                    '[transform]\nquality = 80\n')
    out = tmp_path / "rel"
    _run(capsys, str(sample_dir), "--out", str(out), "--config", str(toml),
         "--val-fraction", "0.2", "--test-fraction", "0.3")
    manifest = open_release(str(out)).manifest
    assert manifest.name == "from-toml"
    assert manifest.config["transform"]["quality"] == 80 and manifest.config["shard_bytes"] == 1 << 20
    assert manifest.config["splits"]["val_fraction"] == 0.2  # the flag wins
    assert manifest.config["splits"]["test_fraction"] == 0.3
    splits = Counter(r["split"] for r in _records(out).values())
    assert set(splits) == {"train", "val", "test"}
    assert manifest.counts["by_split"] == dict(splits)
