"""`generate`: a prompt alone in, a video out (Text2Video-Zero keyframes, then propagation along the known motion).

Text2Video-Zero (Khachatryan et al., ICCV 2023, §3.2–3.3): the anchor is text-to-image from noise; every later
frame starts from the anchor's partly denoised latent ``x_{t0}`` translated by the frame's motion ``δ·k``
(Eq. 7 "motion dynamics"), noised forward to ``t1`` (DDPM, Eq. 8), then denoised with the decoder self-attention
attending to the anchor (cross-frame attention; our `rerender.attention` processors, Rerender's Eq. 6 with the
anchor alone). The recipe holds for about 8 frames; here only every K-th frame is rendered this way and the frames
between are propagated (EbSynth-style) from the keyframes, guided by the anchor image moved by the same known
motion, with its exact flow (`rerender.camera.KnownMotionFlow`). Optional background smoothing (§3.3, Eq. 9,
`BackgroundSmoothing`) pulls each keyframe's background latent towards the anchor's, moved by the same motion.
The prompt may be in another language (`prompt.prompt_language`, translated as `translate` does) and a reference
image may steer every keyframe through an IP-Adapter (`prompt.style_image`, the same path as `translate`).

Example:
    >>> result = rerender.generate("a horse galloping on a beach", frames=48, K=8, output="out.mp4")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rerender.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from rerender.languages import PromptTranslation

__all__ = ["MAX_GENERATED_FRAMES", "BackgroundSmoothing", "GenerationResult", "translate_latents", "salient_foreground",
           "latent_mask", "smooth_background", "check_generate_inputs", "render_text_keyframes", "default_noise_steps",
           "generate"]

MAX_GENERATED_FRAMES = 3000
"""Most frames `generate` makes: every frame is kept on disk several times while propagating."""


@dataclass
class GenerationResult:
    """What `generate` made."""

    output: Path
    """The written video."""
    keyframe_indices: list[int]
    """Frames rendered by diffusion; the others are propagated."""
    keyframes: list[np.ndarray]
    """The rendered keyframes, RGB uint8 ``(H, W, 3)``."""
    frame_count: int
    """Frames in the video."""
    prompt: PromptTranslation | None = None
    """The prompt as written and in English as the text encoder read it (a `rerender.languages.PromptTranslation`)."""


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
        if isinstance(self.strength, bool) or not isinstance(self.strength, (int, float)) or not 0 <= self.strength <= 1:
            raise ConfigError(f"`background_smoothing.strength` must be in [0, 1], got {self.strength!r}")
        if isinstance(self.mask_dilation, bool) or not isinstance(self.mask_dilation, int) or not 0 <= self.mask_dilation <= 16:
            raise ConfigError(f"`background_smoothing.mask_dilation` must be an integer in [0, 16], got {self.mask_dilation!r}")


def translate_latents(latents: torch.Tensor, shift: tuple[float, float]) -> torch.Tensor:
    """Move latents by ``shift = (dx, dy)`` latent pixels (Text2Video-Zero Eq. 7): ``out(p) = latents(p − shift)``.

    Nearest sampling keeps the values (and so the noise statistics) intact; the uncovered edge is filled by
    reflection, as Text2Video-Zero does.

    Shape:
        - latents: (B, C, h, w)
        - Output: (B, C, h, w)

    Example:
        >>> latents = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> translate_latents(latents, (1, 0))[0, 0, 0].tolist()
        [1.0, 0.0, 1.0, 2.0]
    """
    height, width = latents.shape[-2:]
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                          indexing="ij")
    source_x, source_y = x - float(shift[0]), y - float(shift[1])
    grid = torch.stack([2 * source_x / max(width - 1, 1) - 1, 2 * source_y / max(height - 1, 1) - 1], dim=-1)
    grid = grid[None].expand(latents.shape[0], -1, -1, -1).to(latents.device)
    moved = F.grid_sample(latents.float(), grid, mode="nearest", padding_mode="reflection", align_corners=True)
    return moved.to(latents.dtype)


def salient_foreground(image: np.ndarray) -> np.ndarray:
    """The salient object of `image`: OpenCV's fine-grained static saliency (Montabone & Soto 2010), smoothed, split
    by Otsu's threshold. Needs no weights; Text2Video-Zero used a salient-object detection network, so pass
    `generate` a better detector (e.g. a segmentation model) as ``foreground_mask`` where one is at hand.

    Shape:
        - image: (H, W, 3) uint8 RGB
        - Output: (H, W) bool, True on the foreground
    """
    import cv2

    found, saliency = cv2.saliency.StaticSaliencyFineGrained_create().computeSaliency(np.ascontiguousarray(image[..., ::-1]))
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


def smooth_background(latents: torch.Tensor, warped_anchor: torch.Tensor, foreground: torch.Tensor,
                      strength: float) -> torch.Tensor:
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


def check_generate_inputs(prompt: Any, frames: Any, K: Any, motion: Any, size: Any) -> tuple[float, float]:
    """Validate `generate`'s arguments before any model loads; returns the motion as two floats.

    Raises:
        ConfigError: an empty prompt, `frames` outside 1–`MAX_GENERATED_FRAMES`, K < 1, a non-finite motion or one
            as large as the frame, a size that is not two multiples of 8 in 64–2048.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"`prompt` must be a non-empty string, got {prompt!r}")
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_GENERATED_FRAMES:
        raise ConfigError(f"`frames` must be an integer in [1, {MAX_GENERATED_FRAMES}], got {frames!r}")
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ConfigError(f"`K` must be an integer ≥ 1, got {K!r}")
    try:
        dx, dy = (float(value) for value in motion)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"`motion` must be (dx, dy) in pixels per frame, got {motion!r}") from error
    if not (math.isfinite(dx) and math.isfinite(dy)):
        raise ConfigError(f"`motion` must be finite, got {motion!r}")
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v % 8 or not 64 <= v <= 2048 for v in size)):
        raise ConfigError(f"`size` must be (width, height), multiples of 8 in [64, 2048], got {size!r}")
    if abs(dx) >= size[0] or abs(dy) >= size[1]:  # consecutive frames would share no pixel: no motion to follow
        raise ConfigError(f"`motion` must be smaller than the frame per frame (|dx| < {size[0]}, |dy| < {size[1]} "
                          f"pixels), got {motion!r}")
    return dx, dy


