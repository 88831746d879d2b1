"""Rerender's constraints on Z-Image (a flow-matching transformer), with tiny random components built from configs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from rerender.config import ConstraintConfig
from rerender.diffusion.attention import CrossFrameAttentionStore
from rerender.diffusion.flow_matching import (
    first_step_for_strength,
    flow_matching_pixel_fusion,
    flow_matching_update,
    noise_to_sigma,
    predict_original_from_velocity,
    vp_equivalent,
)
from rerender.diffusion.fusion import pixel_aware_fusion
from rerender.errors import ConfigError
from rerender.flow import DISFlowEstimator
from tests.tiny_zimage import make_tiny_zimage_components

REPO = Path(__file__).resolve().parents[1]
OFF = ConstraintConfig(cross_frame_attention_period=None, shape_fusion_period=None, pixel_fusion_period=None)


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return make_tiny_zimage_components(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def pipe(components):
    from rerender.diffusion.zimage import RerenderZImagePipeline

    pipeline = RerenderZImagePipeline(**components)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    base = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    return [np.roll(base, shift, axis=1) for shift in (0, 2, 4)]  # a pan: the flow is known to be a shift


# ---------------------------------------------------------------------------------------------- the maths


def test_velocity_split_and_recomposition_is_the_schedulers_euler_step():
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    scheduler.set_timesteps(8)
    latents, velocity = torch.randn(1, 16, 8, 8), torch.randn(1, 16, 8, 8)
    for index in (0, 3, 7):
        scheduler._step_index = index
        expected = scheduler.step(velocity, scheduler.timesteps[index], latents, return_dict=False)[0]
        sigma, sigma_next = float(scheduler.sigmas[index]), float(scheduler.sigmas[index + 1])
        original, noise = predict_original_from_velocity(latents, velocity, sigma)
        recomposed, direction = flow_matching_update(original, noise, sigma_next)
        torch.testing.assert_close(recomposed, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(direction, sigma_next * noise)
        # the split inverts the straight path: x = (1 − σ)·x̂0 + σ·ε̂
        torch.testing.assert_close(noise_to_sigma(original, noise, sigma), latents, atol=1e-5, rtol=1e-5)


def test_renoise_keeps_the_clean_part_and_gives_the_target_noise_level():
    from rerender.diffusion.flow_matching import renoise

    generator = torch.Generator().manual_seed(0)
    clean, first, second = (torch.randn(1, 4, 256, 256, generator=generator) for _ in range(3))
    latents = noise_to_sigma(clean, first, 0.6)
    moved = renoise(latents, 0.6, 0.9, second)
    residual = moved - (1 - 0.9) * clean  # what is left is noise of standard deviation 0.9
    assert float(residual.std()) == pytest.approx(0.9, rel=0.01)
    assert float((residual * clean).mean()) == pytest.approx(0.0, abs=0.01)
    with pytest.raises(ConfigError, match="σ ≤ σ'"):
        renoise(latents, 0.9, 0.6, second)


def test_pixel_fusion_on_the_flow_path_is_the_vp_formula_rescaled():
    latents, direction, target, noise = (torch.randn(1, 16, 4, 4) for _ in range(4))
    weight, rescale = torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    sigma = 0.6
    fused = flow_matching_pixel_fusion(latents, direction, target, noise, sigma, weight, rescale)
    expected = (
        weight * ((1 - sigma) * target + sigma * noise) + (1 - weight) * (latents - direction) + rescale * direction
    )
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    alpha, scale = vp_equivalent(sigma)
    assert alpha**0.5 * scale == pytest.approx(1 - sigma) and (1 - alpha) ** 0.5 * scale == pytest.approx(sigma)
    # w = 0 leaves the latent unchanged, as on DDIM
    zero = torch.zeros_like(weight)
    torch.testing.assert_close(
        flow_matching_pixel_fusion(latents, direction, target, noise, sigma, zero, torch.ones_like(weight)), latents
    )
    assert pixel_aware_fusion is not None


def test_sdedit_starts_at_the_first_step_no_noisier_than_the_strength():
    sigmas = [1.0, 0.95, 0.9, 0.83, 0.75, 0.64, 0.5, 0.3]
    assert first_step_for_strength(sigmas, 1.0) == 0
    assert first_step_for_strength(sigmas, 0.75) == 4
    assert first_step_for_strength(sigmas, 0.8) == 4
    assert first_step_for_strength(sigmas, 0.1) == len(sigmas)
    with pytest.raises(ConfigError, match="strength.*\\[0, 1\\].*1.5"):
        first_step_for_strength(sigmas, 1.5)


# ---------------------------------------------------------------------------------------------- the pipeline


def test_anchor_from_noise_equals_diffusers_zimage_controlnet_pipeline(pipe, components, frames):
    """With nothing to be consistent with, the anchor at strength 1 is plain Z-Image ControlNet text-to-image."""
    from diffusers import ZImageControlNetPipeline

    reference = ZImageControlNetPipeline(**components)
    reference.set_progress_bar_config(disable=True)
    control_map = frames[1]
    expected = reference(
        "a red cube",
        control_image=control_map,
        height=64,
        width=64,
        num_inference_steps=4,
        guidance_scale=0.0,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
    ).images[0]
    ours = pipe(
        [frames[0]],
        "a red cube",
        control_images=[control_map],
        num_inference_steps=4,
        guidance_scale=1.0,
        strength=1.0,
        generator=torch.Generator().manual_seed(3),
        constraints=OFF,
    ).images[0]
    np.testing.assert_allclose(ours, expected, atol=2e-4)


def test_sdedit_latent_is_the_straight_path_at_the_first_steps_sigma(pipe, frames):
    from rerender.config import ConstraintConfig

    pipe.check_inputs([frames[0]], "x", None, None, None, None, 8, 1.0, 0.75, None, None)
    schedule = pipe.prepare_schedule(8, 0.75, ConstraintConfig(), report=False)
    sigma = schedule.sigmas[schedule.first_step]
    assert sigma <= 0.75 < schedule.sigmas[schedule.first_step - 1]
    frame = torch.from_numpy(frames[0]).permute(2, 0, 1)[None].float() / 255
    noise = torch.randn(1, 16, 8, 8)
    latents, direction = pipe.prepare_latents(frame, schedule, noise)
    torch.testing.assert_close(latents, (1 - sigma) * pipe.encode_images(frame) + sigma * noise)
    torch.testing.assert_close(direction, sigma * noise)
    assert len(schedule.steps) == 8 - schedule.first_step  # every executed step is a model call: none thrown away


def test_vae_round_trip_uses_the_shift_factor(pipe, frames):
    frame = torch.from_numpy(frames[0]).permute(2, 0, 1)[None].float() / 255
    latents = pipe.encode_images(frame)
    assert latents.shape == (1, 16, 8, 8)
    raw = pipe.vae.encode(frame * 2 - 1).latent_dist.mode()
    config = pipe.vae.config
    torch.testing.assert_close(latents, (raw - config.shift_factor) * config.scaling_factor)


def test_cross_frame_attention_to_the_frame_itself_changes_nothing(pipe, components):
    """Image queries over [own image tokens; own text] are the block's own attention: output unchanged."""
    from rerender.diffusion.transformer_attention import token_cross_frame_attention

    transformer = components["transformer"]
    latents = [torch.randn(16, 1, 8, 8)]
    text = [torch.randn(5, 16)]
    time = torch.tensor([0.4])
    plain = transformer(latents, time, text, return_dict=False)[0][0]
    store = CrossFrameAttentionStore()
    with token_cross_frame_attention(transformer, store, image_tokens=32):  # (8/2)·(8/2) = 16 → padded to 32
        store.set_step(0, record="anchor")
        recorded = transformer(latents, time, text, return_dict=False)[0][0]
        store.set_step(0, attend=True)
        attended = transformer(latents, time, text, return_dict=False)[0][0]
    torch.testing.assert_close(recorded, plain)
    torch.testing.assert_close(attended, plain, atol=1e-5, rtol=1e-5)
    assert len(store.anchor) == len(transformer.layers)
    # and the processors are restored afterwards
    assert all(
        type(block.attention.processor).__name__ == "ZSingleStreamAttnProcessor" for block in transformer.layers
    )


