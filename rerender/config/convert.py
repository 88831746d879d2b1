"""Plain data ⇄ `RerenderConfig`, and config files (YAML/JSON) on disk."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Literal, Union

from rerender.config.sections import LANGUAGE_NAMES, PromptLanguage, RerenderConfig, choices
from rerender.errors import ConfigError, InputNotFoundError

__all__ = [
    "config_from_dict",
    "config_to_dict",
    "config_hash",
    "load_config",
    "save_config",
    "dump_yaml",
    "value_from_text",
    "PATH_OPTIONS",
]


# --------------------------------------------------------------------------------------------------------
# dict <-> dataclass
# --------------------------------------------------------------------------------------------------------


def _nearest(name: str, candidates: list[str]) -> str:
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return f"; did you mean {matches[0]!r}?" if matches else f"; valid keys: {', '.join(sorted(candidates))}"


def _type_name(annotation: Any) -> str:
    if dataclasses.is_dataclass(annotation):  # a section: the keys it takes say more than its class name
        return f"a mapping of {', '.join(field.name for field in dataclasses.fields(annotation))}"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _simple_kind(annotation: Any) -> str | None:
    """How a message says what a plain type takes ("an integer", "one of 'a', 'b'"); `None` for other types."""
    if typing.get_origin(annotation) is Literal:
        return f"one of {', '.join(map(repr, typing.get_args(annotation)))}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(annotation)


# A number in exponent notation without a dot or an exponent sign (1e6, 5e-1): a string to YAML 1.1 (PyYAML), a
# number to JSON, YAML 1.2 and Python; read as the number it is where a number is expected.
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+")


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML/JSON value to the annotated field type, raising `ConfigError` naming `key`."""
    origin = typing.get_origin(annotation)
    if annotation in (int, float) and isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        if annotation is int and not float(value).is_integer():
            raise ConfigError(f"`{key}` must be an integer, got {value!r}")
        value = float(value)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"`{key}` must not be null")
        non_none = [arg for arg in args if arg is not type(None)]
        errors = []
        for arg in non_none:
            try:
                return _convert(value, arg, key)
            except ConfigError as error:
                errors.append(error)
        kinds = [_simple_kind(arg) for arg in non_none]
        if len(kinds) > 1 and all(kinds):  # e.g. a number or a name: say both, not only the first
            raise ConfigError(f"`{key}` must be {' or '.join(kinds)}, got {value!r}")
        raise errors[0]
    if value is None:
        raise ConfigError(f"`{key}` must not be null (expected {_type_name(annotation)})")
    if origin is Literal:
        if value not in args:
            if args == choices(PromptLanguage):  # codes alone say little: name the languages
                valid = ", ".join(f"{code} ({LANGUAGE_NAMES.get(code, 'detect')})" for code in args)
            else:
                valid = ", ".join(map(repr, args))
            raise ConfigError(f"`{key}` must be one of {valid}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{key}` must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(item, args[0], f"{key}[{index}]") for index, item in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"`{key}` must have {len(args)} items, got {value!r}")
        return tuple(_convert(item, arg, f"{key}[{index}]") for index, (item, arg) in enumerate(zip(value, args)))
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        shorthand = getattr(annotation, "SHORTHAND", None)  # e.g. a LoRA given as its path alone
        if shorthand is not None and isinstance(value, (str, PurePath)):
            value = {shorthand: value}
        if not isinstance(value, Mapping):
            raise ConfigError(f"`{key}` must be {_type_name(annotation)}, got {value!r}")
        return _dataclass_from_dict(annotation, value, key)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{key}` must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"`{key}` must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{key}` must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if isinstance(value, PurePath):  # a file or folder given as a `pathlib` path from Python
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"`{key}` must be a string, got {value!r}")
        return value
    return value


OTHER_TOOLS_WORDS: dict[str, dict[str, str]] = {
    "VideoConfig": {"max_frames": "end_frame"},
    "KeyframeConfig": {"K": "keyframe_interval"},
    "PromptConfig": {"style_image_weight": "style_image_scale"},
    "SamplingConfig": {
        "steps": "num_inference_steps",
        "cfg": "guidance_scale",
        "cfg_scale": "guidance_scale",
        "strength": "denoising_strength",
    },
    "LoraConfig": {"weight": "scale", "strength": "scale", "alpha": "scale"},
}
"""Other tools' words (diffusers, A1111, kohya, our own Python arguments) for an option, by the name of the config
dataclass whose option they mean (a word means different options in different places: a LoRA's `strength` is its
`scale`, a run's is `denoising_strength`), where the nearest spelling would point at another option (`steps` → fps,
`cfg` → crf, a LoRA's `weight` → weight_name). Read through `other_tools_option`."""


