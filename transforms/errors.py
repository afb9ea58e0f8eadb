"""The one exception type the CLI turns into a one-line message (the parts below it subclass it)."""


class SynshardError(Exception):
    """A user-facing error: a bad option, a missing source, a release that cannot be written."""
