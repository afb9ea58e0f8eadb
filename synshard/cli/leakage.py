"""CLI: `synshard leakage RELEASE EVALSET [--radius N] [--json]`.

Reports, without building anything, which images of an evaluation set (a folder, flat or in
ImageNet layout, a tar, or a committed release; any fsspec URI) have near copies (perceptual hash
within the radius) in a release: a table and a summary line, or JSON. Exit status 0 whatever is
found: leakage is a finding, not an error. `add_parsers(subparsers)` registers the subcommand;
the work is `synshard.release.external.find_leakage`.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from synshard.cli.argtypes import int_range

if TYPE_CHECKING:  # the work needs the build extra (decoders): imported when it runs
    from synshard.release.external import Leakage

COLUMNS = ("distance", "eval_source", "release_key", "release_split", "release_source")


def add_parsers(subparsers: Any) -> None:
    """Register `leakage` on `subparsers` (from add_subparsers())."""
    p = subparsers.add_parser(
        "leakage", help="which images of an evaluation set have near copies in a release")
    p.add_argument("release", help="the committed release (any fsspec URI)")
    p.add_argument("evalset", help="evaluation images: a folder, a tar or a release")
    p.add_argument("--radius", type=int_range(0, 32, "radius"), default=None,
                   help="phash Hamming radius (default: the release's near_radius, else 6)")
    p.add_argument("--json", action="store_true", help="print the pairs and counts as JSON")
    p.set_defaults(func=run_leakage)


def run_leakage(args: argparse.Namespace) -> int:
    from synshard.release.external import find_leakage

    def progress(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr)

    found = find_leakage(args.release, args.evalset, args.radius, log=progress)
    if args.json:
        print(json.dumps(leakage_dict(found, args.release, args.evalset), indent=1,
                         sort_keys=True))
    else:
        print(render_leakage(found))
    for note in found.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def summary_line(found: Leakage) -> str:
    """`N of M eval images have copies in the release (radius r)`, and what could not be read."""
    text = (f"{found.leaked} of {found.evaluated} eval images have copies in the release "
            f"(radius {found.radius}, {found.pairs.num_rows} pairs, "
            f"{found.release_images} release images)")
    if found.unhashed.num_rows:
        text += f"; {found.unhashed.num_rows} eval inputs could not be hashed"
    return text


def render_leakage(found: Leakage) -> str:
    """A plain-text table of the pairs (closest first per eval image), then the summary line."""
    rows = [[str(r[c]) for c in COLUMNS] for r in found.pairs.select(list(COLUMNS)).to_pylist()]
    lines = []
    if rows:
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip())
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    for r in found.unhashed.select(["source", "reason"]).to_pylist():
        lines.append(f"not hashed: {r['source']}: {r['reason']}")
    lines.append(summary_line(found))
    return "\n".join(lines)


def leakage_dict(found: Leakage, release: str, evalset: str) -> dict[str, Any]:
    """Everything `render_leakage` shows, as plain JSON types."""
    return {
        "release": release,
        "evalset": evalset,
        "radius": found.radius,
        "evaluated": found.evaluated,
        "leaked": found.leaked,
        "release_images": found.release_images,
        "pairs": found.pairs.to_pylist(),
        "unhashed": found.unhashed.select(["source", "reason"]).to_pylist(),
        "notes": list(found.notes),
    }
