"""`RerenderFluxPipeline`: the Rerender keyframe constraints on Flux.1, a flow-matching diffusion transformer.

Flux.1 (Black Forest Labs; 12B; schnell: Apache-2.0, 1–4 steps; dev: non-commercial licence, ~28 steps with an
embedded guidance value) denoises a 16-channel VAE latent (8× down) with a transformer of double-stream blocks
(image and text tokens apart, joined in attention) then single-stream blocks (one ``[text; image]`` sequence),
on a `FlowMatchEulerDiscreteScheduler`. The flow-matching path is shared with Z-Image
(`rerender.diffusion.flow_transformer.FlowTransformerPipeline`): SDEdit start by σ, x̂₀ from the velocity,
shape-aware fusion and AdaIN on x̂₀, pixel-aware fusion on the flow path, re-composition at the next σ,
Text2Video-Zero for `generate`. What is Flux's is here:

* **packing**: Flux patchifies 2×2 latent pixels into 64-channel tokens *outside* the transformer
  (`FluxPipeline._pack_latents`, with (0, row, column) position ids); every constraint acts on the VAE latent grid
  ``(1, 16, H/8, W/8)`` and the latent is packed only for the model call and the velocity unpacked after it;
* **velocity**: Flux's transformer takes ``t = σ`` and returns the velocity ``v = ε − x₀`` in the scheduler's own
  convention (its pipeline passes it to ``scheduler.step`` unchanged), so no sign flip (Z-Image's returns −v);
* **guidance**: on a guidance-distilled model with a guidance embedding (dev), ``guidance_scale`` is the embedded
  guidance value (3.5 typical), one model call per step; schnell has no such embedding and ignores it (a value
  above 1 warns). True classifier-free guidance is `FluxPipeline`'s: ``true_cfg_scale`` > 1 with a negative prompt
  runs ``[negative; positive]`` in one batch on every pass and takes ``v_neg + s·(v − v_neg)`` (twice the compute
  and twice the stored attention references); 1 (the default) is off;
* **schedule**: σ linear in 1 → 1/N, shifted with ``mu`` from the packed image sequence length ((H/16)·(W/16)) on
  dev (dynamic shifting), unshifted on schnell (its scheduler config), exactly as `FluxPipeline`;
* **text**: CLIP (pooled) + T5 (sequence) through diffusers' own `FluxPipeline.encode_prompt`;
* **cross-frame attention** in all double- and single-stream blocks (`flux_cross_frame_attention`);
* **control**: one `FluxControlNetModel` (VAE-latent conditioning, packed, or the hint-block kind fed with pixels);
  a Union ControlNet (one with modes, ``num_mode``) takes ``control.control_mode`` (a number, or a name of
  `rerender.config.FLUX_UNION_MODES`), else the mode of ``control.type`` (canny 0, depth 2, openpose 4), as
  `FluxControlNetPipeline`'s ``control_mode``.

Not available here: FreeU (UNet skips; ignored with one log line), the IP-Adapter (refused: diffusers' Flux
IP-Adapter is not wired), background smoothing in `generate` (refused).

Example:
    >>> pipe = RerenderFluxPipeline.from_pretrained("black-forest-labs/FLUX.1-schnell")  # doctest: +SKIP
    >>> images = pipe(frames, "a watercolour", num_inference_steps=4, guidance_scale=0.0).images  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import FluxPipeline
from diffusers.loaders import FluxLoraLoaderMixin
from diffusers.models import AutoencoderKL
from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from diffusers.schedulers import FlowMatchEulerDiscreteScheduler

from rerender.config import ControlConfig
from rerender.diffusion.attention import CrossFrameAttentionStore
from rerender.diffusion.control import union_control_mode
from rerender.diffusion.flow_transformer import FlowTransformerPipeline
from rerender.diffusion.loading import config_class_name, not_a_flux_union
from rerender.diffusion.pipeline import PromptConditioning, RerenderPipeline, _RenderState
from rerender.diffusion.transformer_attention import flux_cross_frame_attention
from rerender.errors import ConfigError
from rerender.weights import FLUX_FOLDERS

logger = logging.getLogger(__name__)

__all__ = [
    "RerenderFluxPipeline",
    "pack_latents",
    "unpack_latents",
    "latent_image_ids",
    "is_flux_controlnet",
    "load_flux_controlnet",
    "DEFAULT_FLUX_MODEL",
    "FLUX_COMPONENTS",
    "flux_control_mode",
    "FluxConditioning",
    "true_guidance_options",
]


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """Flux's token packing: each 2×2 patch of the latent grid becomes one token of 4·C channels (`FluxPipeline`).

    Shape:
        - latents: (B, C, h, w), h and w even
        - Output: (B, (h/2)·(w/2), 4·C), tokens in row-major order of the patches
    """
    batch, channels, height, width = latents.shape
    return FluxPipeline._pack_latents(latents, batch, channels, height, width)


def unpack_latents(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inverse of `pack_latents` onto an ``h × w`` latent grid.

    Shape:
        - tokens: (B, (h/2)·(w/2), 4·C)
        - Output: (B, C, h, w)
    """
    return FluxPipeline._unpack_latents(tokens, height, width, 1)


