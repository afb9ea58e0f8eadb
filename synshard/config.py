"""Build configuration: TOML and command-line flags -> one frozen `BuildConfig`, built once here.

Nothing below the app reads the environment or globals: the parts get their own option
dataclasses (`TransformOptions`, `DedupOptions`, `SplitOptions`) from this config.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from synshard.config_types import ConfigTypeError, check_value, field_types
from synshard.ingest.fetch_options import FetchOptions
from synshard.shards.splits import SplitOptions
from synshard.synsets.subsets import SynsetFilter
from synshard.errors import SynshardError, UsageError
from synshard.transforms.options import DedupOptions, TransformOptions

ShardFormat = Literal["webdataset", "parquet"]
SHARD_FORMATS = ("webdataset", "parquet")


class ConfigError(UsageError):
    """A bad option in a config file or on the command line (exit status 2)."""


# Release names: printed raw in DATASHEET.md's heading, the report and terminal summaries.
RELEASE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def check_release_name(name: str, derived: bool = False) -> str:
    """`name` if it is a valid release name (a letter or digit, then letters, digits, `.`, `_`,
    `+`, `-`; at most 100), else ConfigError (for a name `derived` from the output folder, with
    the advice to give --name)."""
    if RELEASE_NAME.fullmatch(name):
        return name
    origin = " (the output folder's name; give --name NAME)" if derived else ""
    raise ConfigError(f"bad release name {name[:60]!r}{origin}: use letters, digits, '.', '_', "
                      "'+' and '-' (starting with a letter or digit, at most 100)")


@dataclass(frozen=True)
class BuildConfig:
    out: str
    sources: tuple[str, ...] = ()
    transform: TransformOptions = TransformOptions()
    dedup: DedupOptions = DedupOptions()
    splits: SplitOptions = SplitOptions()
    fetch: FetchOptions = FetchOptions()
    formats: tuple[ShardFormat, ...] = SHARD_FORMATS  # type: ignore[assignment]
    shard_bytes: int = 256 * 1024 * 1024
    max_per_synset: int | None = None
    limit: int | None = None
    labels: str | None = None  # CSV file,synset for flat folders/tars
    classes: str | None = None  # pinned class list: a file of wnids, or a named list
    subset: str | None = None  # keep only a named class list's synsets (ilsvrc2012)
    subtrees: tuple[str, ...] = ()  # keep only synsets under these wnids
    exclude_subtrees: tuple[str, ...] = ()  # drop synsets under these wnids
    votes: str | None = None  # crowd votes table (image, synset, worker, vote)
    vote_method: Literal["ds", "mv"] = "ds"
    min_confidence: float | None = None  # reject images whose label posterior is below this
    boxes: str | None = None  # PASCAL VOC XML folder <wnid>/<stem>.xml for folder/tar sources
    base: str | None = None  # an earlier release: its samples carry over, its shards are reused
    remove: str | None = None  # takedown list: keys, sources or sha256s, one per line
    remove_like: tuple[str, ...] = ()  # images (folders/tars): remove their near duplicates
    dedup_against: tuple[str, ...] = ()  # releases / eval sets: drop new near copies of them
    name: str | None = None
    # Run options: they do not change the release's content.
    overwrite: bool = False
    ray_address: str | None = None
    num_cpus: int | None = None
    # "auto": a local build (Linux) runs in worker processes forked from this one, no Ray;
    # elsewhere an embedded Ray starts only once the work is more than this process would do
    # in about Ray's start-up time (synshard/builder/pipeline.py); "always": an embedded Ray,
    # started beside planning
    embedded_ray: Literal["auto", "always"] = "auto"
    batch_size: int = 64
    files_per_task: int = 256  # files of a folder source per read task
    progress: bool = True
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sources and not self.base:
            raise ConfigError("no sources given")
        if self.name is not None:
            check_release_name(self.name)
        bad = [f for f in self.formats if f not in SHARD_FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"bad formats {bad or self.formats}: use {', '.join(SHARD_FORMATS)}")
        if self.shard_bytes < 1024:
            raise ConfigError(f"shard_bytes {self.shard_bytes} is too small (at least 1024)")
        if self.vote_method not in ("ds", "mv"):
            raise ConfigError(f"bad vote_method {self.vote_method!r}: ds or mv")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(f"min_confidence must be within [0, 1], got {self.min_confidence}")
        if self.embedded_ray not in ("auto", "always"):
            raise ConfigError(f"bad embedded_ray {self.embedded_ray!r}: auto or always")
        if self.min_confidence is not None and self.votes is None:
            raise ConfigError("min_confidence needs votes (--votes VOTES)")
        for name in ("max_per_synset", "limit", "num_cpus", "batch_size", "files_per_task"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")

    def content(self) -> dict[str, Any]:
        """The options that change the release's bytes (recorded in the manifest)."""
        return {
            "sources": sorted(self.sources),
            "transform": {**dataclasses.asdict(self.transform),
                          "resize": str(self.transform.resize)},
            "dedup": {k: v for k, v in dataclasses.asdict(self.dedup).items()
                      if k != "near_parallel_above"},  # where the join runs: same bytes
            "splits": dataclasses.asdict(self.splits),
            "formats": sorted(self.formats),
            "shard_bytes": self.shard_bytes,
            "max_per_synset": self.max_per_synset,
            "limit": self.limit,
            "labels": self.labels,
            "classes": self.classes,
            "synsets": {"subset": self.subset, "subtrees": sorted(self.subtrees),
                        "exclude_subtrees": sorted(self.exclude_subtrees)},
            "votes": {"uri": self.votes, "method": self.vote_method,
                      "min_confidence": self.min_confidence},
            "boxes": self.boxes,
            "base": self.base,
            "remove": self.remove,
            "remove_like": sorted(self.remove_like),
            "dedup_against": sorted(self.dedup_against),
            "fetch": {"allow_private_network": self.fetch.allow_private_network,
                      "allowed_networks": sorted(self.fetch.allowed_networks),
                      "max_bytes": self.fetch.max_bytes,
                      "respect_robots_txt": self.fetch.respect_robots_txt,
                      "respect_x_robots_tag": self.fetch.respect_x_robots_tag},
        }

    def release_name(self, root: str) -> str:
        """The release's name: `name`, else the name of the output folder `root`, checked."""
        if self.name is not None:
            return self.name
        return check_release_name(root.rstrip("/").rsplit("/", 1)[-1], derived=True)

    def synset_filter(self) -> SynsetFilter:
        return SynsetFilter(self.subset, tuple(self.subtrees), tuple(self.exclude_subtrees))

    def run_options(self) -> dict[str, Any]:
        """The options that do not change the content (recorded in build.json)."""
        fetch = dataclasses.asdict(self.fetch)
        return {"out": self.out, "overwrite": self.overwrite, "ray_address": self.ray_address,
                "num_cpus": self.num_cpus, "embedded_ray": self.embedded_ray,
                "batch_size": self.batch_size,
                "files_per_task": self.files_per_task, "fetch": fetch}