def test_cross_frame_attention_changes_image_queries_only(components):
    from rerender.diffusion.transformer_attention import TokenCrossFrameAttnProcessor

    block = components["transformer"].layers[0].attention
    hidden = torch.randn(1, 40, 32)  # 32 image tokens, 8 text tokens
    references = torch.randn(1, 64, 32)  # anchor and previous
    original = block.processor(block, hidden)
    attended = TokenCrossFrameAttnProcessor.attend(block, hidden, references, 32, None, None)
    torch.testing.assert_close(attended[:, 32:], original[:, 32:], atol=1e-5, rtol=1e-5)
    assert (attended[:, :32] - original[:, :32]).abs().mean() > 1e-3


def test_shape_fusion_and_adain_act_on_x0_at_their_steps_only(pipe, frames):
    constraints = ConstraintConfig(
        cross_frame_attention_period=None,
        pixel_fusion_period=None,
        shape_fusion_period=(0.0, 0.25),
        adain_period=(0.75, 0.75),
    )
    changed: dict[int, bool] = {}

    def spy(pipeline, step, timestep, kwargs):
        if kwargs["frame_index"] == 1:
            changed[step] = not torch.equal(kwargs["predicted_original"], kwargs["raw_predicted_original"])

    pipe(
        frames[:2],
        "a cube",
        num_inference_steps=4,
        guidance_scale=1.0,
        strength=1.0,
        constraints=constraints,
        flow_estimator=DISFlowEstimator(),
        generator=torch.Generator().manual_seed(0),
        callback_on_step_end=spy,
    )
    # 4 steps: shape-aware fusion at 0·4 ≤ i ≤ 0.25·4 → {0, 1}; AdaIN at i = 0.75·4 → {3}; step 2 untouched
    assert changed == {0: True, 1: True, 2: False, 3: True}


