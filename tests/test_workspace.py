"""The workspace on its own: ownership marker and ledger, invalidation with reasons, manifests of the wrong
shape, the lock (a second run refused, a killed run's lock taken over), unwritable folders."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import OutputPathError
from rerender.workflow.workspace import (
    LOCK_NAME,
    MARKER_NAME,
    Workspace,
    WorkspaceBusyError,
    WorkspaceMismatchError,
    WorkspaceOwnershipError,
    intact_png,
)


def finished_workspace(root, video, config) -> Workspace:
    """A workspace with all three stages done and one recorded file in each stage's folder."""
    space = Workspace.open(root, video, config)
    for stage, folder in (
        ("frames", space.frames_dir),
        ("keyframes", space.keyframes_dir),
        ("propagation", space.propagated_dir),
    ):
        space.begin(stage, config)
        folder.mkdir(exist_ok=True)
        space.track(folder / "0000.png").write_bytes(b"ours")
        space.finish(stage)
    return space


def plant_user_files(root: Path) -> list[Path]:
    planted = []
    for folder in (root, root / "frames", root / "keyframes", root / "state", root / "propagated", root / "flows"):
        folder.mkdir(exist_ok=True)
        for name, data in (("notes.txt", b"my notes"), ("painting.png", b"\x89PNG my painting")):
            (folder / name).write_bytes(data)
            planted.append(folder / name)
    return planted


def test_new_workspace_is_marked_and_records_stages(tmp_path, synthetic_clip):
    config = RerenderConfig()
    with Workspace.open(tmp_path / "ws", synthetic_clip, config) as workspace:
        assert (tmp_path / "ws" / "manifest.json").is_file() and (tmp_path / "ws" / MARKER_NAME).is_file()
        assert not workspace.is_done("frames", config)
        workspace.begin("frames", config)
        assert not workspace.is_done("frames", config)
        workspace.finish("frames", count=20)
        assert workspace.is_done("frames", config)
    with Workspace.open(tmp_path / "ws", synthetic_clip, config) as reopened:
        assert reopened.is_done("frames", config) and reopened.record("frames")["count"] == 20


def test_output_only_changes_keep_all_stages(tmp_path, synthetic_clip):
    config = RerenderConfig()
    finished_workspace(tmp_path / "ws", synthetic_clip, config).close()
    changed = apply_overrides(config, {"crf": 30})
    with Workspace.open(tmp_path / "ws", synthetic_clip, changed) as reopened:
        assert all(reopened.is_done(stage, changed) for stage in ("frames", "keyframes", "propagation"))
        assert reopened.redone == []


def test_changed_config_redoes_dependent_stages_with_one_line(tmp_path, synthetic_clip, caplog):
    config = RerenderConfig()
    finished_workspace(tmp_path / "ws", synthetic_clip, config).close()
    planted = plant_user_files(tmp_path / "ws")
    changed = apply_overrides(config, {"prompt": "a watercolor"})
    with caplog.at_level(logging.WARNING, logger="rerender.workflow.workspace"):
        with Workspace.open(tmp_path / "ws", synthetic_clip, changed) as reopened:
            assert reopened.is_done("frames", changed)  # the prompt does not change the frames
            assert not reopened.record("keyframes") and not reopened.record("propagation")
            assert reopened.redone == ["redoing keyframes, propagation: config changed (prompt)"]
    assert len([r for r in caplog.records if "redoing" in r.message]) == 1
    assert (tmp_path / "ws" / "frames" / "0000.png").is_file()
    assert not (tmp_path / "ws" / "keyframes" / "0000.png").exists()  # ours: deleted
    assert not (tmp_path / "ws" / "propagated" / "0000.png").exists()
    assert all(path.is_file() for path in planted)  # the user's: kept


def test_propagation_settings_redo_only_propagation(tmp_path, synthetic_clip):
    config = RerenderConfig()
    finished_workspace(tmp_path / "ws", synthetic_clip, config).close()
    changed = apply_overrides(config, {"blend_mode": "linear"})
    with Workspace.open(tmp_path / "ws", synthetic_clip, changed) as reopened:
        assert reopened.is_done("keyframes", changed) and not reopened.record("propagation")
        assert reopened.redone == ["redoing propagation: config changed (propagation)"]


def test_workspace_of_another_video(tmp_path, synthetic_clip, silent_clip):
    finished_workspace(tmp_path / "ws", synthetic_clip, RerenderConfig()).close()
    planted = plant_user_files(tmp_path / "ws")
    with pytest.raises(WorkspaceMismatchError, match="another video.*'synthetic clip.mp4', not 'silent.mp4'.*--force"):
        Workspace.open(tmp_path / "ws", silent_clip, RerenderConfig())
    with Workspace.open(tmp_path / "ws", silent_clip, RerenderConfig(), force=True) as space:
        assert space.manifest["stages"] == {} and space.redone
    assert json.loads((tmp_path / "ws" / "manifest.json").read_text())["video"]["name"] == silent_clip.name
    assert not any(
        (tmp_path / "ws" / folder / "0000.png").exists() for folder in ("frames", "keyframes", "propagated")
    )
    assert all(path.is_file() for path in planted)


