"""Camera moves over a still image, the clip they make, and the exact optical flow between any two of its frames.

A move maps every pixel of frame ``t`` to the point of the still it shows: ``frame_t(q) = still(S_t(q))``. Points
are in *frame units*: pixels of the clip's reference size ``(W, H)``, centred, so that the still spans
``[-W/2, W/2] × [-H/2, H/2]`` and a pixel ``(x, y)`` of a frame of any size ``(W', H')`` sits at
``((x + 0.5)·W/W' − W/2, (y + 0.5)·H/H' − H/2)`` (pixel centres as `cv2.resize` places them). Two moves:

* `AffinePath`: per frame a zoom ``s``, a rotation ``θ`` and a view centre ``c``: ``S_t(q) = c_t + R(θ_t)·q / s_t``;
  zoom in/out, pans and keyframed paths (`path_from_keyframes`).
* `ParallaxPath`: a sideways swing whose on-screen shift grows with the disparity of a depth map (near things move
  more than far ones, the focus plane stays put), an orbit-like 2.5-D parallax:
  ``S_t(q) = q / s + σ_t·v(q)``, ``v(q) = ((d(q / s) − focus)·W, 0)``.

Because ``S_t`` is known, the flow needs no estimator: the point shown at ``q`` in frame b is shown in frame a at
``S_a⁻¹(S_b(q))``. `KnownMotionFlow` returns these flows through the `rerender.flow.FlowEstimator` interface, so
`rerender.translate(..., optical_flow=...)` fuses and propagates with exact flow.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from rerender.errors import ConfigError, FlowInputError, InputNotFoundError

__all__ = [
    "MOTIONS",
    "PATH_KEYS",
    "CameraPath",
    "AffinePath",
    "ParallaxPath",
    "PathKeyframe",
    "motion_path",
    "parse_path",
    "path_from_keyframes",
    "render_clip",
    "KnownMotionFlow",
]

MOTIONS = ("zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down", "orbit", "path")
"""Names of the moves: ``"orbit"`` needs a depth map, ``"path"`` a keyframed path."""

DEFAULT_AMOUNT = {
    "zoom-in": 0.25,
    "zoom-out": 0.25,
    "pan-left": 0.2,
    "pan-right": 0.2,
    "pan-up": 0.2,
    "pan-down": 0.2,
    "orbit": 0.03,
}
"""How far each move goes by default: the zoom gained (0.25 = ×1.25), the pan's zoom (the pan crosses the margin it
makes), the orbit's swing as a fraction of the width."""

PATH_KEYS = ("t", "scale", "rotation", "x", "y")
"""Keys of a path keyframe: time as a fraction of the clip in [0, 1], zoom (1 = the whole still), rotation in
degrees (of the camera, counter-clockwise: the picture turns clockwise), view centre as a fraction of the still's width and height (0 = centre)."""

_MAX_SCALE = 100.0


class CameraPath(Protocol):
    """A camera move over a still: where each frame's pixels come from, and back."""

    frame_count: int
    size: tuple[int, int]
    """Reference size ``(W, H)`` of the clip in pixels; the frame units are its pixels."""

    def source_points(self, index: int, points: np.ndarray) -> np.ndarray:
        """``S_t(q)``: the still's points (frame units) shown at `points` of frame `index`. Shape: (..., 2)."""
        ...

    def view_points(self, index: int, points: np.ndarray) -> np.ndarray:
        """``S_t⁻¹(u)``: where frame `index` shows the still's `points`. Shape: (..., 2)."""
        ...

    def digest(self) -> str:
        """A short hash of everything that changes the move."""
        ...


@dataclass(frozen=True)
class PathKeyframe:
    """One keyframe of a camera path (see `PATH_KEYS`)."""

    t: float
    """Time as a fraction of the clip, 0 = first frame, 1 = last."""
    scale: float = 1.0
    """Zoom: 1 shows the whole still, 2 shows half its width."""
    rotation: float = 0.0
    """Rotation of the camera in degrees, counter-clockwise (the picture turns clockwise on screen)."""
    x: float = 0.0
    """Horizontal view centre as a fraction of the still's width, 0 = centre, positive = right."""
    y: float = 0.0
    """Vertical view centre as a fraction of the still's height, 0 = centre, positive = down."""


