"""A run whose keyframes are finished loads no model, and `stage` 'propagate' never renders keyframes again."""

from __future__ import annotations

import hashlib

import pytest

from rerender.workflow.translation import translate

from .test_translate_diffusion import SETTINGS


def digests(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_pipeline_dir):
    from rerender.diffusion.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def refuse_loading(monkeypatch):
    import rerender.workflow.renderers as renderers

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded although the keyframes are finished")

    monkeypatch.setattr(renderers.DiffusionRenderer, "from_config", classmethod(refuse))
    monkeypatch.setattr(renderers, "ClassicRenderer", refuse)


def test_finished_keyframes_load_no_model(synthetic_clip, tmp_path, tiny_pipeline_dir, monkeypatch):
    from rerender.config import RerenderConfig, apply_overrides

    config = apply_overrides(
        RerenderConfig(),
        {
            **SETTINGS,
            "end_frame": 6,
            "base_model": str(tiny_pipeline_dir),
            "control.0.model": str(tiny_pipeline_dir / "controlnet"),
        },
    )
    workspace = tmp_path / "ws"
    first = translate(
        synthetic_clip,
        "a cat",
        K=4,
        output=None,
        stage="keyframes",
        config=config,
        workspace=workspace,
        progress=False,
    )
    assert first.renderer == "diffusion"
    before = digests(workspace / "keyframes")
    refuse_loading(monkeypatch)
    done = translate(  # the same stage again: everything it needs is in the workspace
        synthetic_clip,
        "a cat",
        K=4,
        output=None,
        stage="keyframes",
        config=config,
        workspace=workspace,
        progress=False,
    )
    assert done.renderer == "diffusion" and done.reused == ["frames", "keyframes"]
    assert digests(workspace / "keyframes") == before


def test_propagate_stage_keeps_keyframes_another_renderer_made(synthetic_clip, tmp_path, tiny_pipeline, monkeypatch):
    """Keyframes made with a pipeline, propagated where its weights are absent (renderer 'auto' would pick classic)."""
    from rerender.errors import ConfigError

    workspace = tmp_path / "ws"
    settings = {key: value for key, value in SETTINGS.items() if key != "vae"} | {"end_frame": 6}
    translate(
        synthetic_clip,
        "a cat",
        K=4,
        output=None,
        stage="keyframes",
        workspace=workspace,
        pipeline=tiny_pipeline,
        progress=False,
        vae=None,
        **settings,
    )
    before = digests(workspace / "keyframes")
    refuse_loading(monkeypatch)
    done = translate(
        synthetic_clip,
        "a cat",
        K=4,
        output=tmp_path / "o.mp4",
        stage="propagate",
        workspace=workspace,
        renderer="auto",
        progress=False,
        vae=None,
        **settings,
    )
    assert digests(workspace / "keyframes") == before
    assert done.renderer == "diffusion" and "keyframes" in done.reused

    # a damaged keyframe cannot be rendered again by another renderer: refused, every file left as it is
    damaged = workspace / "keyframes" / "0005.png"
    damaged.write_bytes(damaged.read_bytes()[:100])
    before = digests(workspace / "keyframes")
    with pytest.raises(ConfigError, match=r"rendered with renderer 'diffusion' while this run would use 'classic'"):
        translate(
            synthetic_clip,
            "a cat",
            K=4,
            output=tmp_path / "p.mp4",
            stage="propagate",
            workspace=workspace,
            renderer="auto",
            progress=False,
            vae=None,
            **settings,
        )
    assert digests(workspace / "keyframes") == before and not (tmp_path / "p.mp4").exists()
