"""synshard.shards: shard writers and readers, the manifest, releases and the training loader.

Importing this package needs neither Ray nor torch (the torch and Ray Data adapters live in
`torch_adapter` and `ray_adapter` and import those only when used). `ShardDataset` is loaded on
first use, so the build's writers do not pay for the loader's imports.
"""

from typing import Any

__all__ = ["ShardDataset"]


def __getattr__(name: str) -> Any:
    if name == "ShardDataset":
        from .loader import ShardDataset

        return ShardDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
