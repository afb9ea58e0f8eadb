"""Forked readers (synshard/builder/forkreads.py), each case in a fresh interpreter (a process that
has imported Ray does not fork them), with a stand-in `run_task` that marks each task it runs:

- until Ray is ready every task goes to a reader, each once; then the rest stay in the queue for
  Ray's feed, which is filled at once;
- a reader that dies mid-task gives its task back (and its partial count);
- a task's error is raised in the driver, as it was raised;
- readers die with the driver (`kill -9`);
- a local build's readers (`read_all`, then `assemble`) run every task once and wait for more
  work; a reader that dies gives its task to another; a task that kills two readers fails the
  build with one clear error, as does losing every reader; assembly's results come back in
  batch order.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="readers are forked on Linux only")

SCRIPT = r"""
import json, os, sys, time
from pathlib import Path
from synshard.builder import forkreads, forkworker

marks, mode = Path(sys.argv[1]), sys.argv[2]
TASKS = 12

def run_task(index, task, cfg, staging):
    if mode == "dies" and index == 3:
        yield 5
        os._exit(9)
    if mode == "fails" and index == 4:
        raise ValueError(f"task {index}: bad input")
    if mode == "killed":
        (marks / f"pid-{os.getpid()}").write_text("")
        time.sleep(600)
    (marks / f"{index}-{os.getpid()}").write_text("")
    yield 10
    yield 1

forkworker.run_task = run_task

class Background:
    def ready(self):
        return mode == "ray" and len(list(marks.iterdir())) >= 4
    up = ready

class Feed:
    pending = []
    filled = None
    def fill(self, queue):
        Feed.filled = list(queue)

readers = forkreads.fork_readers(2, list(range(TASKS)), None, None)
queue = list(reversed(range(TASKS)))
bar = []
rows = 0
try:
    rows = readers.run(queue, bar.append, Background(), Feed())
    rows += readers.finish()
    error = None
except ValueError as exc:
    error = str(exc)
print(json.dumps({"rows": rows, "bar": sum(bar), "queue": queue, "filled": Feed.filled,
                  "error": error, "ray": "ray" in sys.modules, "given_back": readers.given_back}))
"""


LOCAL = r"""
import json, os, sys
from pathlib import Path
from synshard.builder import forkreads, forkworker

marks, mode = Path(sys.argv[1]), sys.argv[2]
TASKS = 12

def run_task(index, task, cfg, staging):
    first = not (marks / f"tried-{index}").exists()
    (marks / f"tried-{index}").write_text("")
    if index == 3 and (mode == "poison" or (mode == "dies once" and first)):
        yield 5
        os._exit(9)
    if mode == "all die":
        os._exit(3)
    (marks / f"{index}-{os.getpid()}").write_text("")
    yield 10
    yield 1

def run_jobs(jobs, *args):
    return [(job, args, os.getpid()) for job in jobs]

forkworker.run_task, forkworker.run_jobs = run_task, run_jobs
readers = forkreads.fork_readers(2, list(range(TASKS)), None, None)
bar = []
out = {"error": None}
try:
    out["rows"] = readers.read_all(list(reversed(range(TASKS))), bar.append)
    out["rows"] += readers.read_all([], bar.append)  # (no retry tasks): the readers still wait
    if mode == "idle dies":  # killed while the driver decides: the other reader assembles
        import signal
        victim = readers._readers[0].pid
        os.kill(victim, signal.SIGKILL)
        while os.waitid(os.P_PID, victim, os.WEXITED | os.WNOWAIT) is None:
            pass
    batches = [[f"job{i}", f"job{i}b"] for i in range(7)]
    out["assembled"] = readers.assemble(batches, ("staging", 2))
except forkreads.ReaderFailed as exc:
    out["error"] = str(exc)
finally:
    readers.close()
