"""`translate` with the tiny SD1.5 pipeline: real diffusion keyframes, exact resume, UNet-call accounting."""

from __future__ import annotations

import numpy as np
import pytest

from rerender.video import probe_video, read_image
from rerender.workflow.translation import translate

SETTINGS = dict(
    resolution=64,
    size_multiple=16,
    num_inference_steps=4,
    denoising_strength=0.75,
    vae=None,
    device="cpu",
    dtype="float32",
    added_prompt="",
    negative_prompt="",
    propagation_preset="fast",
    workers=1,
    flow_estimator="dis",
    dis_preset="fast",
)


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_pipeline_dir):
    from rerender.diffusion.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


class UNetCounter:
    def __init__(self, pipeline):
        self.calls = 0
        self.handle = pipeline.unet.register_forward_hook(self._count)

    def _count(self, module, inputs, output):
        self.calls += 1

    def close(self):
        self.handle.remove()


def test_translate_with_diffusion_keyframes(synthetic_clip, tmp_path, tiny_pipeline):
    counter = UNetCounter(tiny_pipeline)
    try:
        result = translate(
            synthetic_clip, "a cat", K=8, output=tmp_path / "o.mp4", pipeline=tiny_pipeline, progress=False, **SETTINGS
        )
    finally:
        counter.close()
    assert result.renderer == "diffusion" and result.keyframe_indices == [0, 8, 19]
    info = probe_video(result.output)
    assert info.frame_count == 20 and (info.width, info.height) == (64, 48) and info.has_audio
    assert counter.calls > 0


def test_interrupted_diffusion_run_resumes_exactly(synthetic_clip, tmp_path, tiny_pipeline):
    workspace = tmp_path / "ws"
    uninterrupted = tmp_path / "reference"

    counter = UNetCounter(tiny_pipeline)
    try:
        translate(
            synthetic_clip,
            "a cat",
            K=4,
            output=None,
            stage="keyframes",
            workspace=uninterrupted,
            pipeline=tiny_pipeline,
            progress=False,
            **SETTINGS,
        )
        full_calls = counter.calls

        def interrupt(stage, done, total):
            # progress counts denoising steps: 3 for the anchor, 4 per keyframe; step 12 is the 4th keyframe's first
            if stage == "keyframes" and done == 12:
                raise KeyboardInterrupt

        counter.calls = 0
        with pytest.raises(KeyboardInterrupt):
            translate(
                synthetic_clip,
                "a cat",
                K=4,
                output=None,
                stage="keyframes",
                workspace=workspace,
                pipeline=tiny_pipeline,
                progress=False,
                callback=interrupt,
                **SETTINGS,
            )
        interrupted_calls = counter.calls
        counter.calls = 0
        translate(
            synthetic_clip,
            "a cat",
            K=4,
            output=None,
            stage="keyframes",
            workspace=workspace,
            pipeline=tiny_pipeline,
            progress=False,
            **SETTINGS,
        )
        resumed_calls = counter.calls
    finally:
        counter.close()
    # 5 keyframes (0, 4, 8, 12, 16); 3 were finished before the interrupt. Resuming re-renders only the anchor
    # (to rebuild its references) and the 2 missing keyframes.
    assert resumed_calls < full_calls
    assert interrupted_calls + resumed_calls < 2 * full_calls
    for index in (0, 4, 8, 12, 16):
        np.testing.assert_array_equal(
            read_image(workspace / "keyframes" / f"{index:04d}.png"),
            read_image(uninterrupted / "keyframes" / f"{index:04d}.png"),
        )


def test_keyframe_progress_advances_per_denoising_step_and_resumes(synthetic_clip, tmp_path, tiny_pipeline):
    # 4 steps at strength 0.75 run steps 1–3; pixel-aware fusion (strict 2 < i < 3.2) reruns step 3: the anchor
    # costs 3 UNet calls, every keyframe 4. K=4 gives 5 keyframes (the plain chain, last_frame_keyframe=False): 19
    # steps in all.
    assert tiny_pipeline.planned_unet_calls(5, 4, 0.75) == [3, 4, 4, 4, 4]
    events = []

    def record(stage, done, total):
        if stage == "keyframes":
            events.append((done, total))
            if interrupt_at is not None and done == interrupt_at:
                raise KeyboardInterrupt

    counter = UNetCounter(tiny_pipeline)
    interrupt_at = 12  # the first step of the 4th keyframe: 3 keyframes are finished
    try:
        with pytest.raises(KeyboardInterrupt):
            translate(
                synthetic_clip,
                "a cat",
                K=4,
                output=None,
                stage="keyframes",
                workspace=tmp_path / "ws",
                pipeline=tiny_pipeline,
                progress=False,
                callback=record,
                last_frame_keyframe=False,
                **SETTINGS,
            )
        assert events == [(done, 19) for done in range(13)] and counter.calls == 12
        events.clear()
        interrupt_at, counter.calls = None, 0
        translate(
            synthetic_clip,
            "a cat",
            K=4,
            output=None,
            stage="keyframes",
            workspace=tmp_path / "ws",
            pipeline=tiny_pipeline,
            progress=True,
            callback=record,
            last_frame_keyframe=False,
            **SETTINGS,
        )
    finally:
        counter.close()
    # resumed: the finished keyframes 4 and 8 count as done (8 steps), then the anchor is re-rendered (3) and
    # keyframes 12 and 16 follow (8): one event per UNet call, reaching the total
    assert events == [(done, 19) for done in range(8, 20)] and counter.calls == 11
    assert tiny_pipeline._progress_bar_config == {"disable": True}  # the pipeline's own bars are restored


