"""Frame geometry: the processing size, fitting a frame into it without distortion (and back), crop, resize."""

from __future__ import annotations

import logging
from typing import Literal

import cv2
import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "ASPECT_TOLERANCE",
    "compute_output_size",
    "fit_size",
    "fit_frame",
    "unfit_frame",
    "crop_frame",
    "resize_frame",
    "letterbox_frame",
    "preprocess_frame",
]


ASPECT_TOLERANCE = 0.01
"""Largest relative aspect change that `fit_frame` absorbs by stretching; beyond it, it crops or pads instead."""


def compute_output_size(
    width: int,
    height: int,
    resolution: int = 512,
    resize_side: Literal["long", "short"] = "long",
    size_multiple: int = 8,
) -> tuple[int, int]:
    """Size after resizing so the chosen side becomes `resolution`, both sides rounded to `size_multiple`.

    Each side is rounded to the nearest multiple on its own, so a side moves by at most `size_multiple / 2`
    pixels: with the default multiple of 8 (all that SD 1.5 in diffusers needs) a 540×960 portrait clip
    becomes 288×512, exactly its aspect. `fit_frame` puts a frame into this size without distortion.

    Args:
        width: input width in pixels (after cropping).
        height: input height in pixels (after cropping).
        resolution: target length of the chosen side, before rounding.
        resize_side: "long" (default, the official code since 2023-10) or "short" (the paper, FRESCO).
        size_multiple: both sides are rounded to the nearest multiple of this (8 for SD), at least one multiple.

    Returns:
        `(width, height)` of the output.

    Example:
        >>> compute_output_size(540, 960, 512, "long", 8)
        (288, 512)
        >>> compute_output_size(780, 506, 512, "short", 8)
        (792, 512)
    """
    if width < 1 or height < 1:
        raise ValueError(f"`width` and `height` must be ≥ 1, got {width}×{height}")
    if resize_side not in ("long", "short"):
        raise ValueError(f"`resize_side` must be 'long' or 'short', got {resize_side!r}")
    if size_multiple < 1:
        raise ValueError(f"`size_multiple` must be ≥ 1, got {size_multiple}")
    side = max(width, height) if resize_side == "long" else min(width, height)
    scale = resolution / side
    new_width = max(size_multiple, int(round(width * scale / size_multiple)) * size_multiple)
    new_height = max(size_multiple, int(round(height * scale / size_multiple)) * size_multiple)
    # a side shorter than one multiple is clamped up to it, so an extreme aspect cannot be kept: say so
    distortion = (new_width / new_height) / (width / height)
    if max(distortion, 1 / distortion) > 1.25:
        logger.warning(
            "a %d×%d input becomes %d×%d: its aspect ratio (1:%.0f) cannot be kept at `resolution` %d in "
            "multiples of %d (the short side is clamped to one multiple; %.1f× off); crop it or raise "
            "`resolution`",
            width,
            height,
            new_width,
            new_height,
            max(width, height) / min(width, height),
            resolution,
            size_multiple,
            max(distortion, 1 / distortion),
        )
    return new_width, new_height


def fit_size(width: int, height: int, size: tuple[int, int], tolerance: float = ASPECT_TOLERANCE) -> tuple[int, int]:
    """The size a `width`×`height` frame is scaled to before `fit_frame` centres it in `size`.

    When `size` has the frame's aspect within `tolerance` (the usual case: a 960×506 clip in 512×272 differs
    by 0.8 %), the frame is simply resized to `size`. Otherwise (very wide or small frames, where rounding to
    the multiple moves a side by several per cent) the frame keeps its aspect: it is scaled by
    `(W + H) / (width + height)`, the scale that changes neither side by more than rounding did, and
    `fit_frame` centre-crops or edge-pads each side by the few pixels left over.

    Args:
        width, height: the frame's size.
        size: `(W, H)` the frame must fill, e.g. from `compute_output_size`.
        tolerance: largest relative aspect change absorbed by stretching.

    Returns:
        `(scaled_width, scaled_height)`; equal to `size` when stretching.

    Example:
        >>> fit_size(960, 506, (512, 272))
        (512, 272)
        >>> fit_size(1920, 200, (512, 56))
        (514, 54)
    """
    target_width, target_height = size
    if width < 1 or height < 1 or target_width < 1 or target_height < 1:
        raise ValueError(f"sizes must be ≥ 1, got {width}×{height} into {target_width}×{target_height}")
    if abs((target_width / target_height) / (width / height) - 1) <= tolerance:
        return target_width, target_height
    scale = (target_width + target_height) / (width + height)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def fit_frame(frame: np.ndarray, size: tuple[int, int], tolerance: float = ASPECT_TOLERANCE) -> np.ndarray:
    """Resize an `(H, W, C)` frame into `size = (width, height)` without distorting it by more than `tolerance`.

    The frame is resized to `fit_size(...)`, then centre-cropped or padded (edge pixels repeated) to `size`:
    at most `size_multiple / 2` pixels per side for sizes from `compute_output_size`.

    Shape:
        - frame: `(H, W, C)` (or `(H, W)`), any dtype OpenCV resizes.
        - returns: `(size[1], size[0], C)`.
    """
    scaled_width, scaled_height = fit_size(frame.shape[1], frame.shape[0], size, tolerance)
    return _reframe(resize_frame(frame, (scaled_width, scaled_height)), size)


