"""`rerender.animate` and `rerender animate`: a still with a camera move, translated with the move's exact flow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import rerender
from rerender.cli import main
from rerender.errors import ConfigError, InputNotFoundError, VideoReadError
from rerender.video import probe_video, read_frames, write_image
from rerender.workflow.animation import MAX_FRAMES, read_depth

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def still(tmp_path) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    return write_image(cv2.GaussianBlur(noise, (0, 0), 2.5), tmp_path / "still.png")


def test_animate_writes_the_clip_and_its_translation(still, tmp_path):
    seen = []
    result = rerender.animate(
        still,
        "a watercolor",
        motion="zoom-in",
        seconds=0.5,
        fps=16,
        output=tmp_path / "out.mp4",
        K=4,
        renderer="classic",
        progress=False,
        resolution=128,
        callback=lambda stage, done, total: seen.append(stage),
    )
    assert result.output == tmp_path / "out.mp4" and result.clip == tmp_path / "out_clip.mp4"
    for video in (result.output, result.clip):
        info = probe_video(video)
        assert (info.frame_count, float(info.fps), info.width, info.height) == (8, 16.0, 128, 96)  # the still's aspect
    assert result.translation.keyframe_indices == [0, 4, 7] and "propagation" in seen
    clip = np.stack(list(read_frames(result.clip)))
    # what a viewer sees: the clip starts on the whole still and ends zoomed ×1.25 on its centre
    still_pixels = cv2.resize(
        cv2.cvtColor(cv2.imread(str(still)), cv2.COLOR_BGR2RGB),
        (clip.shape[2], clip.shape[1]),
        interpolation=cv2.INTER_AREA,
    )
    assert np.abs(clip[0].astype(int) - still_pixels).mean() < 6
    zoomed = cv2.resize(still_pixels, None, fx=1.25, fy=1.25, interpolation=cv2.INTER_CUBIC)
    top, left = (zoomed.shape[0] - clip.shape[1]) // 2, (zoomed.shape[1] - clip.shape[2]) // 2
    centre = zoomed[top : top + clip.shape[1], left : left + clip.shape[2]]
    assert np.abs(clip[-1].astype(int) - centre)[8:-8, 8:-8].mean() < 8 < np.abs(clip[0].astype(int) - centre).mean()
    # the frames the translation read are the clip's, losslessly, and the flow it used is the move's
    assert len(list(result.clip_frames.iterdir())) == 8 and result.optical_flow.name.startswith("camera-")
    assert probe_video(result.output).frame_count == 8


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"image": "missing.png"}, InputNotFoundError, "missing.png"),
        ({"image": "NOT_AN_IMAGE"}, VideoReadError, "not a readable image"),
        ({"motion": "path", "path": "t=0,scale=1;t=1,scale=0.5"}, ConfigError, "leaves the image"),
        ({"motion": "path", "path": "t=0,scale=-1"}, ConfigError, "scale"),
        ({"motion": "path"}, ConfigError, "needs a `path`"),
        ({"motion": "spin"}, ConfigError, "`motion` must be one of"),
        ({"seconds": 0.01}, ConfigError, "2 to"),
        ({"seconds": 3600, "fps": 240}, ConfigError, f"2 to {MAX_FRAMES}"),
        ({"fps": 0}, ConfigError, "`fps`"),
        ({"K": 20, "seconds": 0.5, "fps": 10}, ConfigError, "`K` must be ≤ the clip's 5 frames"),
        ({"motion": "orbit", "depth": "NOT_AN_IMAGE"}, VideoReadError, "depth"),
        ({"motion": "zoom-in", "path": "t=0,scale=1;t=1,scale=2"}, ConfigError, "`motion` is 'zoom-in'"),
        ({"motion": "pan-left", "depth": "NOT_AN_IMAGE"}, ConfigError, "`motion` is 'pan-left'; only 'orbit'"),
        ({"motion": "path", "path": "t=0,scale=1;t=1,scale=2", "amount": 0.5}, ConfigError, "`amount` does not apply"),
    ],
)
def test_bad_input_fails_before_any_model_loads(still, tmp_path, kwargs, error, message, monkeypatch):
    import rerender.diffusion.loading

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(rerender.diffusion.loading, "load_pipeline", no_loading)
    (tmp_path / "junk.png").write_text("not an image")
    kwargs = {"image": still, **kwargs}
    for key in ("image", "depth"):
        if kwargs.get(key) == "NOT_AN_IMAGE":
            kwargs[key] = tmp_path / "junk.png"
    with pytest.raises(error) as raised:
        rerender.animate(prompt="x", output=tmp_path / "out.mp4", renderer="diffusion", **kwargs)
    assert message in str(raised.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["junk.png", "still.png"]  # nothing written


def test_depth_maps_from_images_and_npy(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 40), (30, 1)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "depth.png"), ramp)
    np.save(tmp_path / "depth.npy", ramp.astype(np.float32))
    np.testing.assert_allclose(read_depth(tmp_path / "depth.png"), read_depth(tmp_path / "depth.npy"))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(VideoReadError, match="numeric"):
        read_depth(tmp_path / "objects.npy")  # never unpickled


def test_cli_animate_with_a_path_and_its_errors(capsys, still, tmp_path):
    output = tmp_path / "cli.mp4"
    code = main(
        [
            "animate",
            str(still),
            "-p",
            "ink",
            "--path",
            "t=0,scale=1.2;t=1,scale=1.4,rotation=5",
            "--seconds",
            "0.4",
            "--fps",
            "10",
            "-o",
            str(output),
            "--renderer",
            "classic",
            "-K",
            "3",
            "--set",
            "resolution=64",
            "--no-clip",
            "-q",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert probe_video(output).frame_count == 4 and float(probe_video(output).fps) == 10
    assert not (tmp_path / "cli_clip.mp4").exists()
    code = main(
        ["animate", str(still), "-p", "ink", "--path", "t=0,scale=1;t=1,scale=0", "-o", str(tmp_path / "bad.mp4")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "scale" in err and err.count("\n") == 1
    # as `translate`: no prompt is refused before the clip is made (-p "" runs unprompted on purpose)
    code = main(["animate", str(still), "-o", str(tmp_path / "unprompted.mp4"), "--renderer", "classic"])
    assert code == 2 and "no prompt" in capsys.readouterr().err
    assert not list(tmp_path.glob("unprompted*"))


def test_clip_folder_that_is_not_ours_is_left_alone(still, tmp_path):
    (tmp_path / "out.mp4.clip").mkdir()
    (tmp_path / "out.mp4.clip" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="did not write"):
        rerender.animate(still, "x", seconds=0.2, fps=10, output=tmp_path / "out.mp4", renderer="classic")
    assert (tmp_path / "out.mp4.clip" / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_animate_example(still, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "animate_still.py"),
            str(still),
            "a watercolor",
            str(tmp_path / "o.mp4"),
            "--motion",
            "pan-left",
            "--seconds",
            "0.5",
            "--fps",
            "12",
            "--resolution",
            "64",
            "--renderer",
            "classic",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert probe_video(tmp_path / "o.mp4").frame_count == 6 and probe_video(tmp_path / "o_clip.mp4").frame_count == 6


def test_orbit_needs_a_depth_map_or_the_annotators_extra(still, tmp_path):
    from rerender.errors import MissingDependencyError

    try:
        import controlnet_aux  # noqa: F401
    except ImportError:
        with pytest.raises(
            MissingDependencyError, match=r"orbit' needs a depth map.*--depth FILE.*annotators.*2-D move"
        ):
            rerender.animate(still, "x", motion="orbit", seconds=0.2, fps=10, output=tmp_path / "o.mp4")
    else:
        pytest.skip("controlnet-aux imports here: the MiDaS path would load weights")
    depth = np.tile(np.linspace(0, 255, 128), (96, 1)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "depth.png"), depth)
    result = rerender.animate(
        still,
        "x",
        motion="orbit",
        depth=tmp_path / "depth.png",
        seconds=0.4,
        fps=10,
        output=tmp_path / "o.mp4",
        renderer="classic",
        progress=False,
        resolution=64,
        K=2,
    )
    forward, _ = result.optical_flow.flows(0, 3)
    assert forward[0, :, :8].mean() * forward[0, :, -8:].mean() < 0  # far and near move opposite ways


def test_missing_weights_fail_before_the_clip_is_made(still, tmp_path):
    from rerender.errors import WeightsNotFoundError

    with pytest.raises((WeightsNotFoundError, InputNotFoundError, ValueError)) as raised:
        rerender.animate(
            still,
            "x",
            seconds=0.2,
            fps=10,
            output=tmp_path / "o.mp4",
            renderer="diffusion",
            base_model=str(tmp_path / "no-such-model"),
        )
    assert "no-such-model" in str(raised.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["still.png"]


def test_a_bad_style_image_or_a_missing_translator_fails_before_the_clip_is_made(still, tmp_path, capsys):
    from rerender.errors import WeightsNotFoundError

    (tmp_path / "junk.png").write_text("not an image")
    with pytest.raises(VideoReadError, match="style_image"):
        rerender.animate(
            still,
            "x",
            seconds=0.2,
            fps=10,
            output=tmp_path / "o.mp4",
            renderer="classic",
            style_image=str(tmp_path / "junk.png"),
        )
    with pytest.raises(WeightsNotFoundError, match="opus-mt-ko-en"):
        rerender.animate(
            still, "수채화", seconds=0.2, fps=10, output=tmp_path / "o.mp4", renderer="classic", prompt_language="auto"
        )
    code = main(
        [
            "animate",
            str(still),
            "-p",
            "x",
            "--style-image",
            str(tmp_path / "junk.png"),
            "-o",
            str(tmp_path / "c.mp4"),
            "--seconds",
            "0.2",
            "--fps",
            "10",
        ]
    )
    assert code == 2 and "style_image" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["junk.png", "still.png"]  # nothing written


def test_a_clip_shorter_than_the_default_interval_has_keyframes_at_both_ends(still, tmp_path):
    # 6 frames, the config's K = 10: as in `translate`, the last frame is a keyframe, not propagated one way
    result = rerender.animate(
        still,
        "ink",
        seconds=0.6,
        fps=10,
        output=tmp_path / "short.mp4",
        renderer="classic",
        progress=False,
        resolution=64,
    )
    assert result.translation.keyframe_indices == [0, 5]
    assert probe_video(result.output).frame_count == 6


def test_a_clip_file_of_the_users_is_never_overwritten(still, tmp_path):
    from rerender.errors import OutputPathError

    options = dict(seconds=0.4, fps=10, renderer="classic", progress=False, resolution=64, K=2)
    (tmp_path / "mine_clip.mp4").write_bytes(b"my own clip")  # where the default clip_output would go
    with pytest.raises(OutputPathError, match="mine_clip.mp4' already exists and was not written by rerender"):
        rerender.animate(still, "ink", output=tmp_path / "mine.mp4", **options)
    assert (tmp_path / "mine_clip.mp4").read_bytes() == b"my own clip" and not (tmp_path / "mine.mp4").exists()
    # the clip an earlier run wrote is ours: a second run writes it again
    first = rerender.animate(still, "ink", output=tmp_path / "ours.mp4", **options)
    again = rerender.animate(still, "ink", output=tmp_path / "ours.mp4", **options)
    assert again.clip == first.clip and probe_video(again.clip).frame_count == 4


def test_a_workspace_that_is_not_ours_is_refused_before_the_clip_is_made(still, tmp_path):
    from rerender.workflow.workspace import WorkspaceOwnershipError

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    with pytest.raises(WorkspaceOwnershipError, match="non-empty folder that rerender did not make"):
        rerender.animate(
            still,
            "ink",
            seconds=0.4,
            fps=10,
            output=tmp_path / "o.mp4",
            workspace=tmp_path / "mine",
            renderer="classic",
            progress=False,
            resolution=64,
        )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mine", "still.png"]  # no clip, no frames
    assert [path.name for path in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_cli_orbit_without_depth_or_annotators_is_a_usage_error(still, tmp_path, capsys, monkeypatch):
    """`rerender animate --motion orbit` with neither --depth nor the annotators extra: a usage error (exit 2)
    naming --depth, before any work; it exited 1 (a run-time failure) with the library's message."""
    import builtins

    real_import = builtins.__import__

    def no_controlnet_aux(name, *args, **kwargs):  # as on a machine without the `annotators` extra
        if name.split(".")[0] == "controlnet_aux":
            raise ImportError("No module named 'controlnet_aux'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_controlnet_aux)
    output = tmp_path / "o.mp4"
    code = main(["animate", str(still), "-p", "x", "-o", str(output), "--motion", "orbit", "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: --motion orbit needs a depth map: pass --depth FILE") and "Traceback" not in err
    assert "annotators" in err and "`depth`" not in err
    assert not output.exists() and not (tmp_path / "o_clip.mp4").exists()
