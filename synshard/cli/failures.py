"""How a failed command ends: one line that says what failed, where, and what to do.

`main` hands every exception to `failure_line`; the traceback is printed only with `--debug` or
`SYNSHARD_DEBUG=1`. An error raised inside a Ray task arrives wrapped (`RayTaskError(OSError)`,
Ray Data's `UserCodeException`): it is unwrapped to the error the task raised. Specific checks
(a kind of error and the advice that goes with it) belong in `failure_line`, nowhere else.
"""
from __future__ import annotations

import argparse
import errno
import os
from typing import Any

from synshard.errors import SynshardError

DEBUG_ENV = "SYNSHARD_DEBUG"
DEBUG_HINT = "run again with --debug (or SYNSHARD_DEBUG=1) for the traceback"
# Modules of the optional extras (pyproject.toml) -> the extra that brings them. The core install
# (numpy, pyarrow, fsspec, a PIL) reads releases; building, reports and the explorer need more.
EXTRA_OF_MODULE = {"simplejpeg": "build", "ray": "build", "tqdm": "build", "aiohttp": "build",
                   "protego": "build", "flask": "build", "waitress": "build", "plotly": "build",
                   "yarl": "build", "s3fs": "s3", "torch": "torch", "PIL": "pillow"}


def debug_wanted(args: argparse.Namespace | None = None) -> bool:
    flag = bool(getattr(args, "debug", False))
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def unwrap(exc: BaseException) -> BaseException:
    """The error a Ray task raised, out of Ray's wrappers (which carry the remote traceback)."""
    for _ in range(10):
        if not type(exc).__module__.startswith("ray."):
            break
        cause = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(cause, BaseException):
            break
        exc = cause
    return exc


def _where(exc: BaseException, args: Any) -> str | None:
    for name in ("filename", "filename2"):
        value = getattr(exc, name, None)
        if value:
            return str(value)
    for name in ("out", "uri"):  # the command's target: the build's output, a release
        value = getattr(args, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def failure_line(exc: BaseException, args: Any = None) -> str:
    """`synshard: error: ...` for `exc` (unwrapped), without a traceback."""
    exc = unwrap(exc)
    command = getattr(args, "command", None)
    again = "run the same command again: the build resumes where it stopped" \
        if command in ("build", "demo") else "run the same command again"
    if isinstance(exc, SynshardError):
        return f"synshard: error: {exc}"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        extra = EXTRA_OF_MODULE.get(exc.name.split(".")[0])
        if extra is not None:
            what = f"synshard {command}" if command else "this"
            return (f"synshard: error: {what} needs the {extra} extra: "
                    f"pip install 'synshard[{extra}]' (missing module {exc.name})")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = _where(exc, args)
        at = f" writing under {where}" if where else ""
        return f"synshard: error: no space left on the device{at}; free some space and {again}"
    if isinstance(exc, OSError) and exc.errno is not None:
        where = _where(exc, args)
        at = f": {where}" if where and getattr(exc, "filename", None) else ""
        what = exc.strerror or type(exc).__name__
        hint = f" ({where})" if where and not at else ""
        return f"synshard: error: {what}{at}{hint}"
    if isinstance(exc, MemoryError):
        return f"synshard: error: out of memory; {DEBUG_HINT}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"synshard: error: unexpected {type(exc).__name__}"
            f"{': ' + text if text else ''} (a bug: please report it; {DEBUG_HINT})")