def _reframe(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop where `frame` is larger than `size = (width, height)`, repeat its edges where it is smaller."""
    target_width, target_height = size
    height, width = frame.shape[:2]
    if (width, height) == (target_width, target_height):
        return frame
    left, top = max(0, (width - target_width) // 2), max(0, (height - target_height) // 2)
    frame = frame[top : top + min(height, target_height), left : left + min(width, target_width)]
    pad_x, pad_y = max(0, target_width - width), max(0, target_height - height)
    if pad_x or pad_y:
        frame = cv2.copyMakeBorder(
            np.ascontiguousarray(frame),
            pad_y // 2,
            pad_y - pad_y // 2,
            pad_x // 2,
            pad_x - pad_x // 2,
            cv2.BORDER_REPLICATE,
        )
    return np.ascontiguousarray(frame)


def unfit_frame(image: np.ndarray, size: tuple[int, int], tolerance: float = ASPECT_TOLERANCE) -> np.ndarray:
    """The inverse of `fit_frame`: bring an image made at the processing size back to a frame of `size`.

    Used to upscale keyframes to the source's size: the crop or padding of `fit_frame` is undone (cropped
    borders are filled by repeating the edge), then the image is resized to `size = (width, height)`.

    Shape:
        - image: `(h, w, C)` at the processing size.
        - returns: `(size[1], size[0], C)`.
    """
    height, width = image.shape[:2]
    scaled_width, scaled_height = fit_size(size[0], size[1], (width, height), tolerance)
    # The processing-size picture is the scaled source framed into (width, height): undo that framing first.
    return resize_frame(_reframe(image, (scaled_width, scaled_height)), size)


def letterbox_frame(frame: np.ndarray, size: tuple[int, int], fill: int = 0) -> np.ndarray:
    """Fit an `(H, W, C)` frame inside `size = (width, height)` keeping its aspect, bars of `fill` around it.

    What players do when the picture's size changes mid-stream: the new picture is scaled to fit the window
    (letterbox: bars above and below; pillarbox: left and right), never stretched.

    Shape:
        - frame: `(H, W, C)` uint8.
        - returns: `(size[1], size[0], C)`.

    Example:
        >>> letterbox_frame(np.full((10, 40, 3), 255, np.uint8), (20, 20))[:, 10].ravel()[::3].tolist()
        [0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0]
    """
    width, height = size
    scale = min(width / frame.shape[1], height / frame.shape[0])
    inner = (
        max(1, min(width, int(round(frame.shape[1] * scale)))),
        max(1, min(height, int(round(frame.shape[0] * scale)))),
    )
    scaled = resize_frame(frame, inner)
    canvas = np.full((height, width) + frame.shape[2:], fill, dtype=frame.dtype)
    left, top = (width - inner[0]) // 2, (height - inner[1]) // 2
    canvas[top : top + inner[1], left : left + inner[0]] = scaled
    return canvas


def crop_frame(frame: np.ndarray, left: int = 0, top: int = 0, right: int = 0, bottom: int = 0) -> np.ndarray:
    """Remove pixels from each border of an `(H, W, C)` frame.

    Raises:
        ValueError: the crop leaves nothing of the frame.
    """
    height, width = frame.shape[:2]
    if left + right >= width or top + bottom >= height:
        raise ValueError(
            f"`crop` (left={left}, top={top}, right={right}, bottom={bottom}) must leave at least 1 px of the "
            f"{width}×{height} frame"
        )
    return frame[top : height - bottom, left : width - right]


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an `(H, W, C)` frame to `size = (width, height)`: area filter when shrinking, Lanczos when enlarging."""
    width, height = size
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrinking = width * height < frame.shape[0] * frame.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    return cv2.resize(frame, (width, height), interpolation=interpolation)


def preprocess_frame(
    frame: np.ndarray,
    crop: tuple[int, int, int, int] = (0, 0, 0, 0),
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Crop `(left, top, right, bottom)` then fit into `size = (width, height)` (`fit_frame`), or keep the cropped size."""
    frame = crop_frame(frame, *crop)
    return fit_frame(frame, size) if size is not None else np.ascontiguousarray(frame)