def test_guidance_above_one_on_a_distilled_model_warns(pipe, frames, caplog):
    pipe.register_to_config(_name_or_path="Tongyi-MAI/Z-Image-Turbo")
    try:
        with caplog.at_level(logging.WARNING, logger="rerender.diffusion.zimage"):
            pipe(frames[:1], "a cube", num_inference_steps=2, guidance_scale=3.0, constraints=OFF)
    finally:
        pipe.register_to_config(_name_or_path="")
    assert "guidance-distilled" in caplog.text


# ---------------------------------------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def tiny_zimage_dirs(tmp_path_factory):
    from tests.tiny_zimage import save_tiny_zimage

    return save_tiny_zimage(tmp_path_factory.mktemp("zimage"))


def test_a_zimage_model_with_a_size_multiple_it_cannot_take_is_refused_before_loading(
    capsys, synthetic_clip, tiny_zimage_dirs, tmp_path, monkeypatch
):
    """`--model` a Z-Image folder with `size_multiple` set to 8: frames rounded to 8 px would reach the model only
    after it loads (minutes for the real 6B one) and then be refused; the preflight says what to set instead (left
    unset, the size multiple is the model's own 16: tests/test_polish.py)."""
    import rerender.diffusion.loading
    from rerender.cli import main

    monkeypatch.setattr(rerender.diffusion.loading, "load_pipeline", lambda *args: pytest.fail("the model was loaded"))
    base, control = tiny_zimage_dirs
    code = main(
        [
            str(arg)
            for arg in (
                "translate",
                synthetic_clip,
                "-p",
                "a cat",
                "-o",
                tmp_path / "z.mp4",
                "-q",
                "--model",
                base,
                "--set",
                f"control.model={control}",
                "--set",
                "resolution=72",
                "--set",
                "size_multiple=8",
                "--set",
                "device=cpu",
            )
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "`video.size_multiple` is 8" in err and "size_multiple=16" in err and "Z-Image" in err, err
    assert not (tmp_path / "z.mp4.work" / "frames").exists()


def test_the_default_windows_at_eight_steps_act_where_the_docs_say(pipe, frames):
    pipe.check_inputs([frames[0]], "x", None, None, None, None, 8, 1.0, 0.75, None, None)
    schedule = pipe.prepare_schedule(8, 0.75, ConstraintConfig(), report=False)
    assert [round(sigma, 2) for sigma in schedule.sigmas] == [1.0, 0.95, 0.9, 0.83, 0.75, 0.64, 0.5, 0.3]
    assert schedule.first_step == 4
    assert sorted(schedule.cross_attention) == [4, 5, 6, 7]
    assert sorted(schedule.shape_fusion) == [4]  # its window (0, 0.1) ends before the start: moved onto it (σ ≥ 0.5)
    assert sorted(schedule.pixel_fusion) == [5, 6]
    assert schedule.adain == frozenset()


def test_download_names_exactly_the_zimage_files(monkeypatch):
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.weights import ZIMAGE_CONTROLNET, download_weights, select_files

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = apply_overrides(
        RerenderConfig(), {"base_model": "Tongyi-MAI/Z-Image-Turbo", "vae": None, "flow_estimator": "dis"}
    )
    records = download_weights(config, dry_run=True, progress=False)
    base, control = records[0], records[1]
    assert base["location"] == "Tongyi-MAI/Z-Image-Turbo" and control["fetched"] == [ZIMAGE_CONTROLNET[1]]
    # the repository's layout (as published): only the components read, one weight format each
    files = [
        "model_index.json",
        "README.md",
        "assets/showcase.jpg",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model-00001-of-00003.safetensors",
        "text_encoder/model-00002-of-00003.safetensors",
        "text_encoder/model-00003-of-00003.safetensors",
        "text_encoder/model.safetensors.index.json",
        "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json",
        "transformer/config.json",
        "transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
        "transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
        "transformer/diffusion_pytorch_model.safetensors.index.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    from rerender.weights import ZIMAGE_FOLDERS

    fetched, skipped = select_files(files, components=ZIMAGE_FOLDERS)
    assert skipped == ["README.md", "assets/showcase.jpg"]
    assert "transformer/diffusion_pytorch_model-00002-of-00002.safetensors" in fetched
