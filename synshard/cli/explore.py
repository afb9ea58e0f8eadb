"""`synshard get URI KEY` and `synshard serve URI`: random access by key and the web explorer.

Registered by cli.py through `add_parsers(subparsers)`.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from synshard.cli.argtypes import port


def add_parsers(sub: Any) -> None:
    """Add `get` and `serve` to the CLI's subparsers."""
    p = sub.add_parser("get", help="fetch images (or records) by key with ranged reads")
    p.add_argument("uri", help="release URI (path or s3://bucket/prefix)")
    p.add_argument("keys", nargs="+", metavar="KEY", help="<wnid>_<sha16>")
    p.add_argument("-o", "--output", help="file for one key's image, or a folder (<key>.<ext> "
                   "files, ext from the stored format; needed for several keys): a path or any "
                   "fsspec URI (s3://bucket/prefix/); missing folders are created (default: "
                   "stdout for one key)")
    p.add_argument("--meta", action="store_true", help="print the records as JSON lines instead")
    p.set_defaults(func=run_get)
    p = sub.add_parser("serve", help="browse a release in a web browser (read-only)")
    p.add_argument("uri", help="release URI (path or s3://bucket/prefix)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other lets whoever reaches it read "
                   "the release)")
    p.add_argument("--port", type=port, default=8000, help="TCP port (default 8000; 0: any free one)")
    p.set_defaults(func=run_serve)


def run_get(args: argparse.Namespace) -> int:
    from synshard.shards.access import KeyReader
    from synshard.shards.release import open_release

    reader = KeyReader(open_release(args.uri))
    if args.meta:
        for key, meta in reader.records(args.keys).items():
            print(json.dumps(meta, sort_keys=True, ensure_ascii=False))
        return 0
    if args.output is None:
        images = reader.images(args.keys)
        if len(images) != 1:
            print("synshard: error: several keys need -o FOLDER", file=sys.stderr)
            return 2
        sys.stdout.buffer.write(next(iter(images.values())))
        return 0
    _write_images(reader.image_files(args.keys), args.output)
    return 0


def _write_images(files: dict[str, tuple[str, bytes]], output: str) -> None:
    """`files`: key -> (`<key>.<ext>`, bytes). One key: `output` is the file (or a folder for
    `<key>.<ext>`: an existing one, or a path ending in `/`); several: `output` is a folder of
    `<key>.<ext>` files. A local path or any fsspec URI (s3://bucket/prefix/); missing local
    folders are created, as `synshard report -o` does."""
    from synshard.cli.outputs import join_output, output_file, output_folder, write_outputs

    if len(files) == 1:
        ((name, data),) = files.values()
        write_outputs({output_file(output, name): data})
        return
    folder = output_folder(output)
    write_outputs({join_output(folder, name): data for name, data in files.values()})


def run_serve(args: argparse.Namespace) -> int:
    from synshard.explore.server import serve

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"synshard: serving on {args.host}: anyone who can reach it can read the release",
              file=sys.stderr)
    serve(args.uri, host=args.host, port=args.port,
          on_ready=lambda url: print(f"synshard explorer: {url}  (Ctrl-C stops it)", flush=True))
    return 0
