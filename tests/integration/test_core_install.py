"""The core install on its own: the built wheel in a fresh venv with plain Pillow (no Ray, no
simplejpeg, no Pillow-SIMD). The reading commands work; the commands that need the build extra
say so in one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synshard.shards.reader import shard_keys
from synshard.shards.release import open_release

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("core")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(work / "wheel"), str(REPO)],
                   check=True, cwd=work)
    wheel = next((work / "wheel").glob("synshard-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", f"{wheel}[pillow]"], check=True)
    return venv


def _run(venv: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "synshard"), *argv], capture_output=True,
                          text=True, cwd=venv.parent, timeout=300)


def test_the_core_has_plain_pillow_and_no_build_extra(core_venv):
    probe = ("import importlib.util as u, PIL; from importlib import metadata as m;"
             "print(m.version('pillow'), [n for n in ('ray', 'simplejpeg', 'flask', 'plotly')"
             " if u.find_spec(n)])")
    out = subprocess.run([str(core_venv / "bin" / "python"), "-c", probe], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().endswith("[]"), out


def test_reading_commands_work_in_the_core_install(core_venv, sample_release, tmp_path):
    rel = str(sample_release)
    for argv, expect in ((["info", rel], "samples"), (["verify", rel], "verify: ok"),
                         (["tree", rel], "images"), (["diff", rel, rel], "no changes"),
                         (["info", rel, "--json"], '"shards"')):
        done = _run(core_venv, *argv)
        assert done.returncode == 0 and expect in done.stdout, (argv, done.stderr)
    release = open_release(rel)
    key = shard_keys(release, release.manifest.shards[0])[0]
    image = tmp_path / "image.jpg"
    done = _run(core_venv, "get", rel, key, "-o", str(image))
    assert done.returncode == 0, done.stderr
    assert image.read_bytes()[:2] == b"\xff\xd8"


@pytest.mark.parametrize("argv", [["build", "data/sample", "--out", "rel"],
                                  ["report", "REL"], ["serve", "REL"],
                                  ["leakage", "REL", "data/sample"]])
def test_build_extra_commands_say_how_to_get_it_in_one_line(core_venv, sample_release, argv):
    argv = [str(sample_release) if a == "REL" else str(REPO / a) if a == "data/sample" else a
            for a in argv]
    done = _run(core_venv, *argv)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"synshard {argv[0]} needs the build extra: pip install 'synshard[build]'" \
        in done.stderr
