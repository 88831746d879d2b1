"""The documentation site: it builds with no warning, and its generated references are complete and right."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gen():
    """docs/scripts/gen_reference.py, the script mkdocs-gen-files runs (it needs no mkdocs to make the pages)."""
    spec = importlib.util.spec_from_file_location("gen_reference", REPO / "docs" / "scripts" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _section(markdown: str, title: str) -> str:
    """The text under the heading `title` (any level, optionally in backticks), up to the next heading of the same
    or a higher level."""
    match = re.search(rf"^(#+) `?{re.escape(title)}`?\s*$", markdown, flags=re.M)
    assert match, f"no heading {title!r}"
    level = len(match.group(1))
    rest = markdown[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


def _commands(parser: argparse.ArgumentParser, path: str = "rerender"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{path} {name}")


def _mentions(text: str, word: str) -> bool:
    """Whether `word` (an option such as `--blend` or a choice such as `auto`) stands on its own in `text`."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def test_cli_reference_has_every_command_and_every_option(gen):
    from rerender.cli import build_parser

    markdown = gen.cli_markdown()
    commands = list(_commands(build_parser()))
    assert {
        "rerender translate",
        "rerender batch",
        "rerender animate",
        "rerender generate",
        "rerender download",
        "rerender env",
        "rerender ui",
        "rerender config show",
    } <= {name for name, _ in commands}
    for name, parser in commands:
        # the program's own options come before the first command's section
        section = markdown.split("\n## ")[0] if name == "rerender" else _section(markdown, name)
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            for option in action.option_strings or [action.metavar or action.dest]:
                assert _mentions(section, option), f"{name}: {option} is missing"
            for choice in action.choices or ():
                assert _mentions(section, str(choice)), f"{name}: choice {choice!r} of {action.dest} is missing"


def _row(markdown: str, path: str) -> list[str]:
    rows = [line for line in markdown.splitlines() if line.startswith(f"| `{path}` |")]
    assert len(rows) == 1, f"{path}: {len(rows)} rows"
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", rows[0])[1:-1]]


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _type_names(annotation, aliases) -> set[str]:
    for name, alias in aliases.items():
        if annotation == alias:
            return {name}
    arguments = typing.get_args(annotation)
    if annotation is type(None):
        return {"None"}
    if not arguments:
        return {getattr(annotation, "__name__", str(annotation))}
    names = set().union(*(_type_names(argument, aliases) for argument in arguments if argument is not Ellipsis))
    origin = typing.get_origin(annotation)
    return names | ({origin.__name__} if origin in (list, tuple, dict) else set())


def test_config_reference_has_every_option_with_its_type_default_and_help(gen):
    from rerender.config import CHOICES, choices, field_default, field_help, field_type, option_paths

    markdown = gen.config_markdown()
    paths = option_paths()
    assert {"propagation.blend_mode", "sampling.denoising_strength", "control.type", "video.crop.left"} <= set(paths)
    for path in paths:
        _, kind, default, help_text = _row(markdown, path)
        assert help_text == " ".join(field_help(path).split()), path
        # the default cell, read back as YAML, is the dataclass default
        assert default.startswith("`") and default.endswith("`"), path
        assert yaml.safe_load(default[1:-1]) == _plain(field_default(path)), path
        for name in _type_names(field_type(path), CHOICES):
            assert name in kind, f"{path}: type {name} missing from {kind!r}"
    values = _section(markdown, "Value sets")
    for name, alias in CHOICES.items():
        assert all(f"`{value}`" in _section(values, name) for value in choices(alias)), name
    # the blend default that once drifted in the hand-written tables
    assert _row(markdown, "propagation.blend_mode")[2] == f"`{json.dumps(field_default('propagation.blend_mode'))}`"


def test_api_front_door_page_lists_every_public_name(gen):
    import rerender

    page = gen.api_markdown("rerender")
    for name in rerender.__all__:
        if name != "__version__":
            assert f"`rerender.{name}`" in page, name
    assert set(gen.API_PAGES) == {
        "rerender",
        "rerender.config",
        "rerender.video",
        "rerender.flow",
        "rerender.diffusion",
        "rerender.propagation",
        "rerender.workflow",
        "ebsynth_bridge",
    }


def test_user_facing_pages_never_point_outside_the_repository():
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    for page in pages:
        if page.name != "development.md":  # the contributor page says where the shared material lives
            text = page.read_text(encoding="utf-8")
            assert "../shared" not in text and "/work/" not in text, page


def test_every_nav_page_and_link_target_exists_and_the_site_builds_strictly(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_gen_files"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the docs extra: pip install -e '.[docs]')")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "NO_MKDOCS_2_WARNING": "1",
        "DISABLE_MKDOCS_2_WARNING": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    cli_page = (tmp_path / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "rerender translate" in cli_page and "--blend" in cli_page
    assert "propagation.blend_mode" in (tmp_path / "reference" / "config" / "index.html").read_text(encoding="utf-8")


def test_readme_is_short_lists_every_command_and_shows_an_existing_image():
    from rerender.cli import build_parser

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    table = [line for line in readme.splitlines() if line.startswith("| `rerender ")]
    top_level = {name.split()[1] for name, _ in _commands(build_parser()) if name != "rerender"}
    assert top_level == {row.split("`")[1].split()[1] for row in table}
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith("http"):
            # pages written on other branches this round are in mkdocs.yml's nav; the rest must exist here
            assert (REPO / target).exists() or target.removeprefix("docs/") in (REPO / "mkdocs.yml").read_text(), (
                target
            )
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert images and all((REPO / image).is_file() for image in images)
