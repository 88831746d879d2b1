"""`RerenderPipeline`: keyframe translation with Stable Diffusion 1.5 + ControlNet under cross-frame constraints.

The keyframe half of Rerender-A-Video (Yang et al., SIGGRAPH Asia 2023, §4.1). The first frame given is the
*anchor*: it is rendered first and every later keyframe is kept consistent with it and with the keyframe
before it by

1. cross-frame attention to the anchor and the previous keyframe (`rerender.diffusion.attention`, paper Eq. 6);
2. shape-aware fusion of the predicted x̂0 with the flow-warped anchor's, in early steps;
3. pixel-aware fusion: a second pass blended toward the warped anchor / previous keyframe / first pass
   composite (Eq. 10), encoded with the fidelity-oriented encoder (Eq. 8–9);
4. colour-aware AdaIN of x̂0 toward the anchor's statistics, in late steps;

plus colour correction of the inputs, FreeU (the paper's variant, `rerender.diffusion.freeu`), and an optional DDIM
refinement pass. Every constraint has a period on the *full* DDIM schedule (`rerender.config.ConstraintConfig`);
the SDEdit start truncates the schedule (no UNet call is computed and thrown away), and a window that falls before it acts at the first
executed step only while that step is in the noisier half of the schedule (`rerender.diffusion.fusion.may_fold`).

Differences from the official code, on purpose: the SDEdit start no longer cancels shape-aware fusion nor
wastes UNet calls; the second pass starts where the pixel-aware window starts (its earlier steps are those of
the first pass, computed once); cross-frame attention is found by structure and runs through SDPA or xformers;
attention references are stored in the compute dtype for the steps and layers that use them, on the GPU or in
host memory (`place_references`); classifier-free guidance runs as one batched call; the style-update interval
counts keyframes.

Example:
    >>> from rerender.diffusion.pipeline import RerenderPipeline                       # doctest: +SKIP
    >>> pipe = RerenderPipeline.from_pretrained("path/to/sd15-controlnet")   # doctest: +SKIP
    >>> images = pipe(frames, "a watercolour painting", strength=0.75).images  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from diffusers import DiffusionPipeline, StableDiffusionMixin, StableDiffusionPipeline
from diffusers.loaders import (
    FromSingleFileMixin,
    IPAdapterMixin,
    StableDiffusionLoraLoaderMixin,
    StableDiffusionXLLoraLoaderMixin,
    TextualInversionLoaderMixin,
)
from diffusers.models import AutoencoderKL, ControlNetModel, ControlNetUnionModel, UNet2DConditionModel
from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel
from diffusers.schedulers import DDIMScheduler
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import (
    CLIPImageProcessor,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionModelWithProjection,
)

from rerender.color import correct_colors
from rerender.config import ConstraintConfig, ControlConfig, RefinementConfig
from rerender.diffusion.attention import (
    CrossFrameAttentionStore,
    choose_reference_storage,
    cross_frame_attention,
    decoder_layer_shapes,
    reference_bytes_estimate,
    references_held,
)
from rerender.diffusion.control import Annotator, make_annotator, union_control_mode
from rerender.diffusion.freeu import freeu_installed
from rerender.diffusion.fusion import (
    FOLD_NOISE_LIMIT,
    active_steps,
    adain,
    channel_statistics,
    composite_references,
    ddim_update,
    fidelity_oriented_encode,
    flat_regions,
    may_fold,
    noise_rescale,
    pixel_aware_fusion,
    predict_original,
    shape_aware_fusion,
    window_steps,
)
from rerender.diffusion.loading import FAMILY_NAMES, family_of_unet_config
from rerender.errors import ConfigError
from rerender.flow import (
    flow_to_latent,
    forward_backward_occlusion,
    load_flow_estimator,
    mask_to_latent,
    soften_mask,
    warp,
)

logger = logging.getLogger(__name__)

__all__ = [
    "RerenderPipeline",
    "RerenderPipelineOutput",
    "RenderedFrame",
    "ConstraintSchedule",
    "FusionGuidance",
    "PromptConditioning",
    "SDXL_NATIVE_SIDE",
]

SDXL_NATIVE_SIDE = 1024
"""The long side SDXL was trained at (px); much smaller frames get a warning."""

FlowEstimator = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
StepCallback = Callable[["RerenderPipeline", int, int, dict[str, Any]], "dict[str, Any] | None"]


# --------------------------------------------------------------------------------------------------------
# results and per-call state
# --------------------------------------------------------------------------------------------------------


@dataclass
class RerenderPipelineOutput(BaseOutput):
    """What `RerenderPipeline.__call__` returns.

    Attributes:
        images: the rendered frames in input order, the anchor first: ``(T, H, W, 3)`` float in [0, 1] for
            ``output_type="np"``, ``(T, 3, H, W)`` for ``"pt"``, a list of PIL images for ``"pil"``, or latents
            ``(T, 4, h, w)`` for ``"latent"``.
        unet_calls: UNet evaluations spent on each frame (one per denoising step; guidance is batched).
    """

    images: Any
    unet_calls: list[int]


@dataclass
class RenderedFrame:
    """One rendered frame, as `RerenderPipeline.render_keyframes` yields it.

    Attributes:
        index: position in the `frames` given (0 = the anchor).
        image: ``(3, H, W)`` float in [0, 1], on the CPU.
        latents: ``(1, 4, h, w)`` final latents, on the CPU.
        unet_calls: UNet evaluations spent on this frame.
        seconds: wall time spent on this frame.
        resume_state: what `render_keyframes(..., resume=...)` needs to continue after this frame (CPU tensors:
            the previous keyframe's input, render and attention references, the generator state); save it
            with `torch.save`. Holds the references (with host reference storage, the store's own pinned host
            copies, not new ones), so drop it once saved.
    """

    index: int
    image: torch.Tensor
    latents: torch.Tensor
    unet_calls: int
    seconds: float
    resume_state: dict[str, Any] | None = None

    @property
    def is_anchor(self) -> bool:
        return self.index == 0


def second_pass_phrase(start: int | None) -> str:
    """How the progress log tells where the pixel-aware second pass starts (`ConstraintSchedule.second_pass_start`;
    None: pixel-aware fusion is off, so every keyframe is rendered in one pass)."""
    if start is None:
        return "one pass (pixel-aware fusion is off: no second pass)"
    return f"second pass from step {start}"


@dataclass(frozen=True)
class ConstraintSchedule:
    """The executed DDIM steps of one sampling schedule and the steps at which each constraint acts.

    Step ``i`` is an index into the *full* schedule of ``len(timesteps)`` steps (0 = noisiest); the executed
    steps start at ``first_step`` (SDEdit). See `rerender.diffusion.fusion.active_steps` for the period convention and
    `RerenderPipeline.prepare_schedule` for windows that end before the SDEdit start.

    Attributes:
        timesteps: the full schedule's timesteps, noisiest first.
        alphas: ᾱ at each step's timestep.
        alphas_next: ᾱ at the timestep each step moves to (the final ᾱ after the last step).
        first_step: the first executed step.
        cross_attention, shape_fusion, pixel_fusion, adain: the steps at which each constraint acts.
    """

    timesteps: tuple[int, ...]
    alphas: tuple[float, ...]
    alphas_next: tuple[float, ...]
    first_step: int
    cross_attention: frozenset[int]
    shape_fusion: frozenset[int]
    pixel_fusion: frozenset[int]
    adain: frozenset[int]

    @property
    def steps(self) -> list[int]:
        """The executed steps, in order."""
        return list(range(self.first_step, len(self.timesteps)))

    @property
    def second_pass_start(self) -> int | None:
        """The first pixel-aware step, where the second pass starts; None when pixel-aware fusion is off."""
        return min(self.pixel_fusion) if self.pixel_fusion else None

    def unet_calls(self, is_anchor: bool) -> int:
        """UNet evaluations this schedule costs for the anchor or for a keyframe (two passes share a prefix)."""
        calls = len(self.steps)
        if not is_anchor and self.second_pass_start is not None:
            calls += len(self.timesteps) - self.second_pass_start
        return calls


@dataclass
class FusionGuidance:
    """What the flows say about one keyframe: the warps and masks shape- and pixel-aware fusion use.

    Masks of occlusion are 1 where a warped reference is *not* trusted; "trusted" masks the opposite.

    Attributes:
        latent_flow: flow current → anchor on the latent grid, ``(1, 2, h, w)``.
        anchor_trusted: latent cells the anchor's warp is trusted in, ``(1, 1, h, w)``.
        warped_anchor: the rendered anchor warped to this frame, ``(1, 3, H, W)`` in [0, 1].
        anchor_occlusion: soft occlusion of that warp, ``(1, 1, H, W)``.
        warped_previous, previous_occlusion: the same for the previous keyframe.
        fusion_weight: pixel-aware weight w = trusted-in-either × mask strength, ``(1, 1, h, w)``.
        fusion_rescale: the noise rescale r for that weight, ``(1, 1, h, w)``.
        target: the fidelity-encoded fusion target (set after the first pass), ``(1, 4, h, w)``.
    """

    latent_flow: torch.Tensor | None = None
    anchor_trusted: torch.Tensor | None = None
    warped_anchor: torch.Tensor | None = None
    anchor_occlusion: torch.Tensor | None = None
    warped_previous: torch.Tensor | None = None
    previous_occlusion: torch.Tensor | None = None
    fusion_weight: torch.Tensor | None = None
    fusion_rescale: torch.Tensor | None = None
    target: torch.Tensor | None = None


@dataclass
class PromptConditioning:
    """The text conditioning of one call, batched ``[negative; positive]`` when guidance is on.

    Attributes:
        prompt_embeds: token embeddings for cross-attention, ``(B, 77, D)``; SDXL concatenates its two text
            encoders' penultimate hidden states (D = 768 + 1280).
        added_cond_kwargs: the UNet's added conditioning, or None (SD 1.5). SDXL: ``text_embeds`` (the second
            encoder's pooled projection, ``(B, 1280)``) and ``time_ids`` (``(B, 6)``: original size, crop top-left,
            target size, in pixels, height first). An IP-Adapter adds ``image_embeds``.
    """

    prompt_embeds: torch.Tensor
    added_cond_kwargs: dict[str, Any] | None = None


@dataclass
class _Reference:
    """A rendered frame other keyframes are made consistent with."""

    frame: torch.Tensor  # (1, 3, H, W) input frame in [0, 1]
    rendered: torch.Tensor  # (1, 3, H, W) rendered image in [0, 1]
    originals: dict[int, torch.Tensor] = field(default_factory=dict)  # timestep → x̂0 (shape-aware fusion)
    statistics: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # timestep → (μ, σ)


@dataclass
class _NoiseBank:
    """The noise one frame uses: SDEdit start, pixel-aware targets, refinement; identical per keyframe by default."""

    initial: torch.Tensor
    fusion: dict[int, torch.Tensor]
    refinement_initial: torch.Tensor | None
    refinement_fusion: dict[int, torch.Tensor]


@dataclass
class _RenderState:
    """Everything fixed for one call, plus the references that grow as frames are rendered."""

    prompt_embeds: torch.Tensor
    guidance_scale: float
    schedule: ConstraintSchedule
    refinement_schedule: ConstraintSchedule | None
    constraints: ConstraintConfig
    annotators: list[Annotator | None]
    control_images: list[list[Any]] | None
    conditioning_scales: list[float]
    flow_estimator: FlowEstimator | None
    store: CrossFrameAttentionStore
    same_noise: bool
    generator: torch.Generator
    generator_state: torch.Tensor
    callback: StepCallback | None
    added_cond_kwargs: dict[str, Any] | None = None
    """The UNet's added conditioning: SDXL's ``text_embeds``/``time_ids`` and the IP-Adapter's ``image_embeds``
    (encoded once per call); None for SD 1.5 without an IP-Adapter."""
    control_modes: list[int] | None = None
    """ControlNet Union: the control mode of each condition (one per entry of `controls`); None otherwise."""
    anchor: _Reference | None = None
    previous: _Reference | None = None
    unet_calls: int = 0
    frames: int = 1
    """How many frames (the anchor first) this call renders: how many reference sets are held at once depends on it
    (`rerender.diffusion.attention.references_held`)."""

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self.guidance_scale > 1.0


# --------------------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _timestep_on(device: torch.device, timestep: int) -> torch.Tensor:
    """`timestep` as a 0-d int64 tensor on `device`, made once: a tensor built from a Python value is a host-to-device
    copy, which waits for the GPU's queued work, on every UNet call (diffusers' pipelines pass device timesteps)."""
    return torch.tensor(timestep, device=device)


@functools.lru_cache(maxsize=64)
def _union_control_type(device: torch.device, dtype: torch.dtype, count: int, modes: tuple[int, ...]) -> torch.Tensor:
    """ControlNet Union's one-hot ``control_type`` over its `count` modes, ``(1, count)`` on `device`, made once (as
    `_timestep_on`: no host-to-device copy per UNet call)."""
    control_type = torch.zeros(count)
    control_type[list(modes)] = 1.0
    return control_type[None].to(device=device, dtype=dtype)


class RerenderPipeline(
    DiffusionPipeline,
    StableDiffusionMixin,
    StableDiffusionXLLoraLoaderMixin,
    TextualInversionLoaderMixin,
    FromSingleFileMixin,
    IPAdapterMixin,
):
    """Rerender-A-Video keyframe translation: SD 1.5 or SDXL + ControlNet(s) with hierarchical cross-frame constraints.

    One class serves both UNet families (`family`): SDXL differs only in its conditioning (two text encoders, a
    pooled embedding, size/crop numbers, `encode_prompt`), in the ControlNets it takes (also ControlNet Union) and
    in its VAE's float16 overflow (`decode_latents`); every constraint runs through the same code.

    A diffusers pipeline: ``from_pretrained(hub id or local folder)``, ``from_single_file(checkpoint,
    config=<config folder>, controlnet=...)``, ``load_lora_weights``/``set_adapters``, ``load_textual_inversion``,
    ``enable_model_cpu_offload``, ``enable_vae_tiling``/``enable_vae_slicing``, ``enable_freeu``,
    ``load_ip_adapter``/``set_ip_adapter_scale`` all work as in Stable Diffusion pipelines. The constructor never downloads and never modifies its components; the
    attention processors and FreeU factors a call installs are restored when it ends.

    Args:
        vae: the autoencoder.
        text_encoder: the CLIP text encoder.
        tokenizer: the CLIP tokenizer.
        text_encoder_2, tokenizer_2: SDXL's second text encoder (OpenCLIP bigG with projection) and its tokenizer;
            None for SD 1.5.
        unet: the denoiser.
        controlnet: one ControlNet, or several (a list/tuple or a `MultiControlNetModel`), or one SDXL
            `ControlNetUnionModel` taking several conditions (one per entry of `controls`, each with its mode);
            None for text alone (`rerender.diffusion.text2video.render_text_keyframes`, which uses no control).
        scheduler: a `DDIMScheduler` (the method is defined on deterministic DDIM); another scheduler is
            replaced by a DDIM scheduler built from its configuration.
        image_encoder, feature_extractor: the CLIP image encoder and its preprocessing for an IP-Adapter;
            `load_ip_adapter` sets them.
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->image_encoder->unet->vae"
    requires_controlnet = True
    """Whether restyling frames needs a ControlNet (the UNet bases' loop takes its residuals; text alone does not)."""
    _optional_components: list[str] = [
        "image_encoder",
        "feature_extractor",
        "text_encoder_2",
        "tokenizer_2",
        "controlnet",  # None for text alone (`generate`); frames to restyle need one
    ]

    # diffusers' own IP-Adapter image encoding (CLIP image embeddings, negative = zeros for guidance)
    encode_image = StableDiffusionPipeline.encode_image
    prepare_ip_adapter_image_embeds = StableDiffusionPipeline.prepare_ip_adapter_image_embeds

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        controlnet: ControlNetModel
        | list[ControlNetModel]
        | tuple[ControlNetModel, ...]
        | MultiControlNetModel
        | ControlNetUnionModel
        | None,
        scheduler: DDIMScheduler,
        image_encoder: CLIPVisionModelWithProjection | None = None,
        feature_extractor: CLIPImageProcessor | None = None,
        text_encoder_2: CLIPTextModelWithProjection | None = None,
        tokenizer_2: CLIPTokenizer | None = None,
    ) -> None:
        super().__init__()
        if isinstance(controlnet, (list, tuple)):
            controlnet = (
                None if not controlnet else controlnet[0] if len(controlnet) == 1 else MultiControlNetModel(controlnet)
            )
        if scheduler is not None and not isinstance(scheduler, DDIMScheduler):
            # The constraints are defined on deterministic DDIM: use a DDIM scheduler with the same noise schedule.
            logger.info("using DDIMScheduler with the configuration of the given %s", type(scheduler).__name__)
            scheduler = DDIMScheduler.from_config(scheduler.config)
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            controlnet=controlnet,
            scheduler=scheduler,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            text_encoder_2=text_encoder_2,
            tokenizer_2=tokenizer_2,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if getattr(self, "vae", None) else 8

    # ----------------------------------------------------------------------------------------------------
    # properties
    # ----------------------------------------------------------------------------------------------------

    @property
    def family(self) -> str:
        """The `ModelFamily` of the UNet: "sdxl" (added text/time conditioning) or "sd15"."""
        return family_of_unet_config(dict(self.unet.config))

    @property
    def variant(self) -> str:
        """The `rerender.config.BaseVariant` whose defaults this pipeline takes: its family on SD 1.5 and SDXL."""
        return self.family

    def sampling_defaults(self, num_inference_steps: int | None, guidance_scale: float | None) -> tuple[int, float]:
        """``(steps, guidance)``, each given or, when None, this base's own (`rerender.config.FAMILY_DEFAULTS` of
        `variant`: 20 and 7.5 on SD; Flux and Z-Image their own), as a run's config takes them."""
        from rerender.config import family_default

        if num_inference_steps is None:
            num_inference_steps = family_default("sampling.num_inference_steps", self.variant)
        if guidance_scale is None:
            guidance_scale = family_default("sampling.guidance_scale", self.variant)
        return num_inference_steps, guidance_scale

    def load_lora_weights(self, pretrained_model_name_or_path_or_dict: Any, adapter_name: str | None = None, **kwargs):
        """diffusers' LoRA loading of the family: SDXL's loader reads both text encoders; on SD 1.5 (no second
        one) it would warn on every LoRA that no keys were found for ``text_encoder_2``, so SD 1.5's is used."""
        loader = (
            StableDiffusionXLLoraLoaderMixin if self.text_encoder_2 is not None else StableDiffusionLoraLoaderMixin
        )
        return loader.load_lora_weights(
            self, pretrained_model_name_or_path_or_dict, adapter_name=adapter_name, **kwargs
        )

    @property
    def is_union(self) -> bool:
        """Whether the ControlNet is one ControlNet Union taking several conditions."""
        return isinstance(self.controlnet, ControlNetUnionModel)

    @property
    def controlnets(self) -> list[ControlNetModel]:
        """The ControlNets, as a list (one entry for a single ControlNet; none when loaded without)."""
        if self.controlnet is None:
            return []
        if isinstance(self.controlnet, MultiControlNetModel):
            return list(self.controlnet.nets)
        return [self.controlnet]

    @property
    def latent_channels(self) -> int:
        """Channels of the latent grid the noise is drawn on (the UNet's input; a transformer base's VAE grid)."""
        return int(self.unet.config.in_channels)

    @property
    def size_multiple(self) -> int:
        """Frame sides must be multiples of this: the VAE factor (8 for SD 1.5). The UNet and ControlNet
        take latents of any size (diffusers forwards the upsampling sizes), so 64 is not needed."""
        return self.vae_scale_factor

    # ----------------------------------------------------------------------------------------------------
    # the call
    # ----------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        frames: Sequence[np.ndarray] | np.ndarray | torch.Tensor,
        prompt: str,
        negative_prompt: str | None = None,
        *,
        control_images: Sequence[Any] | None = None,
        controls: Sequence[ControlConfig] | None = None,
        controlnet_conditioning_scale: float | Sequence[float] | None = None,
        flow_estimator: FlowEstimator | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        strength: float = 0.75,
        constraints: ConstraintConfig | None = None,
        refinement: RefinementConfig | None = None,
        same_noise_per_keyframe: bool = True,
        generator: torch.Generator | None = None,
        output_type: Literal["np", "pt", "pil", "latent"] = "np",
        callback_on_step_end: StepCallback | None = None,
        ip_adapter_image: Any | None = None,
    ) -> RerenderPipelineOutput:
        """Render ``frames[0]`` as the anchor, then ``frames[1:]`` as keyframes in order.

        The steps are those of `render_keyframes`, which renders one frame at a time (use it to stream or
        stop early); this call collects its frames:

        1. check the inputs (before any model work);
        2. prepare the control annotators (or the precomputed maps);
        3. encode the prompt (negative and positive in one batch for classifier-free guidance);
        4. prepare the schedule (SDEdit-truncated steps, the steps each constraint acts at) and the flow estimator;
        5. install cross-frame attention and FreeU for this call;
        6. render the anchor, recording its references (`render_anchor`); then each keyframe
           (`render_keyframe`): flow from the anchor and the previous keyframe, pass A (direct), the
           pixel-aware target, pass B (fused), decoding (and refinement), the style update.

        Args:
            frames: the anchor then the keyframes: RGB uint8 ``(T, H, W, 3)`` (array or list of arrays) or a
                float tensor ``(T, 3, H, W)`` in [0, 1]. Sides must be multiples of `size_multiple` (8 for SD).
            prompt: what the frames should look like (truncated to the tokenizer's length with a warning).
            negative_prompt: what to steer away from; None = empty.
            control_images: precomputed control maps, one sequence of T maps per ControlNet (a single sequence
                is accepted with one ControlNet); maps are RGB uint8 ``(H, W, 3)`` or float ``(3, H, W)`` in
                [0, 1]. None computes them with `controls`' annotators.
            controls: one `ControlConfig` per ControlNet (annotator and strength); None = canny, strength 1.
            controlnet_conditioning_scale: per-ControlNet strengths; overrides `controls`' strengths.
            flow_estimator: ``estimator(source, target) → (forward, backward)`` flows (see `rerender.flow`);
                None loads the default (`rerender.flow.load_flow_estimator("auto")`) when a fusion needs it.
            num_inference_steps: DDIM steps of the full schedule; None = this base's own (`sampling_defaults`: the
                official 20 on SD 1.5 and SDXL).
            guidance_scale: classifier-free guidance; ≤ 1 turns it off; None = this base's own (7.5 on SD).
            strength: SDEdit denoising strength in [0, 1]: the fraction of the schedule run (1 = from noise).
            constraints: the cross-frame constraints; None = `ConstraintConfig()` (the official defaults); FreeU factors left unset are this base's own (`FreeUConfig.resolved`).
            refinement: re-noise each rendered frame part-way and denoise it again under the same constraints;
                None = off.
            same_noise_per_keyframe: every frame starts from the same noise, as in the official code.
            generator: seeds all noise; None draws a seed.
            output_type: "np", "pt", "pil" or "latent".
            ip_adapter_image: a reference image for the loaded IP-Adapter (`load_ip_adapter`), applied to every
                keyframe; `None` = text only.
            callback_on_step_end: ``callback(pipe, step, timestep, kwargs)`` after every UNet step, with
                ``kwargs`` holding ``latents``, ``predicted_original`` (after the constraints),
                ``raw_predicted_original``, ``frame_index`` and ``pass_name`` ("anchor", "direct", "fused",
                "refine"); returning ``{"latents": ...}`` replaces the latents.

        Returns:
            `RerenderPipelineOutput` with the frames in input order (anchor first) and the UNet calls per frame.

        Raises:
            ConfigError: invalid frames, strength, periods, control maps, or a too small number of frames.
        """
        if output_type not in ("np", "pt", "pil", "latent"):
            raise ConfigError(f"`output_type` must be 'np', 'pt', 'pil' or 'latent', got {output_type!r}")
        rendered = []
        for frame in self.render_keyframes(
            frames,
            prompt,
            negative_prompt,
            control_images=control_images,
            controls=controls,
            controlnet_conditioning_scale=controlnet_conditioning_scale,
            flow_estimator=flow_estimator,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            strength=strength,
            constraints=constraints,
            refinement=refinement,
            same_noise_per_keyframe=same_noise_per_keyframe,
            generator=generator,
            callback_on_step_end=callback_on_step_end,
            ip_adapter_image=ip_adapter_image,
        ):
            frame.resume_state = None  # it holds the attention references: not needed once the frame is collected
            rendered.append(frame)
        self.maybe_free_model_hooks()
        return RerenderPipelineOutput(
            images=self._format_output(rendered, output_type), unet_calls=[frame.unet_calls for frame in rendered]
        )

    @torch.no_grad()
    def encode_style_image(self, image: Any | None, device: torch.device, guided: bool) -> dict[str, Any] | None:
        """The UNet's ``added_cond_kwargs`` for a reference image through the loaded IP-Adapter, or None without one.

        Args:
            image: PIL or ``(H, W, 3)`` uint8, encoded once (its strength: `set_ip_adapter_scale`); None = no image.
            device: where the embeddings go.
            guided: classifier-free guidance is on (the embeddings then hold [unconditional; conditional]).

        Raises:
            ConfigError: an image without a loaded IP-Adapter (`load_ip_adapter`).
        """
        if image is None:
            return None
        if getattr(self.unet, "encoder_hid_proj", None) is None or getattr(self, "image_encoder", None) is None:
            raise ConfigError("`ip_adapter_image` needs an IP-Adapter: call `load_ip_adapter` first")
        return {"image_embeds": self.prepare_ip_adapter_image_embeds(image, None, device, 1, guided)}

    def default_flow_estimator(self) -> FlowEstimator:
        """The flow estimator of a call that passes none: "auto" (`rerender.flow.load_flow_estimator`), on this
        pipeline's GPU when it runs on CUDA (a pipeline on cuda:1 must not put GMFlow on cuda:0)."""
        execution = self._execution_device
        return load_flow_estimator("auto", device=execution if execution.type == "cuda" else None)

    @torch.no_grad()
    def render_keyframes(
        self,
        frames: Sequence[np.ndarray] | np.ndarray | torch.Tensor,
        prompt: str,
        negative_prompt: str | None = None,
        *,
        control_images: Sequence[Any] | None = None,
        controls: Sequence[ControlConfig] | None = None,
        controlnet_conditioning_scale: float | Sequence[float] | None = None,
        flow_estimator: FlowEstimator | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        strength: float = 0.75,
        constraints: ConstraintConfig | None = None,
        refinement: RefinementConfig | None = None,
        same_noise_per_keyframe: bool = True,
        generator: torch.Generator | None = None,
        callback_on_step_end: StepCallback | None = None,
        resume: dict[str, Any] | None = None,
        ip_adapter_image: Any | None = None,
    ) -> Iterator[RenderedFrame]:
        """Render the anchor, then each keyframe, yielding each frame as soon as it is done.

        The arguments are those of `__call__`, plus `resume` and `ip_adapter_image`: a reference image (PIL or
        `(H, W, 3)` uint8) for the IP-Adapter loaded with `load_ip_adapter`, encoded once and applied to every
        keyframe (its strength: `set_ip_adapter_scale`). Inputs are checked when the first frame is
        requested. The attention processors and FreeU factors are installed until the generator finishes or is
        closed; stop early with ``generator.close()`` (or ``contextlib.closing``) to restore them at once.

        Resuming: pass the same frames, prompt, settings and seed, and ``resume=`` the `RenderedFrame.resume_state`
        of the last finished frame (with ``"next_index"`` set to the index to continue at, or without it to
        continue after that frame). The anchor is rendered again (deterministic, not yielded) to rebuild its
        references; the previous keyframe's references come from the saved state; rendering continues at
        ``next_index`` exactly as the uninterrupted run would have.

        Yields:
            `RenderedFrame`, in input order (from ``next_index`` when resuming).
        """
        # 1. Check inputs, before any model work (unset steps and guidance: this base's own)
        num_inference_steps, guidance_scale = self.sampling_defaults(num_inference_steps, guidance_scale)
        frames = self.check_inputs(
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
        constraints = constraints if constraints is not None else ConstraintConfig()
        device = self._execution_device
        next_index = self._check_resume(resume, frames)
        if next_index >= len(frames):
            return

        # 2. Prepare control maps: annotators (which may need the `annotators` extra) or the precomputed maps
        controls = list(controls) if controls is not None else [ControlConfig() for _ in self.controlnets]
        annotators = (
            [None] * len(controls)
            if control_images is not None
            else [make_annotator(c, device=self._execution_device) for c in controls]
        )
        if controlnet_conditioning_scale is None:
            conditioning_scales = [control.strength for control in controls]
        elif isinstance(controlnet_conditioning_scale, (int, float)):
            conditioning_scales = [float(controlnet_conditioning_scale)] * len(controls)
        else:
            conditioning_scales = [float(scale) for scale in controlnet_conditioning_scale]
        control_modes = None
        if self.is_union:  # names resolved with this base's table, numbers checked against the model's modes
            count = self.controlnet.config.num_control_type
            control_modes = [union_control_mode(control, count, self.family) for control in controls]

        # 3. Encode the prompt: [negative; positive] in one batch for classifier-free guidance, with SDXL's pooled
        #    embedding and size/crop numbers (the processed frame's size, the same for every keyframe); the
        #    IP-Adapter image once for every keyframe
        height, width = frames[0].shape[-2:]
        conditioning = self.encode_prompt(prompt, negative_prompt, device, guidance_scale > 1.0, size=(height, width))
        added_cond_kwargs = dict(conditioning.added_cond_kwargs or {})
        added_cond_kwargs.update(self.encode_style_image(ip_adapter_image, device, guidance_scale > 1.0) or {})

        # 4. Prepare the schedule (SDEdit-truncated steps, the steps each constraint acts at) and the flow estimator
        schedule = self.prepare_schedule(num_inference_steps, strength, constraints)
        refinement_schedule = None
        if refinement is not None:
            refinement_steps = refinement.refinement_steps or num_inference_steps
            refinement_schedule = self.prepare_schedule(refinement_steps, refinement.refinement_strength, constraints)
        needs_flow = bool(schedule.shape_fusion or schedule.pixel_fusion)
        if refinement_schedule is not None:
            needs_flow = needs_flow or bool(refinement_schedule.shape_fusion or refinement_schedule.pixel_fusion)
        if needs_flow and flow_estimator is None and len(frames) > 1:
            flow_estimator = self.default_flow_estimator()
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        state = _RenderState(
            prompt_embeds=conditioning.prompt_embeds,
            guidance_scale=guidance_scale,
            schedule=schedule,
            refinement_schedule=refinement_schedule,
            constraints=constraints,
            annotators=annotators,
            control_images=self._per_controlnet(control_images),
            conditioning_scales=conditioning_scales,
            flow_estimator=flow_estimator,
            store=CrossFrameAttentionStore(),
            same_noise=same_noise_per_keyframe,
            generator=generator,
            generator_state=generator.get_state(),
            callback=callback_on_step_end,
            added_cond_kwargs=added_cond_kwargs or None,
            control_modes=control_modes,
            frames=len(frames),
        )
        logger.info(
            "rendering %d frames at %dx%d with %s: steps %d-%d of %d, %s",
            len(frames),
            frames[0].shape[-1],
            frames[0].shape[-2],
            FAMILY_NAMES[self.family],
            schedule.first_step,
            num_inference_steps - 1,
            num_inference_steps,
            second_pass_phrase(schedule.second_pass_start),
        )

        # 5. Install cross-frame attention and FreeU for this call only; restored when the generator ends
        with self.constraints_installed(state, frames[0]):
            # 6. Render the anchor (recording its references), then each keyframe in order
            try:
                for index, frame in enumerate(frames):
                    if 0 < index < next_index:
                        continue  # rendered by the run being resumed
                    started, calls_before = time.perf_counter(), state.unet_calls
                    if index == 0:
                        latents, image = self.render_anchor(state, frame)
                        if next_index > 0:
                            self._restore(state, resume)
                            continue
                    else:
                        latents, image = self.render_keyframe(state, index, frame)
                    yield RenderedFrame(
                        index=index,
                        image=image[0].float().cpu(),
                        latents=latents.cpu(),
                        unet_calls=state.unet_calls - calls_before,
                        seconds=time.perf_counter() - started,
                        resume_state=self._resume_state(state, index),
                    )
            finally:  # also on an error or an early close: a kept traceback (a notebook's) must not hold them
                state.store.clear()
            logger.debug(
                "cross-frame attention references: at most %.2f GiB held at once", state.store.peak_nbytes / 2**30
            )

    @contextlib.contextmanager
    def constraints_installed(self, state: _RenderState, frame: torch.Tensor) -> Iterator[None]:
        """Install this base's cross-frame attention (and FreeU) for one call; restore the originals on exit.

        The seam other bases override (`rerender.diffusion.zimage.RerenderZImagePipeline` installs token
        attention in its transformer blocks instead of the UNet decoder's self-attention).
        """
        constraints = state.constraints
        freeu = constraints.freeu.resolved(self.variant) if constraints.freeu is not None else None  # unset: own
        with (
            cross_frame_attention(self.unet, state.store, loose=constraints.loose_cross_frame_attention) as layers,
            freeu_installed(self.unet, freeu),
        ):
            height, width = frame.shape[-2:]
            latent_size = (height // self.vae_scale_factor, width // self.vae_scale_factor)
            self.place_references(state, decoder_layer_shapes(self.unet, layers, latent_size))
            yield

    def reference_batch(self, state: _RenderState) -> int:
        """The batch the stored references have: 2 when guidance runs in the batch, else 1."""
        return 2 if state.do_classifier_free_guidance else 1

    @property
    def model_cpu_offloaded(self) -> bool:
        """Whether the denoiser is offloaded to the CPU between calls (diffusers' model or sequential CPU offload)."""
        return hasattr(self.unet, "_hf_hook")

    def place_references(self, state: _RenderState, layer_shapes: list[tuple[int, int]]) -> str:
        """Estimate the bytes of the attention references this call holds at once and keep them on the device or
        in host memory (``constraints.reference_storage``, `choose_reference_storage`); log both once.

        The estimate (`reference_bytes_estimate`): the sets held at once (`references_held`) × the steps
        cross-frame attention acts at × the references' batch × the compute dtype's size × Σ tokens·channels of
        the chosen layers (`layer_shapes`).

        Returns:
            "device" or "host".
        """
        device = self._execution_device
        steps = len(state.schedule.cross_attention)
        held = references_held(state.frames, state.constraints.style_update_interval)
        element_size = torch.empty((), dtype=self.unet.dtype).element_size()
        estimate = reference_bytes_estimate(layer_shapes, steps, self.reference_batch(state), element_size, held)
        requested = getattr(state.constraints, "reference_storage", "auto")
        offloaded = self.model_cpu_offloaded
        choice = choose_reference_storage(requested, estimate, device, offloaded)
        state.store.place("cpu" if choice == "host" else None, device)
        logger.info(
            "cross-frame attention references: about %.2f GiB held at once (%d sets × %d steps × %d layers), kept in "
            "%s memory (reference_storage: %s%s)",
            estimate / 2**30,
            held,
            steps,
            len(layer_shapes),
            "host" if choice == "host" else "device",
            requested,
            ", model CPU offload on" if offloaded else "",
        )
        return choice

    # ----------------------------------------------------------------------------------------------------
    # rendering one frame
    # ----------------------------------------------------------------------------------------------------

    def render_anchor(self, state: _RenderState, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Render the anchor and record its references (attention features, x̂0, x̂0 statistics).

        Returns:
            ``(latents, image)``: ``(1, 4, h, w)`` and ``(1, 3, H, W)`` in [0, 1].
        """
        schedule = state.schedule
        state.anchor = _Reference(frame=frame, rendered=frame)  # `rendered` is set once decoded
        noise = self._draw_noise(state)
        control = self.prepare_control_image(state, 0, frame)

        # a. Encode the frame and noise it to the first executed step (SDEdit)
        latents, direction = self.prepare_latents(frame, schedule, noise.initial)

        # b. Denoise, recording the references for the keyframes
        latents, _, _ = self.denoise(
            state,
            schedule,
            latents,
            direction,
            schedule.steps,
            control,
            frame_index=0,
            pass_name="anchor",
            attend=False,
            record_into="anchor",
            record_steps=schedule.cross_attention,
        )

        # c. Optionally refine (without references: the anchor has none); decode
        if state.refinement_schedule is not None:
            latents = self.refine(state, latents, control, noise, frame_index=0, guidance=None)
        image = self.decode_latents(latents)
        state.anchor.rendered = image
        state.previous = state.anchor
        return latents, image

    def render_keyframe(
        self, state: _RenderState, index: int, frame: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Render one keyframe consistent with the anchor and the previous keyframe.

        Returns:
            ``(latents, image)``: ``(1, 4, h, w)`` and ``(1, 3, H, W)`` in [0, 1].
        """
        schedule, constraints, store = state.schedule, state.constraints, state.store
        noise = self._draw_noise(state)
        control = self.prepare_control_image(state, index, frame)
        keyframe_number = index - 1  # 0 for the first keyframe after the anchor
        interval = constraints.style_update_interval
        update_style = interval is not None and keyframe_number % interval == 0
        second_pass_start = schedule.second_pass_start

        # a. Colour-correct the input toward the rendered anchor (unless colours are preserved); encode; noise
        sdedit_input = frame if constraints.color_preserve else self._color_corrected(frame, state.anchor.rendered)
        latents, direction = self.prepare_latents(sdedit_input, schedule, noise.initial)

        # b. Flow from the anchor and the previous keyframe: warps and masks for shape- and pixel-aware fusion
        guidance = self.prepare_fusion_guidance(state, frame)

        # c. Pass A, direct: cross-frame attention, AdaIN, shape-aware fusion; keep the state where pass B starts
        record_before = {s for s in schedule.cross_attention if second_pass_start is None or s < second_pass_start}
        latents_a, _, resume = self.denoise(
            state,
            schedule,
            latents,
            direction,
            schedule.steps,
            control,
            guidance=guidance,
            frame_index=index,
            pass_name="direct",
            record_into="pending" if update_style else None,
            record_steps=record_before,
            resume_at=second_pass_start,
        )

        # d. Pass B, fused: the pixel-aware target (Eq. 10), fidelity-encoded (Eq. 8–9), blended in (Eq. 11)
        if second_pass_start is not None and resume is not None:
            if not self._fusion_target_used(guidance):
                # no cell takes the target (mask strength 0, or occluded everywhere): its value is multiplied by 0,
                # so the pass-A decode and the fidelity encoding (3 VAE decodes, 2 encodes) are skipped; exact
                guidance.target = torch.zeros_like(latents_a)
            else:
                direct = self.decode_latents(latents_a)
                target_image = composite_references(
                    direct,
                    guidance.warped_anchor,
                    guidance.anchor_occlusion,
                    guidance.warped_previous,
                    guidance.previous_occlusion,
                )
                guidance.target = self.encode_fusion_target(target_image, constraints)
            latents, direction = resume
            record_after = {s for s in schedule.cross_attention if s >= second_pass_start}
            latents, _, _ = self.denoise(
                state,
                schedule,
                latents,
                direction,
                [s for s in schedule.steps if s >= second_pass_start],
                control,
                guidance=guidance,
                fusion_noise=noise.fusion,
                frame_index=index,
                pass_name="fused",
                record_into="pending" if update_style else None,
                record_steps=record_after,
            )
        else:
            latents = latents_a

        # e. Optionally refine under the same constraints (still against the previous keyframe); decode
        if state.refinement_schedule is not None:
            latents = self.refine(state, latents, control, noise, frame_index=index, guidance=guidance)
        image = self.decode_latents(latents)

        # f. Style update: this keyframe's attention features become the "previous" references
        if update_style:
            store.commit_pending()
        else:
            store.discard_pending()
        state.previous = _Reference(frame=frame, rendered=image)
        return latents, image

    def refine(
        self,
        state: _RenderState,
        latents: torch.Tensor,
        control: list[torch.Tensor],
        noise: _NoiseBank,
        frame_index: int,
        guidance: FusionGuidance | None,
    ) -> torch.Tensor:
        """DDIM refinement: re-noise rendered latents to an intermediate step (DDPM forward), denoise them back.

        The constraints act as in the main passes, on the refinement schedule's steps; cross-frame attention,
        shape-aware fusion and AdaIN use the anchor's references where the refinement's timesteps coincide
        with the main schedule's (always, when both have the same number of steps).

        Returns:
            The refined latents.
        """
        schedule = state.refinement_schedule
        if not schedule.steps:
            return latents
        latents, direction = self.noise_to_step(schedule, schedule.first_step, latents, noise.refinement_initial)
        latents, _, _ = self.denoise(
            state,
            schedule,
            latents,
            direction,
            schedule.steps,
            control,
            guidance=guidance,
            fusion_noise=noise.refinement_fusion if guidance is not None and guidance.target is not None else None,
            frame_index=frame_index,
            pass_name="refine",
            attend=guidance is not None,
        )
        return latents

    # ----------------------------------------------------------------------------------------------------
    # the denoising loop
    # ----------------------------------------------------------------------------------------------------

    def denoise(
        self,
        state: _RenderState,
        schedule: ConstraintSchedule,
        latents: torch.Tensor,
        direction: torch.Tensor,
        steps: Sequence[int],
        control: list[torch.Tensor],
        *,
        frame_index: int,
        pass_name: str,
        guidance: FusionGuidance | None = None,
        fusion_noise: dict[int, torch.Tensor] | None = None,
        attend: bool = True,
        record_into: Literal["anchor", "pending"] | None = None,
        record_steps: set[int] | frozenset[int] = frozenset(),
        resume_at: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Run DDIM steps with the constraints the schedule switches on at each step.

        Per step: pixel-aware fusion of x_t (when a target and fusion noise are given), the UNet with
        ControlNet residuals and batched guidance, cross-frame attention (the anchor records instead), then on
        x̂0 the AdaIN and shape-aware fusion (keyframes), then the DDIM update.

        Args:
            state: the call's state.
            schedule: the schedule `steps` index.
            latents: x_t at the first step.
            direction: its noise term d (for pixel-aware fusion).
            steps: the steps to run, in order.
            control: control images, one per ControlNet, batched for guidance.
            frame_index: for the callback.
            pass_name: for the callback and the progress bar.
            guidance: the keyframe's warps and masks; None for the anchor.
            fusion_noise: step → noise for the pixel-aware target; None turns pixel-aware fusion off.
            attend: use cross-frame attention at the schedule's cross-attention steps (off for the anchor).
            record_into: where attention features go at `record_steps` ("anchor" also records x̂0 and its
                statistics for shape-aware fusion and AdaIN).
            record_steps: the steps that record.
            resume_at: also return ``(x_t, d)`` as they are when this step begins (pass B resumes there).

        Returns:
            ``(latents, direction, resume)``.
        """
        store, anchor = state.store, state.anchor
        is_anchor = record_into == "anchor"
        resume = None
        with self.progress_bar(total=len(steps)) as progress:
            progress.set_description(f"frame {frame_index} {pass_name}")
            for step in steps:
                timestep = schedule.timesteps[step]
                if step == resume_at:
                    resume = (latents.clone(), direction.clone())

                # pixel-aware fusion toward the encoded target, before the UNet call
                if fusion_noise is not None and step in schedule.pixel_fusion and guidance.target is not None:
                    latents = self.fuse_pixels(
                        schedule,
                        step,
                        latents,
                        direction,
                        guidance.target,
                        fusion_noise[step],
                        guidance.fusion_weight,
                        guidance.fusion_rescale,
                    )

                # UNet (+ ControlNet), cross-frame attention switched by the store
                in_window = step in schedule.cross_attention
                store.set_step(
                    timestep,
                    record=record_into if (in_window and step in record_steps) else None,
                    attend=in_window and attend,
                )
                original, noise = self.split_prediction(state, schedule, step, latents, control)
                store.idle()
                raw_original = original

                # the anchor keeps x̂0 and its statistics; keyframes are pulled toward them
                if is_anchor:
                    if step in schedule.shape_fusion:
                        anchor.originals[timestep] = original
                    if step in schedule.adain:
                        anchor.statistics[timestep] = channel_statistics(original)
                elif guidance is not None:
                    if step in schedule.adain and timestep in anchor.statistics:
                        original = adain(original, *anchor.statistics[timestep])
                    if (
                        step in schedule.shape_fusion
                        and timestep in anchor.originals
                        and guidance.latent_flow is not None
                    ):
                        warped = warp(
                            anchor.originals[timestep], guidance.latent_flow.to(original.dtype), mode="nearest"
                        )
                        original = shape_aware_fusion(original, warped, guidance.anchor_trusted)

                latents, direction = self.recompose(schedule, step, original, noise)

                if state.callback is not None:
                    outputs = state.callback(
                        self,
                        step,
                        timestep,
                        {
                            "latents": latents,
                            "predicted_original": original,
                            "raw_predicted_original": raw_original,
                            "frame_index": frame_index,
                            "pass_name": pass_name,
                        },
                    )
                    if outputs and "latents" in outputs:
                        latents = outputs["latents"]
                progress.update()
        return latents, direction, resume

    # the four places the method depends on the schedule: other bases (flow matching) override them

    def noise_to_step(
        self, schedule: ConstraintSchedule, step: int, clean: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A clean latent noised to `step` (SDEdit's start, refinement's re-noise): ``√ᾱ·x0 + d`` with
        ``d = √(1−ᾱ)·ε``; returns ``(latents, d)``."""
        alpha = schedule.alphas[step]
        direction = (1.0 - alpha) ** 0.5 * noise
        return alpha**0.5 * clean + direction, direction

    def fuse_pixels(
        self,
        schedule: ConstraintSchedule,
        step: int,
        latents: torch.Tensor,
        direction: torch.Tensor,
        target: torch.Tensor,
        noise: torch.Tensor,
        weight: torch.Tensor,
        rescale: torch.Tensor,
    ) -> torch.Tensor:
        """Pixel-aware fusion (Eq. 11) of x_t toward the encoded target at `step` (`fusion.pixel_aware_fusion`, DDIM's ᾱ)."""
        return pixel_aware_fusion(latents, direction, target, noise, schedule.alphas[step], weight, rescale)

    def split_prediction(
        self,
        state: _RenderState,
        schedule: ConstraintSchedule,
        step: int,
        latents: torch.Tensor,
        control: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One model call at `step`, split into ``(x̂0, ε̂)`` (`fusion.predict_original`, the scheduler's prediction type)."""
        output = self.predict_noise(state, latents, schedule.timesteps[step], control)
        return predict_original(latents, output, schedule.alphas[step], self.scheduler.config.prediction_type)

    def recompose(
        self, schedule: ConstraintSchedule, step: int, original: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent at the next step from a (possibly constrained) x̂0: DDIM's update (`fusion.ddim_update`)."""
        return ddim_update(original, noise, schedule.alphas_next[step])

    def predict_noise(
        self, state: _RenderState, latents: torch.Tensor, timestep: int, control: list[torch.Tensor]
    ) -> torch.Tensor:
        """One UNet evaluation with ControlNet residuals and classifier-free guidance in a single batch.

        Shape:
            - latents: (1, 4, h, w)
            - Output: (1, 4, h, w), the guided model output
        """
        state.unet_calls += 1
        model_input = torch.cat([latents] * 2) if state.do_classifier_free_guidance else latents
        model_input = self.scheduler.scale_model_input(model_input, timestep)
        timestep_tensor = _timestep_on(latents.device, int(timestep))
        added = state.added_cond_kwargs or {}
        control_kwargs: dict[str, Any] = {}
        if "time_ids" in added:  # SDXL ControlNets take the same text/time conditioning as the UNet
            control_kwargs["added_cond_kwargs"] = {"text_embeds": added["text_embeds"], "time_ids": added["time_ids"]}
        if self.is_union:
            controlnet_cond, conditioning_scale = control, state.conditioning_scales
            control_type = _union_control_type(
                latents.device,
                state.prompt_embeds.dtype,
                self.controlnet.config.num_control_type,
                tuple(state.control_modes),
            )
            control_kwargs["control_type"] = control_type.repeat(len(model_input), 1)
            control_kwargs["control_type_idx"] = state.control_modes
        elif isinstance(self.controlnet, MultiControlNetModel):
            controlnet_cond, conditioning_scale = control, state.conditioning_scales
        else:
            controlnet_cond, conditioning_scale = control[0], state.conditioning_scales[0]
        down_residuals, mid_residual = self.controlnet(
            model_input,
            timestep_tensor,
            encoder_hidden_states=state.prompt_embeds,
            controlnet_cond=controlnet_cond,
            conditioning_scale=conditioning_scale,
            guess_mode=False,
            return_dict=False,
            **control_kwargs,
        )
        output = self.unet(
            model_input,
            timestep_tensor,
            encoder_hidden_states=state.prompt_embeds,
            down_block_additional_residuals=down_residuals,
            mid_block_additional_residual=mid_residual,
            added_cond_kwargs=state.added_cond_kwargs,
            return_dict=False,
        )[0]
        if state.do_classifier_free_guidance:
            unconditional, conditional = output.chunk(2)
            output = unconditional + state.guidance_scale * (conditional - unconditional)
        return output

    # ----------------------------------------------------------------------------------------------------
    # lifecycle steps
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
        """Validate every argument before any model work; return the frames as ``(1, 3, H, W)`` tensors in [0, 1].

        Raises:
            ConfigError: the first invalid argument, named with its value and what is valid.
        """
        if not isinstance(prompt, str):
            raise ConfigError(f"`prompt` must be a string, got {type(prompt).__name__}")
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            raise ConfigError(f"`negative_prompt` must be a string or None, got {type(negative_prompt).__name__}")
        if (
            isinstance(num_inference_steps, bool)
            or not isinstance(num_inference_steps, int)
            or num_inference_steps < 1
        ):
            raise ConfigError(f"`num_inference_steps` must be an integer ≥ 1, got {num_inference_steps!r}")
        if not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
            raise ConfigError(f"`strength` must be in [0, 1] (1 = start from pure noise), got {strength!r}")
        if not isinstance(guidance_scale, (int, float)) or guidance_scale < 0:
            raise ConfigError(f"`guidance_scale` must be ≥ 0 (≤ 1 turns guidance off), got {guidance_scale!r}")
        if constraints is not None and not isinstance(constraints, ConstraintConfig):
            raise ConfigError(
                f"`constraints` must be a rerender.config.ConstraintConfig or None, got {type(constraints).__name__}"
            )
        if refinement is not None and not isinstance(refinement, RefinementConfig):
            raise ConfigError(
                f"`refinement` must be a rerender.config.RefinementConfig or None, got {type(refinement).__name__}"
            )
        if constraints is not None:
            for name in ("cross_frame_attention_period", "shape_fusion_period", "pixel_fusion_period", "adain_period"):
                try:
                    active_steps(getattr(constraints, name), num_inference_steps)
                except ConfigError as error:
                    raise ConfigError(f"`constraints.{name}`: {error}") from None

        frames = self._frames_as_tensors(frames)
        height, width = frames[0].shape[-2:]
        multiple = self.size_multiple
        if height % multiple or width % multiple:
            raise ConfigError(
                f"`frames` must have sides that are multiples of {multiple} for {FAMILY_NAMES[self.family]} (the VAE's "
                f"downsampling), got {width}×{height}; resize them (rerender.video.read_frames rounds to video.size_multiple)"
            )
        if self.family == "sdxl" and max(height, width) < 0.75 * SDXL_NATIVE_SIDE:
            logger.warning(
                "SDXL is made for about %d px on the long side; %d×%d frames will look worse (set video.resolution, "
                "e.g. 1024 as configs/sdxl.yaml does)",
                SDXL_NATIVE_SIDE,
                width,
                height,
            )

        count = len(self.controlnets)
        if not count and self.requires_controlnet:
            raise ConfigError(
                f"this {FAMILY_NAMES[self.family]} pipeline was loaded without a ControlNet (as `generate` loads it: "
                "text alone needs none), but restyling frames needs one: load it with a `control` entry "
                "(rerender.diffusion.load_pipeline(model, controls))"
            )
        if self.is_union:  # one model, one condition per entry of `controls`
            if controls is None or not controls or not all(isinstance(control, ControlConfig) for control in controls):
                raise ConfigError(
                    "`controls` must name each condition of the ControlNet Union (one ControlConfig per control map, "
                    f"its type giving the control mode), got {controls!r}"
                )
            count = len(controls)
            for control in controls:
                union_control_mode(control, self.controlnet.config.num_control_type)
        if controls is not None:
            if len(controls) != count or not all(isinstance(control, ControlConfig) for control in controls):
                raise ConfigError(
                    f"`controls` must hold one ControlConfig per ControlNet ({count}), got {list(controls)!r}"
                )
            if control_images is None and any(control.type == "precomputed" for control in controls):
                raise ConfigError(
                    "`control_images` must be given when a control is 'precomputed' "
                    "(read them with rerender.diffusion.control.load_control_maps)"
                )
        if controlnet_conditioning_scale is not None and not isinstance(controlnet_conditioning_scale, (int, float)):
            if len(controlnet_conditioning_scale) != count:
                raise ConfigError(
                    f"`controlnet_conditioning_scale` must hold one strength per ControlNet ({count}), "
                    f"got {list(controlnet_conditioning_scale)!r}"
                )
        if control_images is not None:
            per_controlnet = self._per_controlnet(control_images)
            if len(per_controlnet) != count:
                raise ConfigError(
                    f"`control_images` must hold one sequence of maps per ControlNet ({count}), got {len(per_controlnet)}"
                )
            for net, maps in enumerate(per_controlnet):
                if len(maps) != len(frames):
                    raise ConfigError(
                        f"`control_images[{net}]` must hold one map per frame ({len(frames)}), got {len(maps)}"
                    )
                for position, control_map in enumerate(maps):
                    map_height, map_width = self._map_size(control_map)
                    if (map_height, map_width) != (height, width):
                        raise ConfigError(
                            f"`control_images[{net}][{position}]` is {map_width}×{map_height}, "
                            f"expected the frame size {width}×{height}"
                        )
        return frames

    def encode_prompt(
        self,
        prompt: str,
        negative_prompt: str | None,
        device: torch.device,
        do_classifier_free_guidance: bool,
        size: tuple[int, int] | None = None,
    ) -> PromptConditioning:
        """Text conditioning, ``[negative; positive]`` when guidance is on, for either family.

        SD 1.5: the CLIP text encoder's last hidden state. SDXL (as diffusers' SDXL pipelines): both encoders'
        penultimate hidden states concatenated over channels, the second encoder's pooled projection as
        ``text_embeds``, and ``time_ids`` = (original size, crop top-left (0, 0), target size), all the processed
        frame's `size`, so every keyframe gets the same numbers. An empty negative prompt is all zeros on SDXL
        (``force_zeros_for_empty_prompt``, the SDXL base default). A prompt longer than a tokenizer allows is
        truncated with a warning, as in diffusers; textual-inversion tokens are expanded.

        Args:
            size: ``(height, width)`` of the frames in pixels (SDXL; default the UNet's native size).

        Shape:
            - prompt_embeds: (2, L, D) with guidance, (1, L, D) without
            - text_embeds: (2, P) / (1, P); time_ids: (2, 6) / (1, 6)
        """
        encoders = [(self.tokenizer, self.text_encoder)]
        sdxl = self.family == "sdxl"
        if sdxl:
            if self.text_encoder_2 is None or self.tokenizer_2 is None:
                raise ConfigError(
                    "an SDXL UNet needs both text encoders: `text_encoder_2` and `tokenizer_2` are missing"
                )
            encoders.append((self.tokenizer_2, self.text_encoder_2))

        def embed(text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
            hidden, pooled = [], None
            for tokenizer, encoder in encoders:
                if isinstance(self, TextualInversionLoaderMixin):
                    text = self.maybe_convert_prompt(text, tokenizer)
                max_length = tokenizer.model_max_length
                tokens = tokenizer(
                    text, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
                )
                untruncated = tokenizer(text, padding="longest", return_tensors="pt").input_ids
                if untruncated.shape[-1] > tokens.input_ids.shape[-1] and encoder is self.text_encoder:
                    removed = tokenizer.batch_decode(untruncated[:, max_length - 1 : -1])
                    logger.warning(
                        "The prompt was truncated because CLIP can only handle sequences up to %d tokens; removed: %s",
                        max_length,
                        removed[0],
                    )
                attention_mask = None
                if getattr(encoder.config, "use_attention_mask", False):
                    attention_mask = tokens.attention_mask.to(device)
                output = encoder(tokens.input_ids.to(device), attention_mask=attention_mask, output_hidden_states=sdxl)
                if not sdxl:
                    return output[0], None
                hidden.append(output.hidden_states[-2])
                pooled = output[0]  # the last encoder's (second's) pooled projection
            return torch.cat(hidden, dim=-1), pooled

        positive, pooled = embed(prompt)
        if do_classifier_free_guidance:
            if sdxl and not negative_prompt and self._zeros_for_empty_prompt:
                negative, negative_pooled = torch.zeros_like(positive), torch.zeros_like(pooled)
            else:
                negative, negative_pooled = embed(negative_prompt or "")
            positive = torch.cat([negative, positive])
            pooled = torch.cat([negative_pooled, pooled]) if sdxl else None
        dtype = self.unet.dtype
        conditioning = PromptConditioning(positive.to(dtype=dtype, device=device))
        if sdxl:
            if size is None:
                native = self.unet.config.sample_size * self.vae_scale_factor
                size = (native, native)
            time_ids = torch.tensor([[*size, 0, 0, *size]], dtype=dtype, device=device).repeat(len(positive), 1)
            conditioning.added_cond_kwargs = {
                "text_embeds": pooled.to(dtype=dtype, device=device),
                "time_ids": time_ids,
            }
        return conditioning

    @property
    def _zeros_for_empty_prompt(self) -> bool:
        return bool(getattr(self.config, "force_zeros_for_empty_prompt", True))

    def planned_unet_calls(
        self,
        num_frames: int,
        num_inference_steps: int = 20,
        strength: float = 0.75,
        constraints: ConstraintConfig | None = None,
        refinement: RefinementConfig | None = None,
    ) -> list[int]:
        """UNet evaluations `render_keyframes` spends on each of `num_frames` frames, the anchor first.

        One per denoising step (guidance is batched): the anchor's pass, a keyframe's two passes (sharing the
        steps before pixel-aware fusion), and the refinement pass. Progress bars count these.

        Returns:
            One count per frame; `callback_on_step_end` is called exactly this often.
        """
        constraints = constraints if constraints is not None else ConstraintConfig()
        schedule = self.prepare_schedule(num_inference_steps, strength, constraints, report=False)
        refining = 0
        if refinement is not None:
            steps = refinement.refinement_steps or num_inference_steps
            refining = len(
                self.prepare_schedule(steps, refinement.refinement_strength, constraints, report=False).steps
            )
        return [schedule.unet_calls(is_anchor=index == 0) + refining for index in range(num_frames)]

    def prepare_schedule(
        self, num_inference_steps: int, strength: float, constraints: ConstraintConfig, *, report: bool = True
    ) -> ConstraintSchedule:
        """The DDIM schedule, its SDEdit start, and the steps each constraint acts at (`ConstraintSchedule`).

        The start is ``N − int(N·strength)``, as diffusers' img2img pipelines, so both run the same steps.
        A constraint acts at the executed steps of its window. A window that ends before the start acts once,
        at the first executed step, only while that step's timestep is in the noisier half of the schedule
        (``t ≥ 500`` of 1000, `rerender.diffusion.fusion.may_fold`); otherwise it does not act and an INFO log says so.
        With 20 steps: at strength 0.75 (t = 701) shape-aware fusion acts at step 5; at 0.25 (t = 201) and
        below it does not, and at 0.2 (t = 151) pixel-aware fusion does not either. Latent fusion moved into
        the low-noise end would blur and distort (paper §4.1.2), and at 0.05 (t = 1) it would return the
        nearest-neighbour-warped anchor latent as the keyframe. `report=False` skips that log.
        """
        scheduler = DDIMScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(num_inference_steps)
        timesteps = [int(t) for t in scheduler.timesteps]
        stride = scheduler.config.num_train_timesteps // num_inference_steps
        alphas_cumprod = scheduler.alphas_cumprod
        final = float(scheduler.final_alpha_cumprod)
        alphas = tuple(float(alphas_cumprod[t]) for t in timesteps)
        alphas_next = tuple(float(alphas_cumprod[t - stride]) if t - stride >= 0 else final for t in timesteps)
        first_step = num_inference_steps - min(int(num_inference_steps * strength), num_inference_steps)
        fold = first_step < num_inference_steps and may_fold(
            timesteps[first_step], scheduler.config.num_train_timesteps
        )

        def steps(period: tuple[float, float] | None, inclusive: bool = True, name: str = "") -> frozenset[int]:
            acting = active_steps(period, num_inference_steps, first_step, inclusive, fold=fold)
            window = window_steps(period, num_inference_steps, inclusive)
            if report and window and not acting and first_step < num_inference_steps:
                logger.info(
                    "%s does not act: its window %s (steps %d-%d of %d) ends before the SDEdit start at step %d "
                    "(t=%d, strength %g), and a window is moved onto the first executed step only while t >= %d",
                    name,
                    tuple(period),
                    window[0],
                    window[-1],
                    num_inference_steps,
                    first_step,
                    timesteps[first_step],
                    strength,
                    int(FOLD_NOISE_LIMIT * scheduler.config.num_train_timesteps),
                )
            return frozenset(acting)

        return ConstraintSchedule(
            timesteps=tuple(timesteps),
            alphas=alphas,
            alphas_next=alphas_next,
            first_step=first_step,
            cross_attention=steps(constraints.cross_frame_attention_period, name="cross-frame attention"),
            shape_fusion=steps(constraints.shape_fusion_period, name="shape-aware fusion"),
            pixel_fusion=steps(constraints.pixel_fusion_period, inclusive=False, name="pixel-aware fusion"),
            adain=steps(constraints.adain_period, name="AdaIN"),
        )

    def prepare_control_image(self, state: _RenderState, index: int, frame: torch.Tensor) -> list[torch.Tensor]:
        """Control images of one frame, one per ControlNet, batched for guidance: ``(B, 3, H, W)`` in [0, 1]."""
        device, dtype = self._execution_device, self.controlnets[0].dtype
        frame_uint8 = None
        images = []
        for net, annotator in enumerate(state.annotators):
            if state.control_images is not None:
                control_map = state.control_images[net][index]
            else:
                if frame_uint8 is None:
                    frame_uint8 = self._to_uint8(frame)
                control_map = annotator(frame_uint8)
            image = self._map_as_tensor(control_map).to(device=device, dtype=dtype)
            if state.do_classifier_free_guidance:
                image = torch.cat([image] * 2)
            images.append(image)
        return images

    def prepare_latents(
        self, frame: torch.Tensor, schedule: ConstraintSchedule, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a frame and noise it to the first executed step: ``x = √ᾱ·E(I) + √(1−ᾱ)·ε`` (SDEdit); at strength 1
        pure noise (``√ᾱ`` at the first timestep is still about 0.09: the frame's colours would leak through).

        Returns:
            ``(latents, direction)`` with ``direction = √(1−ᾱ)·ε``, the noise term pixel-aware fusion needs.
            With strength 0 (no step runs) the clean latents and a zero direction.
        """
        if schedule.steps and schedule.first_step == 0:  # strength 1: pure noise, x_T = σ·ε, the frame unused
            start = noise.to(self.unet.dtype) * getattr(self.scheduler, "init_noise_sigma", 1.0)
            return start, start
        clean = self.encode_images(frame)
        if not schedule.steps:
            return clean, torch.zeros_like(clean)
        return self.noise_to_step(schedule, schedule.first_step, clean, noise.to(clean.dtype))

    def prepare_fusion_guidance(self, state: _RenderState, frame: torch.Tensor) -> FusionGuidance:
        """Flows anchor → frame and previous → frame, their occlusions, warps and latent-grid masks.

        Shape-aware fusion uses the anchor's latent flow and trusted cells; pixel-aware fusion uses the warped
        rendered anchor and previous keyframe, their soft occlusions, and the latent weight where at least one
        of them is trusted (the official ``occlusion_previous ∧ occlusion_anchor``), times the mask strength.
        """
        schedules = [state.schedule] + ([state.refinement_schedule] if state.refinement_schedule is not None else [])
        needs_shape = any(schedule.shape_fusion for schedule in schedules)
        needs_pixel = any(schedule.pixel_fusion for schedule in schedules)
        guidance = FusionGuidance()
        if not (needs_shape or needs_pixel) or state.flow_estimator is None:
            return guidance
        constraints, factor = state.constraints, self.vae_scale_factor
        anchor, previous = state.anchor, state.previous

        def flow_from(reference: _Reference) -> tuple[torch.Tensor, torch.Tensor]:
            forward, backward = state.flow_estimator(reference.frame.float(), frame.float())
            _, occlusion = forward_backward_occlusion(forward, backward)  # on the current frame's grid
            return backward.to(frame.device), occlusion.to(frame.device)

        anchor_backward, anchor_occlusion = flow_from(anchor)
        anchor_soft = soften_mask(anchor_occlusion)
        latent_dtype = self.unet.dtype
        guidance.latent_flow = flow_to_latent(anchor_backward, factor)
        guidance.anchor_trusted = (1.0 - mask_to_latent(anchor_soft, factor)).to(latent_dtype)
        if needs_pixel:
            if previous is anchor:
                previous_backward, previous_occlusion, previous_soft = anchor_backward, anchor_occlusion, anchor_soft
            else:
                previous_backward, previous_occlusion = flow_from(previous)
                previous_soft = soften_mask(previous_occlusion)
            guidance.warped_anchor = warp(anchor.rendered.float(), anchor_backward)
            guidance.anchor_occlusion = anchor_soft
            guidance.warped_previous = warp(previous.rendered.float(), previous_backward)
            guidance.previous_occlusion = previous_soft
            occluded_in_both = anchor_occlusion * previous_occlusion
            trusted = 1.0 - mask_to_latent(soften_mask(occluded_in_both), factor)  # (1, 1, h, w)
            weight = trusted * constraints.mask_strength
            flat = flat_regions(trusted) if constraints.smooth_boundary else None
            guidance.fusion_weight = weight.to(latent_dtype)
            guidance.fusion_rescale = noise_rescale(weight, constraints.inner_strength, flat).to(latent_dtype)
        return guidance

    def encode_fusion_target(self, image: torch.Tensor, constraints: ConstraintConfig) -> torch.Tensor:
        """Encode the pixel-aware target, with the fidelity-oriented encoder E* when it is switched on."""
        if not constraints.fidelity_encoding:
            return self.encode_images(image)
        return fidelity_oriented_encode(image, self.encode_images, self.decode_latents, constraints.fidelity_threshold)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """VAE encoding of images in [0, 1] to scaled latents (the posterior mean: deterministic).

        Half-precision overflow (the SDXL VAE's, see `decode_latents`) is redone in float32.

        Shape:
            - images: (B, 3, H, W)
            - Output: (B, 4, H / f, W / f), f = `vae_scale_factor`
        """
        pixels = images * 2.0 - 1.0

        def encode(dtype: torch.dtype) -> torch.Tensor:
            return self.vae.encode(pixels.to(device=self._execution_device, dtype=dtype)).latent_dist.mode()

        latents = self._vae_finite(encode)
        return (latents * self.vae.config.scaling_factor).to(self.unet.dtype)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE decoding of scaled latents to images in [0, 1]; never NaN.

        The SDXL VAE's activations overflow float16 (inf, then NaN: a black frame). `load_pipeline` avoids that
        (the fp16-fixed VAE, or this VAE kept in float32); should a half-precision decode still overflow, it is
        redone in float32 with a warning.

        Shape:
            - latents: (B, 4, h, w)
            - Output: (B, 3, h·f, w·f)
        """
        scaled = latents / self.vae.config.scaling_factor

        def decode(dtype: torch.dtype) -> torch.Tensor:
            return self.vae.decode(scaled.to(dtype), return_dict=False)[0]

        decoded = self._vae_finite(decode)
        return ((decoded.float() + 1.0) / 2.0).clamp(0.0, 1.0)

    def _vae_finite(self, run: Callable[[torch.dtype], torch.Tensor]) -> torch.Tensor:
        """``run(vae dtype)``, redone with the VAE in float32 when a half-precision result is not finite."""
        dtype = self.vae.dtype
        result = run(dtype)
        if dtype == torch.float32 or torch.isfinite(result).all():
            return result
        logger.warning(
            "the VAE overflowed in %s (the SDXL VAE does); redoing it in float32. Use a VAE made for half precision "
            "(model.vae: madebyollin/sdxl-vae-fp16-fix) to avoid the extra time",
            str(dtype).removeprefix("torch."),
        )
        self.vae.to(torch.float32)
        try:
            return run(torch.float32)
        finally:
            self.vae.to(dtype)

    # ----------------------------------------------------------------------------------------------------
    # small private pieces
    # ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _check_resume(resume: dict[str, Any] | None, frames: list[torch.Tensor]) -> int:
        """The index rendering continues at (0 without `resume`); raise `ConfigError` for a state that does not fit."""
        if resume is None:
            return 0
        keys = ("index", "previous_frame", "previous_rendered", "previous_features", "generator_state")
        if not isinstance(resume, dict) or any(key not in resume for key in keys):
            raise ConfigError(
                f"`resume` must be a RenderedFrame.resume_state (a dict with {', '.join(keys)}), got {type(resume).__name__}"
            )
        next_index = int(resume.get("next_index", resume["index"] + 1))
        if not 1 <= next_index <= len(frames):
            raise ConfigError(
                f"`resume` continues at frame {next_index}, which must be in [1, {len(frames)}] (the frames given)"
            )
        if tuple(resume["previous_frame"].shape[-2:]) != tuple(frames[0].shape[-2:]):
            raise ConfigError(
                f"`resume` was saved for {tuple(resume['previous_frame'].shape[-2:])} frames, these are {tuple(frames[0].shape[-2:])}"
            )
        return next_index

    def _resume_state(self, state: _RenderState, index: int) -> dict[str, Any]:
        """Everything besides the anchor (which is re-rendered) that the frames after `index` depend on."""
        return {
            "index": index,
            "previous_frame": state.previous.frame.cpu(),
            "previous_rendered": state.previous.rendered.cpu(),
            "previous_features": state.store.previous_on_host(),  # host storage: the stored tensors, no copy
            "generator_state": state.generator.get_state(),
        }

    def _restore(self, state: _RenderState, resume: dict[str, Any]) -> None:
        """Put back a saved previous keyframe and generator after the anchor has been rendered again."""
        device = self._execution_device
        state.store.load_previous(resume["previous_features"], self.unet.dtype)
        state.previous = _Reference(
            frame=resume["previous_frame"].to(device), rendered=resume["previous_rendered"].to(device)
        )
        state.generator.set_state(resume["generator_state"])

    def _draw_noise(self, state: _RenderState) -> _NoiseBank:
        """The noise of one frame; with `same_noise`, the generator restarts so every frame gets the same."""
        if state.same_noise:
            state.generator.set_state(state.generator_state)
        generator, device, dtype = state.generator, self._execution_device, self.unet.dtype
        height, width = state.anchor.frame.shape[-2:]
        shape = (1, self.latent_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)

        def draw() -> torch.Tensor:
            return randn_tensor(shape, generator=generator, device=device, dtype=dtype)

        initial = draw()
        fusion = {step: draw() for step in sorted(state.schedule.pixel_fusion)}
        refinement_initial, refinement_fusion = None, {}
        if state.refinement_schedule is not None:
            refinement_initial = draw()
            refinement_fusion = {step: draw() for step in sorted(state.refinement_schedule.pixel_fusion)}
        return _NoiseBank(initial, fusion, refinement_initial, refinement_fusion)

    @staticmethod
    def _fusion_target_used(guidance: FusionGuidance) -> bool:
        """Whether some latent cell takes the pixel-aware target (fusion weight > 0); one check per keyframe."""
        return guidance.fusion_weight is None or bool(guidance.fusion_weight.any())

    def _color_corrected(self, frame: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        corrected = correct_colors(self._to_uint8(frame), self._to_uint8(reference))
        return torch.from_numpy(corrected).permute(2, 0, 1)[None].float().div(255.0).to(frame.device)

    def _frames_as_tensors(self, frames: Any) -> list[torch.Tensor]:
        if isinstance(frames, torch.Tensor):
            if frames.ndim != 4 or frames.shape[1] != 3 or not frames.is_floating_point():
                raise ConfigError(
                    f"`frames` as a tensor must be float (T, 3, H, W) in [0, 1], got {frames.dtype} {tuple(frames.shape)}"
                )
            tensors = [frame[None] for frame in frames]
        else:
            if isinstance(frames, np.ndarray) and frames.ndim == 4:
                frames = list(frames)
            if not isinstance(frames, (list, tuple)):
                raise ConfigError(
                    f"`frames` must be a sequence of RGB uint8 (H, W, 3) arrays or a (T, 3, H, W) tensor, got {type(frames).__name__}"
                )
            tensors = []
            for position, frame in enumerate(frames):
                if (
                    not isinstance(frame, np.ndarray)
                    or frame.ndim != 3
                    or frame.shape[2] != 3
                    or frame.dtype != np.uint8
                ):
                    described = (
                        f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
                    )
                    raise ConfigError(f"`frames[{position}]` must be an RGB uint8 (H, W, 3) array, got {described}")
                tensors.append(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255.0)
        if not tensors:
            raise ConfigError("`frames` must hold at least one frame (the anchor), got 0")
        size = tensors[0].shape[-2:]
        for position, tensor in enumerate(tensors):
            if tensor.shape[-2:] != size:
                raise ConfigError(
                    f"`frames` must all have one size; frame {position} is {tensor.shape[-1]}×{tensor.shape[-2]}, "
                    f"frame 0 is {size[1]}×{size[0]}"
                )
        device = self._execution_device
        return [tensor.to(device) for tensor in tensors]

    def _per_controlnet(self, control_images: Sequence[Any] | None) -> list[list[Any]] | None:
        """Normalise `control_images` to one list of maps per ControlNet."""
        if control_images is None:
            return None
        if len(self.controlnets) == 1 and len(control_images) > 0 and self._is_single_map(control_images[0]):
            return [list(control_images)]
        return [list(maps) for maps in control_images]

    @staticmethod
    def _is_single_map(value: Any) -> bool:
        return (isinstance(value, np.ndarray) and value.ndim == 3) or (
            isinstance(value, torch.Tensor) and value.ndim == 3
        )

    @staticmethod
    def _map_size(control_map: Any) -> tuple[int, int]:
        if isinstance(control_map, np.ndarray) and control_map.ndim == 3:
            return control_map.shape[0], control_map.shape[1]
        if isinstance(control_map, torch.Tensor) and control_map.ndim == 3:
            return control_map.shape[1], control_map.shape[2]
        raise ConfigError(
            f"a control map must be an RGB uint8 (H, W, 3) array or a float (3, H, W) tensor, got {type(control_map).__name__}"
        )

    @staticmethod
    def _map_as_tensor(control_map: Any) -> torch.Tensor:
        if isinstance(control_map, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(control_map)).permute(2, 0, 1)[None].float() / 255.0
        return control_map[None].float()

    @staticmethod
    def _to_uint8(image: torch.Tensor) -> np.ndarray:
        return (image[0].float().clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()

    @staticmethod
    def _format_output(rendered: list[RenderedFrame], output_type: str) -> Any:
        if output_type == "latent":
            return torch.cat([frame.latents for frame in rendered])
        images = torch.stack([frame.image for frame in rendered])  # (T, 3, H, W)
        if output_type == "pt":
            return images
        array = images.permute(0, 2, 3, 1).numpy()
        if output_type == "np":
            return array
        if output_type == "pil":
            from PIL import Image

            return [Image.fromarray((image * 255.0).round().astype(np.uint8)) for image in array]
        raise ConfigError(f"`output_type` must be 'np', 'pt', 'pil' or 'latent', got {output_type!r}")
