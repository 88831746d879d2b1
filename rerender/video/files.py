"""Files and paths: image files (read, write, list), output-path checks, atomic writes, FFmpeg URLs."""

from __future__ import annotations

import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Literal

import cv2
import numpy as np

from rerender.errors import InputNotFoundError, OutputPathError, VideoReadError

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_SUFFIXES", "list_image_files", "read_image", "write_image", "check_output_path", "atomic_output"]


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files in `folder`, naturally sorted (`2.png` before `10.png`).

    Raises:
        InputNotFoundError: the folder does not exist or holds no image with a supported extension.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"folder not found: {str(folder)!r}")
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")),
        key=_natural_key,
    )
    if not files:
        raise InputNotFoundError(
            f"folder {str(folder)!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return files


def _read_image_unchanged(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"image not found: {str(path)!r}")
    # cv2.imread cannot open non-ASCII paths on every platform; decoding bytes always works.
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise VideoReadError(f"{str(path)!r} is not a readable image")
    return image


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB `uint8` `(H, W, 3)` (alpha dropped, grey expanded). Works with non-ASCII paths.

    Raises:
        InputNotFoundError: the file does not exist.
        VideoReadError: the file is not a readable image.
    """
    image = _read_image_unchanged(path)
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def write_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB `uint8` `(H, W, 3)` image atomically (temporary name, then rename); format from the suffix."""
    path = Path(path)
    _check_frame(image, "image")
    ok, encoded = cv2.imencode(path.suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputPathError(f"cannot encode an image with suffix {path.suffix!r} for {str(path)!r}")
    with atomic_output(path) as temporary:
        encoded.tofile(str(temporary))
    return path


def _ffmpeg_url(path: str | os.PathLike) -> str:
    # FFmpeg reads "2024-11-14T22:57:44.mp4" as protocol "2024-11-14T22"; the file: prefix makes any name a file.
    return "file:" + os.fspath(path)


def _open_container(path: Path):
    import av

    try:
        return av.open(_ffmpeg_url(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise VideoReadError(f"{str(path)!r} is not a readable video ({error})") from None


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")
"""Containers the H.264 writer produces (`.webm` cannot hold H.264 and `.gif` is not a video codec's container;
`.avi` and other containers are refused rather than written untested)."""


def check_output_path(
    output: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    kind: Literal["video", "file", "folder"] = "video",
    name: str = "output",
) -> Path:
    """Check, before any work, that `output` can be written without touching an input; returns it as a `Path`.

    Args:
        output: the path to check.
        inputs: files and folders the output must not be, and must not lie inside.
        kind: "video" (the suffix must be one of `VIDEO_SUFFIXES`), "file" (any file name) or "folder" (a
            folder to create or fill; it may exist).
        name: how messages call the path (an argument or option name, e.g. "--json").

    Raises:
        OutputPathError: the parent folder is missing or not writable; a video without a supported suffix; a
            file path that is a folder (or a folder path that is a file); the output is an input or inside an
            input folder.
    """
    if kind not in ("video", "file", "folder"):
        raise ValueError(f"`kind` must be 'video', 'file' or 'folder', got {kind!r}")
    output = Path(output)
    if kind == "video" and output.suffix.lower() not in VIDEO_SUFFIXES:
        found = f"the suffix {output.suffix!r}" if output.suffix else "no suffix"
        raise OutputPathError(
            f"{name} {str(output)!r} has {found}; videos are written as H.264 in {', '.join(VIDEO_SUFFIXES)} "
            f"(e.g. {output.stem or 'out'}.mp4)"
        )
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"{name}: output folder does not exist: {str(parent)!r} (for {str(output)!r}); create it first")
    if not os.access(parent, os.W_OK):
        raise OutputPathError(f"{name}: the folder {str(parent)!r} is not writable (for {str(output)!r})")
    if kind != "folder" and output.is_dir():
        raise OutputPathError(f"{name} {str(output)!r} is a folder; give a file name" + (" such as out.mp4" if kind == "video" else ""))
    if kind == "folder" and output.exists() and not output.is_dir():
        raise OutputPathError(f"{name} {str(output)!r} exists and is not a folder")
    resolved = output.resolve()
    for item in inputs:
        item = Path(item)
        same = output.exists() and item.exists() and os.path.samefile(item, output)
        if same or resolved == item.resolve():
            raise OutputPathError(f"{name} {str(output)!r} is the input {str(item)!r}; choose another path")
        if item.is_dir() and resolved.is_relative_to(item.resolve()):
            raise OutputPathError(
                f"{name} {str(output)!r} is inside the input folder {str(item)!r}; choose a path outside it"
            )
    return output


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`, on failure removed.

    Example:
        >>> with atomic_output("out.mp4") as temporary:   # doctest: +SKIP
        ...     encode_to(temporary)
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def _check_frame(frame: np.ndarray, name: str = "frame") -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", type(frame).__name__)
        raise ValueError(f"`{name}` must be an (H, W, 3) RGB array, got shape {shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"`{name}` must have dtype uint8 (0–255), got {frame.dtype}")
