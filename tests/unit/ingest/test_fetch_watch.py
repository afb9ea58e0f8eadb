"""The fetcher's `Watch` (the requests' time limits, one sweep per loop instead of aiohttp's
timers): a request past its total or silent too long ends in asyncio.TimeoutError and leaves
its task as it was; progress ends a silence; a cancel from elsewhere stays a cancel."""
from __future__ import annotations

import asyncio

import pytest

from synshard.ingest.attempt import Watch, watch_tick
from synshard.ingest.fetch_options import FetchOptions


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.new_event_loop().run_until_complete(coro)


def test_a_request_past_its_total_times_out_and_its_task_carries_on() -> None:
    async def main() -> tuple[bool, int, str]:
        watch = Watch(asyncio.get_running_loop(), tick=0.01)
        timed_out = False
        try:
            with watch.start(0.05, None):
                await asyncio.sleep(30)
        except asyncio.TimeoutError:
            timed_out = True
        await asyncio.sleep(0.05)  # the task is not cancelled any more
        task = asyncio.current_task()
        assert task is not None
        return timed_out, task.cancelling(), "done"

    assert run(main()) == (True, 0, "done")


def test_progress_ends_a_silence_and_a_long_silence_times_out() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        watch = Watch(loop, tick=0.01)
        seen = []
        with watch.start(60.0, 1.0) as timing:  # chunks every 20 ms: never silent for 1 s
            for _ in range(10):
                await asyncio.sleep(0.02)
                timing.last = loop.time()
        seen.append("kept")
        with pytest.raises(asyncio.TimeoutError):
            with watch.start(60.0, 0.05):
                await asyncio.sleep(30)
        seen.append("silent")
        await asyncio.sleep(0.05)
        assert not watch.live and watch._sweeping is None  # nothing watched: no sweep either
        return seen

    assert run(main()) == ["kept", "silent"]


def test_a_cancel_from_elsewhere_stays_a_cancel_even_when_the_limit_falls_too() -> None:
    async def watched(watch: Watch) -> None:
        with watch.start(60.0, None):
            await asyncio.sleep(30)

    async def outcome(task: asyncio.Task) -> str:
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        except asyncio.TimeoutError:
            return "timeout"
        return "returned"

    async def main() -> list[str]:
        watch = Watch(asyncio.get_running_loop(), tick=60.0)  # swept by hand below
        outcomes = []
        for expire in (False, True):
            task = asyncio.ensure_future(watched(watch))
            while not watch.live:
                await asyncio.sleep(0)
            if expire:  # its limit falls (the sweep cancels it), then a cut cancels it too
                next(iter(watch.live)).ends = 0.0
                watch._sweep()
            task.cancel()
            outcomes.append(await outcome(task))
        task = asyncio.ensure_future(watched(watch))  # the limit alone: a timeout
        while not watch.live:
            await asyncio.sleep(0)
        next(iter(watch.live)).ends = 0.0
        watch._sweep()
        outcomes.append(await outcome(task))
        return outcomes

    assert run(main()) == ["cancelled", "cancelled", "timeout"]


def test_the_sweep_is_an_eighth_of_the_shortest_limit_within_bounds() -> None:
    assert watch_tick(FetchOptions()) == 1.0
    assert watch_tick(FetchOptions(read_timeout=0.3, total_timeout=0.6)) == pytest.approx(0.0375)
    assert watch_tick(FetchOptions(read_timeout=0.01, total_timeout=0.6)) == 0.01
