"""Options shared by several commands, argument types, and the config every command starts from."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from fractions import Fraction
from pathlib import Path

from rerender.cli.base import UsageError


def verbose_parent() -> argparse.ArgumentParser:
    """`-v/--verbose`, accepted before or after the command (`rerender -v translate …`, `rerender translate … -v`)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging and tracebacks")
    return parent


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON config (missing keys take defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one option, by leaf name or dotted path (repeatable), e.g. --set denoising_strength=0.6",
    )


def load_config(args: argparse.Namespace):
    from rerender.config import RerenderConfig, apply_overrides, load_config, parse_override

    config = load_config(args.config) if getattr(args, "config", None) else RerenderConfig()
    overrides = dict(parse_override(item) for item in getattr(args, "overrides", []) or [])
    return apply_overrides(config, overrides) if overrides else config


def integer_at_least(low: int):
    """An argparse type: an integer ≥ `low`, with a message that says so (argparse names the option)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {text!r}")
        return value

    return parse


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def format_fps(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator} ({float(fps):.3f})" if fps.denominator != 1 else str(fps.numerator)


def parse_lora(item: str) -> dict:
    """`style.safetensors:0.8` → path and scale; a bare path has scale 1."""
    path, separator, scale = item.rpartition(":")
    try:
        return {"path": path, "scale": float(scale)} if separator and path else {"path": item, "scale": 1.0}
    except ValueError:
        return {"path": item, "scale": 1.0}


def translate_overrides(args: argparse.Namespace) -> dict:
    overrides = {}
    if getattr(args, "model", None):
        overrides["model.base_model"] = args.model
    if getattr(args, "lora", None):
        overrides["model.loras"] = [parse_lora(item) for item in args.lora]
    if getattr(args, "source_size", False):
        overrides["propagation.output_size"] = "source"
    if getattr(args, "renderer", None):
        overrides["model.renderer"] = args.renderer
    elif hasattr(args, "renderer") and not config_names_renderer(args):
        overrides["model.renderer"] = "auto"  # the CLI demo falls back to the classic stylizer, with its warning
    if getattr(args, "prompt_language", None):
        overrides["prompt.prompt_language"] = args.prompt_language
    if getattr(args, "translation_model", None):
        overrides["prompt.translation_model"] = args.translation_model
    if getattr(args, "style_image", None):
        overrides["prompt.style_image"] = args.style_image
    if getattr(args, "style_image_scale", None) is not None:
        overrides["prompt.style_image_scale"] = args.style_image_scale
    if getattr(args, "keyframes_at", None):
        overrides["keyframes.keyframe_mode"] = "explicit"
        overrides["keyframes.keyframe_indices"] = parse_keyframes_at(args.keyframes_at)
    return overrides


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


def config_names_renderer(args: argparse.Namespace) -> bool:
    """Whether the user chose a renderer in the config file or with --set (the CLI's own default is "auto")."""
    import yaml

    from rerender.config import parse_override

    if any(key.split(".")[-1] == "renderer" for key, _ in map(parse_override, getattr(args, "overrides", []) or [])):
        return True
    if getattr(args, "config", None):
        data = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        return isinstance(data.get("model"), dict) and "renderer" in data["model"]
    return False


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


def require_prompt(prompt: str | None, config, where: str = "") -> None:
    """An empty prompt gives unstyled keyframes after a long run: refuse unless it was asked for (-p "")."""
    if prompt is None and not config.prompt.prompt:
        raise UsageError(
            f"no prompt{where}: give one with -p/--prompt (e.g. -p \"a watercolor painting\"), or prompt.prompt in "
            "--config or --set; pass -p \"\" to run without a prompt on purpose"
        )


def add_prompt_options(command: argparse.ArgumentParser) -> None:
    """The prompt's language and the reference image (translate, keyframes, generate, download)."""
    command.add_argument(
        "--prompt-language", metavar="CODE",
        help="language of the prompt: auto, en (default), vi, ko, ja, zh, ru, fr, de, es; others are translated to English",
    )
    command.add_argument("--translation-model", metavar="ID_OR_DIR",
                         help="translation model (default Helsinki-NLP/opus-mt-CODE-en)")
    command.add_argument("--style-image", metavar="FILE", help="a reference image as a prompt (IP-Adapter)")
    command.add_argument("--style-image-scale", type=float, metavar="S",
                         help="weight of the reference image (default 0.6)")
