"""Options by name: `key=value` overrides (leaf names or dotted paths) and each option's help text.

`field_help("propagation.blend_mode")` is the attribute docstring written under that field in
`rerender.config.sections`; the CLI's `--help`, the web page's info texts and the docs' configuration
reference all read it from there.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import textwrap
import typing
from collections.abc import Mapping
from typing import Any

from rerender.config.convert import (
    _nearest,
    _to_plain,
    config_from_dict,
    config_to_dict,
    other_tools_option,
    value_from_text,
)
from rerender.config.sections import FAMILY_DEFAULTS, VARIANT_NAMES, ControlConfig, RerenderConfig
from rerender.errors import ConfigError

__all__ = [
    "parse_override",
    "apply_overrides",
    "field_help",
    "family_defaults_text",
    "field_type",
    "field_default",
    "field_docstrings",
    "option_paths",
]


# --------------------------------------------------------------------------------------------------------
# overrides
# --------------------------------------------------------------------------------------------------------


def _leaf_paths() -> dict[str, str]:
    """Map each leaf option name to its dotted path (`denoising_strength` → `sampling.denoising_strength`); a name
    that two sections use means the first section's (`device` → `model.device`, not `propagation.device`)."""
    paths: dict[str, str] = {}
    for section in dataclasses.fields(RerenderConfig):
        section_type = typing.get_type_hints(RerenderConfig)[section.name]
        if dataclasses.is_dataclass(section_type):
            for leaf in dataclasses.fields(section_type):
                paths.setdefault(leaf.name, f"{section.name}.{leaf.name}")
    return paths


def _all_paths() -> list[str]:
    paths = list(_leaf_paths().values())
    paths += [f"control.{f.name}" for f in dataclasses.fields(ControlConfig)]
    return paths


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass inside an annotation such as `FreeUConfig | None`, if there is one."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    for argument in typing.get_args(annotation):
        if dataclasses.is_dataclass(argument):
            return argument
    return None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a CLI override `key=value`; the value is read by the option's type as a job list's cell is
    (`rerender.config.convert.value_from_text`: `0.5`, `1e6`, `true`, `[0, 10]`, `null`; text options keep the text),
    or as YAML for a key that names no single option (`control.0.model`, an unknown key: `apply_overrides` reads it).

    Raises:
        ConfigError: no `=` in `text`, or a value that is not of the option's type (naming `key` as typed).
    """
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"an override must look like key=value (e.g. denoising_strength=0.6), got {text!r}")
    key = key.strip()
    try:
        annotation = field_type(key)
    except ConfigError:
        annotation = None
    if annotation is not None:
        return key, value_from_text(raw, annotation, key)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _suggest_option(key: str, leaves: Mapping[str, str]) -> str:
    """The nearest option name to an unknown override `key`, or a short pointer (never the ~130 names)."""
    meant = other_tools_option(key)
    if meant is not None:
        return f"; did you mean {meant!r}?"
    candidates = list(leaves) + _all_paths()
    section, _, rest = key.partition("_")  # `propagation_device`: the section joined by "_" instead of "."
    section_type = _dataclass_of(typing.get_type_hints(RerenderConfig).get(section))
    if section_type is not None and rest in {field.name for field in dataclasses.fields(section_type)}:
        return f"; did you mean '{section}.{rest}'?"
    matches = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if not matches:  # `sampling.strenght`: compare the last part with the leaf names
        matches = [leaves[m] for m in difflib.get_close_matches(key.rpartition(".")[2], list(leaves), n=1, cutoff=0.6)]
    if matches:
        return f"; did you mean {matches[0]!r}?"
    sections = ", ".join(f.name for f in dataclasses.fields(RerenderConfig))
    return (
        f"; no option has a similar name (give a leaf name such as denoising_strength, or SECTION.NAME with a "
        f"section among {sections}; `rerender config show` lists every option)"
    )


def apply_overrides(config: RerenderConfig, overrides: Mapping[str, Any]) -> RerenderConfig:
    """Return a copy of `config` with options replaced; keys are leaf names or dotted paths.

    `control.strength=0.7` (or `control_strength`) sets every ControlNet; `control.1.strength` one of them.

    Raises:
        ConfigError: an unknown key (with the nearest valid name) or an invalid value; a `config` that is no
            `RerenderConfig` or `overrides` that are no mapping.
    """
    if not isinstance(config, RerenderConfig):  # None read as an empty config named every key unknown
        raise ConfigError(f"`config` must be a RerenderConfig, got {config!r}")
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"`overrides` must be a mapping of option names to values, got {overrides!r}")
    data = config_to_dict(config)
    leaves = _leaf_paths()
    given: dict[str, tuple[str, Any]] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        # A leaf name may start a dotted path too: `crop.left` is `video.crop.left`.
        sections = {f.name for f in dataclasses.fields(RerenderConfig)}
        path = (
            leaves[head] + ("." + rest if rest else "")
            if head in leaves and (head not in sections or not rest)
            else key
        )
        if path.startswith("control_") and path not in leaves:
            path = "control." + path[len("control_") :]
        if path in given and given[path][1] != value:  # two spellings of one option: neither wins by order
            raise ConfigError(f"`{given[path][0]}` {given[path][1]!r} and `{key}` {value!r} both set {path}; give one")
        given[path] = (key, value)
        parts = path.split(".")
        if parts[0] == "control" and len(parts) >= 2:
            if parts[1].isdigit():
                index = int(parts[1])
                if index >= len(data["control"]):
                    raise ConfigError(
                        f"`{key}`: there are {len(data['control'])} ControlNets, index {index} is out of range"
                    )
                targets, rest = [data["control"][index]], parts[2:]
            else:
                targets, rest = data["control"], parts[1:]
            if len(rest) != 1:
                raise ConfigError(f"unknown option `{key}`{_nearest(key, _all_paths())}")
            for target in targets:
                target[rest[0]] = value
            continue
        node, node_type = data, RerenderConfig
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                if depth > 0 and isinstance(node, dict):  # a known section or group: suggest from its own keys
                    meant = other_tools_option(part, node_type)
                    hint = (
                        f"; did you mean {'.'.join([*parts[:depth], meant])!r}?"
                        if meant
                        else _nearest(part, list(node))
                    )
                    raise ConfigError(f"unknown option `{key}`{hint}")
                raise ConfigError(f"unknown option `{key}`{_suggest_option(key, leaves)}")
            if depth == len(parts) - 1:
                node[part] = value
                break
            node_type = _dataclass_of(typing.get_type_hints(node_type)[part])
            if node[part] is None and node_type is not None:
                node[part] = _to_plain(node_type())  # `freeu.b1=1.2` switches FreeU on with its other defaults
            node = node[part]
    return config_from_dict(data)


# --------------------------------------------------------------------------------------------------------
# options by path: type, default and help (one source: the attribute docstrings of `rerender.config.sections`)
# --------------------------------------------------------------------------------------------------------


@functools.cache
def field_docstrings(cls: type) -> dict[str, str]:
    """The docstring under each field of a config dataclass, read from its source (the string literal after the field).

    Returns:
        field name → its docstring with whitespace collapsed.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for statement, following in zip(body, body[1:]):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def _resolve(path: str) -> tuple[type, str]:
    """The dataclass that declares the option at dotted `path`, and the field's name."""
    leaves = _leaf_paths()
    parts = (leaves.get(path, path)).split(".")
    owner: type = RerenderConfig
    for depth, part in enumerate(parts):
        if parts[0] == "control" and depth == 0:
            owner = ControlConfig
            continue
        names = {f.name for f in dataclasses.fields(owner)}
        if part not in names:
            raise ConfigError(f"unknown option `{path}`{_suggest_option(path, leaves)}")
        if depth == len(parts) - 1:
            return owner, part
        inner = _dataclass_of(typing.get_type_hints(owner)[part])
        if inner is None:
            raise ConfigError(f"unknown option `{path}`: `{part}` has no options below it")
        owner = inner
    raise ConfigError(f"unknown option `{path}`: name an option, not a section")


