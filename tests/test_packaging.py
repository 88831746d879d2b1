"""The repository's promises: README commands = CI, import layering, shipped assets."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [block.strip() for block in blocks]


def test_ci_runs_exactly_the_readme_test_command():
    commands = _readme_commands()
    test_commands = [c for c in commands if "pytest" in c]
    assert len(test_commands) == 1
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_commands[0] in ci_lines
    assert "set -euo pipefail" in ci_lines


def test_readme_first_screen_has_both_commands_with_pinned_torch():
    commands = _readme_commands()[:2]
    assert len(commands) == 2
    assert all('"torch==2.13.0"' in command for command in commands)
    assert ".venv/bin/rerender" in commands[0] and "pytest" in commands[1]


def _imported_modules(package: Path) -> set[str]:
    modules = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


def test_ebsynth_bridge_never_imports_rerender_or_diffusion_libraries():
    imported = _imported_modules(REPO / "ebsynth_bridge")
    assert not imported & {"rerender", "diffusers", "transformers"}


def test_low_level_modules_do_not_import_the_orchestration():
    # Dependencies flow one way: cli → api → engines → math. The foundations import none of the layers above.
    for name in ("config", "video", "errors.py", "synthetic.py"):  # a module, or a package and all its modules
        path = REPO / "rerender" / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        assert files, name
        for file in files:
            tree = ast.parse(file.read_text(encoding="utf-8"))
            imported = {
                node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
            }
            layers_above = ("rerender.cli", "rerender.ui", "rerender.workflow", "rerender.diffusion")
            assert not {m for m in imported if m.startswith(layers_above)}, file


def test_bundled_demo_clip_is_packaged_and_readable():
    from rerender.video import probe_video

    info = probe_video(REPO / "rerender" / "assets" / "demo.mp4")
    assert info.frame_count == 100 and info.fps == 25 and info.width == 512


def test_import_rerender_is_light():
    import subprocess
    import sys

    code = "import sys, rerender, rerender.config, rerender.cli; print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
