"""Rerender's constraints on Flux.1 (a flow-matching transformer), with tiny random components built from configs."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from rerender.config import ConstraintConfig, ControlConfig
from rerender.diffusion.attention import CrossFrameAttentionStore
from rerender.errors import ConfigError
from rerender.flow import DISFlowEstimator
from tests.tiny_flux import make_tiny_flux_components, make_tiny_flux_controlnet

OFF = ConstraintConfig(cross_frame_attention_period=None, shape_fusion_period=None, pixel_fusion_period=None)


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return make_tiny_flux_components(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def pipe(components):
    from rerender.diffusion.flux import RerenderFluxPipeline

    pipeline = RerenderFluxPipeline(**components)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    base = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    return [np.roll(base, shift, axis=1) for shift in (0, 2, 4)]  # a pan


def test_packing_is_flux_own_and_round_trips():
    from diffusers import FluxPipeline

    from rerender.diffusion.flux import latent_image_ids, pack_latents, unpack_latents

    latents = torch.randn(1, 16, 8, 6)
    tokens = pack_latents(latents)
    assert tokens.shape == (1, 12, 64)
    torch.testing.assert_close(tokens[0, 1], latents[0, :, 0:2, 2:4].permute(0, 1, 2).reshape(-1))  # patch (0, 1)
    torch.testing.assert_close(unpack_latents(tokens, 8, 6), latents)
    # the positions of FluxPipeline's own latents for a 64×48 image: (0, row, column) of each 2×2 patch
    expected = FluxPipeline._prepare_latent_image_ids(1, 4, 3, "cpu", torch.float32)
    torch.testing.assert_close(latent_image_ids(8, 6, "cpu", torch.float32), expected)
    assert latent_image_ids(8, 6, "cpu", torch.float32)[4].tolist() == [0.0, 1.0, 1.0]


def test_anchor_from_noise_equals_diffusers_flux_pipeline(pipe, components, frames):
    """schnell-shaped (no guidance embedding): the anchor at strength 1 with the constraints off is plain Flux."""
    from diffusers import FluxPipeline

    reference = FluxPipeline(**components, image_encoder=None, feature_extractor=None)
    reference.set_progress_bar_config(disable=True)
    expected = reference(
        "a red cube",
        height=64,
        width=64,
        num_inference_steps=3,
        guidance_scale=0.0,
        max_sequence_length=256,  # schnell's
        generator=torch.Generator().manual_seed(3),
        output_type="np",
    ).images[0]
    ours = pipe(
        [frames[0]],
        "a red cube",
        num_inference_steps=3,
        guidance_scale=0.0,
        strength=1.0,
        generator=torch.Generator().manual_seed(3),
        constraints=OFF,
    ).images[0]
    np.testing.assert_allclose(ours, expected, atol=2e-4)


def _as_diffusers_image(image: np.ndarray) -> torch.Tensor:
    """A map as the tensor diffusers' Flux ControlNet pipeline takes unchanged: (1, 3, H, W) in [−1, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0 * 2.0 - 1.0


@pytest.mark.parametrize("true_cfg_scale", [1.0, 4.0])
def test_anchor_with_guidance_embedding_and_controlnet_equals_flux_controlnet_pipeline(
    tmp_path, frames, true_cfg_scale
):
    """dev-shaped (guidance embedded: one call per step) with a ControlNet, without and with true guidance (a
    negative prompt, `true_cfg_scale` 4: one batch, the ControlNet's residuals shared): FluxControlNetPipeline's."""
    from diffusers import FluxControlNetPipeline

    from rerender.diffusion.flux import RerenderFluxPipeline

    components = make_tiny_flux_components(tmp_path, seed=5, guidance_embeds=True)
    components["controlnet"] = make_tiny_flux_controlnet(components["transformer"], hint_block=True)
    reference = FluxControlNetPipeline(**components)
    reference.set_progress_bar_config(disable=True)
    control_map = frames[1]
    true_guidance = dict(negative_prompt="a blue sphere", true_cfg_scale=true_cfg_scale)
    expected = reference(
        "a red cube",
        control_image=_as_diffusers_image(control_map),
        height=64,
        width=64,
        num_inference_steps=3,
        guidance_scale=3.5,
        controlnet_conditioning_scale=0.8,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
        **true_guidance,
    ).images[0]
    pipe = RerenderFluxPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    ours = pipe(
        [frames[0]],
        "a red cube",
        control_images=[control_map],
        controlnet_conditioning_scale=0.8,
        num_inference_steps=3,
        guidance_scale=3.5,
        strength=1.0,
        generator=torch.Generator().manual_seed(3),
        constraints=OFF,
        **true_guidance,
    )
    np.testing.assert_allclose(ours.images[0], expected, atol=2e-4)
    if true_cfg_scale > 1:
        return
    without = pipe(
        [frames[0]],
        "a red cube",
        num_inference_steps=3,
        guidance_scale=3.5,
        strength=1.0,
        generator=torch.Generator().manual_seed(3),
        constraints=OFF,
        controlnet_conditioning_scale=0.0,
        control_images=[control_map],
    ).images[0]
    other = pipe(
        [frames[0]],
        "a red cube",
        control_images=[255 - control_map],
        controlnet_conditioning_scale=0.8,
        num_inference_steps=3,
        guidance_scale=3.5,
        strength=1.0,
        generator=torch.Generator().manual_seed(3),
        constraints=OFF,
    ).images[0]
    assert np.abs(without - ours.images[0]).mean() > 1e-4  # the ControlNet acts
    assert np.abs(other - ours.images[0]).mean() > 1e-5  # and the map matters (rounding alone: ~1e-7)
    assert ours.unet_calls == [3]  # no classifier-free guidance batch: one call per step


