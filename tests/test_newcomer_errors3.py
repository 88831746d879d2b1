"""What a new user runs into (third round, SDXL / Flux / Z-Image / propagation engines / Ray / download / env):
each case a defect found by using the CLI, the Python API and the docs as a newcomer would, with the behaviour
that should have happened (the argument as typed, the value, what is valid; exit 2 for usage errors, before any
expensive work)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rerender.cli import main

REPO = Path(__file__).resolve().parents[1]
HAVE_CONTROLNET_AUX = importlib.util.find_spec("controlnet_aux") is not None


@pytest.mark.skipif(HAVE_CONTROLNET_AUX, reason="controlnet-aux is installed here")
def test_an_annotator_that_cannot_import_is_refused_before_the_model_loads(
    silent_clip, tiny_pipeline_dir, tmp_path, capsys, monkeypatch
):
    # was: the frames decoded and the whole model loaded (minutes for SDXL), then "the 'depth' annotator needs
    # controlnet-aux" from inside the keyframe stage
    from rerender.diffusion import loading

    monkeypatch.setattr(loading, "load_pipeline", lambda *a, **k: pytest.fail("the model was loaded"))
    out = tmp_path / "out.mp4"
    args = ["translate", str(silent_clip), "-p", "x", "-o", str(out), "--model", str(tiny_pipeline_dir)]
    args += ["--renderer", "diffusion", "--set", "control.0.type=depth", "--config", str(REPO / "configs/tiny.yaml")]
    assert main(args) == 1  # a missing dependency is the machine's state, not a usage error (as before)
    err = capsys.readouterr().err
    assert "`control[0].type` 'depth'" in err and "rerender[annotators]" in err and "canny" in err
    assert not (tmp_path / "out.mp4.work").exists()  # refused before any frame was decoded
