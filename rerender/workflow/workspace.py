"""The resumable workspace of a `translate` run: frames, flows, keyframes, propagated frames and a manifest.

Layout::

    WORKSPACE/
      .rerender-workspace    ownership marker: this folder was made by rerender
      .rerender-files        every file the product wrote here, one relative path a line (append-only)
      .rerender-lock         who runs in this workspace now (pid, host, start time), held with an OS lock
      manifest.json          video identity, keyframe indices, what each stage depends on
      frames/0000.png        preprocessed input frames (what the method sees)
      flows/                 cached optical flow (rerender.flow.FlowCache)
      keyframes/0000.png     rendered keyframes (frame index)
      state/                 what keyframe rendering needs to resume exactly
      propagated/0000.png    every output frame

Ownership: a workspace is only ever created in a missing or empty folder, and is marked. A non-empty folder
without the marker is refused. Only files listed in `.rerender-files` are ever deleted, so files a user put in
any subfolder (notes, paintings) survive every command.

Invalidation: each stage records what it depends on (the video's identity, the hashes of the config sections
it uses, with the style image keyed by its bytes, the digests of the keyframe files it consumed). When any of
these changes, that stage and the stages after it are redone, with one log line naming what is redone and why;
`force` redoes unchanged work.

Locking: one run per workspace. `Workspace.open` holds an exclusive OS lock (released when the process dies,
so a lock left by a killed run is taken over); a second run is refused with the holder's pid, host and start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerender.config import InputChange, RerenderConfig, choices, config_hash
from rerender.errors import ConfigError, OutputPathError, RerenderError

__all__ = [
    "STAGES",
    "STAGE_SECTIONS",
    "Workspace",
    "WorkspaceMismatchError",
    "WorkspaceBusyError",
    "WorkspaceOwnershipError",
    "video_identity",
    "file_digest",
    "intact_png",
]

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 2
MARKER_NAME = ".rerender-workspace"
LEDGER_NAME = ".rerender-files"
LOCK_NAME = ".rerender-lock"
OWN_FIXED = (MARKER_NAME, LEDGER_NAME, LOCK_NAME, "manifest.json", ".manifest.json.partial", "keyframes.mp4")
"""Files at the root that only the product writes (the marker proves the folder was empty when it was made)."""

STAGES = ("frames", "keyframes", "propagation")
"""Stages in order; each depends on all earlier ones."""

STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "frames": ("video",),
    "keyframes": ("video", "keyframes", "prompt", "model", "control", "sampling", "constraints", "flow"),
    "propagation": ("video", "flow", "propagation"),
}
"""The config sections each stage depends on. Propagation depends on the keyframes through their file digests
(recorded per key interval), so a retouched keyframe redoes only the intervals it bounds. The output section
never invalidates anything: writing is cheap."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def files_under(folder: Path) -> set[str]:
    """The files in `folder` and its subfolders, as paths relative to it ("a.txt", "segment-1/b.txt")."""
    return (
        {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
        if folder.is_dir()
        else set()
    )


class WorkspaceMismatchError(RerenderError, ValueError):
    """The workspace belongs to another video (use `force` to start it over for this one)."""


class WorkspaceOwnershipError(OutputPathError):
    """The folder is not empty and was not made by rerender: it is never written to or cleaned."""


class WorkspaceBusyError(RerenderError, RuntimeError):
    """Another run holds the workspace."""


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


def file_digest(path: str | os.PathLike) -> str | None:
    """The SHA-1 of a file's bytes (hex, 16 characters), or None when it is missing."""
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]
    except (FileNotFoundError, IsADirectoryError):
        return None


def intact_png(path: str | os.PathLike) -> bool:
    """Whether `path` is a whole PNG file: the signature at the start and the IEND chunk at the end.

    Cheap (two small reads), it finds missing and truncated files without decoding them.
    """
    try:
        with open(path, "rb") as handle:
            if handle.read(8) != _PNG_SIGNATURE:
                return False
            handle.seek(-len(_PNG_END), os.SEEK_END)
            return handle.read() == _PNG_END
    except OSError:
        return False


