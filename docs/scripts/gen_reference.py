"""Write the generated reference pages at build time (run by mkdocs-gen-files, see mkdocs.yml).

- ``reference/cli.md``: every command of the ``rerender`` CLI with its usage and options, from the parsers
  themselves (``rerender.cli.reference_markdown()`` where the CLI provides it, else by walking
  ``rerender.cli.build_parser()``);
- ``reference/config.md``: every option of ``RerenderConfig`` with its type, default and help, from the
  dataclasses (``rerender.config.option_paths``, ``field_type``, ``field_default``, ``field_help``, ``CHOICES``);
- ``reference/api/*.md``: one page per namespace, ``::: module`` blocks that mkdocstrings fills by static analysis
  (nothing heavy is imported).

The functions return Markdown, so tests/test_docs.py checks the pages without mkdocs installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pkgutil
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # this checkout, also when mkdocs runs from an environment without it installed
    sys.path.insert(0, str(REPO))

# --------------------------------------------------------------------------------------------------------- CLI


def _cell(text: str) -> str:
    """Text that fits in one cell of a Markdown table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """The (name, one-line help, parser) of each subcommand of `parser`, in declaration order."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            found += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return found


def walk_commands(parser: argparse.ArgumentParser, path: str = "rerender") -> list[tuple[str, str, Any]]:
    """Every command under `parser`, depth first: ``("rerender config show", help, parser)``."""
    commands = []
    for name, summary, sub in _subcommands(parser):
        full = f"{path} {name}"
        commands.append((full, summary, sub))
        commands += walk_commands(sub, full)
    return commands


def _option_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        value = ""
    elif action.choices is not None:
        value = " \\| ".join(f"`{choice}`" for choice in action.choices)
    else:
        metavar = action.metavar if action.metavar is not None else action.dest.upper()
        value = f"`{' '.join(metavar) if isinstance(metavar, tuple) else metavar}`"
    help_text = parser._get_formatter()._expand_help(action) if action.help else ""
    return f"| {names} | {value} | {_cell(help_text)} |"


def _command_section(full: str, summary: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## {full}", ""]
    if summary or parser.description:
        lines += [_cell(parser.description or summary), ""]
    usage = " ".join(parser.format_usage().split())
    lines += ["```text", usage.removeprefix("usage: "), "```", ""]
    actions = [a for a in parser._actions if not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction))]
    if actions:
        lines += ["| argument | value | help |", "|---|---|---|"]
        lines += [_option_row(parser, action) for action in actions]
        lines.append("")
    subcommands = _subcommands(parser)
    if subcommands:
        lines += ["Subcommands: " + ", ".join(f"`{full} {name}`" for name, _, _ in subcommands), ""]
    if parser.epilog:
        lines += [parser.epilog, ""]
    return lines


def cli_markdown() -> str:
    """The CLI reference page."""
    import rerender.cli as cli

    if hasattr(cli, "reference_markdown"):
        return cli.reference_markdown()
    parser = cli.build_parser()
    commands = walk_commands(parser)
    lines = [
        "# Command line",
        "",
        "Generated from the CLI's own parsers when the site is built: every command and every option, as "
        "`rerender COMMAND --help` prints them. Exit codes: 0 success, 1 runtime failure, 2 usage error (bad "
        "arguments, config or input files), 130 interrupted (Ctrl-C; finished work is kept).",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    lines += [f"| [`{full}`](#{full.replace(' ', '-')}) | {_cell(summary)} |" for full, summary, _ in commands]
    lines.append("")
    lines += _command_section("rerender", parser.description or "", parser)[2:]  # the program's options, no heading
    for full, summary, sub in commands:
        lines += _command_section(full, summary, sub)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ config


def type_name(annotation: Any) -> str:
    """A readable name for an option's type: aliases of `rerender.config.CHOICES` by name, `X | None`, `list[X]`."""
    from rerender.config import CHOICES

    for name, alias in CHOICES.items():
        if annotation == alias:
            return name
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(argument) for argument in arguments)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(argument) for argument in arguments) + "]"
    if origin is not None:
        inner = ", ".join("..." if argument is Ellipsis else type_name(argument) for argument in arguments)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _aliases_in(annotation: Any) -> list[str]:
    """The names of the CHOICES aliases used in `annotation` (directly or inside a union or a list)."""
    from rerender.config import CHOICES

    names = [name for name, alias in CHOICES.items() if annotation == alias]
    for argument in typing.get_args(annotation):
        if typing.get_origin(annotation) is not typing.Literal:
            names += _aliases_in(argument)
    return names