class AffinePath:
    """Per-frame zoom, rotation and view centre: ``S_t(q) = c_t + R(θ_t)·q / s_t``.

    Args:
        scales: zoom per frame (> 0).
        rotations: camera rotation per frame in degrees, counter-clockwise (the picture turns clockwise).
        centres: view centre per frame in frame units, ``(T, 2)``.
        size: reference size ``(W, H)``.

    Raises:
        ConfigError: lengths differ, non-finite values, a zoom ≤ 0, or a view that leaves the still at some frame
            (black borders); the message names the frame and the smallest zoom that fits.
    """

    def __init__(
        self, scales: Sequence[float], rotations: Sequence[float], centres: np.ndarray, size: tuple[int, int]
    ) -> None:
        self.scales = np.asarray(scales, dtype=np.float64)
        self.rotations = np.asarray(rotations, dtype=np.float64)
        self.centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
        self.size = (int(size[0]), int(size[1]))
        self.frame_count = len(self.scales)
        if not (len(self.rotations) == len(self.centres) == self.frame_count >= 1):
            raise ConfigError(
                f"a camera path needs one zoom, rotation and centre per frame, got "
                f"{len(self.scales)}, {len(self.rotations)} and {len(self.centres)}"
            )
        for name, values in (("scale", self.scales), ("rotation", self.rotations), ("x/y", self.centres)):
            if not np.all(np.isfinite(values)):
                raise ConfigError(
                    f"camera path `{name}` must be finite, got {values[~np.isfinite(values)][:3].tolist()}"
                )
        if np.any(self.scales <= 0):
            raise ConfigError(f"camera path `scale` must be > 0, got {float(self.scales.min())}")
        for index in range(self.frame_count):
            needed = self._smallest_fitting_scale(index)
            if self.scales[index] < needed * (1 - 1e-9):
                raise ConfigError(
                    f"the camera path leaves the image at frame {index} (scale {self.scales[index]:.4g}, rotation "
                    f"{self.rotations[index]:.4g}°, centre x={self.centres[index, 0] / self.size[0]:.4g}, "
                    f"y={self.centres[index, 1] / self.size[1]:.4g}): the view would show black borders; it needs "
                    f"scale ≥ {needed:.4g} there, or a centre closer to 0"
                )

    def _smallest_fitting_scale(self, index: int) -> float:
        """The smallest zoom at which the rotated view, at this frame's centre, stays inside the still."""
        width, height = self.size
        corners = np.array([[-width, -height], [width, -height], [width, height], [-width, height]]) / 2
        rotated = corners @ _rotation(self.rotations[index]).T  # view corners at zoom 1, relative to the centre
        room = np.array([width / 2, height / 2]) - np.abs(self.centres[index])
        if np.any(room <= 0):
            return math.inf
        return float(np.max(np.abs(rotated) / room))

    def source_points(self, index: int, points: np.ndarray) -> np.ndarray:
        return self.centres[index] + points @ _rotation(self.rotations[index]).T / self.scales[index]

    def view_points(self, index: int, points: np.ndarray) -> np.ndarray:
        return (points - self.centres[index]) @ _rotation(-self.rotations[index]).T * self.scales[index]

    def digest(self) -> str:
        return _digest(self.size, self.scales, self.rotations, self.centres)


