"""synshard: build, verify and stream ImageNet-style image datasets keyed by WordNet synsets.

`synshard.build`, `synshard.info` and `synshard.verify` are the Python API (see synshard.api);
they are imported lazily so that `import synshard.shards` (the training loader) stays light.
"""
__version__ = "0.1.0"

__all__ = ["build", "info", "verify", "__version__"]


def __getattr__(name: str):
    if name in ("build", "info", "verify", "make_config"):
        from synshard import api

        return getattr(api, name)
    raise AttributeError(f"module 'synshard' has no attribute {name!r}")
