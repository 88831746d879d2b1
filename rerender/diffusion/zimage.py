"""`RerenderZImagePipeline`: the Rerender keyframe constraints on Z-Image, a flow-matching diffusion transformer.

Z-Image (Tongyi-MAI; Z-Image-Turbo: 6B, 8–9 steps without classifier-free guidance, Apache-2.0) denoises a
16-channel VAE latent with a single-stream transformer over ``[image tokens; text tokens]`` and a
`FlowMatchEulerDiscreteScheduler`. This pipeline is `RerenderPipeline` with the base-specific pieces replaced,
so the method's outline (anchor, then each keyframe in two passes, the style update, resume) is one code path:

* the schedule is flow matching: SDEdit starts at the first step with σ ≤ strength, the latent noised by
  ``x_σ = (1 − σ)·x₀ + σ·ε`` (`rerender.diffusion.flow_matching`);
* the model's velocity is turned into ``(x̂₀, ε̂)`` (``x̂₀ = x_σ − σ·v``), so shape-aware fusion and AdaIN act on
  x̂₀ exactly as on SD 1.5, on the VAE latent grid (16 channels, 8× down) before the transformer patchifies it;
  the latent is re-composed at the next σ (the scheduler's Euler step when nothing is edited);
* pixel-aware fusion is the same formula on the flow-matching path (`flow_matching_pixel_fusion`), with the
  fidelity-oriented encoding through the 16-channel VAE (its shift factor included);
* cross-frame attention lives in the transformer's main-stream blocks (`rerender.diffusion.transformer_attention`);
* the constraint windows are fractions of the schedule as on SD: with 8 steps, step i acts for a window
  ``(a, b)`` when ``8a ≤ i ≤ 8b`` (pixel-aware: strictly inside); `ConstraintSchedule` lists the steps.

Not available on this base, as the config documents: FreeU (defined on UNet skip connections; ignored with one
log line) and the IP-Adapter (diffusers has none for Z-Image; refused). A guidance scale above 1 on a
guidance-distilled model (Turbo) warns. Controls: the Z-Image Fun ControlNet (Union: canny, HED, depth, pose,
MLSD, chosen by the kind of control map given), one at a time.

Example:
    >>> pipe = RerenderZImagePipeline.from_pretrained("path/to/z-image-turbo", controlnet=controlnet)  # doctest: +SKIP
    >>> images = pipe(frames, "a watercolour painting", num_inference_steps=9, guidance_scale=1.0).images  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import ZImageControlNetPipeline
from diffusers.loaders import ZImageLoraLoaderMixin
from diffusers.models import AutoencoderKL
from diffusers.models.controlnets.controlnet_z_image import ZImageControlNetModel
from diffusers.models.transformers.transformer_z_image import SEQ_MULTI_OF, ZImageTransformer2DModel
from diffusers.pipelines.z_image.pipeline_z_image_controlnet import calculate_shift
from diffusers.schedulers import FlowMatchEulerDiscreteScheduler
from diffusers.utils.torch_utils import randn_tensor

from rerender.config import ConstraintConfig
from rerender.diffusion.attention import CrossFrameAttentionStore
from rerender.diffusion.flow_matching import (
    first_step_for_strength,
    flow_matching_pixel_fusion,
    flow_matching_update,
    noise_to_sigma,
    predict_original_from_velocity,
    renoise,
    vp_equivalent,
)
from rerender.diffusion.fusion import active_steps, may_fold
from rerender.diffusion.pipeline import (
    ConstraintSchedule,
    PromptConditioning,
    RerenderPipeline,
    _RenderState,
)
from rerender.diffusion.transformer_attention import token_cross_frame_attention
from rerender.errors import ConfigError
from rerender.weights import ZIMAGE_CONTROLNET, ZIMAGE_FOLDERS

logger = logging.getLogger(__name__)

__all__ = [
    "RerenderZImagePipeline",
    "FlowMatchingSchedule",
    "load_zimage_pipeline",
    "load_zimage_controlnet",
    "is_zimage_folder",
    "is_zimage_controlnet",
    "lora_family",
    "DEFAULT_ZIMAGE_MODEL",
    "DEFAULT_ZIMAGE_CONTROLNET",
]


@dataclass(frozen=True)
class FlowMatchingSchedule(ConstraintSchedule):
    """A `ConstraintSchedule` on a flow-matching schedule: σ per step besides the step lists.

    ``timesteps`` are σ·1000 (the scheduler's), ``alphas``/``alphas_next`` the variance-preserving equivalents
    (`vp_equivalent`), kept so code written for DDIM reads them consistently.

    Attributes:
        sigmas: σ at each step, noisiest first.
        sigmas_next: σ each step moves to (0 after the last).
    """

    sigmas: tuple[float, ...] = ()
    sigmas_next: tuple[float, ...] = ()


class RerenderZImagePipeline(ZImageLoraLoaderMixin, RerenderPipeline):
    """Rerender-A-Video keyframes on Z-Image: the transformer + Z-Image ControlNet under the cross-frame constraints.

    A diffusers pipeline with Z-Image's components: ``from_pretrained(hub id or folder, controlnet=...)``,
    ``load_lora_weights``/``set_adapters`` (Z-Image LoRAs), ``enable_model_cpu_offload``. The ControlNet is joined to
    the transformer as diffusers' `ZImageControlNetPipeline` joins it (the embedders and refiners are shared).

    Args:
        scheduler: a `FlowMatchEulerDiscreteScheduler` (Z-Image's, shift 3).
        vae: the 16-channel autoencoder (with a shift factor).
        text_encoder: the Qwen3 text encoder.
        tokenizer: its tokenizer (with a chat template).
        transformer: the `ZImageTransformer2DModel`.
        controlnet: a `ZImageControlNetModel`, or None to render without control.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components: list[str] = ["controlnet"]
    family = "zimage"

    # diffusers' own Z-Image prompt encoding (chat template, the encoder's second-to-last hidden states, unpadded)
    _encode_prompt = ZImageControlNetPipeline._encode_prompt

    def __init__(
        self,
        scheduler: FlowMatchEulerDiscreteScheduler,
        vae: AutoencoderKL,
        text_encoder: Any,
        tokenizer: Any,
        transformer: ZImageTransformer2DModel,
        controlnet: ZImageControlNetModel | None = None,
    ) -> None:
        super(RerenderPipeline, self).__init__()  # DiffusionPipeline's: RerenderPipeline's registers a UNet
        if controlnet is not None:
            controlnet = ZImageControlNetModel.from_transformer(controlnet, transformer)
        self.register_modules(
            scheduler=scheduler,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            transformer=transformer,
            controlnet=controlnet,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if getattr(self, "vae", None) else 8
        self._latent_tokens = 4096

    # ----------------------------------------------------------------------------------------------------
    # what the shared code reads
    # ----------------------------------------------------------------------------------------------------

    @property
    def unet(self) -> ZImageTransformer2DModel:
        """The denoiser, under the name the shared `RerenderPipeline` code reads (its dtype, its input channels)."""
        return self.transformer

    @property
    def controlnets(self) -> list[ZImageControlNetModel]:
        return [] if self.controlnet is None else [self.controlnet]

    @property
    def patch_size(self) -> int:
        return int(self.transformer.config.all_patch_size[0])

    @property
    def size_multiple(self) -> int:
        """Frame sides must be multiples of this: the VAE factor times the transformer's patch size (16)."""
        return self.vae_scale_factor * self.patch_size

    @property
    def guidance_distilled(self) -> bool:
        """Whether the model was distilled to run without classifier-free guidance (Z-Image-Turbo)."""
        return "turbo" in str(self.config.get("_name_or_path", "")).lower()

    # ----------------------------------------------------------------------------------------------------
    # lifecycle steps that differ from SD
    # ----------------------------------------------------------------------------------------------------

    def check_inputs(
        self,
        frames: Any,
        prompt: Any,
        negative_prompt: Any,
        control_images: Any,
        controls: Any,
        controlnet_conditioning_scale: Any,
        num_inference_steps: Any,
        guidance_scale: Any,
        strength: Any,
        constraints: Any,
        refinement: Any,
    ) -> list[torch.Tensor]:
        """`RerenderPipeline.check_inputs`, then what this base adds: the guidance warning and the token count."""
        frames = super().check_inputs(
            frames,
            prompt,
            negative_prompt,
            control_images,
            controls,
            controlnet_conditioning_scale,
            num_inference_steps,
            guidance_scale,
            strength,
            constraints,
            refinement,
        )
        if guidance_scale > 1.0 and self.guidance_distilled:
            logger.warning(
                "guidance_scale %g on a guidance-distilled model (%s): it was trained to run without "
                "classifier-free guidance; 1 turns guidance off and halves the cost",
                guidance_scale,
                self.config.get("_name_or_path"),
            )
        height, width = frames[0].shape[-2:]
        self._latent_tokens = (height // self.size_multiple) * (width // self.size_multiple)
        return frames

    def encode_prompt(
        self,
        prompt: str,
        negative_prompt: str | None,
        device: torch.device,
        do_classifier_free_guidance: bool,
        size: tuple[int, int] | None = None,
    ) -> PromptConditioning:
        """Qwen3 text features, one unpadded ``(L, D)`` tensor per text: ``[positive]`` or ``[positive, negative]``
        (the transformer takes a list; no added conditioning, so `size` is not used)."""
        texts = [prompt] + ([negative_prompt or ""] if do_classifier_free_guidance else [])
        embeddings = self._encode_prompt(list(texts), device=device)
        return PromptConditioning(
            prompt_embeds=[embedding.to(dtype=self.transformer.dtype) for embedding in embeddings]
        )

    def encode_style_image(self, image: Any | None, device: torch.device, guided: bool) -> None:
        if image is not None:
            raise ConfigError(
                "`prompt.style_image` needs an IP-Adapter, and diffusers has none for Z-Image; "
                "use a LoRA for the style, or a Stable Diffusion base for a reference image"
            )
        return None

    def prepare_schedule(
        self, num_inference_steps: int, strength: float, constraints: ConstraintConfig, *, report: bool = True
    ) -> FlowMatchingSchedule:
        """Z-Image's σ schedule (linear in 1 → 1/N, shifted by the scheduler), the SDEdit start by σ, the constraint steps.

        The start is the first step with σ ≤ strength (`first_step_for_strength`); windows are fractions of the
        N steps as on SD, and a window that ends before the start acts once at it only while σ ≥ 0.5
        (`may_fold`, the same rule as SD's t ≥ 500).
        """
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config)
        mu = calculate_shift(
            self._latent_tokens,
            scheduler.config.get("base_image_seq_len", 256),
            scheduler.config.get("max_image_seq_len", 4096),
            scheduler.config.get("base_shift", 0.5),
            scheduler.config.get("max_shift", 1.15),
        )
        base = torch.linspace(1.0, 1.0 / num_inference_steps, num_inference_steps).tolist()
        scheduler.set_timesteps(sigmas=base, mu=mu, device="cpu")
        sigmas = [float(sigma) for sigma in scheduler.sigmas[:num_inference_steps]]
        sigmas_next = [float(sigma) for sigma in scheduler.sigmas[1 : num_inference_steps + 1]]
        first_step = first_step_for_strength(sigmas, strength)
        fold = first_step < num_inference_steps and may_fold(round(sigmas[first_step] * 1000), 1000)

        def steps(period: tuple[float, float] | None, inclusive: bool = True) -> frozenset[int]:
            return frozenset(active_steps(period, num_inference_steps, first_step, inclusive, fold=fold))

        schedule = FlowMatchingSchedule(
            timesteps=tuple(round(sigma * 1000) for sigma in sigmas),
            alphas=tuple(vp_equivalent(sigma)[0] for sigma in sigmas),
            alphas_next=tuple(vp_equivalent(sigma)[0] for sigma in sigmas_next),
            first_step=first_step,
            cross_attention=steps(constraints.cross_frame_attention_period),
            shape_fusion=steps(constraints.shape_fusion_period),
            pixel_fusion=steps(constraints.pixel_fusion_period, inclusive=False),
            adain=steps(constraints.adain_period),
            sigmas=tuple(sigmas),
            sigmas_next=tuple(sigmas_next),
        )
        if report:
            logger.info(
                "flow-matching schedule: σ %s; SDEdit from step %d (strength %g); cross-frame attention at %s, "
                "shape-aware fusion at %s, pixel-aware fusion at %s, AdaIN at %s",
                [round(sigma, 3) for sigma in sigmas],
                first_step,
                strength,
                sorted(schedule.cross_attention),
                sorted(schedule.shape_fusion),
                sorted(schedule.pixel_fusion),
                sorted(schedule.adain),
            )
        return schedule

    def noise_to_step(
        self, schedule: FlowMatchingSchedule, step: int, clean: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A clean latent on the straight path at σ of `step` (SDEdit's start, refinement's re-noise):
        ``x = (1 − σ)·x₀ + σ·ε`` (`noise_to_sigma`); returns ``(x, σ·ε)``."""
        sigma = schedule.sigmas[step]
        return noise_to_sigma(clean, noise, sigma), sigma * noise

    @contextlib.contextmanager
    def constraints_installed(self, state: _RenderState, frame: torch.Tensor) -> Iterator[None]:
        """Token cross-frame attention in the main-stream blocks for one call; FreeU does not apply (one log line)."""
        constraints = state.constraints
        if constraints.freeu is not None:
            logger.info(
                "FreeU is defined on UNet skip connections; Z-Image has none, so `constraints.freeu` is ignored"
            )
        tokens = math.ceil(self._latent_tokens / SEQ_MULTI_OF) * SEQ_MULTI_OF  # the model pads image tokens
        last_blocks = getattr(constraints, "cross_frame_blocks", None)
        with token_cross_frame_attention(self.transformer, state.store, tokens, last_blocks=last_blocks):
            yield

    def prepare_control_image(self, state: _RenderState, index: int, frame: torch.Tensor) -> list[torch.Tensor]:
        """The control map of one frame, VAE-encoded as the Z-Image ControlNet takes it: ``(B, C_control, 1, h, w)``."""
        if self.controlnet is None:
            return []
        images = super().prepare_control_image(state, index, frame)  # (B, 3, H, W) in [0, 1], batched for guidance
        latents = self.encode_images(images[0][:1]).unsqueeze(2)  # guidance batches it again in `predict_velocity`
        missing = self.controlnet.config.control_in_dim - latents.shape[1]
        if missing > 0:  # the 2.0 ControlNets take extra (inpainting) channels: zeros here
            latents = torch.cat((latents, latents.new_zeros(latents.shape[0], missing, *latents.shape[2:])), dim=1)
        return [latents]

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """VAE encoding of images in [0, 1]: ``(E(I) − shift)·scale``, the posterior mean.

        Shape:
            - images: (B, 3, H, W)
            - Output: (B, 16, H / 8, W / 8)
        """
        pixels = (images * 2.0 - 1.0).to(device=self._execution_device, dtype=self.vae.dtype)
        latents = self.vae.encode(pixels).latent_dist.mode()
        config = self.vae.config
        return ((latents - (config.shift_factor or 0.0)) * config.scaling_factor).to(self.transformer.dtype)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE decoding: ``D(x / scale + shift)`` to images in [0, 1].

        Shape:
            - latents: (B, 16, h, w)
            - Output: (B, 3, 8h, 8w)
        """
        config = self.vae.config
        latents = latents.to(self.vae.dtype) / config.scaling_factor + (config.shift_factor or 0.0)
        decoded = self.vae.decode(latents, return_dict=False)[0]
        return ((decoded.float() + 1.0) / 2.0).clamp(0.0, 1.0)

    # ----------------------------------------------------------------------------------------------------
    # the denoising loop on the flow-matching path
    # ----------------------------------------------------------------------------------------------------

    def fuse_pixels(
        self,
        schedule: FlowMatchingSchedule,
        step: int,
        latents: torch.Tensor,
        direction: torch.Tensor,
        target: torch.Tensor,
        noise: torch.Tensor,
        weight: torch.Tensor,
        rescale: torch.Tensor,
    ) -> torch.Tensor:
        """Pixel-aware fusion on the flow-matching path at σ of `step` (`flow_matching_pixel_fusion`)."""
        return flow_matching_pixel_fusion(latents, direction, target, noise, schedule.sigmas[step], weight, rescale)

    def split_prediction(
        self,
        state: _RenderState,
        schedule: FlowMatchingSchedule,
        step: int,
        latents: torch.Tensor,
        control: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One transformer call at `step`, split into ``(x̂₀, ε̂)`` from the velocity (`predict_original_from_velocity`)."""
        sigma = schedule.sigmas[step]
        velocity = self.predict_velocity(state, latents, sigma, control)
        return predict_original_from_velocity(latents, velocity.to(latents.dtype), sigma)

    def recompose(
        self, schedule: FlowMatchingSchedule, step: int, original: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent at the next σ from x̂₀: the scheduler's Euler step when x̂₀ is unedited (`flow_matching_update`)."""
        return flow_matching_update(original, noise, schedule.sigmas_next[step])

    def predict_velocity(
        self, state: _RenderState, latents: torch.Tensor, sigma: float, control: list[torch.Tensor]
    ) -> torch.Tensor:
        """One transformer evaluation (with the ControlNet's block residuals and guidance in one batch): v = ε − x₀.

        Z-Image's transformer takes the time as ``1 − σ`` and returns ``−v`` (its pipeline negates it before the
        scheduler's step); this returns v in the scheduler's convention. Guidance: ``v = v_neg + g·(v_pos − v_neg)``
        (the SD convention: g ≤ 1 is off).

        Shape:
            - latents: (1, 16, h, w)
            - Output: (1, 16, h, w), float32
        """
        state.unet_calls += 1
        guided = state.do_classifier_free_guidance
        batch = 2 if guided else 1
        model_input = latents.to(self.transformer.dtype).unsqueeze(2)  # (1, C, 1, h, w): one "frame"
        inputs = [model_input[0]] * batch
        time = torch.full((batch,), 1.0 - sigma, device=latents.device)
        residuals = None
        if control:
            control_input = control[0].repeat(batch, 1, 1, 1, 1)
            residuals = self.controlnet(
                inputs, time, state.prompt_embeds, control_input, conditioning_scale=state.conditioning_scales[0]
            )
        outputs = self.transformer(
            inputs, time, state.prompt_embeds, controlnet_block_samples=residuals, return_dict=False
        )[0]
        velocities = [-output.float().squeeze(1) for output in outputs]  # (C, h, w) each
        velocity = velocities[0]
        if guided:
            velocity = velocities[1] + state.guidance_scale * (velocities[0] - velocities[1])
        return velocity[None]

    # ----------------------------------------------------------------------------------------------------
    # text alone (Text2Video-Zero on the flow-matching path)
    # ----------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def render_text_keyframes(
        self,
        prompt: str,
        keyframe_indices: Sequence[int],
        motion: tuple[float, float],
        size: tuple[int, int],
        *,
        negative_prompt: str | None = None,
        num_inference_steps: int = 9,
        guidance_scale: float = 1.0,
        noise_steps: tuple[int, int] | None = None,
        generator: torch.Generator | None = None,
        ip_adapter_image: Any | None = None,
        background_smoothing: Any | None = None,
        foreground_mask: Any | None = None,
    ) -> list[torch.Tensor]:
        """Text2Video-Zero keyframes (`rerender.diffusion.text2video.render_text_keyframes`) on Z-Image.

        The anchor is rendered from noise, keeping its latent ``x_{σ0}`` after step ``i0``; keyframe k starts from
        that latent moved by ``k·motion`` (Eq. 7, on the VAE grid), re-noised on the straight path to the noisier
        ``σ1`` of step ``i1`` (Eq. 8's role, `rerender.diffusion.flow_matching.renoise`), then denoised with
        cross-frame attention to the anchor.

        Raises:
            ConfigError: bad `noise_steps`, a size that is not a multiple of `size_multiple`, a reference image
                (no IP-Adapter for Z-Image) or background smoothing (not available on this base yet).
        """
        from rerender.diffusion.pipeline import _Reference
        from rerender.diffusion.text2video import text2video_noise_steps, translate_latents

        if background_smoothing is not None:
            raise ConfigError("`background_smoothing` is not available on Z-Image yet; leave it off")
        width, height = size
        if width % self.size_multiple or height % self.size_multiple:
            raise ConfigError(f"`size` must be multiples of {self.size_multiple} on Z-Image, got {width}×{height}")
        device = self._execution_device
        self.encode_style_image(ip_adapter_image, device, guidance_scale > 1)  # refuses a reference image
        self._latent_tokens = (height // self.size_multiple) * (width // self.size_multiple)
        constraints = ConstraintConfig(shape_fusion_period=None, pixel_fusion_period=None)
        schedule = self.prepare_schedule(num_inference_steps, 1.0, constraints, report=False)
        # T = 941 and T' = 881 of Text2Video-Zero, by value on this schedule (σ·1000), as on SD
        first, second = text2video_noise_steps(schedule.timesteps) if noise_steps is None else noise_steps
        if not 0 <= first < second < num_inference_steps:
            raise ConfigError(
                f"`noise_steps` must satisfy 0 ≤ i1 < i0 < num_inference_steps ({num_inference_steps}), "
                f"got {noise_steps}"
            )
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        state = _RenderState(
            prompt_embeds=self.encode_prompt(prompt, negative_prompt, device, guidance_scale > 1).prompt_embeds,
            guidance_scale=guidance_scale,
            schedule=schedule,
            refinement_schedule=None,
            constraints=constraints,
            annotators=[],
            control_images=None,
            conditioning_scales=[],
            flow_estimator=None,
            store=CrossFrameAttentionStore(),
            same_noise=False,
            generator=generator,
            generator_state=generator.get_state(),
            callback=None,
        )
        shape = (
            1,
            self.transformer.config.in_channels,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        blank = torch.zeros(1, 3, height, width, device=device)
        state.anchor = state.previous = _Reference(frame=blank, rendered=blank)
        sigma_start, sigma_kept = schedule.sigmas[first], schedule.sigmas[second]
        images = []
        with self.constraints_installed(state, blank):
            noise = randn_tensor(shape, generator=generator, device=device, dtype=self.transformer.dtype)
            latents, _, kept = self.denoise(
                state,
                schedule,
                noise,
                noise,
                schedule.steps,
                [],
                frame_index=0,
                pass_name="anchor",
                attend=False,
                record_into="anchor",
                record_steps=schedule.cross_attention,
                resume_at=second,
            )
            images.append(self.decode_latents(latents))
            for index in keyframe_indices[1:]:
                offset = index - keyframe_indices[0]
                moved = translate_latents(
                    kept[0], (offset * motion[0] / self.vae_scale_factor, offset * motion[1] / self.vae_scale_factor)
                )
                fresh = randn_tensor(shape, generator=generator, device=device, dtype=moved.dtype)
                start = renoise(moved, sigma_kept, sigma_start, fresh)
                latents, _, _ = self.denoise(
                    state,
                    schedule,
                    start,
                    torch.zeros_like(start),
                    schedule.steps[first:],
                    [],
                    frame_index=index,
                    pass_name="text2video",
                )
                images.append(self.decode_latents(latents))
        return images


# --------------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------------

DEFAULT_ZIMAGE_MODEL = "Tongyi-MAI/Z-Image-Turbo"
"""Z-Image-Turbo (Apache-2.0): 6B, 8–9 steps without classifier-free guidance."""

DEFAULT_ZIMAGE_CONTROLNET, ZIMAGE_CONTROLNET_FILE = ZIMAGE_CONTROLNET
"""The Union ControlNet for Z-Image-Turbo (canny, HED, depth, pose, MLSD; the kind is read from the map) and its file."""

ZIMAGE_COMPONENTS = ZIMAGE_FOLDERS
"""The sub-folders of a Z-Image repository this pipeline reads."""


def _class_name(config_file: Path) -> str:
    import json

    try:
        return str(json.loads(config_file.read_text(encoding="utf-8")).get("_class_name", ""))
    except (OSError, ValueError):
        return ""


def is_zimage_folder(folder: str | os.PathLike) -> bool:
    """Whether a diffusers folder holds a Z-Image model (its model_index or its transformer says so)."""
    folder = Path(folder)
    return _class_name(folder / "model_index.json").startswith("ZImage") or (
        _class_name(folder / "transformer" / "config.json") == "ZImageTransformer2DModel"
    )


def is_zimage_controlnet(source: str | os.PathLike) -> bool | None:
    """Whether a ControlNet source is a Z-Image ControlNet: True/False when it can be told from its files without
    loading it (a folder's config, a single file's keys), None when it cannot (a hub id not in the cache)."""
    path = Path(source)
    if path.is_dir():
        return _class_name(path / "config.json") == "ZImageControlNetModel"
    if path.is_file() and path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return any(key.startswith(("control_all_x_embedder", "control_layers.")) for key in handle.keys())
    return None


def lora_family(source: str | os.PathLike) -> str | None:
    """The family a LoRA file was made for, read from its keys: "zimage", "sd" (a UNet's), or None when unknown.

    UNet LoRAs name ``unet``/``lora_unet_``/``down_blocks`` modules; Z-Image LoRAs name the transformer's
    ``layers.<i>.attention`` (diffusers ``transformer.`` prefix or the original ``diffusion_model.`` one).
    """
    path = Path(source)
    if not (path.is_file() and path.suffix == ".safetensors"):
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
    if any(key.startswith(("lora_unet_", "unet.")) or "down_blocks" in key or "up_blocks" in key for key in keys):
        return "sd"
    if any(".layers." in key and "attention" in key for key in keys) or any(key.startswith("layers.") for key in keys):
        return "zimage"
    return None


def load_zimage_controlnet(source: str, dtype: torch.dtype = torch.bfloat16) -> ZImageControlNetModel:
    """A Z-Image ControlNet from a diffusers folder or a single `.safetensors` file (the published Union file).

    Raises:
        ConfigError: the source is a ControlNet of another family (named, with both families).
        InputNotFoundError: the source cannot be loaded here.
    """
    from rerender.diffusion.loading import _dtype_argument, _hub_errors, _unreachable

    kind = is_zimage_controlnet(source)
    if kind is False:
        raise ConfigError(
            f"`control.model` {source!r} is not a Z-Image ControlNet (the base model is Z-Image); "
            f"use {DEFAULT_ZIMAGE_CONTROLNET!r} or leave `control.model` empty"
        )
    try:
        if Path(source).is_file():
            return ZImageControlNetModel.from_single_file(source, **_dtype_argument(dtype))
        if Path(source).is_dir():
            return ZImageControlNetModel.from_pretrained(source, **_dtype_argument(dtype))
        from huggingface_hub import hf_hub_download

        return ZImageControlNetModel.from_single_file(
            hf_hub_download(source, ZIMAGE_CONTROLNET_FILE), **_dtype_argument(dtype)
        )
    except _hub_errors() as error:
        raise _unreachable("control.model", source, error) from error


def load_zimage_pipeline(
    model: Any,
    controls: Sequence[Any] = (),
    *,
    controlnet: ZImageControlNetModel | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> RerenderZImagePipeline:
    """Build a `RerenderZImagePipeline` from the `model` and `control` config sections (as `load_pipeline` does for SD).

    The ControlNet (one; `control.model`, default the Union ControlNet) is checked to be a Z-Image one before
    the transformer is loaded; `model.vae` and IP-Adapters do not apply. LoRAs load through diffusers' Z-Image
    LoRA loader (its own and the usual community key layouts). Default dtype: bfloat16 on CUDA.
    """
    from rerender.diffusion.loading import (
        _check_local,
        _dtype_argument,
        _hub_errors,
        _hub_folder,
        _unreachable,
        load_loras,
        resolve_device,
    )

    resolved_device = resolve_device(device if device is not None else model.device)
    wanted = dtype if dtype is not None else model.dtype
    resolved_dtype = (
        (torch.bfloat16 if resolved_device.type == "cuda" else torch.float32)
        if wanted == "auto"
        else getattr(torch, wanted)
        if isinstance(wanted, str)
        else wanted
    )
    if model.vae is not None:
        raise ConfigError(
            f"`model.vae` {model.vae!r} does not apply to Z-Image (its 16-channel VAE is part of the model); leave it empty"
        )
    if len(controls) > 1:
        raise ConfigError(
            f"`control` lists {len(controls)} ControlNets; Z-Image takes one (the Union ControlNet reads several kinds of map)"
        )
    control_source = None
    if controls and controlnet is None:
        control_source = controls[0].model or DEFAULT_ZIMAGE_CONTROLNET
        if is_zimage_controlnet(control_source) is False:  # refuse before the big model loads
            load_zimage_controlnet(control_source)
    for position, lora in enumerate(model.loras):  # a LoRA for a UNet is refused before the transformer loads
        family = lora_family(lora.path)
        if family is not None and family != "zimage":
            raise ConfigError(
                f"`model.loras[{position}].path` {lora.path!r} is a LoRA for a Stable Diffusion UNet ({family}); "
                "the base model is Z-Image (a transformer): use a LoRA made for Z-Image"
            )
    base_path = _check_local(model.base_model, "model.base_model")
    if base_path is None:
        base_path = _hub_folder(model.base_model, "model.base_model", resolved_dtype, ZIMAGE_COMPONENTS)
    if control_source is not None:
        controlnet = load_zimage_controlnet(control_source, resolved_dtype)
    try:
        pipeline = RerenderZImagePipeline.from_pretrained(
            str(base_path), controlnet=controlnet, **_dtype_argument(resolved_dtype)
        )
    except _hub_errors() as error:
        raise _unreachable("model.base_model", model.base_model, error) from error
    load_loras(pipeline, model.loras)
    if model.cpu_offload and resolved_device.type != "cpu":
        pipeline.enable_model_cpu_offload(device=resolved_device)
    else:
        pipeline.to(resolved_device)
    logger.info(
        "loaded Z-Image from %s (%s, %s)%s",
        model.base_model,
        resolved_device,
        resolved_dtype,
        "" if controlnet is None else f" with the ControlNet {control_source or 'given'}",
    )
    return pipeline
