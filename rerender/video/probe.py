"""Probing: `VideoInfo` and `probe_video` (display orientation, frame rate, pixel aspect, every frame's time)."""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from rerender.errors import ConfigError, InputNotFoundError, VideoReadError
from rerender.video.files import (
    IMAGE_EXTENSIONS,
    _log_once,
    _open_container,
    check_input_path,
    list_image_files,
    read_image_with_alpha,
    unexpanded_home,
)

logger = logging.getLogger(__name__)

__all__ = [
    "VideoInfo",
    "AudioTrack",
    "probe_video",
    "choose_audio_track",
    "describe_audio_track",
    "reading_notes",
    "count_frames",
    "DEFAULT_IMAGE_SEQUENCE_FPS",
]


DEFAULT_IMAGE_SEQUENCE_FPS = Fraction(25)


@dataclass(frozen=True)
class AudioTrack:
    """One audio track of a file, as `probe_video` lists them (`VideoInfo.audio_tracks`)."""

    number: int
    """Position among the file's audio tracks, from 0: what `output.audio_track` (`--audio-track`) takes."""
    stream_index: int
    """Index of the stream in the container (among all streams)."""
    codec: str
    """Codec name ("aac", "opus", "pcm_s16le", …)."""
    channels: int
    """Number of channels."""
    sample_rate: int
    """Samples per second."""
    language: str | None = None
    """The language tag ("eng", "fra"), if any."""
    default: bool = False
    """Whether the file flags it as the default track (the one players pick)."""
    title: str | None = None
    """The track's title tag, if any."""


@dataclass(frozen=True, kw_only=True)
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
    """Whether the input has an alpha channel (composited over `video.background` as it is read, with a warning)."""
    colorspace: str | None = None
    """The YUV matrix the file is tagged with ("bt709", "bt601", "bt2020"), `None` if untagged or RGB."""
    stream_index: int = 0
    """Index of the stream read: the moving picture, never a cover picture or thumbnail track."""
    audio_tracks: tuple[AudioTrack, ...] = ()
    """Every audio track, in file order."""
    audio_track: int | None = None
    """The audio track a player picks (`AudioTrack.number`): the one flagged default, else the first; None
    without audio. `has_audio`/`audio_codec` describe it."""
    interlaced: bool = False
    """Whether the decoder flags the frames as interlaced (then deinterlaced as read, unless turned off)."""
    skipped_packets: int = 0
    """Packets at the start that no player shows (the file was cut before a keyframe): not counted, not read."""

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
_DEFAULT = 1  # AV_DISPOSITION_DEFAULT: the track a player picks


_TRANSFERS = {16: "PQ", 18: "HLG"}  # AVColorTransferCharacteristic: SMPTE ST 2084, ARIB STD-B67