@torch.no_grad()
def render_text_keyframes(
    pipeline: Any,
    prompt: str,
    keyframe_indices: Sequence[int],
    motion: tuple[float, float],
    size: tuple[int, int],
    *,
    negative_prompt: str | None = None,
    num_inference_steps: int = 20,
    guidance_scale: float = 7.5,
    noise_steps: tuple[int, int] = (2, 4),
    generator: torch.Generator | None = None,
    ip_adapter_image: Any | None = None,
    background_smoothing: BackgroundSmoothing | None = None,
    foreground_mask: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[torch.Tensor]:
    """Render keyframes from text alone: the anchor from noise, the others by Text2Video-Zero from the anchor.

    Args:
        pipeline: a `RerenderPipeline` (its UNet, VAE, text encoder and scheduler config are used, not changed).
        prompt: what to show.
        keyframe_indices: frame indices of the keyframes, the first is the anchor; frame k moves by ``k·motion``.
        motion: ``(dx, dy)`` image pixels per frame (the latent moves by that / the VAE's scale factor).
        size: ``(width, height)`` of the frames, multiples of the VAE's scale factor.
        negative_prompt: what to avoid.
        num_inference_steps: DDIM steps.
        guidance_scale: classifier-free guidance (1 = off).
        noise_steps: ``(i1, i0)``, steps of the anchor's schedule, ``i1 < i0``: the anchor's latent after ``i0``
            steps is translated, noised forward to the level after ``i1`` steps, and denoised from there.
        generator: seeds the anchor's noise and the forward noise.
        ip_adapter_image: a reference image for the IP-Adapter loaded on `pipeline` (see
            `rerender.ip_adapter.style_adapter`), encoded once and applied to every keyframe.
        background_smoothing: `BackgroundSmoothing` (Eq. 9), or None = off.
        foreground_mask: ``foreground_mask(image) -> (H, W) bool`` for background smoothing; None =
            `salient_foreground`.

    Returns:
        One ``(1, 3, H, W)`` image in [0, 1] per keyframe.

    Raises:
        ConfigError: `noise_steps` not ``0 ≤ i1 < i0 < num_inference_steps``.
    """
    from rerender.attention import CrossFrameAttentionStore, cross_frame_attention

    first, second = noise_steps
    if not 0 <= first < second < num_inference_steps:
        raise ConfigError(f"`noise_steps` must satisfy 0 ≤ i1 < i0 < num_inference_steps ({num_inference_steps}), "
                          f"got {noise_steps}")
    device = pipeline._execution_device
    scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config)  # ours: set_timesteps mutates it
    scheduler.set_timesteps(num_inference_steps, device=device)
    timesteps = scheduler.timesteps
    guided = guidance_scale > 1
    text = pipeline.encode_prompt(prompt, negative_prompt, device, guided)
    added_cond_kwargs = pipeline.encode_style_image(ip_adapter_image, device, guided)  # as `translate` does
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
            noise = pipeline.unet(model_input, timestep, encoder_hidden_states=text,
                                  added_cond_kwargs=added_cond_kwargs).sample
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
            raise ConfigError(f"`foreground_mask` must return an (H, W) mask of the {pixels.shape[1]}×{pixels.shape[0]} "
                              f"image, got shape {mask.shape}")
        return latent_mask(mask.astype(bool), shape[-2:], background_smoothing.mask_dilation).to(device)

    images = []
    with cross_frame_attention(pipeline.unet, store):
        initial = randn_tensor(shape, generator=generator, device=device, dtype=pipeline.unet.dtype)
        anchor, kept = denoise(initial * scheduler.init_noise_sigma, 0, anchor=True, keep=(first, second))
        anchor_mid, anchor_start = kept[second], kept[first]  # x_{t0} and x_{t1} of the anchor
        images.append(pipeline.decode_latents(anchor))
        anchor_foreground = foreground_of(images[0]) if background_smoothing is not None else None
        alphas = scheduler.alphas_cumprod.to(device)
        ratio = float(alphas[int(timesteps[first])] / alphas[int(timesteps[second])])  # ᾱ_{t1} / ᾱ_{t0}
        for index in keyframe_indices[1:]:
            shift = ((index - keyframe_indices[0]) * motion[0] / factor, (index - keyframe_indices[0]) * motion[1] / factor)
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