def default_text(value: Any) -> str:
    """A default as it is written in a YAML config (`null`, `true`, `[0.5, 0.8]`, `"canny"`)."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return str(value)


def _alias_docstrings() -> dict[str, str]:
    """The docstring under each module-level alias of `rerender.config.sections` (``BlendMode = Literal[...]``)."""
    import ast
    import inspect

    import rerender.config.sections as sections

    body = ast.parse(inspect.getsource(sections)).body
    docs = {}
    for statement, following in zip(body, body[1:]):
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.targets[0].id] = " ".join(following.value.value.split())
    return docs


def config_markdown() -> str:
    """The configuration reference page."""
    from rerender.config import CHOICES, choices, field_default, field_help, field_type, option_paths

    lines = [
        "# Configuration options",
        "",
        "Generated from the `RerenderConfig` dataclasses when the site is built: every option with its type, "
        "default and help (the docstring under its field in `rerender/config/sections.py`). Set an option in a "
        "YAML file (`--config FILE`), on the command line (`--set KEY=VALUE`, by leaf name or dotted path) or in "
        "Python (`translate(..., KEY=VALUE)`); see [Configuration](../concepts/configuration.md). `control.*` "
        "options are those of each entry of the `control` list (the defaults are the first ControlNet's).",
        "",
    ]
    section = None
    used_aliases: list[str] = []
    for path in option_paths():
        head = path.split(".")[0]
        if head != section:
            section = head
            lines += ["", f"## {section}", "", "| option | type | default | help |", "|---|---|---|---|"]
        annotation = field_type(path)
        aliases = _aliases_in(annotation)
        used_aliases += [name for name in aliases if name not in used_aliases]
        kind = type_name(annotation)
        for name in aliases:
            kind = kind.replace(name, f"[{name}](#{name.lower()})", 1)
        help_text = _cell(field_help(path))
        lines.append(f"| `{path}` | {_cell(kind)} | `{_cell(default_text(field_default(path)))}` | {help_text} |")
    lines += [
        "",
        "## Value sets",
        "",
        "Each closed set of values is one `Literal` alias in `rerender.config`; the "
        "config's checks, the CLI's choices and the web page's menus all read it.",
        "",
    ]
    alias_docs = _alias_docstrings()
    for name in CHOICES:
        values = ", ".join(f"`{value}`" for value in choices(CHOICES[name]))
        lines += [
            f"### {name}",
            "",
            *([alias_docs[name], ""] if alias_docs.get(name) else []),
            f"Values: {values}",
            "",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------- API

API_PAGES = {
    "rerender": "The front door: `import rerender` gives these names (they load on first use, so the import is "
    "fast). Everything else stays importable from its module.",
    "rerender.config": "`RerenderConfig`, a tree of frozen, typed dataclasses; loading, saving and overriding it; "
    "every closed set of values as a `Literal` alias.",
    "rerender.video": "Reading and writing video: probing what a viewer sees, streaming frames, the processing "
    "size, writing H.264 with the source's timing and audio.",
    "rerender.flow": "Optical flow: the estimators (GMFlow, OpenCV DIS), the flow operations (warping, occlusion, "
    "composition) and the on-disk flow cache.",
    "rerender.diffusion": "The keyframe half of the method: `RerenderPipeline` and the pieces it is made of. The "
    "only package that imports diffusers.",
    "rerender.propagation": "The propagation half of the method: keyframes carried to every frame by guided patch "
    "synthesis (`ebsynth_bridge`) and blended.",
    "rerender.workflow": "Orchestration on a workspace: the entry points, the stages, the keyframe renderers and "
    "the executors (this process or Ray).",
    "ebsynth_bridge": "Our EbSynth: guided example-based synthesis with multi-scale PatchMatch, compiled with "
    "numba. It imports only numpy, numba, OpenCV and scipy, and is useful on its own.",
}


def _summaries(paths: list[str]) -> dict[str, str]:
    """The first line of each object's docstring, read statically with griffe (empty where griffe is missing)."""
    try:
        import griffe
    except ImportError:
        return {}
    loader = griffe.GriffeLoader(search_paths=[str(REPO)])
    package = loader.load("rerender")
    loader.resolve_aliases(implicit=True)
    found = {}
    for path in paths:
        try:
            docstring = package[path.removeprefix("rerender.")].docstring
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        found[path] = docstring.value.strip().split("\n\n")[0] if docstring else ""
    return found


