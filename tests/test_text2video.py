"""`rerender.generate`: text-to-video by Text2Video-Zero keyframes and known-motion propagation, with the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rerender.diffusion.text2video as text_video
from rerender.diffusion.text2video import (
    BackgroundSmoothing,
    latent_mask,
    render_text_keyframes,
    salient_foreground,
    smooth_background,
    translate_latents,
)
from rerender.errors import ConfigError, VideoReadError
from rerender.video import probe_video, read_frames
from rerender.workflow.generation import MAX_GENERATED_FRAMES, generate

SETTINGS = {"num_inference_steps": 4, "guidance_scale": 2.0, "noise_steps": (1, 2)}


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_pipeline_dir):
    from rerender.diffusion.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_translate_latents_moves_by_the_shift():
    latents = torch.randn(2, 4, 12, 16)
    moved = translate_latents(latents, (3, -2))
    torch.testing.assert_close(moved[..., 0:10, 3:16], latents[..., 2:12, 0:13])  # out(p) = in(p − shift)
    torch.testing.assert_close(translate_latents(latents, (0, 0)), latents)
    # values are moved, never blended: the noise keeps its statistics
    assert set(moved.flatten().tolist()) <= set(latents.flatten().tolist())


def test_keyframes_follow_the_configured_motion_and_the_seed(tiny_pipeline, monkeypatch):
    shifts = []
    original = text_video.translate_latents
    monkeypatch.setattr(
        text_video, "translate_latents", lambda latents, shift: shifts.append(shift) or original(latents, shift)
    )
    run = lambda seed: render_text_keyframes(
        tiny_pipeline,
        "a red cube",
        [0, 4, 8],
        (4.0, -2.0),
        (64, 64),
        generator=torch.Generator().manual_seed(seed),
        **SETTINGS,
    )
    first, again, other = run(0), run(0), run(1)
    factor = tiny_pipeline.vae_scale_factor
    assert shifts[:2] == [(4 * 4.0 / factor, 4 * -2.0 / factor), (8 * 4.0 / factor, 8 * -2.0 / factor)]
    assert [image.shape for image in first] == [(1, 3, 64, 64)] * 3
    for image, same in zip(first, again, strict=True):
        torch.testing.assert_close(image, same)
    assert not torch.allclose(first[1], other[1])
    assert all(0 <= float(image.min()) and float(image.max()) <= 1 for image in first)


def test_generate_writes_every_frame(tiny_pipeline, tmp_path):
    result = generate(
        "a red cube",
        frames=6,
        K=3,
        output=tmp_path / "gen.mp4",
        pipeline=tiny_pipeline,
        motion=(2.0, 0.0),
        size=(64, 64),
        fps=6,
        progress=False,
        **SETTINGS,
    )
    info = probe_video(result.output)
    assert (info.frame_count, float(info.fps), info.width, info.height) == (6, 6.0, 64, 64)
    assert result.keyframe_indices == [0, 3, 5]
    video = np.stack(list(read_frames(result.output)))
    # each keyframe is in the video where it belongs (H.264 of random-weight noise changes it a little)
    errors = np.array(
        [[np.abs(frame.astype(int) - keyframe).mean() for keyframe in result.keyframes] for frame in video]
    )
    for position, index in enumerate(result.keyframe_indices):
        assert errors[index, position] < 0.5 * errors[index].max()
    assert not list(tmp_path.glob(".generate-*"))  # scratch removed


@pytest.mark.parametrize("frames", [0, -3, MAX_GENERATED_FRAMES + 1, 2.5])
def test_frames_out_of_range_fail_before_any_model_loads(frames, tmp_path, monkeypatch):
    import rerender.diffusion.loading

    monkeypatch.setattr(rerender.diffusion.loading, "load_pipeline", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(ConfigError, match=f"`frames` must be an integer in \\[1, {MAX_GENERATED_FRAMES}\\]"):
        generate("a cat", frames=frames, output=tmp_path / "o.mp4")
    with pytest.raises(ConfigError, match="`motion`"):
        generate("a cat", frames=4, motion=(float("nan"), 0), output=tmp_path / "o.mp4")
    with pytest.raises(
        ConfigError, match=r"`motion` must be smaller than the frame.*\|dx\| < 64.*got \(1000000000.0, 0\)"
    ):
        generate("a cat", frames=4, motion=(1e9, 0), size=(64, 96), output=tmp_path / "o.mp4")
    for steps in (100_000, 1, 2.5):  # the scheduler's own refusal of > 1000 came only after the model loaded
        with pytest.raises(
            ConfigError, match=rf"`num_inference_steps` must be an integer in \[2, 1000\].*got {steps}"
        ):
            generate("a cat", frames=4, num_inference_steps=steps, output=tmp_path / "o.mp4")
    assert not list(tmp_path.iterdir())


def test_cli_generate_with_a_local_model_and_its_errors(capsys, tiny_pipeline_dir, tmp_path):
    from rerender.cli import main

    output = tmp_path / "cli.mp4"
    code = main(
        [
            "generate",
            "-p",
            "a red cube",
            "--frames",
            "3",
            "-K",
            "2",
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "3",
            "--model",
            str(tiny_pipeline_dir),
            "-o",
            str(output),
            "-q",
            "--smooth-background",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert probe_video(output).frame_count == 3 and "keyframes (diffusion): [0, 2]" in captured.out
    assert "Loading pipeline components" not in captured.err and "Loading weights" not in captured.err  # -q: no bars
    code = main(["generate", "-p", "x", "--frames", "0", "-o", str(tmp_path / "bad.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and "--frames must be an integer in [1, 3000], got 0" in err  # named as typed on the command line
    for options, message in (
        (["--smooth-background", "2"], "--smooth-background must be in [0, 1], got 2.0"),
        (["--prompt-language", "ko", "-p", "고양이"], "opus-mt-ko-en"),
        (["--style-image", str(tmp_path / "absent.png")], "absent.png"),
    ):
        code = main(["generate", "-p", "x", "--frames", "2", "-o", str(tmp_path / "bad.mp4"), *options])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "bad.mp4").exists()


# ------------------------------------------------------------------------------------------- background smoothing


def test_smooth_background_is_equation_9():
    latents, anchor = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    foreground = torch.zeros(1, 1, 6, 6)
    foreground[..., 1:4, 2:5] = 1
    smoothed = smooth_background(latents, anchor, foreground, 0.6)
    inside = foreground.bool().expand_as(latents)
    torch.testing.assert_close(smoothed[inside], latents[inside])  # the foreground is left alone
    torch.testing.assert_close(smoothed[~inside], (0.6 * anchor + 0.4 * latents)[~inside])
    torch.testing.assert_close(smooth_background(latents, anchor, foreground, 0.0), latents)


def test_latent_mask_keeps_any_covered_foreground_and_dilates():
    pixels = np.zeros((16, 16), bool)
    pixels[5, 9] = True  # one pixel, in latent cell (1, 2) at factor 4
    coarse = latent_mask(pixels, (4, 4))
    assert coarse.shape == (1, 1, 4, 4) and coarse.sum() == 1 and coarse[0, 0, 1, 2] == 1
    grown = latent_mask(pixels, (4, 4), dilation=1)
    assert grown[0, 0].tolist() == [[0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0]]


def test_salient_foreground_finds_the_object_on_a_plain_background():
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(90, 4, (96, 96, 3)), 0, 255).astype(np.uint8)
    image[30:66, 36:72] = (230, 60, 40)
    mask = salient_foreground(image)
    assert mask.shape == (96, 96) and mask.dtype == bool
    assert mask[48, 54] and not mask[:12, :12].any() and not mask[-12:, -12:].any()


@pytest.mark.parametrize(
    "options, message", [({"strength": 1.5}, "strength"), ({"mask_dilation": -1}, "mask_dilation")]
)
def test_background_smoothing_options_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        BackgroundSmoothing(**options)


def _unet_inputs(pipeline):
    """Record the latents of every UNet call (the conditional half under classifier-free guidance)."""
    seen = []
    handle = pipeline.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0][:1].clone()))
    return seen, handle


def test_background_smoothing_moves_the_background_with_the_anchor(tiny_pipeline):
    steps, (first, _) = SETTINGS["num_inference_steps"], SETTINGS["noise_steps"]
    size, motion, indices = (64, 64), (4.0, 0.0), [0, 4]
    factor = tiny_pipeline.vae_scale_factor
    shift = (indices[1] * motion[0] / factor, 0.0)

    def subject(image):  # a fixed foreground, so the test knows where it is
        mask = np.zeros(image.shape[:2], bool)
        mask[16:40, 8:24] = True
        return mask

    def run(smoothing):
        seen, handle = _unet_inputs(tiny_pipeline)
        try:
            images = render_text_keyframes(
                tiny_pipeline,
                "a red cube",
                indices,
                motion,
                size,
                generator=torch.Generator().manual_seed(3),
                background_smoothing=smoothing,
                foreground_mask=subject,
                **SETTINGS,
            )
        finally:
            handle.remove()
        return images, seen

    plain, plain_inputs = run(None)
    smoothed, inputs = run(BackgroundSmoothing(strength=1.0, mask_dilation=0))
    per_frame = steps - first
    assert len(plain_inputs) == steps + per_frame and len(inputs) == steps + 2 * per_frame  # denoised twice
    anchor_t1, start, second_start = inputs[first], inputs[steps], inputs[steps + per_frame]
    torch.testing.assert_close(start, plain_inputs[steps], rtol=0, atol=0)  # the first pass is the plain recipe
    latent_size = start.shape[-2:]
    foreground = 1 - (1 - latent_mask(subject(np.zeros((64, 64, 3))), latent_size)) * (
        1 - translate_latents(latent_mask(subject(np.zeros((64, 64, 3))), latent_size), shift)
    )
    inside = foreground.bool().expand_as(start)
    assert 0.1 < inside.float().mean() < 0.9
    # α = 1: the background is exactly the anchor's latent at t1, moved by the frame's motion; the foreground is unchanged
    torch.testing.assert_close(second_start[~inside], translate_latents(anchor_t1, shift)[~inside], rtol=0, atol=1e-6)
    torch.testing.assert_close(second_start[inside], start[inside], rtol=0, atol=0)
    assert not torch.allclose(second_start, start)
    torch.testing.assert_close(smoothed[0], plain[0])  # the anchor is never smoothed
    assert not torch.allclose(smoothed[1], plain[1])


def test_a_foreground_mask_of_the_wrong_shape_is_named(tiny_pipeline):
    with pytest.raises(
        ConfigError, match=r"`foreground_mask` must return an \(H, W\) mask of the 64×64 image, got shape \(8, 8\)"
    ):
        render_text_keyframes(
            tiny_pipeline,
            "a red cube",
            [0, 2],
            (4.0, 0.0),
            (64, 64),
            generator=torch.Generator().manual_seed(0),
            background_smoothing=BackgroundSmoothing(),
            foreground_mask=lambda image: np.ones((8, 8), bool),
            **SETTINGS,
        )


def test_background_smoothing_at_zero_strength_gives_the_plain_recipe(tiny_pipeline):
    run = lambda smoothing: render_text_keyframes(
        tiny_pipeline,
        "a red cube",
        [0, 2, 4],
        (4.0, 2.0),
        (64, 64),
        generator=torch.Generator().manual_seed(5),
        background_smoothing=smoothing,
        **SETTINGS,
    )
    for plain, smoothed in zip(run(None), run(BackgroundSmoothing(strength=0.0)), strict=True):
        torch.testing.assert_close(smoothed, plain, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------- prompt language and style image


def test_generate_translates_the_prompt_and_records_both(tiny_pipeline, tmp_path, monkeypatch):
    encoded = []
    original = tiny_pipeline.encode_prompt
    monkeypatch.setattr(
        tiny_pipeline, "encode_prompt", lambda prompt, *a, **k: encoded.append(prompt) or original(prompt, *a, **k)
    )
    result = generate(
        "một khối lập phương đỏ",
        frames=1,
        output=tmp_path / "vi.mp4",
        pipeline=tiny_pipeline,
        size=(64, 64),
        progress=False,
        prompt_language="auto",
        prompt_translator=lambda text, language: "a red cube",
        **SETTINGS,
    )
    from rerender.config import DEFAULT_NEGATIVE_PROMPT

    assert result.prompt.to_dict() == {
        "original": "một khối lập phương đỏ",
        "english": "a red cube",
        "language": "vi",
        "detected": True,
        "translator": "<lambda>",
        "negative_original": DEFAULT_NEGATIVE_PROMPT,
        "negative_english": DEFAULT_NEGATIVE_PROMPT,
        "translated": [["vi", "một khối lập phương đỏ", "a red cube"]],
    }
    assert encoded == ["a red cube"]
    english = generate(
        "a red cube",
        frames=1,
        output=tmp_path / "en.mp4",
        pipeline=tiny_pipeline,
        size=(64, 64),
        progress=False,
        **SETTINGS,
    )
    np.testing.assert_array_equal(result.keyframes[0], english.keyframes[0])  # same text encoder input, same seed


def test_generate_without_its_translator_fails_before_any_model_loads(tmp_path, monkeypatch):
    import rerender.diffusion.loading
    from rerender.errors import WeightsNotFoundError

    monkeypatch.setattr(rerender.diffusion.loading, "load_pipeline", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(WeightsNotFoundError, match="opus-mt-ko-en"):
        generate("빨간 큐브", frames=2, output=tmp_path / "o.mp4", prompt_language="ko")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_pipeline_dir):
    from diffusers import UNet2DConditionModel

    from tests.tiny_models import save_tiny_ip_adapter

    unet = UNet2DConditionModel.from_pretrained(tiny_pipeline_dir / "unet")
    return save_tiny_ip_adapter(tmp_path_factory.mktemp("tiny-ip-adapter"), unet)


def test_generate_applies_the_style_image_through_the_ip_adapter(tiny_pipeline, tmp_path, adapter_dir, monkeypatch):
    from rerender.video import write_image

    rows = np.linspace(0, 255, 64, dtype=np.uint8)[:, None, None]
    warm = np.concatenate(
        [np.full((64, 64, 1), 250, np.uint8), np.broadcast_to(rows, (64, 64, 1)), np.zeros((64, 64, 1), np.uint8)], 2
    )
    write_image(warm, tmp_path / "warm.png")
    write_image(warm[::-1, ::-1, ::-1].copy(), tmp_path / "cold.png")
    encoded = []
    original = tiny_pipeline.encode_style_image
    monkeypatch.setattr(
        tiny_pipeline, "encode_style_image", lambda image, *a: encoded.append(image) or original(image, *a)
    )
    processors = dict(tiny_pipeline.unet.attn_processors)
    run = lambda name, **style: generate(
        "a red cube",
        frames=3,
        K=2,
        output=tmp_path / f"{name}.mp4",
        pipeline=tiny_pipeline,
        size=(64, 64),
        progress=False,
        **style,
        **SETTINGS,
    )
    options = dict(ip_adapter=str(adapter_dir), style_image_scale=1.0)
    plain, with_warm, with_cold = (
        run("plain"),
        run("warm", style_image=str(tmp_path / "warm.png"), **options),
        run("cold", style_image=str(tmp_path / "cold.png"), **options),
    )
    assert encoded[0] is None and all(image.shape == (64, 64, 3) for image in encoded[1:]) and len(encoded) == 3
    for index in range(2):  # the image steers every keyframe, the anchor and the later one
        assert np.abs(with_warm.keyframes[index].astype(int) - with_cold.keyframes[index].astype(int)).max() > 0
        assert np.abs(with_warm.keyframes[index].astype(int) - plain.keyframes[index].astype(int)).max() > 0
    # the adapter was for these calls only
    assert (
        tiny_pipeline.unet.encoder_hid_proj is None
        and dict(tiny_pipeline.unet.attn_processors).keys() == processors.keys()
    )
    with pytest.raises(VideoReadError, match="style_image"):
        (tmp_path / "bad.png").write_bytes(b"not an image")
        run("bad", style_image=str(tmp_path / "bad.png"), **options)


@pytest.mark.slow
def test_generate_example(tiny_pipeline_dir, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "generate_from_text.py"
    result = subprocess.run(
        [
            sys.executable,
            str(example),
            "a red cube",
            str(tmp_path / "o.mp4"),
            "--frames",
            "5",
            "-K",
            "2",
            "--size",
            "64",
            "64",
            "--steps",
            "3",
            "--model",
            str(tiny_pipeline_dir),
            "--smooth-background",
            "0.6",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert probe_video(tmp_path / "o.mp4").frame_count == 5 and "keyframes [0, 2, 4]" in result.stdout


def test_generate_with_progress_off_draws_no_bars_at_all(capfd, tiny_pipeline_dir, tmp_path):
    """progress=False also covers the bars diffusers and transformers draw while the model loads (their switches
    are restored afterwards, so the caller's own settings stand)."""
    import diffusers.utils.logging as diffusers_logging

    generate(
        "a red cube",
        frames=1,
        output=tmp_path / "quiet.mp4",
        size=(64, 64),
        num_inference_steps=2,
        base_model=str(tiny_pipeline_dir),
        progress=False,
    )
    err = capfd.readouterr().err
    assert "Loading pipeline components" not in err and "it/s]" not in err and "%|" not in err, err
    assert diffusers_logging.is_progress_bar_enabled()


# ---------------------------------------------------------------------------- Text2Video-Zero's noise levels and motion


def _sd15_ddim():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


@pytest.mark.parametrize("steps, expected", [(50, (941, 881)), (20, (951, 901)), (25, (961, 881))])
def test_noise_steps_are_chosen_by_timestep_value(steps, expected):
    from rerender.diffusion.text2video import text2video_noise_steps

    scheduler = _sd15_ddim()
    scheduler.set_timesteps(steps)
    first, second = text2video_noise_steps(scheduler.timesteps)
    assert (int(scheduler.timesteps[first]), int(scheduler.timesteps[second])) == expected  # T and T' of the paper


def test_keyframes_restart_at_t_941_and_are_warped_at_881(tiny_pipeline, monkeypatch):
    from rerender.diffusion.text2video import TEXT2VIDEO_ZERO_TIMESTEPS

    monkeypatch.setattr(tiny_pipeline, "scheduler", _sd15_ddim())
    seen = []
    handle = tiny_pipeline.unet.register_forward_pre_hook(lambda module, args: seen.append(int(args[1])))
    try:
        render_text_keyframes(
            tiny_pipeline,
            "a red cube",
            [0, 4],
            (8.0, 0.0),
            (64, 64),
            num_inference_steps=50,
            guidance_scale=1.0,
            generator=torch.Generator().manual_seed(0),
        )
    finally:
        handle.remove()
    assert seen[50] == TEXT2VIDEO_ZERO_TIMESTEPS[0] == 941  # the second keyframe's first denoising step: T
    assert len(seen) == 50 + 48  # denoised from step 2 of 50 (941) to the end


def test_latents_move_by_whole_pixels_and_the_guides_by_exactly_as_much(tiny_pipeline, monkeypatch, tmp_path):
    from rerender.camera import render_clip
    from rerender.workflow import generation

    shifts = []
    original = text_video.translate_latents
    monkeypatch.setattr(
        text_video, "translate_latents", lambda latents, shift: shifts.append(shift) or original(latents, shift)
    )
    factor = tiny_pipeline.vae_scale_factor
    motion = (factor * 3 / 8, 0.0)  # K = 4: 1.5 latent pixels per keyframe, an odd multiple of half a latent pixel
    render_text_keyframes(
        tiny_pipeline,
        "a red cube",
        [0, 4, 8],
        motion,
        (64, 64),
        generator=torch.Generator().manual_seed(0),
        **SETTINGS,
    )
    assert shifts == [(2, 0), (3, 0)]  # ⌊1.5 + ½⌋, ⌊3 + ½⌋: whole latent pixels, no repeated columns
    with pytest.raises(ValueError, match="whole latent pixels"):
        translate_latents(torch.zeros(1, 1, 4, 4), (1.5, 0))
    # The guides (the anchor image moved by the path) agree with the keyframes' latents pixel for pixel.
    anchor = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = generation._ShiftPath(motion, 9, (64, 64), [0, 4, 8], factor)
    frames = list(render_clip(anchor, path))

    def blocks(image):  # the mean of each latent pixel's block
        return F.avg_pool2d(torch.from_numpy(image.astype(np.float64)).permute(2, 0, 1)[None], factor)

    for index, shift in zip([4, 8], shifts, strict=True):
        torch.testing.assert_close(blocks(frames[index]), original(blocks(anchor), shift), rtol=0, atol=1e-6)


def test_a_camera_move_longer_than_the_frame_is_refused_naming_the_limit(tmp_path):
    with pytest.raises(ConfigError, match=r"moves the scene 3000 px, more than the 512-px frame.*at most 253 frames"):
        generate("a cat", frames=1501, motion=(2.0, 0.0), output=tmp_path / "o.mp4")
    with pytest.raises(ConfigError, match=r"dy=-4"):
        generate("a cat", frames=200, motion=(0.0, -4.0), size=(512, 256), output=tmp_path / "o.mp4")
    assert not list(tmp_path.iterdir())


def test_generate_uses_the_configs_negative_prompt_by_default(tiny_pipeline, tmp_path, monkeypatch):
    from rerender.config import DEFAULT_NEGATIVE_PROMPT

    encoded = []
    original = tiny_pipeline.encode_prompt
    monkeypatch.setattr(
        tiny_pipeline,
        "encode_prompt",
        lambda prompt, negative, *args, **kwargs: (
            encoded.append(negative) or original(prompt, negative, *args, **kwargs)
        ),
    )
    generate(
        "a red cube",
        frames=1,
        output=tmp_path / "a.mp4",
        pipeline=tiny_pipeline,
        size=(64, 64),
        progress=False,
        **SETTINGS,
    )
    generate(
        "a red cube",
        frames=1,
        output=tmp_path / "b.mp4",
        pipeline=tiny_pipeline,
        size=(64, 64),
        progress=False,
        negative_prompt="blurry",
        **SETTINGS,
    )
    assert encoded == [DEFAULT_NEGATIVE_PROMPT, "blurry"]


def test_generate_holds_the_pipelines_lock_while_it_renders(tiny_pipeline, tmp_path, monkeypatch):
    """Two requests of a service sharing one pipeline: `generate` renders one run at a time, as `translate` does (each
    run installs its own attention processors and IP-Adapter on the shared UNet)."""
    import threading

    import rerender.workflow.generation as generation
    from rerender.workflow.renderers import pipeline_lock

    original = generation.render_text_keyframes
    taken_elsewhere = []

    def render(pipeline, *args, **kwargs):
        other = threading.Thread(
            target=lambda: taken_elsewhere.append(pipeline_lock(pipeline).acquire(blocking=False))
        )
        other.start()
        other.join()
        return original(pipeline, *args, **kwargs)

    monkeypatch.setattr(generation, "render_text_keyframes", render)
    generate(
        "a cube",
        frames=1,
        output=tmp_path / "o.mp4",
        pipeline=tiny_pipeline,
        size=(64, 64),
        progress=False,
        **SETTINGS,
    )
    assert taken_elsewhere == [False]
    assert pipeline_lock(tiny_pipeline).acquire(blocking=False)  # released afterwards
    pipeline_lock(tiny_pipeline).release()


def test_generate_takes_numpy_numbers(tiny_pipeline, tmp_path):
    """Values from an array or a slider (np.int64, np.float32) are the numbers they hold, as in `translate`."""
    result = generate(
        "a cube",
        frames=np.int64(2),
        K=np.int32(1),
        output=tmp_path / "o.mp4",
        pipeline=tiny_pipeline,
        size=(np.int64(64), np.int64(64)),
        fps=np.float32(6.0),
        progress=False,
        num_inference_steps=np.int64(4),
        guidance_scale=2.0,
        noise_steps=(np.int64(1), np.int64(2)),
        seed=np.int64(3),
    )
    assert probe_video(result.output).frame_count == 2 and result.keyframe_indices == [0, 1]
