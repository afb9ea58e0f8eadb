"""Every option's value checked against its declared type when the config is loaded.

The types are the annotations of the option dataclasses (`BuildConfig`, `TransformOptions`, ...),
checked strictly with pydantic's `TypeAdapter` (strict mode: `"false"` is not a bool, `1.5` not
an int, `true` not a number), so a TOML value of the wrong type is refused by name before any
other check or work, instead of counting as true (`overwrite = "false"`) or failing later inside
a Ray task. pydantic (already in the environment through Ray) is used for the checking itself:
it covers `Literal`s, unions and tuples with exact, tested rules and messages. It is in the
`build` extra and imported only when a value is not already exactly of its declared type (a
flag's usual value is taken as it is: `_plainly`), so the core install's reading commands
(`info`, `get`, ...), which import the config through the API, never need it.

TOML has arrays, not tuples: an array is accepted where a tuple is declared, and a lone string
where a tuple of strings is (one source, one subtree). `resize` is a string (`shorter:256`) and
`near_radius` an integer or `none`/`off`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from functools import lru_cache
from typing import Any, Mapping

from synshard.errors import SynshardError
from synshard.transforms.options import ResizeSpec



class ConfigTypeError(SynshardError):
    """A config value of the wrong type (a `ConfigError` re-raises it with its origin)."""


def field_types(classes: Mapping[str, type], skip: frozenset[str] = frozenset()
                ) -> dict[str, Any]:
    """{flat option name: declared type} of the dataclasses, by the prefix of their flat names."""
    found: dict[str, Any] = {}
    for prefix, cls in classes.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in skip:
                found[prefix + f.name] = hints[f.name]
    return found


def check_value(name: str, value: Any, declared: Any, shown: str | None = None) -> Any:
    """`value` as the option `name` wants it (arrays as tuples...), or ConfigTypeError naming
    the option (`shown`, as the user spelled it), the value and what was expected."""
    value = _toml_form(name, value, declared)
    if name == "resize" and isinstance(value, ResizeSpec):
        return value
    if name == "resize" and isinstance(value, str):
        try:
            return ResizeSpec.parse(value)
        except SynshardError:
            raise ConfigTypeError(f"option {shown or name} = {_shown(value)}: expected "
                                  "shorter:N, longer:N, center-crop:N or none") from None
    if name == "near_radius" and isinstance(value, str) and value.lower() in NO_NEAR_DEDUP:
        return value  # the config builder turns it into None
    if name == "resize":
        declared = str  # what a file or a flag should have given
    if _plainly(value, declared):
        return value
    from pydantic import ValidationError  # the build extra's: reading commands never load it

    try:
        return _adapter(declared).validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f" (item {p + 1})" for p in first["loc"] if isinstance(p, int))
        expected = _EXPECTED.get(first["type"]) or first["msg"].removeprefix("Input should be ")
        if name == "near_radius":
            expected = "an integer, or none"
        raise ConfigTypeError(
            f"option {shown or name} = {_shown(value)}: expected {expected}{where}"
        ) from None


_PLAIN = (bool, int, float, str)


def _plainly(value: Any, declared: Any) -> bool:
    """`value` is already what strict checking would return unchanged: exactly the declared
    plain type (a bool is no int; a float finite), one of a Literal's values (of its type),
    None where the type is optional, or a tuple of such. The flags' usual values need no
    pydantic then (~0.07 s to import it and build the adapters, before a build's workers
    start)."""
    if declared in _PLAIN:
        return type(value) is declared and (declared is not float or math.isfinite(value))
    origin, args = typing.get_origin(declared), typing.get_args(declared)
    if origin in (typing.Union, types.UnionType):
        return any(a is type(None) and value is None or _plainly(value, a) for a in args)
    if origin is typing.Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return type(value) is tuple and all(_plainly(v, args[0]) for v in value)
    return False


NO_NEAR_DEDUP = ("none", "off")
_EXPECTED = {  # pydantic error types -> what to write instead, in TOML's words
    "bool_type": "true or false", "int_type": "an integer", "float_type": "a number",
    "string_type": "a string", "tuple_type": "a list", "dict_type": "a table",
    "mapping_type": "a table", "finite_number": "a finite number",
}


def _toml_form(name: str, value: Any, declared: Any) -> Any:
    """The spellings TOML and flags give for a declared type: arrays for tuples, one string for
    a tuple of strings, `webdataset,parquet` for the shard formats."""
    if typing.get_origin(declared) is tuple:
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",")) if name == "formats" else (value,)
        if isinstance(value, list):
            return tuple(value)
    return value


@lru_cache(maxsize=None)
def _adapter(declared: Any) -> Any:
    from pydantic import ConfigDict, TypeAdapter

    strict = ConfigDict(strict=True, arbitrary_types_allowed=True, allow_inf_nan=False)
    return TypeAdapter(declared, config=strict)


def _shown(value: Any) -> str:
    """The value as TOML spells it (`true`, `"false"`, `[1, "a"]`), cut when long."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