_COLORSPACES = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}  # AVColorSpace


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
    Fraction(rate)
    for rate in (
        Fraction(24000, 1001),
        24,
        25,
        Fraction(30000, 1001),
        30,
        48,
        50,
        Fraction(60000, 1001),
        60,
        100,
        120,
        240,
    )
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
    """Describe a video file or image folder: size on screen, nominal rate, every frame's time, audio tracks.

    Packets are read (not decoded) to learn which frames the decoder will present and when: frames hidden
    by an edit list are not counted, nor packets before the first keyframe (a file cut mid-GOP: no player shows
    them; how many is logged), and timestamps keep the file's own clock (which may not start at 0). Only the
    first frame is decoded, for its display matrix and interlacing flag. Logs a warning for HDR (PQ/HLG) input,
    which `read_frames` tone-maps to SDR (`tone_map_to_sdr`), for interlaced input (deinterlaced as read), and
    for input with an alpha channel (composited over `video.background`).

    Args:
        path: a video file or a folder of numbered images.
        image_sequence_fps: the frame rate of an image folder (default 25).

    Returns:
        A `VideoInfo`; `width`/`height` are the upright, square-pixel size that `read_frames` hands out.

    Raises:
        InputNotFoundError: `path` does not exist, or is a folder without images.
        VideoReadError: the file cannot be decoded, or has no video frames.
        ConfigError: `image_sequence_fps` is no number > 0.
    """
    path = check_input_path(path, "path")
    if image_sequence_fps is not None and (
        isinstance(image_sequence_fps, bool)
        or not isinstance(image_sequence_fps, numbers.Real)
        or not 0 < image_sequence_fps < float("inf")
    ):  # else 0 read as unset, -1 as a negative duration, NaN and text as Fraction's ValueError
        raise ConfigError(
            f"`image_sequence_fps` must be a number > 0 or None ({DEFAULT_IMAGE_SEQUENCE_FPS}), "
            f"got {image_sequence_fps!r}"
        )
    if not path.exists():
        raise InputNotFoundError(f"video not found: {str(path)!r}{unexpanded_home(path)}")
    if path.is_dir():
        return _probe_folder(path, image_sequence_fps)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoReadError(
            f"{str(path)!r} is a single image, not a video: `rerender animate` (rerender.animate) makes a clip of a "
            "still; for a sequence of frames, pass the folder that holds them"
        )
    with _open_container(path) as container:
        streams = _moving_streams(container)
        if not streams:
            raise VideoReadError(f"{str(path)!r} has no video stream")
        firsts, presented = _scan_packets(container, streams, path)
        # The main picture is the stream with the most frames (a thumbnail track has one), then the largest.
        stream = max(
            streams,
            key=lambda item: (len(presented[item.index]), item.codec_context.width * item.codec_context.height),
        )
        codec = stream.codec_context
        first = firsts.get(stream.index)
        pts, skipped = _shown_packets(presented[stream.index])
        if skipped:
            logger.warning(
                "%s begins with %d packets that cannot be decoded (cut before a keyframe); they are skipped, "
                "as players do: the video starts at its first keyframe",
                path,
                skipped,
            )
        if first is None:
            try:
                first = next(iter(codec.decode(None)), None)  # a decoder that holds frames back until the end
            except Exception:  # noqa: BLE001
                first = None
        if first is None or not pts:
            raise VideoReadError(
                f"{str(path)!r} has no video frames" if not pts else f"{str(path)!r} cannot be decoded"
            )
        return _describe(path, container, stream, first, pts, skipped)


def _numbering_gaps(files: Sequence[Path]) -> list[tuple[int, int]]:
    """The runs `(first, last)` of numbers missing from a folder of frames named by one pattern (`frame_0001.png`,
    `frame_0002.png`, …: the same text around the last number); none when the names follow no single pattern."""
    import re

    parts = [re.fullmatch(r"(.*?)(\d+)(\D*)", file.stem) for file in files]
    if len(files) < 2 or any(part is None for part in parts):
        return []
    if len({(part.group(1), part.group(3)) for part in parts}) != 1:
        return []
    numbers = sorted({int(part.group(2)) for part in parts})
    return [(low + 1, high - 1) for low, high in zip(numbers, numbers[1:]) if high - low > 1]


def _odd_names(files: Sequence[Path]) -> list[str]:
    """The images not named like most of the folder's (`cover.jpg` among `frame_0001.png` …): numbers aside, the
    name and type differ; none when every image follows one pattern."""
    import re

    patterns: dict[str, list[str]] = {}
    for file in files:
        patterns.setdefault(re.sub(r"\d+", "#", file.stem) + file.suffix.lower(), []).append(file.name)
    if len(patterns) < 2:
        return []
    most = max(patterns.values(), key=len)
    return [name for names in patterns.values() if names is not most for name in names]


