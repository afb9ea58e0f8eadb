"""Where the fetcher's client CPU goes: cProfile (thread CPU clock) of the event-loop thread and of
the consuming thread over N photos streamed from tests/integration/faultserver.py, then the same
for bare aiohttp at the same concurrency (the peer of bench/bench_fetch.py).

    .venv/bin/python bench/profile_fetch.py [--n 2000] [--top 25]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import io
import pstats
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pyarrow as pa

from synshard.ingest.fetch_options import FetchOptions
from synshard.ingest.http import Fetcher

SERVER = Path(__file__).resolve().parent.parent / "tests" / "integration" / "faultserver.py"


def show(name: str, prof: cProfile.Profile, top: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    print(f"===== {name}: {stats.total_tt:.2f} s of thread CPU")  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue().split("\n", 4)[-1])


def fetcher(base: str, n: int, top: int) -> None:
    default = FetchOptions(allowed_networks=("127.0.0.1/32",))
    f = Fetcher(dataclasses.replace(default, per_host=default.concurrency))
    f(pa.table({"url": [f"{base}/photo/{i}.jpg" for i in range(n, n + 64)]}))  # warm
    loop, _ = f._running()
    on_loop, here = cProfile.Profile(time.thread_time), cProfile.Profile(time.thread_time)
    loop.loop.call_soon_threadsafe(on_loop.enable)
    here.enable()
    for _ in f.stream(pa.table({"url": [f"{base}/photo/{i}.jpg" for i in range(n)]}), 256):
        pass
    here.disable()
    stopped = threading.Event()
    loop.loop.call_soon_threadsafe(lambda: (on_loop.disable(), stopped.set()))
    stopped.wait()
    f.close()
    show("fetcher, event-loop thread", on_loop, top)
    show("fetcher, consuming thread (the read task's)", here, top)


def bare(base: str, n: int, top: int) -> None:
    async def main() -> None:
        slots = asyncio.Semaphore(64)
        async with aiohttp.ClientSession() as session:
            async def one(i: int) -> int:
                async with slots, session.get(f"{base}/photo/{i}.jpg") as resp:
                    return len(await resp.read())

            await asyncio.gather(*(one(i) for i in range(n, n + 64)))  # warm
            prof = cProfile.Profile(time.thread_time)
            prof.enable()
            await asyncio.gather(*(one(i) for i in range(n)))
            prof.disable()
            show("bare aiohttp", prof, top)

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE, text=True)
    try:
        base = server.stdout.readline().strip()  # type: ignore[union-attr]
        fetcher(base, args.n, args.top)
        bare(base, args.n, args.top)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
