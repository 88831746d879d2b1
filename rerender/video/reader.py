"""Reading: `read_frames` streams the selected frames as a viewer sees them (seek with fallback, YUV → RGB)."""

from __future__ import annotations

import bisect
import logging
import numbers
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

from rerender.errors import ConfigError
from rerender.video.files import (
    DEFAULT_BACKGROUND,
    _log_once,
    _open_container,
    composite,
    list_image_files,
    read_image,
)
from rerender.video.geometry import compute_output_size, letterbox_frame, preprocess_frame, resize_frame
from rerender.video.hdr import tone_map_to_sdr
from rerender.video.probe import VideoInfo, _orient, _square_pixel_size, probe_video

if TYPE_CHECKING:
    from rerender.config import Crop

logger = logging.getLogger(__name__)

__all__ = ["read_frames"]


def _check_options(start, end, stride, resolution, resize_side, size_multiple, info) -> None:
    """`read_frames`' options of the wrong kind, before the file is opened (not a TypeError in the middle)."""
    for name, value in (("start", start), ("end", end), ("stride", stride)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise ConfigError(f"`{name}` must be an integer, got {value!r}")
    if resolution is not None and (
        isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) or resolution < 1
    ):
        raise ConfigError(f"`resolution` must be an integer ≥ 1 or None, got {resolution!r}")
    if resolution is not None and (  # used only when resizing
        isinstance(size_multiple, bool) or not isinstance(size_multiple, numbers.Integral) or size_multiple < 1
    ):
        raise ConfigError(f"`size_multiple` must be an integer ≥ 1, got {size_multiple!r}")
    if resize_side not in ("long", "short"):
        raise ConfigError(f"`resize_side` must be 'long' or 'short', got {resize_side!r}")
    if info is not None and not isinstance(info, VideoInfo):
        raise ConfigError(f"`info` must be a VideoInfo (probe_video's) or None, got {info!r}")


def _check_range(info: VideoInfo, start: int, end: int | None, stride: int) -> int:
    if stride < 1:
        raise ConfigError(f"`stride` must be ≥ 1, got {stride}")
    if start < 0 or start >= info.frame_count:
        raise ConfigError(
            f"`start` must be in [0, {info.frame_count - 1}] for {info.path.name} ({info.frame_count} frames), got {start}"
        )
    if end is None:
        return info.frame_count
    if end <= start or end > info.frame_count:
        raise ConfigError(
            f"`end` must be in [{start + 1}, {info.frame_count}] for {info.path.name} ({info.frame_count} frames), got {end}"
        )
    return end


class _Look(NamedTuple):
    """How decoded pictures become the frames handed out (after orientation and square pixels)."""

    crop: tuple[int, int, int, int]
    size: tuple[int, int] | None
    background: str | tuple[int, int, int]
    deinterlace: bool


def _crop_tuple(crop) -> tuple[int, int, int, int]:
    """`(left, top, right, bottom)` from a `rerender.config.Crop`, a 4-sequence or None (no crop)."""
    if crop is None:
        return 0, 0, 0, 0
    if all(hasattr(crop, side) for side in ("left", "top", "right", "bottom")):
        return int(crop.left), int(crop.top), int(crop.right), int(crop.bottom)
    try:
        left, top, right, bottom = (int(value) for value in crop)
    except (TypeError, ValueError):
        raise ConfigError(f"`crop` must be a Crop or (left, top, right, bottom) in pixels, got {crop!r}") from None
    return left, top, right, bottom