def _probe_folder(path: Path, image_sequence_fps: float | Fraction | None) -> VideoInfo:
    files = list_image_files(path)
    odd = _odd_names(files)
    if odd:  # a cover picture or a reference left beside the frames would be read as a frame
        _log_once(
            "odd names",
            str(path),
            "%s holds %d image%s not named like its other frames (%s%s): every image is read as a frame, in name "
            "order; move the others out",
            path,
            len(odd),
            "s" if len(odd) > 1 else "",
            ", ".join(repr(name) for name in odd[:5]),
            " …" if len(odd) > 5 else "",
        )
    gaps = _numbering_gaps(files)
    if gaps:  # frames lost in a render or an export: the video would jump there without a word
        missing = sum(high - low + 1 for low, high in gaps)
        listed = ", ".join(str(low) if low == high else f"{low}–{high}" for low, high in gaps[:5])
        _log_once(
            "numbering gaps",
            str(path),
            "the frames in %s skip number%s %s%s (%d missing): the images are read one after another, so the "
            "video jumps there",
            path,
            "s" if missing > 1 else "",
            listed,
            " …" if len(gaps) > 5 else "",
            missing,
        )
    first, alpha = read_image_with_alpha(files[0])  # upright: the size a viewer shows
    fps = Fraction(image_sequence_fps).limit_denominator(1001) if image_sequence_fps else DEFAULT_IMAGE_SEQUENCE_FPS
    height, width = first.shape[:2]
    times = tuple(float(index / fps) for index in range(len(files)))
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        frame_count=len(files),
        rotation=0,
        has_audio=False,
        audio_codec=None,
        video_codec=None,
        is_image_sequence=True,
        timestamps=times,
        stored_width=width,
        stored_height=height,
        has_alpha=alpha is not None,
    )


def _scan_packets(
    container, streams, path: Path
) -> tuple[dict[int, object], dict[int, list[tuple[int | None, bool]]]]:
    """The first decoded frame of each stream, and each stream's presented packets as `(pts, is_keyframe)`."""
    firsts: dict[int, object] = {}
    presented: dict[int, list[tuple[int | None, bool]]] = {stream.index: [] for stream in streams}
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
            presented[index].append((packet.pts, packet.is_keyframe))  # pts None in raw streams (.h264)
    except Exception as error:  # noqa: BLE001 - a truncated or broken file: keep what was read
        import av

        if not isinstance(error, av.error.FFmpegError):
            raise
        logger.warning("stopped reading %s after %d packets: %s", path, sum(map(len, presented.values())), error)
    return firsts, presented


def _shown_packets(packets: list[tuple[int | None, bool]]) -> tuple[list[int | None], int]:
    """The pts of the packets a decoder presents, and how many leading ones it cannot decode.

    A stream cut before a keyframe (a TS segment, an MP4 cut mid-GOP) begins with packets that refer to
    pictures the file no longer holds: FFmpeg (and every player) shows nothing until the first keyframe,
    nor the pictures after it in decode order that are shown before it (they refer to the missing ones).
    """
    first_key = next((position for position, (_, key) in enumerate(packets) if key), None)
    if first_key is None:  # no keyframe flags at all (some raw streams): trust every packet
        return [pts for pts, _ in packets], 0
    key_pts = packets[first_key][0]
    shown = [pts for pts, _ in packets[first_key:] if key_pts is None or pts is None or pts >= key_pts]
    return shown, len(packets) - len(shown)


def _describe(path: Path, container, stream, first, pts: list[int | None], skipped: int) -> VideoInfo:
    """The `VideoInfo` of `stream` from its first decoded frame and the pts of the packets it presents."""
    codec = stream.codec_context
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
    width, height = _square_pixel_size(first.width, first.height, aspect)
    if rotation in (90, 270):
        width, height = height, width
    transfer = _TRANSFERS.get(int(first.color_trc or codec.color_trc or 0))  # the frame's tag, else the header's
    if transfer is not None:
        logger.warning(
            "%s is HDR (%s, BT.2020); it is tone-mapped to SDR (BT.709) as it is read, so the output is SDR",
            path,
            transfer,
        )
    # Grey + alpha, or three colours + alpha. The GIF decoder always outputs BGRA, transparent or not: look.
    has_alpha = len(first.format.components) in (2, 4)
    if has_alpha and codec.name == "gif":
        has_alpha = bool(first.to_ndarray(format="rgba")[..., 3].min() < 255)
    if has_alpha:
        logger.warning(
            "%s has an alpha channel (%s); transparent pixels are composited over `video.background` "
            "(white by default)",
            path,
            first.format.name,
        )
    interlaced = bool(getattr(first, "interlaced_frame", False))
    if interlaced:
        logger.warning(
            "%s is interlaced; it is deinterlaced as it is read (bwdif; `video.deinterlace: false` to "
            "keep the fields woven)",
            path,
        )
    tracks = _audio_tracks(container)
    chosen = choose_audio_track(tracks)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        frame_count=len(pts),
        rotation=rotation,
        has_audio=chosen is not None,
        audio_codec=tracks[chosen].codec if chosen is not None else None,
        video_codec=codec.name,
        is_image_sequence=False,
        timestamps=tuple(times.tolist()),
        stored_width=first.width,
        stored_height=first.height,
        sample_aspect_ratio=aspect,
        mirrored=mirrored,
        variable_frame_rate=_is_variable_rate(times, fps),
        hdr_transfer=transfer,
        has_alpha=has_alpha,
        colorspace=_COLORSPACES.get(int(codec.colorspace or 2)),
        stream_index=stream.index,
        audio_tracks=tracks,
        audio_track=chosen,
        interlaced=interlaced,
        skipped_packets=skipped,
    )


