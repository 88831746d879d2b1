"""Options shared by several commands, declared once each, and the config every command starts from.

Shared options are *parent parsers* (`argparse`'s `parents=[...]`): a command lists the groups it takes.

An option that sets a config field has that field's dotted path as its `dest` (`--blend` →
`propagation.blend_mode`): its choices come from the field's `Literal` alias (`rerender.config.choices`), its
help from the docstring under the field (`rerender.config.field_help`), and `config_overrides(args)` turns every
such option the user gave into an override, applied after `--config` and `--set`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import threading
import typing
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from rerender.cli.base import UsageError
from rerender.config import LoraConfig, RerenderConfig, choices, field_help, field_type
from rerender.errors import ConfigError

CLI_DEFAULTS: dict[str, Any] = {"model.renderer": "auto"}
"""The CLI's own defaults, applied before the user's `--config` file and `--set` (so both still win): the CLI
falls back to the classic stylizer, with a warning, when no diffusion weights can be loaded."""


class _SetToNone:
    """The value of an option that sets its config field to `None` (a plain `None` means: not given)."""

    def __repr__(self) -> str:
        return "NONE"


NONE = _SetToNone()
"""What an argument type returns to set its config field to `None` (`--vae model`)."""

DTYPE_ALIASES = {"fp16": "float16", "fp32": "float32", "bf16": "bfloat16"}
"""Short spellings `--precision` accepts besides the `DTypeName` values."""


# --------------------------------------------------------------------------------------------------------
# help and choices from the config
# --------------------------------------------------------------------------------------------------------


def literal_of(annotation: Any) -> Any | None:
    """The `Literal[...]` inside a field's type (`BlendMode | None` → `BlendMode`), or None when it has none."""
    if typing.get_origin(annotation) is typing.Literal:
        return annotation
    for argument in typing.get_args(annotation):
        if typing.get_origin(argument) is typing.Literal:
            return argument
    return None


def config_help(path: str, words: str = "", default: bool = True) -> str:
    """The help of an option that sets the config field `path`: the field's docstring, the CLI's own `words`,
    and the default a run uses (the CLI's defaults included)."""
    text = field_help(path)
    if words:
        text = f"{text} {words}"
    if default:
        value = cli_default(path)
        if value is not None and value != () and value != "":
            text = f"{text} (default: {value})"
    text = text.replace("`None` = ", "not given: ")  # the docstrings speak Python; here None is "not given"
    return text.replace("%", "%%")  # argparse formats help with %


def cli_default(path: str) -> Any:
    """The value of the config field `path` in the config a run starts from (`CLI_DEFAULTS` applied)."""
    value: Any = default_config()
    for part in path.split("."):
        value = getattr(value, part)
    return value


def config_choices(path: str) -> tuple[str, ...]:
    """The values the config field `path` accepts (from its `Literal` alias)."""
    alias = literal_of(field_type(path))
    if alias is None:
        raise TypeError(f"the config field {path!r} is not a closed set of values")
    return choices(alias)


def add_config_option(parser: argparse.ArgumentParser, *flags: str, path: str, words: str = "", **kwargs: Any):
    """Add an option that sets the config field `path`: `dest` is the path, `None` (not given) leaves it alone;
    choices and help come from the config unless given."""
    if "choices" not in kwargs and kwargs.get("action") is None and literal_of(field_type(path)) is not None:
        kwargs["choices"] = config_choices(path)
    if "choices" in kwargs:
        kwargs["type"] = _one_of(path, kwargs["choices"], kwargs.get("type", str))
    const = True if kwargs.get("action") == "store_true" else kwargs.get("const")
    if kwargs.get("action") in ("store_true", "store_const") and isinstance(const, bool):  # a flag: say what it does
        state = "on" if cli_default(path) else "off"  # not "(default: True)", which reads wrong on a negative flag
        kwargs.setdefault(
            "help",
            f"{config_help(path, words, default=False)} ({state} by default; this flag turns "
            f"it {'on' if const else 'off'})",
        )
    kwargs.setdefault("help", config_help(path, words))
    kwargs.setdefault("default", None)
    takes_value = kwargs.get("action") not in ("store_true", "store_const")
    if "metavar" not in kwargs and "choices" not in kwargs and takes_value:
        kwargs["metavar"] = path.rsplit(".", 1)[-1].upper()
    return parser.add_argument(*flags, dest=path, **kwargs)