# Flat option names (CLI flags and the API's keyword arguments) -> where they live.
_TRANSFORM_KEYS = {f.name for f in dataclasses.fields(TransformOptions)}
_DEDUP_KEYS = {f.name for f in dataclasses.fields(DedupOptions)}
_SPLIT_KEYS = {f.name for f in dataclasses.fields(SplitOptions)}
# Fetch options live in [fetch]; as flat flags they carry a `fetch_` prefix (fetch_concurrency).
_FETCH_KEYS = {f"fetch_{f.name}" for f in dataclasses.fields(FetchOptions)}
_NESTED = {"transform", "dedup", "splits", "fetch"}
_TOP_KEYS = {f.name for f in dataclasses.fields(BuildConfig)} - _NESTED
_SECTIONS = {"transform": _TRANSFORM_KEYS, "dedup": _DEDUP_KEYS, "splits": _SPLIT_KEYS,
             "fetch": {k.removeprefix("fetch_") for k in _FETCH_KEYS}}


def option_types() -> dict[str, Any]:
    """{flat option name: its declared type}, for every option a file or a flag can set."""
    if not _TYPES:
        _TYPES.update(field_types({"": BuildConfig}, skip=frozenset(_NESTED)))
        for cls in (TransformOptions, DedupOptions, SplitOptions):
            _TYPES.update(field_types({"": cls}))
        _TYPES.update(field_types({"fetch_": FetchOptions}))
    return _TYPES


_TYPES: dict[str, Any] = {}


def _checked(name: str, value: Any, shown: str, where: str | None) -> Any:
    try:
        return check_value(name, value, option_types()[name], shown)
    except ConfigTypeError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None


def load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    return flatten(data, where=path)


