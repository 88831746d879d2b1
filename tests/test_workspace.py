"""The resumable workspace: manifest, stage hashes, invalidation, another video, unwritable folders."""

from __future__ import annotations

import json
import os

import pytest

from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import OutputPathError
from rerender.workspace import Workspace, WorkspaceMismatchError


def test_new_workspace_and_stage_records(tmp_path, synthetic_clip):
    config = RerenderConfig()
    workspace = Workspace.open(tmp_path / "ws", synthetic_clip, config)
    assert (tmp_path / "ws" / "manifest.json").is_file()
    assert not workspace.is_done("frames", config)
    workspace.begin("frames", config)
    assert not workspace.is_done("frames", config)
    workspace.finish("frames", count=20)
    assert workspace.is_done("frames", config)
    reopened = Workspace.open(tmp_path / "ws", synthetic_clip, config)
    assert reopened.is_done("frames", config) and reopened.record("frames")["count"] == 20


def test_output_only_changes_keep_all_stages(tmp_path, synthetic_clip):
    config = RerenderConfig()
    workspace = Workspace.open(tmp_path / "ws", synthetic_clip, config)
    for stage in ("frames", "keyframes", "propagation"):
        workspace.begin(stage, config)
        workspace.finish(stage)
    changed = apply_overrides(config, {"crf": 30})
    reopened = Workspace.open(tmp_path / "ws", synthetic_clip, changed)
    assert all(reopened.is_done(stage, changed) for stage in ("frames", "keyframes", "propagation"))


def test_changed_config_refuses_then_force_clears_downstream(tmp_path, synthetic_clip):
    config = RerenderConfig()
    workspace = Workspace.open(tmp_path / "ws", synthetic_clip, config)
    for stage in ("frames", "keyframes", "propagation"):
        workspace.begin(stage, config)
        workspace.finish(stage)
    workspace.keyframes_dir.mkdir()
    (workspace.keyframes_dir / "0000.png").write_bytes(b"x")
    workspace.frames_dir.mkdir()
    changed = apply_overrides(config, {"prompt": "a watercolor"})
    with pytest.raises(WorkspaceMismatchError, match="'keyframes' stage.*invalidates keyframes, propagation"):
        Workspace.open(tmp_path / "ws", synthetic_clip, changed)
    reopened = Workspace.open(tmp_path / "ws", synthetic_clip, changed, force=True)
    assert reopened.is_done("frames", changed)  # the prompt does not change the frames
    assert not reopened.is_done("keyframes", changed) and not reopened.is_done("propagation", changed)
    assert not reopened.keyframes_dir.exists() and reopened.frames_dir.exists()


def test_workspace_of_another_video(tmp_path, synthetic_clip, silent_clip):
    Workspace.open(tmp_path / "ws", synthetic_clip, RerenderConfig())
    with pytest.raises(WorkspaceMismatchError, match="another video"):
        Workspace.open(tmp_path / "ws", silent_clip, RerenderConfig())
    Workspace.open(tmp_path / "ws", silent_clip, RerenderConfig(), force=True)
    assert json.loads((tmp_path / "ws" / "manifest.json").read_text())["video"]["name"] == silent_clip.name


def test_unwritable_workspace(tmp_path, synthetic_clip, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputPathError, match="cannot create the workspace"):
        Workspace.open(blocker / "ws", synthetic_clip, RerenderConfig())
    readonly = tmp_path / "ro"
    readonly.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(readonly) else real_access(path, mode))
    with pytest.raises(OutputPathError, match="not writable"):
        Workspace.open(readonly, synthetic_clip, RerenderConfig())
