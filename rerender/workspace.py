"""The resumable workspace of a `translate` run: frames, flows, keyframes, propagated frames and a manifest.

Layout::

    WORKSPACE/
      manifest.json          video identity, keyframe indices, per-stage config hashes and completion
      frames/0000.png        preprocessed input frames (what the method sees)
      flows/                 cached optical flow (rerender.flow.FlowCache)
      keyframes/0000.png     rendered keyframes (frame index), first.png the anchor preview
      state/                 what keyframe rendering needs to resume exactly (attention features, x0s)
      propagated/0000.png    every output frame

Each stage records the hash of the config sections it depends on. Rerunning skips finished stages whose
hash matches, resumes a stage that was interrupted, and refuses (unless forced) when the config changed in
a way that invalidates finished work; `force` clears the invalidated stages and everything after them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerender.config import RerenderConfig, config_hash
from rerender.errors import OutputPathError, RerenderError

__all__ = ["STAGES", "STAGE_SECTIONS", "Workspace", "WorkspaceMismatchError", "video_identity"]

MANIFEST_VERSION = 1
STAGES = ("frames", "keyframes", "propagation")
"""Stages in order; each depends on all earlier ones."""

STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "frames": ("video",),
    "keyframes": ("video", "keyframes", "prompt", "model", "control", "sampling", "constraints", "flow"),
    "propagation": ("video", "keyframes", "prompt", "model", "control", "sampling", "constraints", "flow", "propagation"),
}
"""The config sections whose change invalidates each stage (the output section never does: writing is cheap)."""


class WorkspaceMismatchError(RerenderError, ValueError):
    """The workspace belongs to another video, or its finished work was made with an incompatible config."""


def video_identity(path: str | os.PathLike) -> dict[str, Any]:
    """A cheap fingerprint of an input video or image folder: name, size in bytes and a hash of its first MiB."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha1()
    total = 0
    for file in files:
        total += file.stat().st_size
        with open(file, "rb") as handle:
            digest.update(handle.read(1 << 20 if not path.is_dir() else 1 << 14))
    return {"name": path.name, "bytes": total, "files": len(files), "sha1_head": digest.hexdigest()}


@dataclass
class Workspace:
    """A run's folder on disk. Create with `Workspace.open(root, video, config)`."""

    root: Path
    manifest: dict[str, Any]

    # ------------------------------------------------------------------------------------------ folders

    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"

    @property
    def flows_dir(self) -> Path:
        return self.root / "flows"

    @property
    def keyframes_dir(self) -> Path:
        return self.root / "keyframes"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def propagated_dir(self) -> Path:
        return self.root / "propagated"

    def frame_path(self, index: int) -> Path:
        return self.frames_dir / f"{index:04d}.png"

    def keyframe_path(self, index: int) -> Path:
        return self.keyframes_dir / f"{index:04d}.png"

    def propagated_path(self, index: int) -> Path:
        return self.propagated_dir / f"{index:04d}.png"

    # ------------------------------------------------------------------------------------------ manifest

    @classmethod
    def open(cls, root: str | os.PathLike, video: str | os.PathLike, config: RerenderConfig, force: bool = False) -> "Workspace":
        """Open or create the workspace at `root` for `video` and `config`.

        Raises:
            OutputPathError: `root` cannot be created or written.
            WorkspaceMismatchError: `root` holds another video's work, or finished stages made with an
                incompatible config (unless `force`, which clears what the new config invalidates).
        """
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputPathError(f"cannot create the workspace {str(root)!r}: {error.strerror or error}") from None
        if not os.access(root, os.W_OK):
            raise OutputPathError(f"the workspace {str(root)!r} is not writable")
        identity = video_identity(video)
        manifest_path = root / "manifest.json"
        if manifest_path.is_file():
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                manifest = {}
            if manifest.get("video") and manifest["video"] != identity:
                if not force:
                    raise WorkspaceMismatchError(
                        f"the workspace {str(root)!r} holds work for another video ({manifest['video']['name']}); "
                        "use another workspace or --force to start over"
                    )
                manifest = {}
        else:
            manifest = {}
        workspace = cls(root, manifest or {"version": MANIFEST_VERSION, "video": identity, "stages": {}})
        workspace._reconcile(config, force)
        workspace.save()
        return workspace

    def _reconcile(self, config: RerenderConfig, force: bool) -> None:
        """Check finished stages against `config`; with `force`, drop invalidated stages and their files."""
        stages = self.manifest.setdefault("stages", {})
        invalid_from = None
        for stage in STAGES:
            record = stages.get(stage)
            if record and record.get("config_hash") != config_hash(config, STAGE_SECTIONS[stage]):
                invalid_from = stage
                break
        if invalid_from is None:
            return
        changed = STAGES[STAGES.index(invalid_from):]
        if not force:
            raise WorkspaceMismatchError(
                f"the config changed since the {invalid_from!r} stage ran in {str(self.root)!r}, which invalidates "
                f"{', '.join(changed)}; rerun with --force (force=True) to redo them, or use another workspace"
            )
        for stage in changed:
            self.clear(stage)

    def save(self) -> None:
        """Write the manifest atomically."""
        temporary = self.root / ".manifest.json.partial"
        temporary.write_text(json.dumps(self.manifest, indent=2), encoding="utf-8")
        os.replace(temporary, self.root / "manifest.json")

    def is_done(self, stage: str, config: RerenderConfig) -> bool:
        """Whether `stage` finished with a config compatible with `config`."""
        record = self.manifest.get("stages", {}).get(stage)
        return bool(record and record.get("done") and record.get("config_hash") == config_hash(config, STAGE_SECTIONS[stage]))

    def begin(self, stage: str, config: RerenderConfig) -> None:
        """Mark `stage` as started with `config` (not done)."""
        record = self.manifest["stages"].setdefault(stage, {})
        record.update({"config_hash": config_hash(config, STAGE_SECTIONS[stage]), "done": record.get("done", False)})
        record["started_at"] = time.time()
        self.save()

    def finish(self, stage: str, **data: Any) -> None:
        """Mark `stage` done, storing `data` (e.g. keyframe indices, timings) in its record."""
        record = self.manifest["stages"].setdefault(stage, {})
        record.update(data)
        record["done"] = True
        record["finished_at"] = time.time()
        self.save()

    def record(self, stage: str) -> dict[str, Any]:
        """The manifest record of `stage` (empty if it never ran)."""
        return self.manifest.get("stages", {}).get(stage, {})

    def clear(self, stage: str) -> None:
        """Forget `stage` and delete its files (only folders this workspace owns)."""
        folders = {
            "frames": [self.frames_dir],
            "keyframes": [self.keyframes_dir, self.state_dir],
            "propagation": [self.propagated_dir],
        }[stage]
        for folder in folders:
            if folder.is_dir():
                shutil.rmtree(folder)
        self.manifest.get("stages", {}).pop(stage, None)