def _section_hashes(config: RerenderConfig, stage: str) -> dict[str, str]:
    hashes = {name: config_hash(_keyed_by_content(config), (name,))[:16] for name in STAGE_SECTIONS[stage]}
    if stage == "propagation":
        # frames propagated by an earlier algorithm (or earlier defaults) are not reused under the same config
        from rerender.propagation import ENGINE_VERSION

        hashes["propagation engine"] = ENGINE_VERSION
    return hashes


RUN_ONLY_OPTIONS: dict[str, dict[str, Any]] = {
    "model": {"device": "auto", "cpu_offload": False, "renderer": "diffusion"},
    "constraints": {"reference_storage": "auto"},
}
"""Options that say where or how a run works, not what it makes: changing them (`cpu_offload` after running out
of GPU memory, another GPU) keeps the finished keyframes. The renderer that ran is recorded on its own (the
stage's `depends`), so "auto" and "diffusion" that both ran diffusion keep them too. Hashed at these values."""


def _keyed_by_content(config: RerenderConfig) -> RerenderConfig:
    """`config` as the workspace hashes it: the style image's path replaced by its file's digest (new bytes at the
    same path redo the keyframes, the same bytes at another path do not; a missing file keeps its path, checked
    elsewhere), and the `RUN_ONLY_OPTIONS` at fixed values."""
    config = dataclasses.replace(
        config,
        **{name: dataclasses.replace(getattr(config, name), **fixed) for name, fixed in RUN_ONLY_OPTIONS.items()},
    )
    style_image = config.prompt.style_image
    digest = file_digest(style_image) if style_image is not None else None
    if digest is None:
        return config
    return dataclasses.replace(config, prompt=dataclasses.replace(config.prompt, style_image=f"sha1:{digest}"))


def _manifest_problem(manifest: Any) -> str | None:
    """Why `manifest` does not have the shape this version writes, or None when it does."""
    if not isinstance(manifest, dict):
        return f"it holds a JSON {type(manifest).__name__}, not an object"
    if manifest.get("version") != MANIFEST_VERSION:
        return f"it has version {manifest.get('version')!r}, this rerender writes version {MANIFEST_VERSION}"
    if not isinstance(manifest.get("video"), dict) or not isinstance(manifest.get("stages"), dict):
        return "its `video` or `stages` entry is missing or not an object"
    for name, record in manifest["stages"].items():
        if name not in STAGES or not isinstance(record, dict):
            return f"its stage {name!r} is unknown or not an object"
        for key in ("sections", "depends", "rendered", "intervals"):
            if key in record and not isinstance(record[key], dict):
                return f"the {key!r} of its stage {name!r} is not an object"
        indices = record.get("indices", [])
        if not isinstance(indices, list) or not all(type(index) is int and index >= 0 for index in indices):
            return f"the keyframe indices of its stage {name!r} are not a list of integers ≥ 0"
    return None


def _describe_holder(text: str) -> str:
    try:
        holder = json.loads(text)
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder["started"])))
        return f"pid {int(holder['pid'])} on {holder['host']}, started {started}"
    except (ValueError, KeyError, TypeError):
        return "another process"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OSError:
        return True
    return True


