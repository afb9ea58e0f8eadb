"""The one exception type the CLI turns into a one-line message; every layer's errors subclass it
(`ConfigError`, `ManifestError`, `ShardError`, ...). At the root of the import tree, so that any
module can raise it without importing a layer it does not otherwise need."""


class SynshardError(Exception):
    """A user-facing error: a bad option, a missing source, a release that cannot be written."""


class UsageError(SynshardError):
    """The command was asked wrongly (an option's value, a missing --out): exit status 2, like a
    flag argparse refuses, so that a script can tell a bad call from a failed build (exit 1)."""
