"""The layering of docs/development.md, as import-linter contracts in pyproject.toml, holds for this checkout."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return {contract["id"]: contract for contract in config["tool"]["importlinter"]["contracts"]}


def _children() -> set[str]:
    """Every module and package directly under rerender/ in this checkout (read from disk, not imported)."""
    return {f"rerender.{info.name}" for info in pkgutil.iter_modules([str(REPO / "rerender")])}


def test_lint_imports_keeps_every_contract():
    pytest.importorskip("importlinter", reason="import-linter is in the dev extra: pip install -e '.[dev]'")
    executable = Path(sys.executable).with_name("lint-imports")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "importlinter.cli"]
    # This checkout first on the path, so the graph is built from these files and not an installed copy.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([*command, "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in output, output


@pytest.mark.parametrize(
    ("contract", "exempt"),
    [
        ("diffusers-only-in-diffusion", {"rerender.diffusion", "rerender.__main__"}),
        (
            "transformers-only-where-needed",
            {"rerender.diffusion", "rerender.languages", "rerender.evaluation", "rerender.sound", "rerender.__main__"},
        ),
        ("library-never-imports-cli-or-ui", {"rerender.cli", "rerender.ui", "rerender.__main__"}),
    ],
)
def test_forbidden_contracts_cover_every_module(contract, exempt):
    # A module added under rerender/ is checked by these contracts only once it is listed; the layers contract is
    # exhaustive by itself. __main__ only runs the CLI.
    sources = set(_contracts()[contract]["source_modules"])
    missing = _children() - exempt - sources
    assert not missing, f"add {sorted(missing)} to source_modules of the {contract!r} contract in pyproject.toml"
    assert not sources & exempt, f"{sorted(sources & exempt)} may import what {contract!r} forbids"


def test_layers_contract_is_exhaustive_over_the_package():
    layers = _contracts()["layers"]
    assert layers["containers"] == ["rerender"] and layers["exhaustive"] is True
