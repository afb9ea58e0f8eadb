"""The command line: a thin layer over synshard.api. Errors are one line and a non-zero exit."""
from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import threading
import traceback
from typing import Any, NoReturn, Sequence



class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one readable line, not usage + error
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_size(text: str) -> int:
    """`256MB`, `1.5GiB`, `65536` -> bytes."""
    units = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "KIB": 1024, "M": 1e6, "MB": 1e6,
             "MIB": 1024**2, "G": 1e9, "GB": 1e9, "GIB": 1024**3}
    t = text.strip().upper()
    num = t.rstrip("KMGIB")
    unit = t[len(num):]
    try:
        return int(float(num) * units[unit])
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 256MB)") from None


def _radius(text: str) -> int | str:
    if text.lower() in ("none", "off"):
        return "none"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad radius {text!r}: a number or none") from None


def _add_build_options(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    add("--config", help="build.toml with the same options (flags win)")
    add("--resize", help="shorter:N | longer:N | center-crop:N | none (default shorter:256)")
    add("--image-format", dest="format", choices=["jpeg", "webp", "png"],
        help="output image format (default jpeg)")
    add("--quality", type=int, help="JPEG/WebP quality (default 90)")
    add("--keep-original", choices=["never", "if-fits"],
        help="if-fits (default): keep the source bytes, metadata stripped, when nothing else "
        "would change (size, format, orientation, colour); never: always re-encode")
    add("--upscale", action="store_true", default=None, help="allow upscaling small images")
    add("--no-draft", dest="draft", action="store_false", default=None,
        help="decode JPEGs at full size (default: DCT-scaled decode when it saves work)")
    add("--min-size", type=int,
        help="reject images whose shorter side is below this many pixels (default 32)")
    add("--max-aspect", type=float,
        help="reject images whose longer side is more than this times the shorter (default 10)")
    add("--max-pixels", type=int,
        help="reject images whose header claims more pixels (default 89478485)")
    add("--format", dest="formats", help="shard formats: webdataset,parquet (default both)")
    add("--shard-size", dest="shard_bytes", type=parse_size, help="target shard size (256MB)")
    add("--val-fraction", type=float, help="share of images put in val, chosen from the key "
        "alone (default 0; a source's val/ and test/ folders set the split themselves)")
    add("--test-fraction", type=float, help="share of images put in test, likewise (default 0)")
    add("--max-per-synset", type=int,
        help="keep at most N images per synset and split (a sample chosen from the keys)")
    add("--limit", type=int, help="build from the first N inputs only")
    add("--labels", help="CSV file,synset for a flat folder or tar of images")
    add("--label-conflict", choices=["drop", "keep"],
        help="exact copies under different synsets: drop all (default) or keep one per synset")
    add("--near-radius", type=_radius,
        help="near-duplicate phash radius (default 6; 'none' turns near dedup off)")
    add("--near-conflicts", choices=["keep", "drop"],
        help="near pairs across synsets: keep both and list them (default) or drop")
    add("--classes", help="pin the class list: a file of wnids or a named list (ilsvrc2012)")
    add("--subset", help="keep only the synsets of a named list (ilsvrc2012)")
    add("--subtree", dest="subtrees", action="append", metavar="WNID",
        help="keep only synsets under WNID (repeatable)")
    add("--exclude-subtree", dest="exclude_subtrees", action="append", metavar="WNID",
        help="drop synsets under WNID (repeatable)")
    add("--votes", help="crowd votes (image, synset, worker, vote): Parquet or CSV")
    add("--vote-method", choices=["ds", "mv"], help="Dawid-Skene (default) or majority vote")
    add("--min-confidence", type=float, help="reject images whose label posterior is below")
    add("--boxes", help="PASCAL VOC XML boxes folder (<wnid>/<file stem>.xml)")
    add("--allow-private-network", dest="fetch_allow_private_network", action="store_true",
        default=None, help="let URL lists reach loopback/private addresses (internal mirrors); "
        "link-local and cloud metadata addresses stay refused")
    add("--allow-network", dest="fetch_allowed_networks", action="append", metavar="CIDR",
        help="let URL lists reach this network despite the guard (repeatable, e.g. "
        "10.20.0.0/16); link-local and metadata addresses only when listed in their own range "
        "(169.254.169.254/32)")
    add("--fetch-concurrency", type=int, help="requests in flight per fetching worker (64)")
    add("--fetch-per-host", type=int, help="requests in flight per host per worker (8)")
    add("--fetch-rps-per-host", type=float, help="requests/s per host per worker")
    add("--fetch-retries", type=int,
        help="extra attempts after a reset, timeout, 429 or 5xx (3)")
    add("--fetch-total-timeout", type=float, help="seconds for one attempt (60)")
    add("--fetch-max-bytes", type=parse_size, help="largest response accepted (32MiB)")
    add("--fetch-user-agent", help="the fetcher's User-Agent header")
    add("--no-robots-txt", dest="fetch_respect_robots_txt", action="store_false", default=None,
        help="do not obey robots.txt (URL lists)")
    add("--no-x-robots-tag", dest="fetch_respect_x_robots_tag", action="store_false",
        default=None, help="do not obey X-Robots-Tag: noai/noimageai (URL lists)")
    add("--base", help="an earlier release: build on it, reusing its unchanged shards")
    add("--remove", help="takedown list (keys, source paths/URLs or sha256s, one per line)")
    add("--remove-like", action="append", metavar="IMAGES",
        help="also remove near duplicates of these images (folder or tar; repeatable)")
    add("--dedup-against", action="append", metavar="URI",
        help="drop new images that near-duplicate this release or eval set (repeatable)")
    add("--name", help="release name (default: the output folder's name)")
    add("--overwrite", action="store_true", default=None,
        help="replace a committed release at --out (its files stay until `synshard gc`)")
    add("--ray-address", help="join a running Ray cluster (default: build on this machine)")
    add("--num-cpus", type=int, help="CPUs to build on, on this machine (default: all)")
    add("--embedded-ray", choices=("auto", "always"),
        help="auto (default): on Linux, build in worker processes forked from this one, "
        "without Ray (elsewhere, start an embedded Ray only for work that outlasts its "
        "start-up); always: start an embedded local Ray beside planning")
    add("--batch-size", type=int, help="images per transform batch (64)")
    add("--files-per-task", type=int, help="files of a folder source (or URLs of a list) per read task (256)")
    add("--no-progress", dest="progress", action="store_false", default=None,
        help="no progress bars")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="synshard", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of a failure (also: SYNSHARD_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("build", help="build a release from sources", epilog=BUILD_EXIT_STATUS)
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="an ImageNet-layout folder or tar, a URL list (.parquet, .csv, .jsonl), "
                   "local or any fsspec URI (s3://bucket/prefix)")
    p.add_argument("--out", help="release URI (path or s3://bucket/prefix)")
    _add_build_options(p)
    p.set_defaults(func=run_build)
    from synshard.cli import demo as cmd_demo

    cmd_demo.add_parsers(sub)
    p = sub.add_parser("info", help="summarise a committed release")
    p.add_argument("uri", help=RELEASE_URI)
    p.add_argument("--files", action="store_true", help="list the committed files only")
    p.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    p.set_defaults(func=run_info)
    p = sub.add_parser("verify", help="check a release's files against its manifest",
                       epilog=VERIFY_EXIT_STATUS)
    p.add_argument("uri", help=RELEASE_URI)
    p.add_argument("--quick", action="store_true", help="presence and sizes only")
    p.set_defaults(func=run_verify)
    p = sub.add_parser("gc", help="remove debris: unreferenced shards and indexes, old side "
                       "tables, abandoned staging, unfinished S3 uploads")
    p.add_argument("uri", help=RELEASE_URI + " holding a committed manifest.json")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed")
    p.set_defaults(func=run_gc)
    from synshard.cli import explore as cmd_explore
    from synshard.cli import leakage as cmd_leakage
    from synshard.cli import release as cmd_release
    from synshard.cli import synsets as cmd_synsets

    cmd_synsets.add_parsers(sub)
    cmd_release.add_parsers(sub)
    cmd_explore.add_parsers(sub)
    cmd_leakage.add_parsers(sub)
    return parser


def run_build(args: argparse.Namespace) -> int:
    from synshard import api
    from synshard.cli.summary import print_summary

    options = {k: v for k, v in vars(args).items()
               if k not in ("command", "func", "sources", "out", "config", "debug")}
    result = api.build(args.sources, args.out, config=args.config, **options)
    print_summary(result)
    if result.accounting.get("accepted", 0) == 0:
        print(nothing_accepted(result), file=sys.stderr)
        return EXIT_NOTHING_ACCEPTED
    return 0


DESCRIPTION = ("Build, verify and stream ImageNet-style image datasets keyed by WordNet synsets. "
               "A failure is one line on stderr and a non-zero exit status (--debug: the "
               "traceback).")
EPILOG = "Start with `synshard demo`; `synshard COMMAND --help` describes each command."
RELEASE_URI = "release URI (path or s3://bucket/prefix)"
VERIFY_EXIT_STATUS = ("exit status: 0 the release is intact (files of an earlier build beside it "
                      "are listed as debris, with the gc command that removes them); 1 a listed "
                      "file is missing, altered, or of the wrong size or sample count, or the "
                      "release cannot be read")
EXIT_USAGE = 2  # a bad flag or config value: nothing was done (README: exit status)
EXIT_NOTHING_ACCEPTED = 3  # the release was committed but holds no sample (README: exit status)
BUILD_EXIT_STATUS = (
    "exit status: 0 the release was committed (rejected inputs are listed in it); 1 an error "
    "(one line says what, where and what to do; nothing committed); 2 bad usage (a flag or "
    "config value refused, nothing done); "
    f"{EXIT_NOTHING_ACCEPTED} committed, but nothing was accepted (no inputs, or every input "
    "rejected or a duplicate: the release holds the reasons)")


def nothing_accepted(result: Any) -> str:
    """The loud line for a build that accepted nothing: what happened, where to read why."""
    acc = result.accounting
    if not acc.get("inputs"):
        return (f"synshard: error: no inputs found in the sources (empty, or folders only): the "
                f"release at {result.uri} is empty (exit {EXIT_NOTHING_ACCEPTED})")
    from collections import Counter

    from synshard.shards.release import open_release

    reasons = Counter(open_release(result.uri).read_table("rejects")["reason"].to_pylist())
    common = ", ".join(f"{reason} ({n})" for reason, n in reasons.most_common(3))
    return (f"synshard: error: NOTHING ACCEPTED: all {acc['inputs']} inputs were rejected "
            f"({acc.get('rejected', 0)}) or duplicates ({acc.get('duplicates', 0)})"
            f"{'; most often: ' + common if common else ''}; the release at {result.uri} holds "
            f"only their reasons (synshard report {result.uri}) (exit {EXIT_NOTHING_ACCEPTED})")


def run_info(args: argparse.Namespace) -> int:
    from synshard import api
    from synshard.cli.summary import print_info

    release = api.info(args.uri)
    if args.files:
        print("\n".join(release.files()))
    elif args.json:
        print(json.dumps(release.manifest.to_dict(), indent=1, sort_keys=True))
    else:
        print_info(release)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from synshard import api

    found = api.verify(args.uri, quick=args.quick)
    for p in found:
        print(f"{p.kind:8s} {p.path}: {p.detail}")
    # Files the manifest does not list are debris of an earlier or unfinished build (an
    # --overwrite keeps the replaced release's files for readers still on its manifest): the
    # release itself is intact, so they are a warning with the command that removes them.
    debris = sum(p.kind == "extra" for p in found)
    hint = (f"; {debris} file(s) not in the release (debris of an earlier build): "
            f"`synshard gc {args.uri}` removes them") if debris else ""
    what = "presence and sizes" if args.quick else "hashes and sample counts"
    if len(found) > debris:
        print(f"verify: {len(found) - debris} problem(s) in {args.uri}{hint}", file=sys.stderr)
        return 1
    print(f"verify: ok ({what}) {args.uri}{hint}")
    return 0


def run_gc(args: argparse.Namespace) -> int:
    from synshard.release.gc import collect_garbage

    report = collect_garbage(args.uri, dry_run=args.dry_run)
    if args.dry_run:
        print("\n".join(report.listing()) or "(nothing to remove)")
    print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a failure is one line on stderr and exit status 1, or 2 for a bad option
    value (flag or config file; argparse exits 2 too), 130 if interrupted.
    `--debug` or SYNSHARD_DEBUG=1 prints the traceback too (see synshard/cli/failures.py)."""
    from synshard.cli.failures import debug_wanted, failure_line

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # anywhere on the line: `synshard build ... --debug` too
    args = make_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("synshard: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `synshard ... | head`: the reader left, nothing more to say
        sys.stderr.close()
        return 0
    except Exception as exc:  # every failure: one line (what, where, what to do)
        if debug_wanted(args):
            traceback.print_exc()
        print(failure_line(exc, args), file=sys.stderr)
        from synshard.errors import UsageError

        if isinstance(exc, UsageError):
            return EXIT_USAGE  # a bad option value, as argparse's own refusals
    return 1


def exit_now(status: int) -> NoReturn:
    """End the process with `status` as the interpreter's own exit would, less its teardown.

    What a normal exit does that a finished command needs is done here, in its order: the
    threads that are not daemons are joined (`threading._shutdown`, which also wakes idle
    executor workers), the atexit handlers run (Ray's shutdown, multiprocessing's and logging's
    among them), stdout and stderr are flushed (a failed flush other than a reader gone, e.g. a
    full disk, is reported and the status becomes 120, as CPython's). Skipped is the teardown
    after them: every module's objects freed one by one and the native libraries' static
    destructors (Ray's core worker, Arrow's memory pools), 0.4 s after a 12,000-image build on
    Ray here (docs/scale.md, session 13) and 0.1 s after a command without Ray: memory the
    kernel takes back at once. Only for a process's own end (`synshard.cli.run`), never inside
    a caller's process."""
    join_threads = getattr(threading, "_shutdown", None)  # CPython's own; elsewhere a plain exit
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if join_threads is None or run_exit_handlers is None:
        sys.exit(status)
    join_threads()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with the descriptor closed (`>&-`)
            continue
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # its reader has gone (`| head`), or closed
            pass
        except OSError as exc:
            status = status or 120
            try:
                os.write(2, f"synshard: could not write the output: {exc}\n".encode())
            except OSError:
                pass
    os._exit(status)


if __name__ == "__main__":
    exit_now(main())
