"""The command line. `app` parses and runs (one clear line per failure); each command group has
its module: `synsets` (synsets, tree, votes), `release` (diff, report), `explore` (get, serve),
`leakage`; `summary` prints a finished build and a committed release for the terminal.
"""
from typing import Any, NoReturn, Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from synshard.cli.app import main as run_main

    return run_main(argv)


def run() -> NoReturn:
    """The `synshard` console script and `python -m synshard.cli`: `main`, then `exit_now` (a
    process's end without the interpreter's teardown; `main` itself returns, for callers in a
    process that goes on). pyarrow is told once that pandas is not there (nothing a command runs
    uses it): it would import it on the first `pa.array`, 0.13-0.15 s of every command."""
    from synshard.builder.nopandas import arrow_ignores_pandas
    from synshard.cli.app import exit_now, main as run_main

    arrow_ignores_pandas()
    exit_now(run_main())


__all__ = ["main", "run"]


def __getattr__(name: str) -> Any:  # `synshard.cli.make_parser` etc., as before the move
    import importlib

    app = importlib.import_module("synshard.cli.app")
    if name.startswith("_") or not hasattr(app, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(app, name)
