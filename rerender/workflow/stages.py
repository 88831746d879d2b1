"""The stages of `translate`, each working from and into a `Workspace`.

`rerender.workflow.translation.translate` calls these in the method's order (frames → keyframes → propagation → writing);
`rerender.workflow.keyframe_folder.propagate_keyframes` reuses the frame, propagation and writing stages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import inspect
import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from rerender.config import RerenderConfig, apply_overrides, load_config
from rerender.errors import CancelledError, ConfigError, OutputPathError, RerenderError
from rerender.keyframes import motion_score, select_keyframes
from rerender.video import (
    VideoInfo,
    compute_output_size,
    probe_video,
    read_frames,
    read_image,
    write_image,
    write_video,
)
from rerender.workflow.workspace import Workspace, file_digest, files_under, intact_png

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
"""`callback(stage, done, total)`, called as each stage advances ("frames", "keyframes", "propagation", "writing")."""


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


def control_map_reader(
    config: RerenderConfig, info: VideoInfo
) -> Callable[[Sequence[int]], list[list[np.ndarray | None]]] | None:
    """For "precomputed" controls: check their map folders/videos now and return `maps(indices)`, else None.

    `maps(indices)` gives, for each selected-frame index, one entry per ControlNet: the precomputed map, or
    None for a ControlNet with an annotator (the renderer annotates the frame). Maps are read with the same
    frame selection, crop and resize as the video, so map i belongs to frame i; each map source is decoded
    once per call, keeping only the requested maps.

    Raises:
        InputNotFoundError, VideoReadError: a missing or unreadable map source.
        ConfigError: fewer maps than frames, or maps whose size differs from the video's.
    """
    precomputed = [control for control in config.control if control.type == "precomputed"]
    if not precomputed:
        return None
    selection = selected_frames(info, config)
    for control in precomputed:
        maps_info = probe_video(control.maps)
        if maps_info.frame_count < selection.stop:
            raise ConfigError(
                f"`control.maps` {control.maps!r} holds {maps_info.frame_count} maps but the video has "
                f"{info.frame_count} frames; give one map per frame"
            )
        if (maps_info.width, maps_info.height) != (info.width, info.height):
            raise ConfigError(
                f"`control.maps` {control.maps!r} are {maps_info.width}×{maps_info.height} but the video is "
                f"{info.width}×{info.height}; maps must match the video's frames"
            )
    video, crop = config.video, config.video.crop

    def maps(indices: Sequence[int]) -> list[list[np.ndarray | None]]:
        wanted = set(indices)
        per_control = []
        for control in config.control:
            if control.type != "precomputed":
                per_control.append(None)
                continue
            stream = read_frames(  # the video's own selection, crop and resize
                control.maps, start=video.start_frame, end=selection.stop, stride=video.frame_stride,
                crop=(crop.left, crop.top, crop.right, crop.bottom), resolution=video.resolution,
                resize_side=video.resize_side, size_multiple=video.size_multiple,
            )
            per_control.append({index: frame for index, frame in enumerate(stream) if index in wanted})
        return [[None if found is None else found[index] for found in per_control] for index in indices]

    return maps


def resolve_config(config, prompt, K, overrides) -> RerenderConfig:
    if config is None:
        config = RerenderConfig()
    elif not isinstance(config, RerenderConfig):
        config = load_config(config)
    changes = dict(overrides)
    if prompt is not None:
        changes["prompt.prompt"] = prompt
    if K is not None:
        if isinstance(K, bool) or not isinstance(K, int):
            raise ConfigError(f"`K` must be an integer ≥ 1, got {K!r}")
        changes["keyframes.keyframe_interval"] = K
    return apply_overrides(config, changes) if changes else config


def selected_frames(info: VideoInfo, config: RerenderConfig) -> range:
    video = config.video
    if video.start_frame >= info.frame_count:
        raise ConfigError(f"`video.start_frame` must be < {info.frame_count} (frames in {info.path.name}), got {video.start_frame}")
    end = info.frame_count if video.end_frame is None else video.end_frame
    if end > info.frame_count:
        raise ConfigError(f"`video.end_frame` must be ≤ {info.frame_count} (frames in {info.path.name}), got {end}")
    crop = video.crop
    if crop.left + crop.right >= info.width or crop.top + crop.bottom >= info.height:
        raise ConfigError(f"`video.crop` {dataclasses.astuple(crop)} must leave at least 1 px of the {info.width}×{info.height} frame")
    return range(video.start_frame, end, video.frame_stride)


def processing_size(info: VideoInfo, config: RerenderConfig) -> tuple[int, int]:
    crop = config.video.crop
    return compute_output_size(
        info.width - crop.left - crop.right, info.height - crop.top - crop.bottom,
        config.video.resolution, config.video.resize_side, config.video.size_multiple,
    )


def source_size(info: VideoInfo, config: RerenderConfig) -> tuple[int, int]:
    """`(width, height)` of the source after `video.crop`: the output size when `propagation.output_size` is "source"."""
    crop = config.video.crop
    return info.width - crop.left - crop.right, info.height - crop.top - crop.bottom


def prepare_source_size(space, video, info, config, keyframe_indices, progress) -> tuple[FolderFrames, Callable[[int], Path]]:
    """For `propagation.output_size = "source"`: the selected frames at the cropped source's size, and the
    keyframes upscaled to it (`rerender.video.unfit_frame` undoes the processing size's fit).

    Returns:
        The source-size frames (a lazy sequence) and `key_path(index)`, the upscaled keyframe's file.
    """
    from rerender.video import unfit_frame

    size = source_size(info, config)
    frames_dir, keys_dir = space.root / "frames_source", space.root / "keyframes_source"
    count = len(selected_frames(info, config))
    record = space.record("propagation")
    if record.get("source_frames") != [count, *size]:
        crop = config.video.crop
        frames = read_frames(
            video, start=config.video.start_frame, end=config.video.end_frame, stride=config.video.frame_stride,
            crop=(crop.left, crop.top, crop.right, crop.bottom), resolution=None, info=info,
        )
        frames_dir.mkdir(exist_ok=True)
        for index, frame in enumerate(tqdm(frames, total=count, desc="frames (source size)", unit="frame", disable=not progress)):
            write_image(frame, space.track(frames_dir / f"{index:04d}.png"))
        record["source_frames"] = [count, *size]
        space.save()
    keys_dir.mkdir(exist_ok=True)
    for index in keyframe_indices:  # cheap, and always from the current keyframes
        image = unfit_frame(read_image(space.keyframe_path(index)), size)
        write_image(image, space.track(keys_dir / f"{index:04d}.png"))
    return FolderFrames(frames_dir, count), lambda index: keys_dir / f"{index:04d}.png"


def default_workspace(output, video) -> Path:
    base = Path(output) if output is not None else Path(video)
    return base.with_name(base.name + ".work")


def cancellable(notify: ProgressCallback, cancel: threading.Event | None, workspace: Callable[[], Any]) -> ProgressCallback:
    """`notify`, then `CancelledError` if `cancel` is set: every progress point is a safe point to stop at.

    Stages report progress only after a unit of work is on disk or before the next one starts (a frame, a
    keyframe, a propagated frame, a denoising step), so stopping there leaves the workspace resumable.
    `workspace()` names it in the message.
    """
    if cancel is None:
        return notify

    def checked(stage: str, done: int, total: int) -> None:
        notify(stage, done, total)
        if cancel.is_set():
            raise CancelledError(
                f"cancelled during the {stage} stage ({done}/{total}); finished work is kept in "
                f"{str(workspace())!r}, run again with the same workspace to resume"
            )

    return checked


def notify_iter(items, stage: str, total: int, notify: ProgressCallback):
    for done, item in enumerate(items, start=1):
        yield item
        notify(stage, done, total)


def _megabytes(count: int) -> str:
    return f"{count / 1e6:,.0f} MB" if count >= 1e6 else f"{count / 1e6:.1f} MB"


def _disk_full_error(error: OSError, space: Workspace, folder: Path, stage: str | None, needed: int | None) -> OutputPathError:
    where = Path(error.filename).parent if error.filename else folder
    free = None
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(where if where.exists() else space.root).free
    need = f"; the {stage} stage needs up to {_megabytes(needed)} more" if stage and needed else ""
    have = f" ({_megabytes(free)} free)" if free is not None else ""
    return OutputPathError(
        f"the disk is full writing {str(where)!r}{have}{need}; finished work is kept in {str(space.root)!r}: free "
        "some space and run again to resume"
    )


def _is_disk_full(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def disk_guard(space: Workspace, stage: str, folder: Path, needed: int | None = None) -> Iterator[None]:
    """Turn a full disk anywhere in a stage (frames, flows, state, manifest, video) into one line naming the
    folder and the space the stage needs (`needed`, an upper bound in bytes); finished work stays."""
    try:
        yield
    except OSError as error:
        if _is_disk_full(error):
            raise _disk_full_error(error, space, folder, stage, needed) from None
        raise


def stage_bytes(stage: str, count: int, size: tuple[int, int]) -> int:
    """An upper bound of the bytes `stage` writes for `count` frames (or keyframes) of `size` (width, height):
    PNGs at most raw RGB, flows two float16 fields per pair, the video a tenth of raw RGB."""
    pixels = size[0] * size[1]
    return {"frames": 3, "keyframes": 3, "propagation": 3 + 8, "writing": 1}[stage] * pixels * count // (10 if stage == "writing" else 1)


def frames_ready(space: Workspace, config: RerenderConfig, count: int, size: tuple[int, int]) -> bool:
    """Whether the frames stage finished with this config at `size` (width, height) and every frame file is
    whole (else say why not)."""
    if not space.is_done("frames", config) or space.record("frames").get("depends") != {"size": list(size)}:
        return False
    damaged = next((index for index in range(count) if not intact_png(space.frame_path(index))), None)
    if damaged is None:
        return True
    line = f"redoing frames: {space.frame_path(damaged).relative_to(space.root)} is missing or damaged"
    logger.warning("%s (workspace %s)", line, space.root)
    space.redone.append(line)
    return False


def write_frames(space, video, info, config, count, progress, notify, size: tuple[int, int] | None = None) -> None:
    """Decode the selected frames into the workspace; `size` (width, height) replaces the configured resize
    (the frames are fitted into it, as `rerender preprocess` does at any resolution: `rerender.video.fit_frame`)."""
    from rerender.video import fit_frame

    crop = config.video.crop
    frames = read_frames(
        video, start=config.video.start_frame, end=config.video.end_frame, stride=config.video.frame_stride,
        crop=(crop.left, crop.top, crop.right, crop.bottom), resolution=None if size else config.video.resolution,
        resize_side=config.video.resize_side, size_multiple=config.video.size_multiple, info=info,
    )
    if size is not None:
        frames = (fit_frame(frame, size) for frame in frames)
    space.frames_dir.mkdir(exist_ok=True)
    written = 0
    for index, frame in enumerate(tqdm(frames, total=count, desc="frames", unit="frame", disable=not progress)):
        write_image(frame, space.track(space.frame_path(index)))
        written += 1
        notify("frames", written, count)
    if written != count:
        raise RerenderError(f"decoded {written} of {count} frames of {info.path.name}; the file may be truncated")


def load_flow_estimator(config: RerenderConfig):
    from rerender.flow import load_flow_estimator

    return load_flow_estimator(config.flow.flow_estimator, checkpoint=config.flow.flow_checkpoint, dis_preset=config.flow.dis_preset)


def cached_flow(space: Workspace, estimator):
    from rerender.flow import FlowCache

    cache = FlowCache(space.flows_dir, on_save=space.track)
    return lambda source, target: cache.get_or_compute(estimator, source, target)


def adaptive_keyframes(space, frames, estimator, config, progress) -> list[int]:
    import torch

    from rerender.flow import forward_backward_occlusion

    flow = cached_flow(space, estimator)
    scores = []
    previous = frames[0]
    for index in tqdm(range(1, len(frames)), desc="motion", unit="pair", disable=not progress):
        current = frames[index]
        forward, backward = flow(previous, current)
        _, occlusion = forward_backward_occlusion(
            torch.from_numpy(forward).permute(2, 0, 1)[None], torch.from_numpy(backward).permute(2, 0, 1)[None]
        )
        scores.append(motion_score(backward, occlusion[0, 0].numpy()))
        previous = current
    return select_keyframes(len(frames), config.keyframes, scores)



def keyframes_ready(space: Workspace, config: RerenderConfig, renderer_name: str) -> bool:
    """Whether the keyframes stage finished with this config and renderer, every keyframe recorded and its file
    whole (retouched files are whole: they are used as they are)."""
    record = space.record("keyframes")
    return (space.is_done("keyframes", config) and record.get("depends") == {"renderer": renderer_name}
            and all(str(index) in record.get("rendered", {}) and intact_png(space.keyframe_path(index))
                    for index in record.get("indices", [None])))


def render_keyframes(space, frames, indices, renderer, progress, notify) -> None:
    """Render the keyframes of `indices` that are not rendered yet, recording each file's digest.

    The rendered prefix is kept: keyframes recorded by an earlier (possibly interrupted) run whose files are
    whole, retouched ones included. Rendering is sequential (each keyframe is constrained by the anchor and the
    previous one), so a missing or damaged keyframe is rendered again with every keyframe after it.
    """
    space.keyframes_dir.mkdir(exist_ok=True)
    space.state_dir.mkdir(exist_ok=True)
    record = space.record("keyframes")
    rendered = record.setdefault("rendered", {})
    done = []
    for index in indices:
        path = space.keyframe_path(index)
        if str(index) not in rendered or not intact_png(path):
            break
        done.append(read_image(path))
    if len(done) < len(indices) and str(indices[len(done)]) in rendered:
        line = f"redoing keyframes from {indices[len(done)]} on: {space.keyframe_path(indices[len(done)]).relative_to(space.root)} is missing or damaged"
        logger.warning("%s (workspace %s)", line, space.root)
        space.redone.append(line)
    for index in indices[len(done):]:
        rendered.pop(str(index), None)
    space.save()
    sources = [frames[index] for index in indices]
    state_before = files_under(space.state_dir)  # a segmented renderer keeps states in subfolders
    bar = tqdm(total=len(indices), initial=len(done), desc=f"keyframes ({renderer.name})", unit="key", disable=not progress)
    # A renderer that reports finer progress (diffusion: per denoising step) drives the bar and the callback.
    fine = "on_progress" in inspect.signature(renderer.render).parameters

    def on_progress(done_units: int, total_units: int) -> None:
        bar.unit, bar.total, bar.n = "step", total_units, done_units
        bar.refresh()
        notify("keyframes", done_units, total_units)

    extra = {"on_progress": on_progress} if fine else {}
    try:
        rendering = renderer.render(sources, list(indices), done, space.state_dir, **extra)
        for position, image in enumerate(rendering, start=len(done)):
            space.track_new_files(space.state_dir, state_before)
            path = write_image(image, space.track(space.keyframe_path(indices[position])))
            rendered[str(indices[position])] = file_digest(path)
            space.save()
            if fine:
                bar.set_postfix_str(f"keyframe {position + 1}/{len(indices)}")
            else:
                bar.update(1)
                notify("keyframes", position + 1, len(indices))
    finally:
        bar.close()
        space.track_new_files(space.state_dir, state_before)


def write_keyframe_preview(space, keyframe_indices, info, config) -> Path:
    path = space.track(space.root / "keyframes.mp4")
    fps = max(1.0, float(info.fps / config.video.frame_stride) / max(1, config.keyframes.keyframe_interval))
    write_video((read_image(space.keyframe_path(i)) for i in keyframe_indices), path, fps=fps, crf=config.output.crf)
    return path


def propagation_options(config: RerenderConfig, check_engine: bool = True):
    """The `PropagationOptions` that `config.propagation` describes: its preset, with every option it sets.

    `PropagationConfig` and `PropagationOptions` share one vocabulary: each config field that is also an
    options field (and not `None`) overrides the preset's value, so a new option needs no glue here. With
    `check_engine` the engine and device are checked now (e.g. `propagation.device: cuda` without a GPU), before
    any work; a driver that ships the options to GPU workers (Ray) passes False and lets the workers check.

    Raises:
        ConfigError: an engine or device that cannot run here.
    """
    from rerender.propagation import PropagationOptions, resolve_engine

    settings = config.propagation
    shared = {item.name for item in dataclasses.fields(PropagationOptions)}
    overrides = {item.name: getattr(settings, item.name) for item in dataclasses.fields(settings)
                 if item.name in shared and getattr(settings, item.name) is not None}
    options = PropagationOptions.preset(settings.propagation_preset, **overrides)
    if check_engine:
        resolve_engine(options)
    return options


class _FrameRange(Sequence[np.ndarray]):
    """``frames[start:stop]`` as a lazy view (slicing `WorkspaceFrames` would read every frame)."""

    def __init__(self, frames: Sequence[np.ndarray], start: int, stop: int) -> None:
        self.frames, self.start, self.stop = frames, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index):  # type: ignore[override]
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.frames[self.start + index]


class _LazyImages(Mapping[int, np.ndarray]):
    """``{index: image}`` read from disk on access, so that a long video's keyframes are never all in memory."""

    def __init__(self, paths: dict[int, Path]) -> None:
        self.paths = paths

    def __getitem__(self, index: int) -> np.ndarray:
        return read_image(self.paths[index])

    def __iter__(self):
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


def key_intervals(keyframe_indices: Sequence[int], count: int) -> list[tuple[int, int]]:
    """The intervals propagation works in: between consecutive keyframes, plus the first and the last frame.

    Each interval's frames depend only on the keyframes at its two ends (see `propagation._plan_segments`).
    """
    bounds = sorted(set([0] + list(keyframe_indices) + [count - 1]))
    return list(zip(bounds, bounds[1:])) or [(0, count - 1)]


def interval_digests(space: Workspace, keyframe_indices: Sequence[int], count: int) -> dict[tuple[int, int], str]:
    """What each key interval's propagated frames depend on beyond the config: its bounds and the digests of
    the keyframe files at its ends (a frame that is no keyframe has none)."""
    keys = set(keyframe_indices)
    digests = {index: file_digest(space.keyframe_path(index)) for index in keys}
    return {
        (start, end): hashlib.sha1(json.dumps([start, end, digests.get(start), digests.get(end)]).encode()).hexdigest()[:16]
        for start, end in key_intervals(keyframe_indices, count)
    }


def stale_intervals(space: Workspace, wanted: dict[tuple[int, int], str]) -> dict[tuple[int, int], str]:
    """The intervals of `wanted` whose recorded propagation is missing, made from other keyframes, or whose
    frames are missing or damaged; one log line says which are redone and why."""
    recorded = space.record("propagation").get("intervals", {})
    stale: dict[tuple[int, int], str] = {}
    reasons: dict[str, list[int]] = {}
    for (start, end), digest in wanted.items():
        before = recorded.get(f"{start}-{end}")
        if before is None:
            stale[(start, end)] = digest
            continue
        if before != digest:
            stale[(start, end)] = digest
            reasons.setdefault("keyframe files changed", []).append(start)
        elif not all(intact_png(space.propagated_path(index)) for index in range(start, end + 1)):
            stale[(start, end)] = digest
            reasons.setdefault("propagated frames missing or damaged", []).append(start)
    if reasons:
        named = "; ".join(
            f"{reason} ({', '.join(f'{start}–{end}' for start, end in stale if start in starts)})"
            for reason, starts in reasons.items()
        )
        line = f"redoing propagation of {len(stale)} of {len(wanted)} key intervals: {named}"
        logger.warning("%s (workspace %s)", line, space.root)
        space.redone.append(line)
    return stale


def propagate_intervals(space, frames, keyframe_indices, estimator, config, progress, notify,
                        intervals: dict[tuple[int, int], str] | None = None, key_path=None) -> None:
    """Propagate the key `intervals` (default: every one), saving each one as soon as it completes.

    `key_path(index)` names each keyframe's file (default: the workspace's keyframes).

    Each finished interval is recorded in the manifest with its digest (from `interval_digests`), so an
    interrupted run keeps it and a rerun propagates only the others. Intervals are independent, so resumed
    and uninterrupted runs give the same frames. Frames stream through `propagate_video_iter`: memory holds
    a few intervals. Progress (bar and `notify`) advances per propagated frame; keyframes and kept intervals
    count as done from the start.
    """
    from rerender.propagation import propagate_video_iter

    options = propagation_options(config)
    flow = cached_flow(space, estimator)
    space.propagated_dir.mkdir(exist_ok=True)
    count = len(frames)
    # the caller usually passes the stale intervals it digested already: hash keyframe files only when it did not
    todo = interval_digests(space, keyframe_indices, count) if intervals is None else intervals
    record = space.record("propagation")
    finished = record.setdefault("intervals", {})
    for start, end in todo:  # forget them first: an interrupted run must not leave a stale record
        finished.pop(f"{start}-{end}", None)
    space.save()
    reused = {index for (start, end) in key_intervals(keyframe_indices, count) if (start, end) not in todo
              for index in range(start, end + 1)}
    # consecutive pending intervals form runs, each propagated in one stream
    runs: list[list[tuple[int, int]]] = []
    for interval in sorted(todo):
        if runs and runs[-1][-1][1] == interval[0]:
            runs[-1].append(interval)
        else:
            runs.append([interval])
    initial = len(reused | set(keyframe_indices))
    bar = tqdm(total=count, initial=initial, desc="propagation", unit="frame", disable=not progress)
    notify("propagation", initial, count)
    progressed = [initial]  # our own count: a disabled bar never advances
    try:
        for run in runs:
            start, end = run[0][0], run[-1][1]
            keys = _LazyImages({index - start: (key_path or space.keyframe_path)(index)
                                for index in keyframe_indices if start <= index <= end})
            base = progressed[0]

            def advance(stage: str, done: int, total: int, base: int = base) -> None:
                bar.update(base + done - progressed[0])
                progressed[0] = base + done
                notify("propagation", progressed[0], count)

            pending = list(run)
            stream = propagate_video_iter(_FrameRange(frames, start, end + 1), keys, flow=flow, options=options,
                                          progress=False, callback=advance)
            for offset, image in stream:
                index = start + offset
                if index not in reused:  # a run's first key may close a kept interval: leave its file alone
                    write_image(image, space.track(space.propagated_path(index)))
                # frames arrive in order, so an interval whose end is written is complete: keep it
                while pending and pending[0][1] <= index:
                    done_interval = pending.pop(0)
                    finished[f"{done_interval[0]}-{done_interval[1]}"] = todo[done_interval]
                    space.save()
    finally:
        bar.close()


def write_output(space, count: int, video, info: VideoInfo, config: RerenderConfig, output_path: Path, notify):
    """Encode the propagated frames with the source's fps (÷ stride) and its audio from the first selected frame on."""
    video_config = config.video
    fps = config.output.fps or info.fps / video_config.frame_stride
    # Each frame keeps its source time (variable-rate clips stay in sync) unless a rate is forced; the audio
    # starts at the first selected frame's time on the source's own clock.
    selection = (video_config.start_frame, video_config.end_frame, video_config.frame_stride)
    times = None if config.output.fps else info.output_times(*selection)[:count]
    audio_start = info.start_time(video_config.start_frame) if not info.is_image_sequence else 0.0
    outputs = notify_iter((read_image(space.propagated_path(i)) for i in range(count)), "writing", count, notify)
    write_video(outputs, output_path, fps=fps, crf=config.output.crf,
                audio_from=video if config.output.keep_audio and info.has_audio else None,
                audio_start=audio_start, inputs=[video], timestamps=times)
    return fps


def comparison_path(output_path: Path) -> Path:
    """Where `write_comparison` puts the side-by-side video of `output_path`."""
    return output_path.with_name(output_path.stem + "_comparison" + output_path.suffix)


def comparison_written_here(workspace_root: Path, path: Path) -> bool:
    """Whether the workspace at `workspace_root` recorded writing the comparison video `path`, as it is now (its
    manifest names the path and the file's digest). Reads the manifest only; nothing is opened or locked."""
    try:
        record = json.loads((Path(workspace_root) / "manifest.json").read_text(encoding="utf-8")).get("comparison") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return record.get("path") == str(Path(path).resolve()) and record.get("sha1") == file_digest(path)


def write_comparison(space, frames, output_path: Path, fps, config) -> Path:
    path = comparison_path(output_path)
    pairs = (np.concatenate([frames[i], read_image(space.propagated_path(i))], axis=1) for i in range(len(frames)))
    write_video(pairs, path, fps=fps, crf=config.output.crf)
    return path
