"""Writing: `VideoWriter` (H.264, BT.709, deterministic bytes), `write_video`, `write_png_sequence`."""

from __future__ import annotations

import logging
import numbers
import os
import platform
import uuid
from collections.abc import Iterable, Sequence, Sized
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from rerender.errors import ConfigError, FlowInputError, OutputPathError
from rerender.video.audio import _mux_audio, source_audio_track
from rerender.video.files import (
    _FULL_DISK_ERRNOS,
    WRITABLE_SUFFIXES,
    WRITER_TAG,
    _check_frame,
    _ffmpeg_url,
    atomic_output,
    check_output_path,
    disk_full_error,
    write_image,
)

logger = logging.getLogger(__name__)

__all__ = ["ENCODER_THREADS", "VideoWriter", "write_video", "write_png_sequence"]


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
        audio_from: a video whose audio track is copied (or re-encoded to AAC if it cannot be copied).
        audio_start: the time on `audio_from`'s clock (`VideoInfo.start_time(first frame)`) that becomes
            the output's time 0.
        preset: x264 speed preset.
        audio_track: which audio track of `audio_from` (0 = its first audio track; `output.audio_track`);
            `None` = the one a player picks (flagged default, else the first). Checked here, before any frame.
        expected_frames: how many frames will be written, if known: a full disk's message then says how much
            space the video needs.

    Raises:
        DiskFullError: the disk filled up (from `write` or `close`), naming the output's folder, its free space
            and the space needed; nothing is left under `path`.

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
        audio_track: int | None = None,
        expected_frames: int | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in WRITABLE_SUFFIXES:
            raise OutputPathError(
                f"`path` must end in {', '.join(WRITABLE_SUFFIXES)} for video output, got {str(self.path)!r}"
            )
        if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < fps < float("inf"):
            raise ConfigError(f"`fps` must be a number > 0, got {fps!r}")
        if isinstance(crf, bool) or not isinstance(crf, numbers.Integral) or not 0 <= crf <= 51:
            raise ConfigError(f"`crf` must be an integer in [0, 51], got {crf!r}")
        self.fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        self.crf = crf
        self.preset = preset
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.audio_start = float(audio_start)
        self.audio_track = source_audio_track(self.audio_from, audio_track) if self.audio_from is not None else None
        self.expected_frames = expected_frames
        self.frame_count = 0
        self.time_base = _writer_time_base(self.fps)
        self._last_pts: int | None = None
        self._container = None
        self._stream = None
        self._video_temporary = self.path.with_name(
            f".{self.path.stem}.{uuid.uuid4().hex[:8]}.video{self.path.suffix}"
        )

    def __enter__(self) -> VideoWriter:
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
            raise FlowInputError(
                f"every frame must be {self._stream.width}×{self._stream.height}, got {frame.shape[1]}×{frame.shape[0]} "
                f"at frame {self.frame_count}"
            )
        pts = self._pts(time)
        try:
            self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"), pts)
        except OSError as error:
            self._raise_if_full(error, self._bytes_still_needed())
            raise
        self.frame_count += 1
        self._last_pts = pts

    def _encode(self, rgb, pts: int) -> None:
        video_frame = rgb.reformat(
            format="yuv420p",
            dst_colorspace="itu709",
            dst_color_range=1,
            dst_color_trc=1,
            dst_color_primaries=1,
            interpolation="BILINEAR",
            threads=1,  # one slice: the same result whatever the CPU count
        )
        video_frame.pts = pts
        video_frame.time_base = self.time_base
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)

    def _written(self) -> int:
        try:
            return self._video_temporary.stat().st_size
        except OSError:
            return 0

    def _bytes_still_needed(self) -> int | None:
        # At the rate written so far, the rest of the expected frames (FFmpeg buffers: a lower bound).
        written = self._written()
        if not self.expected_frames or not self.frame_count or not written:
            return None
        return max(0, int(written / self.frame_count * (self.expected_frames - self.frame_count)))

    def _raise_if_full(self, error: OSError, needed: int | None) -> None:
        # FFmpeg names its URL ('file:…' of the temporary file): name the output and its folder instead.
        if getattr(error, "errno", None) in _FULL_DISK_ERRNOS:
            self.abort()  # first: the free space then counts what the partial video held
            raise disk_full_error(error, self.path, needed) from None

    def _pts(self, time: float | None) -> int:
        if time is None:
            return int(round(self.frame_count / self.fps / self.time_base))
        if not np.isfinite(time) or time < 0:
            raise ValueError(
                f"`time` must be a finite number of seconds ≥ 0, got {time!r} at frame {self.frame_count}"
            )
        pts = int(round(Fraction(time).limit_denominator(10**9) / self.time_base))
        if self._last_pts is not None and pts <= self._last_pts:
            # Duplicate source timestamps (broken files) must not fail a finished run: show it one tick later.
            logger.debug(
                "frame %d at %.6f s is not after the previous frame; moved one tick later", self.frame_count, time
            )
            pts = self._last_pts + 1
        return pts

    def _open(self, width: int, height: int) -> None:
        import av

        self._container = av.open(_ffmpeg_url(self._video_temporary), mode="w")
        self._container.metadata["comment"] = WRITER_TAG  # how a later run knows this file is ours to replace
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
            raise ConfigError(f"no frames were written to {str(self.path)!r}")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            with atomic_output(self.path) as temporary:
                if self.audio_track is not None:
                    _mux_audio(
                        self._video_temporary,
                        self.audio_from,
                        temporary,
                        self.audio_start,
                        self.duration,
                        self.audio_track,
                    )
                else:
                    os.replace(self._video_temporary, temporary)
        except OSError as error:
            self._raise_if_full(error, self._written() or None)  # the audio mux copies the video once more
            raise
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


def write_video(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float | Fraction,
    crf: int = 18,
    audio_from: str | os.PathLike | None = None,
    audio_start: float = 0.0,
    inputs: Iterable[str | os.PathLike] = (),
    timestamps: Sequence[float] | None = None,
    audio_track: int | None = None,
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
        audio_track: which audio track of `audio_from` (`output.audio_track`; 0 = the first audio track);
            `None` = the one a player picks (flagged default, else the first).

    Returns:
        The output path.

    Raises:
        OutputPathError: the folder is missing or read-only, or `path` is an input.
        ValueError: no frames, frames of different sizes or not uint8 RGB.
        ConfigError: `audio_track` is not one of `audio_from`'s audio tracks (before any frame is encoded).
        DiskFullError: the disk filled up, naming the output's folder, its free space and the space needed.
    """
    protected = list(inputs) + ([audio_from] if audio_from is not None else [])
    path = check_output_path(path, protected)
    times = iter(timestamps) if timestamps is not None else None
    expected = len(timestamps) if timestamps is not None else (len(frames) if isinstance(frames, Sized) else None)
    with VideoWriter(
        path,
        fps,
        crf=crf,
        audio_from=audio_from,
        audio_start=audio_start,
        audio_track=audio_track,
        expected_frames=expected,
    ) as writer:
        for frame in frames:
            time = None if times is None else next(times, None)
            if times is not None and time is None:
                raise ConfigError(f"`timestamps` holds {writer.frame_count} times but more frames were given")
            writer.write(frame, None if time is None else float(time))
    return path


def write_png_sequence(
    frames: Iterable[np.ndarray],
    folder: str | os.PathLike,
    start_index: int = 0,
    digits: int = 4,
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