def test_a_vae_latent_controlnet_gets_the_packed_encoded_map_as_flux_controlnet_pipeline(
    components, frames, monkeypatch
):
    """The published kind (no hint block): the map's VAE latent, shifted, scaled and packed. diffusers samples the
    posterior with the generator, we take its mean: with the mean in both, the outputs are equal."""
    from diffusers import FluxControlNetPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    from rerender.diffusion.flux import RerenderFluxPipeline

    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mode())
    parts = {**components, "controlnet": make_tiny_flux_controlnet(components["transformer"])}
    reference = FluxControlNetPipeline(**parts)
    reference.set_progress_bar_config(disable=True)
    expected = reference(
        "a red cube",
        control_image=_as_diffusers_image(frames[1]),
        height=64,
        width=64,
        max_sequence_length=256,
        num_inference_steps=2,
        guidance_scale=0.0,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
    ).images[0]
    pipe = RerenderFluxPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    ours = pipe(
        [frames[0]],
        "a red cube",
        control_images=[frames[1]],
        controlnet_conditioning_scale=1.0,
        num_inference_steps=2,
        guidance_scale=0.0,
        strength=1.0,
        generator=torch.Generator().manual_seed(3),
        constraints=OFF,
    ).images[0]
    np.testing.assert_allclose(ours, expected, atol=2e-4)
    other = pipe(
        [frames[0]],
        "a red cube",
        control_images=[255 - frames[1]],
        controlnet_conditioning_scale=1.0,
        num_inference_steps=2,
        guidance_scale=0.0,
        strength=1.0,
        generator=torch.Generator().manual_seed(3),
        constraints=OFF,
    ).images[0]
    assert np.abs(other - ours).mean() > 1e-4  # the control map matters


def test_a_union_controlnet_gets_its_mode_from_the_control_type(components, frames, monkeypatch):
    from diffusers import FluxControlNetPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    from rerender.diffusion.flux import RerenderFluxPipeline

    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mode())  # as above

    parts = {**components, "controlnet": make_tiny_flux_controlnet(components["transformer"], union=True)}
    reference = FluxControlNetPipeline(**parts)
    reference.set_progress_bar_config(disable=True)
    pipe = RerenderFluxPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    images = {}
    for kind, mode in (("depth", 2), ("openpose", 4)):
        expected = reference(
            "a red cube",
            control_image=_as_diffusers_image(frames[1]),
            control_mode=mode,
            max_sequence_length=256,
            height=64,
            width=64,
            num_inference_steps=2,
            guidance_scale=0.0,
            generator=torch.Generator().manual_seed(3),
            output_type="np",
            controlnet_conditioning_scale=1.0,
        ).images[0]
        images[kind] = pipe(
            [frames[0]],
            "a red cube",
            control_images=[frames[1]],
            controls=[ControlConfig(type=kind)],
            num_inference_steps=2,
            guidance_scale=0.0,
            strength=1.0,
            generator=torch.Generator().manual_seed(3),
            constraints=OFF,
        ).images[0]
        np.testing.assert_allclose(images[kind], expected, atol=2e-4)
    assert np.abs(images["depth"] - images["openpose"]).mean() > 1e-5


