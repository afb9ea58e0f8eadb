"""`synshard serve` as a user runs it: a child process on 127.0.0.1, port 0 (the system picks a
free one), its address read from the line it prints once bound; stopped with Ctrl-C (SIGINT)."""
from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator


_CLI_WITH_CTRL_C = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                    "sys.argv[0] = 'synshard'; runpy.run_module('synshard.cli', run_name='__main__')")


@contextlib.contextmanager
def synshard_serve(release: Path, log: Path, stop: int = signal.SIGINT) -> Iterator[str]:
    """Yield the explorer's base URL (no trailing slash); its stderr goes to `log`. On exit it is
    sent `stop` (Ctrl-C's SIGINT, or a service manager's SIGTERM) and must stop with status 0.

    The child sets Python's Ctrl-C handler itself before it runs the CLI: a test run started in
    the background by a non-interactive shell (`make test &`, a CI runner) ignores SIGINT, the
    child inherits that, and Python then never raises KeyboardInterrupt: the test would hang.
    (Not `preexec_fn`, which is unsafe in a parent with threads.)"""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CLI_WITH_CTRL_C, "serve", str(release), "--port", "0"],
            stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # printed once the socket is bound
            assert line.startswith("synshard explorer: http://127.0.0.1:"), (
                line + log.read_text())
            yield line.split()[2].rstrip("/")
        finally:
            proc.send_signal(stop)
            code = proc.wait()
    assert code == 0, log.read_text()