class ParallaxPath:
    """A sideways swing with depth parallax: ``S_t(q) = q / s + σ_t·v(q)``, ``v(q) = ((d(q/s) − focus)·W, 0)``.

    ``d`` is the disparity (near = 1, far = 0), smoothed so the warp stays continuous; ``focus`` its median, which
    stays still on screen. ``σ_t`` swings from ``−amount`` to ``+amount`` on a half sine (slow at both ends); the
    zoom ``s = 1 / (1 − 2·amount)`` crops the margin the swing needs, so no border shows.

    Args:
        disparity: ``(h, w)`` float, larger = nearer (MiDaS and ControlNet depth maps are disparity); any size.
        frame_count: frames in the clip.
        size: reference size ``(W, H)``.
        amount: the largest shift as a fraction of the width, in (0, 0.25).

    The warp folds (two points of the view show one point of the still, and no flow is exact) where
    ``1 + σ_t·∂v/∂q_x·s ≤ 0``: with the bilinear depth samples, ``∂v/∂q_x·s = Δd·w`` (``Δd`` the steepest step
    between neighbouring columns of the smoothed map, ``w`` its width), so an amount is accepted only while
    ``amount·Δd·w ≤ FOLD_MARGIN``, `max_amount`. Below that the inverse's fixed point is a contraction by
    ``c = amount·Δd·w`` and enough steps are taken for 0.001 px.

    Raises:
        ConfigError: `amount` out of range or folding this depth map (naming the largest that does not), or a
            disparity map that is not 2-D, finite and non-constant.
    """

    FOLD_MARGIN = 0.9
    """The largest contraction ``amount·Δd·w`` accepted: 1 folds; 0.9 keeps the inverse's steps converging."""

    def __init__(self, disparity: np.ndarray, frame_count: int, size: tuple[int, int], amount: float = 0.03) -> None:
        if not 0 < amount < 0.25:
            raise ConfigError(f"the orbit's `amount` must be in (0, 0.25) (a fraction of the width), got {amount}")
        disparity = np.asarray(disparity, dtype=np.float32)
        if disparity.ndim == 3:
            disparity = disparity.mean(axis=2)
        if disparity.ndim != 2 or not np.all(np.isfinite(disparity)) or np.ptp(disparity) == 0:
            raise ConfigError("the depth map must be a finite 2-D map with some variation (larger = nearer)")
        disparity = (disparity - disparity.min()) / np.ptp(disparity)
        sigma = 0.02 * max(disparity.shape)  # smooth depth edges: a continuous warp, no tearing
        self.disparity = cv2.GaussianBlur(disparity, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        self.focus = float(np.median(self.disparity))
        steepness = (
            float(np.abs(np.diff(self.disparity, axis=1)).max() * self.disparity.shape[1])
            if self.disparity.shape[1] > 1
            else 0.0
        )
        self.max_amount = min(0.2499, self.FOLD_MARGIN / steepness) if steepness > 0 else 0.2499
        """The largest orbit `amount` that does not fold the warp at this depth map's steepest edge."""
        if amount > self.max_amount:
            raise ConfigError(
                f"the orbit's `amount` {amount:g} would fold the picture over itself at the depth map's steepest edge "
                f"(near and far would cross, and no flow can be exact there); this depth map allows at most "
                f"{math.floor(self.max_amount * 1000) / 1000:.3f}: use a smaller amount (--amount) or a smoother "
                "depth map"
            )
        contraction = amount * steepness
        size_px = max(size) * amount / (1 - 2 * amount) + 1
        steps = math.ceil(math.log(1e-3 / size_px) / math.log(contraction)) if contraction > 0 else 1
        self.iterations = max(1, steps)
        """Fixed-point steps of the inverse ``S_t⁻¹``: the error shrinks by ``amount·Δd·w`` per step."""
        self.size = (int(size[0]), int(size[1]))
        self.frame_count = int(frame_count)
        self.amount = float(amount)
        self.scale = 1 / (1 - 2 * amount)
        phase = np.linspace(-0.5, 0.5, self.frame_count) if self.frame_count > 1 else np.zeros(1)
        self.swings = amount * np.sin(np.pi * phase)  # σ_t

    def _displacement(self, points: np.ndarray) -> np.ndarray:
        """``v(q)`` in frame units. Shape: (..., 2) → (..., 2)."""
        width, height = self.size
        base = points / self.scale  # where the unmoved view shows q, in frame units
        depth_height, depth_width = self.disparity.shape
        map_x = ((base[..., 0] + width / 2) * depth_width / width - 0.5).astype(np.float32)
        map_y = ((base[..., 1] + height / 2) * depth_height / height - 0.5).astype(np.float32)
        # cv2.remap takes 2-D maps under 32767 per side: lay any batch of points out in rows of 1024
        count = map_x.size
        padded = -(-count // 1024) * 1024
        rows_x, rows_y = (
            np.resize(np.pad(m.ravel(), (0, padded - count)), (padded // 1024, 1024)) for m in (map_x, map_y)
        )
        sampled = cv2.remap(self.disparity, rows_x, rows_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        shift = (sampled.ravel()[:count].reshape(map_x.shape).astype(np.float64) - self.focus) * width
        return np.stack([shift, np.zeros_like(shift)], axis=-1)

    def source_points(self, index: int, points: np.ndarray) -> np.ndarray:
        return points / self.scale + self.swings[index] * self._displacement(points)

    def view_points(self, index: int, points: np.ndarray) -> np.ndarray:
        view = points * self.scale
        for _ in range(self.iterations):  # q = s·(u − σ·v(q)); a contraction for a smoothed depth map
            view = self.scale * (points - self.swings[index] * self._displacement(view))
        return view

    def digest(self) -> str:
        return _digest(self.size, self.swings, self.scale, self.disparity[:: max(1, self.disparity.shape[0] // 64)])


def _rotation(degrees: float) -> np.ndarray:
    """2×2 rotation by `degrees` counter-clockwise as seen on screen (y points down)."""
    angle = math.radians(degrees)
    return np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])


def _digest(*parts: object) -> str:
    digest = hashlib.sha1()
    for part in parts:
        digest.update(np.ascontiguousarray(np.asarray(part, dtype=np.float64)).tobytes())
    return digest.hexdigest()[:12]


# --------------------------------------------------------------------------------------------------------
# building paths
# --------------------------------------------------------------------------------------------------------


def path_from_keyframes(keyframes: Sequence[PathKeyframe], frame_count: int, size: tuple[int, int]) -> AffinePath:
    """Interpolate keyframes to every frame: zoom geometrically (a steady zoom speed), the rest linearly.

    Args:
        keyframes: at least one, times strictly increasing in [0, 1]; before the first and after the last the
            camera holds still.
        frame_count: frames in the clip.
        size: reference size ``(W, H)``.

    Returns:
        An `AffinePath`.

    Raises:
        ConfigError: times out of [0, 1] or not increasing, a zoom ≤ 0, or a path that leaves the image.
    """
    if not keyframes:
        raise ConfigError("a camera path needs at least one keyframe")
    times = np.array([key.t for key in keyframes], dtype=np.float64)
    for key in keyframes:
        for name in PATH_KEYS:
            value = getattr(key, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"camera path `{name}` must be a finite number, got {value!r}")
        if not 0 <= key.t <= 1:
            raise ConfigError(f"camera path `t` must be in [0, 1] (a fraction of the clip), got {key.t}")
        if not 0 < key.scale <= _MAX_SCALE:
            raise ConfigError(
                f"camera path `scale` must be in (0, {_MAX_SCALE:g}] (1 = the whole image), got {key.scale}"
            )
        if not (abs(key.x) < 0.5 and abs(key.y) < 0.5):
            raise ConfigError(
                f"camera path `x` and `y` must be in (-0.5, 0.5) (fractions of the image from its "
                f"centre), got x={key.x}, y={key.y}"
            )
    if np.any(np.diff(times) <= 0):
        raise ConfigError(f"camera path times `t` must strictly increase, got {times.tolist()}")
    clip_times = np.linspace(0, 1, frame_count) if frame_count > 1 else np.zeros(1)
    log_scales = np.interp(clip_times, times, np.log([key.scale for key in keyframes]))
    rotations = np.interp(clip_times, times, [key.rotation for key in keyframes])
    centres = np.stack(
        [
            np.interp(clip_times, times, [key.x for key in keyframes]) * size[0],
            np.interp(clip_times, times, [key.y for key in keyframes]) * size[1],
        ],
        axis=1,
    )
    return AffinePath(np.exp(log_scales), rotations, centres, size)


def parse_path(spec: str | os.PathLike | Sequence[Mapping] | Mapping) -> list[PathKeyframe]:
    """Read a keyframed camera path from a JSON/YAML file, an inline spec, or Python data.

    Inline: keyframes separated by ``;``, each ``key=value`` pairs separated by ``,``:
    ``"t=0,scale=1;t=1,scale=1.5,rotation=10,x=0.1"``. Files and data: a list of mappings, or a mapping with a
    ``keyframes`` list, using the keys in `PATH_KEYS`.

    Raises:
        InputNotFoundError: a file that does not exist.
        ConfigError: unreadable text, unknown keys (the nearest valid one is suggested), values that are not numbers.
    """
    import difflib

    data: object = spec
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if Path(text).suffix.lower() in (".json", ".yaml", ".yml"):
            if not Path(text).is_file():
                raise InputNotFoundError(f"camera path file not found: {text!r}")
            import yaml  # JSON is YAML; safe_load never runs code

            try:
                data = yaml.safe_load(Path(text).read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as error:
                raise ConfigError(f"cannot read the camera path {text!r}: {error}") from error
        else:
            data = []
            for part in filter(None, (piece.strip() for piece in text.split(";"))):
                entry = {}
                for pair in filter(None, (piece.strip() for piece in part.split(","))):
                    key, equals, value = pair.partition("=")
                    if not equals:
                        raise ConfigError(
                            f"camera path entries are key=value, got {pair!r} in {text!r} "
                            "(e.g. 't=0,scale=1;t=1,scale=1.5,rotation=10')"
                        )
                    try:
                        entry[key.strip()] = float(value)
                    except ValueError as error:
                        raise ConfigError(
                            f"camera path `{key.strip()}` must be a number, got {value.strip()!r}"
                        ) from error
                data.append(entry)
    if isinstance(data, Mapping):
        data = data.get("keyframes")
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)) or not data:
        raise ConfigError(
            f"a camera path is a non-empty list of keyframes (mappings with keys {', '.join(PATH_KEYS)}), got {spec!r}"
        )
    keyframes = []
    for entry in data:
        if not isinstance(entry, Mapping):
            raise ConfigError(f"each camera path keyframe must be a mapping of {', '.join(PATH_KEYS)}, got {entry!r}")
        for key in entry:
            if key not in PATH_KEYS:
                nearest = difflib.get_close_matches(str(key), PATH_KEYS, n=1)
                hint = f"; did you mean {nearest[0]!r}?" if nearest else ""
                raise ConfigError(f"unknown camera path key {key!r} (valid: {', '.join(PATH_KEYS)}){hint}")
        if "t" not in entry:
            raise ConfigError(f"every camera path keyframe needs a time `t` in [0, 1], got {dict(entry)!r}")
        keyframes.append(PathKeyframe(**{key: entry[key] for key in entry}))
    return keyframes


def motion_path(
    motion: str,
    frame_count: int,
    size: tuple[int, int],
    amount: float | None = None,
    *,
    path: object = None,
    disparity: np.ndarray | None = None,
) -> CameraPath:
    """The camera path of a named move (`MOTIONS`).

    Args:
        motion: ``"zoom-in"``, ``"zoom-out"``, ``"pan-left|right|up|down"``, ``"orbit"`` (needs `disparity`) or
            ``"path"`` (needs `path`, see `parse_path`).
        frame_count: frames in the clip (≥ 1).
        size: reference size ``(W, H)``.
        amount: how far the move goes (`DEFAULT_AMOUNT`); zoom and pan: > 0 and ≤ 3, orbit: in (0, 0.25).
        path: keyframes for ``"path"``.
        disparity: depth map (larger = nearer) for ``"orbit"``.

    Raises:
        ConfigError: an unknown move, a bad amount, a missing path or depth map, or an impossible path.
    """
    if motion not in MOTIONS:
        raise ConfigError(f"`motion` must be one of {', '.join(MOTIONS)}, got {motion!r}")
    if motion == "path":
        if path is None:
            raise ConfigError("motion 'path' needs a `path` (a JSON/YAML file or 't=0,scale=1;t=1,scale=1.5')")
        keyframes = (
            path if isinstance(path, list) and all(isinstance(k, PathKeyframe) for k in path) else parse_path(path)
        )
        return path_from_keyframes(keyframes, frame_count, size)
    amount = DEFAULT_AMOUNT[motion] if amount is None else amount
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
        raise ConfigError(f"`amount` must be a number, got {amount!r}")
    if motion == "orbit":
        if disparity is None:
            raise ConfigError(
                "motion 'orbit' needs a depth map: pass `depth` (an image or .npy file, larger = nearer)"
            )
        return ParallaxPath(disparity, frame_count, size, amount)
    if not 0 < amount <= 3:
        meaning = "the zoom gained" if motion.startswith("zoom") else "the zoom the pan crosses the margin of"
        raise ConfigError(f"`amount` of {motion!r} must be in (0, 3] ({meaning}, 0.25 = ×1.25), got {amount}")
    zoom = 1 + amount
    if motion in ("zoom-in", "zoom-out"):
        ends = [PathKeyframe(0, 1.0), PathKeyframe(1, zoom)]
        if motion == "zoom-out":
            ends = [PathKeyframe(0, zoom), PathKeyframe(1, 1.0)]
        return path_from_keyframes(ends, frame_count, size)
    margin = 0.5 - 0.5 / zoom  # the furthest the view centre can go at this zoom
    sign = -1 if motion in ("pan-left", "pan-up") else 1
    axis = "x" if motion in ("pan-left", "pan-right") else "y"
    start, end = {axis: -sign * margin}, {axis: sign * margin}
    return path_from_keyframes([PathKeyframe(0, zoom, **start), PathKeyframe(1, zoom, **end)], frame_count, size)


# --------------------------------------------------------------------------------------------------------
# rendering and flow
# --------------------------------------------------------------------------------------------------------


def _pixel_points(size: tuple[int, int], reference: tuple[int, int]) -> np.ndarray:
    """Frame-unit points of every pixel centre of a frame of `size`. Shape: (H, W, 2)."""
    width, height = size
    x = (np.arange(width) + 0.5) * reference[0] / width - reference[0] / 2
    y = (np.arange(height) + 0.5) * reference[1] / height - reference[1] / 2
    grid_x, grid_y = np.meshgrid(x, y)
    return np.stack([grid_x, grid_y], axis=-1)


def _to_pixels(points: np.ndarray, size: tuple[int, int], reference: tuple[int, int]) -> np.ndarray:
    """Frame units → pixel coordinates of a frame (or image) of `size`. Shape: (..., 2)."""
    scale = np.array([size[0] / reference[0], size[1] / reference[1]])
    return (points + np.array(reference) / 2) * scale - 0.5


def render_clip(still: np.ndarray, path: CameraPath):
    """Yield the clip's frames: each pixel sampled from the still where the path says, sub-pixel (bicubic).

    The still is first reduced (area filter) to the detail the closest view needs, so zooming out does not alias.
    Samples a hair outside the still (a parallax edge) reflect instead of turning black.

    Args:
        still: RGB uint8 ``(h, w, 3)``.
        path: the camera path; frames have its reference size.

    Yields:
        RGB uint8 ``(H, W, 3)`` frames, `path.frame_count` of them.
    """
    width, height = path.size
    zoom = float(np.max(getattr(path, "scales", getattr(path, "scale", 1.0))))
    detail = (max(1, round(width * zoom)), max(1, round(height * zoom)))
    if detail[0] < still.shape[1] and detail[1] < still.shape[0]:
        still = cv2.resize(still, detail, interpolation=cv2.INTER_AREA)
    still_size = (still.shape[1], still.shape[0])
    points = _pixel_points(path.size, path.size)
    for index in range(path.frame_count):
        source = _to_pixels(path.source_points(index, points), still_size, path.size).astype(np.float32)
        frame = cv2.remap(still, source[..., 0], source[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
        yield frame


class KnownMotionFlow:
    """The exact optical flow of a clip made by a camera path, as a `rerender.flow.FlowEstimator`.

    `flows` gives the flow between two frames by index; calling the object with two frames (as `translate` does)
    first finds which frames of the clip they are, by their nearest 16×16 thumbnail, then returns `flows`. Frames
    of another size than the clip get the flow at their size.

    Args:
        path: the camera path that made the clip.
        frames: the clip's frames, RGB uint8 ``(H, W, 3)``, any iterable (to recognise them; only thumbnails are kept).

    Raises:
        ConfigError: the number of frames differs from the path's.

    Example:
        >>> path = motion_path("zoom-in", 3, (32, 24))
        >>> still = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
        >>> estimator = KnownMotionFlow(path, list(render_clip(still, path)))
        >>> forward, backward = estimator.flows(0, 2)
        >>> forward.shape
        (2, 24, 32)
    """

    thumbnail = 16

    def __init__(self, path: CameraPath, frames: Iterable[np.ndarray]) -> None:
        thumbnails = [self._thumbnail(np.asarray(frame, dtype=np.float32)) for frame in frames]  # streams a generator
        if len(thumbnails) != path.frame_count:
            raise ConfigError(f"`frames` must hold the path's {path.frame_count} frames, got {len(thumbnails)}")
        self.path = path
        self.name = f"camera-{path.digest()}"
        self._thumbnails = np.stack(thumbnails)

    def __repr__(self) -> str:
        return f"KnownMotionFlow(frames={self.path.frame_count}, size={self.path.size}, name={self.name!r})"

    def _thumbnail(self, frame: np.ndarray) -> np.ndarray:
        return cv2.resize(frame, (self.thumbnail, self.thumbnail), interpolation=cv2.INTER_AREA).ravel()

    def frame_index(self, frame: np.ndarray) -> int:
        """Which frame of the clip `frame` (RGB, 0–255, ``(H, W, 3)``, any size) is: the nearest thumbnail."""
        distances = np.sum((self._thumbnails - self._thumbnail(np.asarray(frame, dtype=np.float32))) ** 2, axis=1)
        return int(np.argmin(distances))

    def flows(self, source: int, target: int, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The flow source→target and target→source between frames of the clip, in pixels of `size`, x first.

        The point a pixel ``q`` of one frame shows is found in the other at ``S_other⁻¹(S_this(q))``.

        Args:
            source, target: frame indices.
            size: ``(W, H)`` of the frames the flow is for; `None` = the clip's size.

        Returns:
            ``(forward, backward)``, float32 ``(2, H, W)``.

        Raises:
            ConfigError: an index outside the clip.
        """
        for name, index in (("source", source), ("target", target)):
            if not 0 <= index < self.path.frame_count:
                raise ConfigError(f"`{name}` must be a frame index in [0, {self.path.frame_count}), got {index}")
        size = size or self.path.size
        points = _pixel_points(size, self.path.size)
        pixels = _to_pixels(points, size, self.path.size)
        result = []
        for start, end in ((source, target), (target, source)):
            moved = self.path.view_points(end, self.path.source_points(start, points))
            flow = _to_pixels(moved, size, self.path.size) - pixels  # (H, W, 2)
            result.append(np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32))
        return result[0], result[1]

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (source→target) and backward (target→source) flow; see `rerender.flow.FlowEstimator`.

        Shape:
            - source, target: (B, 3, H, W) RGB float in [0, 1], frames of the clip
            - Output: (B, 2, H, W), (B, 2, H, W)
        """
        if (
            not (isinstance(source, torch.Tensor) and isinstance(target, torch.Tensor))
            or source.ndim != 4
            or source.shape != target.shape
            or source.shape[1] != 3
        ):
            raise FlowInputError(
                "`source` and `target` must be torch.Tensors of one shape (B, 3, H, W), RGB in [0, 1]"
            )
        size = (source.shape[3], source.shape[2])
        forward, backward = [], []
        for source_frame, target_frame in zip(source, target, strict=True):
            indices = [
                self.frame_index(frame.permute(1, 2, 0).float().cpu().numpy() * 255)
                for frame in (source_frame, target_frame)
            ]
            flow_forward, flow_backward = self.flows(*indices, size=size)
            forward.append(torch.from_numpy(flow_forward))
            backward.append(torch.from_numpy(flow_backward))
        return torch.stack(forward).to(source.device), torch.stack(backward).to(source.device)