def _one_of(path: str, valid: tuple[str, ...], convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type that refuses a value outside `valid` naming the config field too (argparse adds the flag)."""

    def parse(text: str) -> Any:
        value = convert(text)
        if value not in valid:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(valid)} (`{path}`), got {text!r}")
        return value

    parse.__name__ = path  # argparse names a type by its __name__ in some messages
    return parse


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides of the options the user gave (every `dest` that is a dotted config path)."""
    overrides = {
        key: None if value is NONE else value for key, value in vars(args).items() if "." in key and value is not None
    }
    if "keyframes.keyframe_indices" in overrides:
        overrides["keyframes.keyframe_mode"] = "explicit"
    if overrides.get("output.audio_track") == "none":  # --audio-track none: no audio at all
        del overrides["output.audio_track"]
        overrides["output.keep_audio"] = False
    return overrides


# --------------------------------------------------------------------------------------------------------
# the config a run uses
# --------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def default_config() -> RerenderConfig:
    """`RerenderConfig()` with the CLI's own defaults (`CLI_DEFAULTS`); frozen, so shared."""
    from rerender.config import apply_overrides

    return apply_overrides(RerenderConfig(), CLI_DEFAULTS)


def model_defaults(config: RerenderConfig) -> RerenderConfig:
    """`config` with the options whose default is the model's (`video.size_multiple`, `prompt.negative_prompt`) set
    from its family, as a run sets them (`rerender.workflow.preflight.resolve_model_defaults`; configs only)."""
    from rerender.workflow.preflight import resolve_model_defaults, run_family

    return resolve_model_defaults(config, run_family(config))


def load_config(args: argparse.Namespace) -> RerenderConfig:
    """The config a command runs with: the CLI's defaults, then `--config FILE`, `--set`, then the command's
    options that set config fields (`config_overrides`)."""
    from rerender.config import apply_overrides, parse_override
    from rerender.config import load_config as read_config_file

    config = default_config()
    if getattr(args, "config", None):
        config = read_config_file(args.config, defaults=config)
    overrides = dict(parse_override(item) for item in getattr(args, "overrides", None) or [])
    overrides.update(config_overrides(args))
    return apply_overrides(config, overrides) if overrides else config


# --------------------------------------------------------------------------------------------------------
# parent parsers: each shared option declared once
# --------------------------------------------------------------------------------------------------------


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def verbose_parent() -> argparse.ArgumentParser:
    """`-v/--verbose`, accepted before or after the command (`rerender -v translate …`, `rerender translate … -v`)."""
    parent = _parent()
    parent.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logging, tracebacks and other libraries' warnings",
    )
    return parent


def config_parent(file: bool = True) -> argparse.ArgumentParser:
    """`--config FILE` (unless `file` is False) and `--set KEY=VALUE`."""
    parent = _parent()
    if file:
        parent.add_argument("--config", metavar="FILE", help="YAML or JSON config (missing keys take defaults)")
    parent.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one option, by leaf name or dotted path (repeatable), e.g. --set denoising_strength=0.6",
    )
    return parent


def quiet_parent(help: str = "no progress bars") -> argparse.ArgumentParser:  # noqa: A002 - argparse's word
    """`-q/--quiet`."""
    parent = _parent()
    parent.add_argument("-q", "--quiet", action="store_true", help=help)
    return parent


def model_parent(words: str = "", lora: bool = False) -> argparse.ArgumentParser:
    """`--model` (the base model), and `--lora` when `lora`."""
    parent = _parent()
    add_config_option(parent, "--model", path="model.base_model", words=words, metavar="MODEL")
    if lora:
        add_config_option(
            parent,
            "--lora",
            path="model.loras",
            action="append",
            type=parse_lora,
            metavar="PATH[:SCALE]",
            help="a LoRA file, folder, hub id or file in a hub repository (owner/name/file.safetensors, or its "
            "huggingface.co URL), with its scale after a colon (repeatable)",
        )
    return parent


def renderer_parent() -> argparse.ArgumentParser:
    """`--renderer` (choices: `RendererName`)."""
    parent = _parent()
    add_config_option(parent, "--renderer", path="model.renderer")
    return parent


