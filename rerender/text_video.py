"""`generate`: a prompt alone in, a video out (Text2Video-Zero keyframes, then propagation along the known motion).

Text2Video-Zero (Khachatryan et al., ICCV 2023, §3.2–3.3): the anchor is text-to-image from noise; every later
frame starts from the anchor's partly denoised latent ``x_{t0}`` translated by the frame's motion ``δ·k``
(Eq. 7 "motion dynamics"), noised forward to ``t1`` (DDPM, Eq. 8), then denoised with the decoder self-attention
attending to the anchor (cross-frame attention; our `rerender.attention` processors, Rerender's Eq. 6 with the
anchor alone). The recipe holds for about 8 frames; here only every K-th frame is rendered this way and the frames
between are propagated (EbSynth-style) from the keyframes, guided by the anchor image moved by the same known
motion, with its exact flow (`rerender.camera.KnownMotionFlow`). Background smoothing (§3.3) is not implemented.

Example:
    >>> result = rerender.generate("a horse galloping on a beach", frames=48, K=8, output="out.mp4")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rerender.errors import ConfigError

__all__ = ["MAX_GENERATED_FRAMES", "GenerationResult", "translate_latents", "check_generate_inputs",
           "render_text_keyframes", "default_noise_steps", "generate"]

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


def check_generate_inputs(prompt: Any, frames: Any, K: Any, motion: Any, size: Any) -> tuple[float, float]:
    """Validate `generate`'s arguments before any model loads; returns the motion as two floats.

    Raises:
        ConfigError: an empty prompt, `frames` outside 1–`MAX_GENERATED_FRAMES`, K < 1, a non-finite motion, a size
            that is not two multiples of 8 in 64–2048.
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
    factor = pipeline.vae_scale_factor
    shape = (1, pipeline.unet.config.in_channels, size[1] // factor, size[0] // factor)
    store = CrossFrameAttentionStore()

    def denoise(latents: torch.Tensor, start: int, anchor: bool, keep: int | None = None):
        kept = None
        for step in range(start, len(timesteps)):
            if step == keep:
                kept = latents
            timestep = timesteps[step]
            store.set_step(int(timestep), record="anchor" if anchor else None, attend=not anchor)
            model_input = torch.cat([latents] * 2) if guided else latents
            noise = pipeline.unet(model_input, timestep, encoder_hidden_states=text).sample
            if guided:
                unconditional, conditional = noise.chunk(2)
                noise = unconditional + guidance_scale * (conditional - unconditional)
            latents = scheduler.step(noise, timestep, latents).prev_sample
        store.idle()
        return latents, kept

    from diffusers.utils.torch_utils import randn_tensor

    images = []
    with cross_frame_attention(pipeline.unet, store):
        initial = randn_tensor(shape, generator=generator, device=device, dtype=pipeline.unet.dtype)
        anchor, anchor_mid = denoise(initial * scheduler.init_noise_sigma, 0, anchor=True, keep=second)
        images.append(pipeline.decode_latents(anchor))
        alphas = scheduler.alphas_cumprod.to(device)
        ratio = float(alphas[int(timesteps[first])] / alphas[int(timesteps[second])])  # ᾱ_{t1} / ᾱ_{t0}
        for index in keyframe_indices[1:]:
            shift = ((index - keyframe_indices[0]) * motion[0] / factor, (index - keyframe_indices[0]) * motion[1] / factor)
            moved = translate_latents(anchor_mid, shift)
            noise = randn_tensor(shape, generator=generator, device=device, dtype=moved.dtype)
            start = ratio**0.5 * moved + (1 - ratio) ** 0.5 * noise  # DDPM forward from t0 to t1
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
        config: a `RerenderConfig` or file, for the model and the propagation options.
        progress: progress bars while propagating.

    Returns:
        A `GenerationResult`.

    Raises:
        ConfigError: bad arguments (see `check_generate_inputs`), before any model loads.
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
    noise_steps = default_noise_steps(num_inference_steps) if noise_steps is None else tuple(noise_steps)
    if not (isinstance(num_inference_steps, int) and num_inference_steps >= 2
            and 0 <= noise_steps[0] < noise_steps[1] < num_inference_steps):
        raise ConfigError(f"`num_inference_steps` must be ≥ 2 and `noise_steps` satisfy 0 ≤ i1 < i0 < "
                          f"num_inference_steps, got {num_inference_steps} and {noise_steps}")
    config = resolve_config(config, prompt, min(K, frames), {"output.fps": float(fps)})
    output_path = check_output_path(output)
    keyframe_indices = select_keyframes(frames, config.keyframes, None) if frames > 1 else [0]

    # 2. Keyframes by diffusion.
    if pipeline is None:
        from rerender.models import load_pipeline

        pipeline = load_pipeline(config.model, config.control)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    images = render_text_keyframes(pipeline, prompt, keyframe_indices, (dx, dy), tuple(size),
                                   negative_prompt=negative_prompt, num_inference_steps=num_inference_steps,
                                   guidance_scale=guidance_scale, noise_steps=noise_steps, generator=generator)
    keyframes = [(image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy() for image in images]
    if frames == 1:
        write_video([keyframes[0]], output_path, fps=fps, crf=config.output.crf)
        return GenerationResult(output_path, keyframe_indices, keyframes, 1)

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
    return GenerationResult(output_path, keyframe_indices, keyframes, frames)