def latent_image_ids(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Position ids (0, row, column) of the packed image tokens of an ``h × w`` latent grid (RoPE positions).

    Shape:
        - Output: ((h/2)·(w/2), 3)
    """
    return FluxPipeline._prepare_latent_image_ids(1, height // 2, width // 2, device, dtype)


@dataclass
class FluxConditioning:
    """Flux's text conditioning of one call (`RerenderFluxPipeline.encode_prompt`).

    Attributes:
        embeds: T5 token features, ``(B, T, D)``: B = 1, or 2 = ``[negative; positive]`` with true guidance.
        pooled: CLIP pooled features, ``(B, D_pooled)``, in the same order.
        text_ids: the text tokens' position ids, ``(T, 3)`` (zeros).
        true_cfg_scale: the true classifier-free guidance scale (`FluxPipeline`'s ``true_cfg_scale``).
    """

    embeds: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor
    true_cfg_scale: float = 1.0

    @property
    def guided(self) -> bool:
        """Whether true classifier-free guidance runs (a negative prompt is in the batch)."""
        return self.embeds.shape[0] == 2


class RerenderFluxPipeline(FluxLoraLoaderMixin, FlowTransformerPipeline):
    """Rerender-A-Video keyframes on Flux.1: the transformer (+ a Flux ControlNet) under the cross-frame constraints.

    A diffusers pipeline with Flux's components: ``from_pretrained(hub id or folder, controlnet=...)``,
    ``load_lora_weights``/``set_adapters`` (Flux LoRAs: diffusers, kohya and XLabs key layouts),
    ``enable_model_cpu_offload``.

    Args:
        scheduler: a `FlowMatchEulerDiscreteScheduler` (Flux's).
        vae: the 16-channel autoencoder (with a shift factor).
        text_encoder: the CLIP text encoder (its pooled output conditions the time embedding).
        tokenizer: its tokenizer.
        text_encoder_2: the T5 encoder (the token sequence).
        tokenizer_2: its tokenizer.
        transformer: the `FluxTransformer2DModel`.
        controlnet: a `FluxControlNetModel` (a Union one takes ``control.control_mode``, else the mode of
            ``control.type``: `flux_control_mode`), or None.
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->transformer->vae"
    _optional_components: list[str] = ["controlnet"]
    family = "flux"

    # diffusers' own Flux prompt encoding (CLIP pooled + T5 sequence, text ids)
    _encode_flux_prompt = FluxPipeline.encode_prompt
    _get_clip_prompt_embeds = FluxPipeline._get_clip_prompt_embeds
    _get_t5_prompt_embeds = FluxPipeline._get_t5_prompt_embeds

    def __init__(
        self,
        scheduler: FlowMatchEulerDiscreteScheduler,
        vae: AutoencoderKL,
        text_encoder: Any,
        tokenizer: Any,
        text_encoder_2: Any,
        tokenizer_2: Any,
        transformer: FluxTransformer2DModel,
        controlnet: FluxControlNetModel | None = None,
    ) -> None:
        super(RerenderPipeline, self).__init__()  # DiffusionPipeline's: RerenderPipeline's registers a UNet
        self.register_modules(
            scheduler=scheduler,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            text_encoder_2=text_encoder_2,
            tokenizer_2=tokenizer_2,
            transformer=transformer,
            controlnet=controlnet,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if getattr(self, "vae", None) else 8
        self.tokenizer_max_length = self.tokenizer.model_max_length if getattr(self, "tokenizer", None) else 77
        self._control_mode: int | None = None
        self._true_cfg_scale = 1.0

    # ----------------------------------------------------------------------------------------------------
    # what the shared code reads
    # ----------------------------------------------------------------------------------------------------

    @property
    def model_width(self) -> int:
        return int(self.transformer.config.num_attention_heads * self.transformer.config.attention_head_dim)

    def reference_batch(self, state: _RenderState) -> int:
        """2 with true classifier-free guidance (the negative prompt in the batch), else 1: the embedded guidance
        value adds no batch."""
        return 2 if state.prompt_embeds.guided else 1

    @property
    def size_multiple(self) -> int:
        """Frame sides must be multiples of this: the VAE factor times the 2×2 packing (16)."""
        return self.vae_scale_factor * 2

    @property
    def max_sequence_length(self) -> int:
        """T5 tokens per prompt: 512 on dev (`FluxPipeline`'s default), 256 on schnell (its limit)."""
        return 512 if self.guidance_embedded else 256

    @property
    def guidance_embedded(self) -> bool:
        """Whether the transformer takes a guidance value as input (dev); schnell does not."""
        return bool(self.transformer.config.guidance_embeds)

    @property
    def variant(self) -> str:
        """Which variant: "flux-dev" (a guidance embedding) or "flux-schnell" (`rerender.config.BaseVariant`, the
        row of `FAMILY_DEFAULTS` it takes)."""
        return "flux-dev" if self.guidance_embedded else "flux-schnell"

    # ----------------------------------------------------------------------------------------------------
    # lifecycle steps that differ from SD
    # ----------------------------------------------------------------------------------------------------

    def check_family_inputs(self, guidance_scale: float, negative_prompt: str | None, controls: Any) -> None:
        """The guidance warning, and the Union ControlNet's mode (`flux_control_mode` of ``controls[0]``; canny when
        `controls` is None).

        Raises:
            ConfigError: with a Union ControlNet, a mode it does not have (a name of another base, a number out of
                its range) or a control type it has no mode for without ``control_mode``; a ``control_mode`` on a
                ControlNet without modes.
        """
        if guidance_scale > 1.0 and not self.guidance_embedded:
            logger.warning(
                "guidance_scale %g on a Flux model without a guidance embedding (schnell): it is guidance-distilled "
                "and runs without guidance, so the value is ignored",
                guidance_scale,
            )
        if negative_prompt and self._true_cfg_scale <= 1.0:
            logger.info("the negative prompt is used on Flux only with true_cfg_scale > 1 (true guidance); ignored")
        if self._true_cfg_scale > 1.0 and negative_prompt is None:
            logger.info(
                "true_cfg_scale %g without a negative prompt: true guidance is off (as FluxPipeline)",
                self._true_cfg_scale,
            )
        self._control_mode = None
        if self.controlnet is not None:
            control = controls[0] if controls else ControlConfig()
            self._control_mode = flux_control_mode(control, self.controlnet.config.get("num_mode"))

    def encode_prompt(
        self,
        prompt: str,
        negative_prompt: str | None,
        device: torch.device,
        do_classifier_free_guidance: bool,
        size: tuple[int, int] | None = None,
    ) -> PromptConditioning:
        """CLIP + T5 features of the prompt, and of the negative prompt when true classifier-free guidance is on
        (`true_cfg_scale` > 1 and a negative prompt given, as `FluxPipeline` decides; `do_classifier_free_guidance`,
        which reads the embedded guidance value, is not used; no size conditioning, so `size` is not used).

        Returns:
            `PromptConditioning` whose ``prompt_embeds`` is a `FluxConditioning`.
        """

        def encode(text: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            embeds, pooled, text_ids = self._encode_flux_prompt(
                prompt=text, prompt_2=None, device=device, max_sequence_length=self.max_sequence_length
            )
            return embeds.to(dtype=self.transformer.dtype), pooled.to(dtype=self.transformer.dtype), text_ids

        embeds, pooled, text_ids = encode(prompt)
        scale = self._true_cfg_scale
        if scale > 1.0 and negative_prompt is not None:
            negative_embeds, negative_pooled, _ = encode(negative_prompt)
            embeds, pooled = torch.cat((negative_embeds, embeds)), torch.cat((negative_pooled, pooled))
        return PromptConditioning(prompt_embeds=FluxConditioning(embeds, pooled, text_ids, scale))

    @contextlib.contextmanager
    def true_guidance(self, true_cfg_scale: float) -> Iterator[None]:
        """Set the true classifier-free guidance scale for the renders started inside the block.

        Raises:
            ConfigError: a scale that is not a number ≥ 1.
        """
        if isinstance(true_cfg_scale, bool) or not isinstance(true_cfg_scale, (int, float)) or not true_cfg_scale >= 1:
            raise ConfigError(f"`true_cfg_scale` must be a number ≥ 1 (1 = off), got {true_cfg_scale!r}")
        previous, self._true_cfg_scale = self._true_cfg_scale, float(true_cfg_scale)
        try:
            yield
        finally:
            self._true_cfg_scale = previous

    def __call__(self, *args: Any, true_cfg_scale: float = 1.0, **kwargs: Any) -> Any:
        """`RerenderPipeline.__call__`, plus Flux's true classifier-free guidance.

        Args:
            true_cfg_scale: with a `negative_prompt`, every model call also runs on the negative prompt and the
                velocity is ``v_neg + true_cfg_scale·(v − v_neg)`` (`FluxPipeline`'s ``true_cfg_scale``; both in one
                batch, with the same embedded guidance value and the same ControlNet residuals); 1 = off.
        """
        with self.true_guidance(true_cfg_scale):
            return super().__call__(*args, **kwargs)

    def render_keyframes(self, *args: Any, true_cfg_scale: float | None = None, **kwargs: Any) -> Iterator[Any]:
        """`RerenderPipeline.render_keyframes` with `true_cfg_scale` (see `__call__`; None = the value set by the
        enclosing `__call__` or `true_guidance`, else 1)."""
        with self.true_guidance(self._true_cfg_scale if true_cfg_scale is None else true_cfg_scale):
            yield from super().render_keyframes(*args, **kwargs)

    def render_text_keyframes(self, *args: Any, true_cfg_scale: float = 1.0, **kwargs: Any) -> list[torch.Tensor]:
        """`FlowTransformerPipeline.render_text_keyframes` (Text2Video-Zero, for `generate`) with `true_cfg_scale`
        (see `__call__`)."""
        with self.true_guidance(true_cfg_scale):
            return super().render_text_keyframes(*args, **kwargs)

    def cross_frame_attention(
        self, store: CrossFrameAttentionStore, last_blocks: int | None
    ) -> contextlib.AbstractContextManager[list[str]]:
        """Cross-frame attention in the double- and single-stream blocks (`flux_cross_frame_attention`)."""
        return flux_cross_frame_attention(self.transformer, store, self._latent_tokens, last_blocks=last_blocks)

    def prepare_control_image(self, state: _RenderState, index: int, frame: torch.Tensor) -> list[torch.Tensor]:
        """The control map of one frame as the Flux ControlNet takes it (one, unbatched: no guidance batch).

        VAE-latent ControlNets get ``(E(map) − shift)·scale`` packed to ``(1, tokens, 64)``; hint-block ones the map
        in [−1, 1], ``(1, 3, H, W)`` (both as `FluxControlNetPipeline`, with the posterior mean).
        """
        if self.controlnet is None:
            return []
        image = super().prepare_control_image(state, index, frame)[0][:1]  # (1, 3, H, W) in [0, 1]
        if self.controlnet.input_hint_block is None:
            return [pack_latents(self.encode_images(image))]
        return [(image * 2.0 - 1.0).to(self.controlnet.dtype)]

    def predict_velocity(
        self, state: _RenderState, latents: torch.Tensor, sigma: float, control: list[torch.Tensor]
    ) -> torch.Tensor:
        """One transformer evaluation (with the ControlNet's residuals): the velocity ``v = ε − x₀``, VAE grid.

        The latent is packed for the call and the output unpacked; Flux's output is already in the scheduler's
        convention (`FluxPipeline` steps with it unchanged). Time is σ (diffusers' ``t / 1000``, computed the same
        way); the guidance value (`guidance_scale`) goes in only when the transformer embeds one. With true
        classifier-free guidance the negative and positive prompts run in one batch and
        ``v = v_neg + s·(v_pos − v_neg)`` (`FluxPipeline`); the ControlNet runs once, on the positive prompt, and
        both halves take its residuals (`FluxControlNetPipeline`).

        Shape:
            - latents: (1, 16, h, w)
            - Output: (1, 16, h, w), float32
        """
        state.unet_calls += 1
        text: FluxConditioning = state.prompt_embeds
        batch = text.embeds.shape[0]
        height, width = latents.shape[-2:]
        device, dtype = latents.device, self.transformer.dtype
        tokens = pack_latents(latents.to(dtype))
        image_ids = latent_image_ids(height, width, device, dtype)
        timestep = (torch.tensor([sigma], dtype=torch.float32) * 1000).to(device=device, dtype=dtype) / 1000
        guidance = torch.full((1,), float(state.guidance_scale), device=device)
        residuals: dict[str, Any] = {}
        if control:
            # `FluxControlNetPipeline`'s `control_mode`: a (batch, 1) long tensor, which the mode embedding reads
            mode = None
            if self._control_mode is not None:
                mode = torch.full((1, 1), self._control_mode, dtype=torch.long, device=device)
            blocks, single_blocks = self.controlnet(
                hidden_states=tokens,
                controlnet_cond=control[0],
                controlnet_mode=mode,
                conditioning_scale=state.conditioning_scales[0],
                timestep=timestep,
                guidance=guidance if self.controlnet.config.guidance_embeds else None,
                pooled_projections=text.pooled[-1:],
                encoder_hidden_states=text.embeds[-1:],
                txt_ids=text.text_ids,
                img_ids=image_ids,
                return_dict=False,
            )
            residuals = dict(
                controlnet_block_samples=[sample.expand(batch, -1, -1) for sample in blocks or []] or None,
                controlnet_single_block_samples=[sample.expand(batch, -1, -1) for sample in single_blocks or []]
                or None,
                controlnet_blocks_repeat=self.controlnet.input_hint_block is not None,
            )
        output = self.transformer(
            hidden_states=tokens.expand(batch, -1, -1),
            timestep=timestep.expand(batch),
            guidance=guidance.expand(batch) if self.guidance_embedded else None,
            pooled_projections=text.pooled,
            encoder_hidden_states=text.embeds,
            txt_ids=text.text_ids,
            img_ids=image_ids,
            return_dict=False,
            **residuals,
        )[0].float()
        if text.guided:
            negative, positive = output.chunk(2)
            output = negative + text.true_cfg_scale * (positive - negative)
        return unpack_latents(output, height, width)


def flux_control_mode(control: ControlConfig, num_mode: int | None, position: int | None = None) -> int | None:
    """The mode a Flux ControlNet takes for `control`: on a Union one (``num_mode`` modes: InstantX/Shakker-Labs),
    `control.control_mode` (a number, or a name of `rerender.config.FLUX_UNION_MODES`), else the mode of its type
    (canny 0, depth 2, openpose 4), checked against ``num_mode`` (`rerender.diffusion.control.union_control_mode`);
    None on one without modes (`num_mode` None), which reads the kind of control from the map.

    Raises:
        ConfigError: on a Union, a name it does not have (listing its names), a number out of its range, a type
            without a mode of its own and no `control_mode` (a precomputed map); on one without modes, a
            `control_mode` (it would do nothing), naming ``control[position].control_mode`` (``control.control_mode``
            when `position` is None).
    """
    if num_mode is not None:
        return union_control_mode(control, num_mode, "flux", position)
    if control.control_mode is not None:
        raise not_a_flux_union(control, position)
    return None


def true_guidance_options(pipeline: Any, true_cfg_scale: float) -> dict[str, float]:
    """The keyword a render call takes for ``sampling.true_cfg_scale``: ``{"true_cfg_scale": s}`` on Flux, ``{}``
    on the other bases, which ignore the option (a run warns when it is set: `BASE_SPECIFIC_OPTIONS`): their
    `guidance_scale` is classifier-free guidance already."""
    if getattr(pipeline, "family", None) == "flux":
        return {"true_cfg_scale": float(true_cfg_scale)}
    if true_cfg_scale > 1.0:
        # a run warned already, naming the option (`rerender.workflow.preflight.resolve_model_defaults`)
        logger.debug("`sampling.true_cfg_scale` applies to Flux only; ignored (guidance_scale is the guidance here)")
    return {}


# --------------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------------

DEFAULT_FLUX_MODEL = "black-forest-labs/FLUX.1-schnell"
"""FLUX.1 [schnell] (Apache-2.0): 12B, 1–4 steps, no guidance. FLUX.1 [dev] is under a non-commercial licence."""

FLUX_COMPONENTS = FLUX_FOLDERS
"""The sub-folders of a Flux repository this pipeline reads (`rerender.weights.FLUX_FOLDERS`: what download fetches)."""


def is_flux_controlnet(source: str | os.PathLike) -> bool | None:
    """Whether a ControlNet source is a Flux ControlNet: True/False when its folder's config tells, None when it
    cannot be told without loading it (a hub id not in the cache, a single file)."""
    path = Path(source)
    if path.is_dir():
        return config_class_name(path / "config.json") in ("FluxControlNetModel", "FluxMultiControlNetModel")
    return None


def load_flux_controlnet(source: str, dtype: torch.dtype = torch.bfloat16) -> FluxControlNetModel:
    """A Flux ControlNet from a diffusers folder or hub id.

    Raises:
        ConfigError: the source is a ControlNet of another family (named, with both families).
        InputNotFoundError: the source cannot be loaded here.
    """
    from rerender.diffusion.loading import _dtype_argument, _hub_errors, _unreachable

    if is_flux_controlnet(source) is False:
        raise ConfigError(
            f"`control.model` {source!r} is not a Flux ControlNet (the base model is Flux); use a Flux ControlNet "
            "in diffusers format (e.g. InstantX/FLUX.1-dev-Controlnet-Canny)"
        )
    try:
        return FluxControlNetModel.from_pretrained(source, **_dtype_argument(dtype))
    except _hub_errors() as error:
        raise _unreachable("control.model", source, error) from error