def prompt_parent() -> argparse.ArgumentParser:
    """The prompt's language, the reference image and the sound: `--prompt-language`, `--translation-model`,
    `--style-image`, `--style-image-scale`, `--audio-prompt`."""
    parent = _parent()
    add_config_option(parent, "--prompt-language", path="prompt.prompt_language", metavar="CODE")
    add_config_option(parent, "--translation-model", path="prompt.translation_model", metavar="ID_OR_DIR")
    add_config_option(parent, "--style-image", path="prompt.style_image", metavar="FILE")
    add_config_option(parent, "--style-image-scale", path="prompt.style_image_scale", type=float, metavar="S")
    add_config_option(parent, "--audio-prompt", path="prompt.audio_prompt", metavar="FILE|source")
    return parent


def interval_parent(default: int | None = None) -> argparse.ArgumentParser:
    """`-K/--interval K`: the keyframe interval, passed to the run as its `K` (`default` None = the config's)."""
    parent = _parent()
    words = "" if default is None else f"(default here: {default})"
    parent.add_argument(
        "-K",
        "--interval",
        type=integer_at_least(1, "keyframes.keyframe_interval"),
        default=default,
        metavar="K",
        help=config_help("keyframes.keyframe_interval", words, default=default is None),
    )
    return parent


def workspace_parent(force_help: str) -> argparse.ArgumentParser:
    """`--workspace DIR` and `--force`."""
    parent = _parent()
    parent.add_argument("--workspace", metavar="DIR", help="folder for frames, flows, keyframes (default OUTPUT.work)")
    parent.add_argument("--force", action="store_true", help=force_help)
    return parent


def overwrite_parent() -> argparse.ArgumentParser:
    """`--overwrite`: replace an existing -o/--output that rerender did not write (refused without it)."""
    parent = _parent()
    parent.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing OUTPUT that rerender did not write (without it such a file is refused; an earlier "
        "output of rerender's is replaced either way)",
    )
    return parent


def source_size_parent() -> argparse.ArgumentParser:
    """`--source-size`: `propagation.output_size` = "source"."""
    parent = _parent()
    add_config_option(
        parent,
        "--source-size",
        path="propagation.output_size",
        action="store_const",
        const="source",
        help="write the output at the source's size (keyframes upscaled, propagation at full size; slower)",
    )
    return parent


def input_parent() -> argparse.ArgumentParser:
    """How inputs are read: `--background` (transparent pixels), `--no-deinterlace`, `--audio-track N|none`."""
    parent = _parent()
    add_config_option(parent, "--background", path="video.background", metavar="COLOUR")
    add_config_option(parent, "--no-deinterlace", path="video.deinterlace", action="store_const", const=False)
    add_config_option(
        parent,
        "--audio-track",
        path="output.audio_track",
        metavar="N|none",
        type=_audio_track,
        words="`none`: no audio (output.keep_audio false).",
    )
    return parent


def _audio_track(text: str) -> int | str:
    if text.strip().lower() == "none":
        return "none"
    try:
        track = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a track number ≥ 0 or 'none', got {text!r}") from None
    if track < 0:
        raise argparse.ArgumentTypeError(f"must be a track number ≥ 0 or 'none', got {text!r}")
    return track


def precision_option(parser: argparse.ArgumentParser, help: str) -> None:  # noqa: A002 - argparse's word
    """`--precision` (`model.dtype`; fp16/fp32/bf16 are accepted as short spellings)."""
    add_config_option(
        parser, "--precision", path="model.dtype", type=lambda text: DTYPE_ALIASES.get(text, text), help=help
    )


# --------------------------------------------------------------------------------------------------------
# argument types
# --------------------------------------------------------------------------------------------------------


