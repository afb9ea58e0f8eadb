"""CLI: `synshard synsets show|find|subset`, `synshard tree`, `synshard votes`.

`add_parsers(subparsers)` registers the subcommands on the app's argparse subparsers; each sets
`func` to its handler `run_x(args) -> int` (0 on success). Output goes to stdout; problems the
user can fix raise SynshardError, which the app prints as one line.

File access (fsspec, pyarrow readers) lives here, in the app; synshard.synsets stays pure.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from synshard.synsets.consensus import METHODS, consensus
from synshard.synsets.hierarchy import Hierarchy, Synset, load_hierarchy
from synshard.synsets.subsets import SUBSETS, load_subset
from synshard.synsets.tree import counts_from_manifest, release_tree, render_tree
from synshard.builder.decide.votes import read_votes
from synshard.errors import SynshardError
from synshard.cli.argtypes import int_at_least


def add_parsers(subparsers: Any) -> None:
    """Register `synsets`, `tree` and `votes` on `subparsers` (from add_subparsers())."""
    syn = subparsers.add_parser("synsets", help="look up WordNet noun synsets and class lists")
    sub = syn.add_subparsers(dest="synsets_command", required=True)
    show = sub.add_parser("show", help="a synset: lemmas, gloss, parents, path to the root")
    show.add_argument("wnid", help="a WordNet 3.0 noun synset id (n02084071)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_synsets_show)
    find = sub.add_parser("find", help="synsets whose lemma is WORD")
    find.add_argument("word", nargs="+", help="a lemma; several words are one lemma "
                      "(golden retriever)")
    find.set_defaults(func=run_synsets_find)
    subset = sub.add_parser("subset", help="the wnids of a named class list, one per line")
    subset.add_argument("name", choices=SUBSETS, help="the class list")
    subset.set_defaults(func=run_synsets_subset)

    tree = subparsers.add_parser("tree", help="a release's classes in the WordNet hierarchy")
    tree.add_argument("uri", help="release URI (any fsspec URI)")
    tree.add_argument("wnid", nargs="?", default=None, help="root of the view (default: entity)")
    tree.add_argument("--depth", type=int_at_least(0), default=None, help="levels below the root to show")
    tree.add_argument("--json", action="store_true", help="print the tree as JSON")
    tree.set_defaults(func=run_tree)

    votes = subparsers.add_parser("votes", help="crowd-vote consensus: posteriors per image")
    votes.add_argument("votes", help="votes table (.parquet or .csv; any fsspec URI)")
    votes.add_argument("--out", required=True, help="posteriors table (.parquet or .csv)")
    votes.add_argument("--method", choices=METHODS, default="ds",
                       help="ds: Dawid-Skene (default); mv: majority vote")
    votes.set_defaults(func=run_votes)


def _synset(wnid: str) -> tuple[Hierarchy, Synset]:
    h = load_hierarchy()
    if wnid not in h:
        raise SynshardError(f"unknown synset {wnid!r}: not a WordNet 3.0 noun")
    return h, h.get(wnid)


def run_synsets_show(args: argparse.Namespace) -> int:
    h, s = _synset(args.wnid)
    if args.json:
        doc = {"wnid": s.wnid, "lemmas": list(s.lemmas), "gloss": s.gloss,
               "parents": list(s.parents), "ancestors": list(h.ancestors(s.wnid))}
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{s.wnid}  {', '.join(lemma.replace('_', ' ') for lemma in s.lemmas)}")
    print(f"  gloss:   {s.gloss}")
    for p in s.parents:
        print(f"  parent:  {p} {h.get(p).name}")
    print("  path:    " + " < ".join(f"{h.get(w).name} ({w})" for w in h.path_to_root(s.wnid)))
    return 0


def run_synsets_find(args: argparse.Namespace) -> int:
    word = " ".join(args.word)
    hits = load_hierarchy().find(word)
    for s in hits:
        print(f"{s.wnid}  {', '.join(lemma.replace('_', ' ') for lemma in s.lemmas)}: {s.gloss}")
    if not hits:
        print(f"no noun synset has the lemma {word!r}", file=sys.stderr)
    return 0 if hits else 1


def run_synsets_subset(args: argparse.Namespace) -> int:
    sys.stdout.write("".join(f"{wnid}\n" for wnid in load_subset(args.name)))
    return 0


def _read_manifest(uri: str) -> dict[str, Any]:
    import fsspec

    path = uri.rstrip("/") + "/manifest.json"
    try:
        with fsspec.open(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise SynshardError(f"no committed release at {uri} (no manifest.json)") from exc
    except json.JSONDecodeError as exc:
        raise SynshardError(f"unreadable manifest {path}: {exc}") from exc


def run_tree(args: argparse.Namespace) -> int:
    counts = counts_from_manifest(_read_manifest(args.uri))
    h = load_hierarchy()
    if args.wnid is not None and args.wnid not in h:
        raise SynshardError(f"unknown synset {args.wnid!r}: not a WordNet 3.0 noun")
    tree = release_tree(h, counts, root=args.wnid, depth=args.depth)
    print(json.dumps(tree, indent=1) if args.json else render_tree(tree))
    return 0


def write_table(table: pa.Table, uri: str) -> None:
    import fsspec

    with fsspec.open(uri, "wb") as f:
        if uri.endswith(".csv"):
            pacsv.write_csv(table, f)
        else:
            pq.write_table(table, f)


def run_votes(args: argparse.Namespace) -> int:
    result = consensus(read_votes(args.votes), method=args.method)
    write_table(result.posteriors, args.out)
    spammers = sum(result.workers["spammer"].to_pylist())
    print(
        f"{result.posteriors.num_rows:,} (image, synset) posteriors -> {args.out} "
        f"({args.method}, {result.iterations} iterations); {result.workers.num_rows:,} workers, "
        f"{spammers:,} flagged as spammers; {result.rejected.num_rows:,} vote rows rejected"
    )
    return 0