def field_help(path: str) -> str:
    """The help text of an option: the docstring written under its field (`field_help("blend_mode")`).

    Args:
        path: a leaf name (`denoising_strength`) or dotted path (`sampling.denoising_strength`, `control.strength`).

    Raises:
        ConfigError: no such option.
    """
    owner, name = _resolve(path)
    text = field_docstrings(owner).get(name, "")
    full = _leaf_paths().get(path, path)
    return f"{text} {family_defaults_text(full)}" if full in FAMILY_DEFAULTS else text


def family_defaults_text(path: str) -> str:
    """The `FAMILY_DEFAULTS` row of the option at dotted `path` in words, the bases that share a value together:
    ``Left unset, per base: 20 (SD 1.5, SDXL), 28 (FLUX.1 [dev]), …``, and the bases whose entry is None (the
    option does not act there) as ``not used on Z-Image, …``; the help texts (`field_help`: CLI, web page, docs)
    show it, so the table has no copy."""
    by_value: dict[str, list[str]] = {}
    unused = []
    for variant, value in FAMILY_DEFAULTS[path].items():
        if value is None:
            unused.append(VARIANT_NAMES[variant])
            continue
        shown = f'"{value}"' if isinstance(value, str) else f"{value:g}"
        by_value.setdefault(shown, []).append(VARIANT_NAMES[variant])
    text = "Left unset, per base: " + ", ".join(f"{value} ({', '.join(names)})" for value, names in by_value.items())
    return f"{text}; not used on {', '.join(unused)}." if unused else f"{text}."


def field_type(path: str) -> Any:
    """The resolved type annotation of an option (`field_type("blend_mode")` → `BlendMode | None`)."""
    owner, name = _resolve(path)
    return typing.get_type_hints(owner)[name]


def field_default(path: str) -> Any:
    """The default value of an option (for `control.x`, that of the default ControlNet)."""
    owner, name = _resolve(path)
    for item in dataclasses.fields(owner):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                return item.default_factory()  # type: ignore[misc]
    return None


def option_paths() -> list[str]:
    """The dotted path of every option (nested groups such as `video.crop.left` and `constraints.freeu.b1`
    included), in declaration order."""
    paths: list[str] = []

    def walk(owner: type, prefix: str) -> None:
        hints = typing.get_type_hints(owner)
        for item in dataclasses.fields(owner):
            path = f"{prefix}{item.name}"
            inner = _dataclass_of(hints[item.name])
            if owner is RerenderConfig and item.name == "control":
                walk(ControlConfig, "control.")
            elif inner is not None:
                walk(inner, path + ".")
            else:
                paths.append(path)

    walk(RerenderConfig, "")
    return paths
