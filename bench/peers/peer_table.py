"""The rows of `make bench-peers` and the one table they print (stdlib only: every venv imports it).

A row is a dict in the format bench/bench_loader.py writes with `--json`:
`{"job", "peer", "peer_value", "synshard_value", "unit", "higher_is_better", "note"}`.
A job that could not run is a row with both values None and the reason in `note`.

`advantage(row)` is how many times better synshard is than the peer (> 1: synshard is better,
< 1: synshard is behind), whichever way the unit points: synshard / peer when higher is better,
peer / synshard when lower is better.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

FIELDS = ("job", "peer", "peer_value", "synshard_value", "unit", "higher_is_better", "note")


def row(job: str, peer: str, peer_value, synshard_value, unit: str, higher_is_better: bool,
        note: str = "") -> dict:
    """One row, values as floats (or None when not measured)."""
    as_float = (lambda v: None if v is None else float(v))
    return {"job": job, "peer": peer, "peer_value": as_float(peer_value),
            "synshard_value": as_float(synshard_value), "unit": unit,
            "higher_is_better": bool(higher_is_better), "note": note}


def not_run(job: str, peer: str, reason: str) -> dict:
    return row(job, peer, None, None, "", True, f"not run: {reason}")


def failed(r: dict) -> bool:
    """A row whose figures are missing: the run must exit non-zero."""
    return r["peer_value"] is None or r["synshard_value"] is None


def check(r: dict) -> dict:
    """A row read from another program (the loader bench): all fields present, nothing else."""
    missing = [f for f in FIELDS if f not in r]
    if missing:
        raise ValueError(f"bench row {r!r} lacks {', '.join(missing)}")
    return row(*(r[f] for f in FIELDS))


def advantage(r: dict) -> float | None:
    """synshard's advantage over the peer (> 1: better); None when it cannot be computed."""
    ours, theirs = r["synshard_value"], r["peer_value"]
    if ours is None or theirs is None:
        return None
    num, den = (ours, theirs) if r["higher_is_better"] else (theirs, ours)
    if num == den:
        return 1.0
    if den == 0:
        return math.inf
    return num / den


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if v == 0 or abs(v) >= 100:
        text = f"{v:,.0f}"
    elif abs(v) >= 10:
        text = f"{v:.1f}"
    elif abs(v) >= 1:
        text = f"{v:.2f}"
    else:
        text = f"{v:.4f}" if unit in ("accuracy", "recall") else f"{v:.3f}"
    return f"{text} {unit}".strip()


def fmt_advantage(a: float | None) -> str:
    if a is None:
        return "-"
    if math.isinf(a):
        return "inf (peer 0)"
    return f"{a:.2f}x" if a < 10 else f"{a:.0f}x"


def verdict(a: float | None, tolerance: float = 0.02) -> str:
    """'ahead', 'behind' or 'even' (within `tolerance`), or 'not run'."""
    if a is None:
        return "not run"
    if a > 1 + tolerance:
        return "ahead"
    if a < 1 - tolerance:
        return "behind"
    return "even"


HEADER = ("job", "peer", "peer figure", "synshard figure", "synshard advantage", "", "note")


def render(rows: list[dict]) -> str:
    """A Markdown table (readable in a terminal and pasteable into the README)."""
    cells = [HEADER] + [
        (r["job"], r["peer"], fmt_value(r["peer_value"], r["unit"]),
         fmt_value(r["synshard_value"], r["unit"]), fmt_advantage(advantage(r)),
         verdict(advantage(r)), r["note"])
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    line = (lambda c: "| " + " | ".join(s.ljust(w) for s, w in zip(c, widths)) + " |")
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep] + [line(c) for c in cells[1:]])


def write_json(rows: list[dict], path: Path, **meta) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ratios = [advantage(r) for r in rows]
    ratios = [a if a is None or math.isfinite(a) else "inf" for a in ratios]
    body = {"rows": rows, "advantage": ratios, **meta}
    path.write_text(json.dumps(body, indent=1, default=str) + "\n")


def best(values: list[float], higher_is_better: bool) -> float:
    """The best of the alternating runs (the figure the table reports)."""
    return max(values) if higher_is_better else min(values)