def _transformer_inputs(components, seed=0):
    from rerender.diffusion.flux import latent_image_ids, pack_latents

    generator = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=pack_latents(torch.randn(1, 16, 8, 8, generator=generator)),
        encoder_hidden_states=torch.randn(1, 7, 32, generator=generator),
        pooled_projections=torch.randn(1, 32),
        timestep=torch.tensor([0.6]),
        txt_ids=torch.zeros(7, 3),
        img_ids=latent_image_ids(8, 8, "cpu", torch.float32),
        return_dict=False,
    )


def test_cross_frame_attention_to_the_frame_itself_changes_nothing(components):
    """Image queries over [own image tokens; own text] are each block's own attention: the output is unchanged."""
    from rerender.diffusion.transformer_attention import flux_blocks, flux_cross_frame_attention

    transformer = components["transformer"]
    inputs = _transformer_inputs(components)
    with torch.no_grad():
        plain = transformer(**inputs)[0]
        store = CrossFrameAttentionStore()
        with flux_cross_frame_attention(transformer, store, image_tokens=16) as layers:
            store.set_step(0, record="anchor")
            recorded = transformer(**inputs)[0]
            store.set_step(0, attend=True)
            attended = transformer(**inputs)[0]
            store.set_step(0, attend=True)
            other = transformer(**_transformer_inputs(components, seed=1))[0]
            store.set_step(0, attend=False)
            other_plain = transformer(**_transformer_inputs(components, seed=1))[0]
    torch.testing.assert_close(recorded, plain)
    torch.testing.assert_close(attended, plain, atol=1e-5, rtol=1e-5)
    assert (other - other_plain).abs().mean() > 1e-3  # another frame attending to the anchor does change
    assert layers == flux_blocks(transformer) and len(store.anchor) == 4  # 2 double- and 2 single-stream blocks
    assert layers[0] == "transformer_blocks.0.attn" and layers[-1] == "single_transformer_blocks.1.attn"
    assert all(
        type(block.attn.processor).__name__ == "FluxAttnProcessor"
        for block in (*transformer.transformer_blocks, *transformer.single_transformer_blocks)
    )
    assert flux_blocks(transformer, last_blocks=3) == layers[1:]


@pytest.mark.parametrize("stream", ["double", "single"])
def test_cross_frame_attention_changes_image_queries_only(components, stream):
    from diffusers.models.transformers.transformer_flux import FluxPosEmbed

    from rerender.diffusion.flux import latent_image_ids
    from rerender.diffusion.transformer_attention import FluxCrossFrameAttnProcessor

    transformer = components["transformer"]
    text, image = torch.randn(1, 5, 32), torch.randn(1, 16, 32)
    ids = torch.cat((torch.zeros(5, 3), latent_image_ids(8, 8, "cpu", torch.float32)))  # [text; image] positions
    rotary = FluxPosEmbed(theta=10000, axes_dim=[4, 6, 6])(ids)
    references = torch.randn(1, 32, 32)  # anchor and previous
    if stream == "double":
        block = transformer.transformer_blocks[0].attn
        original_image, original_text = block.processor(block, image, text, None, rotary)
        attended_image, attended_text = FluxCrossFrameAttnProcessor.attend(block, image, text, references, 16, rotary)
    else:
        block = transformer.single_transformer_blocks[0].attn
        joint = torch.cat((text, image), dim=1)
        original = block.processor(block, joint, None, None, rotary)
        attended = FluxCrossFrameAttnProcessor.attend(block, joint, None, references, 16, rotary)
        original_text, original_image = original[:, :5], original[:, 5:]
        attended_text, attended_image = attended[:, :5], attended[:, 5:]
    torch.testing.assert_close(attended_text, original_text, atol=1e-5, rtol=1e-5)
    assert (attended_image - original_image).abs().mean() > 1e-3


def test_cross_frame_attention_runs_in_the_keyframe_loop(pipe, frames):
    constraints = ConstraintConfig(shape_fusion_period=None, pixel_fusion_period=None)
    settings = dict(num_inference_steps=3, guidance_scale=0.0, strength=0.9, output_type="latent")
    frames = [frames[0], 255 - frames[0]]  # a keyframe unlike the anchor: attending to it must show
    attended = pipe(
        frames, "a cube", constraints=constraints, generator=torch.Generator().manual_seed(0), **settings
    ).images
    plain = pipe(frames, "a cube", constraints=OFF, generator=torch.Generator().manual_seed(0), **settings).images
    torch.testing.assert_close(attended[0], plain[0])  # the anchor attends to nothing before it
    assert (attended[1] - plain[1]).abs().mean() > 3e-5  # rounding alone differs by ~1e-7


