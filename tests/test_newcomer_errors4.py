"""What a new user runs into (fourth round): each case a defect found by using the CLI, the Python API and the docs
as a newcomer would, with the behaviour that should have happened (the argument as typed, the value, what is
valid; exit 2 for usage errors, before any expensive work)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


class _Stop(Exception):
    """Raised by a stand-in once the keyframe renderer has seen its arguments."""


@pytest.fixture
def text_keyframe_call(monkeypatch):
    """`generate` up to its keyframe renderer, with no model loaded: returns the renderer's arguments."""
    import rerender.workflow.generation as generation
    from rerender.diffusion import loading

    seen: dict = {}

    def render(pipeline, prompt, indices, motion, size, **kwargs):
        seen.update(kwargs, seed=kwargs["generator"].initial_seed())
        raise _Stop

    monkeypatch.setattr(generation, "render_text_keyframes", render)
    monkeypatch.setattr(loading, "load_pipeline", lambda *args, **kwargs: object())

    def call(*args, **kwargs):
        seen.clear()
        with pytest.raises(_Stop):
            generation.generate(*args, **kwargs)
        return dict(seen)

    return call


def test_python_generate_takes_the_seed_and_steps_from_the_config(text_keyframe_call, tiny_pipeline_dir, tmp_path):
    # was: `rerender.generate(config=...)` ran seed 0 whatever `sampling.seed` said (only the CLI read it)
    from rerender.config import RerenderConfig, apply_overrides

    config = apply_overrides(
        RerenderConfig(), {"base_model": str(tiny_pipeline_dir), "seed": 7, "num_inference_steps": 5}
    )
    common = dict(frames=3, K=2, size=(64, 64), config=config, progress=False, output=tmp_path / "a.mp4")
    seen = text_keyframe_call("a cat", **common)
    assert (seen["seed"], seen["num_inference_steps"]) == (7, 5)
    seen = text_keyframe_call("a cat", seed=3, num_inference_steps=4, **common)  # an explicit argument wins
    assert (seen["seed"], seen["num_inference_steps"]) == (3, 4)
