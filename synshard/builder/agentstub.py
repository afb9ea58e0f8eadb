"""A stand-in for Ray's dashboard agent or runtime-env agent on an embedded build's node.

    python -S agentstub.py {dashboard|runtime-env} --node-id=... --session-dir=... [the agent's
    own arguments, as the raylet passes them]

The raylet starts both agents and waits until each has written its port files into the session
folder (`<name>_<node id>`, holding the port). An embedded build asks neither for anything: no
metrics (the dashboard agent of a Ray without `ray[default]` writes -1, "not in use", as this
does), no dashboard, no runtime environments. The real agents each import Ray and its gRPC and
aiohttp stacks: ~2.4 CPU-s of a build and ~2 s of Ray's start-up on a 2-core machine
(synshard/builder/raysession.py starts these instead; bench/bench_build.py prints Ray's CPU by
process). This one writes the files and waits; it ends when the raylet ends it (SIGTERM) or is
gone (its parent is no longer the raylet named by RAY_RAYLET_PID). Standard library only, run
without site-packages (`-S`): it starts in milliseconds.
"""
from __future__ import annotations

import os
import sys
import time

PORTS = {  # what each agent writes (Ray 2.60: dashboard/agent.py, runtime_env/agent/main.py)
    "dashboard": ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port"),
    "runtime-env": ("runtime_env_agent_port",),
}


def port_files(kind: str, argv: list[str]) -> dict[str, str]:
    """{path: content} of the port files the agent of `kind`, given `argv`, would write."""
    args = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    node, session = args["node-id"], args["session-dir"]
    port = args.get("runtime-env-agent-port", "-1") if kind == "runtime-env" else "-1"
    return {os.path.join(session, f"{name}_{node}"): port for name in PORTS[kind]}


def write(files: dict[str, str]) -> None:
    for path, content in files.items():  # whole or not at all: the raylet polls for them
        with open(f"{path}.tmp", "w") as f:
            f.write(content)
        os.replace(f"{path}.tmp", path)


def main(argv: list[str]) -> None:
    # the raylet, which names itself to its agents (Ray's own agents watch it the same way); a
    # raylet gone before this line leaves the stand-in re-parented already, so it ends at once
    raylet = int(os.environ.get("RAY_RAYLET_PID") or os.getppid())
    try:
        files = port_files(argv[0], argv[1:])
    except (IndexError, KeyError) as exc:  # one line in the agent's log, not a traceback
        sys.exit(f"agentstub: no {exc} among the raylet's agent arguments {argv[:1]}: has "
                 "Ray's agent command changed? (synshard retries with Ray's own agents)")
    write(files)
    while os.getppid() == raylet:
        time.sleep(1.0)


if __name__ == "__main__":
    main(sys.argv[1:])
