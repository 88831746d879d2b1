"""Video input and output: probing, streaming decode, crop/resize, H.264 and PNG writing with audio passthrough.

Frames at this boundary are RGB `uint8` arrays of shape `(H, W, 3)` (see the README's conventions table).
Everything streams: a 1,000-frame 1080p video is never held decoded in memory at once.

Inputs may be video files (mp4, mov, mkv, webm, avi, gif, … anything FFmpeg decodes) or folders of numbered
images (png, jpg, webp, bmp, tif), sorted naturally so `2.png` comes before `10.png`. Frames come out as a
viewer sees them (the README's "Video I/O" section lists the cases): upright and unmirrored (display
matrix, as FFmpeg's autorotate), square pixels (anamorphic clips stretched), only the frames an edit list
shows, the moving-picture stream (never a cover image), HDR tone-mapped to SDR; and with each frame's time
on the file's clock (`VideoInfo.timestamps`), so outputs keep variable frame rates and audio sync.

Outputs are written under a temporary name in the destination folder and renamed when complete: an
interrupted run never leaves a truncated file under the final name, and an existing input is never
overwritten.

Example:
    >>> from rerender.video import probe_video, read_frames, write_video
    >>> info = probe_video("clip.mp4")                                  # doctest: +SKIP
    >>> frames = read_frames("clip.mp4", end=50, resolution=512)        # doctest: +SKIP
    >>> write_video(frames, "out.mp4", fps=info.fps, audio_from="clip.mp4")  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
import platform
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence

import cv2
import numpy as np

from rerender.errors import InputNotFoundError, OutputPathError, VideoReadError

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VideoInfo",
    "probe_video",
    "list_image_files",
    "read_frames",
    "count_frames",
    "compute_output_size",
    "fit_size",
    "fit_frame",
    "unfit_frame",
    "crop_frame",
    "resize_frame",
    "preprocess_frame",
    "VIDEO_SUFFIXES",
    "check_output_path",
    "atomic_output",
    "VideoWriter",
    "write_video",
    "write_png_sequence",
    "read_image",
    "write_image",
    "tone_map_to_sdr",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_IMAGE_SEQUENCE_FPS = Fraction(25)
MP4_COPYABLE_AUDIO = ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")


# --------------------------------------------------------------------------------------------------------
# probing
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What the reader sees in a video file or image folder: the picture as a viewer sees it, and when.

    `width`/`height` are the size on screen: after the display matrix (rotation, mirroring) and after
    stretching non-square pixels (`sample_aspect_ratio`) to square ones. That is the size `read_frames`
    hands out and the size every later stage (processing size, crop) works from; `stored_width`/
    `stored_height` are the coded picture's size, for reference only.
    """

    path: Path
    """The file or folder."""
    width: int
    """Width on screen in square pixels, after rotation and pixel aspect (what `read_frames` yields)."""
    height: int
    """Height on screen in square pixels, after rotation and pixel aspect (what `read_frames` yields)."""
    fps: Fraction
    """Nominal frame rate as an exact fraction (e.g. 30000/1001): the typical gap between frames, also for
    variable-rate clips; image folders use the fps given to `probe_video`."""
    frame_count: int
    """Number of frames the decoder presents (frames hidden by an edit list are not counted)."""
    rotation: int
    """Counter-clockwise display rotation in degrees (0, 90, 180, 270) as FFmpeg reports it, already applied."""
    has_audio: bool
    """Whether there is an audio stream."""
    audio_codec: str | None
    """Name of the first audio stream's codec, if any."""
    video_codec: str | None
    """Name of the video codec; `None` for image folders."""
    is_image_sequence: bool
    """True for a folder of numbered images."""
    timestamps: tuple[float, ...] = ()
    """Presentation time of every frame in seconds on the file's own clock (need not start at 0); the
    audio is on the same clock. Image folders: `i / fps`."""
    stored_width: int = 0
    """Width of the coded picture in pixels, before rotation and pixel aspect."""
    stored_height: int = 0
    """Height of the coded picture in pixels, before rotation and pixel aspect."""
    sample_aspect_ratio: Fraction = Fraction(1)
    """Width of one stored pixel over its height (4/3 for anamorphic 16:9 in 4:3 pixels); 1 = square."""
    mirrored: bool = False
    """Whether the display matrix also mirrors the picture (applied, before `rotation`)."""
    variable_frame_rate: bool = False
    """True when frames are not evenly spaced: a constant-rate grid at `fps` would misplace some frame by
    more than half a frame. Outputs keep each frame's time (see `write_video`'s `timestamps`)."""
    hdr_transfer: str | None = None
    """"PQ" or "HLG" for HDR input (tone-mapped to SDR as it is read, with a warning), else `None`."""
    has_alpha: bool = False
    """Whether the input has an alpha channel (dropped by the reader, with a warning)."""
    colorspace: str | None = None
    """The YUV matrix the file is tagged with ("bt709", "bt601", "bt2020"), `None` if untagged or RGB."""
    stream_index: int = 0
    """Index of the stream read: the moving picture, never a cover picture or thumbnail track."""

    @property
    def duration(self) -> float:
        """Length in seconds: from the first frame's time to the end of the last frame."""
        if not self.fps:
            return 0.0
        if len(self.timestamps) == self.frame_count and self.frame_count:
            return float(self.timestamps[-1] - self.timestamps[0] + 1 / self.fps)
        return float(self.frame_count / self.fps)

    @property
    def size(self) -> tuple[int, int]:
        """`(width, height)` in pixels."""
        return self.width, self.height

    def output_times(self, start: int = 0, end: int | None = None, stride: int = 1) -> list[float]:
        """Times in seconds of the frames `start, start+stride, … < end`, relative to the first of them.

        These are the presentation times an output keeps (`write_video(..., timestamps=...)`); the audio
        that goes with them starts at `timestamps[start]` on the source's clock.
        """
        times = self.timestamps[start:end:stride] if self.timestamps else ()
        if not times:
            count = len(range(start, self.frame_count if end is None else end, stride))
            return [float(index * stride / self.fps) for index in range(count)]
        return [float(time - times[0]) for time in times]

    def start_time(self, start: int = 0) -> float:
        """The source-clock time in seconds of frame `start` (where audio for an output from it begins)."""
        if self.timestamps and 0 <= start < len(self.timestamps):
            return float(self.timestamps[start])
        return float(start / self.fps) if self.fps else 0.0


