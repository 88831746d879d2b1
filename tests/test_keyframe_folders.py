"""Keyframe folders from other tools and from our own commands; clips shorter than K; source-size output (issue 9)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rerender.cli import main
from rerender.errors import ConfigError
from rerender.synthetic import make_synthetic_video
from rerender.video import compute_output_size, probe_video, read_frames, read_image, unfit_frame, write_image
from rerender.workflow.keyframe_folder import keyframe_number, propagate_keyframes, read_keyframe_folder
from rerender.workflow.translation import ClassicRenderer, translate
from tests.test_geometry import write_clip

FAST = dict(propagation_preset="fast", workers=1, flow_estimator="dis", dis_preset="fast")


def paint(frame: np.ndarray) -> np.ndarray:
    """A 'painted' keyframe: the frame's colours inverted, so it is told apart from every source frame."""
    return 255 - frame


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def output_frames(path) -> list[np.ndarray]:
    return list(read_frames(path))


# ---------------------------------------------------------------------------------------------- naming rule


@pytest.mark.parametrize(
    "name, number",
    [("0008.png", 8), ("0008_v2.png", 8), ("12-final.jpg", 12), ("frame_12.png", 12), ("key 0003 (edit).png", 3)],
)
def test_keyframe_number_rule(name, number):
    assert keyframe_number(name) == number


@pytest.mark.parametrize("name", ["shot3_0012.png", "frame_12_v2.png"])
def test_names_with_several_numbers_none_at_the_start_are_refused(name):
    with pytest.raises(ConfigError, match=rf"{name}.*several numbers.*rename it"):
        keyframe_number(name)


