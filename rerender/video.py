"""Video input and output: probing, streaming decode, crop/resize, H.264 and PNG writing with audio passthrough.

Frames at this boundary are RGB `uint8` arrays of shape `(H, W, 3)` (see the README's conventions table).
Everything streams: a 1,000-frame 1080p video is never held decoded in memory at once.

Inputs may be video files (mp4, mov, mkv, webm, avi, gif, … anything FFmpeg decodes) or folders of numbered
images (png, jpg, webp, bmp, tif), sorted naturally so `2.png` comes before `10.png`. Rotation metadata
(phones) is applied, so frames come out upright.

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

import logging
import os
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Literal

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
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_IMAGE_SEQUENCE_FPS = Fraction(25)
MP4_COPYABLE_AUDIO = ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")


# --------------------------------------------------------------------------------------------------------
# probing
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What the reader sees in a video file or image folder."""

    path: Path
    """The file or folder."""
    width: int
    """Frame width in pixels, after applying rotation."""
    height: int
    """Frame height in pixels, after applying rotation."""
    fps: Fraction
    """Frame rate as an exact fraction (e.g. 30000/1001); image folders use the fps given to `probe_video`."""
    frame_count: int
    """Number of decodable video frames."""
    rotation: int
    """Display rotation metadata in degrees (0, 90, 180, 270), already applied by the reader."""
    has_audio: bool
    """Whether there is an audio stream."""
    audio_codec: str | None
    """Name of the first audio stream's codec, if any."""
    video_codec: str | None
    """Name of the video codec; `None` for image folders."""
    is_image_sequence: bool
    """True for a folder of numbered images."""

    @property
    def duration(self) -> float:
        """Length in seconds (`frame_count / fps`)."""
        return float(self.frame_count / self.fps) if self.fps else 0.0

    @property
    def size(self) -> tuple[int, int]:
        """`(width, height)` in pixels."""
        return self.width, self.height


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


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB `uint8` `(H, W, 3)` (alpha dropped, grey expanded). Works with non-ASCII paths.

    Raises:
        InputNotFoundError: the file does not exist.
        VideoReadError: the file is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"image not found: {str(path)!r}")
    # cv2.imread cannot open non-ASCII paths on every platform; decoding bytes always works.
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise VideoReadError(f"{str(path)!r} is not a readable image")
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


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise VideoReadError(f"{str(path)!r} is not a readable video ({error})") from None


def _rotation_of(frame) -> int:
    rotation = getattr(frame, "rotation", 0) or 0
    return int(round(rotation)) % 360


def _apply_rotation(image: np.ndarray, rotation: int) -> np.ndarray:
    # FFmpeg's display matrix angle is counter-clockwise; the upright picture turns the other way.
    if rotation == 90:
        return np.ascontiguousarray(np.rot90(image, k=-1))
    if rotation == 180:
        return np.ascontiguousarray(image[::-1, ::-1])
    if rotation == 270:
        return np.ascontiguousarray(np.rot90(image, k=1))
    return image


