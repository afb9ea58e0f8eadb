"""The Python API: what the CLI calls, with the same options, for scripts and notebooks.

    import synshard
    result = synshard.build(["data/train", "imagenet_train.tar"], out="/data/releases/r1",
                            resize="shorter:256", val_fraction=0.02)
    problems = synshard.verify("/data/releases/r1")
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Sequence

from synshard.config import BuildConfig, config_with_file, load_toml
from synshard.shards.release import Release, open_release
from synshard.shards.verify import Problem, verify_release

if TYPE_CHECKING:  # Ray is imported only when a build runs
    from synshard.builder.pipeline import BuildResult


def make_config(sources: Sequence[str], out: str, config: str | None = None,
                **options: Any) -> BuildConfig:
    """TOML file first (when given), then keyword options on top; validated."""
    overrides: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if sources:
        overrides["sources"] = list(sources)
    if out:
        overrides["out"] = out
    cfg = config_with_file(load_toml(config) if config else {}, config, overrides)
    from synshard.builder.inputs import absolute_uri  # sources by one spelling (votes match them)

    return dataclasses.replace(cfg, sources=tuple(absolute_uri(s) for s in cfg.sources))


def build(sources: Sequence[str] = (), out: str = "", config: str | None = None,
          log: Callable[[str], None] = print, **options: Any) -> BuildResult:
    """Build a release; returns a BuildResult (uri, noop, accounting, counts, stats)."""
    from synshard.builder.pipeline import run_build  # Ray is imported only when a build runs

    cfg = make_config(sources, out, config, **options)
    _check_out(cfg)
    return run_build(cfg, log=log)


def _check_out(cfg: BuildConfig) -> None:
    """The output is a folder (made if missing) or an object-store prefix, never a file."""
    from synshard.config import ConfigError
    from synshard.shards.release import release_fs

    fs, root = release_fs(cfg.out, dict(cfg.storage_options))
    if fs.isfile(root):
        raise ConfigError(f"--out {cfg.out} is a file: the release is a folder (it is created "
                          "if missing) or an s3:// prefix")


def info(uri: str, storage_options: dict | None = None) -> Release:
    return open_release(uri, storage_options)


def verify(uri: str, quick: bool = False, storage_options: dict | None = None) -> list[Problem]:
    return verify_release(uri, quick=quick, storage_options=storage_options)
