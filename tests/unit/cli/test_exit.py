"""`synshard.cli.run`'s quick exit: what a normal exit does for a finished command still happens
(threads joined, atexit handlers run, output flushed, the status kept, a failed write reported);
only the teardown goes. The children run with buffered output (PYTHONUNBUFFERED removed), as a
user's terminal or pipe has it, so a missing flush would lose bytes."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, env=_env(), **kwargs)


def test_exit_now_joins_threads_runs_atexit_and_flushes_before_it_ends():
    done = _python("""
        import atexit, sys, threading, time
        from concurrent.futures import ThreadPoolExecutor
        from synshard.cli.app import exit_now

        atexit.register(lambda: print("atexit ran"))
        def late():
            time.sleep(0.2)
            print("thread done")
        threading.Thread(target=late).start()
        pool = ThreadPoolExecutor(1)  # left open: its idle worker must be woken, not waited on
        pool.submit(int).result()
        sys.stdout.write("x" * 200_000)  # more than a pipe's buffer, unflushed
        sys.stderr.write("to stderr")
        exit_now(3)
        print("never")
    """)
    assert done.returncode == 3
    assert done.stdout == "x" * 200_000 + "thread done\natexit ran\n"
    assert done.stderr == "to stderr"


def test_exit_now_keeps_the_status_with_stdout_closed():
    done = _python("""
        import os
        os.close(1)
        import sys
        sys.stdout = None  # what Python sets when it starts with the descriptor closed
        from synshard.cli.app import exit_now
        sys.stderr.write("still here")
        exit_now(4)
    """)
    assert done.returncode == 4
    assert done.stderr == "still here"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_exit_now_reports_a_failed_final_write():
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import sys
            from synshard.cli.app import exit_now
            sys.stdout.write("lost" * 10)
            exit_now(0)
        """)], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, env=_env())
    assert done.returncode == 120
    assert done.stderr.startswith("synshard: could not write the output:")


def test_module_entry_keeps_the_status_and_the_one_line_failure(tmp_path):
    missing = tmp_path / "missing"
    done = subprocess.run([sys.executable, "-m", "synshard.cli", "build", str(missing),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=300, env=_env())
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_module_entry_prints_all_of_a_commands_output():
    """A command that returns normally (not argparse's SystemExit) and writes without flushing."""
    done = subprocess.run([sys.executable, "-m", "synshard.cli", "synsets", "subset",
                           "ilsvrc2012"], capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 0, done.stderr
    wnids = done.stdout.splitlines()
    assert len(wnids) == 1000 and done.stdout.endswith("\n")
    assert wnids[0] == "n01440764"
