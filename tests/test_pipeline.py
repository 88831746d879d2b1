"""RerenderPipeline with tiny SD 1.5 and SDXL components: schedule, constraints, determinism, bad input.

The `pipe` fixture is parametrised over both families, so every constraint is tested on each through the same
code path."""

from __future__ import annotations

import collections
import contextlib
import logging

import numpy as np
import pytest
import torch

from rerender.config import ConstraintConfig, ControlConfig, FreeUConfig, RefinementConfig
from rerender.diffusion.attention import CrossFrameAttnProcessor
from rerender.errors import ConfigError

STEPS = 5  # full schedule; strength 0.8 runs steps 1–4
OFF = ConstraintConfig(
    cross_frame_attention_period=None, shape_fusion_period=None, pixel_fusion_period=None, adain_period=None
)


class ZeroFlow:
    """A flow estimator that sees no motion (and so no occlusion)."""

    name = "zero"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        flow = torch.zeros(source.shape[0], 2, *source.shape[-2:])
        return flow, flow


def make_frames(count: int = 3, size: int = 64, shift: int = 4) -> list[np.ndarray]:
    """A colour gradient with a square moving right by `shift` pixels per frame."""
    y, x = np.mgrid[0:size, 0:size]
    frames = []
    for index in range(count):
        frame = np.stack([x * 255 // size, y * 255 // size, np.full_like(x, 128)], axis=-1).astype(np.uint8)
        left = 12 + index * shift
        frame[20:44, left : left + 20] = (230, 40, 40)
        frames.append(frame)
    return frames


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def pipe(request, tiny_pipeline_dir, tiny_sdxl_dir):
    from rerender.diffusion.pipeline import RerenderPipeline

    folder = tiny_pipeline_dir if request.param == "sd15" else tiny_sdxl_dir
    pipeline = RerenderPipeline.from_pretrained(str(folder))
    pipeline.set_progress_bar_config(disable=True)
    assert pipeline.family == request.param
    return pipeline


def run(pipe, frames=None, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", STEPS)
    kwargs.setdefault("strength", 0.8)
    kwargs.setdefault("flow_estimator", ZeroFlow())
    return pipe(
        frames if frames is not None else make_frames(),
        "a red square",
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


@contextlib.contextmanager
def count_unet_calls(pipe):
    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


# --------------------------------------------------------------------------------------------------------
# schedule and UNet calls
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pipe", ["sd15", pytest.param("sdxl", marks=pytest.mark.slow)], indirect=True)
def test_unet_calls_per_frame_are_what_the_schedule_implies(pipe):
    # 5 steps at strength 0.8 → steps 1–4 run (4 calls); pixel-aware (0.5, 0.8) strict → step 3 only, so
    # pass B reruns steps 3–4 (2 calls); the anchor has one pass
    with count_unet_calls(pipe) as calls:
        output = run(pipe)
    assert output.unet_calls == [4, 6, 6] and len(calls) == 16
    with count_unet_calls(pipe) as calls:
        output = run(pipe, constraints=ConstraintConfig(pixel_fusion_period=None))
    assert output.unet_calls == [4, 4, 4] and len(calls) == 12
    # refinement at 0.4 of 5 steps re-runs int(5·0.4) = 2 steps for every frame
    with count_unet_calls(pipe) as calls:
        output = run(pipe, refinement=RefinementConfig(refinement_strength=0.4))
    assert output.unet_calls == [6, 8, 8] and len(calls) == 22


def test_schedule_object_agrees_with_the_counts(pipe):
    schedule = pipe.prepare_schedule(20, 0.75, ConstraintConfig())
    assert schedule.first_step == 5 and schedule.steps == list(range(5, 20))
    assert schedule.shape_fusion == {5}  # folded onto the SDEdit start (t = 701) instead of being lost
    assert schedule.pixel_fusion == set(range(11, 16)) and schedule.second_pass_start == 11
    assert schedule.unet_calls(is_anchor=True) == 15 and schedule.unet_calls(is_anchor=False) == 15 + 9
    assert schedule.timesteps[5] == 701 and schedule.timesteps[-1] == 1  # official t = 951 − 50·i


# The steps each constraint acts at, 20 steps (t = 951 − 50·i), the default windows plus AdaIN (0.8, 1).
# Windows that end before the SDEdit start act at the first executed step only while t ≥ 500.
WINDOWS_BY_STRENGTH = {
    # strength: (first step, its t, cross-frame attention, shape-aware, pixel-aware, AdaIN)
    1.0: (0, 951, range(0, 20), {0, 1, 2}, range(11, 16), range(16, 20)),
    0.75: (5, 701, range(5, 20), {5}, range(11, 16), range(16, 20)),  # shape-aware folded onto t = 701
    0.25: (15, 201, range(15, 20), set(), {15}, range(16, 20)),  # shape-aware window too early: off
    0.2: (16, 151, range(16, 20), set(), set(), range(16, 20)),  # pixel-aware no longer moved to t = 151
    0.05: (19, 1, {19}, set(), set(), {19}),  # nothing is moved to t = 1
}


@pytest.mark.parametrize("strength", sorted(WINDOWS_BY_STRENGTH))
def test_constraints_act_at_the_steps_their_windows_allow_for_each_strength(pipe, strength, caplog):
    first, timestep, cross, shape, pixel, adain = WINDOWS_BY_STRENGTH[strength]
    with caplog.at_level(logging.INFO, logger="rerender.diffusion.pipeline"):
        schedule = pipe.prepare_schedule(20, strength, ConstraintConfig(adain_period=(0.8, 1.0)))
    assert schedule.first_step == first and schedule.timesteps[first] == timestep
    assert schedule.cross_attention == set(cross)
    assert schedule.shape_fusion == set(shape)
    assert schedule.pixel_fusion == set(pixel)
    assert schedule.adain == set(adain)
    silenced = {name for name in ("shape-aware fusion", "pixel-aware fusion") if f"{name} does not act" in caplog.text}
    assert silenced == {
        name for name, steps in (("shape-aware fusion", shape), ("pixel-aware fusion", pixel)) if not steps
    }


def test_a_late_keyframe_is_not_the_warped_anchor(pipe):
    # At strength 0.05 the one executed step (t = 1) used to run shape-aware fusion, which made the keyframe the
    # nearest-neighbour-warped anchor latent. Now it is the keyframe's own denoised latent.
    records = {}

    def remember(pipeline, step, timestep, values):
        records[(values["frame_index"], values["pass_name"])] = (
            values["raw_predicted_original"],
            values["predicted_original"],
        )

    run(pipe, make_frames(2, shift=12), num_inference_steps=20, strength=0.05, callback_on_step_end=remember)
    raw, fused = records[(1, "direct")]
    assert torch.equal(raw, fused)
    assert (1, "fused") not in records  # no second pass either


def test_strength_zero_runs_no_unet_call(pipe):
    frames = make_frames(2)
    output = run(pipe, frames, strength=0.0, output_type="pt")
    assert output.unet_calls == [0, 0]
    with torch.no_grad():
        expected = pipe.decode_latents(pipe.encode_images(torch.from_numpy(frames[0]).permute(2, 0, 1)[None] / 255.0))
    assert torch.allclose(output.images[0], expected[0], atol=1e-5)


# --------------------------------------------------------------------------------------------------------
# determinism, noise, output
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pipe", ["sd15", pytest.param("sdxl", marks=pytest.mark.slow)], indirect=True)
def test_determinism_for_a_seed(pipe):
    first, second = run(pipe, seed=3).images, run(pipe, seed=3).images
    other = run(pipe, seed=4).images
    assert first.shape == (3, 64, 64, 3) and first.dtype == np.float32
    assert np.array_equal(first, second)
    assert not np.allclose(first, other)


def test_same_noise_per_keyframe_reproduces_the_anchor_for_an_identical_frame(pipe):
    # With the same noise, an identical frame, no pixel-aware blending and zero flow, cross-frame attention to
    # itself equals self-attention and shape-aware fusion puts back its own x̂0: the keyframe is the anchor
    # (up to float rounding of the two attention paths and AdaIN's biased/unbiased variance).
    frames = make_frames(1) * 2
    constraints = ConstraintConfig(pixel_fusion_period=None, adain_period=(0.8, 1.0))
    same = run(pipe, frames, constraints=constraints).images
    assert np.abs(same[0] - same[1]).max() < 1e-3
    different = run(pipe, frames, constraints=constraints, same_noise_per_keyframe=False).images
    assert np.abs(different[0] - different[1]).mean() > 1e-2


def test_anchor_matches_diffusers_controlnet_img2img(pipe, monkeypatch):
    """With the same components, noise and steps, the anchor is exactly diffusers' ControlNet img2img result."""
    from diffusers import StableDiffusionControlNetImg2ImgPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from PIL import Image

    from rerender.diffusion.control import canny

    # diffusers samples the VAE posterior; we use its mean: make diffusers use the mean too
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mode())
    frame = make_frames(1)[0]
    if pipe.family == "sdxl":  # both text encoders, pooled embedding, size/crop numbers from the frame
        from diffusers import StableDiffusionXLControlNetImg2ImgPipeline

        plain = StableDiffusionXLControlNetImg2ImgPipeline(
            vae=pipe.vae,
            text_encoder=pipe.text_encoder,
            text_encoder_2=pipe.text_encoder_2,
            tokenizer=pipe.tokenizer,
            tokenizer_2=pipe.tokenizer_2,
            unet=pipe.unet,
            controlnet=pipe.controlnet,
            scheduler=pipe.scheduler,
            requires_aesthetics_score=False,
            force_zeros_for_empty_prompt=True,
        )
    else:
        plain = StableDiffusionControlNetImg2ImgPipeline(
            vae=pipe.vae,
            text_encoder=pipe.text_encoder,
            tokenizer=pipe.tokenizer,
            unet=pipe.unet,
            controlnet=pipe.controlnet,
            scheduler=pipe.scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    plain.set_progress_bar_config(disable=True)
    expected = plain(
        "a red square",
        image=Image.fromarray(frame),
        control_image=Image.fromarray(canny(frame)),
        num_inference_steps=STEPS,
        strength=0.8,
        guidance_scale=7.5,
        controlnet_conditioning_scale=1.0,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images[0]
    ours = run(pipe, [frame]).images[0]
    assert np.allclose(ours, expected, atol=1e-4)


# the SD 1.5 case runs by default, SDXL's with -m slow (the same code path; keeps the default run under 10 minutes)
@pytest.mark.parametrize("pipe", ["sd15", pytest.param("sdxl", marks=pytest.mark.slow)], indirect=True)
def test_output_types_and_streaming(pipe):
    frames = make_frames(3)
    assert run(pipe, frames, output_type="pt").images.shape == (3, 3, 64, 64)
    assert run(pipe, frames, output_type="latent").images.shape == (3, 4, 32, 32)
    assert len(run(pipe, frames, output_type="pil").images) == 3
    original = dict(pipe.unet.attn_processors)
    stream = pipe.render_keyframes(
        frames, "a red square", num_inference_steps=STEPS, strength=0.8, flow_estimator=ZeroFlow()
    )
    first = next(stream)
    assert first.index == 0 and first.is_anchor and first.image.shape == (3, 64, 64) and first.unet_calls == 4
    assert any(isinstance(p, CrossFrameAttnProcessor) for p in pipe.unet.attn_processors.values())
    stream.close()  # stopping early restores the processors
    assert all(pipe.unet.attn_processors[name] is processor for name, processor in original.items())


# --------------------------------------------------------------------------------------------------------
# constraints inside the pipeline
# --------------------------------------------------------------------------------------------------------


def test_shape_aware_fusion_returns_the_anchor_x0_at_its_steps_only(pipe):
    records = {}

    def remember(pipeline, step, timestep, values):
        records[(values["frame_index"], values["pass_name"], step)] = (
            values["raw_predicted_original"].clone(),
            values["predicted_original"].clone(),
        )

    constraints = ConstraintConfig(shape_fusion_period=(0.0, 0.4), pixel_fusion_period=None, adain_period=None)
    # strength 0.8: the frames differ from the first step (at 1 both start from the same pure noise)
    run(pipe, make_frames(2), strength=0.8, constraints=constraints, callback_on_step_end=remember)
    for step in range(1, STEPS):
        anchor_raw, _ = records[(0, "anchor", step)]
        raw, fused = records[(1, "direct", step)]
        if step in (1, 2):  # 0·5 ≤ i ≤ 0.4·5, from the first executed step 1
            assert torch.allclose(fused, anchor_raw, atol=1e-6), step
            assert not torch.allclose(raw, anchor_raw, atol=1e-4), step
        else:
            assert torch.equal(fused, raw), step


def test_adain_gives_x0_the_anchor_statistics_in_its_window(pipe):
    from rerender.diffusion.fusion import channel_statistics

    records = {}

    def remember(pipeline, step, timestep, values):
        records[(values["frame_index"], step)] = (
            values["raw_predicted_original"].clone(),
            values["predicted_original"].clone(),
        )

    constraints = ConstraintConfig(shape_fusion_period=None, pixel_fusion_period=None, adain_period=(0.6, 1.0))
    run(pipe, make_frames(2, shift=12), constraints=constraints, callback_on_step_end=remember)
    for step in (3, 4):
        anchor_mean, anchor_std = channel_statistics(records[(0, step)][0])
        mean, std = channel_statistics(records[(1, step)][1])
        assert torch.allclose(mean, anchor_mean, atol=1e-4) and torch.allclose(std, anchor_std, rtol=2e-3)
    assert torch.equal(records[(1, 1)][0], records[(1, 1)][1])


def test_pixel_aware_fusion_with_zero_weight_reproduces_the_direct_pass(pipe):
    # pass B resumes pass A's state at the first pixel-aware step; with w = 0 the blend is the identity
    frames = make_frames(3, shift=8)
    direct = run(pipe, frames, constraints=ConstraintConfig(pixel_fusion_period=None)).images
    zero = run(pipe, frames, constraints=ConstraintConfig(mask_strength=0.0)).images
    assert np.array_equal(direct, zero)
    assert not np.allclose(direct[1:], run(pipe, frames).images[1:], atol=1e-4)


# the SD 1.5 case runs by default, SDXL's with -m slow (the same code path; keeps the default run under 10 minutes)
@pytest.mark.parametrize("pipe", ["sd15", pytest.param("sdxl", marks=pytest.mark.slow)], indirect=True)
def test_an_unused_fusion_target_is_not_computed_and_changes_nothing(pipe, monkeypatch):
    # mask strength 0: the target is multiplied by a zero weight, so its VAE work (pass-A decode, fidelity
    # encoding: 3 decodes, 2 encodes) is skipped; the images are those of the run that computes it
    frames = make_frames(3, shift=8)
    constraints = ConstraintConfig(mask_strength=0.0)
    vae_calls = collections.Counter()

    def counting(name):
        method = getattr(pipe.vae, name)

        def call(*args, **kwargs):
            vae_calls[name] += 1
            return method(*args, **kwargs)

        return call

    monkeypatch.setattr(pipe.vae, "encode", counting("encode"))
    monkeypatch.setattr(pipe.vae, "decode", counting("decode"))
    skipped = run(pipe, frames, constraints=constraints).images
    assert vae_calls == {"encode": 3, "decode": 3}  # one of each per frame
    vae_calls.clear()
    monkeypatch.setattr(type(pipe), "_fusion_target_used", staticmethod(lambda guidance: True))
    computed = run(pipe, frames, constraints=constraints).images
    assert vae_calls == {"encode": 3 + 2 * 2, "decode": 3 + 2 * 3}
    assert np.array_equal(skipped, computed)


def test_pixel_aware_fusion_replaces_the_latent_by_the_noised_target_at_full_weight(pipe):
    # Zero flow and no occlusion: the target (Eq. 10) is the rendered anchor. With w = 1 and r = 0 the latent
    # entering the pixel-aware step is x_ref = √ᾱ·E*(anchor) + √(1−ᾱ)·ε, ε being the frame's second noise draw.
    from diffusers.utils.torch_utils import randn_tensor

    frames = [make_frames(1)[0], make_frames(2, shift=8)[1]]
    constraints = ConstraintConfig(pixel_fusion_period=(0.7, 1.0), mask_strength=1.0, inner_strength=1.0)
    seen = {}

    def remember(pipeline, step, timestep, values):
        seen[(values["frame_index"], values["pass_name"], step)] = (
            values["latents"],
            values["raw_predicted_original"],
        )

    output = run(pipe, frames, constraints=constraints, output_type="pt", callback_on_step_end=remember)
    schedule = pipe.prepare_schedule(STEPS, 0.8, constraints)
    assert schedule.pixel_fusion == {4}
    alpha, alpha_next = schedule.alphas[4], schedule.alphas_next[4]
    latents_after, original = seen[(1, "fused", 4)]
    noise_prediction = (latents_after - alpha_next**0.5 * original) / (1 - alpha_next) ** 0.5
    latents_before = alpha**0.5 * original + (1 - alpha) ** 0.5 * noise_prediction  # what the UNet saw
    generator = torch.Generator().manual_seed(0)
    randn_tensor((1, 4, 32, 32), generator=generator)  # the SDEdit noise
    fusion_noise = randn_tensor((1, 4, 32, 32), generator=generator)
    with torch.no_grad():
        target = pipe.encode_fusion_target(output.images[:1], constraints)
    expected = alpha**0.5 * target + (1 - alpha) ** 0.5 * fusion_noise
    assert torch.allclose(latents_before, expected, atol=1e-3)


def test_freeu_identity_and_restore(pipe):
    frames = make_frames(2)  # the anchor and one keyframe under cross-frame attention
    plain = run(pipe, frames).images
    identity = run(pipe, frames, constraints=ConstraintConfig(freeu=FreeUConfig(b1=1.0, b2=1.0, s1=1.0, s2=1.0)))
    assert np.allclose(plain, identity.images, atol=1e-4)
    boosted = run(pipe, frames, constraints=ConstraintConfig(freeu=FreeUConfig())).images
    assert not np.allclose(plain, boosted, atol=1e-3)
    assert all(getattr(block, "b1", None) is None for block in pipe.unet.up_blocks)


def test_processors_restored_after_the_call_and_when_it_raises(pipe):
    original = dict(pipe.unet.attn_processors)
    run(pipe, make_frames(2))
    assert all(pipe.unet.attn_processors[name] is processor for name, processor in original.items())

    def explode(pipeline, step, timestep, values):
        if values["frame_index"] == 1:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        run(pipe, make_frames(2), callback_on_step_end=explode, constraints=ConstraintConfig(freeu=FreeUConfig()))
    assert all(pipe.unet.attn_processors[name] is processor for name, processor in original.items())
    assert all(getattr(block, "b1", None) is None for block in pipe.unet.up_blocks)


# the SD 1.5 case runs by default, SDXL's with -m slow (the same code path; keeps the default run under 10 minutes)
@pytest.mark.parametrize("pipe", ["sd15", pytest.param("sdxl", marks=pytest.mark.slow)], indirect=True)
def test_style_update_interval_counts_keyframes(pipe):
    seen = []

    def remember(pipeline, step, timestep, values):
        if step == 1 and values["pass_name"] == "direct":
            store = next(
                p for p in pipeline.unet.attn_processors.values() if isinstance(p, CrossFrameAttnProcessor)
            ).store
            seen.append(store.previous is None)

    frames = make_frames(4)
    run(pipe, frames, constraints=ConstraintConfig(style_update_interval=2), callback_on_step_end=remember)
    # keyframe 0 attends to the anchor only, then updates; keyframe 1 uses keyframe 0; keyframe 2 too (no
    # update at keyframe 1)
    assert seen == [True, False, False]
    seen.clear()
    run(pipe, frames, constraints=ConstraintConfig(style_update_interval=None), callback_on_step_end=remember)
    assert seen == [True, True, True]


def test_colour_correction_and_loose_attention_run(pipe):
    frames = make_frames(2)
    preserved = run(pipe, frames).images
    corrected = run(
        pipe, frames, constraints=ConstraintConfig(color_preserve=False, loose_cross_frame_attention=True)
    ).images
    assert np.allclose(preserved[0], corrected[0], atol=1e-6)  # the anchor is never corrected
    assert not np.allclose(preserved[1], corrected[1], atol=1e-4)


def test_multi_controlnet_with_per_control_strengths(pipe, tiny_pipeline_dir):
    from diffusers import ControlNetModel

    from rerender.diffusion.pipeline import RerenderPipeline

    second = ControlNetModel.from_config(pipe.controlnet.config)  # a second ControlNet of the same family
    second.load_state_dict(pipe.controlnet.state_dict())
    double = RerenderPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        controlnet=[pipe.controlnet, second],
        scheduler=pipe.scheduler,
        text_encoder_2=pipe.text_encoder_2,
        tokenizer_2=pipe.tokenizer_2,
    )
    double.set_progress_bar_config(disable=True)
    frames = make_frames(2)
    single = run(pipe, frames).images
    controls = [
        ControlConfig(strength=1.0),
        ControlConfig(strength=0.0, canny_low_threshold=10, canny_high_threshold=20),
    ]
    assert np.allclose(run(double, frames, controls=controls).images, single, atol=1e-5)
    maps = [np.zeros((64, 64, 3), np.uint8)] * 2
    both = run(double, frames, control_images=[maps, maps], controlnet_conditioning_scale=[0.5, 0.5]).images
    assert both.shape == single.shape


# --------------------------------------------------------------------------------------------------------
# bad input, checked before any model work
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_strength_outside_unit_interval(pipe, strength):
    with count_unet_calls(pipe) as calls, pytest.raises(ConfigError, match=r"`strength` must be in \[0, 1\]"):
        run(pipe, strength=strength)
    assert calls == []


@pytest.mark.parametrize("period", [(0.5, 0.2), (-0.5, 0.5), (0.0, 1.2)])
def test_periods_outside_unit_interval_or_reversed(period):
    with pytest.raises(ConfigError, match="pixel_fusion_period"):
        ConstraintConfig(pixel_fusion_period=period)


def test_control_maps_of_wrong_count_or_size(pipe):
    frames = make_frames(3)
    with pytest.raises(ConfigError, match=r"one map per frame \(3\), got 2"):
        run(pipe, frames, control_images=[np.zeros((64, 64, 3), np.uint8)] * 2)
    with pytest.raises(ConfigError, match=r"is 32×64, expected the frame size 64×64"):
        run(pipe, frames, control_images=[np.zeros((64, 64, 3), np.uint8)] * 2 + [np.zeros((64, 32, 3), np.uint8)])
    with pytest.raises(ConfigError, match="one ControlConfig per ControlNet"):
        run(pipe, frames, controls=[ControlConfig(), ControlConfig()])


def test_sides_need_only_the_vae_factor_not_the_unet_downsampling(pipe):
    # 70×66 px is 35×33 latents: odd, so the UNet's and ControlNet's downsampling rounds and diffusers must
    # forward the upsampling sizes (SD 1.5 at a multiple of 8 that is not a multiple of 64 is the same case).
    frames = [frame[:66, :70] for frame in make_frames(3, size=72)]
    images = np.asarray(run(pipe, frames).images)
    assert images.shape == (3, 66, 70, 3) and np.isfinite(images).all()


def test_bad_frames(pipe):
    with pytest.raises(ConfigError, match="frame 1 is 32×64"):
        run(pipe, [np.zeros((64, 64, 3), np.uint8), np.zeros((64, 32, 3), np.uint8)])
    with pytest.raises(ConfigError, match="multiples of 2"):
        run(pipe, [np.zeros((63, 64, 3), np.uint8)])
    with pytest.raises(ConfigError, match="at least one frame"):
        run(pipe, [])
    with pytest.raises(ConfigError, match=r"frames\[0\]"):
        run(pipe, [np.zeros((64, 64, 3), np.float32)])
    with pytest.raises(ConfigError, match="output_type"):
        run(pipe, output_type="jpeg")


def test_too_long_prompt_is_truncated_with_a_warning(pipe, caplog):
    long_prompt = "a very detailed painting of a red square " * 20
    with caplog.at_level(logging.WARNING, logger="rerender.diffusion.pipeline"), torch.no_grad():
        embeddings = pipe.encode_prompt(long_prompt, None, torch.device("cpu"), True).prompt_embeds
    assert embeddings.shape == (2, 77, 32 if pipe.family == "sd15" else 80)  # SDXL: both encoders' channels
    assert any("truncated" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("pipe", ["sd15", pytest.param("sdxl", marks=pytest.mark.slow)], indirect=True)
@pytest.mark.parametrize("same_noise", [True, False])
def test_resume_continues_exactly_like_the_uninterrupted_run(pipe, same_noise):
    frames = make_frames(4)
    kwargs = dict(
        num_inference_steps=STEPS, strength=0.8, flow_estimator=ZeroFlow(), same_noise_per_keyframe=same_noise
    )
    full = list(pipe.render_keyframes(frames, "a red square", generator=torch.Generator().manual_seed(0), **kwargs))
    saved = dict(full[1].resume_state, next_index=2)  # as if the run stopped after keyframe 1
    resumed = list(
        pipe.render_keyframes(
            frames, "a red square", generator=torch.Generator().manual_seed(0), resume=saved, **kwargs
        )
    )
    assert [frame.index for frame in resumed] == [2, 3]
    for original, again in zip(full[2:], resumed):
        assert torch.allclose(original.image, again.image, atol=1e-5)
    with pytest.raises(ConfigError, match="must be in \\[1, 4\\]"):
        next(pipe.render_keyframes(frames, "a red square", resume=dict(saved, next_index=9), **kwargs))
    assert list(pipe.render_keyframes(frames, "a red square", resume=dict(saved, next_index=4), **kwargs)) == []
