"""CLI: `synshard diff OLD NEW [--json]` and `synshard report URI [-o report.html]`.

`add_parsers(subparsers)` registers both on the app's argparse subparsers; each sets `func` to a
handler `run_x(args) -> int`. The Python API is `diff_releases(old_uri, new_uri)` and
`synshard.release.report.write_report(uri, out)`. Shard reading (keys) lives here, in the app, so that
`synshard.release.diff` stays pure.
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Iterable


from synshard.release.diff import Diff, diff_manifests, render_diff, shards_to_read
from synshard.shards.layout import ShardEntry, ShardError
from synshard.shards.reader import shard_keys
from synshard.shards.release import Release, open_release
from synshard.errors import SynshardError
from synshard.cli.argtypes import int_at_least


def add_parsers(subparsers: Any) -> None:
    """Register `diff` and `report` on `subparsers` (from add_subparsers())."""
    p = subparsers.add_parser("diff", help="what changed between two releases: samples, "
                              "labels, shards and build options")
    p.add_argument("old", help="the earlier release (any fsspec URI)")
    p.add_argument("new", help="the later release")
    p.add_argument("--json", action="store_true", help="print the full diff as JSON")
    p.add_argument("--no-keys", dest="keys", action="store_false",
                   help="compare manifests only (no image keys; reads no shards)")
    p.set_defaults(func=run_diff)
    p = subparsers.add_parser("report", help="write a release's self-contained HTML report")
    p.add_argument("uri", help="release URI")
    p.add_argument("-o", "--out", default="report.html", help="output file, or a folder for report.html: a path or any fsspec URI "
                   "(s3://bucket/prefix/); missing folders are created (default report.html)")
    p.add_argument("--thumbnails", type=int_at_least(0), default=6, help="sample thumbnails per synset (default 6; 0: none)")
    p.set_defaults(func=run_report)


def read_keys(release: Release, entries: Iterable[ShardEntry]) -> list[str]:
    """The sample keys of the given shards of `release` (Parquet: the key column only;
    WebDataset: the tar member names, no image bytes decoded)."""
    keys: list[str] = []
    for entry in entries:
        try:
            keys += shard_keys(release, entry)
        except ShardError as exc:
            raise SynshardError(str(exc)) from None
    return keys


def diff_releases(old_uri: str, new_uri: str, keys: bool = True,
                  storage_options: dict[str, Any] | None = None) -> Diff:
    """Diff two committed releases (build options included, run options from build.json when
    both have one); with `keys`, read the keys of the shards that differ."""
    old, new = open_release(old_uri, storage_options), open_release(new_uri, storage_options)
    old_run, new_run = _run_options(old), _run_options(new)
    if not keys:
        return diff_manifests(old.manifest, new.manifest, old_run=old_run, new_run=new_run)
    old_read, new_read = shards_to_read(old.manifest, new.manifest)
    return diff_manifests(old.manifest, new.manifest, read_keys(old, old_read),
                          read_keys(new, new_read), old_run=old_run, new_run=new_run)


def _run_options(release: Release) -> dict[str, Any] | None:
    """build.json's `run_options`; None when the release has no readable build.json."""
    from synshard.release.datasheet import read_build

    run = read_build(release).get("run_options")
    return run if isinstance(run, dict) else None


def run_diff(args: argparse.Namespace) -> int:
    diff = diff_releases(args.old, args.new, keys=args.keys)
    print(json.dumps(diff.to_dict(), indent=1, sort_keys=True) if args.json else render_diff(diff))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from synshard.release.report import write_report

    from synshard.cli.outputs import output_file

    out = output_file(args.out, "report.html")
    path = write_report(args.uri, out, thumbnails_per_synset=args.thumbnails)
    print(f"report: {path}")
    return 0
