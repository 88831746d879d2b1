"""What a developer who embeds rerender in their own program (a web service, a notebook, a batch script) runs into
through the Python API (tenth round): arguments of the wrong type, config dataclasses built by hand, `pathlib.Path`
values, a pipeline shared by two threads; each case a defect found by doing so, with the behaviour that should have
happened."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import rerender
from rerender.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs/tiny.yaml")


def _classic(clip, out, **extra):
    options = {"config": TINY, "renderer": "classic", "progress": False}
    return rerender.translate(clip, "a cartoon", output=out, **{**options, **extra})


@pytest.mark.parametrize("entry", ["translate", "animate", "generate", "propagate_keyframes"])
def test_an_output_that_is_no_path_is_a_config_error_naming_output(silent_clip, tmp_path, entry):
    # was: TypeError("expected str, bytes or os.PathLike object, not int") from pathlib, deep in the preflight
    from PIL import Image

    still = tmp_path / "still.png"
    Image.new("RGB", (64, 48)).save(still)
    calls = {
        "translate": lambda: _classic(silent_clip, 5),
        "animate": lambda: rerender.animate(
            still, "x", seconds=0.2, output=5, config=TINY, renderer="classic", progress=False
        ),
        "generate": lambda: rerender.generate("x", frames=2, output=5, progress=False),
        "propagate_keyframes": lambda: rerender.propagate_keyframes(silent_clip, tmp_path, 5, progress=False),
    }
    with pytest.raises(ConfigError, match=r"`output` must be a path \(a str or os.PathLike\), got 5"):
        calls[entry]()
    assert list(tmp_path.iterdir()) == [still]