def read_frames(
    path: str | os.PathLike,
    *,
    start: int = 0,
    end: int | None = None,
    stride: int = 1,
    crop: Crop | tuple[int, int, int, int] | None = None,
    resolution: int | None = None,
    resize_side: Literal["long", "short"] = "long",
    size_multiple: int = 8,
    info: VideoInfo | None = None,
    seek: bool = False,
    background: str | tuple[int, int, int] = DEFAULT_BACKGROUND,
    deinterlace: bool = True,
) -> Iterator[np.ndarray]:
    """Stream frames `start, start+stride, … < end` as RGB `uint8` `(H, W, 3)` as a viewer sees them, cropped
    and resized.

    The range and crop are checked before the first frame is decoded; frames are decoded one at a time. A
    frame whose stored size differs from the first one's (a resolution change mid-stream) is fitted into the
    first one's size keeping its aspect (black bars, as players do; logged once), never stretched; so is an
    image of another size in an image folder.

    Args:
        path: a video file or an image folder.
        start: first frame index (0-based).
        end: one past the last frame index; `None` = to the end.
        stride: keep every n-th frame.
        crop: a `rerender.config.Crop` or `(left, top, right, bottom)`: pixels removed before resizing.
        resolution: length of the `resize_side` side after resizing; `None` keeps the cropped size.
        resize_side: "long" or "short".
        size_multiple: round both sides to a multiple of this (only when resizing); frames are fitted into
            that size without distortion (`fit_frame`).
        info: a `probe_video` result to skip probing again.
        seek: jump to the key frame before `start` instead of decoding from the first frame (for a chunk of a
            long video: `rerender.workflow.executors.RayExecutor`). The frames are the same: each decoded frame's
            timestamp is checked against `info.timestamps`, and where they disagree (or the file has no
            timestamps) the reader decodes from the beginning instead.
        background: what transparent pixels are composited over (`video.background`; images and videos with
            an alpha channel).
        deinterlace: deinterlace frames the decoder flags as interlaced (FFmpeg's bwdif, one frame per frame;
            `video.deinterlace`).

    Raises:
        InputNotFoundError, VideoReadError: as `probe_video`.
        ConfigError: range or crop outside the video (a ValueError).
    """
    _check_options(start, end, stride, resolution, resize_side, size_multiple, info)
    info = info or probe_video(path)
    end = _check_range(info, start, end, stride)
    crop = _crop_tuple(crop)
    left, top, right, bottom = crop
    cropped_width, cropped_height = info.width - left - right, info.height - top - bottom
    if min(crop) < 0 or cropped_width < 1 or cropped_height < 1:
        raise ConfigError(f"`crop` {crop} must be ≥ 0 and leave at least 1 px of the {info.width}×{info.height} frame")
    size = None
    if resolution is not None:
        size = compute_output_size(cropped_width, cropped_height, resolution, resize_side, size_multiple)
    return _iterate_frames(info, start, end, stride, _Look(crop, size, background, deinterlace), seek)


def _iterate_folder(info: VideoInfo, wanted: range, look: _Look) -> Iterator[np.ndarray]:
    files = list_image_files(info.path)
    for index in wanted:
        frame = read_image(files[index], background=look.background)
        if frame.shape[:2] != (info.height, info.width):
            _log_once(
                "size change",
                str(info.path),
                "%s is %d×%d where the folder's first image is %d×%d: it is "
                "fitted into that size keeping its aspect (black bars), and so is any other such image",
                files[index],
                frame.shape[1],
                frame.shape[0],
                info.width,
                info.height,
            )
            frame = letterbox_frame(frame, (info.width, info.height))
        yield preprocess_frame(frame, look.crop, look.size)


def _iterate_frames(
    info: VideoInfo, start: int, end: int, stride: int, look: _Look, seek: bool = False
) -> Iterator[np.ndarray]:
    wanted = range(start, end, stride)
    if info.is_image_sequence:
        yield from _iterate_folder(info, wanted, look)
        return
    with _open_container(info.path) as container:
        stream = container.streams[info.stream_index]
        stream.thread_type = "AUTO"
        index = -1
        seeking = seek and start > 0 and len(info.timestamps) == info.frame_count and stream.time_base is not None
        if seeking:  # to the key frame at or before `start`; the first decoded frame's time says which frame it is
            import av

            try:
                container.seek(
                    int(round(info.timestamps[start] / float(stream.time_base))), stream=stream, backward=True
                )
            except av.error.FFmpegError:  # a raw stream cannot seek: decode from the start
                yield from _iterate_frames(info, start, end, stride, look)
                return
        first_time = info.timestamps[0] if info.timestamps and not seeking else None
        try:
            for frame in _decoded(container, stream, info, look.deinterlace):
                if (
                    first_time is not None
                    and frame.pts is not None
                    and frame.time is not None
                    and frame.time < first_time - 1e-6
                ):
                    continue  # shown before the first presented frame (a decoder that outputs a cut GOP's pictures)
                index += 1
                if seeking:
                    # frames after a seek are counted from the first one's place in the timeline, each checked
                    position = _timeline_index(info.timestamps, frame, stream.time_base)
                    if index == 0 and position is not None and position <= start:
                        index = position
                    if position != index:  # not the frame a decode from the start would give here: do that instead
                        resume = next((wanted_index for wanted_index in wanted if wanted_index >= max(index, 0)), end)
                        yield from _iterate_frames(info, resume, end, stride, look) if resume < end else ()
                        return
                if index >= end:
                    break
                if index < start or (index - start) % stride:
                    continue
                yield preprocess_frame(_as_shown(frame, info, look, index), look.crop, look.size)
        except Exception as error:  # noqa: BLE001 - a truncated file: keep what decoded
            import av

            if not isinstance(error, av.error.FFmpegError):
                raise
            logger.warning("decoding %s stopped at frame %d: %s", info.path, index, error)