def other_tools_option(word: str, owner: type | None = None) -> str | None:
    """The option another tool's `word` means (`OTHER_TOOLS_WORDS`), or None.

    Args:
        word: the unknown key as the user typed it.
        owner: the config dataclass the key was given in (`SamplingConfig` for `sampling.steps`, `LoraConfig` for a
            LoRA's key): the name of its option. `RerenderConfig`: the dotted path (``sampling.num_inference_steps``,
            what a config file needs at its top level). None (a leaf name, as overrides take them): the option's leaf
            name, looked up in the sections in declaration order.
    """
    if owner is not None and owner is not RerenderConfig:
        return OTHER_TOOLS_WORDS.get(owner.__name__, {}).get(word)
    hints = typing.get_type_hints(RerenderConfig)
    for section in dataclasses.fields(RerenderConfig):
        section_type = hints[section.name]
        option = OTHER_TOOLS_WORDS.get(getattr(section_type, "__name__", ""), {}).get(word)
        if option is not None:
            return option if owner is None else f"{section.name}.{option}"
    return None


def value_from_text(text: str, annotation: Any, key: str) -> Any:
    """An option's value typed as text (`--set KEY=VALUE`, a CSV job list's cell), read by the option's type: the
    one rule for both.

    The text is read as YAML (``0.5``, ``1_000``, ``true``/``yes``/``off``, ``[0, 10]``, ``{b1: 1.2}``) and converted
    as a config file's value is (`_convert`: ``1e6`` is a number where a number is expected); ``1``/``0`` are true and
    false where an option takes true or false (spreadsheets write them); ``null``, ``~`` and ``none`` (any case) are
    `None` where the option takes `None`. An option that takes free text (a prompt, a path) keeps the text as
    written, unless it is quoted (``''``): YAML would make ``no`` false, ``a: b`` a mapping, and cut ``a car #1`` at
    its comment.

    Args:
        text: the value as typed.
        annotation: the option's type (`rerender.config.field_type`).
        key: the option as the user named it (a CSV column, a `--set` key), for errors.

    Returns:
        The value as plain data (lists, dicts, scalars), as `config_from_dict` takes it.

    Raises:
        ConfigError: "`key` must be …, got …", as config files say it.
    """
    import yaml

    stripped = text.strip()
    union = typing.get_origin(annotation) in (Union, types.UnionType)
    kinds = [arg for arg in typing.get_args(annotation) if arg is not type(None)] if union else [annotation]
    if union and type(None) in typing.get_args(annotation) and stripped.lower() in ("null", "none", "~"):
        return None
    quoted = len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\""
    if str in kinds and not quoted:
        return stripped
    try:
        value = yaml.safe_load(stripped) if stripped else ""
    except yaml.YAMLError:
        value = stripped
    if bool in kinds and stripped in ("0", "1"):
        value = stripped == "1"
    try:
        return _to_plain(_convert(value, annotation, key))
    except ConfigError:
        if isinstance(value, str) or not any(_takes_text(kind) for kind in kinds):
            raise
    return _to_plain(_convert(stripped, annotation, key))  # a Literal's name that YAML reads otherwise ("on")


def _takes_text(annotation: Any) -> bool:
    """Whether a (non-union) type takes a string: `str`, or a `Literal` of strings."""
    if typing.get_origin(annotation) is Literal:
        return any(isinstance(arg, str) for arg in typing.get_args(annotation))
    return annotation is str


PATH_OPTIONS = frozenset(
    {
        "prompt.translation_model",
        "prompt.style_image",
        "prompt.audio_prompt",
        "prompt.audio_model",
        "prompt.audio_vocabulary",
        "model.base_model",
        "model.vae",
        "model.loras.path",
        "model.ip_adapter",
        "control.model",
        "control.maps",
        "flow.flow_checkpoint",
    }
)
"""The options (dotted paths as `rerender.config.option_paths` gives them) that name a local file or folder (or a
hub id, which never starts with "~"): a leading ``~``/``~user`` in their values is expanded to the home folder when a
config file, `--set` or `apply_overrides` gives them, as the shell and the CLI's own path arguments do."""


