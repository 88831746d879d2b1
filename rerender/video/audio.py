"""Audio: the source's track trimmed to the output's span and muxed beside the video (copied, or re-encoded to AAC)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from rerender.errors import ConfigError
from rerender.video.files import _ffmpeg_url, _open_container
from rerender.video.probe import _audio_tracks, choose_audio_track

__all__ = ["MP4_COPYABLE_AUDIO", "source_audio_track"]


MP4_COPYABLE_AUDIO = ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")

COPYABLE_AUDIO = {
    ".mp4": MP4_COPYABLE_AUDIO,
    ".mov": ("aac", "mp3", "alac", "ac3", "eac3"),
    ".m4v": ("aac", "alac", "ac3"),
}
"""Audio codecs each output container takes as they are (FFmpeg's muxers: QuickTime has no Opus or FLAC, the
iPod-flavoured .m4v fewer still); any other is re-encoded to AAC, and Matroska (.mkv) takes every codec."""


def _has_audio(path: Path) -> bool:
    if path.is_dir() or not path.exists():
        return False
    with _open_container(path) as container:
        return bool(container.streams.audio)


def source_audio_track(path: str | os.PathLike, requested: int | None = None) -> int | None:
    """The audio track of `path` an output carries (`choose_audio_track`: `requested`, else the default-flagged
    track, else the first); None without audio. Only the header is read.

    Raises:
        ConfigError: `requested` is not one of the file's audio tracks.
    """
    path = Path(path)
    if path.is_dir() or not path.exists():
        if requested is not None:
            raise ConfigError(f"`output.audio_track` (--audio-track) is {requested}, but {str(path)!r} has no audio")
        return None
    with _open_container(path) as container:
        return choose_audio_track(_audio_tracks(container), requested)


def _mux_audio(
    video_path: Path, audio_source: Path, output: Path, start: float, duration: float, track: int | None = None
) -> None:
    """Write `video_path`'s video plus one audio track of `audio_source` (`source_audio_track(track)`) over
    [start, start+duration) to `output`."""
    import av

    end = start + duration
    with (
        av.open(_ffmpeg_url(video_path)) as video_in,
        av.open(_ffmpeg_url(audio_source)) as audio_in,
        av.open(_ffmpeg_url(output), "w") as out,
    ):
        video_stream_in = video_in.streams.video[0]
        audio_stream_in = audio_in.streams.audio[choose_audio_track(_audio_tracks(audio_in), track)]
        out.metadata.update(video_in.metadata)  # the writer's tag (`WRITER_TAG`), kept through the audio mux
        video_out = out.add_stream_from_template(video_stream_in)
        suffix = output.suffix.lower()
        copy = suffix == ".mkv" or audio_stream_in.codec_context.name in COPYABLE_AUDIO.get(suffix, MP4_COPYABLE_AUDIO)
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

    resampler = av.AudioResampler(
        format="fltp", layout=stream.codec_context.layout.name, rate=audio_out.codec_context.sample_rate
    )
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
            trimmed = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples), format="fltp", layout=resampled.layout.name
            )
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
