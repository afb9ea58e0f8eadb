"""`synshard demo [--out demo-release] [--overwrite]`: build the bundled sample, with a report.

The demo replaces only what it made itself: a previous demo release at `--out` (built from the
bundled sample, `data/sample`, with the demo's options), or an unfinished build's files. Anything
else there (another release, a folder of the user's files) is refused with exit status 2 unless
`--overwrite`, as `synshard build` refuses to replace a different committed release. A replaced
demo's files are removed (gc); with `--overwrite`, a replaced release's files stay until
`synshard gc`, as after `synshard build --overwrite`.

Registered by app.py through `add_parsers(subparsers)`.
"""
from __future__ import annotations

import argparse
from typing import Any

from synshard.errors import SynshardError, UsageError

# What the demo passes to the build (test_sample_bytes.py pins the release these give).
DEMO_OPTIONS: dict[str, Any] = {"resize": "shorter:256", "val_fraction": 0.2,
                                "shard_bytes": 4 << 20}
# Top-level names an unfinished build leaves before its manifest commits (staging, shards).
_BUILD_DEBRIS = ("_staging", "webdataset", "parquet", "index")


def add_parsers(sub: Any) -> None:
    """Add `demo` to the CLI's subparsers."""
    p = sub.add_parser("demo", help="build the bundled sample into ./demo-release, with a report")
    p.add_argument("--out", default="demo-release",
                   help="folder to build into (default demo-release); an earlier demo there is "
                   "replaced, anything else is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="build into --out whatever it holds (a replaced release's files stay "
                   "until `synshard gc`)")
    p.set_defaults(func=run_demo)


def is_demo_config(config: dict[str, Any]) -> bool:
    """Whether a manifest's `config` is a demo's: one source, the bundled sample (`.../data/sample`,
    wherever the checkout was), and the demo's resize, val fraction and shard size."""
    sources = config.get("sources") or []
    return (len(sources) == 1 and str(sources[0]).rstrip("/").endswith("/data/sample")
            and config.get("transform", {}).get("resize") == DEMO_OPTIONS["resize"]
            and config.get("splits", {}).get("val_fraction") == DEMO_OPTIONS["val_fraction"]
            and config.get("shard_bytes") == DEMO_OPTIONS["shard_bytes"])


def foreign_contents(out: str) -> str | None:
    """What at `out` is not the demo's to replace ("another release ('x', built from ...)"); None
    when the demo may build there: nothing, an empty folder, a previous demo release, or an
    unfinished build's files (a file is left to the build, which refuses it)."""
    from synshard.shards.layout import MANIFEST_NAME
    from synshard.shards.release import open_release, release_fs

    fs, root = release_fs(out)
    if not fs.isdir(root):
        return None
    names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    if MANIFEST_NAME in names:
        try:
            manifest = open_release(out).manifest
        except SynshardError:
            return f"a {MANIFEST_NAME} that cannot be read"
        if is_demo_config(manifest.config):
            return None
        sources = ", ".join(map(str, manifest.config.get("sources") or [])) or "no source"
        return f"another release ({manifest.name!r}, built from {sources})"
    other = [n for n in names if n not in _BUILD_DEBRIS and not n.startswith(".manifest-")]
    if not other:
        return None
    shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
    return f"other files ({shown})"


def run_demo(args: argparse.Namespace) -> int:
    from synshard import api
    from synshard.cli.summary import print_summary
    from synshard.release.gc import collect_garbage
    from synshard.release.report import write_report
    from synshard.sample import sample_path

    source = sample_path()
    foreign = foreign_contents(args.out)
    if foreign and not args.overwrite:
        raise UsageError(f"--out {args.out} holds {foreign}, not a demo release: pass "
                         "--overwrite to build over it, or choose another --out (nothing changed)")
    print(f"building the bundled sample {source} into {args.out}")
    result = api.build([str(source)], args.out, overwrite=True, **DEMO_OPTIONS)
    if foreign is None:  # only the demo's own debris is removed: an earlier demo's, a killed one's
        collected = collect_garbage(args.out)
        if collected.shards or collected.staging:
            print(collected.summary())
    else:
        print(f"--overwrite: built over {foreign}; its files stay (`synshard gc {args.out}` "
              "removes a replaced release's shards and tables)")
    print_summary(result, detail=True)
    report = write_report(args.out, f"{args.out.rstrip('/')}/report.html")
    print(f"\nreport: {report}")
    print(f"next: synshard info {args.out}   synshard verify {args.out}")
    print(f"browse it: synshard serve {args.out}   (then open http://127.0.0.1:8000/)")
    return 0