def probe_video(path: str | os.PathLike, image_sequence_fps: float | Fraction | None = None) -> VideoInfo:
    """Describe a video file or image folder without decoding it (only the first frame is decoded).

    Args:
        path: a video file or a folder of numbered images.
        image_sequence_fps: the frame rate reported for an image folder (default 25).

    Raises:
        InputNotFoundError: `path` does not exist, or is a folder without images.
        VideoReadError: the file cannot be decoded, or has no video frames.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"video not found: {str(path)!r}")
    if path.is_dir():
        files = list_image_files(path)
        first = read_image(files[0])
        fps = Fraction(image_sequence_fps).limit_denominator(1001) if image_sequence_fps else DEFAULT_IMAGE_SEQUENCE_FPS
        return VideoInfo(path, first.shape[1], first.shape[0], fps, len(files), 0, False, None, None, True)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoReadError(f"{str(path)!r} is a single image; pass the folder that holds the frames")
    with _open_container(path) as container:
        if not container.streams.video:
            raise VideoReadError(f"{str(path)!r} has no video stream")
        stream = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        fps = Fraction(stream.average_rate or stream.guessed_rate or stream.base_rate or 0)
        if fps <= 0:
            fps = DEFAULT_IMAGE_SEQUENCE_FPS
        try:
            first = next(container.decode(stream), None)
        except Exception as error:  # noqa: BLE001 - any FFmpeg failure here means the file is unusable
            raise VideoReadError(f"{str(path)!r} cannot be decoded ({error})") from None
        if first is None:
            raise VideoReadError(f"{str(path)!r} has no video frames")
        rotation = _rotation_of(first)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        video_codec = stream.codec_context.name
        audio_codec = audio.codec_context.name if audio is not None else None
    frame_count = count_frames(path)
    if frame_count == 0:
        raise VideoReadError(f"{str(path)!r} has no video frames")
    return VideoInfo(path, width, height, fps, frame_count, rotation, audio is not None, audio_codec, video_codec, False)


def count_frames(path: str | os.PathLike) -> int:
    """Number of video frames, counted from the container's packets (no decoding) when not in the header."""
    path = Path(path)
    if path.is_dir():
        return len(list_image_files(path))
    with _open_container(path) as container:
        stream = container.streams.video[0]
        if stream.frames and path.suffix.lower() in (".mp4", ".mov", ".m4v"):
            return int(stream.frames)
        count = 0
        try:
            for packet in container.demux(stream):
                if packet.size:
                    count += 1
        except Exception as error:  # noqa: BLE001
            logger.warning("stopped counting frames of %s at %d: %s", path, count, error)
        return count


# --------------------------------------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------------------------------------


def compute_output_size(
    width: int,
    height: int,
    resolution: int = 512,
    resize_side: Literal["long", "short"] = "long",
    size_multiple: int = 64,
) -> tuple[int, int]:
    """Size after resizing so the chosen side becomes `resolution`, both sides rounded to `size_multiple`.

    Args:
        width: input width in pixels (after cropping).
        height: input height in pixels (after cropping).
        resolution: target length of the chosen side, before rounding.
        resize_side: "long" (default, the official code since 2023-10) or "short" (the paper, FRESCO).
        size_multiple: both sides are rounded to the nearest multiple of this (64 for SD), at least one multiple.

    Returns:
        `(width, height)` of the output.

    Example:
        >>> compute_output_size(780, 506, 512, "long", 64)
        (512, 320)
        >>> compute_output_size(780, 506, 512, "short", 64)
        (768, 512)
    """
    if width < 1 or height < 1:
        raise ValueError(f"`width` and `height` must be ≥ 1, got {width}×{height}")
    if resize_side not in ("long", "short"):
        raise ValueError(f"`resize_side` must be 'long' or 'short', got {resize_side!r}")
    side = max(width, height) if resize_side == "long" else min(width, height)
    scale = resolution / side
    new_width = max(size_multiple, int(round(width * scale / size_multiple)) * size_multiple)
    new_height = max(size_multiple, int(round(height * scale / size_multiple)) * size_multiple)
    return new_width, new_height


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
    """Crop `(left, top, right, bottom)` then resize to `size = (width, height)` (or keep the cropped size)."""
    frame = crop_frame(frame, *crop)
    return resize_frame(frame, size) if size is not None else np.ascontiguousarray(frame)


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
    size_multiple: int = 64,
    info: VideoInfo | None = None,
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
        size_multiple: round both sides to a multiple of this (only when resizing).
        info: a `probe_video` result to skip probing again.

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
    return _iterate_frames(info, start, end, stride, tuple(crop), size)


