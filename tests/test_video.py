"""Video I/O: probing, streaming, crop/resize, writing with audio, atomic outputs, bad input."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from rerender.errors import InputNotFoundError, OutputPathError, VideoReadError
from rerender.synthetic import make_synthetic_video
from rerender.video import (
    compute_output_size,
    crop_frame,
    list_image_files,
    preprocess_frame,
    probe_video,
    read_frames,
    read_image,
    write_image,
    write_png_sequence,
    write_video,
    VideoWriter,
)

REAL_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "pexels-cottonbro-studio-6649832-960x506-25fps.mp4"


def _audio_duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        total = 0
        for packet in container.demux(stream):
            if packet.size and packet.duration:
                total += packet.duration
        return float(total * stream.time_base)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-10))


# ---------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "size, resolution, side, multiple, expected",
    [
        ((780, 506), 512, "long", 64, (512, 320)),  # the official sculpture demo after its 180 px crop
        ((780, 506), 512, "short", 64, (768, 512)),  # the paper's short-side rule
        ((960, 506), 512, "long", 64, (512, 256)),
        ((540, 960), 512, "long", 64, (256, 512)),  # portrait: 288 px rounds half to even, as the official np.round
        ((100, 70), 64, "long", 8, (64, 48)),
        ((1920, 1080), 512, "long", 64, (512, 256)),
        ((30, 20), 64, "long", 64, (64, 64)),  # never below one multiple
    ],
)
def test_compute_output_size(size, resolution, side, multiple, expected):
    assert compute_output_size(*size, resolution, side, multiple) == expected


def test_crop_and_resize():
    frame = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    cropped = crop_frame(frame, left=2, top=1, right=3, bottom=4)
    assert cropped.shape == (5, 15, 3)
    np.testing.assert_array_equal(cropped, frame[1:6, 2:17])
    assert preprocess_frame(frame, (2, 1, 3, 4), (30, 10)).shape == (10, 30, 3)
    with pytest.raises(ValueError, match=r"`crop`.*20×10"):
        crop_frame(frame, left=10, right=10)


# ---------------------------------------------------------------------------------------------- reading


def test_probe_synthetic_clip(synthetic_clip):
    info = probe_video(synthetic_clip)
    assert (info.width, info.height) == (96, 64)
    assert info.fps == Fraction(25) and isinstance(info.fps, Fraction)
    assert info.frame_count == 20
    assert info.duration == pytest.approx(0.8)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.video_codec == "h264" and not info.is_image_sequence and info.rotation == 0


def test_read_selection_streams_cropped_resized_frames(synthetic_clip):
    frames = read_frames(synthetic_clip, start=2, end=17, stride=5, crop=(8, 0, 8, 16), resolution=64, size_multiple=16)
    assert not isinstance(frames, list)  # a generator: frames decode one at a time
    frames = list(frames)
    assert len(frames) == 3  # 2, 7, 12
    assert frames[0].shape == (32, 64, 3) and frames[0].dtype == np.uint8


def test_decoded_frames_match_the_source(synthetic_clip):
    video = make_synthetic_video(num_frames=20, width=96, height=64, motion="mixed")
    decoded = list(read_frames(synthetic_clip))
    assert len(decoded) == 20
    for index, frame in enumerate(decoded):
        # yuv420p halves the chroma of this very colourful texture, so PSNR is modest; order must be exact.
        scores = [_psnr(frame, source) for source in video.frames]
        assert int(np.argmax(scores)) == index and scores[index] > 22


@pytest.mark.parametrize("suffix, codec", [(".mkv", "libx264"), (".webm", "libvpx-vp9"), (".avi", "mpeg4"), (".mov", "libx264"), (".gif", "gif")])
def test_reads_other_containers(tmp_path, suffix, codec):
    video = make_synthetic_video(num_frames=6, width=64, height=48, motion="translation")
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = 64, 48
        stream.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        for frame in video.frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe_video(path)
    assert info.frame_count == 6 and (info.width, info.height) == (64, 48)
    assert float(info.fps) == pytest.approx(10, rel=0.05)
    assert len(list(read_frames(path))) == 6


def test_image_folder_natural_sort_and_fps(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in (1, 2, 10, 3):
        write_image(np.full((20, 30, 3), index, np.uint8), folder / f"{index}.png")
    (folder / "notes.txt").write_text("not an image")
    assert [p.name for p in list_image_files(folder)] == ["1.png", "2.png", "3.png", "10.png"]
    info = probe_video(folder, image_sequence_fps=12)
    assert info.is_image_sequence and info.frame_count == 4 and info.fps == 12 and not info.has_audio
    values = [int(frame[0, 0, 0]) for frame in read_frames(folder)]
    assert values == [1, 2, 3, 10]


def test_rotation_metadata_is_applied(tmp_path):
    path = tmp_path / "portrait.mp4"
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :8] = 255  # a white stripe on the left of the stored picture
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe_video(path)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (48, 64)
    upright = next(read_frames(path))
    assert upright.shape == (64, 48, 3)


# ---------------------------------------------------------------------------------------------- writing


def test_write_round_trip_fps_size_and_audio_trim(synthetic_clip, tmp_path):
    info = probe_video(synthetic_clip)
    output = tmp_path / "out.mp4"
    frames = read_frames(synthetic_clip, start=5, info=info)
    write_video(frames, output, fps=info.fps, audio_from=synthetic_clip, audio_start=5 / 25)
    result = probe_video(output)
    assert result.frame_count == 15 and result.fps == 25 and (result.width, result.height) == (96, 64)
    assert result.has_audio
    assert _audio_duration(output) == pytest.approx(15 / 25, abs=0.05)  # trimmed to the output's span
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name or ".video" in p.name]


def test_ntsc_fps_is_exact(tmp_path):
    output = tmp_path / "ntsc.mp4"
    frames = make_synthetic_video(num_frames=5, width=64, height=48, motion="translation").frames
    write_video(frames, output, fps=Fraction(30000, 1001))
    assert probe_video(output).fps == Fraction(30000, 1001)


def test_odd_sizes_are_padded_to_even(tmp_path):
    output = tmp_path / "odd.mp4"
    write_video([np.full((33, 45, 3), 128, np.uint8)] * 3, output, fps=10)
    info = probe_video(output)
    assert (info.width, info.height) == (46, 34)


def test_audio_that_cannot_be_copied_is_reencoded(tmp_path):
    source = tmp_path / "pcm.mkv"
    rate = 16000
    with av.open(str(source), "w") as container:
        video_stream = container.add_stream("libx264", rate=10)
        video_stream.width, video_stream.height, video_stream.pix_fmt = 64, 48, "yuv420p"
        audio_stream = container.add_stream("pcm_s16le", rate=rate)
        for index in range(10):
            for packet in video_stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 20, np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in video_stream.encode():
            container.mux(packet)
        samples = (np.sin(np.arange(rate) / rate * 2 * np.pi * 440) * 10000).astype(np.int16)[None]
        for offset in range(0, rate, 1600):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, offset : offset + 1600]), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, offset, Fraction(1, rate)
            for packet in audio_stream.encode(frame):
                container.mux(packet)
        for packet in audio_stream.encode():
            container.mux(packet)
    output = tmp_path / "out.mp4"
    write_video(read_frames(source, start=2), output, fps=10, audio_from=source, audio_start=0.2)
    info = probe_video(output)
    assert info.audio_codec == "aac"
    # AAC adds one frame (1024 samples) of encoder priming to the packet durations.
    assert _audio_duration(output) == pytest.approx(0.8, abs=1024 / rate + 0.01)


def test_silent_source_gives_silent_output(silent_clip, tmp_path):
    output = tmp_path / "out.mp4"
    write_video(read_frames(silent_clip), output, fps=25, audio_from=silent_clip)
    assert not probe_video(output).has_audio


def test_interrupted_write_leaves_nothing_under_final_name(tmp_path):
    output = tmp_path / "out.mp4"

    def failing_frames():
        yield np.zeros((32, 32, 3), np.uint8)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_video(failing_frames(), output, fps=10)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_replaced_only_when_complete(tmp_path):
    output = tmp_path / "out.mp4"
    output.write_bytes(b"previous result")
    with pytest.raises(ValueError):
        write_video([np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)], output, fps=10)
    assert output.read_bytes() == b"previous result"


def test_png_sequence_round_trip(tmp_path):
    frames = make_synthetic_video(num_frames=4, width=48, height=32, motion="zoom").frames
    paths = write_png_sequence(frames, tmp_path / "pngs")
    assert [p.name for p in paths] == ["0000.png", "0001.png", "0002.png", "0003.png"]
    np.testing.assert_array_equal(np.stack(list(read_frames(tmp_path / "pngs"))), frames)


def test_non_ascii_and_space_paths(tmp_path):
    folder = tmp_path / "vidéo 動画"
    folder.mkdir()
    frames = make_synthetic_video(num_frames=4, width=48, height=32, motion="translation").frames
    output = folder / "sortie finale.mp4"
    write_video(frames, output, fps=8)
    assert probe_video(output).frame_count == 4
    write_image(frames[0], folder / "image é.png")
    np.testing.assert_array_equal(read_image(folder / "image é.png"), frames[0])


@pytest.mark.skipif(not REAL_CLIP.exists(), reason="shared test clips not present")
def test_real_clip_probe_and_preprocess():
    info = probe_video(REAL_CLIP)
    assert (info.width, info.height, info.frame_count, info.fps) == (960, 506, 270, 25)
    first = next(read_frames(REAL_CLIP, crop=(0, 0, 180, 0), resolution=512, info=info))
    assert first.shape == (320, 512, 3)  # the official demo's processing size


# ---------------------------------------------------------------------------------------------- bad input


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(InputNotFoundError, match="not found"):
        probe_video(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match="holds no images"):
        probe_video(tmp_path / "empty")


def test_not_a_video_and_truncated_video(tmp_path, synthetic_clip):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(VideoReadError, match="not a readable video"):
        probe_video(text)
    truncated = tmp_path / "truncated.mp4"
    data = synthetic_clip.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoReadError):
        probe_video(truncated)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoReadError):
        probe_video(empty)


def test_zero_frames(tmp_path):
    path = tmp_path / "audio_only.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(VideoReadError, match="no video"):
        probe_video(path)


def test_range_and_crop_errors_come_before_decoding(synthetic_clip):
    with pytest.raises(ValueError, match=r"`start` must be in \[0, 19\].*got 25"):
        read_frames(synthetic_clip, start=25)
    with pytest.raises(ValueError, match=r"`end` must be in \[6, 20\].*got 30"):
        read_frames(synthetic_clip, start=5, end=30)
    with pytest.raises(ValueError, match="`crop`"):
        read_frames(synthetic_clip, crop=(50, 0, 50, 0))


def test_output_path_errors(tmp_path, synthetic_clip, monkeypatch):
    frames = [np.zeros((32, 32, 3), np.uint8)]
    with pytest.raises(OutputPathError, match="does not exist"):
        write_video(frames, tmp_path / "missing" / "out.mp4", fps=10)
    with pytest.raises(OutputPathError, match="is the input"):
        write_video(frames, synthetic_clip, fps=10, inputs=[synthetic_clip])
    assert probe_video(synthetic_clip).frame_count == 20  # untouched
    with pytest.raises(OutputPathError, match=r"\.mp4"):
        write_video(frames, tmp_path / "out.txt", fps=10)
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        if os.access(readonly, os.W_OK):  # root writes anywhere: simulate a read-only folder
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == readonly else real_access(path, mode))
        with pytest.raises(OutputPathError, match="not writable"):
            write_video(frames, readonly / "out.mp4", fps=10)
    finally:
        readonly.chmod(0o700)


def test_bad_frames_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video([np.zeros((32, 32, 3), np.float32)], tmp_path / "a.mp4", fps=10)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        write_video([np.zeros((32, 32), np.uint8)], tmp_path / "b.mp4", fps=10)
    with pytest.raises(ValueError, match="no frames"):
        write_video([], tmp_path / "c.mp4", fps=10)
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "d.mp4", fps=0)


def test_check_output_path_kinds_and_inputs(tmp_path, synthetic_clip):
    from rerender.video import VIDEO_SUFFIXES, check_output_path

    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "0000.png").write_bytes(b"x")
    for suffix in VIDEO_SUFFIXES + (".MP4", ".Mkv"):
        assert check_output_path(tmp_path / f"o{suffix}", [synthetic_clip, frames]) == tmp_path / f"o{suffix}"
    for name, message in (("o.webm", "'.webm'"), ("o.gif", "'.gif'"), ("o.avi", "'.avi'"), ("o", "no suffix")):
        with pytest.raises(OutputPathError, match=message):
            check_output_path(tmp_path / name)
    with pytest.raises(OutputPathError, match="inside the input folder"):
        check_output_path(frames / "o.mp4", [frames])
    (frames / "deeper").mkdir()
    with pytest.raises(OutputPathError, match="inside the input folder"):
        check_output_path(frames / "deeper" / "x", [frames], kind="folder")
    with pytest.raises(OutputPathError, match="is the input"):
        check_output_path(frames, [frames], kind="folder")
    with pytest.raises(OutputPathError, match="is the input"):  # another spelling of the same file
        check_output_path(tmp_path / "frames" / ".." / "frames" / "0000.png", [frames / "0000.png"], kind="file")
    with pytest.raises(OutputPathError, match="not a folder"):
        check_output_path(frames / "0000.png", kind="folder")
    with pytest.raises(OutputPathError, match="--json .* is a folder"):
        check_output_path(frames, kind="file", name="--json")
    assert check_output_path(tmp_path / "report", kind="file") == tmp_path / "report"  # any file name
    assert (frames / "0000.png").read_bytes() == b"x"


def test_write_png_sequence_refuses_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(b"keep")
    with pytest.raises(OutputPathError, match="not a folder"):
        write_png_sequence([np.zeros((4, 4, 3), np.uint8)], target)
    assert target.read_bytes() == b"keep"
