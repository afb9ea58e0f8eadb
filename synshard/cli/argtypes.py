"""argparse value types: a refused value is argparse's one-line error and exit status 2."""
from __future__ import annotations

import argparse
from typing import Callable


def int_range(lowest: int, highest: int | None = None,
              what: str = "int value") -> Callable[[str], int]:
    """An int type that refuses values outside lowest..highest (`--depth -1`, `--port 99999`)."""
    allowed = f"use {lowest}..{highest}" if highest is not None else f"use {lowest} or more"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: {allowed}") from None
        if value < lowest or (highest is not None and value > highest):
            raise argparse.ArgumentTypeError(f"{value}: {allowed}" if highest is None
                                             else f"invalid {what} {value}: {allowed}")
        return value
    parse.__name__ = "int"
    return parse


def int_at_least(lowest: int) -> Callable[[str], int]:
    return int_range(lowest)


port = int_range(0, 65535, "port")  # 0: any free port
