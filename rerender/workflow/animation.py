"""`animate`: a still image and a prompt in, a restyled clip with a camera move out.

The still becomes a clip by a known camera move (`rerender.camera`: zoom, pan, depth parallax or a keyframed path),
and the clip is translated by the normal pipeline (`rerender.translate`) with the move's exact optical flow
(`KnownMotionFlow`) in place of an estimator, so fusion and propagation use flow without estimation errors.

Example:
    >>> import rerender
    >>> result = rerender.animate("photo.jpg", "a watercolor painting", motion="zoom-in", seconds=4,
    ...                           output="out.mp4")                                        # doctest: +SKIP
    >>> result.output, result.clip                                                      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rerender.camera import MOTIONS, KnownMotionFlow, motion_path, render_clip
from rerender.config import RerenderConfig
from rerender.errors import ConfigError, InputNotFoundError, OutputPathError, VideoReadError
from rerender.video import (
    check_input_path,
    check_output_path,
    compute_output_size,
    read_image,
    write_image,
    write_video,
)
from rerender.workflow.context import check_flags, check_progress_arguments
from rerender.workflow.preflight import absolute_path, check_model_inputs, check_run, helper_device
from rerender.workflow.translation import TranslationResult, translate

__all__ = ["MAX_FRAMES", "AnimationResult", "animate", "read_still", "read_depth"]

MAX_FRAMES = 3000
"""Most frames a generated clip may have (2 min at 25 fps): each frame is kept on disk several times over."""

logger = logging.getLogger(__name__)

_CLIP_FRAME = re.compile(r"\d{5}\.png")


@dataclass
class AnimationResult:
    """What `animate` made."""

    translation: TranslationResult
    """The translation of the generated clip (output video, keyframes, workspace, timings)."""
    clip: Path | None
    """The generated (untranslated) clip as a video, or None when not asked for."""
    clip_frames: Path
    """The folder of the generated clip's frames (lossless PNG), the input of the translation."""
    optical_flow: KnownMotionFlow
    """The exact flow of the camera move, usable for any two frames of the clip."""

    def __post_init__(self) -> None:  # absolute: they still name the same files after the caller's `os.chdir`
        self.clip = absolute_path(self.clip) if self.clip is not None else None
        self.clip_frames = absolute_path(self.clip_frames)

    @property
    def output(self) -> Path | None:
        """The translated video."""
        return self.translation.output


def read_still(image: str | os.PathLike | np.ndarray) -> np.ndarray:
    """The still as RGB uint8 ``(H, W, 3)``, from a file or an array.

    Raises:
        InputNotFoundError: the file does not exist.
        VideoReadError: the file is not an image (a `ValueError`), or the array is not ``(H, W, 3)`` uint8.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 2:
            raise VideoReadError(f"`image` must be RGB uint8 (H, W, 3) with H, W ≥ 2, got {image.dtype} {image.shape}")
        return image
    if not isinstance(image, (str, os.PathLike)):
        raise ConfigError(f"`image` must be a path (a str or os.PathLike) or an RGB uint8 array, got {image!r}")
    path = Path(image)
    if not path.is_file():
        raise InputNotFoundError(f"`image` not found: {str(path)!r}")
    try:
        still = read_image(path)
    except (VideoReadError, ValueError) as error:
        said = str(error)  # the reader's message names the file already: say it once
        if said.startswith(repr(str(path))):
            raise VideoReadError(f"`image` {said}") from error
        raise VideoReadError(
            f"`image` {str(path)!r} is not a readable image (PNG, JPEG, WebP, TIFF, BMP): {said}"
        ) from error
    if min(still.shape[:2]) < 2:
        raise VideoReadError(
            f"`image` {str(path)!r} must be at least 2×2 pixels, got {still.shape[1]}×{still.shape[0]}"
        )
    frames = _image_frames(path)
    if frames > 1:  # an animated GIF/WebP/PNG is a video to translate, not a still to animate
        logger.warning(
            "`image` %s is animated (%d frames): only its first is animated; to restyle its motion, translate it "
            "(`rerender translate`, rerender.translate)",
            path,
            frames,
        )
    return still


def _image_frames(path: Path) -> int:
    """How many frames Pillow finds in the image file (1 for stills and for files Pillow does not read)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1))
    except (OSError, ValueError, SyntaxError):
        return 1