def _as_shown(frame, info: VideoInfo, look: _Look, index: int) -> np.ndarray:
    """A decoded picture as a viewer sees it: RGB, square pixels, upright, at the video's size on screen."""
    image = _to_rgb(frame, info.hdr_transfer, look.background)  # a frame with alpha: composited (GIF, ProRes 4444)
    square = _square_pixel_size(info.stored_width, info.stored_height, info.sample_aspect_ratio)
    if (frame.width, frame.height) == (info.stored_width, info.stored_height):
        image = resize_frame(image, square)  # non-square pixels → square ones
    else:  # the resolution changed mid-stream: fit, as players do, never stretch
        _log_once(
            "size change",
            str(info.path),
            "%s changes resolution at frame %d (%d×%d, the video began at "
            "%d×%d): such frames are fitted into %d×%d keeping their aspect (black bars)",
            info.path,
            index,
            frame.width,
            frame.height,
            info.stored_width,
            info.stored_height,
            *square,
        )
        own = _square_pixel_size(frame.width, frame.height, info.sample_aspect_ratio)
        image = letterbox_frame(resize_frame(image, own), square)
    return _orient(image, info.rotation, info.mirrored)


def _decoded(container, stream, info: VideoInfo, deinterlace: bool) -> Iterator:
    """The stream's decoded frames; interlaced ones through FFmpeg's bwdif (one frame out per frame in)."""
    frames = container.decode(stream)
    if not (deinterlace and info.interlaced):
        yield from frames
        return
    graph, shape = None, None
    for frame in frames:
        if graph is None or (frame.width, frame.height, frame.format.name) != shape:
            if graph is not None:  # a new size or pixel format: flush, then a graph for it
                yield from _pulled(graph, flush=True)
            graph, shape = _bwdif(frame, stream.time_base), (frame.width, frame.height, frame.format.name)
        graph.push(frame)
        yield from _pulled(graph)
    if graph is not None:
        yield from _pulled(graph, flush=True)


def _bwdif(frame, time_base):
    import av

    graph = av.filter.Graph()
    source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name, time_base=time_base)
    # send_frame: one output frame per input frame (frame counts and times stay); deint=interlaced: only frames
    # flagged interlaced are touched.
    deinterlacer = graph.add("bwdif", "mode=send_frame:parity=auto:deint=interlaced")
    sink = graph.add("buffersink")
    source.link_to(deinterlacer)
    deinterlacer.link_to(sink)
    graph.configure()
    return graph


def _pulled(graph, flush: bool = False) -> Iterator:
    import av

    if flush:
        graph.push(None)
    while True:
        try:
            yield graph.pull()
        except (BlockingIOError, av.error.EOFError):
            return


def _timeline_index(timestamps: Sequence[float], frame, time_base) -> int | None:
    """The index of the frame whose probed time (`VideoInfo.timestamps`) is `frame`'s, or None (untimed or unknown)."""
    if frame.pts is None:
        return None
    time = float(np.float64(frame.pts) * float(time_base))  # as `probe_video` computes them
    position = bisect.bisect_left(timestamps, time - 1e-9)
    return position if position < len(timestamps) and abs(timestamps[position] - time) <= 1e-9 else None


def _to_rgb(frame, hdr_transfer: str | None = None, background=None) -> np.ndarray:
    """RGB `uint8` from a decoded frame, with the YUV matrix and range the frame is tagged with (HDR tone-mapped);
    with a `background`, a frame with alpha is composited over it."""
    if background is not None and len(frame.format.components) in (2, 4):
        rgba = frame.to_ndarray(format="rgba")
        return composite(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]), background)
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
    return frame.to_ndarray(
        format="rgb24", src_colorspace=matrix, src_color_range=range_tag or None, dst_color_range=2
    )