def _audio_tracks(container) -> tuple[AudioTrack, ...]:
    tracks = []
    for number, stream in enumerate(container.streams.audio):
        context = stream.codec_context
        metadata = dict(stream.metadata or {})
        tracks.append(
            AudioTrack(
                number=number,
                stream_index=stream.index,
                codec=context.name,
                channels=int(context.channels or 0),
                sample_rate=int(context.sample_rate or 0),
                language=stream.language or metadata.get("language"),
                default=bool(stream.disposition & _DEFAULT),
                title=metadata.get("title"),
            )
        )
    return tuple(tracks)


def choose_audio_track(tracks: Sequence[AudioTrack], requested: int | None = None) -> int | None:
    """The audio track an output carries: `requested` (`output.audio_track`), else the one a player picks
    (flagged default, else the first); None when there is no audio.

    Raises:
        ConfigError: `requested` is not one of the tracks (naming `output.audio_track` and the tracks there are).
    """
    if requested is not None:
        if not 0 <= requested < len(tracks):
            listed = (
                ", ".join(
                    f"{track.number} ({track.codec}{', ' + track.language if track.language else ''})"
                    for track in tracks
                )
                or "none"
            )
            raise ConfigError(
                f"`output.audio_track` (--audio-track) must be one of the source's audio tracks: "
                f"{listed}; got {requested}"
            )
        return requested
    if not tracks:
        return None
    return next((track.number for track in tracks if track.default), tracks[0].number)


def describe_audio_track(track: AudioTrack, chosen: bool = False) -> str:
    """One line for a track as `rerender info` lists it: "1: aac, 2 ch, 48000 Hz, eng, default (used)"."""
    parts = [f"{track.number}: {track.codec}", f"{track.channels} ch", f"{track.sample_rate} Hz"]
    parts += [value for value in (track.language, f"'{track.title}'" if track.title else None) if value]
    if track.default:
        parts.append("default")
    return ", ".join(parts) + (" (used)" if chosen else "")


def reading_notes(info: VideoInfo, deinterlace: bool = True) -> list[tuple[str, str]]:
    """`(label, text)` rows for what the reader does to this input beyond decoding, for `rerender info` and the
    web page (one wording for both): HDR, alpha, interlacing, skipped packets, each audio track."""
    rows = []
    if info.hdr_transfer:
        rows.append(("colour", f"HDR ({info.hdr_transfer}, BT.2020), tone-mapped to SDR (BT.709) when read"))
    if info.has_alpha:
        rows.append(("alpha", "transparent pixels composited over `video.background` (white by default)"))
    if info.interlaced:
        rows.append(
            ("interlaced", "deinterlaced when read (bwdif)" if deinterlace else "read as stored (deinterlace off)")
        )
    if info.skipped_packets:
        rows.append(
            ("skipped", f"{info.skipped_packets} leading packets before the first keyframe (no player shows them)")
        )
    for track in info.audio_tracks:
        rows.append(("audio", describe_audio_track(track, track.number == info.audio_track)))
    if not info.audio_tracks:
        rows.append(("audio", "none"))
    return rows


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
