"""Sessions: one workspace per browser session, sanitized uploads, cancel events."""

import atexit
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerender.config import RerenderConfig
from rerender.errors import ConfigError

DEMO_VIDEO = Path(__file__).resolve().parents[1] / "assets" / "demo.mp4"
"""The bundled demo clip (see `rerender/assets/README.md`)."""

DEFAULT_MAX_UPLOAD_MB = 500
"""Largest accepted upload, in MiB."""



def sanitize_filename(name: str, fallback: str = "upload") -> str:
    """A safe file name from an uploaded one: its last path component, ASCII letters, digits, `._-` only.

    >>> sanitize_filename("../../etc/passwd"), sanitize_filename("C:\\\\a b\\\\clip (1).MP4"), sanitize_filename("..")
    ('passwd', 'clip__1_.MP4', 'upload')
    """
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    cleaned = cleaned[-120:]
    return cleaned if cleaned.strip("._-") else fallback


@dataclass
class UiSession:
    """One browser session's folder, input and run state."""

    root: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    video: Path | None = None
    """The session's copy of the input video."""
    source_name: str = ""
    """The input's sanitized original name."""
    keyframes: list[int] = field(default_factory=list)
    """The keyframe indices of the last run."""

    @property
    def workspace(self) -> Path:
        return self.root / "work"

    @property
    def output(self) -> Path:
        return self.root / "result.mp4"


class UiSessions:
    """The sessions of one running page: each gets a folder under `root`, removed when the browser leaves."""

    def __init__(self, root: str | os.PathLike | None = None, max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB) -> None:
        if root is None:  # our own temporary folder: removed when the process ends
            root = tempfile.mkdtemp(prefix="rerender-ui-")
            atexit.register(shutil.rmtree, root, ignore_errors=True)
        self.root = Path(root)
        self.max_upload_bytes = int(max_upload_mb) << 20
        self._sessions: dict[str, UiSession] = {}
        self._lock = threading.Lock()
        self._pipeline: tuple[str, Any] | None = None  # (key, loaded pipeline): reused while the model is unchanged

    def get(self, session_id: str) -> UiSession:
        name = sanitize_filename(session_id or "default", "default")
        with self._lock:
            if name not in self._sessions:
                folder = self.root / name
                folder.mkdir(parents=True, exist_ok=True)
                self._sessions[name] = UiSession(folder)
            return self._sessions[name]

    def close(self, session_id: str) -> None:
        name = sanitize_filename(session_id or "default", "default")
        with self._lock:
            session = self._sessions.pop(name, None)
        if session is not None:
            session.cancel.set()
            shutil.rmtree(session.root, ignore_errors=True)

    def take_upload(self, session: UiSession, uploaded: str | os.PathLike, original_name: str | None = None) -> Path:
        """Copy an uploaded file into the session under a sanitized name (never the client's raw name).

        Raises:
            ConfigError: the file is larger than the upload limit.
            InputNotFoundError: the upload is gone.
        """
        source = self._checked_upload(uploaded, original_name)
        name = sanitize_filename(original_name or source.name, "input.mp4")
        folder = session.root / "input"
        for old in (folder, session.workspace):  # a new video: the session's earlier work is for another one
            if old.is_dir():
                shutil.rmtree(old)
        folder.mkdir()
        target = folder / name
        shutil.copyfile(source, target)
        session.video, session.source_name = target, name
        return target

    def _checked_upload(self, uploaded: str | os.PathLike, original_name: str | None) -> Path:
        from rerender.errors import InputNotFoundError

        source = Path(uploaded)
        if not source.is_file():
            raise InputNotFoundError(f"the uploaded file {source.name!r} is gone; upload it again")
        size = source.stat().st_size
        if size > self.max_upload_bytes:
            raise ConfigError(
                f"the upload {sanitize_filename(original_name or source.name)!r} is {size / 2**20:.0f} MiB; "
                f"the limit is {self.max_upload_bytes >> 20} MiB (rerender ui --max-upload-mb)"
            )
        return source

    def take_image(self, session: UiSession, uploaded: str | os.PathLike | None, kind: str) -> Path | None:
        """Copy an uploaded image (the style image, the still) into the session's `kind` folder under a sanitized
        name, replacing the previous one of that kind; None passes through.

        Raises:
            ConfigError: the file is larger than the upload limit.
            InputNotFoundError: the upload is gone.
        """
        if not uploaded:
            return None
        source = self._checked_upload(uploaded, None)
        folder = session.root / sanitize_filename(kind, "image")
        if folder.is_dir():
            shutil.rmtree(folder)
        folder.mkdir()
        target = folder / sanitize_filename(source.name, "image.png")
        shutil.copyfile(source, target)
        return target

    def pipeline_for(self, config: RerenderConfig) -> Any:
        """The diffusion pipeline for `config.model` and `config.control`, loaded once and kept while they stay."""
        from rerender.config import config_hash
        from rerender.diffusion.loading import load_pipeline

        key = config_hash(config, ("model", "control"))
        if self._pipeline is None or self._pipeline[0] != key:
            self._pipeline = None  # free the old one first
            pipeline = load_pipeline(config.model, config.control)
            pipeline.set_progress_bar_config(disable=True)
            self._pipeline = (key, pipeline)
        return self._pipeline[1]
