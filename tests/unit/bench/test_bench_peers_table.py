"""The ratio and table code of `make bench-peers` (bench/peers/peer_table.py, run.py's exit)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench" / "peers"))
import peer_table as pt  # noqa: E402


def test_advantage_follows_the_direction_of_the_unit():
    assert pt.advantage(pt.row("j", "p", 100, 150, "img/s", True)) == pytest.approx(1.5)
    assert pt.advantage(pt.row("j", "p", 4.0, 0.5, "CPU-s", False)) == pytest.approx(8.0)
    assert pt.advantage(pt.row("j", "p", 140, 113, "img/s", True)) == pytest.approx(113 / 140)


def test_advantage_edge_cases():
    assert pt.advantage(pt.row("j", "p", 0, 0, "pairs", False)) == 1.0
    assert math.isinf(pt.advantage(pt.row("j", "p", 5, 0, "pairs", False)))
    assert pt.advantage(pt.not_run("j", "p", "why")) is None


def test_verdict():
    assert pt.verdict(1.5) == "ahead"
    assert pt.verdict(0.79) == "behind"
    assert pt.verdict(1.01) == "even"
    assert pt.verdict(None) == "not run"


def test_best_picks_per_direction():
    assert pt.best([3.0, 2.0, 4.0], higher_is_better=True) == 4.0
    assert pt.best([3.0, 2.0, 4.0], higher_is_better=False) == 2.0


def test_render_has_one_line_per_row_and_the_figures():
    rows = [pt.row("crawl", "img2dataset 1.47.0", 140, 113, "img/s", True, "best of 2"),
            pt.row("ds", "crowd-kit 1.4.2", 4.29, 0.39, "CPU-s", False),
            pt.not_run("loader", "LitData", "no --json")]
    text = pt.render(rows).splitlines()
    assert len(text) == 2 + len(rows)
    assert text[0].startswith("| job") and set(text[1]) <= {"|", "-"}
    assert "140 img/s" in text[2] and "0.81x" in text[2] and "behind" in text[2]
    assert "4.29 CPU-s" in text[3] and "0.390 CPU-s" in text[3] and "11x" in text[3]
    assert "not run: no --json" in text[4] and "| -" in text[4]
    assert len({len(line) for line in text}) == 1  # aligned columns


def test_failed_rows_are_the_ones_without_figures():
    assert pt.failed(pt.not_run("x", "p", "peer could not be installed"))
    assert not pt.failed(pt.row("x", "p", 1, 2, "s", False))


def test_check_accepts_the_loader_format_and_rejects_missing_fields():
    good = {"job": "loader", "peer": "LitData 0.2.76", "peer_value": 1555, "synshard_value": 1041,
            "unit": "img/s", "higher_is_better": True, "note": ""}
    assert pt.check(good) == pt.row("loader", "LitData 0.2.76", 1555.0, 1041.0, "img/s", True)
    with pytest.raises(ValueError, match="lacks unit"):
        pt.check({k: v for k, v in good.items() if k != "unit"})


def test_write_json_is_valid_json_even_for_infinite_ratios(tmp_path):
    rows = [pt.row("a", "p", 3, 0, "pairs", False), pt.row("b", "p", 2, 4, "img/s", True)]
    pt.write_json(rows, tmp_path / "out" / "peers.json", runs=2)
    body = json.loads((tmp_path / "out" / "peers.json").read_text())
    assert body["rows"] == rows and body["advantage"] == ["inf", 2.0] and body["runs"] == 2


def test_fmt_value():
    assert pt.fmt_value(None, "s") == "-"
    assert pt.fmt_value(1555.2, "img/s") == "1,555 img/s"
    assert pt.fmt_value(0.93525, "accuracy") == "0.9353 accuracy"
    assert pt.fmt_value(0.0151, "s") == "0.015 s"
    assert pt.fmt_value(0, "pairs") == "0 pairs"


def test_runner_fails_and_names_the_reason_when_a_job_cannot_run(tmp_path, monkeypatch, capsys):
    import run

    def broken(args):
        raise run.JobError("peers: could not install crowdkit.txt")

    monkeypatch.setattr(run, "job_consensus", broken)
    monkeypatch.setattr(run, "CACHE", tmp_path / "cache")
    assert run.main(["--jobs", "consensus", "--json", str(tmp_path / "p.json")]) == 1
    err = capsys.readouterr().err
    assert "could not install crowdkit.txt" in err
    body = json.loads((tmp_path / "p.json").read_text())
    assert body["rows"][0]["note"].startswith("not run:")


def test_runner_refuses_unknown_jobs(tmp_path):
    import run

    with pytest.raises(SystemExit):
        run.main(["--jobs", "nope", "--json", str(tmp_path / "p.json")])
