"""Decisions on what last round's newcomer passes left open: a reference image at scale 0 needs no IP-Adapter, the
sound prompt hears the output's audio track, a silent sound file is refused before any model, QuickTime-playable
audio in .mp4, a batch names every missing video at once, and propagate reading translate's keyframes leaves
translate's workspace alone."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rerender.config import RerenderConfig, apply_overrides
from rerender.video import write_image

# 1. `--style-image-scale 0`: the reference image has no effect, so its IP-Adapter is neither needed nor loaded


@pytest.fixture
def style_png(tmp_path) -> Path:
    return write_image(np.full((16, 16, 3), 200, np.uint8), tmp_path / "style.png")


def _style_config(style_png: Path, scale: float, **more) -> RerenderConfig:
    overrides = {"prompt.style_image": str(style_png), "prompt.style_image_scale": scale, **more}
    return apply_overrides(RerenderConfig(), overrides)


def test_scale_0_needs_no_ip_adapter_weights(style_png):
    from rerender.weights import extra_sources, fetch_commands

    used, unused = _style_config(style_png, 0.6), _style_config(style_png, 0.0)
    assert "IP-Adapter" in [source.role for source in extra_sources(used)[0]]
    assert "IP-Adapter" not in [source.role for source in extra_sources(unused)[0]]
    assert not any("--style-image" in command for command in fetch_commands(unused, []))


def test_scale_0_passes_preflight_without_the_adapter(style_png, tmp_path, caplog):
    from rerender.errors import WeightsNotFoundError
    from rerender.workflow.preflight import check_model_inputs

    missing = {"model.ip_adapter": str(tmp_path / "no-such-adapter")}
    with pytest.raises(WeightsNotFoundError):  # the same check at a scale that uses the image
        check_model_inputs(_style_config(style_png, 0.5, **missing), pipeline=object())
    with caplog.at_level(logging.INFO, logger="rerender.workflow.preflight"):
        check_model_inputs(_style_config(style_png, 0.0, **missing), pipeline=object())
    assert "IP-Adapter is skipped" in caplog.text


def test_scale_0_on_a_base_without_an_adapter_is_not_refused(style_png):
    from rerender.errors import ConfigError
    from rerender.weights import check_ip_adapter_family

    flux = {"model.base_model": "black-forest-labs/FLUX.1-schnell"}
    with pytest.raises(ConfigError, match="needs an IP-Adapter"):
        check_ip_adapter_family(_style_config(style_png, 0.6, **flux))
    check_ip_adapter_family(_style_config(style_png, 0.0, **flux))


class _UnetWithoutAdapter:
    encoder_hid_proj = None


class _PipelineThatMustNotLoad:
    """A pipeline whose IP-Adapter loading fails the test (diffusers' `load_ip_adapter` / `set_ip_adapter_scale`)."""

    unet = _UnetWithoutAdapter()
    family = "sd15"

    def load_ip_adapter(self, *args, **kwargs):
        raise AssertionError("the IP-Adapter was loaded at scale 0")

    def set_ip_adapter_scale(self, scale):
        raise AssertionError("the IP-Adapter scale was set at scale 0")


def test_scale_0_does_not_load_the_adapter(style_png, tmp_path, caplog):
    from rerender.diffusion.ip_adapter import style_adapter

    config = _style_config(style_png, 0.0, **{"model.ip_adapter": str(tmp_path / "no-such-adapter")})
    with caplog.at_level(logging.INFO, logger="rerender.diffusion.ip_adapter"):
        with style_adapter(_PipelineThatMustNotLoad(), config) as image:
            assert image is None
    assert "not loaded" in caplog.text


# 2. the sound prompt 'source' hears the track the output carries; 3. a silent sound file is refused in preflight

RATE = 48_000
FPS = 10


def _tone_track(kind: str, seconds: float) -> np.ndarray:
    """'beep': a 440 Hz tone (the stand-in scorer's "beep"); 'noise': broadband noise ("rain")."""
    if kind == "beep":
        return (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)
    return (0.3 * np.random.default_rng(1).standard_normal(int(seconds * RATE))).astype(np.float32)


def _two_track_clip(path: Path, kinds: tuple[str, str], default: int | None, seconds: float = 0.6) -> Path:
    """`seconds` of grey 32×32 video with two AAC audio tracks of `kinds`; `default` flags one as the default."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        tracks = []
        for number, kind in enumerate(kinds):
            audio = container.add_stream("aac", rate=RATE)
            audio.codec_context.layout = "mono"
            audio.disposition = av.stream.Disposition.default if number == default else 0
            tracks.append((audio, _tone_track(kind, seconds)))
        for index in range(round(seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 30 * index, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        for audio, samples in tracks:
            _encode_samples(container, audio, samples, RATE)
    return path


def _encode_samples(container, audio, samples: np.ndarray, rate: int) -> None:
    from fractions import Fraction

    import av

    for offset in range(0, samples.size, 1024):
        chunk = av.AudioFrame.from_ndarray(samples[None, offset : offset + 1024].copy(), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = rate, offset, Fraction(1, rate)
        container.mux(audio.encode(chunk))
    container.mux(audio.encode())


def _hear(prompt_overrides: dict, video=None, audio_track=None):
    from rerender.languages import PromptTranslation
    from rerender.sound import hear_prompt
    from tests.test_sound import FrequencyScorer

    config = apply_overrides(RerenderConfig(), prompt_overrides)
    record = PromptTranslation("a painting", "a painting", "en", False, None)
    return hear_prompt(record, config.prompt, video, scorer=FrequencyScorer(), audio_track=audio_track).sound


@pytest.mark.parametrize("default, requested, heard", [(1, None, "beep"), (None, None, "rain"), (1, 0, "rain")])
def test_source_hears_the_track_the_output_carries(tmp_path, default, requested, heard):
    from rerender.video import probe_video

    clip = _two_track_clip(tmp_path / "two.mkv", ("noise", "beep"), default)
    carried = probe_video(clip).audio_track if requested is None else requested  # what `write_video` muxes
    assert carried == (0 if heard == "rain" else 1)
    sound = _hear({"prompt.audio_prompt": "source"}, clip, requested)
    assert sound.best[0].name == heard


def test_a_separate_sound_file_is_heard_from_its_first_track(tmp_path):
    clip = _two_track_clip(tmp_path / "two.mkv", ("noise", "beep"), default=1)
    assert _hear({"prompt.audio_prompt": str(clip)}, None, 1).best[0].name == "rain"


def test_translate_hears_the_default_track_under_its_frames(tmp_path, monkeypatch):
    from rerender import sound
    from rerender.workflow.translation import translate
    from tests.test_sound import FrequencyScorer

    clip = _two_track_clip(tmp_path / "two.mkv", ("noise", "beep"), default=1)
    monkeypatch.setattr(sound, "ClapScorer", lambda *args, **kwargs: FrequencyScorer())
    monkeypatch.setattr(sound, "check_audio_model", lambda *args: None)  # the stand-in needs no CLAP weights
    result = translate(
        clip,
        "a painting",
        output=None,
        stage="first",
        renderer="classic",
        audio_prompt="source",
        resolution=64,
        size_multiple=16,
        end_frame=3,
        progress=False,
        workspace=tmp_path / "ws",
    )
    assert result.prompt.sound.best[0].name == "beep"


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    from tests.test_sound import write_wav

    return write_wav(path, samples)


@pytest.mark.parametrize("level", [0.0, 1e-4])
def test_a_silent_sound_file_is_refused_before_any_model_is_looked_for(tmp_path, monkeypatch, level):
    from rerender import sound as sound_module
    from rerender.errors import ConfigError
    from rerender.workflow.preflight import check_run

    samples = level * np.random.default_rng(0).standard_normal(2 * RATE).astype(np.float32)  # 0, or −80 dBFS
    wav = _write_wav(tmp_path / "quiet.wav", samples)

    def looked_up(*args, **kwargs):
        raise AssertionError("the CLAP model was looked for before the silent sound was refused")

    monkeypatch.setattr(sound_module, "check_audio_model", looked_up)
    monkeypatch.setattr(sound_module, "ClapScorer", looked_up)
    with pytest.raises(ConfigError, match=r"audio_prompt.*silent"):
        check_run(None, overrides={"prompt.audio_prompt": str(wav)}, stage="keyframes", check_model=False)


# 4. an .mp4/.m4v/.mov output carries audio QuickTime and iOS play: Opus, FLAC, PCM … become AAC


def _toned_clip(path: Path, codec: str, span: tuple[float, float], frames: int = 24, fps: int = 25) -> Path:
    """`frames` grey 32×32 H.264 frames from time 0 and a 1 kHz tone in `codec` (16 kHz mono) over `span` seconds."""
    import av

    rate = 16000
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream(codec, rate=rate, layout="mono")
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 60, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        first, total = round(span[0] * rate), round((span[1] - span[0]) * rate)
        samples = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(total) / rate)
        form = audio.codec_context.format.name
        size = audio.codec_context.frame_size or 1024
        for offset in range(0, total, size):
            chunk = samples[None, offset : offset + size]
            if form.startswith(("s16", "s32")):  # the encoder's own sample format (FLAC, PCM: s16; ALAC, MP3: s32)
                bits = 16 if form.startswith("s16") else 32
                chunk = (chunk * (2 ** (bits - 1) - 1)).astype(np.int16 if bits == 16 else np.int32)
            else:
                chunk = chunk.astype(np.float32)
            sound = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=form, layout="mono")
            sound.sample_rate, sound.pts, sound.time_base = rate, first + offset, Fraction(1, rate)
            container.mux(audio.encode(sound))
        container.mux(audio.encode())
    return path


def _heard_span(path: Path) -> tuple[str, int, float, float]:
    """The (only) audio track of `path`: codec, sample rate, and the times of its first and last loud samples."""
    import av

    with av.open(str(path)) as container:
        (stream,) = container.streams.audio
        codec, rate = stream.codec_context.codec.canonical_name, stream.codec_context.sample_rate
        loud = []
        for frame in container.decode(stream):
            samples = frame.to_ndarray().astype(np.float64)
            scale = {"s16": 2.0**15, "s32": 2.0**31}.get(frame.format.name[:3], 1.0)
            samples = samples[0] / scale
            loud += [frame.time + index / frame.sample_rate for index in np.flatnonzero(np.abs(samples) > 0.25)]
    return codec, rate, loud[0], loud[-1]


@pytest.mark.parametrize(
    "codec, suffix, carried",
    [
        ("libopus", ".mp4", "aac"),
        ("flac", ".mp4", "aac"),
        ("pcm_s16le", ".mp4", "aac"),
        ("libopus", ".m4v", "aac"),
        ("flac", ".mov", "aac"),
        ("aac", ".mp4", "aac"),
        ("libmp3lame", ".mp4", "mp3"),
        ("alac", ".mp4", "alac"),
        ("libopus", ".mkv", "opus"),
        ("flac", ".mkv", "flac"),
    ],
)
def test_mp4_audio_is_what_quicktime_plays_at_the_sources_times(tmp_path, codec, suffix, carried):
    from tests.test_video import _translate_like

    fps, start = 25, 4
    source = _toned_clip(tmp_path / "source.mkv", codec, (0.3, 0.8))  # heard from 0.3 s to 0.8 s
    _, source_rate, source_first, source_last = _heard_span(source)
    output = tmp_path / f"out{suffix}"
    _translate_like(source, output, start=start)  # the output starts at frame 4 (0.16 s on the source's clock)
    kind, rate, first, last = _heard_span(output)
    assert (kind, rate) == (carried, source_rate)  # re-encoded where QuickTime cannot play it, at the source's rate
    assert first == pytest.approx(source_first - start / fps, abs=1e-3)  # heard from where the source has it
    assert last - first == pytest.approx(source_last - source_first, abs=1e-3)  # for as long


def test_aac_is_re_encoded_at_a_high_bit_rate(tmp_path, caplog):
    import av

    from rerender.video import write_video
    from tests.test_newcomer_errors8 import _clip_with_sound

    source = _clip_with_sound(tmp_path / "opus.mkv", "libopus")
    frames = [np.full((32, 32, 3), 20 * index, np.uint8) for index in range(8)]
    with caplog.at_level(logging.INFO, logger="rerender.video.audio"):
        write_video(frames, tmp_path / "out.mp4", fps=25, audio_from=source)
    assert "opus audio track is re-encoded to AAC (256 kb/s, 48000 Hz)" in caplog.text
    with av.open(str(tmp_path / "out.mp4")) as container:
        (stream,) = container.streams.audio
        assert stream.codec_context.layout.name == "mono" and stream.bit_rate > 128_000  # not FFmpeg's default


# 5. a batch whose list has missing or unreadable videos is refused whole, naming every one of them at once


def test_a_batch_names_every_missing_or_unreadable_video_before_any_job(silent_clip, tmp_path, capsys, monkeypatch):
    import os

    from rerender.cli import main

    rows = ["clip.mp4", *(f"gone{number}.mp4" for number in range(6)), "locked.mp4", "clip.mp4"]
    (tmp_path / "clip.mp4").symlink_to(silent_clip)
    (tmp_path / "locked.mp4").symlink_to(silent_clip)
    readable = os.access  # this runs as root here, where every file is readable: the check sees what a user's does
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "locked.mp4" and readable(path, mode))
    listing = tmp_path / "jobs.csv"
    listing.write_text(
        "video,output\n" + "".join(f"{row},out{number}.mp4\n" for number, row in enumerate(rows)), encoding="utf-8"
    )
    code = main(["batch", str(listing), "-p", "a cat", "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "7 of 9 job(s)" in err and "no job was started" in err, err
    for number in range(6):  # every missing one, each with its job number, not the first five
        assert f"job {number + 2}: '{tmp_path / f'gone{number}.mp4'}' not found" in err, err
    assert f"job 8: '{tmp_path / 'locked.mp4'}' cannot be read (permission denied)" in err, err
    assert "job 1:" not in err and "job 9:" not in err
    assert not (tmp_path / "out").exists()


# 6. `propagate` reading translate's keyframes never rewrites translate's workspace


def _records(workspace: Path) -> dict[str, bytes]:
    """What a later `translate` decides from: the manifest, the interval ledger, the keyframes' bytes."""
    files = ["manifest.json", *(f"keyframes/{path.name}" for path in sorted((workspace / "keyframes").glob("*")))]
    files += [path.name for path in workspace.iterdir() if path.is_file() and path.name.startswith(".rerender-")]
    return {name: (workspace / name).read_bytes() for name in files if (workspace / name).is_file()}


def test_propagate_leaves_translates_workspace_alone_and_translate_reuses_its_keyframes(
    synthetic_clip, tmp_path, capsys
):
    from rerender.cli import main
    from rerender.workflow.translation import translate

    settings = dict(renderer="classic", K=3, end_frame=4, resolution=64, size_multiple=16, progress=False)
    work = tmp_path / "X.mp4.work"
    translate(synthetic_clip, "a painting", output=None, stage="keyframes", workspace=work, **settings)
    painted = work / "keyframes" / "0003.png"
    painted.write_bytes((work / "keyframes" / "0000.png").read_bytes())  # a keyframe painted over
    before = _records(work)
    code = main(
        [
            "propagate",
            str(synthetic_clip),
            "--keyframes",
            str(work / "keyframes"),
            "--keep-intermediates",
            str(work),
            "--set",
            "video.end_frame=4",
            "-o",
            str(tmp_path / "propagated.mp4"),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--keep-intermediates" in err and "--keyframes" in err and "--stage propagate" in err, err
    assert _records(work) == before and not (tmp_path / "propagated.mp4").exists()
    # keys painted elsewhere, into translate's workspace: refused too (they would have replaced translate's)
    from rerender.errors import ConfigError
    from rerender.workflow.keyframe_folder import propagate_keyframes

    elsewhere = tmp_path / "painted"
    elsewhere.mkdir()
    (elsewhere / "0000.png").write_bytes(before["keyframes/0000.png"])
    with pytest.raises(ConfigError, match=r"`workspace` .* replace its keyframes with those"):
        propagate_keyframes(synthetic_clip, elsewhere, tmp_path / "p.mp4", workspace=work, end_frame=4, progress=False)
    assert _records(work) == before
    # the run again (as `--resume` would): its keyframes are reused, the painted one kept
    result = translate(synthetic_clip, "a painting", output=None, stage="keyframes", workspace=work, **settings)
    assert "keyframes" in result.reused and painted.read_bytes() == before["keyframes/0003.png"]


def _surround_clip(path: Path, codec: str, layout: str) -> Path:
    """8 black 32×32 frames and 0.32 s of a quiet tone on every channel of `layout`, in `codec`."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        audio = container.add_stream(codec, rate=48000, layout=layout)
        for index in range(8):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        channels, form = audio.codec_context.channels, audio.codec_context.format.name
        size = audio.codec_context.frame_size or 1024
        for offset in range(0, 48000 * 8 // 25, size):
            tone = (6000 * np.sin(np.arange(offset, offset + size) / 10)).astype(np.int16)
            planar = form.endswith("p")  # planar: one row per channel; packed: the channels interleaved in one row
            samples = np.tile(tone, (channels, 1)) if planar else np.repeat(tone, channels)[None]
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format=form, layout=layout)
            chunk.sample_rate, chunk.pts = 48000, offset
            container.mux(audio.encode(chunk))
        container.mux(audio.encode())
    return path


@pytest.mark.parametrize("codec, layout, written", [("flac", "5.1", "5.1"), ("pcm_s16le", "7.1", "stereo")])
def test_surround_keeps_its_channels_where_aac_has_them_and_a_bare_channel_count_is_downmixed(
    tmp_path, codec, layout, written
):
    # was: PCM in .mkv has no channel order ("8 channels"), and re-encoding it into an .mp4 crashed the process
    # (a segmentation fault in the resampler) after every frame had been rendered
    import av

    from rerender.video import write_video

    source = _surround_clip(tmp_path / "surround.mkv", codec, layout)
    output = write_video([np.zeros((32, 32, 3), np.uint8)] * 8, tmp_path / "out.mp4", fps=25, audio_from=source)
    with av.open(str(output)) as container:
        (stream,) = container.streams.audio
        assert (stream.codec_context.name, stream.codec_context.layout.name) == ("aac", written)
        assert sum(frame.samples for frame in container.decode(stream)) >= 48000 * 8 // 25
