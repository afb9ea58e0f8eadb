"""The error base class lives at the root: `synshard.errors.SynshardError` (re-exported here for
the modules that have always imported it from this place)."""
from synshard.errors import SynshardError

__all__ = ["SynshardError"]
