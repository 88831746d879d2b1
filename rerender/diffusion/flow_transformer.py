"""`FlowTransformerPipeline`: what the flow-matching transformer bases (Z-Image, Flux) share, written once.

`RerenderPipeline` is the method's outline (anchor, then each keyframe in two passes, the style update, resume)
with the schedule-specific steps as hooks. On a rectified-flow transformer those hooks are the same for every
base (`rerender.diffusion.flow_matching` has the maths):

* the schedule is flow matching: σ linear in 1 → 1/N, shifted by the scheduler (with ``mu`` from the image
  token count where the scheduler shifts dynamically); SDEdit starts at the first step with σ ≤ strength, the
  latent noised by ``x_σ = (1 − σ)·x₀ + σ·ε`` (`noise_to_step`);
* the model's velocity is turned into ``(x̂₀, ε̂)`` (``x̂₀ = x_σ − σ·v``, `split_prediction`), so shape-aware fusion
  and AdaIN act on x̂₀ exactly as on SD 1.5, on the VAE latent grid (16 channels, 8× down) before the transformer
  patchifies it; the latent is re-composed at the next σ (`recompose`: the scheduler's Euler step when nothing is
  edited);
* pixel-aware fusion is the same formula on the flow path (`fuse_pixels`), with the fidelity-oriented encoding
  through the 16-channel VAE (its shift factor included: `encode_images`, `decode_latents`);
* the constraint windows are fractions of the schedule as on SD: with N steps, step i acts for a window ``(a, b)``
  when ``N·a ≤ i ≤ N·b`` (pixel-aware: strictly inside); `ConstraintSchedule` lists the steps;
* Text2Video-Zero (`render_text_keyframes`, for `generate`) on the flow path;
* FreeU (UNet skips) is ignored with one log line; the IP-Adapter is refused (none is wired for these bases).

What a base defines: ``transformer``/``controlnet`` modules, `family`, `predict_velocity` (one model call, the
velocity ``v = ε − x₀`` in the scheduler's convention), `cross_frame_attention` (its blocks) and
`check_family_inputs` (its warnings).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
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
from rerender.diffusion.loading import FAMILY_NAMES
from rerender.diffusion.pipeline import ConstraintSchedule, RerenderPipeline, _RenderState
from rerender.errors import ConfigError

logger = logging.getLogger(__name__)

_CHECK_ARGUMENTS = tuple(inspect.signature(RerenderPipeline.check_inputs).parameters)[1:]  # after self

__all__ = ["FlowMatchingSchedule", "FlowTransformerPipeline"]


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


class FlowTransformerPipeline(RerenderPipeline):
    """`RerenderPipeline` on a flow-matching diffusion transformer: the hooks every such base shares.

    Subclasses register ``transformer``, ``vae``, ``controlnet`` (optional) and their text encoders, set `family`,
    and define `predict_velocity`, `cross_frame_attention` and `check_family_inputs`.
    """

    _latent_tokens: int = 4096
    """Image tokens the transformer sees at the current size ((H/16)·(W/16)); set by `check_inputs`."""
    requires_controlnet = False
    """The transformers render without control when no ControlNet is loaded."""

    # ----------------------------------------------------------------------------------------------------
    # what the shared code reads
    # ----------------------------------------------------------------------------------------------------

    @property
    def unet(self) -> torch.nn.Module:
        """The denoiser, under the name the shared `RerenderPipeline` code reads (its dtype)."""
        return self.transformer

    @property
    def controlnets(self) -> list[torch.nn.Module]:
        return [] if self.controlnet is None else [self.controlnet]

    @property
    def latent_channels(self) -> int:
        """Channels of the VAE latent grid (16), where every constraint acts."""
        return int(self.vae.config.latent_channels)

    @property
    def family_name(self) -> str:
        return FAMILY_NAMES[self.family]

    # ----------------------------------------------------------------------------------------------------
    # what a base defines
    # ----------------------------------------------------------------------------------------------------

    def predict_velocity(
        self, state: _RenderState, latents: torch.Tensor, sigma: float, control: list[torch.Tensor]
    ) -> torch.Tensor:
        """One model evaluation at σ: the velocity ``v = ε − x₀`` in the scheduler's convention.

        Shape:
            - latents: (1, 16, h, w)
            - Output: (1, 16, h, w), float32
        """
        raise NotImplementedError

    def cross_frame_attention(
        self, store: CrossFrameAttentionStore, last_blocks: int | None
    ) -> contextlib.AbstractContextManager[list[str]]:
        """Install this base's cross-frame attention processors (on its last `last_blocks` blocks) for one call."""
        raise NotImplementedError

    def check_family_inputs(self, guidance_scale: float, negative_prompt: str | None, controls: Any) -> None:
        """What this base checks or warns about besides `RerenderPipeline.check_inputs` (e.g. guidance)."""

    # ----------------------------------------------------------------------------------------------------
    # lifecycle steps that differ from SD
    # ----------------------------------------------------------------------------------------------------

    def check_inputs(self, *arguments: Any) -> list[torch.Tensor]:
        """`RerenderPipeline.check_inputs` (its arguments, in its order), the image token count of this size, then
        `check_family_inputs`."""
        frames = super().check_inputs(*arguments)
        given = dict(zip(_CHECK_ARGUMENTS, arguments))
        height, width = frames[0].shape[-2:]
        self._latent_tokens = (height // self.size_multiple) * (width // self.size_multiple)
        self.check_family_inputs(given["guidance_scale"], given["negative_prompt"], given["controls"])
        return frames

    def encode_style_image(self, image: Any | None, device: torch.device, guided: bool) -> None:
        """No IP-Adapter is wired for these bases.

        Raises:
            ConfigError: a reference image was given.
        """
        if image is not None:
            raise ConfigError(
                f"`prompt.style_image` needs an IP-Adapter, which is not wired for {self.family_name}; "
                "use a LoRA for the style, or a Stable Diffusion base for a reference image"
            )
        return None

    @contextlib.contextmanager
    def constraints_installed(self, state: _RenderState, frame: torch.Tensor) -> Iterator[None]:
        """Cross-frame attention in this base's blocks for one call (`cross_frame_attention`, the last
        ``constraints.cross_frame_blocks`` of them); FreeU does not apply (one log line)."""
        constraints = state.constraints
        if constraints.freeu is not None:
            logger.info(
                "FreeU is defined on UNet skip connections; %s has none, so `constraints.freeu` is ignored",
                self.family_name,
            )
        with self.cross_frame_attention(state.store, getattr(constraints, "cross_frame_blocks", None)) as layers:
            # every chosen block records its image tokens (as many as the processors take: the model's padding)
            shapes = [(state.store.image_tokens, self.model_width)] * len(layers)
            if self.place_references(state, shapes) == "device":
                self.check_reference_memory(state, len(layers))
            yield

    def check_reference_memory(self, state: _RenderState, blocks: int) -> int | None:
        """On CUDA, warn when the stored attention references of this call would not fit the free GPU memory, naming
        the ``constraints.cross_frame_blocks`` that would (`blocks_within`); returns that block count, or None
        when there is nothing to say (not CUDA, or they fit).

        The references are ``REFERENCE_FRAMES`` frames of one ``(batch, image tokens, width)`` input per block and
        attention step (`reference_bytes`); batch 2 with guidance in the batch.
        """
        device = self._execution_device
        steps = len(state.schedule.cross_attention)
        if device.type != "cuda" or not steps or not blocks:
            return None
        from rerender.diffusion.transformer_attention import REFERENCE_FRAMES, blocks_within, reference_bytes

        batch = self.reference_batch(state)
        element = torch.empty((), dtype=self.transformer.dtype).element_size()
        needed = REFERENCE_FRAMES * reference_bytes(
            self._latent_tokens, self.model_width, blocks, steps, batch, element
        )
        free = torch.cuda.mem_get_info(device)[0]
        if needed <= free:
            return None
        fitting = blocks_within(free, self._latent_tokens, self.model_width, steps, blocks, batch, element)
        logger.warning(
            "cross-frame attention in %d blocks at %d steps stores %.1f GiB of references, but %.1f GiB of GPU memory "
            "is free: set constraints.cross_frame_blocks to %d or fewer (the last blocks are kept), or shorten "
            "constraints.cross_frame_attention_period",
            blocks,
            steps,
            needed / 2**30,
            free / 2**30,
            fitting,
        )
        return fitting

    @property
    def model_width(self) -> int:
        """The transformer's hidden width (the size of one stored image token)."""
        raise NotImplementedError

    def reference_batch(self, state: _RenderState) -> int:
        """The batch the stored references have: 2 when guidance runs in the batch, else 1."""
        return 2 if state.do_classifier_free_guidance else 1

    def prepare_schedule(
        self, num_inference_steps: int, strength: float, constraints: ConstraintConfig, *, report: bool = True
    ) -> FlowMatchingSchedule:
        """The σ schedule (linear in 1 → 1/N, shifted by the scheduler: with ``mu`` from the image token count where it
        shifts dynamically, as diffusers' Z-Image and Flux pipelines), the SDEdit start by σ, the constraint steps.

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

    # ----------------------------------------------------------------------------------------------------
    # the VAE and the denoising loop on the flow-matching path
    # ----------------------------------------------------------------------------------------------------

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

    @torch.no_grad()
    def render_text_keyframes(
        self,
        prompt: str,
        keyframe_indices: Sequence[int],
        motion: tuple[float, float],
        size: tuple[int, int],
        *,
        negative_prompt: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        noise_steps: tuple[int, int] | None = None,
        generator: torch.Generator | None = None,
        ip_adapter_image: Any | None = None,
        background_smoothing: Any | None = None,
        foreground_mask: Any | None = None,
    ) -> list[torch.Tensor]:
        """Text2Video-Zero keyframes (`rerender.diffusion.text2video.render_text_keyframes`) on the flow path.

        The anchor is rendered from noise, keeping its latent ``x_{σ0}`` after step ``i0``; keyframe k starts from
        that latent moved by ``k·motion`` in whole latent pixels (Eq. 7, on the VAE grid; `keyframe_offsets`, the
        offsets `generate` moves its propagation guides by), re-noised on the straight path to the noisier
        ``σ1`` of step ``i1`` (Eq. 8's role, `rerender.diffusion.flow_matching.renoise`), then denoised with
        cross-frame attention to the anchor.

        Raises:
            ConfigError: bad `noise_steps`, a size that is not a multiple of `size_multiple`, a reference image
                (no IP-Adapter on these bases) or background smoothing (not available on these bases yet).
        """
        from rerender.diffusion.pipeline import _Reference
        from rerender.diffusion.text2video import keyframe_offsets, text2video_noise_steps, translate_latents

        num_inference_steps, guidance_scale = self.sampling_defaults(num_inference_steps, guidance_scale)

        if background_smoothing is not None:
            raise ConfigError(f"`background_smoothing` is not available on {self.family_name} yet; leave it off")
        width, height = size
        if width % self.size_multiple or height % self.size_multiple:
            raise ConfigError(
                f"`size` must be multiples of {self.size_multiple} on {self.family_name}, got {width}×{height}"
            )
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
        shape = (1, self.latent_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
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
            factor = self.vae_scale_factor
            offsets = keyframe_offsets(keyframe_indices, motion, factor)  # whole latent pixels, as `generate`'s guides
            for index, (offset_x, offset_y) in zip(keyframe_indices[1:], offsets[1:], strict=True):
                moved = translate_latents(kept[0], (offset_x // factor, offset_y // factor))
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
