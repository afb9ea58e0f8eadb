"""Text summaries for the terminal: a finished build and a committed release."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synshard.shards.release import Release



def _accounting_line(acc: dict[str, int]) -> str:
    return (f"inputs {acc['inputs']} = accepted {acc['accepted']} + rejected {acc['rejected']}"
            f" + duplicates {acc['duplicates']}")


def print_summary(result: Any, detail: bool = False) -> None:
    state = "unchanged (identical build already committed)" if result.noop else "committed"
    print(f"release {result.uri}: {state}")
    print("  " + _accounting_line(result.accounting))
    counts = result.counts
    splits = ", ".join(f"{s} {n}" for s, n in sorted(counts.get("by_split", {}).items()))
    print(f"  samples {counts.get('total', 0)} ({splits or 'none'}) in "
          f"{len(counts.get('by_synset', {}))} synsets")
    rate = result.stats.get("images_per_s")
    if rate:
        print(f"  throughput {rate:.0f} images/s (read+transform+stage)")
    votes = result.stats.get("votes") or {}
    if votes.get("votes_not_in_build"):
        print(f"  {votes['votes_not_in_build']} votes for images not in this build "
              f"({votes['images_not_in_build']} images; matched by key or source path)")
    if detail:
        from synshard.shards.release import open_release

        _print_tables(open_release(result.uri))


def _print_tables(release: Release) -> None:
    for name, column in (("rejects", "reason"), ("duplicates", "kind")):
        table = release.read_table(name)
        print(f"  {name}: {table.num_rows}")
        for row in table.to_pylist():
            what = row[column] if name == "rejects" else f"{row['kind']} of {row['kept_source']}"
            print(f"    {row['source']}: {what}")


def print_info(release: Release) -> None:
    m = release.manifest
    print(f"release {m.name} (created {m.created}, synshard {m.tool_version})")
    print("  " + _accounting_line(m.accounting))
    print(f"  samples {m.counts['total']}: " +
          ", ".join(f"{s} {n}" for s, n in sorted(m.counts["by_split"].items())))
    print(f"  classes {len(m.classes)}; shards {len(m.shards)} "
          f"({', '.join(f'{f} {n}' for f, n in sorted(Counter(e.format for e in m.shards).items()))})")
    lemmas = {c["synset"]: (c["lemmas"][:1] or [""])[0] for c in m.classes}
    print("  per synset:")
    for wnid, per in sorted(m.counts["by_synset"].items()):
        parts = ", ".join(f"{s} {n}" for s, n in sorted(per.items()))
        print(f"    {wnid} {lemmas.get(wnid, ''):24s} {parts}")
