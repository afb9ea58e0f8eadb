"""argparse value types: a refused value is argparse's one-line error and exit status 2."""
from __future__ import annotations

import argparse
from typing import Callable


def int_at_least(lowest: int) -> Callable[[str], int]:
    """An int type that refuses values below `lowest` (`--depth -1`, `--thumbnails -2`)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{value}: use {lowest} or more")
        return value
    parse.__name__ = "int"
    return parse


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: a number 0..65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}: use 0..65535")
    return value