def test_precomputed_maps_beside_an_annotated_controlnet(synthetic_clip, tmp_path, tiny_pipeline_dir):
    """Pose-style workflow: one ControlNet reads precomputed maps, a second one annotates the frames (canny)."""
    from rerender.config import ControlConfig, RerenderConfig, apply_overrides
    from rerender.diffusion.control import canny
    from rerender.diffusion.loading import load_pipeline
    from rerender.video import read_frames, write_png_sequence

    maps = tmp_path / "maps"
    write_png_sequence((canny(frame, 30, 60) for frame in read_frames(synthetic_clip)), maps)
    config = RerenderConfig(
        control=(
            ControlConfig(
                type="precomputed", maps=str(maps), model=str(tiny_pipeline_dir / "controlnet"), strength=1.0
            ),
            ControlConfig(type="canny", strength=0.5, model=str(tiny_pipeline_dir / "controlnet")),
        )
    )
    config = apply_overrides(config, {**SETTINGS, "base_model": str(tiny_pipeline_dir)})
    pipeline = load_pipeline(config.model, config.control)  # two ControlNets: maps from the folder, then canny
    pipeline.set_progress_bar_config(disable=True)
    assert len(pipeline.controlnets) == 2
    result = translate(
        synthetic_clip, "a cat", K=10, output=tmp_path / "o.mp4", config=config, pipeline=pipeline, progress=False
    )
    assert result.renderer == "diffusion" and probe_video(result.output).frame_count == 20

    few = tmp_path / "few"
    write_png_sequence(list(read_frames(synthetic_clip, end=5)), few)
    short = apply_overrides(config, {"control.0.maps": str(few)})
    with pytest.raises(Exception, match="holds 5 maps but the video has 20 frames"):
        translate(
            synthetic_clip, "a cat", K=10, output=tmp_path / "p.mp4", config=short, pipeline=pipeline, progress=False
        )


def test_diffusion_keyframes_at_a_size_that_is_no_multiple_of_the_unet_downsampling(
    synthetic_clip, tmp_path, tiny_pipeline
):
    # 96×64 at resolution 66, multiple 2 (the tiny VAE's factor): 66×44 px, 33×22 latents, which the tiny
    # UNet's one downsampling cannot halve evenly: the SD 1.5 case of a multiple of 8 that is not of 64.
    settings = {**SETTINGS, "resolution": 66, "size_multiple": 2}
    result = translate(
        synthetic_clip,
        "a cat",
        K=8,
        output=tmp_path / "o.mp4",
        pipeline=tiny_pipeline,
        progress=False,
        end_frame=9,
        **settings,
    )
    assert result.renderer == "diffusion" and result.keyframe_indices == [0, 8]
    keyframe = read_image(result.workspace / "keyframes" / "0008.png")
    assert keyframe.shape == (44, 66, 3) and keyframe.std() > 1  # a picture, not a flat failure
    assert (probe_video(result.output).width, probe_video(result.output).height) == (66, 44)


