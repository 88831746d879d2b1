"""The stages of `translate`, each working from and into a `Workspace`.

`rerender.api.translate` calls these in the method's order (frames → keyframes → propagation → writing);
`rerender.keyframe_folder.propagate_keyframes` reuses the frame, propagation and writing stages.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from rerender.config import RerenderConfig, apply_overrides, load_config
from rerender.errors import ConfigError, OutputPathError, RerenderError
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
            video, config.video.start_frame, config.video.end_frame, config.video.frame_stride,
            (crop.left, crop.top, crop.right, crop.bottom), None, info=info,
        )
        frames_dir.mkdir(exist_ok=True)
        for index, frame in enumerate(tqdm(frames, total=count, desc="frames (source size)", unit="frame", disable=not progress)):
            guard_disk(functools.partial(write_image, frame, frames_dir / f"{index:04d}.png"), space)
        record["source_frames"] = [count, *size]
        space.save()
    keys_dir.mkdir(exist_ok=True)
    for index in keyframe_indices:  # cheap, and always from the current keyframes
        image = unfit_frame(read_image(space.keyframe_path(index)), size)
        guard_disk(functools.partial(write_image, image, keys_dir / f"{index:04d}.png"), space)
    return FolderFrames(frames_dir, count), lambda index: keys_dir / f"{index:04d}.png"


def default_workspace(output, video) -> Path:
    base = Path(output) if output is not None else Path(video)
    return base.with_name(base.name + ".work")


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
    """Decode the selected frames into the workspace; `size` (width, height) replaces the configured resize
    (the frames are fitted into it, as `rerender preprocess` does at any resolution: `rerender.video.fit_frame`)."""
    from rerender.video import fit_frame

    crop = config.video.crop
    frames = read_frames(
        video, config.video.start_frame, config.video.end_frame, config.video.frame_stride,
        (crop.left, crop.top, crop.right, crop.bottom), None if size else config.video.resolution,
        config.video.resize_side, config.video.size_multiple, info=info,
    )
    if size is not None:
        frames = (fit_frame(frame, size) for frame in frames)
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
    """The key intervals ``(start, end)``, ends included, that cover frames 0 … count − 1.

    Their bounds are the keyframes plus the first and the last frame; the frames before the first key and
    after the last key form an interval each.
    """
    bounds = sorted(set([0, count - 1, *keyframe_indices]))
    return list(zip(bounds, bounds[1:])) or [(0, 0)]


def propagate_intervals(space, frames, keyframe_indices, estimator, config, progress, notify, key_path=None) -> None:
    """Propagate every key interval not yet finished, saving each one as soon as it completes.

    `key_path(index)` names each keyframe's file (default: the workspace's keyframes).

    The manifest's propagation record lists the finished intervals (``"intervals": [[start, end], …]``);
    an interrupted run keeps them and a rerun propagates only the others (an interval counts as finished
    only while all its frames are on disk). Intervals are independent, so resumed and uninterrupted runs
    give the same frames. Frames stream through `propagate_video_iter`: memory holds a few intervals.
    """
    from rerender.propagation import propagate_video_iter

    options = propagation_options(config)
    flow = cached_flow(space, estimator)
    space.propagated_dir.mkdir(exist_ok=True)
    record = space.record("propagation")
    count = len(frames)
    intervals = key_intervals(keyframe_indices, count)
    recorded = {tuple(item) for item in record.get("intervals", []) if isinstance(item, list) and len(item) == 2}
    finished = [interval for interval in intervals if interval in recorded and all(
        space.propagated_path(index).is_file() for index in range(interval[0], interval[1] + 1))]
    record["intervals"] = [list(interval) for interval in finished]
    reused = {index for start, end in finished for index in range(start, end + 1)}
    # consecutive unfinished intervals form runs, each propagated in one stream
    runs: list[list[tuple[int, int]]] = []
    for interval in intervals:
        if interval in finished:
            continue
        if runs and runs[-1][-1][1] == interval[0]:
            runs[-1].append(interval)
        else:
            runs.append([interval])
    # keyframes are given, not propagated: they count as done from the start, as do reused intervals
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
                    guard_disk(functools.partial(write_image, image, space.propagated_path(index)), space)
                # frames arrive in order, so an interval whose end is written is complete: keep it
                while pending and pending[0][1] <= index:
                    record["intervals"].append(list(pending.pop(0)))
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
    guard_disk(lambda: write_video(outputs, output_path, fps=fps, crf=config.output.crf,
                                    audio_from=video if config.output.keep_audio and info.has_audio else None,
                                    audio_start=audio_start, inputs=[video], timestamps=times), space)
    return fps


def write_comparison(space, frames, output_path: Path, fps, config) -> Path:
    path = output_path.with_name(output_path.stem + "_comparison" + output_path.suffix)
    pairs = (np.concatenate([frames[i], read_image(space.propagated_path(i))], axis=1) for i in range(len(frames)))
    write_video(pairs, path, fps=fps, crf=config.output.crf)
    return path
