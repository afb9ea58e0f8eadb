"""A forked worker's side of synshard/builder/forkreads.py: its life, from fork to exit.

It runs each message the driver sends over its pipe: ("read", index, task or None: one it was
forked with) through `stages.run_task`, reporting the inputs settled as it goes, or ("assemble",
index, (jobs, args)) through `assembly.run_jobs`, returning their shard entries. It dies with
the driver (a parent-death signal), ignores Ctrl-C (the driver's to handle), and exits without
the driver's atexit handlers when its pipe closes or it is sent None.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import signal
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from synshard.builder.assembly import run_jobs
from synshard.builder.stages import run_task
from synshard.builder.staging import Staging
from synshard.config import BuildConfig
from synshard.errors import SynshardError

T = TypeVar("T")


class ReaderFailed(SynshardError):
    """A task failed in a reader with an error that could not be sent as it was; or a task kept
    killing readers, or none is left to run the tasks (one line for the CLI)."""


_PR_SET_PDEATHSIG = 1


def serve(conn: Connection, tasks: list, cfg: BuildConfig, staging: Staging,
          parent: int) -> None:
    """A reader's life: run each task it is sent, until None or end-of-file; never returns."""
    code = 0
    try:
        # die with the driver, even by kill -9 (then its tasks are the resumed build's to redo)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
        # what a Ray worker is given: copies through pickle. Filesystems are then made again in
        # this process (fsspec's async ones, s3fs's, refuse to run in a fork of their process)
        cfg, staging = _copied((cfg, staging))
        while (message := _next(conn)) is not None:
            kind, index, payload = message
            try:
                if kind == "read":  # a task it was forked with, or one sent (a retry task)
                    task = _copied(tasks[index]) if payload is None else payload
                    for rows in run_task(index, task, cfg, staging):
                        conn.send(("rows", index, rows))
                    result = None
                else:  # "assemble": a batch of synset jobs and their arguments
                    jobs, args = payload
                    result = run_jobs(jobs, *args)
            except Exception as exc:
                exc.add_note(f"(in {kind} task {index}, worker process {os.getpid()})")
                conn.send(("failed", index, _portable(exc, f"{kind} task {index}")))
                break
            conn.send(("done", index, result))
    except BaseException:
        code = 1
    finally:
        os._exit(code)  # no atexit handlers or finalizers: they are the driver's


def _copied(value: T) -> T:
    return pickle.loads(pickle.dumps(value))


def _next(conn: Connection) -> Any:
    try:
        return conn.recv()
    except EOFError:
        return None


def _portable(exc: Exception, task: str) -> Exception:
    """`exc` if it survives pickling, else one that says what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return ReaderFailed(f"{task} failed: {type(exc).__name__}: {exc}")
