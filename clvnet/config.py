"""Typed configuration: dataclasses filled from YAML and dotted ``key=value`` overrides.

Every config in clvnet is a (possibly nested) dataclass. :func:`load_config` reads a YAML
file, follows its ``defaults:`` list (paths relative to the file, composed in order, the file's
own keys last), applies command-line overrides such as ``model.llm.hidden_size=128`` and
builds the dataclass. Unknown keys and wrongly typed values raise :class:`ConfigError`
naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

T = TypeVar("T")
_EXP_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)")


class ConfigError(ValueError):
    """A configuration key is unknown or its value has the wrong type."""


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A one-line description of a YAML syntax error with its line and column (no traceback)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, composing the files named in its ``defaults:`` list.

    A ``defaults`` entry is either a path (relative to the file) merged at the top level,
    or a one-key mapping ``{section: path}`` merged under ``section``.

    Raises:
        ConfigError: the file is missing, not UTF-8, not valid YAML (with line and column), or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 (byte offset {exc.start})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    defaults = data.pop("defaults", []) or []
    merged: dict[str, Any] = {}
    for entry in defaults:
        if isinstance(entry, str):
            merged = _deep_merge(merged, read_yaml(path.parent / entry))
        elif isinstance(entry, dict) and len(entry) == 1:
            (section, sub), = entry.items()
            merged = _deep_merge(merged, {section: read_yaml(path.parent / sub)})
        else:
            raise ConfigError(f"{path}: bad defaults entry {entry!r}")
    return _deep_merge(merged, data)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1,2]"]`` into a nested dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({yaml_problem(exc)}); "
                              f"quote it to pass a string, e.g. {key}='...'") from None
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def _check_type(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for a in args:
            if a is type(None) and value is None:
                return None
            try:
                return _check_type(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"config key '{key}': value {value!r} does not match {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"config key '{key}': {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"config key '{key}': expected {len(args)} items, got {len(value)}")
            return tuple(_check_type(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        seq = [_check_type(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if origin is tuple else seq
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, str) and _EXP_FLOAT.fullmatch(value.strip()):
            value = float(value)  # PyYAML 1.1 reads "3e-4" (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}': expected a float, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}': expected an int, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"config key '{key}': expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types name the dotted key."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}' (valid keys under '{prefix or '<root>'}': "
            f"{', '.join(sorted(fields))})"
        )
    kwargs = {name: _check_type(value, hints[name], prefix + name) for name, value in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass to a plain, YAML-serialisable dict (tuples become lists)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return typing.cast(dict[str, Any], conv(cfg))


def merge(cfg: T, overrides: dict[str, Any]) -> T:
    """Return a copy of ``cfg`` with nested ``overrides`` applied (type-checked)."""
    return from_dict(type(cfg), _deep_merge(to_dict(cfg), overrides))


def packaged_configs() -> Path:
    """The folder of the YAML configs shipped inside the package (``clvnet/configs``)."""
    return Path(str(importlib.resources.files("clvnet") / "configs"))


def resolve_config(name: str | Path, section: str | None = None) -> Path:
    """A YAML file: ``name`` itself when it exists, else a config shipped in ``clvnet/configs``.

    Shipped configs are found by their path inside that folder, with or without ``.yaml`` and with or
    without a leading ``configs/`` (so ``configs/experiments/quickstart.yaml``, ``experiments/quickstart``
    and, with ``section="experiments"``, ``quickstart`` all name the same file, from any directory).

    Raises:
        ConfigError: nothing matches; the message lists the shipped configs of ``section``.
    """
    path = Path(name)
    if path.is_file():
        return path
    root = packaged_configs()
    rel = str(name).removeprefix("clvnet/").removeprefix("configs/")
    stems = [rel] if rel.endswith((".yaml", ".yml")) else [rel + ".yaml", rel]
    for stem in stems:
        for candidate in ([root / section / stem] if section else []) + [root / stem]:
            if candidate.is_file():
                return candidate
    where = root / section if section else root
    shipped = sorted(str(p.relative_to(where).with_suffix("")) for p in where.rglob("*.yaml"))
    raise ConfigError(f"config file not found: {str(name)!r}, and no shipped config has that name; shipped"
                      f"{' ' + section if section else ''} configs: {', '.join(shipped)}")


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                section: str | None = None) -> T:
    """Defaults of ``cls`` <- YAML file (with its ``defaults:``) <- dotted overrides.

    ``path`` is a file or the name of a shipped config (:func:`resolve_config`, within ``section``).
    """
    data: dict[str, Any] = to_dict(cls()) if _all_defaulted(cls) else {}
    if path is not None:
        data = _deep_merge(data, read_yaml(resolve_config(path, section)))
    data = _deep_merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def _all_defaulted(cls: type) -> bool:
    try:
        cls()
    except TypeError:
        return False
    return True


def save_yaml(cfg: Any, path: str | Path) -> None:
    """Write a dataclass config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
