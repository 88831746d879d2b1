"""Audio: the source's track trimmed to the output's span and muxed beside the video (copied, or re-encoded to AAC)."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from rerender.errors import ConfigError
from rerender.video.files import _ffmpeg_url, _open_container
from rerender.video.probe import _audio_tracks, choose_audio_track

__all__ = ["AAC_BIT_RATE", "MP4_COPYABLE_AUDIO", "QUICKTIME_AUDIO", "copies_audio", "source_audio_track"]

logger = logging.getLogger(__name__)

MP4_COPYABLE_AUDIO = ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")
"""Audio codecs FFmpeg's MP4 muxer accepts (not all of them play everywhere: see `QUICKTIME_AUDIO`)."""

COPYABLE_AUDIO = {
    ".mp4": MP4_COPYABLE_AUDIO,
    ".mov": ("aac", "mp3", "alac", "ac3", "eac3"),
    ".m4v": ("aac", "alac", "ac3"),
}
"""Audio codecs each output container's FFmpeg muxer takes as they are (QuickTime has no Opus or FLAC, the
iPod-flavoured .m4v fewer still); Matroska (.mkv) takes every codec."""

QUICKTIME_AUDIO = ("aac", "alac", "mp3", "ac3", "eac3")
"""Audio codecs Apple's players (QuickTime, iOS, Safari) play from an MP4/QuickTime file. Opus, Vorbis, FLAC and PCM
in an .mp4 play in browsers and VLC but not there, so an .mp4/.m4v/.mov output re-encodes them to AAC."""

AAC_BIT_RATE = 256_000
"""Bits per second of the AAC a track is re-encoded to: high enough that the re-encoding is not heard."""


def copies_audio(suffix: str, codec: str) -> bool:
    """Whether an output named ``*suffix`` carries a source audio track in `codec` (FFmpeg's name) as it is; False
    means it is re-encoded to AAC (`AAC_BIT_RATE`). The MP4 family (.mp4, .m4v, .mov) copies only what its muxer
    takes AND Apple's players play (`QUICKTIME_AUDIO`); Matroska (.mkv) copies every codec; any other container
    copies what the MP4 muxer takes, as before.
    """
    suffix = suffix.lower()
    if suffix == ".mkv":
        return True
    if suffix in COPYABLE_AUDIO:
        return codec in COPYABLE_AUDIO[suffix] and codec in QUICKTIME_AUDIO
    return codec in MP4_COPYABLE_AUDIO


_AAC_SURROUND = ("2.1", "3.0", "4.0", "5.0", "5.0(side)", "5.1", "5.1(side)", "6.1")
"""Layouts of more than two channels that FFmpeg's AAC encoder takes as they are."""


def _aac_layout(channels: int, layout: str) -> str:
    """The AAC track's layout for a source with `channels` in `layout`: mono stays mono (the encoder's default is
    stereo), surround stays surround where AAC has that layout; any other (e.g. PCM with no channel order) is
    downmixed to stereo."""
    if channels == 1:
        return "mono"
    return layout if layout in _AAC_SURROUND else "stereo"


def _aac_sample_rate(rate: int) -> int:
    """`rate` when FFmpeg's AAC encoder has it (AAC's sampling frequency index, 7.35 to 96 kHz), else the nearest
    higher one (96 kHz at most): nothing of the sound is cut."""
    import av

    allowed = sorted(av.codec.Codec("aac", "w").audio_rates or (48000,))
    if not rate:
        return 48000
    return next((candidate for candidate in allowed if candidate >= rate), allowed[-1])


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
        codec = audio_stream_in.codec_context.codec.canonical_name  # "mp3", where the decoder is "mp3float"
        if copies_audio(output.suffix, codec):
            audio_out = out.add_stream_from_template(audio_stream_in)
            audio_packets = list(_trimmed_audio_packets(audio_in, audio_stream_in, start, end))
        else:
            rate = _aac_sample_rate(audio_stream_in.codec_context.sample_rate)
            audio_out = out.add_stream("aac", rate=rate)
            channels = audio_stream_in.codec_context.channels or 2
            audio_out.codec_context.layout = _aac_layout(channels, audio_stream_in.codec_context.layout.name)
            # AAC holds at most 6144 bits per channel per 1024-sample frame: a low rate caps the bit rate
            bit_rate = min(AAC_BIT_RATE, 6144 * rate // 1024 * audio_out.codec_context.channels)
            audio_out.codec_context.bit_rate = bit_rate
            logger.info(
                "the %s audio track is re-encoded to AAC (%d kb/s, %d Hz) for %s: %s",
                codec,
                bit_rate // 1000,
                rate,
                output.suffix.lower(),
                "QuickTime and iOS do not play it from this container"
                if codec in COPYABLE_AUDIO.get(output.suffix.lower(), ())
                else "the container cannot hold it",
            )
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
    """Audio packets overlapping [start, end), shifted so `start` becomes time 0 (stream copy, packet accuracy).
    A packet without a duration (Matroska stores none for e.g. ALAC) gets the gap to the next one, the last one
    the codec's frame size (else the gap before it): an MP4 gives a packet without one no time, and players drop
    it."""
    previous, gap = None, 0
    for packet in _packets_in_span(container, stream, start, end):
        if previous is not None:
            gap = packet.pts - previous.pts
            previous.duration = previous.duration or gap
            yield previous
        previous = packet
    if previous is not None:
        if not previous.duration:
            frame_size = stream.codec_context.frame_size
            samples = Fraction(frame_size, stream.sample_rate) if frame_size and stream.sample_rate else None
            previous.duration = int(round(samples / stream.time_base)) if samples else gap
        yield previous


def _packets_in_span(container, stream, start: float, end: float):
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

    resampler = av.AudioResampler(  # to what the encoder takes (planar float, its layout and rate)
        format="fltp", layout=audio_out.codec_context.layout.name, rate=audio_out.codec_context.sample_rate
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