print(json.dumps({**out, "bar": sum(bar), "given_back": readers.given_back}))
"""


def _run(tmp_path: Path, mode: str, script: str = SCRIPT) -> dict:
    marks = tmp_path / "marks"
    marks.mkdir()
    done = subprocess.run([sys.executable, "-c", script, str(marks), mode], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "marks": _marks(marks)}


def _marks(marks: Path) -> dict[int, list[str]]:
    """Task index -> the pids that ran it."""
    ran: dict[int, list[str]] = {}
    for mark in marks.iterdir():
        index, pid = mark.name.split("-")
        if index == "tried":
            continue
        ran.setdefault(int(index), []).append(pid)
    return ran


def test_readers_run_every_task_once_while_ray_is_not_ready(tmp_path):
    got = _run(tmp_path, "all")
    assert sorted(got["marks"]) == list(range(12))
    assert all(len(pids) == 1 for pids in got["marks"].values())
    assert len({p for pids in got["marks"].values() for p in pids}) == 2  # both readers read
    assert str(os.getpid()) not in {p for pids in got["marks"].values() for p in pids}
    assert got["rows"] == got["bar"] == 12 * 11
    assert got["queue"] == [] and got["filled"] is None and not got["ray"]


def test_once_ray_is_ready_the_rest_of_the_queue_goes_to_its_feed(tmp_path):
    got = _run(tmp_path, "ray")
    ran = sorted(got["marks"])
    assert all(len(pids) == 1 for pids in got["marks"].values())
    assert 4 <= len(ran) < 12
    assert got["filled"] == got["queue"]  # the feed got the queue as the readers left it
    assert sorted(ran + got["queue"]) == list(range(12))  # each task once: a reader's or Ray's
    assert got["rows"] == got["bar"] == len(ran) * 11


def test_a_reader_that_dies_gives_its_task_back(tmp_path):
    got = _run(tmp_path, "dies")
    assert 3 not in got["marks"]  # it never finished there
    assert 3 in got["queue"]  # back in the queue: Ray runs it
    assert sorted(list(got["marks"]) + got["queue"]) == list(range(12))
    assert got["rows"] == got["bar"] == len(got["marks"]) * 11  # its 5 rows taken back
    assert got["given_back"] >= 1


def test_a_task_that_fails_in_a_reader_raises_its_error_in_the_driver(tmp_path):
    got = _run(tmp_path, "fails")
    assert got["error"] == "task 4: bad input"


def test_readers_die_with_the_driver(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(marks), "killed"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # a liveness bound, not a timing claim
            if len(list(marks.iterdir())) == 2:
                break
            time.sleep(0.05)
        pids = [int(m.name.split("-")[1]) for m in marks.iterdir()]
        assert len(pids) == 2, "both readers should be running a task"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for _ in range(600):
            if not any(_alive(p) for p in pids):
                break
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids), "a reader outlived its driver"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_local_builds_readers_run_every_task_once_then_assemble_in_batch_order(tmp_path):
    got = _run(tmp_path, "all", LOCAL)
    assert got["error"] is None
    assert sorted(got["marks"]) == list(range(12))
    assert all(len(pids) == 1 for pids in got["marks"].values())
    assert got["rows"] == got["bar"] == 12 * 11
    assembled = got["assembled"]
    assert [[job for job, _, _ in batch] for batch in assembled] == \
        [[f"job{i}", f"job{i}b"] for i in range(7)]
    assert all(args == ["staging", 2] for batch in assembled for _, args, _ in batch)
    readers = {pid for pids in got["marks"].values() for pid in pids}
    assert {pid for batch in assembled for _, _, pid in batch} <= {int(p) for p in readers}


def test_a_local_builds_reader_that_dies_hands_its_task_to_another(tmp_path):
    got = _run(tmp_path, "dies once", LOCAL)
    assert got["error"] is None
    assert sorted(got["marks"]) == list(range(12))  # task 3 too, in the reader left
    assert all(len(pids) == 1 for pids in got["marks"].values())
    assert got["rows"] == got["bar"] == 12 * 11  # the dead reader's 5 rows taken back
    assert got["given_back"] == 1
    assert len(got["assembled"]) == 7  # the one reader left assembles


def test_a_task_that_kills_two_readers_fails_the_build_with_one_clear_error(tmp_path):
    got = _run(tmp_path, "poison", LOCAL)
    assert got["error"] == ("read task 3 killed two worker processes (the last exited with "
                            "status 9: out of memory? see dmesg); finished tasks are kept: run "
                            "the same command again, with a lower --num-cpus if memory ran out")
    assert 3 not in got["marks"]


def test_losing_every_reader_fails_the_build_instead_of_dropping_tasks(tmp_path):
    got = _run(tmp_path, "all die", LOCAL)
    assert got["error"].startswith("every worker process of this build died, ")
    assert got["marks"] == {}


def test_a_reader_killed_while_idle_leaves_assembly_to_the_others(tmp_path):
    got = _run(tmp_path, "idle dies", LOCAL)
    assert got["error"] is None
    assert len(got["assembled"]) == 7
    pids = {pid for batch in got["assembled"] for _, _, pid in batch}
    assert len(pids) == 1  # the reader left, every batch
