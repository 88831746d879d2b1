"""`RerenderZImagePipeline`: the Rerender keyframe constraints on Z-Image, a flow-matching diffusion transformer.

Z-Image (Tongyi-MAI; Z-Image-Turbo: 6B, 8–9 steps without classifier-free guidance, Apache-2.0) denoises a
16-channel VAE latent with a single-stream transformer over ``[image tokens; text tokens]`` and a
`FlowMatchEulerDiscreteScheduler`. The flow-matching path (SDEdit by σ, x̂₀ from the velocity, fusion on the VAE
grid, re-composition, Text2Video-Zero) is `rerender.diffusion.flow_transformer.FlowTransformerPipeline`, shared
with Flux; what is Z-Image's is here:

* **velocity**: the transformer takes the time as ``1 − σ`` and returns ``−v`` (its pipeline negates it before the
  scheduler's step); `predict_velocity` returns v in the scheduler's convention;
* **guidance**: classifier-free, batched ``[positive; negative]`` as the transformer takes a list; a guidance scale
  above 1 on a guidance-distilled model (Turbo) warns;
* **text**: Qwen3 hidden states through diffusers' own `ZImageControlNetPipeline._encode_prompt`;
* **cross-frame attention** in the main-stream blocks (`token_cross_frame_attention`, image tokens padded as the
  model pads them);
* **control**: the Z-Image Fun ControlNet (Union: canny, HED, depth, pose, MLSD, chosen by the kind of control map
  given; it takes no mode, so `control.control_mode` is unused here), one at a time, joined to the transformer as
  `ZImageControlNetPipeline` joins it.

Not available on this base, as the config documents: FreeU (defined on UNet skip connections; ignored with one
log line) and the IP-Adapter (diffusers has none for Z-Image; refused).

Example:
    >>> pipe = RerenderZImagePipeline.from_pretrained("path/to/z-image-turbo", controlnet=controlnet)  # doctest: +SKIP
    >>> images = pipe(frames, "a watercolour painting", num_inference_steps=9, guidance_scale=1.0).images  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import ZImageControlNetPipeline
from diffusers.loaders import ZImageLoraLoaderMixin
from diffusers.models import AutoencoderKL
from diffusers.models.controlnets.controlnet_z_image import ZImageControlNetModel
from diffusers.models.transformers.transformer_z_image import SEQ_MULTI_OF, ZImageTransformer2DModel
from diffusers.schedulers import FlowMatchEulerDiscreteScheduler

from rerender.diffusion.attention import CrossFrameAttentionStore
from rerender.diffusion.flow_transformer import FlowMatchingSchedule, FlowTransformerPipeline
from rerender.diffusion.loading import config_class_name
from rerender.diffusion.pipeline import PromptConditioning, RerenderPipeline, _RenderState
from rerender.diffusion.transformer_attention import token_cross_frame_attention
from rerender.errors import ConfigError
from rerender.weights import ZIMAGE_CONTROLNET, ZIMAGE_FOLDERS, base_variant

logger = logging.getLogger(__name__)

__all__ = [
    "RerenderZImagePipeline",
    "FlowMatchingSchedule",
    "load_zimage_controlnet",
    "is_zimage_controlnet",
    "DEFAULT_ZIMAGE_MODEL",
    "DEFAULT_ZIMAGE_CONTROLNET",
]


class RerenderZImagePipeline(ZImageLoraLoaderMixin, FlowTransformerPipeline):
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

    # ----------------------------------------------------------------------------------------------------
    # what the shared code reads
    # ----------------------------------------------------------------------------------------------------

    @property
    def model_width(self) -> int:
        return int(self.transformer.config.dim)

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
        return self.variant == "zimage-turbo"

    @property
    def variant(self) -> str:
        """Which variant: "zimage-turbo" or "zimage" (`rerender.config.BaseVariant`, the row of `FAMILY_DEFAULTS`
        it takes), by its scheduler's shift, else its name (`rerender.weights.base_variant`, the rule a run's
        defaults are chosen by before the model loads)."""
        return base_variant(str(self.config.get("_name_or_path", "")), "zimage", dict(self.scheduler.config))

    # ----------------------------------------------------------------------------------------------------
    # lifecycle steps that differ from SD
    # ----------------------------------------------------------------------------------------------------

    def check_family_inputs(self, guidance_scale: float, negative_prompt: str | None, controls: Any) -> None:
        """Guidance above 1 on a guidance-distilled model (Turbo) warns. A ``control_mode`` is not used: the Z-Image
        ControlNet takes no mode (diffusers' `ZImageControlNetModel.forward` has no mode input; it reads the kind of
        control from the map); a run warned about it already (`rerender.config.BASE_SPECIFIC_OPTIONS`)."""
        if guidance_scale > 1.0 and self.guidance_distilled:
            logger.warning(
                "guidance_scale %g on a guidance-distilled model (%s): it was trained to run without "
                "classifier-free guidance; 1 turns guidance off and halves the cost",
                guidance_scale,
                self.config.get("_name_or_path"),
            )
        if self.controlnet is not None and any(control.control_mode is not None for control in controls or ()):
            logger.debug("`control.control_mode` is not used on Z-Image: its ControlNet takes no mode")

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

    def cross_frame_attention(
        self, store: CrossFrameAttentionStore, last_blocks: int | None
    ) -> contextlib.AbstractContextManager[list[str]]:
        """Token cross-frame attention in the main-stream blocks (`token_cross_frame_attention`)."""
        tokens = math.ceil(self._latent_tokens / SEQ_MULTI_OF) * SEQ_MULTI_OF  # the model pads image tokens
        return token_cross_frame_attention(self.transformer, store, tokens, last_blocks=last_blocks)

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


# --------------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------------

DEFAULT_ZIMAGE_MODEL = "Tongyi-MAI/Z-Image-Turbo"
"""Z-Image-Turbo (Apache-2.0): 6B, 8–9 steps without classifier-free guidance."""

DEFAULT_ZIMAGE_CONTROLNET, ZIMAGE_CONTROLNET_FILE = ZIMAGE_CONTROLNET
"""The Union ControlNet for Z-Image-Turbo (canny, HED, depth, pose, MLSD; the kind is read from the map) and its file."""

ZIMAGE_COMPONENTS = ZIMAGE_FOLDERS
"""The sub-folders of a Z-Image repository this pipeline reads."""


def is_zimage_controlnet(source: str | os.PathLike) -> bool | None:
    """Whether a ControlNet source is a Z-Image ControlNet: True/False when it can be told from its files without
    loading it (a folder's config, a single file's keys), None when it cannot (a hub id not in the cache)."""
    path = Path(source)
    if path.is_dir():
        return config_class_name(path / "config.json") == "ZImageControlNetModel"
    if path.is_file() and path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return any(key.startswith(("control_all_x_embedder", "control_layers.")) for key in handle.keys())
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
