"""`workflow.preflight.check_run`: every argument that needs no decoding is refused first, by every entry point,
with the argument's name, the value and what is valid, and before any decoding or model loading."""

from __future__ import annotations

import time

import numpy as np
import pytest

import rerender.diffusion.loading
import rerender.video
import rerender.workflow.keyframe_folder  # noqa: F401 - imported before `no_decoding` patches probe_video, which it binds
import rerender.workflow.stages
import rerender.workflow.translation
from rerender.errors import ConfigError, OutputPathError
from rerender.workflow.preflight import WRITING_STAGES, check_run


@pytest.fixture
def no_decoding(monkeypatch):
    """Any decode, probe or model load fails the test: a refusal must come before all of them."""

    def forbidden(*args, **kwargs):
        raise AssertionError("decoded or loaded something before refusing")

    for module in (rerender.video, rerender.workflow.stages, rerender.workflow.translation):
        for name in ("read_frames", "probe_video", "choose_renderer"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, forbidden)
    monkeypatch.setattr(rerender.diffusion.loading, "load_pipeline", forbidden)
    started = time.perf_counter()
    yield
    assert time.perf_counter() - started < 5.0  # a refusal is a few checks, not a decode (generous: a busy machine)


@pytest.mark.parametrize("stage", WRITING_STAGES)
def test_output_none_with_a_stage_that_writes_a_video_is_refused_at_once(synthetic_clip, tmp_path, stage, no_decoding):
    # before: every stage ran, then a bare AssertionError at the end
    with pytest.raises(
        ConfigError,
        match=rf"`output` is None, but stage '{stage}' writes a video; pass output=.*"
        r"stage='keyframes'",
    ):
        rerender.workflow.translation.translate(
            synthetic_clip,
            "a cat",
            output=None,
            stage=stage,
            renderer="classic",
            workspace=tmp_path / "ws",
            progress=False,
        )
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(stage="everything"),
            ConfigError,
            r"`stage` must be one of 'first', 'keyframes', 'propagate', 'all', got 'everything'",
        ),
        (
            dict(renderer="difusion"),
            ConfigError,
            r"`renderer` must be one of 'auto', 'diffusion', 'classic' or a renderer object, got 'difusion'",
        ),
        (
            dict(renderer=object()),
            ConfigError,
            r"`renderer` must be a renderer name or an object with a `name` and a `render`",
        ),
        (dict(K=0), ConfigError, r"`K` must be an integer ≥ 1"),
        (dict(K="4"), ConfigError, r"`K` must be an integer ≥ 1, got '4'"),
        (dict(denoising_strenght=0.5), ConfigError, r"unknown option `denoising_strenght`.*denoising_strength"),
        (dict(blend_mode="agreemnt"), ConfigError, r"blend_mode"),
        (dict(output="out.gif"), OutputPathError, r"out\.gif"),
    ],
)
def test_each_argument_is_refused_before_any_decoding(synthetic_clip, tmp_path, kwargs, error, message, no_decoding):
    arguments = dict(output=tmp_path / "out.mp4", renderer="classic", workspace=tmp_path / "ws", progress=False)
    arguments.update(kwargs)
    if isinstance(arguments["output"], str):
        arguments["output"] = tmp_path / arguments["output"]
    with pytest.raises(error, match=message):
        rerender.workflow.translation.translate(synthetic_clip, "a cat", **arguments)


def test_the_output_must_not_be_the_input(synthetic_clip, no_decoding):
    with pytest.raises(OutputPathError, match="input"):
        check_run(None, output=synthetic_clip, inputs=[synthetic_clip], renderer="classic")


def test_an_executor_refuses_its_config_in_preflight(tmp_path, no_decoding):
    class NoGpus:
        def check(self, config):
            raise ConfigError("`keyframe_segments` is 2 but the cluster has 1 GPUs; use at most 1")

    with pytest.raises(ConfigError, match="keyframe_segments"):
        check_run(None, output=tmp_path / "out.mp4", renderer="classic", executor=NoGpus())


def test_check_run_resolves_the_config_and_the_renderer():
    checked = check_run(
        None, prompt="a cat", K=4, overrides={"denoising_strength": 0.5}, stage="keyframes", renderer="classic"
    )
    assert checked.config.prompt.prompt == "a cat" and checked.config.keyframes.keyframe_interval == 4
    assert checked.config.sampling.denoising_strength == 0.5 and checked.config.model.renderer == "classic"
    assert checked.output is None and checked.renderer is None and checked.stage == "keyframes"

    class Custom:
        name = "mine"

        def render(self, frames, indices, done, state_dir, on_progress=None):
            yield from frames

    custom = Custom()
    assert check_run(None, stage="keyframes", renderer=custom).renderer is custom


def test_propagate_keyframes_checks_first(synthetic_clip, tmp_path, no_decoding):
    from rerender.workflow.keyframe_folder import propagate_keyframes

    (tmp_path / "keys").mkdir()
    with pytest.raises(ConfigError, match=r"`first_number` must be an integer ≥ 0, got -1"):
        propagate_keyframes(synthetic_clip, tmp_path / "keys", tmp_path / "out.mp4", first_number=-1)
    with pytest.raises(ConfigError, match=r"unknown option `blend`"):
        propagate_keyframes(synthetic_clip, tmp_path / "keys", tmp_path / "out.mp4", blend="agreement")
    with pytest.raises(OutputPathError):
        propagate_keyframes(synthetic_clip, tmp_path / "keys", synthetic_clip)


def test_animate_checks_its_options_before_making_the_clip(tmp_path, no_decoding, monkeypatch):
    import rerender.workflow.animation as animation

    def no_clip(*args, **kwargs):
        raise AssertionError("made the clip before refusing")

    monkeypatch.setattr(animation, "render_clip", no_clip)
    monkeypatch.setattr(animation, "motion_path", no_clip)
    with pytest.raises(ConfigError, match=r"`renderer` must be one of"):
        animation.animate(np.zeros((64, 64, 3), np.uint8), "a cat", output=tmp_path / "out.mp4", renderer="clasic")
    with pytest.raises(ConfigError, match=r"unknown option `strenght`"):
        animation.animate(np.zeros((64, 64, 3), np.uint8), "a cat", output=tmp_path / "out.mp4", strenght=0.4)
    assert list(tmp_path.iterdir()) == []


def test_generate_checks_its_options_before_any_model_loads(tmp_path, no_decoding):
    from rerender.workflow.generation import generate

    with pytest.raises(ConfigError, match=r"unknown option `guidance`"):
        generate("a cat", frames=8, K=4, output=tmp_path / "out.mp4", guidance=3)
    with pytest.raises(OutputPathError, match=r"out\.txt"):
        generate("a cat", frames=8, K=4, output=tmp_path / "out.txt")


def test_batch_checks_its_options_before_any_job(synthetic_clip, tmp_path, no_decoding):
    from rerender.workflow.batching import batch

    with pytest.raises(ConfigError, match=r"`renderer` must be one of 'auto', 'diffusion', 'classic', got 'fast'"):
        batch([{"video": str(synthetic_clip)}], "a cat", output_dir=tmp_path, renderer="fast")
    with pytest.raises(ConfigError, match=r"unknown option `strenght`"):
        batch([{"video": str(synthetic_clip)}], "a cat", output_dir=tmp_path, strenght=0.4)


def test_no_assert_on_user_input_in_the_library():
    import ast
    from pathlib import Path

    root = Path(rerender.video.__file__).resolve().parent
    root = root.parent if root.name == "video" else root
    found = [
        f"{path.relative_to(root)}:{node.lineno}"
        for path in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert found == []
