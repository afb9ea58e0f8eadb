"""robots.txt policies, their cache, and X-Robots-Tag parsing."""
from __future__ import annotations

import pytest

from synshard.ingest.robots import (
    RobotsCache,
    RobotsPolicy,
    policy_from_body,
    policy_from_failure,
    x_robots_reason,
)

ROBOTS = b"""User-agent: *
Disallow: /private/
Allow: /private/ok/

User-agent: synshard
Disallow: /nobots/
"""


def test_policy_from_body_matches_longest_rule_and_agent_groups() -> None:
    policy = policy_from_body(ROBOTS)
    assert policy.allows("http://h/img/1.jpg", "synshard")
    assert policy.allows("http://h/private/1.jpg", "synshard")  # only its own group applies
    assert not policy.allows("http://h/nobots/1.jpg", "synshard")
    assert not policy.allows("http://h/private/1.jpg", "otherbot")
    assert policy.allows("http://h/private/ok/1.jpg", "otherbot")


@pytest.mark.parametrize(
    "reason, allowed",
    [("http 404", True), ("http 403", True), ("http 429", False), ("http 503", False),
     ("timeout", False), ("connection reset", False)],
)
def test_policy_from_failure_follows_rfc9309(reason: str, allowed: bool) -> None:
    assert policy_from_failure(reason).allows("http://h/x.jpg", "synshard") is allowed


def test_cache_expires_after_ttl() -> None:
    now = [0.0]
    cache = RobotsCache(ttl=10, clock=lambda: now[0])
    cache.put("http://h", RobotsPolicy())
    assert cache.get("http://h") is not None and cache.get("http://other") is None
    now[0] = 11
    assert cache.get("http://h") is None


def test_cache_keeps_at_most_its_size_the_oldest_going_first() -> None:
    cache = RobotsCache(ttl=100, size=3)
    for host in ("a", "b", "c", "a", "d"):  # putting "a" again makes it the newest
        cache.put(f"http://{host}", RobotsPolicy())
    assert len(cache) == 3
    assert [cache.get(f"http://{h}") is not None for h in "abcd"] == [True, False, True, True]


@pytest.mark.parametrize(
    "values, reason",
    [
        ([], None),
        (["noindex, nofollow"], None),
        (["noai"], "x-robots-tag noai"),
        (["NoImageAI"], "x-robots-tag noimageai"),
        (["noindex", "noai, noimageai"], "x-robots-tag noai"),
        (["synshard: noimageai"], "x-robots-tag noimageai"),
        (["otherbot: noai"], None),
        (["unavailable_after: 25 Jun 2010 15:00:00 PST, noai"], "x-robots-tag noai"),
        (["max-image-preview: large"], None),
    ],
)
def test_x_robots_reason(values: list[str], reason: str | None) -> None:
    assert x_robots_reason(values, "synshard") == reason