def _iterate_frames(info: VideoInfo, start: int, end: int, stride: int, crop, size) -> Iterator[np.ndarray]:
    wanted = range(start, end, stride)
    if info.is_image_sequence:
        files = list_image_files(info.path)
        for index in wanted:
            frame = read_image(files[index])
            if frame.shape[:2] != (info.height, info.width):
                frame = resize_frame(frame, (info.width, info.height))
            yield preprocess_frame(frame, crop, size)
        return
    with _open_container(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                if index >= end:
                    break
                if index < start or (index - start) % stride:
                    continue
                image = _apply_rotation(frame.to_ndarray(format="rgb24"), info.rotation)
                yield preprocess_frame(image, crop, size)
        except Exception as error:  # noqa: BLE001 - a truncated file: keep what decoded
            import av

            if not isinstance(error, av.error.FFmpegError):
                raise
            logger.warning("decoding %s stopped at frame %d: %s", info.path, index, error)


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


class VideoWriter:
    """Encode frames to H.264 (yuv420p) one at a time, optionally with audio from a source; atomic on close.

    Use as a context manager; if the block raises, nothing appears under `path`.

    Args:
        path: output file (`.mp4`, `.mov` or `.mkv`).
        fps: frame rate, exact (`Fraction(30000, 1001)`) or a float.
        crf: H.264 constant rate factor, 0 (lossless) to 51; 18 is visually lossless.
        audio_from: a video whose first audio track is copied (or re-encoded to AAC if it cannot be copied).
        audio_start: where the copied audio starts in the source, in seconds.
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

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB `uint8` `(H, W, 3)` frame; all frames must share one size."""
        import av

        _check_frame(frame)
        frame = _pad_to_even(frame)
        if self._container is None:
            self._container = av.open(str(self._video_temporary), mode="w")
            self._stream = self._container.add_stream("libx264", rate=self.fps)
            self._stream.width, self._stream.height = frame.shape[1], frame.shape[0]
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf), "preset": self.preset}
        elif (frame.shape[1], frame.shape[0]) != (self._stream.width, self._stream.height):
            raise ValueError(
                f"every frame must be {self._stream.width}×{self._stream.height}, got {frame.shape[1]}×{frame.shape[0]} "
                f"at frame {self.frame_count}"
            )
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frame_count
        video_frame.time_base = 1 / self.fps
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frame_count += 1

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
                duration = self.frame_count / float(self.fps)
                if self.audio_from is not None and _has_audio(self.audio_from):
                    _mux_audio(self._video_temporary, self.audio_from, temporary, self.audio_start, duration)
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
    with av.open(str(video_path)) as video_in, av.open(str(audio_source)) as audio_in, av.open(str(output), "w") as out:
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
        for packet in video_in.demux(video_stream_in):
            if packet.dts is None:
                continue
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
    """Decode, trim sample-accurately and encode to AAC."""
    import av

    resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout.name, rate=audio_out.codec_context.sample_rate)
    rate = audio_out.codec_context.sample_rate
    fifo = av.AudioFifo()
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
            trimmed = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=resampled.layout.name)
            trimmed.sample_rate = rate
            trimmed.pts = None
            fifo.write(trimmed)
        if frame_start >= end:
            break
    frame_size = audio_out.codec_context.frame_size or 1024
    pts = 0
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
) -> Path:
    """Encode RGB `uint8` `(H, W, 3)` frames to an H.264 video at `fps`, atomically, with optional audio.

    Args:
        frames: any iterable (a generator streams).
        path: output file; its folder must exist.
        fps: exact frame rate.
        crf: quality, 0–51 (18 ≈ visually lossless).
        audio_from: copy this video's audio track, trimmed to the output's span starting at `audio_start`.
        audio_start: seconds into `audio_from` where the output starts.
        inputs: paths the output must not replace (the input video is always added when given as `audio_from`).

    Returns:
        The output path.

    Raises:
        OutputPathError: the folder is missing or read-only, or `path` is an input.
        ValueError: no frames, frames of different sizes or not uint8 RGB.
    """
    protected = list(inputs) + ([audio_from] if audio_from is not None else [])
    path = check_output_path(path, protected)
    with VideoWriter(path, fps, crf=crf, audio_from=audio_from, audio_start=audio_start) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def write_png_sequence(
    frames: Iterable[np.ndarray], folder: str | os.PathLike, start_index: int = 0, digits: int = 4
) -> list[Path]:
    """Write frames as `folder/0000.png, 0001.png, …` (each file atomically); creates `folder` if needed.

    Returns:
        The written paths.
    """
    folder = check_output_path(folder, kind="folder", name="folder")
    folder.mkdir(exist_ok=True)
    written = []
    for offset, frame in enumerate(frames):
        written.append(write_image(frame, folder / f"{start_index + offset:0{digits}d}.png"))
    return written
