"""`rerender.translate` and `propagate_keyframes` end to end on synthetic clips (classic renderer: no weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rerender
from rerender.config import load_config
from rerender.errors import ConfigError, InputNotFoundError, OutputPathError
from rerender.stylizer import ClassicStylizer
from rerender.video import probe_video, read_frames, write_image
from rerender.workflow.keyframe_folder import propagate_keyframes, read_keyframe_folder
from rerender.workflow.translation import ClassicRenderer, translate
from rerender.workflow.workspace import WorkspaceMismatchError

REPO = Path(__file__).resolve().parents[1]
FAST = dict(
    resolution=64, size_multiple=16, propagation_preset="fast", workers=1, flow_estimator="dis", dis_preset="fast"
)


class CountingRenderer(ClassicRenderer):
    """The classic renderer, counting how many keyframes it actually renders."""

    rendered: list

    def render(self, frames, indices, done, state_dir, on_progress=None):
        for image in super().render(frames, indices, done, state_dir):
            type(self).rendered.append(1)
            yield image


@pytest.fixture
def counting_renderer():
    CountingRenderer.rendered = []
    return CountingRenderer("a cartoon")


def test_translate_writes_every_frame_with_fps_and_audio(synthetic_clip, tmp_path, counting_renderer):
    output = tmp_path / "out.mp4"
    result = translate(
        synthetic_clip, "a cartoon", K=8, output=output, renderer=counting_renderer, progress=False, **FAST
    )
    info = probe_video(output)
    assert result.output == output and result.frame_count == 20
    assert info.frame_count == 20 and info.fps == 25 and (info.width, info.height) == (64, 48)
    assert info.has_audio and info.duration == pytest.approx(0.8)
    assert result.keyframe_indices == [0, 8, 19]  # the last frame too; 16 is closer than K/2 to it
    assert len(CountingRenderer.rendered) == 3
    assert set(result.timings) == {"frames", "keyframes", "propagation", "writing"}
    assert result.previews["keyframes"].is_file()
    # Keyframes reach the output unchanged (before video compression).
    from rerender.video import read_image

    stylized = ClassicStylizer.from_prompt("a cartoon")(
        next(read_frames(synthetic_clip, resolution=64, size_multiple=16))
    )
    np.testing.assert_array_equal(read_image(result.workspace / "keyframes" / "0000.png"), stylized)
    np.testing.assert_array_equal(read_image(result.workspace / "propagated" / "0000.png"), stylized)


def test_translate_is_exported_lazily():
    assert rerender.translate is translate


def test_resume_reuses_finished_work_and_gives_the_same_output(synthetic_clip, tmp_path, counting_renderer):
    workspace = tmp_path / "ws"
    first = translate(
        synthetic_clip,
        "a cartoon",
        K=8,
        output=tmp_path / "a.mp4",
        workspace=workspace,
        renderer=counting_renderer,
        progress=False,
        **FAST,
    )
    assert len(CountingRenderer.rendered) == 3
    first_done = max(path.stat().st_mtime for path in (workspace / "propagated").iterdir())
    second = translate(
        synthetic_clip,
        "a cartoon",
        K=8,
        output=tmp_path / "b.mp4",
        workspace=workspace,
        renderer=counting_renderer,
        progress=False,
        **FAST,
    )
    assert len(CountingRenderer.rendered) == 3  # nothing re-rendered
    assert second.reused == ["frames", "keyframes", "propagation"]
    # The same frames reach the encoder (H.264 bitstreams themselves can differ between encodes in one process).
    assert probe_video(tmp_path / "b.mp4").frame_count == 20
    propagated = sorted((workspace / "propagated").iterdir())
    assert len(propagated) == 20 and all(path.stat().st_mtime <= first_done for path in propagated)
    assert first.keyframe_indices == second.keyframe_indices


def test_interrupted_keyframes_resume_where_they_stopped(synthetic_clip, tmp_path, counting_renderer):
    workspace = tmp_path / "ws"

    class Interrupting(ClassicRenderer):
        def render(self, frames, indices, done, state_dir, on_progress=None):
            for count, image in enumerate(super().render(frames, indices, done, state_dir)):
                if count == 2:
                    raise KeyboardInterrupt
                yield image

    with pytest.raises(KeyboardInterrupt):
        translate(
            synthetic_clip,
            "a cartoon",
            K=4,
            output=tmp_path / "a.mp4",
            workspace=workspace,
            renderer=Interrupting("a cartoon"),
            progress=False,
            **FAST,
        )
    assert not (tmp_path / "a.mp4").exists()
    result = translate(
        synthetic_clip,
        "a cartoon",
        K=4,
        output=tmp_path / "a.mp4",
        workspace=workspace,
        renderer=counting_renderer,
        progress=False,
        **FAST,
    )
    assert result.keyframe_indices == [0, 4, 8, 12, 16, 19]
    assert len(CountingRenderer.rendered) == 4  # 2 of 6 were kept from the interrupted run
    assert "frames" in result.reused


def test_changed_config_redoes_the_keyframes_without_force(synthetic_clip, tmp_path, counting_renderer):
    workspace = tmp_path / "ws"
    translate(
        synthetic_clip,
        "a cartoon",
        K=8,
        output=tmp_path / "a.mp4",
        workspace=workspace,
        renderer=counting_renderer,
        progress=False,
        **FAST,
    )
    result = translate(
        synthetic_clip,
        "a watercolor",
        K=8,
        output=tmp_path / "a.mp4",
        workspace=workspace,
        renderer=counting_renderer,
        progress=False,
        **FAST,
    )
    assert result.reused == ["frames"]  # the prompt does not change the frames
    assert result.redone == ["redoing keyframes, propagation: config changed (prompt)"]
    assert len(CountingRenderer.rendered) == 6
    forced = translate(
        synthetic_clip,
        "a watercolor",
        K=8,
        output=tmp_path / "a.mp4",
        workspace=workspace,
        renderer=counting_renderer,
        progress=False,
        force=True,
        **FAST,
    )
    assert forced.reused == [] and len(CountingRenderer.rendered) == 9  # force redoes unchanged work


def test_stages_first_keyframes_propagate(synthetic_clip, tmp_path, counting_renderer):
    workspace = tmp_path / "ws"
    common = dict(K=8, workspace=workspace, renderer=counting_renderer, progress=False, **FAST)
    first = translate(synthetic_clip, "a cartoon", output=None, stage="first", **common)
    assert first.output is None and first.previews["first"].is_file() and len(CountingRenderer.rendered) == 1
    keyframes = translate(synthetic_clip, "a cartoon", output=None, stage="keyframes", **common)
    assert keyframes.output is None and len(CountingRenderer.rendered) == 3  # the anchor was kept
    result = translate(synthetic_clip, "a cartoon", output=tmp_path / "o.mp4", stage="propagate", **common)
    assert probe_video(result.output).frame_count == 20 and len(CountingRenderer.rendered) == 3


def test_keyframe_modes(synthetic_clip, tmp_path, counting_renderer):
    explicit = translate(
        synthetic_clip,
        "a cartoon",
        output=tmp_path / "e.mp4",
        renderer=counting_renderer,
        progress=False,
        keyframe_mode="explicit",
        keyframe_indices=[3, 11, 19],
        **FAST,
    )
    assert explicit.keyframe_indices == [3, 11, 19]
    assert probe_video(tmp_path / "e.mp4").frame_count == 20  # frames before the first key are propagated back
    adaptive = translate(
        synthetic_clip,
        "a cartoon",
        K=5,
        output=tmp_path / "a.mp4",
        renderer=counting_renderer,
        progress=False,
        keyframe_mode="adaptive",
        min_keyframe_interval=2,
        **FAST,
    )
    assert (
        adaptive.keyframe_indices[0] == 0
        and len(adaptive.keyframe_indices) <= 5
        and adaptive.keyframe_indices[-1] == 19
    )


def test_frame_selection_and_tiny_preset(synthetic_clip, tmp_path, counting_renderer):
    config = load_config(REPO / "configs" / "tiny.yaml")
    result = translate(
        synthetic_clip,
        "a cartoon",
        output=tmp_path / "o.mp4",
        config=config,
        renderer=counting_renderer,
        progress=False,
        start_frame=4,
        frame_stride=2,
    )
    info = probe_video(tmp_path / "o.mp4")
    assert result.frame_count == 8 and info.frame_count == 8 and info.fps == 12.5
    assert info.duration == pytest.approx(8 / 12.5)


def test_callback_reports_every_stage(synthetic_clip, tmp_path, counting_renderer):
    events = []
    translate(
        synthetic_clip,
        "a cartoon",
        K=8,
        output=tmp_path / "o.mp4",
        renderer=counting_renderer,
        progress=False,
        callback=lambda stage, done, total: events.append((stage, done, total)),
        **FAST,
    )
    stages = {stage for stage, _, _ in events}
    assert stages == {"frames", "keyframes", "propagation", "writing"}
    assert ("writing", 20, 20) in events and ("keyframes", 3, 3) in events


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(K=0), ConfigError, "`K` must be an integer ≥ 1"),
        (dict(keyframe_mode="explicit", keyframe_indices=[0, 25]), ConfigError, r"\[0, 19\]"),
        (dict(keyframe_mode="explicit", keyframe_indices=[5, 2]), ConfigError, "sorted and unique"),
        (dict(start_frame=30), ConfigError, "start_frame"),
        (dict(crop={"left": 60, "right": 60}), ConfigError, "crop"),
        (dict(stage="everything"), ConfigError, "stage"),
        (dict(resolution=10), ConfigError, "resolution"),
    ],
)
def test_bad_input_fails_before_work(synthetic_clip, tmp_path, counting_renderer, kwargs, error, message):
    with pytest.raises(error, match=message):
        translate(
            synthetic_clip,
            "a cartoon",
            output=tmp_path / "o.mp4",
            renderer=counting_renderer,
            progress=False,
            **{**FAST, **kwargs},
        )
    assert CountingRenderer.rendered == [] and not (tmp_path / "o.mp4").exists()
    assert not (tmp_path / "o.mp4.work").exists()  # nothing was created either


def test_bad_paths(synthetic_clip, silent_clip, tmp_path, counting_renderer):
    with pytest.raises(InputNotFoundError):
        translate(tmp_path / "missing.mp4", "x", output=tmp_path / "o.mp4", renderer=counting_renderer, progress=False)
    with pytest.raises(OutputPathError, match="is the input"):
        translate(synthetic_clip, "x", output=synthetic_clip, renderer=counting_renderer, progress=False)
    with pytest.raises(OutputPathError, match="does not exist"):
        translate(synthetic_clip, "x", output=tmp_path / "nope" / "o.mp4", renderer=counting_renderer, progress=False)
    translate(
        synthetic_clip,
        "x",
        K=8,
        output=tmp_path / "o.mp4",
        workspace=tmp_path / "ws",
        renderer=counting_renderer,
        progress=False,
        **FAST,
    )
    with pytest.raises(WorkspaceMismatchError, match="another video"):
        translate(
            silent_clip,
            "x",
            K=4,
            output=tmp_path / "p.mp4",
            workspace=tmp_path / "ws",
            renderer=counting_renderer,
            progress=False,
            **FAST,
        )


def test_disk_full_keeps_finished_work(synthetic_clip, tmp_path, counting_renderer, monkeypatch):
    import errno

    import rerender.workflow.stages

    calls = {"count": 0}
    real_write_image = rerender.workflow.stages.write_image

    def filling_disk(image, path):
        calls["count"] += 1
        if "propagated" in str(path) and calls["count"] > 30:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write_image(image, path)

    monkeypatch.setattr(rerender.workflow.stages, "write_image", filling_disk)
    with pytest.raises(OutputPathError, match="disk is full.*finished work is kept"):
        translate(
            synthetic_clip,
            "x",
            K=8,
            output=tmp_path / "o.mp4",
            workspace=tmp_path / "ws",
            renderer=counting_renderer,
            progress=False,
            **FAST,
        )
    monkeypatch.setattr(rerender.workflow.stages, "write_image", real_write_image)
    result = translate(
        synthetic_clip,
        "x",
        K=8,
        output=tmp_path / "o.mp4",
        workspace=tmp_path / "ws",
        renderer=counting_renderer,
        progress=False,
        **FAST,
    )
    assert "keyframes" in result.reused and probe_video(result.output).frame_count == 20


# ------------------------------------------------------------------------------------ your own keyframes


@pytest.fixture
def painted_keyframes(synthetic_clip, tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    frames = list(read_frames(synthetic_clip))
    stylizer = ClassicStylizer("watercolor")
    for index in (0, 9, 19):
        write_image(stylizer(frames[index]), folder / f"{index:04d}.png")
    return folder


def test_propagate_keyframes_folder(synthetic_clip, painted_keyframes, tmp_path):
    output = tmp_path / "prop.mp4"
    result = propagate_keyframes(
        synthetic_clip,
        painted_keyframes,
        output,
        progress=False,
        propagation_preset="fast",
        workers=1,
        flow_estimator="dis",
    )
    info = probe_video(output)
    assert result.keyframe_indices == [0, 9, 19]
    assert info.frame_count == 20 and (info.width, info.height) == (96, 64) and info.has_audio
    assert sorted(p.name for p in painted_keyframes.iterdir()) == ["0000.png", "0009.png", "0019.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("rerender-propagate-")]  # temporaries removed


def test_keyframe_folder_errors(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    with pytest.raises(InputNotFoundError, match="no keyframes"):
        read_keyframe_folder(folder, 10)
    image = np.zeros((8, 8, 3), np.uint8)
    write_image(image, folder / "0003.png")
    write_image(image, folder / "3.jpg")
    with pytest.raises(ConfigError, match="two keyframes for frame 3"):
        read_keyframe_folder(folder, 10)
    (folder / "3.jpg").unlink()
    write_image(image, folder / "0012.png")
    with pytest.raises(ConfigError, match=r"outside the video's frames \[0, 9\]"):
        read_keyframe_folder(folder, 10)
    (folder / "0012.png").unlink()
    (folder / "notes.txt").write_text("hi")
    with pytest.raises(ConfigError, match="not images"):
        read_keyframe_folder(folder, 10)
    (folder / "notes.txt").unlink()
    write_image(image, folder / "cover.png")
    with pytest.raises(ConfigError, match="named by its frame index"):
        read_keyframe_folder(folder, 10)


def test_propagate_refuses_mismatched_keyframes(synthetic_clip, tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    write_image(np.zeros((64, 96, 3), np.uint8), folder / "0000.png")
    write_image(np.zeros((32, 48, 3), np.uint8), folder / "0005.png")
    with pytest.raises(ConfigError, match="one size"):
        propagate_keyframes(synthetic_clip, folder, tmp_path / "o.mp4", progress=False)
    (folder / "0005.png").unlink()
    (folder / "0000.png").unlink()
    write_image(np.zeros((64, 64, 3), np.uint8), folder / "0000.png")
    with pytest.raises(ConfigError, match="aspect"):
        propagate_keyframes(synthetic_clip, folder, tmp_path / "o.mp4", progress=False)


def test_outputs_and_workspaces_inside_an_input_folder_are_refused(synthetic_clip, tmp_path, counting_renderer):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(read_frames(synthetic_clip, end=12)):
        write_image(frame, frames / f"{index:04d}.png")
    keys = tmp_path / "keys"
    keys.mkdir()
    write_image(ClassicStylizer.from_prompt("x")(next(read_frames(synthetic_clip, end=1))), keys / "0000.png")
    clip = tmp_path / "o_comparison.mp4"
    clip.write_bytes(synthetic_clip.read_bytes())
    before = {p: p.read_bytes() for folder in (frames, keys) for p in folder.iterdir()}
    cases = [
        (
            lambda: translate(frames, "x", output=frames / "o.mp4", renderer=counting_renderer, progress=False),
            "inside the input folder",
        ),
        (
            lambda: translate(
                frames, "x", output=tmp_path / "o.mp4", workspace=frames, renderer=counting_renderer, progress=False
            ),
            "workspace .* is the input",
        ),
        (
            lambda: translate(
                frames,
                "x",
                output=tmp_path / "o.mp4",
                workspace=frames / "ws",
                renderer=counting_renderer,
                progress=False,
            ),
            "inside the input folder",
        ),
        (
            lambda: translate(
                synthetic_clip, "x", output=tmp_path / "o.webm", renderer=counting_renderer, progress=False
            ),
            "'.webm'",
        ),
        # the side-by-side video would replace the input
        (
            lambda: translate(
                clip, "x", output=tmp_path / "o.mp4", comparison=True, renderer=counting_renderer, progress=False
            ),
            "comparison output .* is the input",
        ),
        (
            lambda: translate(
                synthetic_clip,
                "x",
                output=tmp_path / "w.mp4",
                workspace=tmp_path / "w.mp4",
                renderer=counting_renderer,
                progress=False,
            ),
            "workspace .* is the output video's path",
        ),
        (lambda: propagate_keyframes(frames, keys, keys / "o.mp4", progress=False), "inside the input folder"),
        (
            lambda: propagate_keyframes(frames, keys, tmp_path / "o.mp4", workspace=keys, progress=False),
            "workspace .* is the input",
        ),
        (lambda: propagate_keyframes(frames, keys, tmp_path / "o.gif", progress=False), "'.gif'"),
        (
            lambda: propagate_keyframes(
                frames, keys, tmp_path / "w.mp4", workspace=tmp_path / "w.mp4", progress=False
            ),
            "workspace .* is the output video's path",
        ),
    ]
    for call, message in cases:
        with pytest.raises(OutputPathError, match=message):
            call()
    assert CountingRenderer.rendered == []
    assert {p: p.read_bytes() for folder in (frames, keys) for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "keys", "o_comparison.mp4"]
    assert clip.read_bytes() == synthetic_clip.read_bytes()


def test_comparison_never_replaces_a_file_rerender_did_not_write(synthetic_clip, tmp_path, counting_renderer):
    output = tmp_path / "o.mp4"
    theirs = tmp_path / "o_comparison.mp4"
    theirs.write_bytes(b"my own edit")
    run = dict(output=output, comparison=True, renderer=counting_renderer, progress=False, **FAST)
    with pytest.raises(OutputPathError, match="o_comparison.mp4' already exists and was not written by rerender"):
        translate(synthetic_clip, "x", **run)
    assert theirs.read_bytes() == b"my own edit" and CountingRenderer.rendered == [] and not output.exists()
    theirs.unlink()
    first = translate(synthetic_clip, "x", **run)
    assert probe_video(first.previews["comparison"]).frame_count == first.frame_count
    translate(synthetic_clip, "x", **run)  # ours, unchanged since: replaced freely
    theirs.write_bytes(b"edited after the run")  # the user changed it: theirs now
    with pytest.raises(OutputPathError, match="not written by rerender"):
        translate(synthetic_clip, "x", **run)
    assert theirs.read_bytes() == b"edited after the run"
