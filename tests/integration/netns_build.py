"""Run inside a network namespace with only loopback (`unshare -n`, see test_hostile_cli): serve
images and redirects to metadata/link-local addresses on 127.0.0.1, build a URL list of them
through the CLI with private networks opened, and print the outcome as one JSON line.

Even if the guard failed, no packet could leave: the namespace has no route but loopback.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from faultserver import FaultServer  # noqa: E402

PATHS = ["/img/1.jpg", "/img/2.jpg", "/to-metadata", "/to-mapped-metadata", "/to-link-local",
         "/to-private"]


def main(out: str) -> None:
    from synshard.cli.app import main as cli
    from synshard.shards.release import open_release

    server = FaultServer().start()
    try:
        urls = Path(out).parent / "urls.csv"
        urls.write_text("url,synset\n" + "".join(f"{server.base}{p},n01440764\n" for p in PATHS))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = cli(["build", str(urls), "--out", out, "--allow-private-network",
                      "--no-robots-txt", "--fetch-retries", "0", "--no-progress"])
        release = open_release(out)
        rejects = release.read_table("rejects").to_pylist()
        print(json.dumps({"rc": rc, "stderr": err.getvalue(),
                          "accounting": release.manifest.accounting,
                          "rejects": {r["source"].removeprefix(server.base): r["reason"]
                                      for r in rejects},
                          "hits": dict(server.hits)}))
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1])