def _dataclass_from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full_key = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            meant = other_tools_option(str(key), cls)
            hint = f"; did you mean {meant!r}?" if meant else _nearest(str(key), names)
            raise ConfigError(f"unknown option `{full_key}`{hint}")
        if isinstance(value, str) and value.startswith("~") and re.sub(r"\[\d*\]", "", full_key) in PATH_OPTIONS:
            value = os.path.expanduser(value)
        kwargs[key] = _convert(value, hints[key], full_key)
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required field is missing
        raise ConfigError(f"`{prefix or cls.__name__}`: {error}") from None
    except ConfigError as error:  # a list item's own check names its list (`control.x`): name the item, `control[1].x`
        item = re.fullmatch(r"(.+)\[\d+\]", prefix)
        if item is None:
            raise
        message = (
            str(error).replace(f"`{item.group(1)}.", f"`{prefix}.").replace(f"`{item.group(1)}[].", f"`{prefix}.")
        )
        raise ConfigError(message) from None


def config_from_dict(data: Mapping[str, Any]) -> RerenderConfig:
    """Build a validated `RerenderConfig` from nested plain data (as read from YAML or JSON).

    Missing keys take their defaults. A single mapping may be given for `control` instead of a list.

    Raises:
        ConfigError: an unknown key (with the nearest valid name), a wrong type or a value out of range.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {type(data).__name__}")
    data = dict(data)
    if isinstance(data.get("control"), Mapping):
        data["control"] = [data["control"]]
    return _dataclass_from_dict(RerenderConfig, data)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_to_plain(item) for item in value]
    return value


def config_to_dict(config: RerenderConfig) -> dict[str, Any]:
    """Nested plain data (dicts, lists, scalars) that `config_from_dict` turns back into `config`."""
    return _to_plain(config)


def config_hash(config: RerenderConfig, sections: tuple[str, ...] | None = None) -> str:
    """A stable SHA-1 of the config (or of some sections), for workspaces and caches."""
    data = config_to_dict(config)
    if sections is not None:
        data = {name: data[name] for name in sections}
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike, *, defaults: RerenderConfig | None = None) -> RerenderConfig:
    """Load a config from a `.yaml`/`.yml` or `.json` file; missing keys take their defaults.

    Args:
        path: the file.
        defaults: where missing keys take their values from (`None` = `RerenderConfig()`); a program with
            defaults of its own (the CLI's renderer "auto") passes them here, so the file still wins.

    Raises:
        InputNotFoundError: the file does not exist.
        ConfigError: the file is not valid YAML/JSON, or an option is unknown or out of range.
    """
    import yaml

    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"`path` must be a path (a str or os.PathLike), got {path!r}")
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"config file not found: {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{str(path)!r} is not a config file (not UTF-8 text); give a YAML or JSON config") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        reason = " ".join(str(error).split())  # one line: YAML errors span several
        raise ConfigError(
            f"{str(path)!r} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {reason}"
        ) from None
    if data is None:
        data = {}
    if defaults is not None and isinstance(data, Mapping):
        data = _merged(config_to_dict(defaults), data)
    try:
        return config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path.name}: {error}") from None


def _merged(base: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` over `base`, section by section (a mapping merges into a mapping; anything else replaces)."""
    merged = dict(base)
    for key, value in data.items():
        inner = merged.get(key)
        merged[key] = _merged(inner, value) if isinstance(inner, Mapping) and isinstance(value, Mapping) else value
    return merged


def dump_yaml(data: Mapping[str, Any]) -> str:
    """YAML text of plain config data, with short lists of scalars (periods, indices) on one line."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def represent_list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
        scalars = all(not isinstance(item, (dict, list)) for item in items)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=scalars and len(items) > 0)

    _Dumper.add_representer(list, represent_list)
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def save_config(config: RerenderConfig, path: str | os.PathLike) -> Path:
    """Write `config` as YAML (or JSON for a `.json` path), atomically; returns the path.

    Raises:
        ConfigError: `config` is no `RerenderConfig` (a dict would be written as it is, and refused when loaded).
    """
    if not isinstance(config, RerenderConfig):
        raise ConfigError(f"`config` must be a RerenderConfig, got {config!r}")
    path = Path(path)
    data = config_to_dict(config)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = dump_yaml(data)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path
