"""An embedded Ray whose node times out at start-up: tried again once, then one clear line."""
from __future__ import annotations

import pytest

from synshard.builder import raysession
from synshard.config import build_config


def _cfg(tmp_path):
    return build_config({"sources": [str(tmp_path)], "out": str(tmp_path / "out")})


def test_a_node_timing_out_is_tried_again_then_one_line(monkeypatch, tmp_path):
    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        raise Exception("The current node timed out during startup. This could happen ...")

    monkeypatch.setattr(raysession.ray, "init", init)
    monkeypatch.setattr(raysession.ray, "shutdown", lambda: None)
    with pytest.raises(raysession.RayStartError) as info:
        raysession._start_embedded(_cfg(tmp_path), {})
    assert len(calls) == raysession.START_TRIES == 2
    assert str(info.value).startswith("the embedded Ray did not start (2 tries): The current "
                                      "node timed out during startup.")
    assert "run the same command again" in str(info.value)


def test_a_second_try_that_starts_is_enough_and_other_errors_are_not_retried(monkeypatch,
                                                                             tmp_path):
    outcomes = [Exception("The current node timed out during startup."), None]
    monkeypatch.setattr(raysession.ray, "shutdown", lambda: None)

    def init(**kwargs):
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(raysession.ray, "init", init)
    raysession._start_embedded(_cfg(tmp_path), {})
    assert outcomes == []
    outcomes[:] = [OSError("no space left for the object store"), None]
    with pytest.raises(raysession.RayStartError, match=r"\(1 try\): no space left"):
        raysession._start_embedded(_cfg(tmp_path), {})
    assert outcomes == [None]
