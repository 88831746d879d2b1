"""Everyday inputs read as a viewer sees them (issue 20): EXIF orientation, transparency, float and 16-bit
images, streams cut before a keyframe, resolution changes, several audio tracks, interlacing, memory
estimates and full disks. Every input is made here (PyAV, Pillow, OpenCV, numpy)."""

from __future__ import annotations

import errno
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from rerender.config import OutputConfig, RerenderConfig, VideoConfig
from rerender.errors import ConfigError, DiskFullError, VideoReadError
from rerender.video import probe_video, read_frames, read_image, reading_notes, write_image, write_video

# ------------------------------------------------------------------------------------ EXIF orientation

# An upright 32×16 picture: four quadrants of different colours, so every turn and mirror is told apart.
QUADRANTS = {(0, 0): (220, 30, 30), (0, 1): (30, 200, 30), (1, 0): (30, 30, 220), (1, 1): (230, 230, 40)}


def _upright() -> np.ndarray:
    image = np.zeros((16, 32, 3), np.uint8)
    for (row, column), colour in QUADRANTS.items():
        image[row * 8 : row * 8 + 8, column * 16 : column * 16 + 16] = colour
    return image


# How a camera stores the upright picture for each EXIF orientation (TIFF 6.0 / EXIF 2.32 tag 0x0112: where
# the stored 0th row and 0th column lie in the picture a viewer shows). Written out from the standard, not
# from the reader's code.
STORED = {
    1: lambda u: u,  # row 0 = top, column 0 = left
    2: lambda u: u[:, ::-1],  # top, right: mirrored
    3: lambda u: u[::-1, ::-1],  # bottom, right: turned 180°
    4: lambda u: u[::-1, :],  # bottom, left: flipped
    5: lambda u: u.transpose(1, 0, 2),  # left, top
    6: lambda u: np.rot90(u, 1),  # right, top: a phone held upright (stored turned 90° anticlockwise)
    7: lambda u: u[::-1, ::-1].transpose(1, 0, 2),  # right, bottom
    8: lambda u: np.rot90(u, -1),  # left, bottom
}


def _write_exif_jpeg(path: Path, orientation: int) -> None:
    stored = np.ascontiguousarray(STORED[orientation](_upright()))
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, quality=98, subsampling=0, exif=exif.tobytes())


def _quadrant_colours(image: np.ndarray) -> dict[tuple[int, int], list[int]]:
    height, width = image.shape[:2]
    return {
        (row, column): image[row * height // 2 + height // 4, column * width // 2 + width // 4].astype(int).tolist()
        for row in (0, 1)
        for column in (0, 1)
    }


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_reads_as_a_photo_viewer_shows_it(tmp_path, orientation):
    path = tmp_path / f"photo_{orientation}.jpg"
    _write_exif_jpeg(path, orientation)
    image = read_image(path)
    assert image.shape == (16, 32, 3)
    for place, colour in _quadrant_colours(image).items():
        assert np.abs(np.subtract(colour, QUADRANTS[place])).max() < 25, (orientation, place, colour)
    # the same photo as a frame of an image folder: probed and read upright too
    folder = tmp_path / "frames"
    folder.mkdir()
    _write_exif_jpeg(folder / "0001.jpg", orientation)
    info = probe_video(folder)
    assert (info.width, info.height) == (32, 16)
    frame = next(read_frames(folder, info=info))
    assert np.abs(frame.astype(int) - image.astype(int)).max() == 0


# ---------------------------------------------------------------------------------------- transparency


def _transparent_png(path: Path) -> None:
    image = np.zeros((8, 8, 4), np.uint8)
    image[..., 1] = 255  # hidden green everywhere
    image[:, 4:, :3], image[:, 4:, 3] = (10, 20, 200), 255  # right half: opaque blue (BGR on disk: red 200)
    cv2.imwrite(str(path), image)


def test_transparent_keyframe_is_composited_and_warned_about(tmp_path, caplog):
    key = tmp_path / "0000.png"
    _transparent_png(key)
    with caplog.at_level("WARNING", logger="rerender.video"):
        white = read_image(key, keyframe=True)
        navy = read_image(key, background="#000080")
    assert white[0, 0].tolist() == [255, 255, 255] and white[0, 7].tolist() == [200, 20, 10]
    assert navy[0, 0].tolist() == [0, 0, 128]
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("keyframe")]
    assert len(lines) == 1 and str(key) in lines[0] and "50%" in lines[0] and "propagation" in lines[0]