def flatten(data: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """`{"transform": {"quality": 85}, "out": ...}` -> `{"quality": 85, "out": ...}`, strictly:
    unknown keys and values of the wrong type (checked now, as the file spells them) are errors."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        key = key.replace("-", "_")
        if key in _SECTIONS and isinstance(value, Mapping):
            for sub, subvalue in value.items():
                sub = sub.replace("-", "_")
                if sub not in _SECTIONS[key]:
                    raise ConfigError(f"{where}: unknown option {key}.{sub}{did_you_mean(sub)}")
                name = f"fetch_{sub}" if key == "fetch" else sub
                _checked(name, subvalue, f"{key}.{sub}", where)  # the file's own value, now
                flat[name] = subvalue
        elif key in _TOP_KEYS or key in _FETCH_KEYS or any(
                key in keys for name, keys in _SECTIONS.items() if name != "fetch"):
            _checked(key, value, key, where)
            flat[key] = value
        else:
            raise ConfigError(f"{where}: unknown option {key}{did_you_mean(key)}")
    return flat


def build_config(options: Mapping[str, Any]) -> BuildConfig:
    """Flat options (TOML flattened, then flags on top) -> BuildConfig, validating every value:
    its type first (every option, before anything else), then ranges and combinations."""
    opts = {k.replace("-", "_"): _path_text(v) for k, v in options.items() if v is not None}
    unknown = set(opts) - _TOP_KEYS - _TRANSFORM_KEYS - _DEDUP_KEYS - _SPLIT_KEYS - _FETCH_KEYS
    if unknown:
        first = sorted(unknown)[0]
        raise ConfigError(f"unknown option {first}{did_you_mean(first)}")
    opts = {name: _checked(name, value, name, None) for name, value in opts.items()}
    if isinstance(opts.get("near_radius"), str):  # `none` / `off`, as checked
        opts["near_radius"] = None
    try:
        transform = TransformOptions(**{k: opts.pop(k) for k in list(opts) if k in _TRANSFORM_KEYS})
        dedup = DedupOptions(**{k: opts.pop(k) for k in list(opts) if k in _DEDUP_KEYS})
        splits = SplitOptions(**{k: opts.pop(k) for k in list(opts) if k in _SPLIT_KEYS})
        fetch = FetchOptions(**{k.removeprefix("fetch_"): opts.pop(k)
                                for k in list(opts) if k in _FETCH_KEYS})
        if "out" not in opts:
            raise ConfigError("no output given (--out URI)")
        return BuildConfig(transform=transform, dedup=dedup, splits=splits, fetch=fetch, **opts)
    except ConfigError:
        raise
    except SynshardError as e:  # a range or combination the option dataclasses refuse
        raise ConfigError(str(e)) from None


def config_with_file(file_options: Mapping[str, Any], path: str | None,
                     overrides: Mapping[str, Any]) -> BuildConfig:
    """`build_config` of a config file's options with `overrides` (flags) on top. A range or
    combination error that the file's own values cause names the file, as type errors do."""
    merged = {**file_options, **overrides}
    try:
        return build_config(merged)
    except ConfigError as exc:
        if path and file_options:
            alone = {**{k: v for k, v in merged.items() if k in ("sources", "out")},
                     **file_options}  # the file's own values
            try:
                build_config(alone)
            except ConfigError as own:
                if str(own) == str(exc):
                    raise ConfigError(f"{path}: {exc}") from None
        raise


# Flags whose config key is spelled otherwise (`synshard build --help` names the flags): an
# unknown key that is one of these is answered with the key to use.
FLAG_KEYS = {
    "image_format": "transform.format", "shard_size": "shard_bytes",
    "subtree": "subtrees", "exclude_subtree": "exclude_subtrees",
    "allow_private_network": "fetch.allow_private_network",
    "allow_network": "fetch.allowed_networks", "no_robots_txt": "fetch.respect_robots_txt = false",
    "no_x_robots_tag": "fetch.respect_x_robots_tag = false", "no_draft": "transform.draft = false",
    "no_progress": "progress = false", "config": "(a flag only)",
}


def did_you_mean(key: str) -> str:
    """`; use KEY` for a flag's spelling, `; did you mean KEY?` for a near miss, else ''."""
    import difflib

    key = key.replace("-", "_")
    if key.startswith("fetch_") and key.removeprefix("fetch_") in FLAG_KEYS:
        key = key.removeprefix("fetch_")
    if key in FLAG_KEYS:
        return f" (the flag --{key.replace('_', '-')}); in a config file: {FLAG_KEYS[key]}"
    known = [f"{section}.{name}" for section, names in _SECTIONS.items() for name in names]
    known += sorted(_TOP_KEYS)
    by_name = {k.rsplit(".", 1)[-1]: k for k in known}
    close = difflib.get_close_matches(key, list(by_name), n=1, cutoff=0.75)
    return f"; did you mean {by_name[close[0]]}?" if close else ""


def _path_text(value: Any) -> Any:
    """Paths given to the API (`pathlib.Path`) as the strings the options declare."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return type(value)(os.fspath(v) if isinstance(v, os.PathLike) else v for v in value)
    return value