def test_a_user_folder_is_refused_and_an_empty_one_is_taken(tmp_path, synthetic_clip):
    user = tmp_path / "my folder"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceOwnershipError, match="non-empty folder that rerender did not make"):
        Workspace.open(user, synthetic_clip, RerenderConfig())
    assert sorted(path.name for path in user.iterdir()) == ["notes.txt"]  # nothing written
    legacy = tmp_path / "legacy"
    (legacy / "frames").mkdir(parents=True)
    (legacy / "manifest.json").write_text('{"version": 1}')
    with pytest.raises(WorkspaceOwnershipError, match="older rerender"):
        Workspace.open(legacy, synthetic_clip, RerenderConfig())
    empty = tmp_path / "empty"
    empty.mkdir()
    Workspace.open(empty, synthetic_clip, RerenderConfig()).close()
    assert (empty / MARKER_NAME).is_file()


def test_a_planted_ledger_never_deletes_outside_the_workspace(tmp_path, synthetic_clip):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    Workspace.open(tmp_path / "ws", synthetic_clip, RerenderConfig()).close()
    (tmp_path / "ws" / ".rerender-files").write_text("../precious.txt\n/etc/hostname\nframes/../../precious.txt\n")
    with Workspace.open(tmp_path / "ws", synthetic_clip, RerenderConfig()) as space:
        space.remove()
    assert outside.read_text() == "keep me"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"version": 2, "video": [], "stages": 3}',
        b"\xff\xfe",
        b'{"version": 2, "video": {}, "stages": {"keyframes": {"indices": [0, "8"]}}}',
        b'{"version": 2, "video": {}, "stages": {"propagation": {"intervals": []}}}',
    ],
)
def test_an_unusable_manifest_gives_a_message_then_a_clean_rebuild(tmp_path, synthetic_clip, caplog, content):
    config = RerenderConfig()
    finished_workspace(tmp_path / "ws", synthetic_clip, config).close()
    planted = plant_user_files(tmp_path / "ws")
    (tmp_path / "ws" / "manifest.json").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="rerender.workflow.workspace"):
        with Workspace.open(tmp_path / "ws", synthetic_clip, config) as space:
            assert space.manifest["stages"] == {} and not space.is_done("frames", config)
    assert "manifest" in caplog.text and "rebuilding the workspace from scratch" in caplog.text
    assert not (tmp_path / "ws" / "frames" / "0000.png").exists()
    assert all(path.is_file() for path in planted)


def test_a_second_run_is_refused_naming_the_holder(tmp_path, synthetic_clip):
    with Workspace.open(tmp_path / "ws", synthetic_clip, RerenderConfig()):
        with pytest.raises(WorkspaceBusyError, match=rf"in use by another run \(pid {os.getpid()} on .+, started 20"):
            Workspace.open(tmp_path / "ws", synthetic_clip, RerenderConfig())
    Workspace.open(tmp_path / "ws", synthetic_clip, RerenderConfig()).close()  # released


def test_a_lock_of_another_process_then_of_a_killed_one(tmp_path, synthetic_clip):
    script = (
        "import sys, time\n"
        "from rerender.config import RerenderConfig\n"
        "from rerender.workflow.workspace import Workspace\n"
        "space = Workspace.open(sys.argv[1], sys.argv[2], RerenderConfig())\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "ws"), str(synthetic_clip)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkspaceBusyError, match=rf"pid {holder.pid} on "):
            Workspace.open(tmp_path / "ws", synthetic_clip, RerenderConfig())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((tmp_path / "ws" / LOCK_NAME).read_text())["pid"] == holder.pid  # left behind by the kill
    with Workspace.open(tmp_path / "ws", synthetic_clip, RerenderConfig()):
        assert json.loads((tmp_path / "ws" / LOCK_NAME).read_text())["pid"] == os.getpid()  # taken over


def test_intact_png(tmp_path):
    import numpy as np

    from rerender.video import write_image

    path = write_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png")
    assert intact_png(path)
    path.write_bytes(path.read_bytes()[:-5])
    assert not intact_png(path) and not intact_png(tmp_path / "missing.png")


def test_unwritable_workspace(tmp_path, synthetic_clip, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputPathError, match="cannot create the workspace"):
        Workspace.open(blocker / "ws", synthetic_clip, RerenderConfig())
    readonly = tmp_path / "ro"
    readonly.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if str(path) == str(readonly) else real_access(path, mode)
    )
    with pytest.raises(OutputPathError, match="not writable"):
        Workspace.open(readonly, synthetic_clip, RerenderConfig())


def test_workspace_open_refuses_an_unknown_on_change(tmp_path):
    """`on_change` is one of `InputChange`; a typo ("restrat") would have acted as "refuse" without a word."""
    from rerender.config import RerenderConfig
    from rerender.errors import ConfigError
    from rerender.workflow.workspace import Workspace

    with pytest.raises(ConfigError, match=r"`on_change` must be one of \('refuse', 'restart'\), got 'restrat'"):
        Workspace.open(tmp_path / "w", tmp_path / "v.mp4", RerenderConfig(), on_change="restrat")
    assert not (tmp_path / "w").exists()