def integer_at_least(low: int, path: str | None = None) -> Callable[[str], int]:
    """An argparse type: an integer ≥ `low`, with a message that says so (argparse names the option; `path`
    names the config field it sets, if any)."""
    field = f" (`{path}`)" if path else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}{field}, got {text!r}")
        return value

    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def parse_lora(item: str) -> dict:
    """`style.safetensors:0.8` → path and scale; a bare path has scale 1. A file inside a hub repository, as
    ``owner/name/file.safetensors`` or its page's URL (``https://huggingface.co/owner/name/blob/main/file.safetensors``),
    becomes the repository and the file's `weight_name` (`rerender.weights.hub_file_reference`)."""
    from rerender.weights import hub_file_reference

    path, separator, scale = item.rpartition(":")
    try:
        parsed = {"path": path, "scale": float(scale)} if separator and path else {"path": item, "scale": 1.0}
    except ValueError:
        # "C:\\x.safetensors", a URL or a file named with a colon is a path; "x.safetensors:abc" a scale mistyped
        if not ("/" in scale or "\\" in scale or Path(item).expanduser().exists()):
            raise UsageError(
                f"--lora {item!r}: the scale after ':' must be a number (PATH[:SCALE], e.g. style.safetensors:0.8), "
                f"got {scale!r}"
            ) from None
        parsed = {"path": item, "scale": 1.0}
    try:
        reference = hub_file_reference(parsed["path"])
    except ConfigError as error:
        raise UsageError(f"--lora {item!r} {str(error).removeprefix(repr(parsed['path']) + ' ')}") from None
    if reference is not None:  # owner/name/file.safetensors or a hub page: the repository, and the file in it
        repository, inside = reference
        parsed = {"path": repository, "scale": parsed["scale"], **({"weight_name": inside} if inside else {})}
    try:  # the scale's range, named as typed (the config's own message names `model.loras[].scale`)
        LoraConfig(**parsed)
    except ConfigError as error:
        raise UsageError(f"--lora {item!r}: {str(error).replace('`model.loras[].scale`', 'the scale')}") from None
    return parsed


def parse_keyframes_at(text: str) -> list[int]:
    """`0,10,25` → [0, 10, 25]; anything else is a usage error naming --keyframes-at."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if not (item.isascii() and item.isdigit())]
    if bad or not items:
        raise UsageError(
            f"--keyframes-at must be frame indices (integers ≥ 0) separated by commas, such as 0,10,25; "
            f"got {text!r}" + (f" ({bad[0]!r} is not an integer ≥ 0)" if bad else "")
        )
    return [int(item) for item in items]


def format_fps(fps: Fraction) -> str:
    """`25` or `30000/1001 (29.970)`."""
    return f"{fps.numerator}/{fps.denominator} ({float(fps):.3f})" if fps.denominator != 1 else str(fps.numerator)


# --------------------------------------------------------------------------------------------------------
# checks and Ctrl-C
# --------------------------------------------------------------------------------------------------------


def require_prompt(prompt: str | None, config: RerenderConfig, where: str = "") -> None:
    """An empty prompt gives unstyled keyframes after a long run: refuse unless it was asked for (-p "")."""
    if prompt is None and not config.prompt.prompt:
        raise UsageError(
            f'no prompt{where}: give one with -p/--prompt (e.g. -p "a watercolor painting"), or prompt.prompt in '
            '--config or --set; pass -p "" to run without a prompt on purpose'
        )


@contextlib.contextmanager
def stop_at_safe_point():
    """A `cancel` event for the library that the first Ctrl-C sets (the run stops at its next safe point, resumable);
    a second Ctrl-C interrupts at once."""
    cancel = threading.Event()

    def on_interrupt(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    try:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield None
        return
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


PATH_ARGUMENTS = (
    "video", "image", "file", "output", "output_video", "source", "json", "depth", "path", "workspace", "keyframes",
    "keep_intermediates", "jobs_source", "config",
)  # fmt: skip
"""Every command's arguments that name a file or folder and are no config option (by `dest`; hub ids and words such
as "source" never start with "~"). The options that set config fields (dotted `dest`s such as `model.base_model`)
are the config's: `rerender.config.convert.PATH_OPTIONS` expands them as the run's config is made."""


def expand_home(args: argparse.Namespace) -> argparse.Namespace:
    """`~` and `~user` at the start of each path argument expanded, as the shell expands an unquoted one: a quoted
    `"~/clip.mp4"` reaching us behaves the same (the library expands no argument; the config expands its path
    options, `rerender.config.convert.PATH_OPTIONS`, whether a config file, --set or an option like --model gives
    them)."""
    for name in PATH_ARGUMENTS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value.startswith("~"):
            setattr(args, name, os.path.expanduser(value))
    return args
