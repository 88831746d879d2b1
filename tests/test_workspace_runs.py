"""Workspaces through whole runs: user files survive every command, changed inputs are redone (and only
they), damaged files are recomputed, a full disk in any stage, the workspace's size and its deletion."""

from __future__ import annotations

import errno
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rerender.cli import main
from rerender.errors import ConfigError, OutputPathError
from rerender.stylizer import ClassicStylizer
from rerender.video import probe_video, read_frames, read_image, write_image
from rerender.workflow.keyframe_folder import propagate_keyframes
from rerender.workflow.translation import ClassicRenderer, translate
from rerender.workflow.workspace import WorkspaceOwnershipError

FAST = dict(
    resolution=64, size_multiple=16, propagation_preset="fast", workers=1, flow_estimator="dis", dis_preset="fast"
)
SUBFOLDERS = ("", "frames", "flows", "keyframes", "state", "propagated")


class CountingRenderer(ClassicRenderer):
    """The classic renderer, recording which keyframes it actually renders (by index)."""

    rendered: list

    def render(self, frames, indices, done, state_dir, on_progress=None):
        for position, image in enumerate(super().render(frames, indices, done, state_dir), start=len(done)):
            type(self).rendered.append(indices[position])
            yield image


@pytest.fixture
def renderer():
    CountingRenderer.rendered = []
    return CountingRenderer("a cartoon")


def plant(root: Path) -> dict[Path, bytes]:
    """A notes file and a painting in the workspace and in each of its subfolders."""
    planted = {}
    for folder in SUBFOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
        planted[root / folder / "notes.txt"] = b"my notes"
        planted[root / folder / "painting.png"] = bytes(range(256)) * 4
    for path, data in planted.items():
        path.write_bytes(data)
    return planted


def assert_intact(planted: dict[Path, bytes]) -> None:
    for path, data in planted.items():
        assert path.is_file() and path.read_bytes() == data, path


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in sorted(folder.glob("0*.png"))}


def test_user_files_survive_every_command_and_flag(synthetic_clip, silent_clip, tmp_path, renderer):
    ws, out = tmp_path / "ws", tmp_path / "o.mp4"
    run = dict(workspace=ws, renderer=renderer, progress=False, **FAST)
    translate(synthetic_clip, "x", K=8, output=out, **run)
    planted = plant(ws)
    translate(synthetic_clip, "x", K=8, output=out, **run)  # everything reused
    translate(synthetic_clip, "x", K=4, output=None, stage="first", **run)  # keyframes invalidated
    translate(synthetic_clip, "x", K=4, output=None, stage="keyframes", **run)
    translate(synthetic_clip, "x", K=4, output=out, stage="propagate", **run)
    translate(synthetic_clip, "x", K=4, output=out, force=True, **run)
    translate(silent_clip, "x", K=4, output=out, force=True, **run)  # another video
    (ws / "manifest.json").write_text("[]")
    translate(silent_clip, "x", K=4, output=out, **run)
    assert_intact(planted)
    result = translate(silent_clip, "x", K=4, output=out, delete_workspace=True, **run)
    assert result.workspace_deleted
    assert_intact(planted)
    left = sorted(str(path.relative_to(ws)) for path in ws.rglob("*") if path.is_file())
    # only the user's files remain, and the marker: the folder is still one rerender made, so it can be used again
    assert left == sorted([".rerender-workspace", *(str(path.relative_to(ws)) for path in planted)])
    again = translate(silent_clip, "x", K=4, output=out, **run)
    assert probe_video(again.output).frame_count == probe_video(silent_clip).frame_count
    assert_intact(planted)
    # A folder of the user's without the marker is refused, nothing touched.
    (ws / ".rerender-workspace").unlink()
    with pytest.raises(WorkspaceOwnershipError, match="did not mark what it owns"):
        translate(silent_clip, "x", K=4, output=out, force=True, **run)
    assert_intact(planted)