class _Lock:
    """An exclusive lock on `path`: `fcntl.flock` where the OS has it, else an O_EXCL file with pid liveness."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.descriptor: int | None = None

    def acquire(self, root: Path) -> None:
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            self._acquire_exclusive_file(root, info)
            return
        for _ in range(5):
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(descriptor)
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise WorkspaceBusyError(
                    f"the workspace {str(root)!r} is in use by another run ({_describe_holder(self._read())}); "
                    "wait for it to finish or use another workspace"
                ) from None
            # The file we locked must still be the one at `path` (a finishing run may have removed it).
            try:
                same = os.path.samestat(os.fstat(descriptor), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(descriptor, 0)
                os.write(descriptor, info.encode())
                self.descriptor = descriptor
                return
            os.close(descriptor)
        raise WorkspaceBusyError(f"could not lock the workspace {str(root)!r}: its lock file keeps changing")

    def _acquire_exclusive_file(self, root: Path, info: str) -> None:  # pragma: no cover - Windows
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                text = self._read()
                try:
                    holder = json.loads(text)
                    stale = holder["host"] == socket.gethostname() and not _pid_alive(int(holder["pid"]))
                except (ValueError, KeyError, TypeError):
                    stale = False
                if not stale:
                    raise WorkspaceBusyError(
                        f"the workspace {str(root)!r} is in use by another run ({_describe_holder(text)}); wait "
                        f"for it to finish, or delete {str(self.path)!r} if that process no longer runs"
                    ) from None
                logger.warning("taking over the lock of a run that no longer runs (%s)", _describe_holder(text))
                self.path.unlink(missing_ok=True)
                continue
            os.write(descriptor, info.encode())
            self.descriptor = descriptor
            return
        raise WorkspaceBusyError(f"could not lock the workspace {str(root)!r}")

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except OSError:
            return ""

    def release(self) -> None:
        if self.descriptor is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.descriptor, 0)
        os.close(self.descriptor)  # closing drops the flock
        self.descriptor = None
        try:
            import fcntl  # noqa: F401
        except ImportError:  # pragma: no cover - Windows: the file itself is the lock
            self.path.unlink(missing_ok=True)


def check_workspace_root(root: str | os.PathLike, remedy: str = "choose another `workspace`") -> None:
    """Refuse, without writing anything, a workspace path rerender may not use: a file, or a non-empty folder
    that rerender did not make (`Workspace.open` calls it; callers that do other work first call it earlier).
    `remedy`: how the caller's user picks another workspace (a batch has no `workspace` argument).

    Raises:
        OutputPathError: `root` is a file.
        WorkspaceOwnershipError: `root` is a non-empty folder without rerender's marker.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise OutputPathError(f"cannot create the workspace {str(root)!r}: it is a file")
    fresh = not root.exists() or not any(root.iterdir())
    if not fresh and not (root / MARKER_NAME).is_file():
        if (root / "manifest.json").is_file() and (root / "frames").is_dir():
            raise WorkspaceOwnershipError(
                f"the workspace {str(root)!r} was made by an older rerender that did not mark what it owns; "
                f"delete it (after keeping anything of yours) or {remedy}"
            )
        raise WorkspaceOwnershipError(
            f"the workspace {str(root)!r} is a non-empty folder that rerender did not make (no {MARKER_NAME} "
            f"marker); rerender only writes into a new or empty folder, so {remedy}"
        )


