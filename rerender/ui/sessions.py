"""Sessions: one workspace per browser session, sanitized uploads, cancel events.

A session runs one job at a time (`UiSession.run`). A video uploaded while a job runs is queued: it is kept
beside the session's input and becomes the input when the next job starts, so the running job's input and
workspace are never touched.
"""

import atexit
import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
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
    user_name: str = ""
    """The input's name as the user named it (for messages; never used as a path)."""
    keyframes: list[int] = field(default_factory=list)
    """The keyframe indices of the last run."""
    pending: tuple[Path | None, str, str] | None = None
    """A video uploaded (or cleared: None) while a job ran: (its copy, sanitized name, user's name), taken as the
    input when the next job starts."""
    running: threading.Lock = field(default_factory=threading.Lock)
    """Held by the session's job while it runs."""
    state: threading.Lock = field(default_factory=threading.Lock)
    """Makes "start a job" and "take an upload" atomic with respect to each other."""

    @contextlib.contextmanager
    def run(self) -> Iterator[None]:
        """Hold the session for one job: a queued upload becomes the input first; uploads meanwhile are queued.

        Raises:
            ConfigError: another job of this session is running.
        """
        with self.state:
            if not self.running.acquire(blocking=False):
                raise ConfigError("a run is already going on in this page: wait for it to end or press Cancel")
            self.cancel.clear()  # a new job: an earlier Cancel is spent; one pressed from now on counts
            try:
                self._install_pending()
            except BaseException:
                self.running.release()
                raise
        try:
            yield
        finally:
            self.running.release()

    def _install_pending(self) -> None:
        if self.pending is None:
            return
        staged, name, user_name = self.pending
        self.pending = None
        self._install(staged, name, user_name)

    def _install(self, staged: Path | None, name: str, user_name: str) -> None:
        """Make `staged` (a file the session owns, moved) the input; the earlier input and its workspace go."""
        folder = self.root / "input"
        for old in (folder, self.workspace):  # a new video: the session's earlier work is for another one
            if old.is_dir():
                shutil.rmtree(old)
        for result in self.root.glob(f"{self.output.stem}*{self.output.suffix}"):  # the result, its comparison
            result.unlink()
        self.keyframes = []
        if staged is None:
            self.video, self.source_name, self.user_name = None, "", ""
            return
        folder.mkdir()
        target = folder / name
        os.replace(staged, target)
        self.video, self.source_name, self.user_name = target, name, user_name

    def names(self) -> dict[str, str]:
        """The session's server paths → the names the user knows them by (for messages)."""
        names = {str(self.root) + os.sep: ""}  # any other file of the session: by its own name
        if self.video is not None:
            names[str(self.root / "input" / self.source_name)] = self.user_name
        if self.pending is not None and self.pending[0] is not None:
            names[str(self.pending[0])] = self.pending[2]
        return names

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

    def take_upload(
        self, session: UiSession, uploaded: str | os.PathLike | None, original_name: str | None = None
    ) -> Path | None:
        """Copy an uploaded file into the session under a sanitized name (never the client's raw name); `None`
        clears the input. While the session runs a job, the upload is queued (`session.pending`) and the job's
        input and workspace are left as they are.

        Returns:
            The session's copy of the upload (the input, or the queued one); None when cleared.

        Raises:
            ConfigError: the file is larger than the upload limit.
            InputNotFoundError: the upload is gone.
        """
        user_name = re.split(r"[\\/]", original_name or (Path(uploaded).name if uploaded else ""))[-1]
        name = sanitize_filename(user_name, "input.mp4")
        source = self._checked_upload(uploaded, user_name) if uploaded else None
        with session.state:
            staged = None
            if source is not None:
                folder = session.root / "upload"
                folder.mkdir(exist_ok=True)
                staged = Path(tempfile.mkstemp(prefix="upload-", dir=folder)[1])
                shutil.copyfile(source, staged)
            if session.running.locked():  # a job runs on the current input: queue this one
                if session.pending is not None and session.pending[0] is not None:
                    session.pending[0].unlink(missing_ok=True)
                session.pending = (staged, name, user_name)
                return staged
            session.pending = None
            session._install(staged, name, user_name)
            return session.video

    def _checked_upload(self, uploaded: str | os.PathLike, original_name: str | None) -> Path:
        from rerender.errors import InputNotFoundError

        source = Path(uploaded)
        if not source.is_file():
            raise InputNotFoundError(f"the uploaded file {original_name or source.name!r} is gone; upload it again")
        size = source.stat().st_size
        if size > self.max_upload_bytes:
            raise ConfigError(
                f"the upload {original_name or source.name!r} is {size / 2**20:.0f} MiB; "
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

    def pipeline_for(self, config: RerenderConfig, *, control: bool = True) -> Any:
        """The diffusion pipeline for `config.model` and `config.control`, loaded once and kept while they stay.
        `control=False` (text alone, which uses no ControlNet): the kept pipeline serves when its model is this one,
        else one without a ControlNet loads (none needs to be named, also on Flux)."""
        from rerender.config import config_hash
        from rerender.diffusion.loading import load_pipeline

        model = config_hash(config, ("model",))
        key = f"{model}:{config_hash(config, ('control',)) if control else 'none'}"
        reusable = self._pipeline is not None and (
            self._pipeline[0] == key or (not control and self._pipeline[0].split(":")[0] == model)
        )
        if not reusable:
            self._pipeline = None  # free the old one first
            pipeline = load_pipeline(config.model, config.control if control else ())
            pipeline.set_progress_bar_config(disable=True)
            self._pipeline = (key, pipeline)
        return self._pipeline[1]
