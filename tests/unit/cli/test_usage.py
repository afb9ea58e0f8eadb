"""Bad usage exits 2 whether argparse or the config refuses the value; a failed run exits 1."""
from __future__ import annotations

import pytest

from synshard.cli.app import main


@pytest.mark.parametrize("argv, says", [
    (["build", "SRC", "--out", "OUT", "--quality", "900"], "bad quality 900: use 1..100"),
    (["build", "SRC", "--out", "OUT", "--val-fraction", "2"], "val_fraction"),
    (["build", "SRC", "--out", "OUT", "--format", "tiff"], "expected 'webdataset' or 'parquet'"),
    (["build", "SRC"], "no output given (--out URI)"),
    (["tree", "--depth", "-1"], "--depth: -1: use 0 or more"),
    (["report", "REL", "--thumbnails", "-2"], "--thumbnails: -2: use 0 or more"),
    (["serve", "REL", "--port", "99999"], "invalid port 99999: use 0..65535"),
    (["serve", "REL", "--port", "http"], "invalid port 'http'"),
])
def test_a_refused_value_is_exit_2_in_one_line(argv, says, tmp_path, capsys):
    argv = [str(tmp_path / a) if a in ("SRC", "OUT", "REL") else a for a in argv]
    (tmp_path / "SRC").mkdir()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own refusal
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "OUT").exists()


def test_a_failure_that_is_not_usage_stays_exit_1(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_an_output_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "SRC").mkdir()
    (tmp_path / "afile").write_text("mine")
    assert main(["build", str(tmp_path / "SRC"), "--out", str(tmp_path / "afile")]) == 2
    assert "is a file: the release is a folder" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine"
