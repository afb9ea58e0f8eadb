#!/usr/bin/env python3
"""Derive synsets/data/wordnet30-nouns.tsv.gz from WordNet 3.0's `data.noun` and `index.noun`.

Why a derived file: the build and the CLI need the noun hierarchy on every machine (cluster nodes,
training boxes) where Debian's `wordnet-base` is not installed, and parsing the 15 MB `data.noun`
with its pointer lists takes seconds. The derived file keeps only what synshard uses (wnid, lemmas
with their sense numbers, hypernyms `@` and instance hypernyms `@i`, gloss), gzip-compressed, and
loads in a fraction of a second.

Format (UTF-8, gzip): lines starting with `#` are the header (WordNet's licence notice, which its
licence requires on all copies). Every other line is one noun synset, tab separated:

    wnid <TAB> lemma:sense lemma:sense ... <TAB> parent-wnid parent-wnid ... <TAB> gloss

`sense` is the lemma's sense number in `index.noun` (1 = most frequent meaning), used to order the
results of `Hierarchy.find`. Rows are sorted by wnid.

Usage: python scripts/derive_wordnet.py [--wordnet /usr/share/wordnet] [--out synsets/data/...]
Stdlib only, so it runs without the project's venv.
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

LICENSE = """\
WordNet 3.0 noun hierarchy, derived from Princeton WordNet 3.0 (data.noun, index.noun) by
scripts/derive_wordnet.py of synshard. Fields: wnid, lemma:sense..., parent wnids, gloss.

WordNet Release 3.0 This software and database is being provided to you, the LICENSEE, by
Princeton University under the following license. By obtaining, using and/or copying this
software and database, you agree that you have read, understood, and will comply with these
terms and conditions.: Permission to use, copy, modify and distribute this software and
database and its documentation for any purpose and without fee or royalty is hereby granted,
provided that you agree to comply with the following copyright notice and statements,
including the disclaimer, and that the same appear on ALL copies of the software, database and
documentation, including modifications that you make for internal use or for distribution.
WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. THIS SOFTWARE AND
DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES,
EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON UNIVERSITY MAKES NO
REPRESENTATIONS OR WARRANTIES OF MERCHANT- ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR
THAT THE USE OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD
PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS. The name of Princeton University or
Princeton may not be used in advertising or publicity pertaining to distribution of the
software and/or database. Title to copyright in this software, database and any associated
documentation shall at all times remain with Princeton University and LICENSEE agrees to
preserve same."""

PARENT_POINTERS = {"@", "@i"}  # hypernym, instance hypernym


def read_senses(index_noun: Path) -> dict[tuple[str, str], int]:
    """(lowercase lemma, offset) -> sense number, from index.noun (synsets listed by frequency)."""
    senses: dict[tuple[str, str], int] = {}
    for line in index_noun.read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue
        f = line.split()
        n_ptr = int(f[3])
        offsets = f[6 + n_ptr :]
        for rank, offset in enumerate(offsets, start=1):
            senses[(f[0].lower(), offset)] = rank
    return senses


def parse_synset(line: str, senses: dict[tuple[str, str], int]) -> str:
    """One data.noun line -> one derived row."""
    body, _, gloss = line.partition(" | ")
    f = body.split()
    offset, n_words = f[0], int(f[3], 16)
    words = f[4 : 4 + 2 * n_words : 2]
    lemmas = " ".join(f"{w}:{senses.get((w.lower(), offset), 0)}" for w in words)
    i = 4 + 2 * n_words
    n_ptr = int(f[i])
    ptrs = [f[i + 1 + 4 * k : i + 5 + 4 * k] for k in range(n_ptr)]
    parents = " ".join(f"n{p[1]}" for p in ptrs if p[0] in PARENT_POINTERS and p[2] == "n")
    gloss = " ".join(gloss.split())  # no tabs, no trailing blanks
    return f"n{offset}\t{lemmas}\t{parents}\t{gloss}"


def derive(wordnet: Path, out: Path) -> int:
    senses = read_senses(wordnet / "index.noun")
    rows = [
        parse_synset(line, senses)
        for line in (wordnet / "data.noun").read_text(encoding="utf-8").splitlines()
        if not line.startswith(" ")
    ]
    rows.sort()
    header = "".join(f"# {line}\n" for line in LICENSE.splitlines())
    out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same input gives a byte-identical file.
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write((header + "\n".join(rows) + "\n").encode("utf-8"))
    return len(rows)


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    ap.add_argument("--out", type=Path, default=here / "synsets/data/wordnet30-nouns.tsv.gz")
    args = ap.parse_args()
    n = derive(args.wordnet, args.out)
    print(f"{n} noun synsets -> {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
