"""Text2Video-Zero latent maths (Khachatryan et al., ICCV 2023, §3.2–3.3) and the keyframe renderer built on them.

The anchor is text-to-image from noise; every later keyframe starts from the anchor's partly denoised latent
``x_{t0}`` translated by the frame's motion ``δ·k`` (Eq. 7 "motion dynamics"), noised forward to ``t1`` (DDPM,
Eq. 8), then denoised with the decoder self-attention attending to the anchor (cross-frame attention, Rerender's
Eq. 6 with the anchor alone). Optional background smoothing (§3.3, Eq. 9, `BackgroundSmoothing`) pulls each
keyframe's background latent towards the anchor's, moved by the same motion. The workflow around it (frames,
propagation, writing) is `rerender.workflow.generation.generate`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rerender.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "BackgroundSmoothing",
    "TEXT2VIDEO_ZERO_TIMESTEPS",
    "latent_shift",
    "keyframe_offsets",
    "reflect_indices",
    "translate_latents",
    "salient_foreground",
    "latent_mask",
    "smooth_background",
    "render_text_keyframes",
    "text2video_noise_steps",
]


@dataclass(frozen=True)
class BackgroundSmoothing:
    """Text2Video-Zero's optional background smoothing (§3.3, Eq. 9); pass one to `generate` to turn it on.

    Each keyframe k is denoised once; its salient foreground and the anchor's (moved by k's motion) are found on
    the decoded images; where neither is, the latent it started from at t1 becomes
    ``α·x̂ + (1 − α)·x`` (``x̂``: the anchor's latent at t1, moved by k's motion); then it is denoised again.
    """

    strength: float = 0.6
    """α of Eq. 9: weight of the anchor's moved latent in the background (0 = no effect, 1 = the anchor's alone)."""
    mask_dilation: int = 2
    """Latent pixels the foreground masks grow by, so the smoothing stays off the subject's edge (the official code
    dilates by a 5×5 kernel, i.e. 2)."""

    def __post_init__(self) -> None:
        if (
            isinstance(self.strength, bool)
            or not isinstance(self.strength, (int, float))
            or not 0 <= self.strength <= 1
        ):
            raise ConfigError(f"`background_smoothing.strength` must be in [0, 1], got {self.strength!r}")
        if (
            isinstance(self.mask_dilation, bool)
            or not isinstance(self.mask_dilation, int)
            or not 0 <= self.mask_dilation <= 16
        ):
            raise ConfigError(
                f"`background_smoothing.mask_dilation` must be an integer in [0, 16], got {self.mask_dilation!r}"
            )


def latent_shift(offset: tuple[float, float], factor: int) -> tuple[int, int]:
    """The whole-latent-pixel shift for an image offset of `offset` pixels: ``⌊offset / factor + ½⌋`` per axis.

    Text2Video-Zero moves latents by whole pixels; a fractional shift sampled by nearest neighbour would repeat
    every other latent column (noise with a structure the model never saw), and the propagation guides must
    move by exactly ``shift·factor`` image pixels to agree with the keyframes (`keyframe_offsets`).
    """
    return math.floor(offset[0] / factor + 0.5), math.floor(offset[1] / factor + 0.5)


def keyframe_offsets(
    keyframe_indices: Sequence[int], motion: tuple[float, float], factor: int
) -> list[tuple[int, int]]:
    """The image offset of each keyframe from the anchor, in pixels, whole latent pixels each:
    ``latent_shift((k − k₀)·motion)·factor``. `generate` moves its guides by exactly these at the keyframes."""
    first = keyframe_indices[0]
    offsets = []
    for index in keyframe_indices:
        dx, dy = latent_shift(((index - first) * motion[0], (index - first) * motion[1]), factor)
        offsets.append((dx * factor, dy * factor))
    return offsets


def reflect_indices(indices: torch.Tensor | np.ndarray, size: int):
    """Indices folded into ``[0, size − 1]`` by reflection about the first and last centres (…2 1 0 1 2…), for
    any distance (a triangle wave of period ``2·(size − 1)``)."""
    if size == 1:
        return indices * 0
    period = 2 * (size - 1)
    folded = indices % period
    if isinstance(folded, np.ndarray):
        return np.minimum(folded, period - folded)
    return torch.minimum(folded, period - folded)


def translate_latents(latents: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """Move latents by ``shift = (dx, dy)`` whole latent pixels (Text2Video-Zero Eq. 7):
    ``out(p) = latents(p − shift)``.

    Values are moved, never resampled (the noise keeps its statistics); the uncovered edge is filled by reflection
    about the edge pixels' centres, as Text2Video-Zero does (for any distance: `reflect_indices`).

    Shape:
        - latents: (B, C, h, w)
        - Output: (B, C, h, w)

    Raises:
        ValueError: a shift that is not whole latent pixels (see `latent_shift`).

    Example:
        >>> latents = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> translate_latents(latents, (1, 0))[0, 0, 0].tolist()
        [1.0, 0.0, 1.0, 2.0]
    """
    if any(float(value) != int(value) for value in shift):
        raise ValueError(f"`shift` must be whole latent pixels, got {shift}; round with latent_shift")
    height, width = latents.shape[-2:]
    rows = reflect_indices(torch.arange(height, device=latents.device) - int(shift[1]), height)
    columns = reflect_indices(torch.arange(width, device=latents.device) - int(shift[0]), width)
    return latents[..., rows, :][..., columns]


def salient_foreground(image: np.ndarray) -> np.ndarray:
    """The salient object of `image`: OpenCV's fine-grained static saliency (Montabone & Soto 2010), smoothed, split
    by Otsu's threshold. Needs no weights; Text2Video-Zero used a salient-object detection network, so pass
    `generate` a better detector (e.g. a segmentation model) as ``foreground_mask`` where one is at hand.

    Shape:
        - image: (H, W, 3) uint8 RGB
        - Output: (H, W) bool, True on the foreground
    """
    import cv2

    found, saliency = cv2.saliency.StaticSaliencyFineGrained_create().computeSaliency(
        np.ascontiguousarray(image[..., ::-1])
    )
    if not found:
        return np.zeros(image.shape[:2], dtype=bool)
    saliency = np.asarray(saliency, dtype=np.float32)
    saliency = (saliency * 255 if saliency.max() <= 1 else saliency).clip(0, 255).astype(np.uint8)
    saliency = cv2.GaussianBlur(saliency, (0, 0), max(1.0, min(image.shape[:2]) / 64))  # one blob, not its edges
    _, mask = cv2.threshold(saliency, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return mask > 0


def latent_mask(mask: np.ndarray | torch.Tensor, size: tuple[int, int], dilation: int = 0) -> torch.Tensor:
    """A pixel mask at latent resolution: a latent pixel is foreground when any pixel it covers is, then the
    foreground grows by `dilation` latent pixels (a square window).

    Shape:
        - mask: (H, W) bool or {0, 1}, H and W multiples of the latent size
        - Output: (1, 1, h, w) float32 in {0, 1}, ``(h, w) = size``
    """
    pixels = torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None]
    coarse = F.adaptive_max_pool2d(pixels, tuple(size))
    if dilation > 0:
        coarse = F.max_pool2d(coarse, 2 * dilation + 1, stride=1, padding=dilation)
    return coarse


def smooth_background(
    latents: torch.Tensor, warped_anchor: torch.Tensor, foreground: torch.Tensor, strength: float
) -> torch.Tensor:
    """Text2Video-Zero Eq. 9: ``M·x + (1 − M)·(α·x̂ + (1 − α)·x)``, the background pulled towards the anchor's latent.

    Args:
        latents: ``x``, a frame's latents.
        warped_anchor: ``x̂``, the anchor's latents at the same noise level, moved by the frame's motion.
        foreground: ``M``, 1 where the frame is left alone.
        strength: ``α`` in [0, 1].

    Shape:
        - latents, warped_anchor: (B, C, h, w)
        - foreground: (B or 1, 1, h, w)
        - Output: (B, C, h, w)
    """
    foreground = foreground.to(latents.dtype)
    return foreground * latents + (1 - foreground) * (strength * warped_anchor + (1 - strength) * latents)


@torch.no_grad()
def render_text_keyframes(
    pipeline: Any,
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
    background_smoothing: BackgroundSmoothing | None = None,
    foreground_mask: Callable[[np.ndarray], np.ndarray] | None = None,
    **options: Any,
) -> list[torch.Tensor]:
    """Render keyframes from text alone: the anchor from noise, the others by Text2Video-Zero from the anchor.

    Args:
        pipeline: a `RerenderPipeline` (its UNet, VAE, text encoder and scheduler config are used, not changed).
        prompt: what to show.
        keyframe_indices: frame indices of the keyframes, the first is the anchor; frame k moves by ``k·motion``.
        motion: ``(dx, dy)`` image pixels per frame (the latent moves by that / the VAE's scale factor).
        size: ``(width, height)`` of the frames, multiples of the VAE's scale factor.
        negative_prompt: what to avoid.
        num_inference_steps: DDIM steps; None = the base's own (`RerenderPipeline.sampling_defaults`).
        guidance_scale: classifier-free guidance (1 = off); None = the base's own.
        noise_steps: ``(i1, i0)``, steps of the anchor's schedule, ``i1 < i0``: the anchor's latent after ``i0``
            steps is translated, noised forward to the level after ``i1`` steps, and denoised from there. None =
            `text2video_noise_steps` on the schedule that runs: the steps nearest T = 941 and T' = 881.
        generator: seeds the anchor's noise and the forward noise.
        ip_adapter_image: a reference image for the IP-Adapter loaded on `pipeline` (see
            `rerender.diffusion.ip_adapter.style_adapter`), encoded once and applied to every keyframe.
        background_smoothing: `BackgroundSmoothing` (Eq. 9), or None = off.
        foreground_mask: ``foreground_mask(image) -> (H, W) bool`` for background smoothing; None =
            `salient_foreground`.
        **options: keywords of a base's own `render_text_keyframes` (Flux: ``true_cfg_scale``).

    Returns:
        One ``(1, 3, H, W)`` image in [0, 1] per keyframe.

    Raises:
        ConfigError: `noise_steps` not ``0 ≤ i1 < i0 < num_inference_steps``.
    """
    from rerender.diffusion.attention import (
        CrossFrameAttentionStore,
        choose_reference_storage,
        cross_frame_attention,
        decoder_layer_shapes,
        reference_bytes_estimate,
    )

    num_inference_steps, guidance_scale = pipeline.sampling_defaults(num_inference_steps, guidance_scale)
    if hasattr(pipeline, "render_text_keyframes"):  # a base with its own schedule (Z-Image, Flux: flow matching)
        return pipeline.render_text_keyframes(
            prompt,
            keyframe_indices,
            motion,
            size,
            negative_prompt=negative_prompt,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            noise_steps=noise_steps,
            generator=generator,
            ip_adapter_image=ip_adapter_image,
            background_smoothing=background_smoothing,
            foreground_mask=foreground_mask,
            **options,
        )
    if options:
        raise ConfigError(f"{', '.join(map(repr, options))}: not an option of {type(pipeline).__name__}")
    device = pipeline._execution_device
    scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config)  # ours: set_timesteps mutates it
    scheduler.set_timesteps(num_inference_steps, device=device)
    timesteps = scheduler.timesteps
    first, second = text2video_noise_steps(timesteps) if noise_steps is None else noise_steps
    if not 0 <= first < second < num_inference_steps:
        raise ConfigError(
            f"`noise_steps` must satisfy 0 ≤ i1 < i0 < num_inference_steps ({num_inference_steps}), got {noise_steps}"
        )
    guided = guidance_scale > 1
    conditioning = pipeline.encode_prompt(prompt, negative_prompt, device, guided, size=(size[1], size[0]))
    text = conditioning.prompt_embeds  # SDXL: with its pooled embedding and size numbers in added_cond_kwargs
    added_cond_kwargs = {
        **(conditioning.added_cond_kwargs or {}),
        **(pipeline.encode_style_image(ip_adapter_image, device, guided) or {}),
    } or None
    factor = pipeline.vae_scale_factor
    shape = (1, pipeline.unet.config.in_channels, size[1] // factor, size[0] // factor)
    store = CrossFrameAttentionStore()

    def denoise(latents: torch.Tensor, start: int, anchor: bool, keep: Sequence[int] = ()):
        kept = {}
        for step in range(start, len(timesteps)):
            if step in keep:
                kept[step] = latents
            timestep = timesteps[step]
            store.set_step(int(timestep), record="anchor" if anchor else None, attend=not anchor)
            model_input = torch.cat([latents] * 2) if guided else latents
            noise = pipeline.unet(
                model_input, timestep, encoder_hidden_states=text, added_cond_kwargs=added_cond_kwargs
            ).sample
            if guided:
                unconditional, conditional = noise.chunk(2)
                noise = unconditional + guidance_scale * (conditional - unconditional)
            latents = scheduler.step(noise, timestep, latents).prev_sample
        store.idle()
        return latents, kept

    from diffusers.utils.torch_utils import randn_tensor

    def to_image(image: torch.Tensor) -> np.ndarray:
        return (image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

    def foreground_of(image: torch.Tensor) -> torch.Tensor:  # (1, 1, h, w) on the latents' device
        pixels = to_image(image)
        mask = np.asarray((foreground_mask or salient_foreground)(pixels))
        if mask.shape != pixels.shape[:2]:
            raise ConfigError(
                f"`foreground_mask` must return an (H, W) mask of the {pixels.shape[1]}×{pixels.shape[0]} "
                f"image, got shape {mask.shape}"
            )
        return latent_mask(mask.astype(bool), shape[-2:], background_smoothing.mask_dilation).to(device)

    images = []
    with cross_frame_attention(pipeline.unet, store) as layers:
        # the anchor's features at every step are the one reference set: host memory when they would crowd the GPU
        element_size = torch.empty((), dtype=pipeline.unet.dtype).element_size()
        shapes = decoder_layer_shapes(pipeline.unet, layers, shape[-2:])
        estimate = reference_bytes_estimate(shapes, len(timesteps), 2 if guided else 1, element_size, 1)
        storage = choose_reference_storage("auto", estimate, device, hasattr(pipeline.unet, "_hf_hook"))
        store.place("cpu" if storage == "host" else None, device)
        logger.info("cross-frame attention references: about %.2f GiB, kept in %s memory", estimate / 2**30, storage)
        initial = randn_tensor(shape, generator=generator, device=device, dtype=pipeline.unet.dtype)
        anchor, kept = denoise(initial * scheduler.init_noise_sigma, 0, anchor=True, keep=(first, second))
        anchor_mid, anchor_start = kept[second], kept[first]  # x_{t0} and x_{t1} of the anchor
        images.append(pipeline.decode_latents(anchor))
        anchor_foreground = foreground_of(images[0]) if background_smoothing is not None else None
        alphas = scheduler.alphas_cumprod.to(device)
        ratio = float(alphas[int(timesteps[first])] / alphas[int(timesteps[second])])  # ᾱ_{t1} / ᾱ_{t0}
        for offset_x, offset_y in keyframe_offsets(keyframe_indices, motion, factor)[1:]:
            shift = (offset_x // factor, offset_y // factor)  # whole latent pixels; the guides move by the offset
            moved = translate_latents(anchor_mid, shift)
            noise = randn_tensor(shape, generator=generator, device=device, dtype=moved.dtype)
            start = ratio**0.5 * moved + (1 - ratio) ** 0.5 * noise  # DDPM forward from t0 to t1
            latents, _ = denoise(start, first, anchor=False)
            if background_smoothing is not None:
                # Eq. 9 where neither this frame's salient object nor the anchor's (moved) is, then denoise again
                own = foreground_of(pipeline.decode_latents(latents))
                foreground = 1 - (1 - own) * (1 - translate_latents(anchor_foreground, shift))  # (1, 1, h, w)
                warped_anchor = translate_latents(anchor_start, shift)
                start = smooth_background(start, warped_anchor, foreground, background_smoothing.strength)
                latents, _ = denoise(start, first, anchor=False)
            images.append(pipeline.decode_latents(latents))
    return images


TEXT2VIDEO_ZERO_TIMESTEPS = (941, 881)
"""Text2Video-Zero's ``(T, T')``: the anchor's latent at ``T'`` is moved and noised forward to ``T``, then denoised
(the paper's §3.2 and its code: steps 44 and 47 of a 50-step DDIM schedule, timesteps 881 and 941)."""


def text2video_noise_steps(
    timesteps: Sequence[int] | torch.Tensor, targets: tuple[int, int] = TEXT2VIDEO_ZERO_TIMESTEPS
) -> tuple[int, int]:
    """``(i1, i0)``: the steps of the schedule `timesteps` (descending) whose timesteps are nearest to
    ``targets = (T, T')``, chosen by timestep value so the noise level matches the method on any schedule.

    Keyframe k starts from (Text2Video-Zero Eq. 8, DDPM forward over ``Δt = T − T'``)
    ``x_T^k = √(ᾱ_T / ᾱ_T') · W_k(x_T'^1) + √(1 − ᾱ_T / ᾱ_T') · ε``, ``ε ~ N(0, I)``, with ``W_k`` the move by
    ``k·δ`` (Eq. 7) and ``ᾱ`` the scheduler's cumulative alphas at ``T = timesteps[i1]``, ``T' = timesteps[i0]``.
    On SD 1.5's 50-step DDIM schedule that is (2, 5): timesteps 941 and 881 exactly; on 20 steps (0, 1): 951 and
    901. The two steps differ by at least one, and ``i0`` leaves a step to denoise.

    Raises:
        ConfigError: a schedule of fewer than 2 steps.
    """
    values = [int(value) for value in (timesteps.tolist() if isinstance(timesteps, torch.Tensor) else timesteps)]
    if len(values) < 2:
        raise ConfigError(f"Text2Video-Zero needs a schedule of at least 2 steps, got {len(values)}")
    nearest = lambda target: min(range(len(values)), key=lambda step: (abs(values[step] - target), step))
    first = min(nearest(targets[0]), len(values) - 2)
    second = min(max(nearest(targets[1]), first + 1), len(values) - 1)
    return first, second
