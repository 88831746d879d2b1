"""The CLI's parsers against the config (one source of every choice), the generated reference page, and the
size of the CLI's functions."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from rerender.cli import build_parser, reference_markdown
from rerender.cli.reference import iter_commands
from rerender.config import CHOICES, DTypeName, Stage, choices, field_type, option_paths

REPO = Path(__file__).resolve().parents[1]

NOT_CONFIG_CHOICES = {"stage": Stage}
"""Options whose choices are a config `Literal` although they set no config field (`--stage` is `translate`'s)."""


def _actions():
    for name, _, command in iter_commands(build_parser()):
        for action in command._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                yield name, action


def _literal(annotation):
    from rerender.cli.options import literal_of

    return literal_of(annotation)


def test_every_choice_list_is_its_config_literal():
    seen = set()
    for name, action in _actions():
        if not action.choices:
            continue
        option = f"rerender {name} {'/'.join(action.option_strings)}"
        if action.dest in option_paths():
            alias = _literal(field_type(action.dest))
        elif action.dest in NOT_CONFIG_CHOICES:
            alias = NOT_CONFIG_CHOICES[action.dest]
        elif action.dest == "motion":  # the camera moves: `rerender.camera.MOTIONS`, not a config field
            from rerender.camera import MOTIONS

            assert tuple(action.choices) == tuple(MOTIONS), option
            continue
        else:
            pytest.fail(f"{option} has choices that come from no config Literal")
        assert alias is not None and alias in CHOICES.values(), option
        assert tuple(action.choices) == choices(alias), option
        seen.add(action.option_strings[-1])
    assert {"--blend", "--preset", "--renderer", "--stage", "--precision", "--prompt-language"} <= seen


OWN_HELP = ("model.loras", "propagation.output_size", "keyframes.keyframe_indices", "model.dtype", "prompt.prompt")
"""Config-setting options whose help is the CLI's own words (a flag's meaning: --source-size, --keyframes-at …)."""


def test_every_option_that_sets_a_config_field_takes_its_help_from_the_config():
    from rerender.config import field_help

    checked = 0
    for name, action in _actions():
        if action.dest in option_paths() and action.dest not in OWN_HELP:
            expected = field_help(action.dest).replace("`None` = ", "not given: ")[:40]
            assert expected in action.help.replace("%%", "%"), f"rerender {name} {action.option_strings}"
            checked += 1
    assert checked >= 15


def test_an_invalid_choice_is_refused_with_the_valid_ones():
    parser = build_parser()
    expected = r"--precision.*must be one of auto, float16, bfloat16, float32 \(`model.dtype`\)"
    with pytest.raises(Exception, match=expected):
        parser.parse_args(["download", "--precision", "fp8"])
    assert choices(DTypeName) == ("auto", "float16", "bfloat16", "float32")


def test_the_reference_page_has_every_command_and_option():
    page = reference_markdown()
    commands = list(iter_commands(build_parser()))
    assert {name for name, _, _ in commands} >= {
        "translate",
        "keyframes",
        "propagate",
        "animate",
        "generate",
        "batch",
        "preprocess",
        "info",
        "env",
        "download",
        "config",
        "config show",
        "config validate",
        "eval",
        "ui",
    }
    for name, _, command in commands:
        section = page.split(f"## `rerender {name}`\n", 1)[1].split("\n## ", 1)[0]
        assert f"usage: rerender {name}" in section, name
        for action in command._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            flags = ", ".join(action.option_strings) or action.metavar or action.dest
            assert f"`{flags}`" in section, (name, action.dest)
            for choice in action.choices or ():
                assert choice in section, (name, action.dest, choice)
    blend = next(line for line in page.splitlines() if line.startswith("| `--blend`"))
    assert "reconstruction, agreement" in blend and "%%" not in page


def test_no_cli_function_is_longer_than_100_lines():
    for path in (REPO / "rerender" / "cli").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno < 100, f"{path.name}:{node.name}"


def test_the_public_cli_surface_is_documented():
    import inspect

    import rerender.cli
    import rerender.cli.options
    from rerender.cli import commands

    for module in (
        rerender.cli,
        rerender.cli.options,
        *(
            getattr(commands, name)
            for name in (
                "animate",
                "batch",
                "config",
                "download",
                "env",
                "eval",
                "generate",
                "info",
                "preprocess",
                "propagate",
                "translate",
                "ui",
            )
        ),
    ):
        __import__(module.__name__)
        assert module.__doc__, module.__name__
        for name, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_"):
                assert value.__doc__, f"{module.__name__}.{name}"
