"""`synshard.cli.run`'s quick exit: what a normal exit does for a finished command still happens
(threads joined, atexit handlers run, output flushed, the status kept); only the teardown goes."""
from __future__ import annotations

import subprocess
import sys
import textwrap


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


def test_exit_now_joins_threads_runs_atexit_and_flushes_before_it_ends():
    done = _python("""
        import atexit, sys, threading, time
        from synshard.cli.app import exit_now

        atexit.register(lambda: print("atexit ran", flush=False))
        def late():
            time.sleep(0.2)
            print("thread done", flush=False)
        threading.Thread(target=late).start()
        sys.stdout.write("x" * 200_000)  # more than a pipe's buffer, unflushed
        sys.stderr.write("to stderr")
        exit_now(3)
        print("never")
    """)
    assert done.returncode == 3
    assert done.stdout == "x" * 200_000 + "thread done\natexit ran\n"
    assert done.stderr == "to stderr"


def test_module_entry_keeps_the_status_and_the_one_line_failure(tmp_path):
    missing = tmp_path / "missing"
    done = subprocess.run([sys.executable, "-m", "synshard.cli", "build", str(missing),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_module_entry_prints_all_of_a_commands_output():
    done = subprocess.run([sys.executable, "-m", "synshard.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0
    assert "build" in done.stdout and done.stdout.endswith("\n")