def _front_door() -> list[str]:
    """A table of `rerender.__all__`, grouped by the comments in `rerender._LAZY`, each name linked to its
    documentation on the namespace pages."""
    source = (REPO / "rerender" / "__init__.py").read_text(encoding="utf-8")
    body = source[source.index("_LAZY = {") :]
    body = body[: body.index("\n}")]
    rows: list[tuple[str, str, str]] = []  # (group, name, module)
    group = ""
    for line in body.splitlines()[1:]:
        comment = re.match(r"\s*# (.+)", line)
        entry = re.match(r'\s*"(\w+)": "([\w.]+)"', line)
        if comment:
            group = comment.group(1)[0].upper() + comment.group(1)[1:]
        elif entry:
            rows.append((group, entry.group(1), entry.group(2)))
    summaries = _summaries([f"{module}.{name}" for _, name, module in rows])
    lines: list[str] = []
    for index, (group, name, module) in enumerate(rows):
        if index == 0 or rows[index - 1][0] != group:
            lines += ["", f"## {group}", "", "| name | what it is |", "|---|---|"]
        summary = _cell(summaries.get(f"{module}.{name}", ""))
        lines.append(f"| [`rerender.{name}`][{module}.{name}] | {summary} |")
    return lines


def _submodules(name: str) -> list[str]:
    """The public modules below package `name`, found on disk (nothing is imported)."""
    folder = REPO.joinpath(*name.split("."))
    if not folder.is_dir():
        return []
    found = []
    for info in pkgutil.iter_modules([str(folder)]):
        if not info.name.startswith("_"):
            found.append(f"{name}.{info.name}")
            found += _submodules(f"{name}.{info.name}")
    return found


def api_markdown(name: str) -> str:
    """The API page of namespace `name` (a key of `API_PAGES`)."""
    lines = [f"# {name}", "", API_PAGES[name], ""]
    if name == "rerender":
        errors = [
            "",
            "## Errors",
            "",
            "Every error rerender raises subclasses `RerenderError` and the matching builtin "
            "(`ValueError`, `FileNotFoundError`, ...), so `except ValueError` still catches bad input.",
            "",
            "::: rerender.errors",
            "    options:",
            "      show_root_heading: false",
            "      heading_level: 3",
        ]
        return "\n".join(lines + _front_door() + errors)
    lines += [f"::: {name}", "    options:", "      show_root_heading: false", ""]
    for module in _submodules(name):
        lines += [f"::: {module}", "    options:", "      heading_level: 2", ""]
    return "\n".join(lines)


def api_page_path(name: str) -> str:
    return "reference/api/" + ("rerender" if name == "rerender" else name.removeprefix("rerender.")) + ".md"


# ------------------------------------------------------------------------------------------------------ mkdocs


def main() -> None:
    import mkdocs_gen_files

    pages = {"reference/cli.md": cli_markdown(), "reference/config.md": config_markdown()}
    pages.update({api_page_path(name): api_markdown(name) for name in API_PAGES})
    for path, text in pages.items():
        with mkdocs_gen_files.open(path, "w") as page:
            page.write(text)


if __name__ in ("__main__", "<run_path>"):  # mkdocs-gen-files runs the script with runpy
    main()
