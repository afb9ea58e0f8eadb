"""GET requests in one loader epoch from an S3-protocol server (moto on 127.0.0.1 only).

Uploads a release (default: bench_loader's, build it first with bench/bench_loader.py) to a moto
server on loopback, reads the train split for one epoch with `threads` reader threads, and
counts s3fs's `get_object` calls (the manifest, the indexes and the shard spans).

    .venv/bin/python bench/loader_s3_gets.py [--release .cache/bench-loader/3000/release] [--threads 8]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", default=str(ROOT / ".cache/bench-loader/3000/release"))
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    if not (Path(args.release) / "manifest.json").exists():
        raise SystemExit(f"loader_s3_gets: no release at {args.release} (run bench/bench_loader.py first)")
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    import s3fs
    from moto.server import ThreadedMotoServer

    from synshard.shards import ShardDataset

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        opts = {"client_kwargs": {"endpoint_url": f"http://{host}:{port}"}, "skip_instance_cache": True}
        fs = s3fs.S3FileSystem(**opts)
        fs.mkdir("loader-bench")
        fs.put(args.release.rstrip("/") + "/", "loader-bench/r/", recursive=True)
        gets = []

        class Count(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.args and record.args[0] == "get_object":
                    gets.append(1)

        logger = logging.getLogger("s3fs")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(Count())
        logger.propagate = False
        start = time.perf_counter()
        ds = ShardDataset("s3://loader-bench/r", "train", transform="eval", image_size=64,
                          storage_options=opts, threads=args.threads)  # fmt: skip
        n = sum(1 for _ in ds)
        seconds = time.perf_counter() - start
        mib = sum(e.bytes for e in ds.shards) / 2**20
        print(f"{n} samples, {len(ds.shards)} shards, {mib:.1f} MiB of shards, {args.threads} threads: "
              f"{len(gets)} GETs in the epoch, {seconds:.1f} s")  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
