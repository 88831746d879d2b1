"""Synthetic videos with known motion, so flow, occlusion and propagation have ground truth.

A scene is a stack of textured layers (a background and foreground objects), each moved by an affine
transform per frame. Because every layer's motion is exact, the true forward/backward optical flow and the
occlusion masks between consecutive frames follow from the transforms, with no estimation involved.

Motions: "translation" (background pans, a square slides), "rotation" (an object spins), "zoom" (an object
grows), "occluder" (a bar enters and covers part of the scene), and "mixed" (all of them at once).

Example:
    >>> from rerender.synthetic import make_synthetic_video
    >>> video = make_synthetic_video(num_frames=8, width=96, height=64, motion="translation")
    >>> video.frames.shape, video.forward_flow.shape, video.backward_occlusion.shape
    ((8, 64, 96, 3), (7, 64, 96, 2), (7, 64, 96))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from rerender.video.files import WRITER_TAG, _ffmpeg_url, atomic_output

__all__ = ["MOTIONS", "SyntheticVideo", "make_synthetic_video", "write_synthetic_video", "make_texture"]

MOTIONS = ("translation", "rotation", "zoom", "occluder", "mixed")
Motion = Literal["translation", "rotation", "zoom", "occluder", "mixed"]


@dataclass(frozen=True)
class SyntheticVideo:
    """Frames plus exact motion ground truth between each frame t and t+1.

    Shape:
        - frames: `(T, H, W, 3)` uint8 RGB.
        - forward_flow: `(T-1, H, W, 2)` float32, pixel p of frame t moves to p + flow in frame t+1 (x first).
        - backward_flow: `(T-1, H, W, 2)` float32, pixel p of frame t+1 came from p + flow in frame t.
        - forward_occlusion: `(T-1, H, W)` bool, pixels of frame t not visible at their destination in t+1.
        - backward_occlusion: `(T-1, H, W)` bool, pixels of frame t+1 not visible at their source in t.
    """

    frames: np.ndarray
    forward_flow: np.ndarray
    backward_flow: np.ndarray
    forward_occlusion: np.ndarray
    backward_occlusion: np.ndarray
    motion: str


def make_texture(height: int, width: int, rng: np.random.Generator, palette: np.ndarray | None = None) -> np.ndarray:
    """A colourful, detailed random texture `(H, W, 3)` uint8: multi-scale smooth noise plus random strokes.

    Rich texture at all scales makes flow estimation well posed everywhere (no flat regions).
    """
    texture = np.zeros((height, width, 3), np.float32)
    for scale, amplitude in ((32, 0.5), (8, 0.3), (2, 0.2)):
        small = rng.random((max(2, height // scale), max(2, width // scale), 3)).astype(np.float32)
        texture += amplitude * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    texture = np.clip(texture, 0, 1)
    if palette is not None:
        texture = texture * 0.5 + palette.reshape(1, 1, 3) * 0.5
    image = (texture * 255).astype(np.uint8)
    for _ in range(max(4, (height * width) // 800)):
        start = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        end = (int(start[0] + rng.integers(-20, 21)), int(start[1] + rng.integers(-20, 21)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.line(image, start, end, color, int(rng.integers(1, 3)), lineType=cv2.LINE_AA)
    return image


@dataclass
class _Layer:
    texture: np.ndarray  # (h, w, 3) uint8 in the layer's own coordinates
    mask: np.ndarray  # (h, w) float32 in {0, 1}
    transforms: list  # per frame, 3x3 matrix from layer coordinates to frame pixels


def _affine(
    tx: float = 0.0, ty: float = 0.0, angle_deg: float = 0.0, scale: float = 1.0, cx: float = 0.0, cy: float = 0.0
) -> np.ndarray:
    """3×3 matrix: rotate/scale about the layer point (cx, cy), then place that point at (tx, ty)."""
    angle = np.deg2rad(angle_deg)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = np.eye(3)
    matrix[:2, :2] = rotation
    matrix[:2, 2] = np.array([tx, ty]) - rotation @ np.array([cx, cy])
    return matrix


def _build_layers(motion: str, num_frames: int, width: int, height: int, rng: np.random.Generator) -> list[_Layer]:
    margin = 64
    background = make_texture(height + 2 * margin, width + 2 * margin, rng)
    pan = (2.0, 1.0) if motion in ("translation", "mixed") else (0.0, 0.0)
    layers = [
        _Layer(
            background,
            np.ones(background.shape[:2], np.float32),
            [_affine(-margin - pan[0] * t, -margin - pan[1] * t, cx=0, cy=0) for t in range(num_frames)],
        )
    ]
    side = max(16, min(width, height) // 3)

    def object_layer(shape: str, palette) -> tuple[np.ndarray, np.ndarray]:
        texture = make_texture(side, side, rng, palette=np.array(palette, np.float32))
        mask = np.zeros((side, side), np.float32)
        if shape == "disk":
            cv2.circle(mask, (side // 2, side // 2), side // 2 - 1, 1.0, -1)
        else:
            mask[:] = 1.0
        return texture, mask

    center = side / 2.0
    if motion in ("translation", "mixed"):
        texture, mask = object_layer("square", (1.0, 0.2, 0.2))
        start = (width * 0.25, height * 0.5)
        layers.append(
            _Layer(
                texture,
                mask,
                [_affine(start[0] + 3.0 * t, start[1] + 1.0 * t, cx=center, cy=center) for t in range(num_frames)],
            )
        )
    if motion in ("rotation", "mixed"):
        texture, mask = object_layer("square", (0.2, 1.0, 0.2))
        position = (width * 0.6, height * 0.4)
        layers.append(
            _Layer(
                texture, mask, [_affine(*position, angle_deg=8.0 * t, cx=center, cy=center) for t in range(num_frames)]
            )
        )
    if motion in ("zoom", "mixed"):
        texture, mask = object_layer("disk", (0.2, 0.2, 1.0))
        position = (width * 0.45, height * 0.6)
        layers.append(
            _Layer(
                texture,
                mask,
                [_affine(*position, scale=0.8 * 1.02**t, cx=center, cy=center) for t in range(num_frames)],
            )
        )
    if motion in ("occluder", "mixed"):
        bar_width, bar_height = max(8, width // 6), height + 2
        texture = make_texture(bar_height, bar_width, rng, palette=np.array((1.0, 1.0, 0.2), np.float32))
        mask = np.ones((bar_height, bar_width), np.float32)
        speed = (width * 0.5 + bar_width) / max(1, num_frames - 1)
        layers.append(_Layer(texture, mask, [_affine(width - speed * t, -1.0) for t in range(num_frames)]))
    return layers


def _render(layers: list[_Layer], frame: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite frame `frame`; returns the image and the index of the topmost layer per pixel."""
    image = np.zeros((height, width, 3), np.float32)
    owner = np.zeros((height, width), np.int32)
    for index, layer in enumerate(layers):
        matrix = layer.transforms[frame][:2]
        warped = cv2.warpAffine(
            layer.texture, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        coverage = cv2.warpAffine(layer.mask, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
        image = image * (1 - coverage[..., None]) + warped.astype(np.float32) * coverage[..., None]
        owner[coverage >= 0.5] = index
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), owner


def _flow_between(layers: list[_Layer], owner: np.ndarray, source: int, target: int) -> np.ndarray:
    """Exact flow from frame `source` to `target` for each pixel, using the owning layer's transforms."""
    height, width = owner.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack([xs, ys, np.ones_like(xs)], axis=-1)  # (H, W, 3)
    flow = np.zeros((height, width, 2), np.float64)
    for index, layer in enumerate(layers):
        selected = owner == index
        if not selected.any():
            continue
        mapping = layer.transforms[target] @ np.linalg.inv(layer.transforms[source])
        moved = points[selected] @ mapping.T
        flow[selected] = moved[:, :2] - points[selected][:, :2]
    return flow.astype(np.float32)


def _occlusion(flow: np.ndarray, owner_source: np.ndarray, owner_target: np.ndarray) -> np.ndarray:
    """Pixels whose destination is outside the frame or owned by another layer there."""
    height, width = owner_source.shape
    ys, xs = np.mgrid[0:height, 0:width]
    destination_x = np.rint(xs + flow[..., 0]).astype(np.int64)
    destination_y = np.rint(ys + flow[..., 1]).astype(np.int64)
    inside = (destination_x >= 0) & (destination_x < width) & (destination_y >= 0) & (destination_y < height)
    occluded = ~inside
    clipped_x, clipped_y = np.clip(destination_x, 0, width - 1), np.clip(destination_y, 0, height - 1)
    occluded |= owner_target[clipped_y, clipped_x] != owner_source
    return occluded


def make_synthetic_video(
    num_frames: int = 16,
    width: int = 128,
    height: int = 96,
    motion: Motion = "mixed",
    seed: int = 0,
) -> SyntheticVideo:
    """Render a synthetic clip with exact flow and occlusion ground truth.

    Args:
        num_frames: number of frames T (≥ 2).
        width: frame width in pixels (≥ 32).
        height: frame height in pixels (≥ 32).
        motion: one of "translation", "rotation", "zoom", "occluder", "mixed".
        seed: texture seed; the same arguments always give the same video.

    Returns:
        A `SyntheticVideo`.
    """
    if motion not in MOTIONS:
        raise ValueError(f"`motion` must be one of {', '.join(MOTIONS)}, got {motion!r}")
    if num_frames < 2:
        raise ValueError(f"`num_frames` must be ≥ 2, got {num_frames}")
    if width < 32 or height < 32:
        raise ValueError(f"`width` and `height` must be ≥ 32, got {width}×{height}")
    rng = np.random.default_rng(seed)
    layers = _build_layers(motion, num_frames, width, height, rng)
    rendered = [_render(layers, t, width, height) for t in range(num_frames)]
    frames = np.stack([image for image, _ in rendered])
    owners = [owner for _, owner in rendered]
    forward, backward, forward_occlusion, backward_occlusion = [], [], [], []
    for t in range(num_frames - 1):
        flow_forward = _flow_between(layers, owners[t], t, t + 1)
        flow_backward = _flow_between(layers, owners[t + 1], t + 1, t)
        forward.append(flow_forward)
        backward.append(flow_backward)
        forward_occlusion.append(_occlusion(flow_forward, owners[t], owners[t + 1]))
        backward_occlusion.append(_occlusion(flow_backward, owners[t + 1], owners[t]))
    return SyntheticVideo(
        frames,
        np.stack(forward),
        np.stack(backward),
        np.stack(forward_occlusion),
        np.stack(backward_occlusion),
        motion,
    )


def write_synthetic_video(
    path: str | os.PathLike,
    num_frames: int = 16,
    width: int = 128,
    height: int = 96,
    motion: Motion = "mixed",
    fps: float | Fraction = 25,
    audio: bool = True,
    audio_frequency: float = 440.0,
    audio_sample_rate: int = 44100,
    seed: int = 0,
    crf: int = 10,
    overwrite: bool = False,
) -> SyntheticVideo:
    """Write a synthetic clip to an H.264 file, with a sine-tone AAC track as long as the video if `audio`.

    As every video rerender writes, the file carries `rerender.video.WRITER_TAG` and is written under a temporary
    name, then renamed; an existing file at `path` that rerender did not write is refused unless `overwrite`.

    Returns:
        The `SyntheticVideo` that was written (frames before compression).

    Raises:
        OutputPathError: `path` cannot be written, or it exists and rerender did not write it (without `overwrite`).
    """
    from rerender.video import check_output_path

    path = check_output_path(
        path, overwrite=overwrite, remedy="move it away, choose another `path`, or pass `overwrite=True`"
    )
    video = make_synthetic_video(num_frames, width, height, motion, seed)
    with atomic_output(path) as temporary:
        _encode_synthetic(
            video, temporary, Fraction(fps).limit_denominator(1001), audio, audio_frequency, audio_sample_rate, crf
        )
    return video


def _encode_synthetic(
    video: SyntheticVideo,
    path: Path,
    fps: Fraction,
    audio: bool,
    audio_frequency: float,
    audio_sample_rate: int,
    crf: int,
) -> None:
    """Encode `video`'s frames (padded to even sides) as H.264 at `path`, tagged as ours, with a sine tone."""
    import av

    num_frames, height, width = video.frames.shape[:3]
    with av.open(_ffmpeg_url(path), mode="w") as container:
        container.metadata["comment"] = WRITER_TAG  # ours: a later run may replace it (`written_by_rerender`)
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "fast"}
        audio_stream = container.add_stream("aac", rate=audio_sample_rate) if audio else None
        for frame in video.frames:
            frame = cv2.copyMakeBorder(frame, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            total = int(round(num_frames / float(fps) * audio_sample_rate))
            frame_size = audio_stream.codec_context.frame_size or 1024
            time = np.arange(total) / audio_sample_rate
            tone = (0.3 * np.sin(2 * np.pi * audio_frequency * time)).astype(np.float32)
            for offset in range(0, total, frame_size):
                chunk = tone[offset : offset + frame_size][None, :]
                audio_frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                audio_frame.sample_rate = audio_sample_rate
                audio_frame.pts = offset
                audio_frame.time_base = Fraction(1, audio_sample_rate)
                for packet in audio_stream.encode(audio_frame):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
