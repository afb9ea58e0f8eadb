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


def test_the_first_try_has_stand_in_agents_and_a_second_rays_own(monkeypatch, tmp_path):
    """The raylet's agents are synshard/builder/agentstub.py on the first try; should that
    node time out, the second try starts Ray's own agents. Ray's function is restored after."""
    from ray._private import ray_constants, services

    def commands() -> tuple[list[str], list[str]]:
        """The Python commands start_raylet would give the dashboard and runtime-env agents."""
        build = services._build_python_executable_command_memory_profileable
        return (build(ray_constants.PROCESS_TYPE_DASHBOARD_AGENT, str(tmp_path)),
                build(ray_constants.PROCESS_TYPE_RUNTIME_ENV_AGENT, str(tmp_path)))

    ray_own = commands()
    seen = []

    def init(**kwargs):
        seen.append(commands())
        raise Exception("The current node timed out during startup.")

    monkeypatch.setattr(raysession.ray, "init", init)
    monkeypatch.setattr(raysession.ray, "shutdown", lambda: None)
    with pytest.raises(raysession.RayStartError):
        raysession._start_embedded(_cfg(tmp_path), {})
    (dashboard, runtime_env), second = seen
    assert dashboard[-3:] == ["-S", raysession.AGENT_STUB, "dashboard"]
    assert runtime_env[-3:] == ["-S", raysession.AGENT_STUB, "runtime-env"]
    assert second == ray_own and raysession.AGENT_STUB not in ray_own[0]
    assert commands() == ray_own