def read_depth(depth: str | os.PathLike | np.ndarray) -> np.ndarray:
    """A depth map as float ``(H, W)``, larger = nearer: an 8/16-bit image, a ``.npy`` array, or an array.

    Raises:
        InputNotFoundError: the file does not exist.
        VideoReadError: it is not an image or a numeric array (``.npy`` files are read without pickle).
        ConfigError: it holds non-finite values or is constant (no depth to move by).
    """
    if isinstance(depth, np.ndarray):
        array = depth
    else:
        path = Path(depth)
        if not path.is_file():
            raise InputNotFoundError(f"`depth` not found: {str(path)!r}")
        if path.suffix.lower() == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except ValueError as error:
                raise VideoReadError(f"`depth` {str(path)!r} is not a numeric .npy array: {error}") from error
        else:
            import cv2

            array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_GRAYSCALE)
            if array is None:
                raise VideoReadError(f"`depth` {str(path)!r} is not a readable image or .npy array")
    if array.ndim == 3:
        array = array.mean(axis=2)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise VideoReadError(f"`depth` must be a 2-D numeric map (H, W), got {array.dtype} {array.shape}")
    name = "`depth`" if isinstance(depth, np.ndarray) else f"`depth` {str(depth)!r}"
    finite = np.isfinite(array)
    if not finite.all():
        raise ConfigError(
            f"{name} holds {int((~finite).sum())} non-finite values (NaN or ±inf); a depth map is finite"
        )
    if array.size and np.ptp(array) == 0:
        raise ConfigError(
            f"{name} is constant (every value {array.flat[0]}): an orbit needs depth that varies (larger = nearer)"
        )
    return array.astype(np.float32)


def _depth_from_annotator(still: np.ndarray, device: str | None = None) -> np.ndarray:
    """MiDaS disparity from the `annotators` extra (controlnet-aux), its network on `device` (the model's:
    `helper_device`); raises its clear error when not importable."""
    from rerender.diffusion.control import load_annotator
    from rerender.errors import MissingDependencyError

    try:
        annotator = load_annotator("depth", device=device)
    except (
        MissingDependencyError
    ) as error:  # its advice is about control types; for a still, the way out is a depth map
        raise MissingDependencyError(
            "motion 'orbit' needs a depth map: pass one with `depth` (--depth FILE: an image or .npy, larger = nearer), "
            'install the `annotators` extra to estimate it (pip install "rerender[annotators]", needs torchvision), '
            "or choose a 2-D move (zoom-in, zoom-out, pan-left/right/up/down)"
        ) from error
    return annotator(still).mean(axis=2)


def _clip_folder(output: Path) -> Path:
    """`<output>.clip/`: a new folder, or one holding only frames an earlier run wrote."""
    folder = output.with_name(output.name + ".clip")
    if folder.exists():
        if not folder.is_dir() or any(not _CLIP_FRAME.fullmatch(item.name) for item in folder.iterdir()):
            raise OutputPathError(
                f"{str(folder)!r} exists and holds files rerender did not write; move it away or choose another output"
            )
    return folder