@dataclass
class Workspace:
    """A run's folder on disk. Create with `Workspace.open(root, video, config)`; use as a context manager
    (or call `close`) to release its lock."""

    root: Path
    manifest: dict[str, Any]
    redone: list[str] = field(default_factory=list)
    """One line per stage or part this run redoes because what it depends on changed."""
    _lock: _Lock | None = field(default=None, repr=False, compare=False)
    _owned: set[str] = field(default_factory=set, repr=False, compare=False)

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

    # ------------------------------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        root: str | os.PathLike,
        video: str | os.PathLike,
        config: RerenderConfig,
        force: bool = False,
        reconcile: bool = True,
        on_change: InputChange = "refuse",
    ) -> Workspace:
        """Open or create the workspace at `root` for `video` and `config`, and lock it for this run.

        Stages whose recorded dependencies differ from `video` and `config` are forgotten (their files are
        deleted) with one log line each saying why; `force` starts the whole workspace over. With
        `reconcile=False` nothing is forgotten yet (a caller that may still refuse the run calls `reconcile`).
        `on_change` says what a workspace made for an earlier version of `video` (its name, other content) gets:
        "refuse" or "restart" (`rerender.config.InputChange`, checked by the entry points; `animate` starts its
        regenerated clip over).

        Raises:
            OutputPathError: `root` cannot be created or written.
            WorkspaceOwnershipError: `root` is a non-empty folder that rerender did not make.
            WorkspaceBusyError: another run holds the workspace.
            WorkspaceMismatchError: `root` holds another video's work (unless `force`), or an earlier version of
                this one's (unless `force` or `on_change="restart"`).
        """
        root = Path(root)
        if on_change not in choices(InputChange):  # anything else would act as "refuse", silently
            raise ConfigError(f"`on_change` must be one of {choices(InputChange)}, got {on_change!r}")
        check_workspace_root(root)
        fresh = not root.exists() or not any(root.iterdir())
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputPathError(f"cannot create the workspace {str(root)!r}: {error.strerror or error}") from None
        if not os.access(root, os.W_OK):
            raise OutputPathError(f"the workspace {str(root)!r} is not writable")
        workspace = cls(root, {})
        try:
            if fresh:
                (root / MARKER_NAME).write_text(
                    json.dumps({"made_by": "rerender", "created": time.time()}) + "\n", encoding="utf-8"
                )
            workspace._lock = _Lock(root / LOCK_NAME)
            workspace._lock.acquire(root)
            workspace._owned = workspace._read_ledger()
            workspace._load_manifest(video, force, on_change == "restart")
            if reconcile:
                workspace.reconcile(config)
        except OSError as error:
            workspace.close()
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutputPathError(
                    f"the disk is full writing the workspace {str(root)!r}; free some space and run again"
                ) from None
            raise
        except BaseException:
            workspace.close()
            raise
        return workspace

    def _load_manifest(self, video: str | os.PathLike, force: bool, restart_changed: bool = False) -> None:
        identity = video_identity(video)
        path = self.root / "manifest.json"
        manifest: Any = None
        if path.is_file():
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
                problem = _manifest_problem(manifest)
            except (OSError, UnicodeDecodeError, ValueError) as error:
                problem = f"it is not readable JSON ({type(error).__name__})"
            if problem:
                logger.warning(
                    "the manifest of %s cannot be used (%s); rebuilding the workspace from scratch", self.root, problem
                )
                self.redone.append(f"everything: the manifest could not be used ({problem})")
                self.delete_recorded()
                manifest = None
            elif (
                manifest["video"] != identity and restart_changed and manifest["video"].get("name") == identity["name"]
            ):
                logger.info("%s changed since %s was made: its work starts over", identity["name"], self.root)
                self.redone.append(f"everything: {identity['name']} changed")
                self.manifest = manifest
                self.delete_recorded()
                manifest = None
            elif manifest["video"] != identity:
                if not force:
                    held = manifest["video"].get("name")
                    raise WorkspaceMismatchError(  # the same name: the video was edited (on_change is made for that)
                        f"the workspace {str(self.root)!r} holds work for another video: {held!r} changed since the "
                        "workspace was made; use another workspace, or `force=True` (CLI: --force) to start it over "
                        "for this version (from Python, on_change='restart' does so only when the video changed)"
                        if held == identity["name"]
                        else f"the workspace {str(self.root)!r} holds work for another video ({held!r}, not "
                        f"{identity['name']!r}); use another workspace, or `force=True` (CLI: --force) to start it "
                        "over for this video"
                    )
                logger.warning(
                    "starting the workspace %s over for %s (it held %s)",
                    self.root,
                    identity["name"],
                    manifest["video"].get("name"),
                )
                self.redone.append(f"everything: the workspace held another video ({manifest['video'].get('name')})")
                self.manifest = manifest
                self.delete_recorded()
                manifest = None
            elif force:
                logger.warning("`force`: redoing every stage in %s", self.root)
                self.redone.append("everything: forced")
                self.manifest = manifest
                self.delete_recorded()
                manifest = None
        self.manifest = manifest or {"version": MANIFEST_VERSION, "video": identity, "stages": {}}

    def changed_sections(self, stage: str, config: RerenderConfig) -> list[str]:
        """The config sections `stage` depends on whose recorded hashes differ from `config`'s (all of them when
        the stage never ran)."""
        recorded = self.record(stage).get("sections") or {}
        wanted = _section_hashes(config, stage)
        return [name for name in wanted if recorded.get(name) != wanted[name]]

    def reconcile(self, config: RerenderConfig) -> None:
        """Forget the first stage whose config sections changed, and every stage after it, saying why; save."""
        stages = self.manifest["stages"]
        for position, stage in enumerate(STAGES):
            if not stages.get(stage):
                continue
            changed = self.changed_sections(stage, config)
            if changed:
                later = [name for name in STAGES[position:] if name in stages]
                self.invalidate(later, f"config changed ({', '.join(changed)})")
                break
        self.save()

    def invalidate(self, stages: Iterable[str], reason: str) -> None:
        """Forget `stages` and delete their recorded files, with one log line naming them and `reason`."""
        stages = [stage for stage in stages if stage in self.manifest.get("stages", {})]
        if not stages:
            return
        line = f"redoing {', '.join(stages)}: {reason}"
        logger.warning("%s (workspace %s)", line, self.root)
        self.redone.append(line)
        for stage in stages:
            self.clear(stage)

    # ------------------------------------------------------------------------------------------ records

    def save(self) -> None:
        """Write the manifest atomically."""
        temporary = self.root / ".manifest.json.partial"
        temporary.write_text(json.dumps(self.manifest, indent=1), encoding="utf-8")
        os.replace(temporary, self.root / "manifest.json")

    def is_done(self, stage: str, config: RerenderConfig) -> bool:
        """Whether `stage` finished with config sections equal to `config`'s."""
        record = self.record(stage)
        return bool(record.get("done") and record.get("sections") == _section_hashes(config, stage))

    def begin(self, stage: str, config: RerenderConfig, **depends: Any) -> None:
        """Mark `stage` as started with `config` (not done); `depends` are further dependencies (e.g. the
        renderer), and a change in them forgets the stage's earlier work."""
        record = self.manifest["stages"].get(stage, {})
        if record and record.get("depends", {}) != depends:
            before = record.get("depends", {})
            changed = sorted(key for key in set(before) | set(depends) if before.get(key) != depends.get(key))
            self.invalidate(STAGES[STAGES.index(stage) :], f"{', '.join(changed)} changed")
            record = {}
        record.update(
            {
                "sections": _section_hashes(config, stage),
                "depends": depends,
                "done": record.get("done", False),
                "started_at": time.time(),
            }
        )
        self.manifest["stages"][stage] = record
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
        """Forget `stage` and delete the files it recorded (never anything else)."""
        folders = {
            "frames": [self.frames_dir],
            "keyframes": [self.keyframes_dir, self.state_dir],
            "propagation": [self.propagated_dir],
        }[stage]
        if stage == "keyframes":
            self._keep_retouched_keyframes()
        self._delete(name for name in list(self._owned) if any(self._inside(name, folder) for folder in folders))
        self.manifest.get("stages", {}).pop(stage, None)
        if stage == "keyframes":
            self._delete([name for name in self._owned if name == "keyframes.mp4"])

    def _keep_retouched_keyframes(self) -> None:
        """Keyframes whose file differs from what was rendered were retouched by the user: before the stage's
        files are deleted, move each to `<index>.retouched.png` (no longer recorded, so never deleted)."""
        for index, digest in self.record("keyframes").get("rendered", {}).items():
            path = self.keyframe_path(int(index))
            if self.owns(path) and intact_png(path) and file_digest(path) != digest:
                kept = path.with_name(f"{path.stem}.retouched.png")
                os.replace(path, kept)
                logger.warning("kept the retouched %s as %s", path.relative_to(self.root), kept.relative_to(self.root))

    # ------------------------------------------------------------------------------------------ ownership

    def track(self, path: str | os.PathLike) -> Path:
        """Record `path` (inside the workspace) as written by the product, before writing it; returns it."""
        path = Path(path)
        name = path.relative_to(self.root).as_posix()
        if name not in self._owned:
            with open(self.root / LEDGER_NAME, "a", encoding="utf-8") as ledger:
                ledger.write(name + "\n")
            self._owned.add(name)
        return path

    def track_new_files(self, folder: Path, before: set[str]) -> None:
        """Record the files in `folder` and its subfolders that were not there in `before` (paths relative to
        `folder`, as `files_under` gives them), i.e. the ones a run wrote."""
        for name in files_under(folder) - before:
            self.track(folder / name)

    def owns(self, path: str | os.PathLike) -> bool:
        """Whether the product recorded writing `path`."""
        try:
            return Path(path).relative_to(self.root).as_posix() in self._owned
        except ValueError:
            return False

    def _read_ledger(self) -> set[str]:
        path = self.root / LEDGER_NAME
        names: set[str] = set()
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                name = line.strip()
                # Only plain relative paths inside the workspace: a planted "../x" never deletes outside it.
                if name and not name.startswith("/") and ".." not in Path(name).parts and "\\" not in name:
                    names.add(name)
        return names

    def _inside(self, name: str, folder: Path) -> bool:
        return (self.root / name).parent == folder

    def _delete(self, names: Iterable[str]) -> None:
        names = list(names)
        for name in names:
            path = self.root / name
            with contextlib.suppress(FileNotFoundError):
                if path.is_symlink() or path.is_file():
                    path.unlink()
            self._owned.discard(name)
        if names:
            self._rewrite_ledger()

    def _rewrite_ledger(self) -> None:
        temporary = self.root / (LEDGER_NAME + ".partial")
        temporary.write_text("".join(name + "\n" for name in sorted(self._owned)), encoding="utf-8")
        os.replace(temporary, self.root / LEDGER_NAME)

    def delete_recorded(self) -> None:
        """Delete every file the product recorded here (user files stay) and forget all stages."""
        if self.manifest:
            self._keep_retouched_keyframes()
        self._delete(list(self._owned))
        for folder in (self.frames_dir, self.flows_dir, self.keyframes_dir, self.state_dir, self.propagated_dir):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        (self.root / "keyframes.mp4").unlink(missing_ok=True)
        if self.manifest:
            self.manifest["stages"] = {}

    def size_bytes(self) -> int:
        """Bytes of the files the product wrote here (the manifest and ledger included)."""
        total = 0
        for name in self._owned | {"manifest.json", LEDGER_NAME, MARKER_NAME}:
            with contextlib.suppress(OSError):
                total += (self.root / name).stat().st_size
        return total

    def remove(self) -> None:
        """Delete the workspace after a successful run: the recorded files, the product's own root files, and
        every folder left empty. Files a user put here stay (and so does the folder holding them)."""
        self.delete_recorded()
        for name in OWN_FIXED:
            if name != LOCK_NAME:
                (self.root / name).unlink(missing_ok=True)
        (self.root / (LEDGER_NAME + ".partial")).unlink(missing_ok=True)
        self.close()
        (self.root / LOCK_NAME).unlink(missing_ok=True)
        try:
            self.root.rmdir()
        except OSError:
            # The user's files keep the folder: it stays marked as ours, so the next run may use it again.
            (self.root / MARKER_NAME).write_text(
                json.dumps({"made_by": "rerender", "created": time.time()}) + "\n", encoding="utf-8"
            )

    # ------------------------------------------------------------------------------------------ locking

    def close(self) -> None:
        """Release the workspace's lock (idempotent)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