def test_guidance_on_schnell_warns_and_a_union_controlnet_refuses_a_type_it_has_no_mode_for(
    pipe, frames, components, caplog
):
    from rerender.diffusion.flux import RerenderFluxPipeline

    with caplog.at_level(logging.WARNING, logger="rerender.diffusion.flux"):
        pipe(frames[:1], "a cube", num_inference_steps=1, guidance_scale=3.0, constraints=OFF)
    assert "schnell" in caplog.text and "ignored" in caplog.text
    union_controlnet = make_tiny_flux_controlnet(components["transformer"], union=True)
    union = RerenderFluxPipeline(**components, controlnet=union_controlnet)
    with pytest.raises(ConfigError, match="control.type.*'hed'.*Union.*'canny', 'depth', 'openpose'"):
        union(
            frames[:1],
            "a cube",
            control_images=[frames[0]],
            controls=[ControlConfig(type="hed")],
            num_inference_steps=1,
            guidance_scale=0.0,
        )


def test_the_schnell_schedule_at_four_steps_acts_where_the_docs_say(components, frames):
    """schnell's scheduler (shift 1, no dynamic shifting): σ = 1, 0.75, 0.5, 0.25, as documented."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from rerender.diffusion.flux import RerenderFluxPipeline

    schnell = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)
    pipe = RerenderFluxPipeline(**{**components, "scheduler": schnell})
    pipe.check_inputs([frames[0]], "x", None, None, None, None, 4, 0.0, 0.75, None, None)
    schedule = pipe.prepare_schedule(4, 0.75, ConstraintConfig(), report=False)
    assert [round(sigma, 3) for sigma in schedule.sigmas] == [1.0, 0.75, 0.5, 0.25]
    assert schedule.first_step == 1
    assert sorted(schedule.cross_attention) == [1, 2, 3]
    assert sorted(schedule.shape_fusion) == [1]  # its window (0, 0.1) ends before the start: moved onto it
    assert sorted(schedule.pixel_fusion) == [3]


def test_dynamic_shifting_uses_the_packed_sequence_length(pipe, frames):
    """dev's scheduler shifts σ with mu from the packed image tokens ((H/16)·(W/16)), as FluxPipeline does."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    pipe.check_inputs([frames[0]], "x", None, None, None, None, 4, 0.0, 1.0, None, None)
    schedule = pipe.prepare_schedule(4, 1.0, OFF, report=False)
    mu = calculate_shift(16, 256, 4096, 0.5, 1.15)
    base = np.linspace(1.0, 0.25, 4)
    expected = np.exp(mu) / (np.exp(mu) + (1 / base - 1))
    np.testing.assert_allclose(schedule.sigmas, expected, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def tiny_flux_dirs(tmp_path_factory):
    from tests.tiny_flux import save_tiny_flux

    return save_tiny_flux(tmp_path_factory.mktemp("flux"))


def test_a_flux_folder_or_hub_id_is_recognised(tiny_flux_dirs, tiny_pipeline_dir):
    from rerender.config import ModelConfig
    from rerender.diffusion.flux import is_flux_controlnet
    from rerender.weights import detect_family_or_none

    base, control = tiny_flux_dirs
    assert is_flux_controlnet(control) and is_flux_controlnet(tiny_pipeline_dir / "controlnet") is False
    assert detect_family_or_none(ModelConfig(base_model=str(base))) == "flux"
    assert detect_family_or_none(ModelConfig(base_model=str(tiny_pipeline_dir))) == "sd15"
    assert detect_family_or_none(ModelConfig(base_model="black-forest-labs/FLUX.1-schnell")) == "flux"


def test_a_flux_lora_loads_and_changes_the_transformer(tiny_flux_dirs, tmp_path):
    from safetensors.torch import save_file

    from rerender.config import LoraConfig, ModelConfig
    from rerender.diffusion.loading import load_transformer_pipeline, transformer_lora_family

    base, _ = tiny_flux_dirs
    generator = torch.Generator().manual_seed(0)
    weights = {}
    for module in ("transformer_blocks.0.attn.to_q", "single_transformer_blocks.1.attn.to_v"):
        weights[f"transformer.{module}.lora_A.weight"] = torch.randn(4, 32, generator=generator)
        weights[f"transformer.{module}.lora_B.weight"] = torch.randn(32, 4, generator=generator)
    lora = tmp_path / "flux_lora.safetensors"
    save_file(weights, str(lora))
    assert transformer_lora_family(lora) == "flux"
    plain = load_transformer_pipeline(ModelConfig(base_model=str(base), device="cpu"), [], family="flux")
    styled = load_transformer_pipeline(
        ModelConfig(base_model=str(base), device="cpu", loras=(LoraConfig(path=str(lora), scale=0.5),)),
        [],
        family="flux",
    )
    assert "lora_0" in styled.get_list_adapters()["transformer"]
    with torch.no_grad():
        inputs = _transformer_inputs({})
        difference = (styled.transformer(**inputs)[0] - plain.transformer(**inputs)[0]).abs().mean()
    assert difference > 1e-4


def test_true_guidance_with_a_negative_prompt_equals_diffusers_flux_pipeline(tmp_path, frames):
    """dev-shaped, `true_cfg_scale` 4 with a negative prompt: FluxPipeline's image (with a ControlNet: see the
    FluxControlNetPipeline test above)."""
    from diffusers import FluxPipeline

    from rerender.diffusion.flux import RerenderFluxPipeline

    components = make_tiny_flux_components(tmp_path, seed=7, guidance_embeds=True)
    settings = dict(num_inference_steps=3, guidance_scale=3.5, negative_prompt="a blue sphere")
    reference = FluxPipeline(**components, image_encoder=None, feature_extractor=None)
    reference.set_progress_bar_config(disable=True)
    expected = reference(
        "a red cube", height=64, width=64, true_cfg_scale=4.0, generator=torch.Generator().manual_seed(3),
        output_type="np", **settings,
    ).images[0]  # fmt: skip
    pipe = RerenderFluxPipeline(**components)
    pipe.set_progress_bar_config(disable=True)

    def ours(scale):
        return pipe(
            [frames[0]], "a red cube", true_cfg_scale=scale, strength=1.0, generator=torch.Generator().manual_seed(3),
            constraints=OFF, **settings,
        )  # fmt: skip

    guided = ours(4.0)
    np.testing.assert_allclose(guided.images[0], expected, atol=2e-4)
    assert np.abs(ours(1.0).images[0] - guided.images[0]).mean() > 1e-4  # the guidance acts
    assert guided.unet_calls == [3]  # negative and positive in one batch
    assert pipe._true_cfg_scale == 1.0  # set for the call only
    with pytest.raises(ConfigError, match="true_cfg_scale.*≥ 1.*0.5"):
        ours(0.5)


def test_true_guidance_runs_on_every_pass_and_in_text2video(tmp_path, frames):
    """Anchor, both keyframe passes, refinement and Text2Video-Zero all run [negative; positive] together, and the
    cross-frame references are recorded with the same batch."""
    from rerender.config import RefinementConfig
    from rerender.diffusion.flux import RerenderFluxPipeline

    pipe = RerenderFluxPipeline(**make_tiny_flux_components(tmp_path, guidance_embeds=True))
    pipe.set_progress_bar_config(disable=True)
    batches: dict[str, set[int]] = {}

    def record(pipeline, step, timestep, values):
        batches.setdefault(values["pass_name"], set()).add(seen[-1])

    seen: list[int] = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["hidden_states"].shape[0]), with_kwargs=True
    )
    try:
        pipe(
            frames,
            "a red cube",
            negative_prompt="blur",
            true_cfg_scale=3.0,
            num_inference_steps=4,
            guidance_scale=3.5,
            strength=0.9,
            refinement=RefinementConfig(refinement_strength=0.5),
            flow_estimator=DISFlowEstimator(),
            callback_on_step_end=record,
            generator=torch.Generator().manual_seed(0),
        )
        assert set(batches) == {"anchor", "direct", "fused", "refine"}
        assert all(sizes == {2} for sizes in batches.values()), batches
        seen.clear()
        images = pipe.render_text_keyframes(
            "a red cube",
            [0, 3],
            (3.0, 0.0),
            (64, 64),
            negative_prompt="blur",
            true_cfg_scale=3.0,
            num_inference_steps=4,
            guidance_scale=3.5,
            noise_steps=(1, 2),
            generator=torch.Generator().manual_seed(0),
        )
        assert set(seen) == {2} and len(images) == 2
    finally:
        hook.remove()
