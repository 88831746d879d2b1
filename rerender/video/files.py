"""Files and paths: image files (read, write, list), output-path checks, atomic writes, FFmpeg URLs."""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from rerender.errors import (
    ConfigError,
    DiskFullError,
    FlowInputError,
    InputNotFoundError,
    OutputPathError,
    VideoReadError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "DEFAULT_BACKGROUND",
    "list_image_files",
    "read_image",
    "read_image_with_alpha",
    "composite",
    "write_image",
    "disk_full_error",
    "check_output_path",
    "check_input_path",
    "atomic_output",
    "WRITER_TAG",
    "written_by_rerender",
    "refuse_foreign_output",
]


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def check_input_path(value: object, name: str) -> Path:
    """`value` as a `Path`, or a `ConfigError` naming the argument `name` when it is no path (None, a list, a
    number): not Python's "expected str, bytes or os.PathLike object"."""
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    raise ConfigError(f"`{name}` must be a path (a str or os.PathLike), got {value!r}")


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
        (
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        ),
        key=_natural_key,
    )
    if not files:
        raise InputNotFoundError(f"folder {str(folder)!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


DEFAULT_BACKGROUND = (255, 255, 255)
"""What transparent pixels are composited over unless told otherwise (`video.background`): white, as a page."""

_logged: set[tuple[str, str]] = set()


def _log_once(kind: str, key: str, message: str, *args, level: int = logging.WARNING) -> None:
    """Log `message` the first time (`kind`, `key`) is seen in this process: one line per folder, not per frame."""
    if (kind, key) not in _logged:
        _logged.add((kind, key))
        logger.log(level, message, *args)


def _from_pillow(image, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB `uint8` and alpha `uint8` (or None) from an upright Pillow image of any mode."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # 16-bit (or 32-bit integer) grey: scale to 8 bits
        values = np.asarray(image).astype(np.float64)
        grey = np.clip(np.round(values / 257.0 if values.max(initial=0) > 255 else values), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode == "F":
        return np.repeat(_float_to_uint8(np.asarray(image), path)[..., None], 3, axis=2), None
    transparent = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if transparent:
        rgba = np.asarray(image.convert("RGBA"))
        return rgba[..., :3].copy(), rgba[..., 3].copy()
    return np.array(image.convert("RGB")), None  # a writable copy (np.asarray of an image is read-only)


def _float_to_uint8(values: np.ndarray, path: Path) -> np.ndarray:
    """Floating-point pixels (0 = black, 1 = white, as TIFF and OpenEXR store them) scaled to 8 bits."""
    values = np.nan_to_num(values.astype(np.float64), nan=0.0)
    low, high = float(values.min(initial=0)), float(values.max(initial=0))
    if low < 0 or high > 1:
        _log_once(
            "float range",
            str(path),
            "%s holds floating-point pixels from %.3g to %.3g; 0–1 is read as black to "
            "white and the rest is clipped (convert it to 8- or 16-bit to choose the mapping)",
            path,
            low,
            high,
        )
    return np.clip(np.round(values * 255), 0, 255).astype(np.uint8)


def _from_opencv(image: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB `uint8` and alpha from an OpenCV `(H, W[, C])` BGR(A) array of any depth."""
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = _float_to_uint8(image, path)
    elif image.dtype != np.uint8:
        raise VideoReadError(
            f"{str(path)!r} stores {image.dtype} pixels; images are read from 8-bit, 16-bit or "
            "floating-point (0–1) files"
        )
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), None
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), np.ascontiguousarray(image[..., 3])
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), None


def read_image_with_alpha(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image as a photo viewer shows it: RGB `uint8` `(H, W, 3)` and its alpha `uint8` `(H, W)` or None.

    The EXIF orientation is applied (all eight, Pillow's `ImageOps.exif_transpose`), so a phone photo stored
    sideways comes out upright. 16-bit images are scaled to 8 bits; floating-point images (32-bit TIFF) are read
    as 0 = black, 1 = white (values outside are clipped, with a warning naming the file). Files Pillow cannot
    open (a three-channel float TIFF) are read by OpenCV, whose reader applies the EXIF orientation too.

    Shape:
        - returns: `(H, W, 3)` uint8 and `(H, W)` uint8 (255 = opaque) or None when the image has no alpha.

    Raises:
        InputNotFoundError: the file does not exist.
        VideoReadError: the file is not an image either library reads, naming it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"image not found: {str(path)!r}")
    try:
        with Image.open(path) as image:
            return _from_pillow(ImageOps.exif_transpose(image), path)
    except Image.DecompressionBombError as error:
        raise VideoReadError(
            f"{str(path)!r} is too large to read safely ({error}); downscale it to at most "
            f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.3g} megapixels first (the output is far smaller anyway)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        pass  # not a format (or mode) Pillow reads: OpenCV, below
    # cv2.imread cannot open non-ASCII paths on every platform; decoding bytes always works. Any depth and
    # colour, with the EXIF orientation applied (IMREAD_UNCHANGED would ignore it).
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if data.size else None
    if image is None:
        raise VideoReadError(
            f"{str(path)!r} is not a readable image (supported: {', '.join(IMAGE_EXTENSIONS)} with 8- or 16-bit "
            "integer or 32-bit float pixels)"
        )
    return _from_opencv(image, path)


def composite(
    rgb: np.ndarray, alpha: np.ndarray | None, background: str | tuple[int, int, int] = DEFAULT_BACKGROUND
) -> np.ndarray:
    """Composite an RGB image over a plain `background` by its alpha (`out = a·rgb + (1 − a)·background`).

    Shape:
        - rgb: `(H, W, 3)` uint8; alpha: `(H, W)` uint8 (255 = opaque) or None (returned unchanged).
        - returns: `(H, W, 3)` uint8.
    """
    if alpha is None:
        return rgb
    from rerender.config import parse_color

    weight = alpha.astype(np.float32)[..., None] / 255.0
    colour = np.asarray(parse_color(background, "background"), np.float32)
    return np.clip(np.round(rgb * weight + colour * (1.0 - weight)), 0, 255).astype(np.uint8)


def read_image(
    path: str | os.PathLike,
    *,
    background: str | tuple[int, int, int] = DEFAULT_BACKGROUND,
    keyframe: bool = False,
) -> np.ndarray:
    """Read an image file as a photo viewer shows it: RGB `uint8` `(H, W, 3)`. Works with non-ASCII paths.

    Every image the product reads comes through here (stills, keyframes, image-folder frames, style images,
    control maps): EXIF orientation applied, 16-bit and float scaled to 8 bits (`read_image_with_alpha`), and
    transparent pixels composited over `background` (`video.background`, white by default; logged once per
    folder). A `keyframe` with transparent areas is warned about: propagation would carry the background into
    the video.

    Args:
        path: the image file.
        background: "white", "black", "grey", "#rrggbb" or an RGB triple.
        keyframe: the image is a keyframe (its transparency gets a warning of its own).

    Raises:
        InputNotFoundError: the file does not exist.
        VideoReadError: the file is not a readable image.
    """
    path = Path(path)
    rgb, alpha = read_image_with_alpha(path)
    if alpha is None or alpha.min() == 255:
        return rgb
    share = float(np.mean(alpha < 255))
    if not isinstance(background, str):
        background = (
            "white" if tuple(background) == DEFAULT_BACKGROUND else "#" + "".join(f"{int(c):02x}" for c in background)
        )
    if keyframe:
        _log_once(
            "keyframe alpha",
            str(path),
            "keyframe %s has transparent areas (%.0f%% of its pixels): they are "
            "filled with the background %s, and propagation carries that colour into the video; paint them "
            "opaque or choose `video.background`",
            path,
            100 * share,
            background,
        )
    else:
        _log_once(
            "alpha",
            str(path.parent),
            "%s has transparent pixels (%.0f%%); they are composited over %s "
            "(`video.background`), and so are those of other images in %s",
            path.name,
            100 * share,
            background,
            path.parent,
        )
    return composite(rgb, alpha, background)


def write_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB `uint8` `(H, W, 3)` image atomically (temporary name, then rename); format from the suffix.

    Raises:
        DiskFullError: the disk filled up (naming the folder, its free space and the file's size).
    """
    path = Path(path)
    _check_frame(image, "image")
    ok, encoded = cv2.imencode(path.suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputPathError(f"cannot encode an image with suffix {path.suffix!r} for {str(path)!r}")
    try:
        with atomic_output(path) as temporary, open(temporary, "wb") as file:
            file.write(encoded.tobytes())  # a Python write: a full disk raises ENOSPC (numpy's tofile does not say)
    except OSError as error:
        converted = disk_full_error(error, path, needed=encoded.size)
        if converted is None:
            raise
        raise converted from None
    return path


_FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _megabytes(count: int) -> str:
    return f"{count / 1e6:,.0f} MB" if count >= 1e6 else f"{count / 1e6:.1f} MB"


def disk_full_error(error: BaseException, path: str | os.PathLike, needed: int | None = None) -> DiskFullError | None:
    """The documented line for a full disk while writing `path`, or None when `error` is something else.

    The line names the folder of `path` (never the FFmpeg URL or a temporary name), its free space now, and
    `needed` bytes when known: "the disk is full writing 'out/clip.mp4' in 'out' (1.2 MB free; about 30 MB
    needed); free some space or choose another folder".
    """
    if getattr(error, "errno", None) not in _FULL_DISK_ERRNOS:
        return None
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    free = None
    with suppress(OSError):
        free = shutil.disk_usage(folder).free
    figures = [f"{_megabytes(free)} free"] if free is not None else []
    if needed:
        figures.append(f"about {_megabytes(needed)} needed")
    detail = f" ({'; '.join(figures)})" if figures else ""
    message = (
        f"the disk is full writing {str(path)!r} in {str(folder)!r}{detail}; free some space or choose another folder"
    )
    return DiskFullError(errno.ENOSPC, message, str(path))


def _ffmpeg_url(path: str | os.PathLike) -> str:
    # FFmpeg reads "2024-11-14T22:57:44.mp4" as protocol "2024-11-14T22"; the file: prefix makes any name a file.
    return "file:" + os.fspath(path)


def _open_container(path: Path):
    import av

    try:
        return av.open(_ffmpeg_url(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise VideoReadError(f"{str(path)!r} is not a readable video ({error})") from None


WRITABLE_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")
"""Containers the H.264 writer produces (`.webm` cannot hold H.264 and `.gif` is not a video codec's container;
`.avi` and other containers are refused rather than written untested)."""
VIDEO_SUFFIXES = WRITABLE_SUFFIXES
"""The name `WRITABLE_SUFFIXES` had before the `video/` package (kept for callers)."""


def unexpanded_home(path: str | os.PathLike) -> str:
    """A hint for a path that starts with "~" (a quoted shell path, a config value): nothing expands it here,
    so say what it would be; "" for any other path."""
    text = str(path)
    if not text.startswith("~"):
        return ""
    expanded = os.path.expanduser(text)
    return f" ('~' is not expanded in a quoted path or a config value: write the full path, e.g. {expanded!r})"


def check_output_path(
    output: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    kind: Literal["video", "file", "folder"] = "video",
    name: str = "output",
    *,
    overwrite: bool | None = None,
    remedy: str = "move it away or choose another path",
) -> Path:
    """Check, before any work, that `output` can be written without touching an input or a file of the user's;
    returns it as a `Path`.

    With `overwrite` given, this is the one rule for every file rerender writes (`refuse_foreign_output`): an
    existing file there that rerender did not write (no `WRITER_TAG`) is refused unless `overwrite`; one it wrote
    (an earlier run's) may be replaced.

    Args:
        output: the path to check.
        inputs: files and folders the output must not be, and must not lie inside.
        kind: "video" (the suffix must be one of `WRITABLE_SUFFIXES`), "file" (any file name) or "folder" (a
            folder to create or fill; it may exist).
        name: how messages call the path (an argument or option name, e.g. "--json", "`output`").
        overwrite: the user's answer to "replace a file rerender did not write?"; None = the existing file is not
            looked at here (a writer called after its caller checked, a file kind with a rule of its own).
        remedy: the ways out named when an existing file is refused, e.g. "move it away, or pass
            `overwrite=True` to replace it".

    Raises:
        OutputPathError: the parent folder is missing or not writable; a video without a supported suffix; a
            file path that is a folder (or a folder path that is a file); the output is an input or inside an
            input folder; the file exists, rerender did not write it and `overwrite` is False.
    """
    if kind not in ("video", "file", "folder"):
        raise ValueError(f"`kind` must be 'video', 'file' or 'folder', got {kind!r}")
    if overwrite is not None and not isinstance(overwrite, bool):
        raise ConfigError(f"`overwrite` must be True or False, got {overwrite!r}")
    if not isinstance(output, (str, os.PathLike)):  # not pathlib's "expected str, bytes or os.PathLike object"
        raise ConfigError(f"{name} must be a path (a str or os.PathLike), got {output!r}")
    output = Path(output)
    if kind == "video" and output.suffix.lower() not in WRITABLE_SUFFIXES:
        found = f"the suffix {output.suffix!r}" if output.suffix else "no suffix"
        raise OutputPathError(
            f"{name} {str(output)!r} has {found}; videos are written as H.264 in {', '.join(WRITABLE_SUFFIXES)} "
            f"(e.g. {output.stem or 'out'}.mp4)"
        )
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        home_hint = unexpanded_home(output)
        if home_hint:  # never "create it first": a folder named "~" is a trap
            raise OutputPathError(f"{name} {str(output)!r}: no folder {str(parent)!r}{home_hint}")
        raise OutputPathError(
            f"{name}: output folder does not exist: {str(parent)!r} (for {str(output)!r}); create it first"
        )
    if not os.access(parent, os.W_OK):
        raise OutputPathError(f"{name}: the folder {str(parent)!r} is not writable (for {str(output)!r})")
    if kind != "folder" and output.is_dir():
        raise OutputPathError(
            f"{name} {str(output)!r} is a folder; give a file name" + (" such as out.mp4" if kind == "video" else "")
        )
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
    if overwrite is not None:
        refuse_foreign_output(output, name=name, remedy=remedy, overwrite=overwrite)
    return output


def _writer_tag() -> str:
    # The package's own version; read from the package object (always imported before its modules), as an import
    # of `rerender` would count as this low layer importing the whole package (import-linter's layers contract).
    return f"rerender {sys.modules['rerender'].__version__}"


WRITER_TAG = _writer_tag()
"""The container's `comment` tag on every video rerender writes (`VideoWriter`): how a later run tells its own
earlier output, which it may replace, from a file of the user's, which it never overwrites."""


def written_by_rerender(path: str | os.PathLike) -> bool:
    """Whether `path` is a video rerender wrote: its container's `comment` tag starts with "rerender " (any version).

    Cheap: PyAV opens the container and reads its header; nothing is decoded. A file PyAV cannot open (a text file,
    a broken video, a folder) is not ours.
    """
    import av

    try:
        with av.open(_ffmpeg_url(Path(path))) as container:
            # Matroska stores tag names upper-case (COMMENT)
            comment = next((value for key, value in container.metadata.items() if key.lower() == "comment"), "")
    except Exception:  # noqa: BLE001 - anything PyAV cannot read is not a video we wrote
        return False
    return comment.startswith("rerender ")


def refuse_foreign_output(
    output: str | os.PathLike, *, name: str, remedy: str, overwrite: bool = False, where: str = ""
) -> None:
    """The rule for every output rerender writes: never overwrite a file it did not write. An existing `output`
    without rerender's tag (`written_by_rerender`) is refused unless `overwrite`; one with the tag (an earlier run's
    output) may be replaced. Callers check it with the rest of the path: `check_output_path(..., overwrite=...)`.

    Args:
        output: the path about to be written.
        name: how the message calls it (an argument or option as the user spelled it, e.g. "`output`").
        remedy: the ways out, e.g. "move it away, or pass `overwrite=True` to replace it".
        overwrite: the user asked to replace whatever is there.
        where: a prefix for the message (e.g. "job 2 (clip1.mp4): ").

    Raises:
        OutputPathError: naming `name`, the path and `remedy`.
    """
    output = Path(output)
    if overwrite or not output.is_file() or written_by_rerender(output):
        return
    raise OutputPathError(f"{where}{name} {str(output)!r} already exists and was not written by rerender; {remedy}")


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
        raise FlowInputError(f"`{name}` must be an (H, W, 3) RGB array, got shape {shape}")
    if frame.dtype != np.uint8:
        raise FlowInputError(f"`{name}` must have dtype uint8 (0–255), got {frame.dtype}")