def test_propagate_keeps_user_files_in_its_folder_and_in_a_user_folder(synthetic_clip, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    frames = list(read_frames(synthetic_clip))
    for index in (0, 9, 19):
        write_image(ClassicStylizer("watercolor")(frames[index]), keys / f"{index:04d}.png")
    options = dict(progress=False, propagation_preset="fast", workers=1, flow_estimator="dis", dis_preset="fast")
    kept = tmp_path / "kept"
    propagate_keyframes(synthetic_clip, keys, tmp_path / "p.mp4", workspace=kept, **options)
    planted = plant(kept)
    (keys / "0009.png").unlink()  # the user drops a keyframe
    propagate_keyframes(synthetic_clip, keys, tmp_path / "p.mp4", workspace=kept, **options)
    assert not (kept / "keyframes" / "0009.png").exists()
    propagate_keyframes(synthetic_clip, keys, tmp_path / "p.mp4", workspace=kept, force=True, **options)
    assert_intact(planted)
    # The CLI on a folder of the user's: refused with one line, nothing written.
    user = tmp_path / "mine"
    mine = plant(user)
    code = main(
        [
            "propagate",
            str(synthetic_clip),
            "--keyframes",
            str(keys),
            "-o",
            str(tmp_path / "q.mp4"),
            "--keep-intermediates",
            str(user),
            "--force",
            "-q",
        ]
    )
    assert code == 2 and not (tmp_path / "q.mp4").exists()
    assert_intact(mine)
    assert sorted(path.name for path in user.iterdir()) == sorted(SUBFOLDERS[1:] + ("notes.txt", "painting.png"))


def test_prompt_tuning_needs_no_force(synthetic_clip, tmp_path):
    run = dict(K=8, output=None, stage="first", workspace=tmp_path / "ws", renderer="classic", progress=False, **FAST)
    first = translate(synthetic_clip, "a cartoon", **run)
    cartoon = read_image(first.previews["first"])
    second = translate(synthetic_clip, "a watercolor", **run)
    watercolor = read_image(second.previews["first"])
    source = next(read_frames(synthetic_clip, resolution=64, size_multiple=16))
    np.testing.assert_array_equal(cartoon, ClassicStylizer("cartoon")(source))
    np.testing.assert_array_equal(watercolor, ClassicStylizer("watercolor")(source))
    assert second.redone == ["redoing keyframes: config changed (prompt)"]


def test_a_new_propagation_engine_redoes_propagation_only(synthetic_clip, tmp_path, renderer, monkeypatch):
    run = dict(K=5, output=tmp_path / "out.mp4", workspace=tmp_path / "ws", renderer=renderer, progress=False, **FAST)
    first = translate(synthetic_clip, "x", **run)
    assert first.reused == []
    # the same config, propagated by another version of the algorithm: its frames are not reused
    monkeypatch.setattr("rerender.propagation.ENGINE_VERSION", "next")
    second = translate(synthetic_clip, "x", **run)
    assert second.reused == ["frames", "keyframes"]
    assert second.redone == ["redoing propagation: config changed (propagation engine)"]
    third = translate(synthetic_clip, "x", **run)
    assert third.reused == ["frames", "keyframes", "propagation"] and third.redone == []


def test_retouched_keyframe_redoes_only_the_intervals_it_bounds(synthetic_clip, tmp_path, renderer):
    ws = tmp_path / "ws"
    run = dict(K=5, output=tmp_path / "o.mp4", workspace=ws, renderer=renderer, progress=False, **FAST)
    translate(synthetic_clip, "x", **run)
    assert CountingRenderer.rendered == [0, 5, 10, 15, 19]
    before = snapshot(ws / "propagated")
    retouched = 255 - read_image(ws / "keyframes" / "0010.png")
    write_image(retouched, ws / "keyframes" / "0010.png")
    result = translate(synthetic_clip, "x", stage="propagate", **run)
    assert CountingRenderer.rendered == [0, 5, 10, 15, 19]  # the retouched keyframe is used, not re-rendered
    assert result.redone == ["redoing propagation of 2 of 4 key intervals: keyframe files changed (5–10, 10–15)"]
    after = snapshot(ws / "propagated")
    for index in [*range(0, 5), *range(16, 20)]:
        assert after[f"{index:04d}.png"] == before[f"{index:04d}.png"]  # not even rewritten
    np.testing.assert_array_equal(read_image(ws / "propagated" / "0010.png"), retouched)
    assert all(after[f"{index:04d}.png"][0] != before[f"{index:04d}.png"][0] for index in range(6, 15))
    # Nothing changed since: everything is reused.
    again = translate(synthetic_clip, "x", **run)
    assert again.reused == ["frames", "keyframes", "propagation"] and again.redone == []
    # Re-rendering (here forced) keeps the retouched keyframe beside the new one.
    translate(synthetic_clip, "x", force=True, **run)
    np.testing.assert_array_equal(read_image(ws / "keyframes" / "0010.retouched.png"), retouched)
    assert not np.array_equal(read_image(ws / "keyframes" / "0010.png"), retouched)
    # The workspace's keyframes folder, backup included, still reads as one keyframe per frame.
    from rerender.workflow.keyframe_folder import read_keyframe_folder

    assert list(read_keyframe_folder(ws / "keyframes", 20)) == [0, 5, 10, 15, 19]


def test_another_video_with_force_keeps_nothing_of_the_first(synthetic_clip, silent_clip, tmp_path, renderer):
    ws = tmp_path / "ws"
    run = dict(output=tmp_path / "o.mp4", workspace=ws, renderer=renderer, progress=False, **FAST)
    translate(synthetic_clip, "x", K=5, **run)
    result = translate(silent_clip, "x", K=4, force=True, **run)
    assert result.keyframe_indices == [0, 4, 8, 11] and result.frame_count == 12
    assert sorted(path.name for path in (ws / "keyframes").iterdir()) == [
        "0000.png",
        "0004.png",
        "0008.png",
        "0011.png",
    ]
    assert len(list((ws / "frames").iterdir())) == 12 and len(list((ws / "propagated").iterdir())) == 12
    silent_frames = list(read_frames(silent_clip, resolution=64, size_multiple=16))
    for index in (0, 4, 8):
        np.testing.assert_array_equal(
            read_image(ws / "keyframes" / f"{index:04d}.png"), ClassicStylizer("cartoon")(silent_frames[index])
        )
    manifest = json.loads((ws / "manifest.json").read_text())
    assert manifest["video"]["name"] == "silent.mp4"


@pytest.mark.parametrize("content", ["{garbage", "[]"])
def test_unusable_manifest_rebuilds(synthetic_clip, tmp_path, renderer, content):
    run = dict(K=8, output=tmp_path / "o.mp4", workspace=tmp_path / "ws", renderer=renderer, progress=False, **FAST)
    translate(synthetic_clip, "x", **run)
    (tmp_path / "ws" / "manifest.json").write_text(content)
    result = translate(synthetic_clip, "x", **run)
    assert result.reused == [] and result.redone[0].startswith("everything: the manifest could not be used")
    assert probe_video(result.output).frame_count == 20 and CountingRenderer.rendered == [0, 8, 19, 0, 8, 19]


def test_missing_or_truncated_files_are_recomputed(synthetic_clip, tmp_path, renderer):
    ws = tmp_path / "ws"
    run = dict(K=8, output=tmp_path / "o.mp4", workspace=ws, renderer=renderer, progress=False, **FAST)
    translate(synthetic_clip, "x", **run)
    before = {name: data for name, (data, _) in snapshot(ws / "propagated").items()}
    keyframe = (ws / "keyframes" / "0008.png").read_bytes()
    (ws / "frames" / "0002.png").unlink()
    (ws / "propagated" / "0003.png").unlink()
    (ws / "propagated" / "0017.png").write_bytes(before["0017.png"][:40])
    (ws / "keyframes" / "0008.png").write_bytes(keyframe[: len(keyframe) // 2])
    result = translate(synthetic_clip, "x", **run)
    assert CountingRenderer.rendered == [0, 8, 19, 8, 19]  # from the damaged keyframe on (rendering is sequential)
    assert (ws / "keyframes" / "0008.png").read_bytes() == keyframe
    assert {name: data for name, (data, _) in snapshot(ws / "propagated").items()} == before
    assert any("frames/0002.png is missing or damaged" in line for line in result.redone)
    assert any("keyframes/0008.png is missing or damaged" in line for line in result.redone)
    assert probe_video(result.output).frame_count == 20


def test_stage_propagate_on_a_fresh_workspace_is_refused(synthetic_clip, tmp_path, renderer):
    with pytest.raises(ConfigError, match="has none.*`stage` 'keyframes'"):
        translate(
            synthetic_clip,
            "x",
            K=8,
            output=tmp_path / "o.mp4",
            stage="propagate",
            workspace=tmp_path / "ws",
            renderer=renderer,
            progress=False,
            **FAST,
        )
    assert CountingRenderer.rendered == [] and not (tmp_path / "ws" / "frames").exists()


def _disk_full(path):
    return OSError(errno.ENOSPC, "No space left on device", str(path))


@pytest.mark.parametrize("stage", ["frames", "flows", "keyframes", "propagated", "writing"])
def test_disk_full_in_any_stage_names_the_folder_and_resumes(synthetic_clip, tmp_path, renderer, monkeypatch, stage):
    import rerender.flow.cache
    import rerender.workflow.stages

    writes = {"count": 0}
    real_write_image, real_write_video = rerender.workflow.stages.write_image, rerender.workflow.stages.write_video

    def write_image_filling(image, path):
        if Path(path).parent.name == stage:
            writes["count"] += 1
            if writes["count"] > 2:
                raise _disk_full(path)
        return real_write_image(image, path)

    def savez_filling(file, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    def write_video_filling(frames, path, **options):
        if Path(path) == tmp_path / "o.mp4":
            next(iter(frames))
            raise _disk_full(Path(path).with_name(".o.partial.mp4"))
        return real_write_video(frames, path, **options)

    monkeypatch.setattr(rerender.workflow.stages, "write_image", write_image_filling)
    monkeypatch.setattr(rerender.workflow.stages, "write_video", write_video_filling)
    if stage == "flows":
        monkeypatch.setattr(rerender.flow.cache.np, "savez_compressed", savez_filling)
    run = dict(K=8, output=tmp_path / "o.mp4", workspace=tmp_path / "ws", renderer=renderer, progress=False, **FAST)
    folder = {"writing": tmp_path, "flows": tmp_path / "ws" / "flows"}.get(stage, tmp_path / "ws" / stage)
    with pytest.raises(OutputPathError) as raised:
        translate(synthetic_clip, "x", **run)
    message = str(raised.value)
    assert message.startswith(f"the disk is full writing {str(folder)!r}") and "\n" not in message
    assert "stage needs up to" in message and "MB more; finished work is kept" in message
    monkeypatch.undo()
    result = translate(synthetic_clip, "x", **run)
    assert probe_video(result.output).frame_count == 20
    if stage != "frames":
        assert "frames" in result.reused


@pytest.mark.parametrize("stage", ["frames", "propagated"])
def test_numpys_short_write_is_a_full_disk_too(synthetic_clip, tmp_path, renderer, monkeypatch, stage):
    # numpy's `tofile` (under `write_image`) raises without an errno on a full disk; before, the user saw
    # "OSError: 15991 requested and 0 written"
    import rerender.workflow.stages

    real_write_image = rerender.workflow.stages.write_image

    def short_write(image, path):
        if Path(path).parent.name == stage:
            raise OSError("15991 requested and 0 written")
        return real_write_image(image, path)

    monkeypatch.setattr(rerender.workflow.stages, "write_image", short_write)
    run = dict(K=8, output=tmp_path / "o.mp4", workspace=tmp_path / "ws", renderer=renderer, progress=False, **FAST)
    with pytest.raises(OutputPathError) as raised:
        translate(synthetic_clip, "x", **run)
    message = str(raised.value)
    folder = tmp_path / "ws" / stage
    assert re.fullmatch(
        rf"the disk is full writing {re.escape(repr(str(folder)))} \([\d.,]+ MB free\); the "
        rf"{'frames' if stage == 'frames' else 'propagation'} stage needs up to [\d.,]+ MB more; "
        r"finished work is kept in .*: free some space and run again to resume",
        message,
    ), message


def test_a_full_tmpfs_gives_the_one_line_message(synthetic_clip, tmp_path, renderer):
    import subprocess

    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        with pytest.raises(OutputPathError) as raised:  # 20 frames of 64×48 do not fit in 64 KiB
            translate(
                synthetic_clip,
                "x",
                K=8,
                output=tmp_path / "o.mp4",
                workspace=small / "ws",
                renderer=renderer,
                progress=False,
                **FAST,
            )
    finally:
        subprocess.run(["umount", str(small)], check=False)
    message = str(raised.value)
    assert message.startswith(f"the disk is full writing '{small / 'ws'}") and "MB free" in message, message
    assert "stage needs up to" in message and "\n" not in message


def test_workspace_size_and_deletion(synthetic_clip, tmp_path, renderer, capsys):
    ws = tmp_path / "ws"
    run = dict(K=8, output=tmp_path / "o.mp4", workspace=ws, renderer=renderer, progress=False, **FAST)
    result = translate(synthetic_clip, "x", **run)
    on_disk = sum(path.stat().st_size for path in ws.rglob("*") if path.is_file() and path.name != ".rerender-lock")
    assert result.workspace_bytes == on_disk and not result.workspace_deleted
    flows = list((ws / "flows").glob("*.npz"))
    assert flows and all(np.load(path, allow_pickle=False)["forward"].dtype == np.float16 for path in flows)
    deleted = translate(synthetic_clip, "x", delete_workspace=True, **run)
    assert deleted.workspace_deleted and not ws.exists()
    assert deleted.workspace_bytes == pytest.approx(result.workspace_bytes, abs=200)  # the manifest's times vary
    assert probe_video(deleted.output).frame_count == 20
    # The CLI flag and summary.
    code = main(
        [
            str(Path("translate")),
            str(synthetic_clip),
            "-p",
            "x",
            "-K",
            "8",
            "-o",
            str(tmp_path / "c.mp4"),
            "--workspace",
            str(tmp_path / "cws"),
            "-q",
            "--delete-workspace",
            *[item for key, value in FAST.items() for item in ("--set", f"{key}={value}")],
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and not (tmp_path / "cws").exists()
    assert f"workspace: {tmp_path / 'cws'} (deleted, " in printed and "MB freed)" in printed
    assert "keyframes.mp4" not in printed  # no preview is named that went with the workspace


def test_temporary_propagate_workspace_is_removed(synthetic_clip, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    write_image(next(read_frames(synthetic_clip)), keys / "0000.png")
    (tmp_path / "out").mkdir()
    propagate_keyframes(
        synthetic_clip,
        keys,
        tmp_path / "out" / "p.mp4",
        progress=False,
        propagation_preset="fast",
        workers=1,
        flow_estimator="dis",
        dis_preset="fast",
    )
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["p.mp4"]
    shutil.rmtree(keys)


def test_frames_of_another_size_are_redone(synthetic_clip, tmp_path, renderer):
    keys = tmp_path / "keys"
    keys.mkdir()
    write_image(next(read_frames(synthetic_clip)), keys / "0000.png")  # 96×64
    ws = tmp_path / "ws"
    propagate_keyframes(synthetic_clip, keys, tmp_path / "p.mp4", workspace=ws, progress=False, **FAST)
    assert read_image(ws / "frames" / "0000.png").shape == (64, 96, 3)  # the keyframes' size
    result = translate(
        synthetic_clip, "x", K=8, output=tmp_path / "o.mp4", workspace=ws, renderer=renderer, progress=False, **FAST
    )
    assert read_image(ws / "frames" / "0000.png").shape == (48, 64, 3)
    assert "redoing frames, propagation: size changed" in result.redone and result.reused == []
    assert probe_video(result.output).frame_count == 20
