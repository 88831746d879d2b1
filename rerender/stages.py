"""The stages of `translate`, each working from and into a `Workspace`.

`rerender.api.translate` calls these in the method's order (frames → keyframes → propagation → writing);
`rerender.keyframe_folder.propagate_keyframes` reuses the frame, propagation and writing stages.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

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
from rerender.workspace import Workspace

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
"""`callback(stage, done, total)`, called as each stage advances ("frames", "keyframes", "propagation", "writing")."""


class WorkspaceFrames(Sequence[np.ndarray]):
    """The workspace's preprocessed frames as a lazy sequence: each index reads one PNG when asked."""

    def __init__(self, workspace: Workspace, count: int) -> None:
        self.workspace, self.count = workspace, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if not -self.count <= index < self.count:
            raise IndexError(index)
        return read_image(self.workspace.frame_path(index % self.count))


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
                control.maps, video.start_frame, selection.stop, video.frame_stride,
                (crop.left, crop.top, crop.right, crop.bottom), video.resolution, video.resize_side, video.size_multiple,
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


def default_workspace(output, video) -> Path:
    base = Path(output) if output is not None else Path(video)
    return base.with_name(base.name + ".work")


def cancellable(notify: ProgressCallback, cancel: threading.Event | None, workspace: Callable[[], Any]) -> ProgressCallback:
    """`notify`, then `CancelledError` if `cancel` is set: every progress point is a safe point to stop at.

    Stages report progress only after a unit of work is on disk (a frame, a keyframe, a propagated chunk, a
    denoising step), so stopping there leaves the workspace resumable. `workspace()` names it in the message.
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


def guard_disk(write: Callable[[], Any], space: Workspace) -> Any:
    """Run `write`, turning a full disk into a clear error that says the finished work is kept."""
    try:
        return write()
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputPathError(
                f"the disk is full ({error.filename or 'while writing'}); finished work is kept in {str(space.root)!r}, "
                "free some space and run again to resume"
            ) from None
        raise


def write_frames(space, video, info, config, count, progress, notify, size: tuple[int, int] | None = None) -> None:
    """Decode the selected frames into the workspace; `size` (width, height) replaces the configured resize."""
    from rerender.video import resize_frame

    crop = config.video.crop
    frames = read_frames(
        video, config.video.start_frame, config.video.end_frame, config.video.frame_stride,
        (crop.left, crop.top, crop.right, crop.bottom), None if size else config.video.resolution,
        config.video.resize_side, config.video.size_multiple, info=info,
    )
    if size is not None:
        frames = (resize_frame(frame, size) for frame in frames)
    space.frames_dir.mkdir(exist_ok=True)
    written = 0
    for index, frame in enumerate(tqdm(frames, total=count, desc="frames", unit="frame", disable=not progress)):
        guard_disk(functools.partial(write_image, frame, space.frame_path(index)), space)
        written += 1
        notify("frames", written, count)
    if written != count:
        raise RerenderError(f"decoded {written} of {count} frames of {info.path.name}; the file may be truncated")


def load_flow_estimator(config: RerenderConfig):
    from rerender.flow import load_flow_estimator

    return load_flow_estimator(config.flow.flow_estimator, checkpoint=config.flow.flow_checkpoint, dis_preset=config.flow.dis_preset)


def cached_flow(space: Workspace, estimator):
    from rerender.flow import FlowCache

    cache = FlowCache(space.flows_dir)
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



def render_keyframes(space, frames, indices, renderer, progress, notify) -> None:
    space.keyframes_dir.mkdir(exist_ok=True)
    space.state_dir.mkdir(exist_ok=True)
    # Keyframes finished by an interrupted run, in order: rendering resumes after the last of them.
    done = []
    for index in indices:
        path = space.keyframe_path(index)
        if not path.is_file():
            break
        done.append(read_image(path))
    sources = [frames[index] for index in indices]
    bar = tqdm(total=len(indices), initial=len(done), desc=f"keyframes ({renderer.name})", unit="key", disable=not progress)
    try:
        for position, image in enumerate(renderer.render(sources, list(indices), done, space.state_dir), start=len(done)):
            guard_disk(functools.partial(write_image, image, space.keyframe_path(indices[position])), space)
            bar.update(1)
            notify("keyframes", position + 1, len(indices))
    finally:
        bar.close()


def write_keyframe_preview(space, keyframe_indices, info, config) -> Path:
    path = space.root / "keyframes.mp4"
    fps = max(1.0, float(info.fps / config.video.frame_stride) / max(1, config.keyframes.keyframe_interval))
    write_video((read_image(space.keyframe_path(i)) for i in keyframe_indices), path, fps=fps, crf=config.output.crf)
    return path


def propagation_options(config: RerenderConfig):
    """The `PropagationOptions` that `config.propagation` describes (its preset, with the options it sets)."""
    from rerender.propagation import PropagationOptions

    settings = config.propagation
    overrides = {
        field_name: value
        for field_name, value in (
            ("colour_weight", settings.color_guide_weight), ("edge_weight", settings.edge_guide_weight),
            ("position_weight", settings.position_guide_weight), ("temporal_weight", settings.temporal_guide_weight),
            ("blend_mode", settings.blend_mode), ("workers", settings.workers),
        )
        if value is not None
    }
    return PropagationOptions.preset(settings.propagation_preset, **overrides)


def propagate_intervals(space, frames, keyframe_indices, estimator, config, progress, notify) -> None:
    """Propagate in chunks of a few key intervals: memory holds one chunk, and finished chunks are kept."""
    from rerender.propagation import propagate_video

    options = propagation_options(config)
    flow = cached_flow(space, estimator)
    space.propagated_dir.mkdir(exist_ok=True)
    record = space.record("propagation")
    finished = {tuple(item) for item in record.get("segments", [])}
    # Chunk boundaries are keyframes (plus the first and last frame); each chunk spans a few key intervals so
    # that both passes of several intervals run in parallel without holding the whole video.
    intervals_per_chunk = 2 * max(1, options.workers or os.cpu_count() or 1)
    bounds = sorted(set([0] + list(keyframe_indices) + [len(frames) - 1]))
    cuts = bounds[::intervals_per_chunk] + ([bounds[-1]] if (len(bounds) - 1) % intervals_per_chunk else [])
    chunks = list(zip(cuts, cuts[1:])) or [(0, len(frames) - 1)]
    bar = tqdm(total=len(frames), desc="propagation", unit="frame", disable=not progress)
    done = 0  # counted here: a disabled tqdm bar does not count
    try:
        for start, end in chunks:
            if (start, end) not in finished:
                keys = {index - start: read_image(space.keyframe_path(index)) for index in keyframe_indices if start <= index <= end}
                results = propagate_video(frames[start : end + 1], keys, flow=flow, options=options, progress=False)
                for offset, image in enumerate(results):
                    guard_disk(functools.partial(write_image, image, space.propagated_path(start + offset)), space)
                record.setdefault("segments", []).append([start, end])
                space.save()
            bar.update(end - start + (1 if start == 0 else 0))
            done = min(done + end - start + (1 if start == 0 else 0), len(frames))
            notify("propagation", done, len(frames))
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
    guard_disk(lambda: write_video(outputs, output_path, fps=fps, crf=config.output.crf,
                                    audio_from=video if config.output.keep_audio and info.has_audio else None,
                                    audio_start=audio_start, inputs=[video], timestamps=times), space)
    return fps


def write_comparison(space, frames, output_path: Path, fps, config) -> Path:
    path = output_path.with_name(output_path.stem + "_comparison" + output_path.suffix)
    pairs = (np.concatenate([frames[i], read_image(space.propagated_path(i))], axis=1) for i in range(len(frames)))
    write_video(pairs, path, fps=fps, crf=config.output.crf)
    return path
