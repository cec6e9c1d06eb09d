"""YAML configs onto dataclasses: the dataclasses are the one source of defaults and help
texts; a YAML file and `key=value` overrides (OmegaConf dot-list syntax) only change values.
Unknown keys and wrong types fail with the full dotted key named."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigKeyError(ValueError):
    """A config key that does not exist or holds the wrong type; names the dotted key."""


def load_config(cls: type[T], path: str | Path | None = None,
                overrides: list[str] | None = None) -> T:
    """Build `cls` from a YAML file (optional) with `a.b=value` overrides applied on top."""
    from omegaconf import OmegaConf

    merged = OmegaConf.create({})
    if path is not None:
        if not Path(path).exists():
            raise FileNotFoundError(f"config file not found: {path}")
        merged = OmegaConf.merge(merged, OmegaConf.load(path))
    if overrides:
        merged = OmegaConf.merge(merged, parse_overrides(overrides))
    return from_dict(cls, OmegaConf.to_container(merged, resolve=True) or {})


def parse_overrides(items: list[str], what: str = "override",
                    example: str = "optim.lr=1e-5") -> dict[str, Any]:
    """`a.b=value` items -> a nested dict, values read as YAML (OmegaConf's dot-list): the
    one `key=value` parser of every command."""
    from omegaconf import OmegaConf

    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ConfigKeyError(f"{what} '{item}' is not key=value (e.g. {example})")
    return OmegaConf.to_container(OmegaConf.from_dotlist(list(items))) or {}


def check_keys(cls: type, keys: Iterable[str], where: str = "", prefix: str = "",
               error: type[Exception] = ConfigKeyError) -> None:
    """The one unknown-key check of every config: the first of `keys` that is no field of
    dataclass `cls` is an `error` naming it (`where: ` first, `prefix` on the key) and listing
    the valid keys."""
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise error(f"{f'{where}: ' if where else ''}unknown key '{prefix}{unknown[0]}'; "
                    f"valid keys: {', '.join(known)}")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Recursively build dataclass `cls` from plain data; errors name the dotted key."""
    if not isinstance(data, dict):
        raise ConfigKeyError(f"'{prefix.rstrip('.') or cls.__name__}' must be a mapping, "
                             f"got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    check_keys(cls, sorted(data), prefix=prefix)
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        where = f" (in '{prefix.rstrip('.')}')" if prefix else ""
        raise ConfigKeyError(f"{err}{where}") from err


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_keys(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """`(dotted key, type, default, help)` of every leaf of dataclass `cls`, nested
    dataclasses flattened (`optim.lr`): what `--help` lists."""
    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        hint = hints[f.name]
        default = (f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else f.default)
        if dataclasses.is_dataclass(hint):
            keys += config_keys(hint, f"{prefix}{f.name}.")
            continue
        kind = (str(hint).replace("typing.", "") if typing.get_origin(hint)
                else getattr(hint, "__name__", str(hint)))
        keys.append((f"{prefix}{f.name}", kind,
                     None if default is dataclasses.MISSING else default,
                     f.metadata.get("help", "")))
    return keys


def config_parser(prog: str, description: str, cls: type):
    """The `--config FILE key=value ...` parser every dataclass-configured command uses; its
    `--help` lists every key with type, default and help text."""
    import argparse
    import textwrap

    lines = ["config keys (set in the YAML or as key=value):"]
    for key, kind, default, text in config_keys(cls):
        lines.append(f"  {key} ({kind}, default {default!r})")
        lines += textwrap.wrap(text, 88, initial_indent="      ", subsequent_indent="      ")
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     epilog="\n".join(lines),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (keys of the config dataclasses)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=1e-5")
    return parser


def add_flags(parser: Any, cls: type, exclude: tuple[str, ...] = ()) -> None:
    """One `--flag` per field of the flat dataclass `cls` (but `exclude`), for the commands
    whose settings are flags (eval, data synth, data convert): type, default, help text,
    `required` and `choices` come from the field, so the dataclass stays the one source of
    each. A bool defaulting to False is `--name`, one defaulting to True is `--no-name`; a
    list is `--name A B` and extends when given twice. Unset flags stay None, so
    `flag_values` passes only what the user gave."""
    hints = typing.get_type_hints(cls)
    for key, kind, default, text in config_keys(cls):
        if key in exclude:
            continue
        meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == key)
        flag = "--" + key.replace("_", "-")
        if hints[key] is bool:
            flag = "--no-" + key.replace("_", "-") if default else flag
            parser.add_argument(flag, dest=key, action="store_false" if default else "store_true",
                                default=None, help=text)
            continue
        hint = hints[key]
        many = typing.get_origin(hint) is list
        scalar = next(t for t in (typing.get_args(hint) if many or typing.get_origin(hint)
                                  else (hint,)) if t is not type(None))
        shown = (f"{text} ({kind}, default {default!r})" if default not in (None, "", [])
                 else f"{text} ({kind})")
        parser.add_argument(flag, dest=key, type=scalar, nargs="+" if many else None,
                            action="extend" if many else "store", default=None,
                            required=meta.get("required", False), choices=meta.get("choices"),
                            metavar=meta.get("metavar"), help=shown)


def flag_values(args: Any, cls: type) -> dict[str, Any]:
    """The fields of `cls` the user set on the command line (see `add_flags`)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}


def parse_config_args(argv: list[str] | None, prog: str, description: str, cls: type[T]) -> T:
    """`cls` from `--config FILE` and `key=value` arguments (see `config_parser`)."""
    args = config_parser(prog, description, cls).parse_args(argv)
    return load_config(cls, args.config, args.overrides)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except ConfigKeyError as err:
                errors.append(str(err))
        raise ConfigKeyError(errors[0])
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigKeyError(f"config key '{key}' must be a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigKeyError(f"config key '{key}' must be a mapping, got {value!r}")
        return {k: _coerce(args[1] if args else Any, v, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigKeyError(f"config key '{key}' must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigKeyError(f"config key '{key}' must be a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigKeyError(f"config key '{key}' must be a number, got {value!r}") from None
        if hint is int:
            if not number.is_integer():
                raise ConfigKeyError(f"config key '{key}' must be an integer, got {value!r}")
            return int(number)
        return number
    if hint is str:
        if isinstance(value, dict | list):
            raise ConfigKeyError(f"config key '{key}' must be a string, got {value!r}")
        return str(value)
    return value