_ATTACHED_PIC = 1024  # AV_DISPOSITION_ATTACHED_PIC: a cover image stored as a one-frame video stream
_TRANSFERS = {16: "PQ", 18: "HLG"}  # AVColorTransferCharacteristic: SMPTE ST 2084, ARIB STD-B67
_COLORSPACES = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}  # AVColorSpace


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files in `folder`, naturally sorted (`2.png` before `10.png`).

    Raises:
        InputNotFoundError: the folder does not exist or holds no image with a supported extension.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"folder not found: {str(folder)!r}")
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")),
        key=_natural_key,
    )
    if not files:
        raise InputNotFoundError(
            f"folder {str(folder)!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return files


def _read_image_unchanged(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"image not found: {str(path)!r}")
    # cv2.imread cannot open non-ASCII paths on every platform; decoding bytes always works.
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise VideoReadError(f"{str(path)!r} is not a readable image")
    return image


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB `uint8` `(H, W, 3)` (alpha dropped, grey expanded). Works with non-ASCII paths.

    Raises:
        InputNotFoundError: the file does not exist.
        VideoReadError: the file is not a readable image.
    """
    image = _read_image_unchanged(path)
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def write_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB `uint8` `(H, W, 3)` image atomically (temporary name, then rename); format from the suffix."""
    path = Path(path)
    _check_frame(image, "image")
    ok, encoded = cv2.imencode(path.suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputPathError(f"cannot encode an image with suffix {path.suffix!r} for {str(path)!r}")
    with atomic_output(path) as temporary:
        encoded.tofile(str(temporary))
    return path


def _ffmpeg_url(path: str | os.PathLike) -> str:
    # FFmpeg reads "2024-11-14T22:57:44.mp4" as protocol "2024-11-14T22"; the file: prefix makes any name a file.
    return "file:" + os.fspath(path)


def _open_container(path: Path):
    import av

    try:
        return av.open(_ffmpeg_url(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise VideoReadError(f"{str(path)!r} is not a readable video ({error})") from None


def _moving_streams(container) -> list:
    """Video streams that may hold the moving picture: every one but attached cover pictures."""
    return [stream for stream in container.streams.video if not stream.disposition & _ATTACHED_PIC]


def _orientation_of(frame) -> tuple[int, bool]:
    """`(rotation, mirrored)` from the frame's display matrix: the matrix's linear part snapped to 90° steps.

    Returns the angle in FFmpeg's sense (counter-clockwise degrees the display turns the stored picture,
    one of 0, 90, 180, 270) and whether the stored picture is also mirrored left–right first.
    """
    matrix = None
    for side_data in frame.side_data or ():
        if str(side_data.type).endswith("DISPLAYMATRIX"):
            matrix = np.frombuffer(bytes(side_data), dtype=np.int32)
    if matrix is None or matrix.size < 9:
        return 0, False
    # FFmpeg's layout (libavutil/display.h): [a b u; c d v; x y w]; a point (p, q) goes to
    # (a p + c q + x, b p + d q + y) in y-down pixel coordinates.
    a, b, c, d = (float(value) / 65536 for value in (matrix[0], matrix[1], matrix[3], matrix[4]))
    mirrored = a * d - b * c < 0
    if mirrored:  # mirror first (p → -p), then what remains is a pure rotation
        a, b = -a, -b
    # Clockwise angle in y-down coordinates is atan2(b, a); FFmpeg reports the counter-clockwise one.
    clockwise = float(np.degrees(np.arctan2(b, a)))
    snapped = int(round(clockwise / 90.0)) * 90
    if abs(clockwise - snapped) > 1.0:
        logger.warning("display rotation of %.1f° is not a multiple of 90°; using %d°", clockwise, snapped)
    return (-snapped) % 360, mirrored


def _orient(image: np.ndarray, rotation: int, mirrored: bool) -> np.ndarray:
    """Apply a display orientation from `_orientation_of` to a stored `(H, W, C)` picture (FFmpeg autorotate)."""
    if mirrored:
        image = image[:, ::-1]
    if rotation:
        image = np.rot90(image, k=rotation // 90)  # np.rot90 turns counter-clockwise on a y-down image
    return np.ascontiguousarray(image)


_COMMON_RATES = tuple(
    Fraction(rate) for rate in (Fraction(24000, 1001), 24, 25, Fraction(30000, 1001), 30, 48, 50, Fraction(60000, 1001), 60, 100, 120, 240)
)


def _nominal_rate(times: np.ndarray, stream) -> Fraction:
    """The frame rate the clip was shot at: the typical gap between frames, exact when the header agrees.

    Millisecond clocks (MKV, WebM) store 30 fps as gaps of 33 and 34 ms, so the typical gap is the mean
    of the gaps near the median one (a stall does not count), then matched to the header's rates or to a
    common rate.
    """
    candidates = [Fraction(rate) for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate) if rate]
    fallback = candidates[0] if candidates else DEFAULT_IMAGE_SEQUENCE_FPS
    if times.size < 2:
        return fallback
    gaps = np.diff(times)
    median = float(np.median(gaps))
    if median <= 0:
        return fallback
    period = float(np.mean(gaps[np.abs(gaps - median) <= 0.25 * median]))
    for rates, tolerance in ((candidates, 0.01), (_COMMON_RATES, 0.005)):
        for rate in rates:
            if abs(float(rate) * period - 1) < tolerance:
                return rate
    return Fraction(1 / period).limit_denominator(1001)


def _is_variable_rate(times: np.ndarray, fps: Fraction) -> bool:
    # Variable when a constant-rate grid would show some frame more than half a frame early or late.
    if times.size < 2:
        return False
    grid = times[0] + np.arange(times.size) / float(fps)
    return bool(np.max(np.abs(times - grid)) > 0.5 / float(fps))


def probe_video(path: str | os.PathLike, image_sequence_fps: float | Fraction | None = None) -> VideoInfo:
    """Describe a video file or image folder: size on screen, nominal rate, every frame's time, audio.

    Packets are read (not decoded) to learn which frames the decoder will present and when: frames hidden
    by an edit list are not counted, timestamps keep the file's own clock (which may not start at 0).
    Only the first frame is decoded, for its display matrix. Logs a warning for HDR (PQ/HLG) input, which
    `read_frames` tone-maps to SDR (`tone_map_to_sdr`), and for input with an alpha channel, which is dropped.

    Args:
        path: a video file or a folder of numbered images.
        image_sequence_fps: the frame rate of an image folder (default 25).

    Returns:
        A `VideoInfo`; `width`/`height` are the upright, square-pixel size that `read_frames` hands out.

    Raises:
        InputNotFoundError: `path` does not exist, or is a folder without images.
        VideoReadError: the file cannot be decoded, or has no video frames.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"video not found: {str(path)!r}")
    if path.is_dir():
        files = list_image_files(path)
        first = _read_image_unchanged(files[0])
        if first.ndim == 3 and first.shape[2] == 4:
            logger.warning("%s has an alpha channel; it is dropped (frames are read as RGB)", files[0])
        fps = Fraction(image_sequence_fps).limit_denominator(1001) if image_sequence_fps else DEFAULT_IMAGE_SEQUENCE_FPS
        height, width = first.shape[:2]
        times = tuple(float(index / fps) for index in range(len(files)))
        return VideoInfo(path, width, height, fps, len(files), 0, False, None, None, True, timestamps=times,
                         stored_width=width, stored_height=height, has_alpha=first.ndim == 3 and first.shape[2] == 4)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoReadError(f"{str(path)!r} is a single image; pass the folder that holds the frames")
    with _open_container(path) as container:
        streams = _moving_streams(container)
        if not streams:
            raise VideoReadError(f"{str(path)!r} has no video stream")
        audio = container.streams.audio[0] if container.streams.audio else None
        firsts: dict[int, object] = {}
        presented: dict[int, list[int]] = {stream.index: [] for stream in streams}
        try:
            for packet in container.demux(*streams):
                index = packet.stream.index
                if index not in firsts and packet.size:
                    # Decode until the first frame appears: its side data carries the display matrix.
                    decoded = packet.decode()
                    if decoded:
                        firsts[index] = decoded[0]
                # Frames before an edit list's start are flagged discard; the decoder never presents them.
                if not packet.size or packet.is_discard:
                    continue
                presented[index].append(packet.pts)  # None in raw streams (.h264): no timestamps at all
        except Exception as error:  # noqa: BLE001 - a truncated or broken file: keep what was read
            import av

            if not isinstance(error, av.error.FFmpegError):
                raise
            logger.warning("stopped reading %s after %d packets: %s", path, sum(map(len, presented.values())), error)
        # The main picture is the stream with the most frames (a thumbnail track has one), then the largest.
        stream = max(streams, key=lambda item: (len(presented[item.index]), item.codec_context.width * item.codec_context.height))
        codec = stream.codec_context
        first, pts = firsts.get(stream.index), presented[stream.index]
        if first is None:
            try:
                first = next(iter(codec.decode(None)), None)  # a decoder that holds frames back until the end
            except Exception:  # noqa: BLE001
                first = None
        if first is None or not pts:
            raise VideoReadError(f"{str(path)!r} has no video frames" if not pts else f"{str(path)!r} cannot be decoded")
        if any(value is None for value in pts):
            # Untimed packets (raw elementary streams): frames are evenly spaced at the stream's rate.
            fps = _nominal_rate(np.zeros(0), stream)
            times = np.arange(len(pts)) / float(fps)
        else:
            times = np.sort(np.asarray(pts, dtype=np.float64)) * float(stream.time_base)
            fps = _nominal_rate(times, stream)
        rotation, mirrored = _orientation_of(first)
        aspect = Fraction(stream.sample_aspect_ratio or codec.sample_aspect_ratio or 1)
        if aspect <= 0:
            aspect = Fraction(1)
        stored_width, stored_height = first.width, first.height
        width, height = _square_pixel_size(stored_width, stored_height, aspect)
        if rotation in (90, 270):
            width, height = height, width
        transfer = _TRANSFERS.get(int(first.color_trc or codec.color_trc or 0))  # the frame's tag, else the header's
        if transfer is not None:
            logger.warning(
                "%s is HDR (%s, BT.2020); it is tone-mapped to SDR (BT.709) as it is read, so the output is SDR",
                path, transfer,
            )
        pixel_format = first.format.name
        # Grey + alpha, or three colours + alpha. The GIF decoder always outputs BGRA, transparent or not.
        has_alpha = len(first.format.components) in (2, 4) and codec.name != "gif"
        if has_alpha:
            logger.warning("%s has an alpha channel (%s); it is dropped (frames are read as RGB)", path, pixel_format)
        info = VideoInfo(
            path, width, height, fps, len(pts), rotation, audio is not None,
            audio.codec_context.name if audio is not None else None, codec.name, False,
            timestamps=tuple(times.tolist()), stored_width=stored_width, stored_height=stored_height,
            sample_aspect_ratio=aspect, mirrored=mirrored, variable_frame_rate=_is_variable_rate(times, fps),
            hdr_transfer=transfer, has_alpha=has_alpha, colorspace=_COLORSPACES.get(int(codec.colorspace or 2)),
            stream_index=stream.index,
        )
    return info


def _square_pixel_size(width: int, height: int, aspect: Fraction) -> tuple[int, int]:
    # Stretch, never shrink: wide pixels widen the picture, tall pixels heighten it.
    if aspect > 1:
        return int(round(width * aspect)), height
    if aspect < 1:
        return width, int(round(height / aspect))
    return width, height


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames the decoder presents (see `probe_video`)."""
    path = Path(path)
    if path.is_dir():
        return len(list_image_files(path))
    return probe_video(path).frame_count


# --------------------------------------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------------------------------------


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
        logger.warning("a %d×%d input becomes %d×%d: its aspect ratio (1:%.0f) cannot be kept at `resolution` %d in "
                       "multiples of %d (the short side is clamped to one multiple; %.1f× off); crop it or raise "
                       "`resolution`", width, height, new_width, new_height, max(width, height) / min(width, height),
                       resolution, size_multiple, max(distortion, 1 / distortion))
    return new_width, new_height


def fit_size(
    width: int, height: int, size: tuple[int, int], tolerance: float = ASPECT_TOLERANCE
) -> tuple[int, int]:
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
            np.ascontiguousarray(frame), pad_y // 2, pad_y - pad_y // 2, pad_x // 2, pad_x - pad_x // 2, cv2.BORDER_REPLICATE
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


# --------------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------------


def _check_range(info: VideoInfo, start: int, end: int | None, stride: int) -> int:
    if stride < 1:
        raise ValueError(f"`stride` must be ≥ 1, got {stride}")
    if start < 0 or start >= info.frame_count:
        raise ValueError(f"`start` must be in [0, {info.frame_count - 1}] for {info.path.name} ({info.frame_count} frames), got {start}")
    if end is None:
        return info.frame_count
    if end <= start or end > info.frame_count:
        raise ValueError(
            f"`end` must be in [{start + 1}, {info.frame_count}] for {info.path.name} ({info.frame_count} frames), got {end}"
        )
    return end


def read_frames(
    path: str | os.PathLike,
    start: int = 0,
    end: int | None = None,
    stride: int = 1,
    crop: tuple[int, int, int, int] = (0, 0, 0, 0),
    resolution: int | None = None,
    resize_side: Literal["long", "short"] = "long",
    size_multiple: int = 8,
    info: VideoInfo | None = None,
    *,
    seek: bool = False,
) -> Iterator[np.ndarray]:
    """Stream frames `start, start+stride, … < end` as RGB `uint8` `(H, W, 3)`, cropped and resized.

    The range and crop are checked before the first frame is decoded; frames are decoded one at a time.

    Args:
        path: a video file or an image folder.
        start: first frame index (0-based).
        end: one past the last frame index; `None` = to the end.
        stride: keep every n-th frame.
        crop: `(left, top, right, bottom)` pixels removed before resizing.
        resolution: length of the `resize_side` side after resizing; `None` keeps the cropped size.
        resize_side: "long" or "short".
        size_multiple: round both sides to a multiple of this (only when resizing); frames are fitted into
            that size without distortion (`fit_frame`).
        info: a `probe_video` result to skip probing again.
        seek: jump to the key frame before `start` instead of decoding from the first frame (for a chunk of a
            long video: `rerender.workflow.executors.RayExecutor`). The frames are the same: each decoded frame's
            timestamp is checked against `info.timestamps`, and where they disagree (or the file has no
            timestamps) the reader decodes from the beginning instead.

    Raises:
        InputNotFoundError, VideoReadError: as `probe_video`.
        ValueError: range or crop outside the video.
    """
    info = info or probe_video(path)
    end = _check_range(info, start, end, stride)
    left, top, right, bottom = crop
    cropped_width, cropped_height = info.width - left - right, info.height - top - bottom
    if min(crop) < 0 or cropped_width < 1 or cropped_height < 1:
        raise ValueError(f"`crop` {tuple(crop)} must be ≥ 0 and leave at least 1 px of the {info.width}×{info.height} frame")
    size = None
    if resolution is not None:
        size = compute_output_size(cropped_width, cropped_height, resolution, resize_side, size_multiple)
    return _iterate_frames(info, start, end, stride, tuple(crop), size, seek)


def _iterate_frames(info: VideoInfo, start: int, end: int, stride: int, crop, size,
                    seek: bool = False) -> Iterator[np.ndarray]:
    wanted = range(start, end, stride)
    if info.is_image_sequence:
        files = list_image_files(info.path)
        for index in wanted:
            frame = read_image(files[index])
            if frame.shape[:2] != (info.height, info.width):
                frame = resize_frame(frame, (info.width, info.height))
            yield preprocess_frame(frame, crop, size)
        return
    square = _square_pixel_size(info.stored_width, info.stored_height, info.sample_aspect_ratio)
    with _open_container(info.path) as container:
        stream = container.streams[info.stream_index]
        stream.thread_type = "AUTO"
        index = -1
        seeking = seek and start > 0 and len(info.timestamps) == info.frame_count and stream.time_base is not None
        if seeking:  # to the key frame at or before `start`; the first decoded frame's time says which frame it is
            import av

            try:
                container.seek(int(round(info.timestamps[start] / float(stream.time_base))), stream=stream, backward=True)
            except av.error.FFmpegError:  # a raw stream cannot seek: decode from the start
                yield from _iterate_frames(info, start, end, stride, crop, size)
                return
        try:
            for frame in container.decode(stream):
                index += 1
                if seeking:
                    # frames after a seek are counted from the first one's place in the timeline, each checked
                    position = _timeline_index(info.timestamps, frame, stream.time_base)
                    if index == 0 and position is not None and position <= start:
                        index = position
                    if position != index:  # not the frame a decode from the start would give here: do that instead
                        resume = next((wanted_index for wanted_index in wanted if wanted_index >= max(index, 0)), end)
                        yield from _iterate_frames(info, resume, end, stride, crop, size) if resume < end else ()
                        return
                if index >= end:
                    break
                if index < start or (index - start) % stride:
                    continue
                image = resize_frame(_to_rgb(frame, info.hdr_transfer), square)  # non-square pixels → square ones
                image = _orient(image, info.rotation, info.mirrored)
                yield preprocess_frame(image, crop, size)
        except Exception as error:  # noqa: BLE001 - a truncated file: keep what decoded
            import av

            if not isinstance(error, av.error.FFmpegError):
                raise
            logger.warning("decoding %s stopped at frame %d: %s", info.path, index, error)


def _timeline_index(timestamps: Sequence[float], frame, time_base) -> int | None:
    """The index of the frame whose probed time (`VideoInfo.timestamps`) is `frame`'s, or None (untimed or unknown)."""
    if frame.pts is None:
        return None
    time = float(np.float64(frame.pts) * float(time_base))  # as `probe_video` computes them
    position = bisect.bisect_left(timestamps, time - 1e-9)
    return position if position < len(timestamps) and abs(timestamps[position] - time) <= 1e-9 else None


def _to_rgb(frame, hdr_transfer: str | None = None) -> np.ndarray:
    """RGB `uint8` from a decoded frame, with the YUV matrix and range the frame is tagged with (HDR tone-mapped)."""
    if hdr_transfer is not None:
        range_tag = int(frame.color_range or 0) or 1  # HDR video is limited range unless tagged otherwise
        signal = frame.to_ndarray(format="rgb48le", src_colorspace="bt2020", src_color_range=range_tag)
        return tone_map_to_sdr(signal, hdr_transfer)
    if frame.format.name in ("rgb24",):
        return frame.to_ndarray()
    range_tag = int(frame.color_range or 0)  # a full-range tag (phones, MJPEG) is kept; untagged is limited
    matrix = None  # the frame's tag
    if int(frame.colorspace or 2) == 2 and not frame.format.is_rgb:
        # Untagged: guess as players do (BT.709 from 720 lines or 1280 columns up, BT.601 below).
        matrix = "itu709" if frame.height >= 720 or frame.width >= 1280 else "itu601"
    return frame.to_ndarray(format="rgb24", src_colorspace=matrix, src_color_range=range_tag or None, dst_color_range=2)


# --------------------------------------------------------------------------------------------------------
# HDR → SDR
# --------------------------------------------------------------------------------------------------------

SDR_WHITE_NITS = 203.0
"""HDR reference (diffuse) white in cd/m², ITU-R BT.2408; it becomes SDR white (before the highlight knee)."""
HDR_KNEE = 0.75
"""Linear SDR level above which highlights are compressed smoothly towards white instead of clipped."""

# Linear-light BT.2020 → BT.709 primaries (ITU-R BT.2087).
_BT2020_TO_BT709 = np.array(
    [[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]], dtype=np.float32
)


def _pq_to_nits(signal: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 (PQ) EOTF: non-linear signal in [0, 1] → display light in cd/m²."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    power = np.power(np.clip(signal, 0, 1), 1 / m2)
    return 10000.0 * np.power(np.maximum(power - c1, 0) / (c2 - c3 * power), 1 / m1)


def _hlg_to_scene(signal: np.ndarray) -> np.ndarray:
    """ITU-R BT.2100 HLG inverse OETF: non-linear signal in [0, 1] → scene light in [0, 1]."""
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    signal = np.clip(signal, 0, 1)
    return np.where(signal <= 0.5, signal**2 / 3, (np.exp((np.maximum(signal, 0.5) - c) / a) + b) / 12)


def _hlg_ootf(scene: np.ndarray, peak: float = 1000.0) -> np.ndarray:
    """ITU-R BT.2100 HLG OOTF of a `peak` cd/m² display (system gamma 1.2 at 1000): scene → cd/m²."""
    luminance = (scene.reshape(-1, 3) @ np.array([0.2627, 0.6780, 0.0593], dtype=np.float32)).reshape(scene.shape[:-1])
    gamma = 1.2 + 0.42 * np.log10(peak / 1000.0)
    return peak * np.power(np.maximum(luminance, 1e-6), gamma - 1)[..., None] * scene


def _hlg_to_nits(signal: np.ndarray) -> np.ndarray:
    return _hlg_ootf(_hlg_to_scene(signal))


@functools.lru_cache(maxsize=2)
def _hdr_table(transfer: str) -> np.ndarray:
    """Per-channel EOTF (PQ: cd/m²) or inverse OETF (HLG: scene light) for every 16-bit code value."""
    codes = np.arange(65536, dtype=np.float64) / 65535.0
    return (_pq_to_nits(codes) if transfer == "PQ" else _hlg_to_scene(codes)).astype(np.float32)


def tone_map_to_sdr(signal: np.ndarray, transfer: Literal["PQ", "HLG"]) -> np.ndarray:
    """Tone-map HDR (BT.2020 primaries, PQ or HLG) to SDR RGB (BT.709 primaries, BT.1886 gamma 2.4).

    Display light is taken relative to HDR reference white (203 cd/m², ITU-R BT.2408), converted to
    BT.709 primaries in linear light (out-of-gamut colours clipped), and highlights above `HDR_KNEE` are
    rolled off smoothly towards white on the largest channel, which keeps hue. Diffuse white reads as
    about 245, a 20 cd/m² grey as about 97 (what an SDR display shows for 20/203 of white).

    Args:
        signal: non-linear R'G'B' (decoded with the BT.2020 matrix), floats in [0, 1] or uint16 codes
            (0–65535, faster: the transfer function comes from a table).
        transfer: "PQ" (SMPTE ST 2084) or "HLG" (ARIB STD-B67).

    Returns:
        RGB `uint8`.

    Shape:
        - signal: `(H, W, 3)` float32 or uint16.
        - output: `(H, W, 3)` uint8.
    """
    if transfer not in ("PQ", "HLG"):
        raise ValueError(f"`transfer` must be 'PQ' or 'HLG', got {transfer!r}")
    if signal.dtype == np.uint16:  # 16-bit code values (the reader's path): the EOTF from a table
        nits = _hdr_table(transfer)[signal] if transfer == "PQ" else _hlg_ootf(_hdr_table(transfer)[signal])
    else:
        nits = _pq_to_nits(signal) if transfer == "PQ" else _hlg_to_nits(signal)
    shape = nits.shape
    # One (HW, 3) × (3, 3) product: far faster than a batch of per-pixel products.
    linear = np.maximum(nits.reshape(-1, 3).astype(np.float32) @ (_BT2020_TO_BT709.T / SDR_WHITE_NITS), 0).reshape(shape)
    peak = linear.max(axis=-1, keepdims=True)
    span = 1 - HDR_KNEE
    mapped = np.where(peak <= HDR_KNEE, peak, HDR_KNEE + span * (1 - np.exp(-(peak - HDR_KNEE) / span)))
    linear = linear * (mapped / np.maximum(peak, 1e-6))
    return np.clip(np.round(np.power(np.clip(linear, 0, 1), 1 / 2.4) * 255), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------------


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")
"""Containers the H.264 writer produces (`.webm` cannot hold H.264 and `.gif` is not a video codec's container;
`.avi` and other containers are refused rather than written untested)."""


def check_output_path(
    output: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    kind: Literal["video", "file", "folder"] = "video",
    name: str = "output",
) -> Path:
    """Check, before any work, that `output` can be written without touching an input; returns it as a `Path`.

    Args:
        output: the path to check.
        inputs: files and folders the output must not be, and must not lie inside.
        kind: "video" (the suffix must be one of `VIDEO_SUFFIXES`), "file" (any file name) or "folder" (a
            folder to create or fill; it may exist).
        name: how messages call the path (an argument or option name, e.g. "--json").

    Raises:
        OutputPathError: the parent folder is missing or not writable; a video without a supported suffix; a
            file path that is a folder (or a folder path that is a file); the output is an input or inside an
            input folder.
    """
    if kind not in ("video", "file", "folder"):
        raise ValueError(f"`kind` must be 'video', 'file' or 'folder', got {kind!r}")
    output = Path(output)
    if kind == "video" and output.suffix.lower() not in VIDEO_SUFFIXES:
        found = f"the suffix {output.suffix!r}" if output.suffix else "no suffix"
        raise OutputPathError(
            f"{name} {str(output)!r} has {found}; videos are written as H.264 in {', '.join(VIDEO_SUFFIXES)} "
            f"(e.g. {output.stem or 'out'}.mp4)"
        )
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"{name}: output folder does not exist: {str(parent)!r} (for {str(output)!r}); create it first")
    if not os.access(parent, os.W_OK):
        raise OutputPathError(f"{name}: the folder {str(parent)!r} is not writable (for {str(output)!r})")
    if kind != "folder" and output.is_dir():
        raise OutputPathError(f"{name} {str(output)!r} is a folder; give a file name" + (" such as out.mp4" if kind == "video" else ""))
    if kind == "folder" and output.exists() and not output.is_dir():
        raise OutputPathError(f"{name} {str(output)!r} exists and is not a folder")
    resolved = output.resolve()
    for item in inputs:
        item = Path(item)
        same = output.exists() and item.exists() and os.path.samefile(item, output)
        if same or resolved == item.resolve():
            raise OutputPathError(f"{name} {str(output)!r} is the input {str(item)!r}; choose another path")
        if item.is_dir() and resolved.is_relative_to(item.resolve()):
            raise OutputPathError(
                f"{name} {str(output)!r} is inside the input folder {str(item)!r}; choose a path outside it"
            )
    return output


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`, on failure removed.

    Example:
        >>> with atomic_output("out.mp4") as temporary:   # doctest: +SKIP
        ...     encode_to(temporary)
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def _check_frame(frame: np.ndarray, name: str = "frame") -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", type(frame).__name__)
        raise ValueError(f"`{name}` must be an (H, W, 3) RGB array, got shape {shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"`{name}` must have dtype uint8 (0–255), got {frame.dtype}")


def _pad_to_even(frame: np.ndarray) -> np.ndarray:
    # yuv420p needs even sides; replicate one edge row/column rather than dropping content.
    pad_bottom, pad_right = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_bottom or pad_right:
        frame = cv2.copyMakeBorder(frame, 0, pad_bottom, 0, pad_right, cv2.BORDER_REPLICATE)
    return frame


ENCODER_THREADS = 4
"""x264 threads, fixed so that the same frames give the same bytes on every machine (x264's output depends
on its thread count, and the automatic count depends on the CPU)."""

# x264's AVX-512 code gives run-to-run different bytes for the same frames (measured: 4 outputs from 24
# encodes; C, SSE2 and AVX2 give one), and its AVX/AVX2 paths round differently from C. Limiting x86-64 to
# SSE2, which every x86-64 CPU has, gives the same bytes on every run and every x86-64 machine (bit-exact with
# x264's C code) for about 15 % more encoding time, small beside the rest of a run.
_X264_PARAMS = "asm=SSE2" if platform.machine().lower() in ("x86_64", "amd64") else None


def _writer_time_base(fps: Fraction) -> Fraction:
    # A tick that divides one frame exactly (30000/1001 fps → 1/90000, 24000/1001 → 1/96000) and is fine
    # enough (≤ 1/90000 s) to keep variable-rate timestamps.
    multiple = max(1, -(-90000 // fps.numerator))
    return Fraction(1, fps.numerator * multiple)


class VideoWriter:
    """Encode frames to H.264 (yuv420p, BT.709, limited range) one at a time, with optional audio; atomic on close.

    Colour: RGB is converted with the BT.709 matrix at every size and the stream is tagged BT.709
    (primaries, transfer, matrix, limited range), so players that honour tags and players that assume
    BT.709 for HD both show the colours that went in. The same frames always give the same bytes (fixed
    encoder threads, bit-exact conversion, no dates in the file).

    Timing: frame i is shown at `time` seconds when given to `write` (keeping a variable-rate source's
    timestamps), else at `i / fps`. Audio from `audio_from` is taken from `audio_start` on its own clock,
    so a sound keeps its place relative to the frames.

    Use as a context manager; if the block raises, nothing appears under `path`.

    Args:
        path: output file (`.mp4`, `.mov` or `.mkv`).
        fps: nominal frame rate, exact (`Fraction(30000, 1001)`) or a float.
        crf: H.264 constant rate factor, 0 (lossless) to 51; 18 is visually lossless.
        audio_from: a video whose first audio track is copied (or re-encoded to AAC if it cannot be copied).
        audio_start: the time on `audio_from`'s clock (`VideoInfo.start_time(first frame)`) that becomes
            the output's time 0.
        preset: x264 speed preset.

    Example:
        >>> with VideoWriter("out.mp4", fps=25) as writer:   # doctest: +SKIP
        ...     for frame in frames:
        ...         writer.write(frame)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | Fraction,
        crf: int = 18,
        audio_from: str | os.PathLike | None = None,
        audio_start: float = 0.0,
        preset: str = "medium",
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".mov", ".mkv", ".m4v"):
            raise OutputPathError(f"`path` must end in .mp4, .mov, .mkv or .m4v for video output, got {str(self.path)!r}")
        if not fps or float(fps) <= 0:
            raise ValueError(f"`fps` must be > 0, got {fps!r}")
        if not 0 <= crf <= 51:
            raise ValueError(f"`crf` must be in [0, 51], got {crf}")
        self.fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        self.crf = crf
        self.preset = preset
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.audio_start = float(audio_start)
        self.frame_count = 0
        self.time_base = _writer_time_base(self.fps)
        self._last_pts: int | None = None
        self._container = None
        self._stream = None
        self._video_temporary = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:8]}.video{self.path.suffix}")

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray, time: float | None = None) -> None:
        """Append one RGB `uint8` `(H, W, 3)` frame shown from `time` seconds (default `index / fps`).

        A `time` not after the previous frame's (duplicate timestamps in a broken source) is moved one
        tick (≤ 1/90000 s) after it.

        Raises:
            ValueError: a frame that is not `(H, W, 3)` uint8, of another size than the first, or a negative
                or non-finite `time`.
        """
        import av

        _check_frame(frame)
        frame = _pad_to_even(frame)
        if self._container is None:
            self._open(frame.shape[1], frame.shape[0])
        elif (frame.shape[1], frame.shape[0]) != (self._stream.width, self._stream.height):
            raise ValueError(
                f"every frame must be {self._stream.width}×{self._stream.height}, got {frame.shape[1]}×{frame.shape[0]} "
                f"at frame {self.frame_count}"
            )
        pts = self._pts(time)
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame = rgb.reformat(
            format="yuv420p", dst_colorspace="itu709", dst_color_range=1, dst_color_trc=1, dst_color_primaries=1,
            interpolation="BILINEAR", threads=1,  # one slice: the same result whatever the CPU count
        )
        video_frame.pts = pts
        video_frame.time_base = self.time_base
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frame_count += 1
        self._last_pts = pts

    def _pts(self, time: float | None) -> int:
        if time is None:
            return int(round(self.frame_count / self.fps / self.time_base))
        if not np.isfinite(time) or time < 0:
            raise ValueError(f"`time` must be a finite number of seconds ≥ 0, got {time!r} at frame {self.frame_count}")
        pts = int(round(Fraction(time).limit_denominator(10**9) / self.time_base))
        if self._last_pts is not None and pts <= self._last_pts:
            # Duplicate source timestamps (broken files) must not fail a finished run: show it one tick later.
            logger.debug("frame %d at %.6f s is not after the previous frame; moved one tick later", self.frame_count, time)
            pts = self._last_pts + 1
        return pts

    def _open(self, width: int, height: int) -> None:
        import av

        self._container = av.open(_ffmpeg_url(self._video_temporary), mode="w")
        self._stream = self._container.add_stream("libx264", rate=self.fps)
        self._stream.time_base = self.time_base
        context = self._stream.codec_context
        context.time_base = self.time_base
        context.width, context.height, context.pix_fmt = width, height, "yuv420p"
        # BT.709 tags (AVCOL_PRI/TRC/SPC_BT709 = 1) and limited range (AVCOL_RANGE_MPEG = 1), as converted.
        context.color_primaries, context.color_trc, context.colorspace, context.color_range = 1, 1, 1, 1
        context.thread_count = ENCODER_THREADS
        options = {"crf": str(self.crf), "preset": self.preset, "threads": str(ENCODER_THREADS)}
        if _X264_PARAMS:
            options["x264-params"] = _X264_PARAMS
        self._stream.options = options

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last one written (one nominal frame long)."""
        if self._last_pts is None:
            return 0.0
        return float(self._last_pts * self.time_base + 1 / self.fps)

    def close(self) -> Path:
        """Flush, add audio, and rename to the final path; returns it."""
        if self._container is None:
            raise ValueError(f"no frames were written to {str(self.path)!r}")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            with atomic_output(self.path) as temporary:
                if self.audio_from is not None and _has_audio(self.audio_from):
                    _mux_audio(self._video_temporary, self.audio_from, temporary, self.audio_start, self.duration)
                else:
                    os.replace(self._video_temporary, temporary)
        finally:
            self._cleanup()
        return self.path

    def abort(self) -> None:
        """Discard everything written so far; the final path is not touched."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass
            self._container = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._video_temporary.exists():
            self._video_temporary.unlink()


def _has_audio(path: Path) -> bool:
    if path.is_dir() or not path.exists():
        return False
    with _open_container(path) as container:
        return bool(container.streams.audio)


def _mux_audio(video_path: Path, audio_source: Path, output: Path, start: float, duration: float) -> None:
    """Write `video_path`'s video plus `audio_source`'s first audio track over [start, start+duration) to `output`."""
    import av

    end = start + duration
    with av.open(_ffmpeg_url(video_path)) as video_in, av.open(_ffmpeg_url(audio_source)) as audio_in, av.open(
        _ffmpeg_url(output), "w"
    ) as out:
        video_stream_in = video_in.streams.video[0]
        audio_stream_in = audio_in.streams.audio[0]
        video_out = out.add_stream_from_template(video_stream_in)
        copy = audio_stream_in.codec_context.name in MP4_COPYABLE_AUDIO or output.suffix.lower() == ".mkv"
        if copy:
            audio_out = out.add_stream_from_template(audio_stream_in)
            audio_packets = list(_trimmed_audio_packets(audio_in, audio_stream_in, start, end))
        else:
            audio_out = out.add_stream("aac", rate=audio_stream_in.codec_context.sample_rate or 48000)
            audio_packets = list(_reencoded_audio_packets(audio_in, audio_stream_in, audio_out, start, end))
        for packet in audio_packets:
            packet.stream = audio_out
        # Interleave by time so players do not have to seek back and forth.
        audio_index = 0
        video_time = 0.0
        for packet in video_in.demux(video_stream_in):
            if not packet.size:  # the demuxer's flush packet
                continue
            # Matroska stores no decoding times, so B-frame packets come back with dts None: keep them all
            # (dropping one breaks every frame that refers to it) and interleave by the last known time.
            if packet.dts is not None:
                video_time = float(packet.dts * packet.time_base)
            while audio_index < len(audio_packets) and _packet_time(audio_packets[audio_index]) <= video_time:
                out.mux(audio_packets[audio_index])
                audio_index += 1
            packet.stream = video_out
            out.mux(packet)
        for packet in audio_packets[audio_index:]:
            out.mux(packet)


def _packet_time(packet) -> float:
    return float((packet.dts if packet.dts is not None else packet.pts or 0) * packet.time_base)


def _trimmed_audio_packets(container, stream, start: float, end: float):
    """Audio packets overlapping [start, end), shifted so `start` becomes time 0 (stream copy, packet accuracy)."""
    time_base = stream.time_base
    offset = int(round(start / time_base))
    for packet in container.demux(stream):
        if packet.pts is None or not packet.size:
            continue
        packet_start = float(packet.pts * time_base)
        packet_end = packet_start + float((packet.duration or 0) * time_base)
        if packet_end <= start + 1e-6:
            continue
        if packet_start >= end - 1e-6:
            break
        packet.pts -= offset
        if packet.dts is not None:
            packet.dts -= offset
        if packet.pts < 0:
            continue
        yield packet


def _reencoded_audio_packets(container, stream, audio_out, start: float, end: float):
    """Decode, trim sample-accurately to [start, end) on the source clock and encode to AAC from `start` = 0."""
    import av

    resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout.name, rate=audio_out.codec_context.sample_rate)
    rate = audio_out.codec_context.sample_rate
    fifo = av.AudioFifo()
    first_sample = None  # output sample index of the first kept sample: audio may start after `start`
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        frame_start = float(frame.pts * frame.time_base)
        for resampled in resampler.resample(frame):
            samples = resampled.to_ndarray()
            first = int(round((start - frame_start) * rate))
            last = int(round((end - frame_start) * rate))
            samples = samples[:, max(0, first) : max(0, min(samples.shape[1], last))]
            if samples.shape[1] == 0:
                continue
            if first_sample is None:
                first_sample = max(0, -first)
            trimmed = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=resampled.layout.name)
            trimmed.sample_rate = rate
            trimmed.pts = None
            fifo.write(trimmed)
            frame_start += resampled.samples / rate
        if frame_start >= end:
            break
    frame_size = audio_out.codec_context.frame_size or 1024
    pts = first_sample or 0
    while fifo.samples:
        chunk = fifo.read(min(frame_size, fifo.samples))
        chunk.pts = pts
        chunk.time_base = Fraction(1, rate)
        pts += chunk.samples
        yield from audio_out.encode(chunk)
    yield from audio_out.encode(None)


def write_video(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float | Fraction,
    crf: int = 18,
    audio_from: str | os.PathLike | None = None,
    audio_start: float = 0.0,
    inputs: Iterable[str | os.PathLike] = (),
    timestamps: Sequence[float] | None = None,
) -> Path:
    """Encode RGB `uint8` `(H, W, 3)` frames to an H.264 video (BT.709-tagged), atomically, with optional audio.

    Args:
        frames: any iterable (a generator streams).
        path: output file; its folder must exist.
        fps: exact nominal frame rate.
        crf: quality, 0–51 (18 ≈ visually lossless).
        audio_from: copy this video's audio track, trimmed to the output's span starting at `audio_start`.
        audio_start: the time on `audio_from`'s own clock that becomes the output's time 0; for frames read
            from `audio_from` starting at frame `s`, pass `info.start_time(s)` (clocks need not start at 0).
        inputs: paths the output must not replace (the input video is always added when given as `audio_from`).
        timestamps: the time in seconds at which each frame is shown (increasing, first usually 0), e.g.
            `info.output_times(start, end, stride)` to keep a variable-rate source's timing; `None` = `i / fps`.

    Returns:
        The output path.

    Raises:
        OutputPathError: the folder is missing or read-only, or `path` is an input.
        ValueError: no frames, frames of different sizes or not uint8 RGB.
    """
    protected = list(inputs) + ([audio_from] if audio_from is not None else [])
    path = check_output_path(path, protected)
    times = iter(timestamps) if timestamps is not None else None
    with VideoWriter(path, fps, crf=crf, audio_from=audio_from, audio_start=audio_start) as writer:
        for frame in frames:
            time = None if times is None else next(times, None)
            if times is not None and time is None:
                raise ValueError(f"`timestamps` holds {writer.frame_count} times but more frames were given")
            writer.write(frame, None if time is None else float(time))
    return path


def write_png_sequence(
    frames: Iterable[np.ndarray], folder: str | os.PathLike, start_index: int = 0, digits: int = 4,
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Write frames as `folder/0000.png, 0001.png, …` (each file atomically); creates `folder` if needed.

    `names` (file stems, one per frame) replaces the numbering, e.g. to keep a frame folder's own names.

    Returns:
        The written paths.
    """
    folder = check_output_path(folder, kind="folder", name="folder")
    folder.mkdir(exist_ok=True)
    written = []
    for offset, frame in enumerate(frames):
        name = names[offset] if names is not None else f"{start_index + offset:0{digits}d}"
        written.append(write_image(frame, folder / f"{name}.png"))
    return written
