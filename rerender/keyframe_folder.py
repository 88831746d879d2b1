"""Propagation of your own keyframes (the classic EbSynth workflow): a folder of painted frames → a video."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rerender.api import TranslationResult
from rerender.config import RerenderConfig
from rerender.errors import ConfigError
from rerender.stages import (
    cancellable,
    ProgressCallback,
    WorkspaceFrames,
    disk_guard,
    frames_ready,
    interval_digests,
    load_flow_estimator,
    propagate_intervals,
    resolve_config,
    selected_frames,
    stage_bytes,
    stale_intervals,
    write_frames,
    write_output,
)
from rerender.video import check_output_path, probe_video, read_image, write_image
from rerender.workspace import Workspace, file_digest, intact_png

logger = logging.getLogger(__name__)

__all__ = ["read_keyframe_folder", "propagate_keyframes"]


def read_keyframe_folder(folder: str | os.PathLike, frame_count: int) -> dict[int, Path]:
    """Keyframe files of `folder`, keyed by the frame index in their name (`0012.png`, `frame_12.jpg` → 12).

    Raises:
        InputNotFoundError: the folder is missing or holds no images.
        ConfigError: a file that is not an image, a name without a number, duplicate indices, or an index
            outside `[0, frame_count - 1]`.
    """
    import re

    from rerender.errors import InputNotFoundError
    from rerender.video import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"keyframe folder not found: {str(folder)!r}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
    if others:
        raise ConfigError(f"the keyframe folder {str(folder)!r} holds files that are not images: {others[:5]}")
    if not files:
        raise InputNotFoundError(f"the keyframe folder {str(folder)!r} holds no keyframes (expected e.g. 0000.png, 0012.png)")
    keyframes: dict[int, Path] = {}
    for path in files:
        numbers = re.findall(r"\d+", path.stem)
        if not numbers:
            raise ConfigError(f"keyframe {path.name!r} must be named by its frame index, e.g. 0012.png")
        index = int(numbers[-1])
        if index in keyframes:
            raise ConfigError(f"two keyframes for frame {index}: {keyframes[index].name!r} and {path.name!r}")
        if not 0 <= index < frame_count:
            raise ConfigError(f"keyframe {path.name!r} is for frame {index}, outside the video's frames [0, {frame_count - 1}]")
        keyframes[index] = path
    return dict(sorted(keyframes.items()))


def propagate_keyframes(
    video: str | os.PathLike,
    keyframes: str | os.PathLike,
    output: str | os.PathLike,
    config: RerenderConfig | str | os.PathLike | None = None,
    *,
    workspace: str | os.PathLike | None = None,
    force: bool = False,
    optical_flow: Any | None = None,
    progress: bool = True,
    callback: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    **overrides: Any,
) -> TranslationResult:
    """Propagate stylized keyframes from a folder (named by frame index) to every frame of `video`.

    Frame indices count the frames selected by `config.video` (by default, the source's own frame numbers).
    Propagation runs at the keyframes' size: the video's frames are resized to it (with a log message when
    that changes the size); keyframes must share one size and the video's aspect ratio (within 2 %).

    Args:
        video: the source video or frame folder.
        keyframes: a folder of stylized frames named by frame index (`0000.png`, `0012.png`, …).
        output: the video to write; it keeps the source's fps and audio.
        config: options (`propagation`, `flow`, `output`, `video` frame selection and crop).
        workspace: keep intermediates (frames, flows, propagated frames) here, a new or empty folder or one
            rerender made; default a temporary folder that is removed afterwards. A rerun propagates again
            only the key intervals whose keyframes changed.
        force, optical_flow, progress, callback, cancel, **overrides: as `translate`.

    Raises:
        as `translate`, plus `ConfigError` for keyframe folders that break the rules above.
    """
    timings: dict[str, float] = {}
    space = None
    notify = cancellable(callback or (lambda stage_name, done, total: None), cancel, lambda: space.root if space else workspace)

    # 1. Check the inputs: video, output, keyframe names, sizes.
    config = resolve_config(config, None, None, overrides)
    info = probe_video(video)
    frame_indices = selected_frames(info, config)
    output_path = check_output_path(output, [video, keyframes])
    key_files = read_keyframe_folder(keyframes, len(frame_indices))
    key_images = {index: read_image(path) for index, path in key_files.items()}
    sizes = {image.shape[:2] for image in key_images.values()}
    if len(sizes) > 1:
        raise ConfigError(f"keyframes must all have one size, got {sorted((w, h) for h, w in sizes)} (width, height)")
    height, width = sizes.pop()
    crop = config.video.crop
    source_width, source_height = info.width - crop.left - crop.right, info.height - crop.top - crop.bottom
    if abs((width / height) / (source_width / source_height) - 1) > 0.02:
        raise ConfigError(
            f"keyframes are {width}×{height} but the (cropped) video is {source_width}×{source_height}: the aspect "
            "ratios differ; paint keyframes on frames of the video (e.g. from `rerender preprocess`)"
        )
    if (width, height) != (source_width, source_height):
        logger.info("propagating at the keyframes' size %d×%d (video frames are %d×%d)", width, height, source_width, source_height)

    temporary = workspace is None
    if temporary:  # a fresh, empty folder of our own: removed afterwards (only the files we wrote)
        workspace = tempfile.mkdtemp(prefix="rerender-propagate-", dir=output_path.parent)
    space = Workspace.open(workspace, video, config, force=force)
    try:
        # 2. Frames at the keyframes' size.
        started = time.perf_counter()
        count = len(frame_indices)
        with disk_guard(space, "frames", space.frames_dir, stage_bytes("frames", count, (width, height))):
            if not frames_ready(space, config, count, (width, height)):
                space.begin("frames", config, size=[width, height])
                write_frames(space, video, info, config, count, progress, notify, size=(width, height))
                space.finish("frames", count=count, size=[width, height])
            frames = WorkspaceFrames(space, count)
            # The workspace's copy of the keyframes: what each interval's record depends on.
            space.keyframes_dir.mkdir(exist_ok=True)
            for earlier in space.keyframes_dir.glob("*.png"):  # keyframes of an earlier run no longer in the folder
                if space.owns(earlier) and earlier.stem.isdigit() and int(earlier.stem) not in key_images:
                    earlier.unlink()
            for index, path in key_files.items():
                if file_digest(space.keyframe_path(index)) != file_digest(path) or not intact_png(space.keyframe_path(index)):
                    write_image(key_images[index], space.track(space.keyframe_path(index)))
        timings["frames"] = time.perf_counter() - started

        # 3. Propagate interval by interval; only intervals whose keyframes changed are redone.
        started = time.perf_counter()
        indices = list(key_images)
        intervals = stale_intervals(space, interval_digests(space, indices, count))
        if intervals or not space.is_done("propagation", config):
            with disk_guard(space, "propagation", space.propagated_dir, stage_bytes("propagation", count, (width, height))):
                space.begin("propagation", config)
                estimator = optical_flow or load_flow_estimator(config)
                propagate_intervals(space, frames, indices, estimator, config, progress, notify, intervals)
                space.finish("propagation", frames=count)
            timings["propagation"] = time.perf_counter() - started

        # 4. Write the video with the source's fps and audio.
        started = time.perf_counter()
        with disk_guard(space, "writing", output_path.parent, stage_bytes("writing", count, (width, height))):
            write_output(space, count, video, info, config, output_path, notify)
        timings["writing"] = time.perf_counter() - started
        return TranslationResult(output_path, indices, count, timings, space.root, "keyframes folder", [],
                                 redone=space.redone, workspace_bytes=space.size_bytes(), workspace_deleted=temporary)
    finally:
        if temporary:
            space.remove()
        else:
            space.close()
