"""A failed command is one line (what, where, what to do); --debug / SYNSHARD_DEBUG=1 add the
traceback. (Errors wrapped by Ray: tests/integration/test_failures.py.)"""
from __future__ import annotations

import argparse
import errno

import pytest

from synshard.cli import main
from synshard.cli.failures import debug_wanted, failure_line
from synshard.config import ConfigError


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**kw)


def test_full_disk_names_the_output_and_says_the_build_resumes():
    line = failure_line(OSError(errno.ENOSPC, "No space left on device"),
                        _args(command="build", out="/data/rel"))
    assert line == ("synshard: error: no space left on the device writing under /data/rel; "
                    "free some space and run the same command again: the build resumes where "
                    "it stopped")


def test_os_errors_name_their_file():
    exc = PermissionError(errno.EACCES, "Permission denied", "/data/rel/manifest.json")
    assert failure_line(exc, _args(command="info", uri="/data/rel")) == \
        "synshard: error: Permission denied: /data/rel/manifest.json"
    exc = OSError(errno.EIO, "Input/output error")
    assert failure_line(exc, _args(command="verify", uri="/r")) == \
        "synshard: error: Input/output error (/r)"


def test_own_errors_are_their_message_and_anything_else_says_how_to_see_more():
    assert failure_line(ConfigError("unknown option foo"), None) == \
        "synshard: error: unknown option foo"
    line = failure_line(ValueError("Out of range float values\nmore"), _args(command="build"))
    assert line.startswith("synshard: error: unexpected ValueError: Out of range float values (")
    assert "--debug" in line and "\n" not in line


@pytest.mark.parametrize("value, wanted", [("", False), ("0", False), ("no", False),
                                           ("1", True), ("yes", True)])
def test_debug_from_the_environment(monkeypatch, value, wanted):
    monkeypatch.setenv("SYNSHARD_DEBUG", value)
    assert debug_wanted(_args(debug=False)) is wanted
    assert debug_wanted(_args(debug=True))


def test_main_prints_one_line_and_the_traceback_only_with_debug(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SYNSHARD_DEBUG", raising=False)
    missing = str(tmp_path / "nothing")
    assert main(["info", missing]) == 1
    err = capsys.readouterr().err
    assert err == f"synshard: error: no committed release at {missing} (no manifest.json)\n"
    assert main(["verify", missing, "--debug"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1].startswith("synshard: error: no committed release at")
    monkeypatch.setenv("SYNSHARD_DEBUG", "1")
    assert main(["info", missing, "--json"]) == 1
    assert "Traceback" in capsys.readouterr().err
