"""Config values are checked against their declared types at load, TOML and flags alike."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from pydantic import ConfigDict, TypeAdapter

from synshard.api import make_config
from synshard.config import BuildConfig, ConfigError, option_types
from synshard.transforms.options import ResizeSpec

SECTIONS = {"transform": ("resize", "upscale", "format", "quality", "keep_original", "draft",
                          "min_size", "max_aspect", "max_pixels"),
            "dedup": ("label_conflict", "near_radius", "near_conflicts", "near_parallel_above"),
            "splits": ("val_fraction", "test_fraction")}
TOP = ("overwrite", "shard_bytes", "max_per_synset", "limit", "formats", "name", "subtrees",
       "vote_method", "batch_size", "files_per_task", "progress", "num_cpus", "storage_options")
FETCH = ("concurrency", "per_host", "rps_per_host", "total_timeout", "retries", "max_bytes",
         "user_agent", "respect_robots_txt", "allow_private_network", "allowed_networks")


@pytest.mark.parametrize("toml, message", [
    ('overwrite = "false"', 'c.toml: option overwrite = "false": expected true or false'),
    ("resize = 256", "c.toml: option resize = 256: expected a string"),
    ('[dedup]\nnear_radius = "<="', 'option dedup.near_radius = "<=": expected an integer, or none'),
    ("[transform]\nquality = 1.5", "option transform.quality = 1.5: expected an integer"),
    ('sources = ["a", 3]', 'option sources = ["a", 3]: expected a string (item 2)'),
    ("[fetch]\nallow_private_network = 1", "option fetch.allow_private_network = 1: expected true"),
    ("val_fraction = nan", "option val_fraction = NaN: expected a finite number"),
    ('[transform]\nresize = "false"', 'option transform.resize = "false": expected shorter:N'),
])
def test_a_wrong_type_in_the_file_names_key_value_and_expectation(
        tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "c.toml").write_text(toml + "\n")
    with pytest.raises(ConfigError) as info:
        # the flag overrides the file's value: the file is still wrong
        make_config(["src"], "out", config=str(tmp_path / "c.toml"), overwrite=False,
                    resize="none", near_radius=4, quality=80, val_fraction=0.1,
                    fetch_allow_private_network=False)
    assert message in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "c.toml"))


def test_the_file_spellings_that_are_right(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        'formats = "parquet"\nsubtrees = "n00015388"\nstorage_options = {anon = true}\n'
        '[dedup]\nnear_radius = "off"\n[transform]\nresize = "shorter:128"\nmax_aspect = 4\n'
        '[fetch]\nallowed_networks = ["10.0.0.0/8"]\n')
    cfg = make_config(["src"], "out", config=str(tmp_path / "c.toml"))
    assert cfg.formats == ("parquet",) and cfg.subtrees == ("n00015388",)
    assert cfg.dedup.near_radius is None and cfg.transform.resize == ResizeSpec("shorter", 128)
    assert cfg.transform.max_aspect == 4.0 and isinstance(cfg.transform.max_aspect, float)
    assert cfg.fetch.allowed_networks == ("10.0.0.0/8",) and dict(cfg.storage_options) == {
        "anon": True}


@pytest.mark.parametrize("options, key", [
    ({"max_pixels": -1}, "max_pixels"), ({"min_size": -3}, "min_size"),
    ({"max_aspect": 0.5}, "max_aspect"), ({"quality": 0}, "quality"),
    ({"shard_bytes": 10}, "shard_bytes"), ({"overwrite": "false"}, "overwrite"),
    ({"fetch_concurrency": 0}, "concurrency"), ({"val_fraction": 2.0}, "val_fraction"),
    ({"near_parallel_above": -1}, "near_parallel_above"),
])
def test_nonsensical_values_are_refused_at_load_by_name(options: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        make_config(["src"], "out", **options)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


SCALARS = st.one_of(
    st.booleans(), st.integers(min_value=-2**40, max_value=2**40), st.floats(width=32),
    st.sampled_from(["false", "true", "256", "shorter:64", "none", "jpeg", "drop", "keep", "ds",
                     "parquet", "webdataset,parquet", "10.0.0.0/8", "n00015388", "", "x"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.sampled_from(["anon", "key"]), SCALARS, max_size=2))
KEYS = ([(None, k) for k in TOP] + [(s, k) for s, keys in SECTIONS.items() for k in keys]
        + [("fetch", k) for k in FETCH])


def _flat_name(section: str | None, key: str) -> str:
    return f"fetch_{key}" if section == "fetch" else key


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, min_size=1, max_size=6))
@example({("transform", "resize"): "shorter:64", (None, "overwrite"): True})
def test_random_toml_loads_with_declared_types_or_names_the_key(tmp_path: Path, doc: dict) -> None:
    top = [f"{k} = {_toml_value(v)}" for (s, k), v in doc.items() if s is None]
    lines = top + [
        line for section in ("transform", "dedup", "splits", "fetch")
        for line in [f"[{section}]"] + [f"{k} = {_toml_value(v)}"
                                         for (s, k), v in doc.items() if s == section]
    ]
    path = tmp_path / "random.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        cfg = make_config(["src"], "out", config=str(path))
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message
        assert any(k in message for _, k in doc), message  # names a key it was given
        return
    types = option_types()
    strict = ConfigDict(strict=True, arbitrary_types_allowed=True)
    for section, key in doc:
        name = _flat_name(section, key)
        value = _config_value(cfg, section, key)
        declared = types[name]
        if name == "resize":  # a dataclass: pydantic takes no config for it, so check it here
            assert isinstance(value, ResizeSpec), value
            continue
        TypeAdapter(declared, config=strict).validate_python(value)  # of the declared type


def _config_value(cfg: BuildConfig, section: str | None, key: str) -> object:
    holder = {None: cfg, "transform": cfg.transform, "dedup": cfg.dedup, "splits": cfg.splits,
              "fetch": cfg.fetch}[section]
    value = getattr(holder, key)
    return dict(value) if key == "storage_options" else value


PLAIN = [0, 7, -3, 2**70, 0.5, -1e300, "", "shorter:64", "x", True, False, None, (), ("a", "b"),
         ("a", 1), (1.5,), float("inf"), float("nan"), [1], {"a": 1}, "webdataset",
         ("webdataset", "parquet"), ("parquet",), "ds", "auto", 1.0]


@pytest.mark.parametrize("name", sorted(option_types()))
def test_a_value_taken_without_pydantic_is_what_pydantic_returns(name: str) -> None:
    """config_types._plainly skips pydantic only where strict checking would return the value
    itself, unchanged (so the usual flags need no pydantic: ~0.07 s of every build)."""
    from synshard.config_types import _adapter, _plainly

    declared = option_types()[name]
    for value in PLAIN:
        if _plainly(value, declared):
            checked = _adapter(declared).validate_python(value)
            assert checked == value and type(checked) is type(value), (name, value)


def test_the_usual_values_are_taken_as_they_are() -> None:
    from synshard.config_types import _plainly

    types = option_types()
    assert all(_plainly(v, types[n]) for n, v in [
        ("quality", 90), ("num_cpus", 2), ("num_cpus", None), ("progress", False),
        ("formats", ("webdataset", "parquet")), ("vote_method", "ds"), ("out", "out"),
        ("subtrees", ("n01440764",)), ("val_fraction", 0.1)])
    assert not any(_plainly(v, types[n]) for n, v in [
        ("quality", True), ("quality", 90.0), ("progress", 1), ("formats", ("tar",)),
        ("vote_method", "DS"), ("val_fraction", float("nan")), ("subtrees", ["n01440764"])])


def test_a_build_from_the_usual_flags_imports_no_pydantic() -> None:
    code = ("import sys; from synshard.api import make_config; "
            "make_config(['src'], 'out', resize='shorter:256', quality=90, num_cpus=2, "
            "progress=False, formats=('webdataset',), subtrees=('n01440764',)); "
            "print('pydantic' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "False"
