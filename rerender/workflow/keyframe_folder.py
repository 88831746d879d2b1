"""Propagation of your own keyframes (the classic EbSynth workflow): a folder of painted frames → a video."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rerender.config import RerenderConfig
from rerender.errors import ConfigError
from rerender.video import (
    check_input_path,
    fit_size,
    list_image_files,
    probe_video,
    read_image,
    unfit_frame,
    write_image,
)
from rerender.workflow.context import (
    IntervalLedger,
    Progress,
    ProgressCallback,
    StageContext,
    check_flags,
    check_optical_flow,
    check_progress_arguments,
)
from rerender.workflow.frames import WorkspaceFrames
from rerender.workflow.preflight import check_run, check_workspace_paths
from rerender.workflow.stages import (
    disk_guard,
    frames_ready,
    processing_size,
    propagate_intervals,
    selected_frames,
    source_size,
    stage_bytes,
    write_frames,
    write_output,
)
from rerender.workflow.translation import TranslationResult
from rerender.workflow.workspace import Workspace, file_digest, intact_png

logger = logging.getLogger(__name__)

__all__ = ["keyframe_number", "read_keyframe_folder", "propagate_keyframes"]


def keyframe_number(name: str) -> int:
    """The frame number in a keyframe's file name, by the documented rule.

    The number a name starts with (`0008.png`, `0008_v2.png`, `12-final.jpg` → 8, 8, 12); otherwise its only
    number (`frame_12.png` → 12). A name with several numbers and none at the start (`shot3_0012.png`) is
    refused rather than guessed.

    Raises:
        ConfigError: no number, or several numbers and none at the start.
    """
    import re

    stem = Path(name).stem
    leading = re.match(r"\d+", stem)
    if leading:
        return int(leading.group())
    numbers = re.findall(r"\d+", stem)
    if not numbers:
        raise ConfigError(f"keyframe {name!r} must be named by its frame index, e.g. 0012.png")
    if len(numbers) > 1:
        raise ConfigError(
            f"keyframe {name!r} holds several numbers ({', '.join(numbers)}) and none at the start; rename it so "
            f"that it starts with its frame number, e.g. {numbers[-1]}_{stem}.png"
        )
    return int(numbers[0])


def read_keyframe_folder(
    folder: str | os.PathLike,
    frame_count: int,
    source_files: Sequence[str | os.PathLike] | None = None,
    first_number: int = 0,
) -> dict[int, Path]:
    """Keyframe files of `folder`, keyed by the index of the (selected) frame each was painted on.

    For an image-folder source (`source_files`, the selected frames' files in order), a keyframe lands on the
    source file of the same name (`0020.png` on `0020.png`, also when the frames are numbered from 1 as in
    EbSynth); otherwise on the source file whose name has the same frame number (`0008_v2.png` on `0008.png`).
    For a video, the number counts the selected frames from `first_number` (0, as `rerender preprocess` and
    `rerender keyframes` number them; 1 for frames extracted with FFmpeg's default `%04d.png`). Numbers come
    from `keyframe_number`. `N.retouched.png` files (the workspace's backups of retouched keyframes) are skipped.

    Raises:
        InputNotFoundError: the folder is missing or holds no images.
        ConfigError: a file that is not an image, a name without a usable number, two keyframes for one
            frame, or a frame that does not exist (or is not selected).
    """
    from rerender.errors import InputNotFoundError
    from rerender.video import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():  # named as `propagate_keyframes` calls it (CLI: --keyframes)
        what = "is a file, not a folder of keyframe images" if folder.exists() else "does not exist"
        raise InputNotFoundError(f"`keyframes` {str(folder)!r} {what}")
    # hidden files, and the thumbnail caches Windows Explorer writes into image folders by itself, are no keys
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower() not in ("thumbs.db", "desktop.ini")
    )
    # `N.retouched.png` is the workspace's backup of a retouched keyframe that was rendered again: not a key
    backups = [p for p in files if p.stem.endswith(".retouched")]
    if backups:
        logger.info(
            "ignoring %d retouched-keyframe backup(s) in %s: %s", len(backups), folder, [p.name for p in backups[:5]]
        )
        files = [p for p in files if p not in backups]
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
    if others:
        raise ConfigError(f"`keyframes` {str(folder)!r} holds files that are not images: {others[:5]}")
    if not files:
        raise InputNotFoundError(f"`keyframes` {str(folder)!r} holds no keyframes (expected e.g. 0000.png, 0012.png)")
    by_stem: dict[str, int] = {}
    by_number: dict[int, int] = {}
    if source_files is not None:
        for index, source in enumerate(source_files):
            by_stem[Path(source).stem] = index
            try:
                by_number.setdefault(keyframe_number(Path(source).name), index)
            except ConfigError:
                pass  # a source frame without a usable number can still be matched by name
    keyframes: dict[int, Path] = {}
    for path in files:
        if path.stem in by_stem:
            index = by_stem[path.stem]
        else:
            number = keyframe_number(path.name)
            if source_files is None:
                index = number - first_number
                if not 0 <= index < frame_count:
                    other = 0 if first_number == 1 else 1  # the advice names the numbering not in use
                    raise ConfigError(
                        f"keyframe {path.name!r} is for frame {number}, outside the video's frames "
                        f"[{first_number}, {frame_count - 1 + first_number}] (frames counted from {first_number}; "
                        "`rerender preprocess` counts from 0, FFmpeg's %04d.png from 1: for keys numbered from "
                        f"{other}, set `first_number` to {other})"
                    )
            elif number in by_number:
                index = by_number[number]
            else:
                raise ConfigError(
                    f"keyframe {path.name!r} (frame number {number}) matches no selected frame of the source folder "
                    f"(e.g. {Path(source_files[0]).name!r} … {Path(source_files[-1]).name!r}); name it after the frame it was painted on"
                )
        if index in keyframes:
            raise ConfigError(f"two keyframes for frame {index}: {keyframes[index].name!r} and {path.name!r}")
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
    overwrite: bool = False,
    optical_flow: Any | None = None,
    progress: bool = True,
    callback: ProgressCallback | None = None,
    first_number: int = 0,
    cancel: threading.Event | None = None,
    **overrides: Any,
) -> TranslationResult:
    """Propagate stylized keyframes from a folder (named by frame index) to every frame of `video`.

    Keyframes land on frames by name (`read_keyframe_folder`: the source file of the same name for a frame
    folder, else the frame number, counting the selected frames from 0 for a video). Propagation runs at the
    keyframes' size, or at the source's with `propagation.output_size = "source"` (keyframes upscaled).
    Keyframes must share one size. The video's frames are fitted into it as `rerender preprocess` and
    `rerender keyframes` fit them (`rerender.video.fit_frame`), so keys painted on their output land pixel for
    pixel, at any resolution; keys of another size must have the video's aspect ratio within 2 % (or within
    what rounding the sides to a multiple of 8 changes).

    Args:
        video: the source video or frame folder.
        keyframes: a folder of stylized frames named by frame index (`0000.png`, `0012.png`, …).
        output: the video to write; it keeps the source's fps and audio.
        config: options (`propagation`, `flow`, `output`, `video` frame selection and crop).
        workspace: keep intermediates (frames, flows, propagated frames) here, a new or empty folder or one
            rerender made; default a temporary folder that is removed afterwards. A rerun propagates again
            only the key intervals whose keyframes changed.
        force, overwrite, optical_flow, progress, callback, cancel, **overrides: as `translate`.
        first_number: for a video source, the number in the keyframe names of the first selected frame
            (0 as `rerender preprocess` writes; 1 for FFmpeg's `%04d.png`).

    Raises:
        as `translate`, plus `ConfigError` for keyframe folders that break the rules above.
    """
    timings: dict[str, float] = {}

    # 1. Check the arguments (`preflight.check_run`), then the video's header, the keyframe names and sizes.
    if isinstance(first_number, bool) or not isinstance(first_number, int) or first_number < 0:
        raise ConfigError(f"`first_number` must be an integer ≥ 0, got {first_number!r}")
    check_input_path(video, "video"), check_input_path(keyframes, "keyframes")
    check_progress_arguments(callback, cancel)
    check_optical_flow(optical_flow)
    check_flags(force=force, overwrite=overwrite, progress=progress)
    if workspace is not None:
        check_input_path(workspace, "workspace")
    checked = check_run(
        config, overrides=overrides, output=output, inputs=[video, keyframes], check_model=False, overwrite=overwrite
    )
    config, output_path = checked.config, checked.output
    given_device = {"device", "model.device"} & set(overrides)  # this call's `device=`, not its config file's
    if given_device and config.model.device != "auto" and config.propagation.device == "auto":
        logger.warning(
            "`model.device` %r is where the diffusion model runs, and propagation loads none; the torch propagation "
            "engine runs on `propagation.device` ('cpu' or 'cuda', with `propagation.engine` 'torch')",
            config.model.device,
        )
    if workspace is not None:
        check_workspace_paths(Path(workspace), output_path, [video, keyframes])
        _refuse_translate_workspace(Path(workspace), Path(keyframes))
    info = probe_video(video)
    frame_indices = selected_frames(info, config)
    source_files = None
    if info.is_image_sequence and not _is_workspace_keyframes(keyframes):
        files = list_image_files(info.path)
        source_files = [files[index] for index in frame_indices]
    key_files = read_keyframe_folder(keyframes, len(frame_indices), source_files, first_number)
    key_images, size = _keyframes_at_size(key_files, info, config)

    temporary = workspace is None
    if temporary:  # a fresh, empty folder of our own: removed afterwards (only the files we wrote)
        workspace = tempfile.mkdtemp(prefix="rerender-propagate-", dir=output_path.parent)
    space = Workspace.open(workspace, video, config, force=force)
    ctx = StageContext(
        workspace=space,
        video=Path(video),
        info=info,
        config=config,
        count=len(frame_indices),
        size=size,
        optical_flow=optical_flow,
        progress=Progress(progress, callback, cancel, lambda: space.root),
    )
    try:
        # 2. Frames at the keyframes' size, and the workspace's copy of the keyframes.
        started = time.perf_counter()
        with disk_guard(space, "frames", space.frames_dir, stage_bytes("frames", ctx.count, size)):
            if not frames_ready(space, config, ctx.count, size):
                space.begin("frames", config, size=list(size))
                write_frames(ctx, size=size)
                space.finish("frames", count=ctx.count, size=list(size))
            _copy_keyframes(space, key_files, key_images)
        timings["frames"] = time.perf_counter() - started

        # 3. Propagate interval by interval; only intervals whose keyframes changed are redone.
        started = time.perf_counter()
        indices = list(key_images)
        ledger = IntervalLedger(space)
        intervals = ledger.stale(ledger.digests(indices, ctx.count))
        if intervals or not space.is_done("propagation", config):
            with disk_guard(space, "propagation", space.propagated_dir, stage_bytes("propagation", ctx.count, size)):
                space.begin("propagation", config)
                propagate_intervals(ctx, WorkspaceFrames(space, ctx.count), indices, intervals)
                space.finish("propagation", frames=ctx.count)
            timings["propagation"] = time.perf_counter() - started

        # 4. Write the video with the source's fps and audio.
        started = time.perf_counter()
        with disk_guard(space, "writing", output_path.parent, stage_bytes("writing", ctx.count, size)):
            write_output(ctx, output_path)
        timings["writing"] = time.perf_counter() - started
        return TranslationResult(
            output=output_path,
            keyframe_indices=indices,
            frame_count=ctx.count,
            timings=timings,
            workspace=space.root,
            renderer="keyframes folder",
            redone=space.redone,
            workspace_bytes=space.size_bytes(),
            workspace_deleted=temporary,
        )
    finally:
        if temporary:
            space.remove()
        else:
            space.close()


def _keyframes_at_size(
    key_files: dict[int, Path], info: Any, config: RerenderConfig
) -> tuple[dict[int, np.ndarray], tuple[int, int]]:
    """The keyframe images, and the size `(width, height)` propagation works at: the keyframes' own (the video's
    frames are fitted to it), or the source's with `propagation.output_size = "source"` (keyframes upscaled).

    Raises:
        ConfigError: keyframes of several sizes, or of another aspect ratio than the (cropped) video.
    """
    key_images = {
        index: read_image(path, background=config.video.background, keyframe=True) for index, path in key_files.items()
    }
    sizes = {image.shape[:2] for image in key_images.values()}
    if len(sizes) > 1:  # each size with its files: the odd one out among many keys is found at once
        files = {
            size: [key_files[i].name for i, image in key_images.items() if image.shape[:2] == size] for size in sizes
        }
        listed = "; ".join(
            f"{w}×{h}: {', '.join(names[:5])}{' …' if len(names) > 5 else ''}"
            for (h, w), names in sorted(files.items(), key=lambda item: -len(item[1]))
        )
        raise ConfigError(f"keyframes must all have one size, got {listed}")
    height, width = sizes.pop()
    source_width, source_height = source_size(info, config)
    processing = processing_size(info, config)
    # The frames are fitted into the keyframes' size exactly as `rerender preprocess` and `rerender keyframes`
    # fit them at any resolution (`fit_frame`): keys painted on those land pixel for pixel. Keys of another
    # tool must have the video's aspect (within 2 %) or differ from it by rounding to a multiple of 8.
    scaled = fit_size(source_width, source_height, (width, height))
    rounding_only = max(abs(scaled[0] - width), abs(scaled[1] - height)) <= 4
    if (
        (width, height) != processing
        and not rounding_only
        and abs((width / height) / (source_width / source_height) - 1) > 0.02
    ):
        raise ConfigError(
            f"keyframes are {width}×{height} but the (cropped) video is {source_width}×{source_height}: the aspect "
            f"ratios differ; paint keyframes on the video's frames at their own size, or at the processing size "
            f"{processing[0]}×{processing[1]} that `rerender preprocess` writes with this config"
        )
    size = (width, height)
    if config.propagation.output_size == "source":
        size = (source_width, source_height)
        key_images = {index: unfit_frame(image, size) for index, image in key_images.items()}
    if size != (source_width, source_height):
        logger.info("propagating at %d×%d (video frames are %d×%d)", size[0], size[1], source_width, source_height)
    return key_images, size


def _copy_keyframes(space: Workspace, key_files: dict[int, Path], key_images: dict[int, np.ndarray]) -> None:
    """The workspace's copy of the keyframes (what each interval's record depends on); copies of an earlier run
    that are no longer in the folder are removed."""
    space.keyframes_dir.mkdir(exist_ok=True)
    for earlier in space.keyframes_dir.glob("*.png"):
        if space.owns(earlier) and earlier.stem.isdigit() and int(earlier.stem) not in key_images:
            earlier.unlink()
    for index, path in key_files.items():
        if file_digest(space.keyframe_path(index)) != file_digest(path) or not intact_png(space.keyframe_path(index)):
            write_image(key_images[index], space.track(space.keyframe_path(index)))


def _refuse_translate_workspace(workspace: Path, keyframes: Path) -> None:
    """Refuse a `workspace` that `translate` made (its manifest records rendered keyframes): propagating there would
    rewrite its records for this call's options and replace its keyframes with `keyframes`' (a later `translate`
    would then render them again), so its keyframes are read, never adopted, and the message says what to run.

    Raises:
        ConfigError: naming `workspace` and `keyframes` (the CLI's --keep-intermediates and --keyframes).
    """
    import json

    try:
        manifest = json.loads((workspace / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no workspace yet, or not one a `translate` finished anything in
    if not isinstance(manifest, dict) or "keyframes" not in (manifest.get("stages") or {}):
        return
    own = keyframes.resolve() == (workspace / "keyframes").resolve()
    which = "its own keyframes" if own else f"the keyframes of {str(keyframes)!r}"
    replaced = "" if own else ", replace its keyframes with those,"
    raise ConfigError(
        f"`workspace` {str(workspace)!r} is a workspace of `rerender translate` (it holds the keyframes translate "
        f"rendered): propagating {which} there would rewrite its records for propagate's options{replaced} and "
        "drop the record of its keyframes, so a later translate would render them all again. To propagate "
        "keyframes you retouched in it, with its frames and flows, run translate again on this video with the "
        "same options and --stage propagate (Python: translate(..., stage='propagate')): only the intervals next "
        "to a changed keyframe are propagated again. To propagate them with propagate's options instead, leave "
        f"`workspace` out or name another folder (the `keyframes` folder {str(keyframes)!r} is only read)"
    )


def _is_workspace_keyframes(folder: str | os.PathLike) -> bool:
    """Whether `folder` is the keyframes folder of a `rerender` workspace (named by selected-frame index)."""
    folder = Path(folder)
    return folder.name == "keyframes" and (folder.parent / "manifest.json").is_file()
