"""The stand-in for Ray's agents (synshard/builder/agentstub.py): the port files the raylet waits
for, written whole; it ends once the process that started it is gone."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synshard.builder import agentstub
from synshard.builder.reaper import processes
from synshard.builder.raysession import AGENT_STUB

NODE = "ab" * 28


def _argv(session: Path, *extra: str) -> list[str]:
    # as the raylet passes them: the agent's own script path first, then its flags
    return ["/ray/dashboard/agent.py", f"--node-id={NODE}", f"--session-dir={session}",
            "--node-manager-port=RAY_NODE_MANAGER_PORT_PLACEHOLDER", *extra]


def test_the_dashboard_stand_in_writes_its_three_ports_as_not_in_use(tmp_path):
    agentstub.write(agentstub.port_files("dashboard", _argv(tmp_path, "--grpc-port=0")))
    got = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert got == {f"metrics_agent_port_{NODE}": "-1", f"metrics_export_port_{NODE}": "-1",
                   f"dashboard_agent_listen_port_{NODE}": "-1"}


def test_the_runtime_env_stand_in_writes_the_port_it_was_given(tmp_path):
    agentstub.write(agentstub.port_files("runtime-env",
                                         _argv(tmp_path, "--runtime-env-agent-port=41929")))
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        f"runtime_env_agent_port_{NODE}": "41929"}


def test_an_unknown_kind_or_missing_flags_fail_loudly(tmp_path):
    with pytest.raises(KeyError):
        agentstub.port_files("metrics", _argv(tmp_path))
    with pytest.raises(KeyError):
        agentstub.port_files("dashboard", [f"--node-id={NODE}"])
    run = subprocess.run([sys.executable, "-S", AGENT_STUB, "dashboard", f"--node-id={NODE}"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("agentstub: no 'session-dir' among the raylet's agent "
                                 "arguments"), run.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_the_stand_in_ends_once_its_parent_is_gone(tmp_path):
    """Its parent (the raylet, here a short-lived Python) ends: the stand-in follows."""
    # the starter names itself in RAY_RAYLET_PID, as the raylet does; the stand-in must not
    # hold the starter's stdout, which `run` reads to the end
    starter = (f"import os, subprocess, sys; p = subprocess.Popen([sys.executable, '-S', "
               f"{AGENT_STUB!r}, 'dashboard', *sys.argv[1:]], stdout=subprocess.DEVNULL, "
               f"stderr=subprocess.DEVNULL, env={{**os.environ, "
               f"'RAY_RAYLET_PID': str(os.getpid())}}); print(p.pid)")
    done = subprocess.run([sys.executable, "-c", starter, *_argv(tmp_path)[1:]],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout)
    for _ in range(300):  # a liveness bound (30 s), not a timing claim
        if pid not in processes():  # (gone, or a zombie nobody reaps)
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        pytest.fail("the stand-in outlived the process that started it")
    assert (tmp_path / f"metrics_agent_port_{NODE}").read_text() == "-1"
