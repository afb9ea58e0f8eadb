"""`synshard demo --out X` replaces only its own: an earlier demo release or an unfinished build.
Another release, or a folder of someone's files, is refused in one line with exit 2 (before: the
demo built over it with overwrite and then gc removed the other release's shards and tables, or
overwrote the folder's report.html), unless --overwrite."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import fsspec
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "shards"))
from shardgen import build_release  # noqa: E402

from synshard.api import make_config  # noqa: E402
from synshard.cli.app import main  # noqa: E402
from synshard.cli.demo import DEMO_OPTIONS, foreign_contents, is_demo_config  # noqa: E402
from synshard.shards.release import commit_manifest  # noqa: E402


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _another_release(out: Path) -> None:
    build_release(fsspec.filesystem("file"), str(out))


def _own_files(out: Path) -> None:
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "report.html").write_text("<html>my own report</html>")


def _broken_manifest(out: Path) -> None:
    out.mkdir()
    (out / "manifest.json").write_text("{not json")


@pytest.mark.parametrize("make, says", [
    (_another_release, "holds another release ('tiny', built from no source)"),
    (_own_files, "holds other files (notes.txt, report.html)"),
    (_broken_manifest, "holds a manifest.json that cannot be read"),
])
def test_demo_refuses_what_is_not_its_own_in_one_line(make, says, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    make(out)
    before = _files(out)
    assert main(["demo", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert says in err and "pass --overwrite" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _files(out) == before  # nothing built, nothing removed


def _demo_release(out: Path, sample: str) -> None:
    manifest = build_release(fsspec.filesystem("file"), str(out))
    config = make_config([sample], str(out), **DEMO_OPTIONS).content()
    commit_manifest(fsspec.filesystem("file"), str(out),
                    dataclasses.replace(manifest, config=config))


def test_demo_may_replace_its_own(tmp_path) -> None:
    assert foreign_contents(str(tmp_path / "missing")) is None
    (tmp_path / "empty").mkdir()
    assert foreign_contents(str(tmp_path / "empty")) is None
    killed = tmp_path / "killed"  # a demo killed before its commit: the build resumes
    (killed / "_staging" / "abc").mkdir(parents=True)
    (killed / "webdataset").mkdir()
    (killed / ".manifest-x.tmp").write_text("{")
    assert foreign_contents(str(killed)) is None
    # an earlier demo, from a checkout elsewhere (the sample's path is in the manifest)
    _demo_release(tmp_path / "demo", "/elsewhere/checkout/data/sample")
    assert foreign_contents(str(tmp_path / "demo")) is None


def test_a_demo_config_is_the_bundled_sample_with_the_demo_options() -> None:
    demo = make_config(["/x/data/sample"], "out", **DEMO_OPTIONS).content()
    assert is_demo_config(demo)
    for other in (make_config(["/x/data/sample"], "out").content(),  # `synshard build` defaults
                  make_config(["/x/photos"], "out", **DEMO_OPTIONS).content(),
                  make_config(["/x/data/sample", "/y"], "out", **DEMO_OPTIONS).content()):
        assert not is_demo_config(other)