def test_background_option_is_checked():
    assert RerenderConfig().video.background == "white"
    with pytest.raises(ConfigError, match=r"video\.background.*'#rrggbb'.*'mauve'"):
        VideoConfig(background="mauve")
    assert VideoConfig(background="#FF0080").background == "#FF0080"


def test_a_transparent_gif_shows_the_background(tmp_path):
    palette = [255, 0, 0, 0, 255, 0] + [0] * 762  # 0: red, 1: green (the transparent index)
    frames = []
    for _ in range(3):
        indices = np.zeros((16, 16), np.uint8)
        indices[:, :8] = 1
        frame = Image.fromarray(indices, "P")
        frame.putpalette(palette)
        frames.append(frame)
    path = tmp_path / "sticker.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], transparency=1, duration=100, loop=0, disposal=2)
    info = probe_video(path)
    assert info.has_alpha
    black = next(read_frames(path, info=info, background="black"))
    assert black[4, 2].tolist() == [0, 0, 0] and black[4, 12].tolist() == [255, 0, 0]
    opaque = tmp_path / "opaque.gif"
    frames[0].save(opaque, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert not probe_video(opaque).has_alpha


# ------------------------------------------------------------------------------ float and 16-bit images


def test_float_and_16_bit_images_are_scaled_to_8_bit(tmp_path, caplog):
    grey = np.full((4, 6, 3), 0.5, np.float32)
    grey[0, 0] = (1.0, 0.0, 0.25)  # BGR on disk
    cv2.imwrite(str(tmp_path / "float.tif"), grey)
    image = read_image(tmp_path / "float.tif")
    assert image[1, 1].tolist() == [128, 128, 128] and image[0, 0].tolist() == [64, 0, 255]
    cv2.imwrite(str(tmp_path / "float_grey.tif"), grey[..., 0])  # one channel: Pillow's mode "F"
    assert read_image(tmp_path / "float_grey.tif")[1, 1].tolist() == [128, 128, 128]
    bright = np.full((4, 6, 3), 4.0, np.float32)  # scene-referred values beyond white
    cv2.imwrite(str(tmp_path / "hdr.tif"), bright)
    with caplog.at_level("WARNING", logger="rerender.video"):
        assert read_image(tmp_path / "hdr.tif").min() == 255
    assert any("hdr.tif" in record.getMessage() and "clipped" in record.getMessage() for record in caplog.records)
    for suffix in (".png", ".tif"):
        deep = np.full((4, 6, 3), 16384, np.uint16)  # a quarter of 65535
        cv2.imwrite(str(tmp_path / f"deep{suffix}"), deep)
        assert read_image(tmp_path / f"deep{suffix}")[2, 2].tolist() == [64, 64, 64]
        cv2.imwrite(str(tmp_path / f"deep_grey{suffix}"), deep[..., 0])
        assert read_image(tmp_path / f"deep_grey{suffix}")[2, 2].tolist() == [64, 64, 64]


def test_an_unreadable_image_is_named_with_what_is_supported(tmp_path):
    broken = tmp_path / "scan.tif"
    broken.write_bytes(b"II*\x00" + bytes(60))
    with pytest.raises(VideoReadError) as caught:
        read_image(broken)
    message = str(caught.value)
    assert "scan.tif" in message and "32-bit float" in message and "uint8" not in message


# --------------------------------------------------------------------- streams cut before a keyframe

FPS, RATE, BEEP = 25, 16000, 1000.0


def _encode_clip(path: Path, count: int, gop: int, flash: int, fmt: str | None = None) -> None:
    """Grey frames with a white flash at `flash`, GOPs of `gop` frames, and audio silent but for a 1 kHz beep
    at the flash's time."""
    with av.open(str(path), "w", format=fmt) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        video.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2"}
        audio = container.add_stream("aac", rate=RATE)
        audio.codec_context.layout = "mono"
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(
                np.full((32, 32, 3), 255 if index == flash else 60, np.uint8), format="rgb24"
            )
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = np.zeros(int(count / FPS * RATE), np.float32)
        onset = int(flash / FPS * RATE)
        samples[onset : onset + RATE // 10] = 0.5 * np.sin(2 * np.pi * BEEP * np.arange(RATE // 10) / RATE)
        for offset in range(0, samples.size, 1024):
            chunk = av.AudioFrame.from_ndarray(
                samples[None, offset : offset + 1024].copy(), format="fltp", layout="mono"
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = RATE, offset, Fraction(1, RATE)
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


def _cut_video_packets(source: Path, target: Path, drop: int, fmt: str | None = None) -> None:
    """Copy `source` without its first `drop` video packets (a cut inside the first GOP); audio is kept whole."""
    with av.open(str(source)) as reader, av.open(str(target), "w", format=fmt) as writer:
        streams = {stream.index: writer.add_stream_from_template(stream) for stream in reader.streams}
        dropped = 0
        for packet in reader.demux():
            if not packet.size:
                continue
            if packet.stream.type == "video" and dropped < drop:
                dropped += 1
                continue
            packet.stream = streams[packet.stream.index]
            writer.mux(packet)


def _decoded_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [frame.time for frame in container.decode(video=0)]


def _flash_and_beep(path: Path) -> tuple[float, float]:
    with av.open(str(path)) as container:
        flash = next(frame.time for frame in container.decode(video=0) if frame.to_ndarray(format="gray").mean() > 200)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            loud = np.flatnonzero(np.abs(frame.to_ndarray()[0]) > 0.15)
            if loud.size:
                return flash, float(frame.time + loud[0] / frame.sample_rate)
    raise AssertionError("no beep in the output")


@pytest.mark.parametrize("suffix, fmt", [(".ts", "mpegts"), (".mp4", None)])
def test_a_stream_cut_before_a_keyframe_gives_what_players_show(tmp_path, suffix, fmt, caplog):
    full, cut = tmp_path / f"full{suffix}", tmp_path / f"cut{suffix}"
    _encode_clip(full, count=50, gop=15, flash=30, fmt=fmt)
    _cut_video_packets(full, cut, drop=5, fmt=fmt)  # 10 packets of the first GOP remain, then keyframes at 15, 30, 45
    shown = _decoded_times(cut)
    assert len(shown) == 35  # what FFmpeg (and so every player) presents
    with caplog.at_level("WARNING", logger="rerender.video"):
        info = probe_video(cut)
    assert info.frame_count == 35 and info.skipped_packets == 10
    assert info.timestamps == pytest.approx(shown, abs=1e-6)
    assert any("10 packets" in record.getMessage() for record in caplog.records)
    frames = list(read_frames(cut, info=info))
    assert len(frames) == 35 and frames[15].mean() > 200  # the flash: frame 30 of the uncut clip
    output = tmp_path / "out.mp4"
    write_video(
        read_frames(cut, info=info, start=2),
        output,
        fps=info.fps,
        audio_from=cut,
        audio_start=info.start_time(2),
        timestamps=info.output_times(2),
    )
    assert len(_decoded_times(output)) == 33
    flash, beep = _flash_and_beep(output)
    assert flash == pytest.approx(13 / FPS, abs=1e-3) and abs(beep - flash) < 1 / FPS


@pytest.mark.slow
def test_translate_writes_what_players_show_of_a_cut_stream_with_its_audio(tmp_path):
    from rerender.workflow.translation import ClassicRenderer, translate

    full, cut = tmp_path / "full.ts", tmp_path / "segment.ts"
    _encode_clip(full, count=30, gop=10, flash=20, fmt="mpegts")
    _cut_video_packets(full, cut, drop=4, fmt="mpegts")  # 6 packets before the keyframe at 10: 20 frames shown
    output = tmp_path / "out.mp4"
    result = translate(
        cut,
        "a cartoon",
        K=10,
        output=output,
        renderer=ClassicRenderer("a cartoon"),
        progress=False,
        resolution=64,
        size_multiple=16,
        propagation_preset="fast",
        workers=1,
        flow_estimator="dis",
        dis_preset="fast",
    )
    assert result.frame_count == 20 and len(_decoded_times(output)) == 20
    flash, beep = _flash_and_beep(output)
    assert flash == pytest.approx(10 / FPS, abs=1e-3) and abs(beep - flash) < 1 / FPS


# ------------------------------------------------------------------------- resolution changes mid-stream


def _circle_segment(path: Path, width: int, height: int, count: int) -> None:
    """An MPEG-TS segment of `width`×`height` frames showing a white circle (square pixels) on black."""
    image = np.zeros((height, width, 3), np.uint8)
    cv2.circle(image, (width // 2, height // 2), min(width, height) // 2 - 4, (255, 255, 255), -1)
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _circle_aspect(frame: np.ndarray) -> float:
    rows, columns = np.nonzero(frame[..., 0] > 128)
    return (columns.max() - columns.min() + 1) / (rows.max() - rows.min() + 1)


def test_a_resolution_change_is_fitted_never_stretched(tmp_path, caplog):
    first, second, joined = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "joined.ts"
    _circle_segment(first, 160, 96, 10)
    _circle_segment(second, 64, 96, 10)  # a portrait picture after a screen rotation
    joined.write_bytes(first.read_bytes() + second.read_bytes())  # TS segments concatenate byte for byte
    with caplog.at_level("WARNING", logger="rerender.video"):
        info = probe_video(joined)
        frames = list(read_frames(joined, info=info))
    assert (info.width, info.height) == (160, 96) and len(frames) == 20
    assert all(frame.shape == (96, 160, 3) for frame in frames)
    assert _circle_aspect(frames[2]) == pytest.approx(1.0, abs=0.06)
    assert _circle_aspect(frames[15]) == pytest.approx(1.0, abs=0.06)  # stretched it would be 2.5 times as wide
    assert frames[15][:, :40].max() < 40 and frames[15][:, -40:].max() < 40  # pillarbox bars, black
    lines = [record.getMessage() for record in caplog.records if "changes resolution" in record.getMessage()]
    assert len(lines) == 1 and "frame 10" in lines[0] and "64×96" in lines[0]


def test_an_image_folder_of_mixed_sizes_is_fitted_never_stretched(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, (width, height) in enumerate([(160, 96), (64, 96)]):
        image = np.zeros((height, width, 3), np.uint8)
        cv2.circle(image, (width // 2, height // 2), min(width, height) // 2 - 4, (255, 255, 255), -1)
        write_image(image, folder / f"{index}.png")
    frames = list(read_frames(folder))
    assert frames[1].shape == (96, 160, 3) and _circle_aspect(frames[1]) == pytest.approx(1.0, abs=0.06)


# ------------------------------------------------------------------------------------ several audio tracks


def _two_track_clip(path: Path, default: int | None) -> None:
    """One second of black with two audio tracks: 300 Hz on the first, 1 kHz on the second."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        tracks = []
        for number, hertz in enumerate((300.0, 1000.0)):
            audio = container.add_stream("aac", rate=RATE)
            audio.codec_context.layout = "mono"
            audio.disposition = av.stream.Disposition.default if number == default else 0
            tracks.append((audio, hertz))
        for index in range(FPS):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        for audio, hertz in tracks:
            samples = (0.5 * np.sin(2 * np.pi * hertz * np.arange(RATE) / RATE)).astype(np.float32)
            for offset in range(0, RATE, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    samples[None, offset : offset + 1024].copy(), format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts, chunk.time_base = RATE, offset, Fraction(1, RATE)
                for packet in audio.encode(chunk):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)


def _heard_frequency(path: Path) -> float:
    """The loudest frequency of the output's (only) audio track."""
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1
        samples = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(audio=0)])
        rate = container.streams.audio[0].codec_context.sample_rate
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("default, requested, heard", [(1, None, 1000.0), (None, None, 300.0), (1, 0, 300.0)])
def test_the_output_carries_the_track_a_player_picks_or_the_one_asked_for(tmp_path, default, requested, heard):
    source = tmp_path / "two_tracks.mkv"
    _two_track_clip(source, default)
    info = probe_video(source)
    assert [(track.number, track.default) for track in info.audio_tracks] == [(0, default == 0), (1, default == 1)]
    assert info.audio_track == (default or 0)
    lines = [text for label, text in reading_notes(info) if label == "audio"]
    assert len(lines) == 2 and lines[default or 0].endswith("(used)") and lines[1].startswith("1: aac, 1 ch, 16000 Hz")
    output = tmp_path / "out.mp4"
    write_video(read_frames(source, info=info), output, fps=FPS, audio_from=source, audio_track=requested)
    assert _heard_frequency(output) == pytest.approx(heard, abs=15)


def test_an_audio_track_that_is_not_there_is_refused_before_encoding(tmp_path):
    source = tmp_path / "two_tracks.mkv"
    _two_track_clip(source, 1)
    frames_asked = []

    def frames():
        frames_asked.append(1)
        yield np.zeros((32, 32, 3), np.uint8)

    with pytest.raises(ConfigError, match=r"output\.audio_track.*0 \(aac\), 1 \(aac\); got 2"):
        write_video(frames(), tmp_path / "out.mp4", fps=FPS, audio_from=source, audio_track=2)
    assert not frames_asked and not (tmp_path / "out.mp4").exists()
    with pytest.raises(ConfigError, match=r"output\.audio_track"):
        OutputConfig(audio_track=-1)


# --------------------------------------------------------------------------------------------- interlacing


def _combed(index: int, height: int = 64, width: int = 64) -> np.ndarray:
    """A vertical bar moving 4 px a frame whose odd lines were scanned half a frame later (two fields)."""
    image = np.zeros((height, width, 3), np.uint8)
    for row in range(height):
        left = (4 * index + (2 if row % 2 else 0)) % (width - 8)
        image[row, left : left + 8] = 255
    return image


def _combing(frame: np.ndarray) -> float:
    """Differences between neighbouring lines over those between lines two apart: ≫ 1 when combed."""
    grey = frame.astype(np.float64).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() / max(np.abs(grey[2:] - grey[:-2]).mean(), 1e-6))


def test_interlaced_video_is_deinterlaced_unless_turned_off(tmp_path, caplog):
    path = tmp_path / "interlaced.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.options = {"x264-params": "interlaced=1:tff=1"}  # field-coded: the decoder flags every frame
        for index in range(12):
            frame = av.VideoFrame.from_ndarray(_combed(index), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with caplog.at_level("WARNING", logger="rerender.video"):
        info = probe_video(path)
    assert info.interlaced and any("interlaced" in record.getMessage() for record in caplog.records)
    woven = list(read_frames(path, info=info, deinterlace=False))
    clean = list(read_frames(path, info=info))
    assert len(clean) == len(woven) == 12
    assert min(_combing(frame) for frame in woven[1:-1]) > 3
    assert max(_combing(frame) for frame in clean[1:-1]) < 1.6
    progressive = tmp_path / "progressive.mp4"
    write_video((_combed(0) for _ in range(3)), progressive, fps=FPS)
    assert not probe_video(progressive).interlaced


# ---------------------------------------------------------------------------------------------- full disk


def test_a_full_disk_names_the_output_folder_not_ffmpegs_url(tmp_path, monkeypatch):
    from rerender.video import writer as writer_module

    def full(self, rgb, pts):
        raise av.error.OSError(errno.ENOSPC, "No space left on device", "file:full2")

    monkeypatch.setattr(writer_module.VideoWriter, "_encode", full)
    output = tmp_path / "out" / "clip.mp4"
    output.parent.mkdir()
    frames = [np.zeros((32, 32, 3), np.uint8)] * 3
    with pytest.raises(DiskFullError) as caught:
        write_video(frames, output, fps=FPS)
    message = str(caught.value)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(output)
    assert repr(str(output.parent)) in message and "free" in message and "full2" not in message
    assert list(output.parent.iterdir()) == []  # nothing left behind, not even the temporary file


@pytest.fixture
def small_disk(tmp_path):
    """A 300 KB tmpfs, where the machine lets us mount one (root on Linux)."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode:
        pytest.skip(
            f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip() or result.returncode}"
        )
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_tmpfs_gives_the_documented_line_for_video_and_images(small_disk):
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(40)]  # ~50 KB a frame, lossless
    output = small_disk / "out.mp4"
    with pytest.raises(DiskFullError) as caught:
        write_video(noise, output, fps=FPS, crf=0)
    message = str(caught.value)
    assert f"in {str(small_disk)!r}" in message and "MB free" in message and "needed" in message, message
    assert "file:" not in message and list(small_disk.iterdir()) == []
    big = np.random.default_rng(1).integers(0, 256, (600, 600, 3), dtype=np.uint8)  # ~1 MB as PNG
    with pytest.raises(DiskFullError, match=r"in '.*small' \(0\.\d MB free; about 1 MB needed\)"):
        write_image(big, small_disk / "frame.png")
    assert list(small_disk.iterdir()) == []


# ---------------------------------------------------------------------------------------- memory estimate


@pytest.fixture(scope="module")
def clip_8k(tmp_path_factory) -> Path:
    """Two black 7680×4320 frames: an 8K header, decoded once by the probe."""
    path = tmp_path_factory.mktemp("8k") / "8k.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 7680, 4320, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(2):
            frame = av.VideoFrame(7680, 4320, "yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_memory_is_estimated_from_the_sizes_and_an_8k_source_size_run_is_refused(clip_8k, caplog):
    from rerender.config import apply_overrides
    from rerender.video import HELD_BYTES_PER_PIXEL, PASS_BYTES_PER_PIXEL, check_run_memory, estimate_run_memory

    info = probe_video(clip_8k)
    machine = (12_000_000_000, 8_000_000_000)  # a 12 GB machine with 8 GB free
    source = apply_overrides(RerenderConfig(), {"propagation.output_size": "source", "propagation.workers": 1})
    estimate = estimate_run_memory(info, source)
    assert estimate.propagation_size == (7680, 4320) and estimate.frames_held == 2 and estimate.passes == 1
    assert estimate.total_bytes >= 7680 * 4320 * (PASS_BYTES_PER_PIXEL + 2 * HELD_BYTES_PER_PIXEL)  # ≈ 12.6 GB
    with caplog.at_level("WARNING", logger="rerender.video"):
        check_run_memory(info, source, memory=machine)  # fits the machine, not what is free: a warning
    assert any("GB" in record.getMessage() and "--source-size" in record.getMessage() for record in caplog.records)
    many = apply_overrides(source, {"propagation.workers": 2})
    with pytest.raises(ConfigError, match=r"needs about 2\d\.\d GB.*7680×4320.*machine has 12\.0 GB.*--source-size"):
        check_run_memory(info, many, memory=machine)
    processing = check_run_memory(info, RerenderConfig(), memory=machine)  # the default: 512×288
    assert processing.propagation_size == (512, 288) and processing.total_bytes < 1_000_000_000


def test_a_run_names_the_outputs_folder_when_the_video_fills_its_disk(tmp_path, monkeypatch):
    """The workspace's stage guard turns the writer's error into its line: the output's folder and free space,
    not the workspace's (the video and the workspace may live on different file systems)."""
    from types import SimpleNamespace

    from rerender.errors import OutputPathError
    from rerender.video import writer as writer_module
    from rerender.workflow.stages import disk_guard

    def full(self, rgb, pts):
        raise av.error.OSError(errno.ENOSPC, "No space left on device", "file:full2")

    monkeypatch.setattr(writer_module.VideoWriter, "_encode", full)
    workspace, outputs = tmp_path / "workspace", tmp_path / "elsewhere"
    workspace.mkdir()
    outputs.mkdir()
    space = SimpleNamespace(root=workspace)
    with pytest.raises(OutputPathError) as caught, disk_guard(space, "writing", workspace, needed=5_000_000):
        write_video([np.zeros((32, 32, 3), np.uint8)] * 2, outputs / "clip.mp4", fps=FPS)
    message = str(caught.value)
    assert f"writing {str(outputs)!r}" in message and "MB free" in message and "5 MB" in message
    assert "full2" not in message and str(workspace) in message  # where finished work is kept
