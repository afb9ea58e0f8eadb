"""The batch: a list of URLs fetched on one event loop, every URL accounted for.

`Run` owns what is shared by a run's URLs: the concurrency caps (all hosts, and per host), the
robots.txt loads in progress, the retries with backoff, the per-URL deadline and the rule that a
timed-out URL is retried at most once and only after the run's other URLs had their first try
(in a read task of a build: not here at all, but deferred to a patient retry run at the end).
One request of one URL is `ingest/attempt.py`; the worker's state across runs (`Fetcher`, its
host rates) and a started run as its caller sees it (`Job`) are `ingest/http.py`.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Coroutine, TypeVar

import aiohttp
from yarl import URL

from .attempt import Deadline, Reply, request
from .fetch_options import FetchStats
from .fetchstream import DEFERRED, Result
from .replies import Rejected, Transient, classify_error, head, sniff_image
from .robots import RobotsPolicy, policy_from_body, policy_from_failure

if TYPE_CHECKING:
    from .http import Fetcher

T = TypeVar("T")


@dataclass
class UrlState:
    """One URL's budget within a run: when its deadline falls (set by its first request), the
    seconds and timeouts it had in earlier runs (a deferred URL's retry run carries them on)."""

    spent: float = 0.0  # seconds of its deadline used in earlier runs
    timeouts: int = 0
    deadline_at: float | None = None
    first_try_done: bool = False

    def spent_by(self, now: float, deadline: float) -> float:
        """Seconds of the deadline used so far, this run included."""
        if self.deadline_at is None:
            return self.spent
        return max(self.spent, deadline - (self.deadline_at - now))


def robots_verdict(policy: RobotsPolicy, url: str, agent: str) -> None:
    """Raise the URL's rejection when `policy` does not let `agent` fetch `url`."""
    if policy.unreachable:
        raise Rejected("robots.txt unreachable")
    if not policy.allows(url, agent):
        raise Rejected("robots.txt disallows")


class Later(Exception):
    """The URL timed out in a run that defers: it ends here as DEFERRED (retried by a later run)."""


class Run:
    """One run of the fetcher over a list of URLs (a read task's, or a batch's) on the worker's
    event loop: the concurrency caps, the robots.txt loads in progress and the request counters.

    Per request the bookkeeping is kept to what politeness and the budgets need: no timer per
    attempt (the fetcher's `Watch` keeps its total, cut to the URL's deadline when that falls
    first, and its silences), two semaphores acquired directly, and cached guard, origin and
    robots.txt look-ups."""

    def __init__(self, fetcher: "Fetcher", session: aiohttp.ClientSession, urls: int,
                 defer: bool = False, patient: bool = False) -> None:
        self.fetcher = fetcher
        self.defer = defer  # a timeout ends the URL as DEFERRED instead of a retry in this run
        # a retry run (of deferred URLs): one attempt per URL may take what is left of its
        # deadline, silences included, and a timeout is final (it was the URL's one retry)
        self.patient = patient
        self.opts = fetcher.opts
        self.session = session
        self.loop = asyncio.get_running_loop()
        assert fetcher.watch is not None, "a run starts on the fetcher's loop"
        self.watch = fetcher.watch
        self.stats = FetchStats()
        self.all_slots = asyncio.Semaphore(self.opts.concurrency)
        self.host_slots: dict[str, asyncio.Semaphore] = {}
        self.robots_loads: dict[str, asyncio.Task[RobotsPolicy]] = {}
        self.first_tries_left = urls
        self.first_tries_done = asyncio.Event()  # every URL of the run has had its first try
        if urls <= 0:
            self.first_tries_done.set()

    async def fetch_one(self, text: str, state: UrlState | None = None) -> Result:
        """(body chunks, None) for an image, else (None, reason); (None, DEFERRED) when the URL
        timed out in a run that defers (its `state` then says what it has spent)."""
        state = UrlState() if state is None else state
        try:
            try:
                url = URL(text)
            except (ValueError, TypeError):
                return None, "bad url"
            reply = await self.follow(url, image=True, state=state)
        except Rejected as exc:
            return None, exc.reason
        except Later:
            return None, DEFERRED
        finally:
            self.first_try_done(state)
        if sniff_image(head(reply.body)) is None:
            return None, "not an image"
        return reply.body, None

    def first_try_done(self, state: UrlState) -> None:
        """Count a URL's first try (once); the last one releases the deferred timeout retries."""
        if state.first_try_done:
            return
        state.first_try_done = True
        self.first_tries_left -= 1
        if self.first_tries_left <= 0:
            self.first_tries_done.set()

    async def follow(self, url: URL, image: bool, state: UrlState | None = None) -> Reply:
        """Request `url`, following redirects by hand: guard and robots.txt on every hop."""
        for _ in range(self.opts.max_redirects + 1):
            reason = self.fetcher.guard.url_reason(url)
            if reason:
                raise Rejected(reason)
            if image and self.opts.respect_robots_txt:
                origin = self.fetcher.origin(url)
                policy = self.fetcher.robots.get(origin)
                if policy is None:  # not cached (or expired): load it, once per origin
                    policy = await self.robots_policy(origin)
                robots_verdict(policy, str(url), self.opts.robots_agent)
            reply = await self.retrying(url, image, state)
            if reply.location is None:
                return reply
            try:
                url = url.join(URL(reply.location)).with_fragment(None)
            except (ValueError, TypeError):
                raise Rejected("bad redirect") from None
        raise Rejected("too many redirects")

    async def robots_policy(self, origin: str) -> RobotsPolicy:
        """`origin`'s robots.txt policy, loaded by one request however many URLs ask at once."""
        load = self.robots_loads.get(origin)
        if load is None:
            load = self.robots_loads[origin] = asyncio.ensure_future(self.load_robots(origin))
        return await asyncio.shield(load)  # a URL's deadline must not cancel the shared load

    async def load_robots(self, origin: str) -> RobotsPolicy:
        """Fetch and cache `origin`'s robots.txt (once per origin and worker)."""
        try:
            reply = await self.follow(URL(origin + "/robots.txt"), image=False)
        except Rejected as exc:
            if exc.reason.startswith("blocked:"):
                raise  # the host itself is refused: every URL on it gets this reason
            policy = policy_from_failure(exc.reason)
        else:
            policy = policy_from_body(b"".join(reply.body))
        self.fetcher.robots.put(origin, policy)
        return policy

    async def retrying(self, url: URL, image: bool, state: UrlState | None = None) -> Reply:
        """One hop, retried on transient failures with capped exponential backoff and jitter.

        A timeout is retried at most `timeout_retries` times and, for an image URL, only after
        every URL of the run has had its first try: later, not in place; in a run that defers, a
        timeout ends the URL here instead (DEFERRED: a later, patient run retries it once, one
        attempt that may take what is left of the deadline). No wait outlasts
        the URL's deadline: one that would is the URL's end ("deadline")."""
        for attempt in range(self.opts.retries + 1):
            try:
                return await self.attempt(url, image, state)
            except Transient as exc:
                if attempt == self.opts.retries:
                    raise Rejected(exc.reason) from None
                if exc.reason == "timeout" and state is not None:
                    if state.timeouts >= self.opts.timeout_retries or self.patient:
                        raise Rejected(exc.reason) from None
                    state.timeouts += 1
                    if self.defer:
                        raise Later() from None  # retried by a later run, not in place
                    self.stats.retries += 1
                    self.first_try_done(state)
                    await self.until_deadline(self.first_tries_done.wait(), state)
                    continue
                self.stats.retries += 1
                delay = self.backoff(attempt, exc.retry_after)
                if state is not None and state.deadline_at is not None \
                        and self.loop.time() + delay >= state.deadline_at:
                    raise Deadline() from None
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def until_deadline(self, wait: Coroutine[Any, Any, T], state: UrlState) -> T:
        if state.deadline_at is None:
            return await wait
        try:
            return await asyncio.wait_for(wait, state.deadline_at - self.loop.time())
        except TimeoutError:
            raise Deadline() from None

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.opts.retry_after_max)
        ceiling = min(self.opts.backoff_max, self.opts.backoff_base * 2**attempt)
        return self.fetcher.rng.uniform(ceiling / 2, ceiling)  # "equal jitter"

    async def attempt(self, url: URL, image: bool, state: UrlState | None = None) -> Reply:
        """One request within the caps and its timeouts; client errors become reasons.

        Holds a per-host slot (after the host's rate delay), then a global one. The URL's deadline
        starts with its first request (waiting for a slot before that does not count); when it
        falls before `total_timeout` would, it is the request's total timeout."""
        host = url.host or ""
        host_slot = self.host_slots.get(host)
        if host_slot is None:
            host_slot = self.host_slots[host] = asyncio.Semaphore(self.opts.per_host)
        async with host_slot:
            delay = self.fetcher.rate.delay(host, time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)
            async with self.all_slots:
                # (total, longest silence): a patient attempt may be silent for all of it
                limits: tuple[float, float | None] = (self.opts.total_timeout,
                                                      self.opts.read_timeout)
                if state is not None:
                    now = self.loop.time()
                    if state.deadline_at is None:
                        state.deadline_at = now + self.opts.deadline - state.spent
                    left = state.deadline_at - now
                    if left <= 0:
                        raise Deadline()
                    if self.patient and image:
                        limits = (left, None)
                    elif left < self.opts.total_timeout:
                        limits = (left, self.opts.read_timeout)
                self.stats.requests += 1
                self.stats.robots_requests += 0 if image else 1
                try:
                    return await request(self.session, self.watch, url, image, self.opts,
                                         self.fetcher.guard, limits, self.stats)
                except asyncio.TimeoutError as exc:
                    if (state is not None and state.deadline_at is not None
                            and self.loop.time() >= state.deadline_at):
                        raise Deadline() from None
                    raise classify_error(exc) from None