def test_versioned_name_lands_on_its_frame_not_on_its_version(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    write_image(np.zeros((8, 8, 3), np.uint8), folder / "0008_v2.png")
    assert list(read_keyframe_folder(folder, 20)) == [8]  # a video: frames count from 0
    sources = [tmp_path / f"{number:04d}.png" for number in range(1, 21)]  # an EbSynth folder from 1
    assert list(read_keyframe_folder(folder, 20, sources)) == [7]  # the file 0008.png is the 8th frame
    assert list(read_keyframe_folder(folder, 20, first_number=1)) == [7]  # a video whose frames FFmpeg wrote from 1
    write_image(np.zeros((8, 8, 3), np.uint8), folder / "0021.png")
    with pytest.raises(ConfigError, match=r"'0021.png' is for frame 21, outside the video's frames \[1, 20\]"):
        read_keyframe_folder(folder, 20, first_number=1)


# ---------------------------------------------------------------------------------------------- EbSynth layout


@pytest.fixture
def ebsynth_folder(tmp_path):
    """An EbSynth project: frames 0001.png … 0012.png and keys painted on 0001, 0006 and 0012."""
    frames = make_synthetic_video(num_frames=12, width=48, height=32, motion="translation").frames
    video, keys = tmp_path / "video", tmp_path / "keys"
    video.mkdir()
    keys.mkdir()
    for number, frame in enumerate(frames, start=1):
        write_image(frame, video / f"{number:04d}.png")
    for number in (1, 6, 12):
        write_image(paint(frames[number - 1]), keys / f"{number:04d}.png")
    return video, keys, frames


def test_ebsynth_layout_keys_land_on_the_frames_they_were_painted_on(ebsynth_folder, tmp_path):
    video, keys, frames = ebsynth_folder
    result = propagate_keyframes(video, keys, tmp_path / "out.mp4", progress=False, workspace=tmp_path / "ws", **FAST)
    assert result.keyframe_indices == [0, 5, 11]  # 0001 → first frame, 0012 (the last) accepted
    for number in (1, 6, 12):
        propagated = read_image(tmp_path / "ws" / "propagated" / f"{number - 1:04d}.png")
        np.testing.assert_array_equal(propagated, paint(frames[number - 1]))  # the key sits on its own frame
    written = output_frames(result.output)
    assert len(written) == 12
    for number in (6, 12):  # and, after compression, still there rather than a frame late
        here = mean_difference(written[number - 1], paint(frames[number - 1]))
        assert here < 15 and here < mean_difference(written[number - 2], paint(frames[number - 1]))


def test_folder_key_for_a_frame_that_is_not_there_is_refused(ebsynth_folder, tmp_path):
    video, keys, frames = ebsynth_folder
    write_image(paint(frames[0]), keys / "0013.png")
    with pytest.raises(ConfigError, match=r"'0013.png' \(frame number 13\) matches no selected frame"):
        propagate_keyframes(video, keys, tmp_path / "out.mp4", progress=False, **FAST)


def test_keys_from_rerender_keyframes_of_a_folder_source(ebsynth_folder, tmp_path):
    video, _, frames = ebsynth_folder
    workspace = tmp_path / "ws"
    rendered = translate(
        video,
        "x",
        K=5,
        output=None,
        workspace=workspace,
        stage="keyframes",
        renderer=ClassicRenderer("x"),
        progress=False,
        resolution=64,
        **FAST,
    )
    result = propagate_keyframes(
        video,
        workspace / "keyframes",
        tmp_path / "out.mp4",
        progress=False,
        resolution=64,
        workspace=tmp_path / "prop",
        **FAST,
    )
    assert result.keyframe_indices == rendered.keyframe_indices == [0, 5, 11]
    for index in result.keyframe_indices:
        np.testing.assert_array_equal(
            read_image(tmp_path / "prop" / "propagated" / f"{index:04d}.png"),
            read_image(workspace / "keyframes" / f"{index:04d}.png"),
        )


# ---------------------------------------------------------------------------------------------- our own frames


@pytest.fixture
def portrait_clip(tmp_path):
    """A 100×150 portrait clip: at resolution 128 it is processed at 88×128, 3 % off its aspect (crop/pad fit)."""
    frames = make_synthetic_video(num_frames=12, width=100, height=150, motion="translation").frames
    path = tmp_path / "portrait.mp4"
    write_clip(path, frames)
    return path


def test_keys_painted_on_preprocess_output_are_accepted(portrait_clip, tmp_path, capsys):
    frames_dir, keys = tmp_path / "frames", tmp_path / "keys"
    assert main(["preprocess", str(portrait_clip), "-o", str(frames_dir), "--set", "resolution=128", "-q"]) == 0
    keys.mkdir()
    for index in (0, 5, 11):
        write_image(paint(read_image(frames_dir / f"{index:04d}.png")), keys / f"{index:04d}.png")
    output = tmp_path / "out.mp4"
    code = main(
        [
            "propagate",
            str(portrait_clip),
            "--keyframes",
            str(keys),
            "-o",
            str(output),
            "--set",
            "resolution=128",
            "--workers",
            "1",
            "--preset",
            "fast",
            "--set",
            "flow_estimator=dis",
            "--keep-intermediates",
            str(tmp_path / "prop"),
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert output_frames(output)[0].shape == (128, 88, 3)
    for index in (0, 5, 11):  # the key lands on the very frame it was painted on, pixel for pixel
        key = read_image(keys / f"{index:04d}.png")
        np.testing.assert_array_equal(read_image(tmp_path / "prop" / "propagated" / f"{index:04d}.png"), key)
        # the source frame under it is the preprocessed frame the key was painted on
        np.testing.assert_array_equal(read_image(tmp_path / "prop" / "frames" / f"{index:04d}.png"), 255 - key)


def test_keys_painted_on_preprocess_output_at_another_resolution(portrait_clip, tmp_path):
    # preprocessed at resolution 112: 72×112, 3.6 % off the clip's aspect (fitted by crop/pad); propagated
    # with the default config, whose processing size is another
    frames_dir, keys = tmp_path / "frames", tmp_path / "keys"
    assert main(["preprocess", str(portrait_clip), "-o", str(frames_dir), "--set", "resolution=112", "-q"]) == 0
    keys.mkdir()
    write_image(paint(read_image(frames_dir / "0004.png")), keys / "0004.png")
    propagate_keyframes(portrait_clip, keys, tmp_path / "out.mp4", progress=False, workspace=tmp_path / "prop", **FAST)
    frame = read_image(tmp_path / "prop" / "frames" / "0004.png")
    assert frame.shape == (112, 72, 3)
    np.testing.assert_array_equal(frame, read_image(frames_dir / "0004.png"))  # the very frame it was painted on


def test_source_size_output_upscales_the_keyframes(portrait_clip, tmp_path):
    size = compute_output_size(100, 150, 128, "long", 8)
    source = list(read_frames(portrait_clip))
    keys = tmp_path / "keys"
    keys.mkdir()
    processed = list(read_frames(portrait_clip, resolution=128))
    for index in (0, 11):
        write_image(paint(processed[index]), keys / f"{index:04d}.png")
    result = propagate_keyframes(
        portrait_clip,
        keys,
        tmp_path / "out.mp4",
        progress=False,
        resolution=128,
        output_size="source",
        workspace=tmp_path / "prop",
        **FAST,
    )
    written = output_frames(result.output)
    assert size == (88, 128) and written[0].shape == (150, 100, 3)
    upscaled = unfit_frame(paint(processed[11]), (100, 150))
    np.testing.assert_array_equal(read_image(tmp_path / "prop" / "propagated" / "0011.png"), upscaled)
    # the upscaled key lines up with the source frame it was painted on: inverting it gives the source back
    assert mean_difference(255 - upscaled, source[11]) < 8 < mean_difference(255 - upscaled, source[8])


def test_translate_source_size(portrait_clip, tmp_path):
    result = translate(
        portrait_clip,
        "x",
        K=6,
        output=tmp_path / "out.mp4",
        renderer=ClassicRenderer("x"),
        progress=False,
        resolution=64,
        output_size="source",
        comparison=True,
        **FAST,
    )
    info = probe_video(result.output)
    assert (info.width, info.height) == (100, 150) and info.frame_count == 12
    keyframe = read_image(result.workspace / "keyframes" / "0006.png")
    assert keyframe.shape == (64, 40, 3)  # rendered at the processing size
    propagated = read_image(result.workspace / "propagated" / "0006.png")
    np.testing.assert_array_equal(propagated, unfit_frame(keyframe, (100, 150)))
    assert probe_video(result.previews["comparison"]).width == 200


# ---------------------------------------------------------------------------------------------- short clips


def test_clip_shorter_than_K_renders_first_and_last_frame(portrait_clip, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="rerender.keyframes"):
        result = translate(
            portrait_clip,
            "x",
            output=tmp_path / "out.mp4",
            renderer=ClassicRenderer("x"),
            progress=False,
            resolution=64,
            end_frame=7,
            **FAST,
        )  # 7 frames, default K = 10
    assert result.keyframe_indices == [0, 6] and "fewer than K = 10" in caplog.text
    assert len(output_frames(result.output)) == 7
    np.testing.assert_array_equal(
        read_image(result.workspace / "propagated" / "0006.png"),
        read_image(result.workspace / "keyframes" / "0006.png"),
    )


def test_cli_source_size_reuses_the_keyframes(portrait_clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    common = [
        str(portrait_clip),
        "-p",
        "x",
        "-K",
        "6",
        "--workspace",
        str(tmp_path / "ws"),
        "-q",
        "--set",
        "resolution=64",
        "--set",
        "propagation_preset=fast",
        "--set",
        "workers=1",
        "--set",
        "flow_estimator=dis",
    ]
    assert main(["translate", *common, "-o", str(tmp_path / "small.mp4")]) == 0
    capsys.readouterr()
    assert main(["translate", *common, "-o", str(tmp_path / "full.mp4"), "--source-size"]) == 0
    out = capsys.readouterr().out
    # switching the output size redoes only the propagation: frames and keyframes stay
    assert "reused the frames stage" in out and "reused the keyframes stage" in out
    assert (probe_video(tmp_path / "small.mp4").width, probe_video(tmp_path / "small.mp4").height) == (40, 64)
    assert (probe_video(tmp_path / "full.mp4").width, probe_video(tmp_path / "full.mp4").height) == (100, 150)
