"""`synshard --help` and every subcommand's `--help`: each argument says what it is."""
from __future__ import annotations

import argparse
from typing import Iterator

from synshard.cli.app import make_parser


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_argument_and_command_has_help() -> None:
    missing = []
    for parser in _parsers(make_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{parser.prog} {c.dest}" for c in action._choices_actions
                            if not c.help]
            elif not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []  # before: 24 of them, from `build SOURCE` and `--overwrite` to `info uri`


def test_the_top_level_help_is_for_users(capsys) -> None:
    parser = make_parser()
    text = parser.format_help()
    assert "Build, verify and stream" in text and "synshard demo" in text
    assert "thin layer" not in text  # was the module's docstring, written for developers
