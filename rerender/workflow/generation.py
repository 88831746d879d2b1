"""`generate`: a prompt alone in, a video out (Text2Video-Zero keyframes, then propagation along the known motion).

Text2Video-Zero (Khachatryan et al., ICCV 2023, §3.2–3.3): the anchor is text-to-image from noise; every later
frame starts from the anchor's partly denoised latent ``x_{t0}`` translated by the frame's motion ``δ·k``
(Eq. 7 "motion dynamics"), noised forward to ``t1`` (DDPM, Eq. 8), then denoised with the decoder self-attention
attending to the anchor (cross-frame attention; our `rerender.diffusion.attention` processors, Rerender's Eq. 6 with the
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

import contextlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rerender.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from rerender.config import RerenderConfig
    from rerender.languages import PromptTranslation

from rerender.diffusion.text2video import BackgroundSmoothing, keyframe_offsets, render_text_keyframes

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_GENERATED_FRAMES",
    "GenerationResult",
    "check_camera_travel",
    "check_generate_inputs",
    "check_generate_prompt",
    "generate",
]

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
    seed: int | None = None
    """The seed the keyframes were drawn with (the one drawn when `sampling.seed` is null)."""

    def __post_init__(self) -> None:  # absolute: it still names the same file after the caller's `os.chdir`
        from rerender.workflow.preflight import absolute_path

        self.output = absolute_path(self.output)


def check_generate_inputs(
    prompt: Any, frames: Any, K: Any, motion: Any, size: Any, fps: Any = 8.0
) -> tuple[float, float]:
    """Validate `generate`'s arguments before any model loads; returns the motion as two floats.

    Raises:
        ConfigError: a prompt that is not a string, `frames` outside 1–`MAX_GENERATED_FRAMES`, K < 1, a non-finite motion or one
            as large as the frame, a camera travel over the clip beyond the frame (`check_camera_travel`), a size
            that is not two multiples of 8 in 64–2048, `fps` outside (0, 240].
    """
    if not isinstance(prompt, str):  # empty: refused by `generate` unless a style image or a sound says what to show
        raise ConfigError(f"`prompt` must be a string, got {prompt!r}")
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
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v % 8 or not 64 <= v <= 2048 for v in size)
    ):
        raise ConfigError(f"`size` must be (width, height), multiples of 8 in [64, 2048], got {size!r}")
    if abs(dx) >= size[0] or abs(dy) >= size[1]:  # consecutive frames would share no pixel: no motion to follow
        raise ConfigError(
            f"`motion` must be smaller than the frame per frame (|dx| < {size[0]}, |dy| < {size[1]} "
            f"pixels), got {motion!r}"
        )
    check_camera_travel(frames, (dx, dy), tuple(size))
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 240:
        raise ConfigError(f"`fps` must be in (0, 240], got {fps!r}")
    return dx, dy


def check_camera_travel(frames: int, motion: tuple[float, float], size: tuple[int, int]) -> None:
    """Refuse a camera move that leaves the anchor's view: over the clip the scene may move at most one frame
    width (height) less one latent pixel (8 px), as every keyframe and guide is the anchor moved; past that they
    would be mirror images of mirror images of it, and not one pixel of the anchor would be on screen.

    Raises:
        ConfigError: naming the travel, the limit and the most frames the motion allows.
    """
    for axis, (speed, extent) in enumerate(zip(motion, size)):
        limit = extent - 8
        travel = abs(speed) * (frames - 1)
        if travel > limit:
            most = int(limit // abs(speed)) + 1
            raise ConfigError(
                f"`frames` {frames} at `motion` {'dx' if axis == 0 else 'dy'}={speed:g} px per frame moves the scene "
                f"{travel:g} px, more than the {extent}-px frame allows ({limit} px: every keyframe is the first one "
                f"moved, and past that none of it is on screen); use at most {most} frames at this motion, or a "
                "smaller motion"
            )


class _ShiftPath:
    """The anchor image moved by the keyframes' offsets (whole latent pixels, `keyframe_offsets`), linearly
    between keyframes and by `motion` per frame after the last: a `rerender.camera.CameraPath`. The uncovered edge
    is the reflection about the edge latent pixels' centres, as `translate_latents` fills the keyframes' latents,
    so guides and keyframes agree pixel for pixel at the keyframes.

    Args:
        motion: ``(dx, dy)`` pixels per frame.
        frame_count: frames.
        size: ``(W, H)``.
        keyframe_indices: the keyframes, the first is the anchor (frame 0).
        factor: the VAE's scale factor (pixels per latent pixel).
    """

    def __init__(
        self,
        motion: tuple[float, float],
        frame_count: int,
        size: tuple[int, int],
        keyframe_indices: Sequence[int] = (0,),
        factor: int = 8,
    ) -> None:
        self.motion = np.asarray(motion, dtype=np.float64)
        self.frame_count = frame_count
        self.size = size
        self.factor = factor
        indices = list(keyframe_indices)
        offsets = np.asarray(keyframe_offsets(indices, motion, factor), dtype=np.float64)
        frames = np.arange(frame_count, dtype=np.float64)
        self.offsets = np.stack([np.interp(frames, indices, offsets[:, axis]) for axis in (0, 1)], axis=-1)
        after = frames > indices[-1]
        self.offsets[after] = offsets[-1] + (frames[after, None] - indices[-1]) * self.motion

    def source_points(self, index: int, points: np.ndarray) -> np.ndarray:
        size = np.asarray(self.size, dtype=np.float64)
        pixels = points - self.offsets[index] + size / 2 - 0.5  # pixel coordinates of the anchor image
        # Off the image, whole latent pixels reflected about the edge latent pixels' centres (pixel -1 ↔ factor):
        # one fold suffices, as `check_camera_travel` keeps the travel under a frame.
        low, high = (self.factor - 1) / 2, size - 1 - (self.factor - 1) / 2
        pixels = np.where(pixels < -0.5, 2 * low - pixels, pixels)
        pixels = np.where(pixels > size - 0.5, 2 * high - pixels, pixels)
        return pixels - size / 2 + 0.5

    def view_points(self, index: int, points: np.ndarray) -> np.ndarray:
        return points + self.offsets[index]

    def digest(self) -> str:
        from rerender.camera import _digest

        return _digest(self.offsets, self.frame_count, self.size, self.factor)


class _GenerationProgress:
    """`generate`'s `callback` and `cancel` (checked by `check_progress_arguments`): `translate`'s `Progress`
    without a workspace, so a cancel says that nothing was kept."""

    def __init__(self, callback: Callable[[str, int, int], None] | None, cancel: threading.Event | None) -> None:
        self.callback, self.cancel = callback, cancel

    def check(self, where: str) -> None:
        """Raise `CancelledError` naming `where` if the caller asked to stop."""
        from rerender.errors import CancelledError

        if self.cancel is not None and self.cancel.is_set():
            raise CancelledError(
                f"cancelled {where}; generate keeps no workspace, so nothing was written: the same call starts over"
            )

    def notify(self, stage: str, done: int, total: int) -> None:
        """Report `done` of `total` units of `stage`, then stop if the caller asked to."""
        if self.callback is not None:
            self.callback(stage, done, total)
        self.check(f"during the {stage} stage ({done}/{total})")

    @contextlib.contextmanager
    def at_every_denoising_step(self, pipeline: Any) -> Iterator[None]:
        """Check `cancel` before every call of `pipeline`'s denoiser (its UNet, or the transformer of Z-Image and
        Flux): one call is one denoising step of one keyframe, both guidance halves included."""
        denoiser = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
        if self.cancel is None or not isinstance(denoiser, torch.nn.Module):
            yield
            return
        handle = denoiser.register_forward_pre_hook(lambda module, args: self.check("during the keyframes stage"))
        try:
            yield
        finally:
            handle.remove()


def check_generate_prompt(prompt: str, config: RerenderConfig) -> None:
    """An empty `prompt` is refused unless `config`'s style image or sound says what to show: unlike `translate`,
    whose video gives the content, nothing else would (`generate` and the web page's "Text only" mode).

    Raises:
        ConfigError: the prompt is empty and there is no `prompt.style_image` nor `prompt.audio_prompt`.
    """
    if not prompt.strip() and config.prompt.style_image is None and config.prompt.audio_prompt is None:
        raise ConfigError(
            f"`prompt` is empty ({prompt!r}): describe what the video should show, or let a style image "
            "(`style_image`) or a sound (`audio_prompt`) show it"
        )


def _given_sampling(num_inference_steps: int | None, guidance_scale: float | None) -> dict[str, Any]:
    """`generate`'s explicit steps and guidance as config overrides, so that the run's log of the values it uses
    (`rerender.workflow.preflight.resolve_model_defaults`) names them as set, not the model's own."""
    given = {"sampling.num_inference_steps": num_inference_steps, "sampling.guidance_scale": guidance_scale}
    return {option: value for option, value in given.items() if value is not None}


def generate(
    prompt: str,
    frames: int = 16,
    K: int = 8,
    output: str | os.PathLike = "out.mp4",
    pipeline: Any | None = None,
    *,
    motion: tuple[float, float] = (2.0, 0.0),
    size: tuple[int, int] | None = None,
    fps: float = 8.0,
    negative_prompt: str | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    noise_steps: tuple[int, int] | None = None,
    seed: int | None = None,
    config: Any = None,
    progress: bool = True,
    background_smoothing: BackgroundSmoothing | None = None,
    foreground_mask: Callable[[np.ndarray], np.ndarray] | None = None,
    prompt_translator: Callable[[str, str], str] | None = None,
    overwrite: bool = False,
    callback: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
    **overrides: Any,
) -> GenerationResult:
    """Make a video from a prompt alone: Text2Video-Zero keyframes every K frames, propagation in between.

    Args:
        prompt: what to show.
        frames: frames in the video, 1 to `MAX_GENERATED_FRAMES`.
        K: keyframe interval.
        output: the video to write.
        overwrite: replace an existing `output` that rerender did not write (as `translate`).
        pipeline: a `RerenderPipeline`; `None` loads the one `config.model` names.
        motion: ``(dx, dy)``, how far the scene moves per frame, in pixels (right and down positive).
        size: ``(width, height)``; None = `rerender.config.GENERATED_SIZE`, 512×512 (`video.resolution` does not
            apply: there is no source to resize).
        fps: frame rate of the video.
        guidance_scale: see `render_text_keyframes`; `None` = `config.sampling.guidance_scale` (unset there: the
            base model's own, `rerender.config.FAMILY_DEFAULTS`). Flux's true guidance is
            `config.sampling.true_cfg_scale`.
        num_inference_steps: see `render_text_keyframes`; `None` = `config.sampling.num_inference_steps` (unset
            there: the base model's own, e.g. 4 on Flux schnell, 9 on Z-Image-Turbo).
        negative_prompt, noise_steps: see `render_text_keyframes`; `None`
            noise steps = Text2Video-Zero's T = 941, T' = 881 on the schedule that runs
            (`rerender.diffusion.text2video.text2video_noise_steps`); `None` negative prompt =
            `config.prompt.negative_prompt` (the one default of the CLI and the web page), translated with the
            prompt.
        seed: seeds every random draw: the same seed gives the same video; `None` = `config.sampling.seed` (0 by
            default; null there draws a seed, logged and returned as `GenerationResult.seed`).
        config: a `RerenderConfig` or file: the model, the prompt's language, the style image and the
            propagation options.
        progress: progress bars while propagating.
        background_smoothing: Text2Video-Zero's background smoothing (`BackgroundSmoothing`); None = off.
        foreground_mask: ``foreground_mask(image) -> (H, W) bool``, the salient object for background
            smoothing; None = `salient_foreground`.
        prompt_translator: ``prompt_translator(text, language) -> str`` for a prompt that is not English
            (`prompt.prompt_language`); None = the transformers model `prompt.translation_model`.
        callback: ``callback(stage, done, total)`` as work advances, as `translate`'s: "keyframes" (0 of the
            keyframes before they render, all of them after), then "propagation" per propagated frame.
        cancel: set this event (from another thread) to stop at the next safe point: a denoising step or a
            propagated frame, with `CancelledError`. `generate` keeps no workspace: nothing is written (the output
            is renamed into place only when complete) and the same call starts over.
        **overrides: config options by leaf name or dotted path, e.g. ``prompt_language="vi"``,
            ``style_image="ref.png"``, ``style_image_scale=0.8``.

    Returns:
        A `GenerationResult`.

    Raises:
        ConfigError: bad arguments (see `check_generate_inputs`; a `size` the model cannot take: sides must be
            multiples of 16 on Z-Image and Flux), before any model loads.
        InputNotFoundError, VideoReadError: the style image is missing or not an image.
        WeightsNotFoundError: the translation model or the IP-Adapter is neither here nor downloadable.
        OutputPathError: the output cannot be written.
        CancelledError: `cancel` was set.
    """
    from rerender.camera import KnownMotionFlow, render_clip
    from rerender.config import FAMILY_NAMES, GENERATED_SIZE
    from rerender.config.arguments import check_flags, check_progress_arguments, plain_number
    from rerender.keyframes import select_keyframes
    from rerender.video import write_video
    from rerender.workflow.preflight import (
        absolute_path,
        check_model_inputs,
        check_run,
        helper_device,
        run_family,
        size_multiples,
    )

    # 1. Check the inputs before any model loads.
    check_flags(progress=progress, overwrite=overwrite)
    check_progress_arguments(callback, cancel)
    run_progress = _GenerationProgress(callback, cancel)
    # numpy's numbers (np.int64(16) from an array, a slider's value) are the plain numbers they hold
    frames, K, fps, num_inference_steps, seed = map(plain_number, (frames, K, fps, num_inference_steps, seed))
    if isinstance(size, (list, tuple)):
        size = tuple(map(plain_number, size))
    if isinstance(noise_steps, (list, tuple)):
        noise_steps = tuple(map(plain_number, noise_steps))
    size_given, size = size is not None, GENERATED_SIZE if size is None else size
    dx, dy = check_generate_inputs(prompt, frames, K, motion, tuple(size) if isinstance(size, list) else size, fps)
    if num_inference_steps is not None and (
        isinstance(num_inference_steps, bool)
        or not isinstance(num_inference_steps, int)
        or not 2 <= num_inference_steps <= 1000
    ):
        # checked here: the scheduler would refuse more than its 1000 training steps only after the model loaded
        raise ConfigError(
            f"`num_inference_steps` must be an integer in [2, 1000] (the 1000-step schedule SD 1.5 was "
            f"trained with), got {num_inference_steps!r}"
        )
    steps_given = num_inference_steps if num_inference_steps is not None else 1000  # the config's: checked below
    if noise_steps is not None and not (
        isinstance(noise_steps, (tuple, list))
        and len(noise_steps) == 2
        and all(isinstance(step, int) and not isinstance(step, bool) for step in noise_steps)
    ):
        raise ConfigError(f"`noise_steps` must be a pair of integers (i1, i0) or None, got {noise_steps!r}")
    if noise_steps is not None and not (
        isinstance(steps_given, int) and steps_given >= 2 and 0 <= noise_steps[0] < noise_steps[1] < steps_given
    ):
        raise ConfigError(
            f"`num_inference_steps` must be ≥ 2 and `noise_steps` satisfy 0 ≤ i1 < i0 < "
            f"num_inference_steps, got {num_inference_steps} and {noise_steps}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise ConfigError(f"`seed` must be an integer in [0, 2**63) or None (the config's), got {seed!r}")
    if background_smoothing is not None and not isinstance(background_smoothing, BackgroundSmoothing):
        raise ConfigError(
            f"`background_smoothing` must be a BackgroundSmoothing or None, got {background_smoothing!r}"
        )
    # the checks every entry point shares (`preflight.check_run`): options, output, weights, style image, translator
    checked = check_run(
        config,
        prompt=prompt,
        K=min(K, frames),
        overrides={**overrides, "output.fps": float(fps), **_given_sampling(num_inference_steps, guidance_scale)},
        output=output,
        pipeline=pipeline,
        prompt_translator=prompt_translator,
        check_model=False,
        overwrite=overwrite,
    )
    config, output_path = checked.config, absolute_path(checked.output)  # resolved once, as `translate` does
    if not size_given and config.video.resolution != max(size):  # e.g. configs/sdxl.yaml's 1024: SDXL wants 1024 px
        logger.warning(
            "`video.resolution` %d does not size generate's frames: they are %d×%d (`size`; CLI --width/--height)",
            config.video.resolution,
            *size,
        )
    check_generate_prompt(prompt, config)
    if num_inference_steps is None:  # the config's (unset there: the model's own, 4 on Flux schnell)
        num_inference_steps = config.sampling.num_inference_steps
        if num_inference_steps < 2 or (noise_steps is not None and not noise_steps[1] < num_inference_steps):
            raise ConfigError(
                f"`sampling.num_inference_steps` must be ≥ 2 for `generate` (Text2Video-Zero re-noises the anchor at an "
                f"earlier step) and above `noise_steps`, got {num_inference_steps}"
            )
    if seed is None:  # the config's, as the CLI's `--seed`; null draws one, logged so the run can be repeated
        seed = config.sampling.seed
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))
            logger.info("sampling.seed is null: drew seed %d (set it to repeat this video)", seed)
    family = run_family(config, pipeline=pipeline)
    _, multiple = size_multiples(family, pipeline)
    if size[0] % multiple or size[1] % multiple:  # the model would refuse it only once loaded
        raise ConfigError(
            f"`size` must be multiples of {multiple} on {FAMILY_NAMES.get(family or '', 'this model')} (its VAE "
            f"factor × patch size), got {size[0]}×{size[1]}"
        )
    check_model_inputs(config, pipeline=pipeline, controls=())  # after the translator; text alone needs no ControlNet
    # A prompt in another language is translated for the CLIP text encoder, as `translate` does.
    from rerender.diffusion.loading import loading_bars
    from rerender.languages import translate_prompt
    from rerender.sound import hear_prompt

    with loading_bars(progress):
        # one default negative prompt for the CLI and the web page: the config's
        prompt_record = translate_prompt(
            prompt,
            config.prompt.prompt_language,
            prompt_translator,
            config.prompt.translation_model,
            config.prompt.negative_prompt if negative_prompt is None else negative_prompt,
        )
        # `prompt.audio_prompt`: heard events → words, CLAP on the model's device
        prompt_record = hear_prompt(prompt_record, config.prompt, device=helper_device(config, pipeline))
    run_progress.check("before the keyframes")
    keyframe_indices = select_keyframes(frames, config.keyframes, None) if frames > 1 else [0]

    # 2. Keyframes by diffusion.
    if pipeline is None:
        from rerender.diffusion.loading import load_pipeline

        with loading_bars(progress):
            pipeline = load_pipeline(config.model, ())  # Text2Video-Zero uses no control: no ControlNet loads
    run_progress.notify("keyframes", 0, len(keyframe_indices))
    generator = torch.Generator(device="cpu").manual_seed(seed)
    from rerender.diffusion.flux import true_guidance_options
    from rerender.diffusion.ip_adapter import style_adapter
    from rerender.diffusion.loading import denoising_bars

    if guidance_scale is None:
        guidance_scale = config.sampling.guidance_scale
    from rerender.workflow.renderers import pipeline_lock

    with (
        pipeline_lock(pipeline),  # one run at a time on a shared pipeline, as `translate`'s keyframes
        style_adapter(pipeline, config) as style_image,  # the IP-Adapter for this call only, as in `translate`
        denoising_bars(pipeline, progress),  # the flow path's per-pass bars follow `progress` (-q)
        run_progress.at_every_denoising_step(pipeline),  # `cancel` stops at the next step
    ):
        images = render_text_keyframes(
            pipeline,
            prompt_record.english,
            keyframe_indices,
            (dx, dy),
            tuple(size),
            negative_prompt=prompt_record.negative_english,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            noise_steps=noise_steps,
            generator=generator,
            ip_adapter_image=style_image,
            background_smoothing=background_smoothing,
            foreground_mask=foreground_mask,
            **true_guidance_options(pipeline, config.sampling.true_cfg_scale),
        )
    keyframes = [
        (image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy() for image in images
    ]
    run_progress.notify("keyframes", len(keyframes), len(keyframe_indices))
    if frames == 1:
        write_video([keyframes[0]], output_path, fps=fps, crf=config.output.crf)
        return GenerationResult(output_path, keyframe_indices, keyframes, 1, prompt_record, seed)

    # 3. Propagate between keyframes, in memory, guided by the anchor moved by the known motion, with its exact flow;
    #    the guides are kept PNG-compressed (lossless) and the propagated frames stream into the video.
    from functools import partial

    from rerender.flow import estimate_flow_numpy
    from rerender.propagation import propagate_video_iter
    from rerender.workflow.frames import EncodedFrames
    from rerender.workflow.stages import propagation_options

    path = _ShiftPath((dx, dy), frames, tuple(size), keyframe_indices, pipeline.vae_scale_factor)
    guides = EncodedFrames(render_clip(keyframes[0], path))
    flow = KnownMotionFlow(path, (guides[index] for index in range(len(guides))))
    stream = propagate_video_iter(
        guides,
        dict(zip(keyframe_indices, keyframes, strict=True)),
        flow=partial(estimate_flow_numpy, flow),
        options=propagation_options(config),
        progress=progress,
        callback=run_progress.notify,  # in this thread, per propagated frame: `cancel` stops the stream there
    )
    with contextlib.closing(stream):  # an encoder error stops the propagation threads now, not when it is released
        write_video((image for _, image in stream), output_path, fps=fps, crf=config.output.crf)
    return GenerationResult(output_path, keyframe_indices, keyframes, frames, prompt_record, seed)
