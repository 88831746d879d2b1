"""Frames and keyframes as lazy sequences: each item is read from disk when asked, so a long video is never all
in memory (`FolderFrames`, `WorkspaceFrames`, `FrameRange`, `LazyImages`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from rerender.video import read_image
from rerender.workflow.workspace import Workspace

__all__ = ["FolderFrames", "WorkspaceFrames", "FrameRange", "LazyImages", "EncodedFrames"]


class FolderFrames(Sequence[np.ndarray]):
    """Numbered PNGs (`0000.png`, …) of a folder as a lazy sequence: each index reads one image when asked."""

    def __init__(self, folder: Path, count: int) -> None:
        self.folder, self.count = Path(folder), count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if not -self.count <= index < self.count:
            raise IndexError(index)
        return read_image(self.folder / f"{index % self.count:04d}.png")


class WorkspaceFrames(FolderFrames):
    """The workspace's preprocessed frames as a lazy sequence: each index reads one PNG when asked."""

    def __init__(self, workspace: Workspace, count: int) -> None:
        super().__init__(workspace.frames_dir, count)
        self.workspace = workspace


class FrameRange(Sequence[np.ndarray]):
    """``frames[start:stop]`` as a lazy view (slicing `WorkspaceFrames` would read every frame)."""

    def __init__(self, frames: Sequence[np.ndarray], start: int, stop: int) -> None:
        self.frames, self.start, self.stop = frames, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index):  # type: ignore[override]
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.frames[self.start + index]


class LazyImages(Mapping[int, np.ndarray]):
    """``{index: image}`` read from disk on access, so that a long video's keyframes are never all in memory."""

    def __init__(self, paths: dict[int, Path]) -> None:
        self.paths = paths

    def __getitem__(self, index: int) -> np.ndarray:
        return read_image(self.paths[index], keyframe=True)  # a keyframe painted over in the workspace may have alpha

    def __iter__(self):
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


class EncodedFrames(Sequence[np.ndarray]):
    """Frames kept in memory as PNG bytes (lossless, a few times smaller than raw RGB), decoded when asked: a
    clip made in memory (`generate`'s guides) handed to propagation without temporary files.

    Args:
        frames: RGB uint8 `(H, W, 3)` frames, any iterable (a generator is consumed once).
    """

    def __init__(self, frames: Iterable[np.ndarray]) -> None:
        import cv2

        self.encoded: list[bytes] = []
        for frame in frames:
            ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
            if not ok:  # pragma: no cover - PNG encoding of a uint8 RGB image does not fail
                raise ValueError("cannot encode a frame as PNG")
            self.encoded.append(data.tobytes())

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index):  # type: ignore[override]
        import cv2

        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        data = np.frombuffer(self.encoded[index], np.uint8)
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