class _Payload:
    """Unpickling this creates `marker`: the harmless stand-in for code planted in a workspace."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_planted_pickles_in_the_resume_state_never_run(synthetic_clip, tmp_path, tiny_pipeline, caplog):
    import hashlib
    import json
    import pickle
    import shutil

    import torch

    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    translate(
        synthetic_clip,
        "a cat",
        K=8,
        output=None,
        stage="keyframes",
        workspace=reference,
        pipeline=tiny_pipeline,
        progress=False,
        **SETTINGS,
    )

    def interrupt(stage, done, total):
        # progress counts denoising steps: 3 for the anchor, 4 per keyframe; step 8 is the 3rd keyframe's first
        if stage == "keyframes" and done == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        translate(
            synthetic_clip,
            "a cat",
            K=8,
            output=None,
            stage="keyframes",
            workspace=interrupted,
            pipeline=tiny_pipeline,
            progress=False,
            callback=interrupt,
            **SETTINGS,
        )
    # The state is safetensors + JSON, with no pickle in it.
    state = interrupted / "state"
    assert sorted(p.name for p in state.iterdir() if p.name != "seed.txt") == [
        "render_state.json",
        "render_state.safetensors",
    ]
    assert json.loads((state / "render_state.json").read_text())["next_index"] == 2

    marker = tmp_path / "code-ran"
    payload = pickle.dumps(_Payload(marker))

    def legacy(folder):  # a workspace of an older version (pickled state only), with the payload inside
        (folder / "render_state.json").unlink()
        (folder / "render_state.safetensors").unlink()
        torch.save({"next_index": 2, "index": 1, "payload": _Payload(marker)}, folder / "render_state.pt")

    def tensors_file(folder):  # pickle bytes as the tensor file, with a JSON that vouches for them
        (folder / "render_state.safetensors").write_bytes(payload)
        structure = json.loads((folder / "render_state.json").read_text())
        structure["sha256"] = hashlib.sha256(payload).hexdigest()
        (folder / "render_state.json").write_text(json.dumps(structure))

    def structure_file(folder):
        (folder / "render_state.json").write_bytes(payload)

    for plant in (legacy, tensors_file, structure_file):
        workspace = tmp_path / plant.__name__
        shutil.copytree(interrupted, workspace)
        plant(workspace / "state")
        caplog.clear()
        translate(
            synthetic_clip,
            "a cat",
            K=8,
            output=None,
            stage="keyframes",
            workspace=workspace,
            pipeline=tiny_pipeline,
            progress=False,
            **SETTINGS,
        )
        assert not marker.exists(), f"a planted pickle ran ({plant.__name__})"
        assert "ignoring" in caplog.text and "rendered again from the anchor" in caplog.text  # the user is told
        # A clean re-render from the anchor: the same keyframes as an uninterrupted run, byte for byte.
        for index in (0, 8, 19):
            assert (workspace / "keyframes" / f"{index:04d}.png").read_bytes() == (
                reference / "keyframes" / f"{index:04d}.png"
            ).read_bytes(), (plant.__name__, index)


def test_resume_state_round_trip_and_schema_check(tmp_path, caplog):
    from types import SimpleNamespace

    import torch

    from rerender.workflow.renderers import _resume_point, _save_resume_point

    generator = torch.Generator().manual_seed(3)
    state = {
        "index": 4,
        "previous_frame": torch.rand(1, 3, 8, 8),
        "previous_rendered": torch.rand(1, 3, 8, 8),
        "previous_features": {(0, "up.0.attn1"): torch.rand(2, 16, 8), (3, "up.1.attn1"): torch.rand(2, 4, 8).half()},
        "generator_state": generator.get_state(),
    }
    _save_resume_point(tmp_path, SimpleNamespace(index=4, resume_state=state))
    loaded = _resume_point(tmp_path, 5)
    assert loaded["next_index"] == 5 and loaded["index"] == 4
    for name in ("previous_frame", "previous_rendered", "generator_state"):
        assert torch.equal(loaded[name], state[name])
    assert list(loaded["previous_features"]) == [(0, "up.0.attn1"), (3, "up.1.attn1")]
    for key, value in state["previous_features"].items():
        assert loaded["previous_features"][key].dtype == value.dtype and torch.equal(
            loaded["previous_features"][key], value
        )
    restored = torch.Generator().set_state(loaded["generator_state"])
    assert torch.equal(torch.randn(3, generator=restored), torch.randn(3, generator=generator))
    assert _resume_point(tmp_path, 4) is None  # saved at another keyframe

    import json

    structure = json.loads((tmp_path / "render_state.json").read_text())
    for key, bad in (("next_index", "5"), ("version", 99), ("previous_features", [[0]]), ("format", "other")):
        (tmp_path / "render_state.json").write_text(json.dumps({**structure, key: bad}))
        with caplog.at_level("WARNING", logger="rerender.workflow.renderers"):
            caplog.clear()
            assert _resume_point(tmp_path, 5) is None
        assert "ignoring the resume state" in caplog.text


def test_a_damaged_seed_file_is_named(tmp_path):
    from rerender.errors import ConfigError
    from rerender.workflow.renderers import recorded_seed

    seed = recorded_seed(tmp_path)
    assert recorded_seed(tmp_path) == seed == int((tmp_path / "seed.txt").read_text())  # drawn once, then kept
    (tmp_path / "seed.txt").write_text("12ab")
    with pytest.raises(ConfigError, match=r"seed\.txt.*non-negative integer.*'12ab'"):
        recorded_seed(tmp_path)
