"""The one exception type the CLI turns into a one-line message; every layer's errors subclass it
(`ConfigError`, `ManifestError`, `ShardError`, ...). At the root of the import tree, so that any
module can raise it without importing a layer it does not otherwise need."""


class SynshardError(Exception):
    """A user-facing error: a bad option, a missing source, a release that cannot be written."""