def default_noise_steps(num_inference_steps: int) -> tuple[int, int]:
    """``(i1, i0)`` at 10 % and 20 % of the schedule, near its noisy end as Text2Video-Zero's t1 and t0 are
    (47 and 44 of 50 steps), at least one step apart."""
    second = max(1, round(0.2 * num_inference_steps))
    return max(0, min(second - 1, round(0.1 * num_inference_steps))), second


class _ShiftPath:
    """A uniform translation of the anchor image by ``k·motion`` at frame k (a `rerender.camera.CameraPath`)."""

    def __init__(self, motion: tuple[float, float], frame_count: int, size: tuple[int, int]) -> None:
        self.motion = np.asarray(motion, dtype=np.float64)
        self.frame_count = frame_count
        self.size = size

    def source_points(self, index: int, points: np.ndarray) -> np.ndarray:
        return points - index * self.motion

    def view_points(self, index: int, points: np.ndarray) -> np.ndarray:
        return points + index * self.motion

    def digest(self) -> str:
        from rerender.camera import _digest

        return _digest(self.motion, self.frame_count, self.size)


def generate(
    prompt: str,
    frames: int = 16,
    K: int = 8,
    output: str | os.PathLike = "out.mp4",
    pipeline: Any | None = None,
    *,
    motion: tuple[float, float] = (2.0, 0.0),
    size: tuple[int, int] = (512, 512),
    fps: float = 8.0,
    negative_prompt: str | None = None,
    num_inference_steps: int = 20,
    guidance_scale: float = 7.5,
    noise_steps: tuple[int, int] | None = None,
    seed: int = 0,
    config: Any = None,
    progress: bool = True,
    background_smoothing: BackgroundSmoothing | None = None,
    foreground_mask: Callable[[np.ndarray], np.ndarray] | None = None,
    prompt_translator: Callable[[str, str], str] | None = None,
    **overrides: Any,
) -> GenerationResult:
    """Make a video from a prompt alone: Text2Video-Zero keyframes every K frames, propagation in between.

    Args:
        prompt: what to show.
        frames: frames in the video, 1 to `MAX_GENERATED_FRAMES`.
        K: keyframe interval.
        output: the video to write.
        pipeline: a `RerenderPipeline`; `None` loads the one `config.model` names.
        motion: ``(dx, dy)``, how far the scene moves per frame, in pixels (right and down positive).
        size: ``(width, height)``.
        fps: frame rate of the video.
        negative_prompt, num_inference_steps, guidance_scale, noise_steps: see `render_text_keyframes`; `None`
            noise steps = `default_noise_steps`.
        seed: seeds every random draw: the same seed gives the same video.
        config: a `RerenderConfig` or file: the model, the prompt's language, the style image and the
            propagation options.
        progress: progress bars while propagating.
        background_smoothing: Text2Video-Zero's background smoothing (`BackgroundSmoothing`); None = off.
        foreground_mask: ``foreground_mask(image) -> (H, W) bool``, the salient object for background
            smoothing; None = `salient_foreground`.
        prompt_translator: ``prompt_translator(text, language) -> str`` for a prompt that is not English
            (`prompt.prompt_language`); None = the transformers model `prompt.translation_model`.
        **overrides: config options by leaf name or dotted path, e.g. ``prompt_language="vi"``,
            ``style_image="ref.png"``, ``style_image_scale=0.8``.

    Returns:
        A `GenerationResult`.

    Raises:
        ConfigError: bad arguments (see `check_generate_inputs`), before any model loads.
        InputNotFoundError, VideoReadError: the style image is missing or not an image.
        WeightsNotFoundError: the translation model or the IP-Adapter is neither here nor downloadable.
        OutputPathError: the output cannot be written.
    """
    from rerender.camera import KnownMotionFlow, render_clip
    from rerender.keyframes import select_keyframes
    from rerender.stages import resolve_config
    from rerender.video import check_output_path, write_image, write_video

    # 1. Check the inputs before any model loads.
    dx, dy = check_generate_inputs(prompt, frames, K, motion, tuple(size) if isinstance(size, list) else size)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 240:
        raise ConfigError(f"`fps` must be in (0, 240], got {fps!r}")
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or not 2 <= num_inference_steps <= 1000:
        # checked here: the scheduler would refuse more than its 1000 training steps only after the model loaded
        raise ConfigError(f"`num_inference_steps` must be an integer in [2, 1000] (the 1000-step schedule SD 1.5 was "
                          f"trained with), got {num_inference_steps!r}")
    noise_steps = default_noise_steps(num_inference_steps) if noise_steps is None else tuple(noise_steps)
    if not (isinstance(num_inference_steps, int) and num_inference_steps >= 2
            and 0 <= noise_steps[0] < noise_steps[1] < num_inference_steps):
        raise ConfigError(f"`num_inference_steps` must be ≥ 2 and `noise_steps` satisfy 0 ≤ i1 < i0 < "
                          f"num_inference_steps, got {num_inference_steps} and {noise_steps}")
    if background_smoothing is not None and not isinstance(background_smoothing, BackgroundSmoothing):
        raise ConfigError(f"`background_smoothing` must be a BackgroundSmoothing or None, got {background_smoothing!r}")
    config = resolve_config(config, prompt, min(K, frames), {**overrides, "output.fps": float(fps)})
    output_path = check_output_path(output)
    if config.prompt.style_image is not None:  # the reference image and its IP-Adapter, before any model loads
        from rerender.ip_adapter import check_style_inputs

        check_style_inputs(config.prompt.style_image, config.model.ip_adapter, config.model.ip_adapter_weight_name)
    # A prompt in another language is translated for the CLIP text encoder, as `translate` does.
    from rerender.languages import translate_prompt

    from rerender.models import loading_bars

    with loading_bars(progress):
        prompt_record = translate_prompt(prompt, config.prompt.prompt_language, prompt_translator,
                                         config.prompt.translation_model)
    keyframe_indices = select_keyframes(frames, config.keyframes, None) if frames > 1 else [0]

    # 2. Keyframes by diffusion.
    if pipeline is None:
        from rerender.models import load_pipeline

        with loading_bars(progress):
            pipeline = load_pipeline(config.model, config.control)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    from rerender.ip_adapter import style_adapter

    with style_adapter(pipeline, config) as style_image:  # the IP-Adapter for this call only, as in `translate`
        images = render_text_keyframes(pipeline, prompt_record.english, keyframe_indices, (dx, dy), tuple(size),
                                       negative_prompt=negative_prompt, num_inference_steps=num_inference_steps,
                                       guidance_scale=guidance_scale, noise_steps=noise_steps, generator=generator,
                                       ip_adapter_image=style_image, background_smoothing=background_smoothing,
                                       foreground_mask=foreground_mask)
    keyframes = [(image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy() for image in images]
    if frames == 1:
        write_video([keyframes[0]], output_path, fps=fps, crf=config.output.crf)
        return GenerationResult(output_path, keyframe_indices, keyframes, 1, prompt_record)

    # 3. Propagate between keyframes, guided by the anchor moved by the known motion, with its exact flow.
    from rerender.keyframe_folder import propagate_keyframes

    path = _ShiftPath((dx, dy), frames, tuple(size))
    with tempfile.TemporaryDirectory(prefix=".generate-", dir=output_path.parent) as scratch:
        guides, keys = Path(scratch) / "guides", Path(scratch) / "keys"
        guides.mkdir()
        keys.mkdir()

        def written():
            for index, guide in enumerate(render_clip(keyframes[0], path)):
                write_image(guide, guides / f"{index:05d}.png")
                yield guide

        flow = KnownMotionFlow(path, written())
        for index, image in zip(keyframe_indices, keyframes, strict=True):
            write_image(image, keys / f"{index:05d}.png")
        propagate_keyframes(guides, keys, output_path, config, optical_flow=flow, progress=progress)
    return GenerationResult(output_path, keyframe_indices, keyframes, frames, prompt_record)
