"""BackgroundRay without Ray: a session that never began to start is cancelled at once."""
from __future__ import annotations

import sys

from synshard.builder.raystart import BackgroundRay
from synshard.config import build_config


def _cfg(tmp_path):
    return build_config({"sources": [str(tmp_path)], "out": str(tmp_path / "out")})


def test_on_demand_session_is_cancelled_without_starting_ray(tmp_path):
    background = BackgroundRay(_cfg(tmp_path), delay=None)
    assert not background.started() and not background.ready()
    assert background.cancel()
    assert not background.started()
    background.close()  # a cancelled session closes at once
    assert background.cancel()  # still never started


def test_delayed_session_cancelled_before_its_delay(tmp_path):
    with BackgroundRay(_cfg(tmp_path), delay=600) as background:
        assert background.cancel()
    assert not background.started()


def _ray_up() -> bool:
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def test_leaving_the_block_of_a_session_that_never_started_does_not_start_it(tmp_path):
    was_up = _ray_up()  # the integration tests' shared Ray may already be up
    with BackgroundRay(_cfg(tmp_path), delay=None) as background:
        pass
    assert not background.started()
    assert _ray_up() == was_up


def test_a_held_session_starts_only_on_demand_and_is_cancelled_at_once(tmp_path):
    with BackgroundRay(_cfg(tmp_path), delay=600) as background:
        assert background.hold() and background.hold()  # held, and still held
        assert not background.started() and not background.ready()
        assert background.cancel()
        assert not background.hold()  # a cancelled session is not held again
    assert not background.started()
