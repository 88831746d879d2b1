"""The CLI reference page, generated from the parsers themselves (so it cannot drift from `--help`)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

__all__ = ["iter_commands", "option_rows", "reference_markdown"]


def iter_commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """Every command and nested action (`config show`) of `parser`, as (name, one-line help, parser), in the
    order `--help` lists them."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, command in action.choices.items():
            full = f"{prefix}{name}"
            yield full, helps.get(name, ""), command
            yield from iter_commands(command, full + " ")


def _flags(action: argparse.Action) -> str:
    if action.option_strings:
        return ", ".join(action.option_strings)
    return action.metavar or action.dest


def _default(action: argparse.Action) -> str:
    if action.default in (None, False, [], argparse.SUPPRESS) or isinstance(action, argparse._StoreTrueAction):
        return ""
    return str(action.default)


def option_rows(command: argparse.ArgumentParser) -> list[tuple[str, str, str, str]]:
    """(flags, help, choices, default) of every argument of `command`, `-h/--help` and sub-actions left out."""
    rows = []
    for action in command._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        text = (action.help or "").replace("%%", "%") if action.help is not argparse.SUPPRESS else ""
        options = ", ".join(map(str, action.choices)) if action.choices else ""
        rows.append((_flags(action), text, options, _default(action)))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_markdown() -> str:
    """The CLI reference as Markdown: every command, its usage line, every option with its help, choices and
    default (for the docs site; `rerender COMMAND --help` shows the same)."""
    from rerender.cli import build_parser

    parser = build_parser()
    lines = [
        "# Command line reference",
        "",
        "Generated from the `rerender` argument parsers. Options that set a config field take their help and "
        "choices from the config (see the configuration reference); `--set KEY=VALUE` sets any other.",
        "",
        "```text",
        parser.format_usage().strip(),
        "```",
        "",
        "| Option | Description |",
        "|---|---|",
        *(f"| `{_cell(flags)}` | {_cell(text)} |" for flags, text, _, _ in option_rows(parser)),
        "",
    ]
    for name, summary, command in iter_commands(parser):
        lines += [f"## `rerender {name}`", "", summary[:1].upper() + summary[1:] + ("." if summary else ""), ""]
        lines += ["```text", " ".join(command.format_usage().split()), "```", ""]
        rows = option_rows(command)
        if rows:
            lines += ["| Option | Description | Choices | Default |", "|---|---|---|---|"]
            lines += [
                f"| `{_cell(flags)}` | {_cell(text)} | {_cell(options)} | {f'`{_cell(default)}`' if default else ''} |"
                for flags, text, options, default in rows
            ]
            lines.append("")
    return "\n".join(lines)