def animate(
    image: str | os.PathLike | np.ndarray,
    prompt: str | None = None,
    motion: str = "zoom-in",
    seconds: float = 4.0,
    fps: float = 25.0,
    output: str | os.PathLike = "out.mp4",
    config: RerenderConfig | str | os.PathLike | None = None,
    pipeline: Any | None = None,
    *,
    K: int | None = None,
    amount: float | None = None,
    path: Any = None,
    depth: str | os.PathLike | np.ndarray | None = None,
    clip_output: str | os.PathLike | None | Literal["auto"] = "auto",
    workspace: str | os.PathLike | None = None,
    renderer: Any = None,
    force: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callback: Any = None,
    cancel: threading.Event | None = None,
    **overrides: Any,
) -> AnimationResult:
    """Make a clip from a still with a camera move, then translate it into the style of `prompt`.

    Args:
        image: the still: an image file or RGB uint8 ``(H, W, 3)``.
        prompt: what the result should look like.
        motion: one of `rerender.camera.MOTIONS`: "zoom-in", "zoom-out", "pan-left|right|up|down", "orbit" (depth
            parallax: needs `depth`, or the `annotators` extra for a MiDaS estimate), "path" (needs `path`).
        seconds: length of the clip.
        fps: frame rate of the clip and the result.
        output: the translated video to write.
        overwrite: replace an existing `output` (and clip video) that rerender did not write (as `translate`).
        config: a `RerenderConfig` or a YAML/JSON file; its `video` section sets the clip's size (the still's aspect).
        pipeline: a loaded `RerenderPipeline` (see `translate`).
        K: keyframe interval (default: the config's; a clip shorter than it gets keyframes at its first and last frames).
        amount: how far the move goes (`rerender.camera.DEFAULT_AMOUNT`).
        path: the keyframed path for motion "path": a JSON/YAML file, an inline spec or a list of mappings
            (`rerender.camera.parse_path`).
        depth: depth map for "orbit" (larger = nearer): an image, a ``.npy`` file or an array.
        clip_output: also write the generated clip as a video: a path, "auto" (`<output stem>_clip.mp4`) or None.
        workspace, renderer, force, progress, callback, cancel: as in `translate` (`cancel` stops the translation
            of the clip at its next safe point; the same call again resumes).
        **overrides: config options by leaf name or dotted path.

    Returns:
        An `AnimationResult`.

    Raises:
        InputNotFoundError: the image or depth file is missing.
        VideoReadError: the image or depth map is not an image.
        ConfigError: `K` longer than the clip, an unknown motion, seconds/fps out of range, a clip of fewer than 2 or more than `MAX_FRAMES`
            frames, a path with impossible values (or one that leaves the image), "orbit" without a depth map.
        OutputPathError: the output or clip video cannot be written, or either exists and rerender did not write it
            (without `overwrite`).
        MissingDependencyError: "orbit" without `depth` when the `annotators` extra is not importable.
        And whatever `translate` raises.
    """
    # 1. Check every input before any expensive work.
    if motion not in MOTIONS:
        raise ConfigError(f"`motion` must be one of {', '.join(MOTIONS)}, got {motion!r}")
    if path is not None and motion != "path":  # the path would be silently ignored
        raise ConfigError(
            f"a `path` is given but `motion` is {motion!r}; use motion 'path' to follow it, or drop the path"
        )
    if depth is not None and motion != "orbit":  # so would the depth map (only the orbit's parallax uses one)
        raise ConfigError(
            f"a `depth` map is given but `motion` is {motion!r}; only 'orbit' uses it: use motion 'orbit', "
            "or drop the depth map"
        )
    if amount is not None and motion == "path":  # and the amount (a path's keyframes say how far it goes)
        raise ConfigError("`amount` does not apply to motion 'path' (its keyframes say how far it goes); drop it")
    check_progress_arguments(callback, cancel)
    check_flags(force=force, overwrite=overwrite, progress=progress)
    if workspace is not None:
        check_input_path(workspace, "workspace")
    for name, value, low, high in (("seconds", seconds, 0, 3600), ("fps", fps, 0, 240)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not low < value <= high
        ):
            raise ConfigError(f"`{name}` must be a number in ({low}, {high}], got {value!r}")
    frame_count = round(seconds * fps)
    if not 2 <= frame_count <= MAX_FRAMES:
        raise ConfigError(
            f"`seconds` × `fps` must give 2 to {MAX_FRAMES} frames, got {seconds} s × {fps} fps = {frame_count}"
        )
    still = read_still(image)
    disparity = read_depth(depth) if depth is not None else None
    # the checks every entry point shares (`preflight.check_run`): options, renderer, output, translator; the
    # model's weights and style inputs once the camera move is known to be possible (below)
    checked = check_run(
        config,
        prompt=prompt,
        K=K,
        overrides={**overrides, "output.fps": float(fps)},
        output=output,
        inputs=[image] if not isinstance(image, np.ndarray) else [],
        renderer=renderer,
        pipeline=pipeline,
        check_model=False,
        overwrite=overwrite,
    )
    config = checked.config
    if any(dataclasses.astuple(config.video.crop)):
        raise ConfigError(
            f"`video.crop` must be 0 for animate (crop the still instead), got {dataclasses.astuple(config.video.crop)}"
        )
    # a default interval longer than the clip is left to `select_keyframes`, which puts keyframes on the first and
    # last frames (shortening it to the clip would leave the end propagated one way from the anchor)
    if K is not None and K > frame_count:
        raise ConfigError(f"`K` must be ≤ the clip's {frame_count} frames ({seconds} s × {fps} fps), got {K}")
    video = config.video
    size = compute_output_size(
        still.shape[1], still.shape[0], video.resolution, video.resize_side, video.size_multiple
    )
    if motion == "orbit" and disparity is None:  # MiDaS on the model's device (`model.device: cuda:1`: not cuda:0)
        disparity = _depth_from_annotator(still, helper_device(config, pipeline))
    camera_path = motion_path(motion, frame_count, size, amount, path=path, disparity=disparity)
    check_model_inputs(checked.config, renderer=checked.renderer, pipeline=pipeline)  # before the clip is made
    inputs = [image] if not isinstance(image, np.ndarray) else []
    output_path = absolute_path(checked.output)  # resolved once, as `translate` does
    clip_path = output_path.with_name(output_path.stem + "_clip.mp4") if clip_output == "auto" else clip_output
    if clip_path is not None:  # the rule of every output (`check_run`): only a video rerender wrote is replaced
        clip_path = check_output_path(
            clip_path,
            [*inputs, output_path],
            name="clip video" if clip_output == "auto" else "`clip_output`",
            overwrite=overwrite,
            remedy="move it away, leave the clip out (`clip_output=None`), or pass `overwrite=True` to replace it",
        )
    frames_folder = _clip_folder(output_path)
    from rerender.workflow.stages import default_workspace
    from rerender.workflow.workspace import check_workspace_root

    check_workspace_root(workspace if workspace is not None else default_workspace(output_path, frames_folder))
    # 2. The clip: every frame sampled from the still along the path, stored losslessly (the translation's input).
    frames_folder.mkdir(exist_ok=True)
    for stale in frames_folder.iterdir():
        if int(stale.stem) >= frame_count:
            stale.unlink()

    def rendered():
        for index, frame in enumerate(render_clip(still, camera_path)):
            write_image(frame, frames_folder / f"{index:05d}.png")
            yield frame

    optical_flow = KnownMotionFlow(camera_path, rendered())
    if clip_path is not None:
        frame_files = sorted(frames_folder.iterdir())
        write_video(
            (read_image(file) for file in frame_files), clip_path, fps=fps, crf=config.output.crf, inputs=inputs
        )

    # 3. Translate it with the move's exact flow; work kept for an earlier clip of ours (another still, move,
    #    length or size) is for frames that are no more, so it starts over as the clip did.
    translation = translate(
        frames_folder,
        output=output_path,
        config=config,
        pipeline=pipeline,
        workspace=workspace,
        renderer=renderer,
        optical_flow=optical_flow,
        force=force,
        on_change="restart",
        progress=progress,
        callback=callback,
        cancel=cancel,
    )
    return AnimationResult(translation, clip_path, frames_folder, optical_flow)
