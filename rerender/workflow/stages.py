"""The stages of `translate`, each working from and into a `Workspace`.

`rerender.workflow.translation.translate` calls these in the method's order (frames → keyframes → propagation → writing);
`rerender.workflow.keyframe_folder.propagate_keyframes` reuses the frame, propagation and writing stages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from rerender.config import RerenderConfig, apply_overrides, load_config
from rerender.config.arguments import plain_number
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
from rerender.workflow.context import Interval, IntervalLedger, StageContext, key_intervals  # noqa: F401 (re-exported)
from rerender.workflow.frames import FolderFrames, FrameRange, LazyImages
from rerender.workflow.renderers import KeyframeRenderer
from rerender.workflow.workspace import Workspace, file_digest, files_under, intact_png

logger = logging.getLogger(__name__)


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
    precomputed = [(index, control) for index, control in enumerate(config.control) if control.type == "precomputed"]
    if not precomputed:
        return None
    selection = selected_frames(info, config)
    for index, control in precomputed:  # named by position: a Union's controls all name one model
        maps_info = probe_video(control.maps)
        if maps_info.frame_count < selection.stop:
            raise ConfigError(
                f"`control[{index}].maps` {control.maps!r} holds {maps_info.frame_count} maps but the video has "
                f"{info.frame_count} frames; give one map per frame"
            )
        if (maps_info.width, maps_info.height) != (info.width, info.height):
            raise ConfigError(
                f"`control[{index}].maps` {control.maps!r} are {maps_info.width}×{maps_info.height} but the video is "
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
                control.maps,
                start=video.start_frame,
                end=selection.stop,
                stride=video.frame_stride,
                crop=crop,
                resolution=video.resolution,
                resize_side=video.resize_side,
                size_multiple=video.size_multiple,
                background=video.background,
                deinterlace=video.deinterlace,
            )
            per_control.append({index: frame for index, frame in enumerate(stream) if index in wanted})
        return [[None if found is None else found[index] for found in per_control] for index in indices]

    return maps


def resolve_config(config, prompt, K, overrides) -> RerenderConfig:
    if config is None:
        config = RerenderConfig()
    elif isinstance(config, (str, os.PathLike)):
        config = load_config(config)
    elif not isinstance(config, RerenderConfig):
        raise ConfigError(
            f"`config` must be a RerenderConfig, a config file's path or None, got a {type(config).__name__} "
            "(for a dict of options: rerender.config.config_from_dict(...), or pass them as keyword arguments)"
        )
    changes = dict(overrides)
    if prompt is not None:  # named as the caller typed it: `prompt`, `K` (not their config paths)
        if not isinstance(prompt, str):
            raise ConfigError(f"`prompt` must be a string, got {prompt!r}")
        changes["prompt.prompt"] = prompt
    if K is not None:
        K = plain_number(K)  # numpy's integers too (a K computed with numpy), as a plain int for the config
        if isinstance(K, bool) or not isinstance(K, int) or K < 1:
            raise ConfigError(f"`K` must be an integer ≥ 1, got {K!r}")
        for key, value in overrides.items():  # the same option twice: say so rather than let one win
            if key.rpartition(".")[2] == "keyframe_interval" and value != K:
                raise ConfigError(f"`K` {K} and `{key}` {value!r} both set keyframes.keyframe_interval; give one")
        changes["keyframes.keyframe_interval"] = K
    named = {key.rpartition(".")[2]: value for key, value in changes.items()}
    if named.get("keyframe_indices") is not None and "keyframe_mode" not in named:
        changes["keyframes.keyframe_mode"] = "explicit"  # a list given is the list wanted (as --keyframes-at)
    resolved = apply_overrides(config, changes) if changes else config
    if resolved.keyframes.keyframe_indices is not None and resolved.keyframes.keyframe_mode != "explicit":
        logger.warning(
            "`keyframes.keyframe_indices` %s is ignored: `keyframes.keyframe_mode` is %r; set it to 'explicit' to "
            "use the list",
            list(resolved.keyframes.keyframe_indices),
            resolved.keyframes.keyframe_mode,
        )
    return resolved


def selected_frames(info: VideoInfo, config: RerenderConfig) -> range:
    video = config.video
    if video.start_frame >= info.frame_count:
        raise ConfigError(
            f"`video.start_frame` must be < {info.frame_count} (frames in {info.path.name}), got {video.start_frame}"
        )
    end = info.frame_count if video.end_frame is None else video.end_frame
    if end > info.frame_count:
        raise ConfigError(  # often copied from another clip's command (the paper's sample clip: 102)
            f"`video.end_frame` must be ≤ {info.frame_count} (frames in {info.path.name}), got {end}; "
            "end_frame null reads to the last frame"
        )
    crop = video.crop
    if crop.left + crop.right >= info.width or crop.top + crop.bottom >= info.height:
        raise ConfigError(
            f"`video.crop` {dataclasses.astuple(crop)} must leave at least 1 px of the {info.width}×{info.height} frame"
        )
    return range(video.start_frame, end, video.frame_stride)


def processing_size(info: VideoInfo, config: RerenderConfig) -> tuple[int, int]:
    crop = config.video.crop
    return compute_output_size(
        info.width - crop.left - crop.right,
        info.height - crop.top - crop.bottom,
        config.video.resolution,
        config.video.resize_side,
        config.video.size_multiple,
    )


def source_size(info: VideoInfo, config: RerenderConfig) -> tuple[int, int]:
    """`(width, height)` of the source after `video.crop`: the output size when `propagation.output_size` is "source"."""
    crop = config.video.crop
    return info.width - crop.left - crop.right, info.height - crop.top - crop.bottom


def prepare_source_size(
    ctx: StageContext, keyframe_indices: Sequence[int]
) -> tuple[FolderFrames, Callable[[int], Path]]:
    """For `propagation.output_size = "source"`: the selected frames at the cropped source's size, and the
    keyframes upscaled to it (`rerender.video.unfit_frame` undoes the processing size's fit).

    Returns:
        The source-size frames (a lazy sequence) and `key_path(index)`, the upscaled keyframe's file.
    """
    from rerender.video import unfit_frame

    space, config = ctx.workspace, ctx.config
    size = source_size(ctx.info, config)
    frames_dir, keys_dir = space.root / "frames_source", space.root / "keyframes_source"
    record = space.record("propagation")
    if record.get("source_frames") != [ctx.count, *size]:
        crop = config.video.crop
        frames = read_frames(
            ctx.video,
            start=config.video.start_frame,
            end=config.video.end_frame,
            stride=config.video.frame_stride,
            crop=crop,
            resolution=None,
            info=ctx.info,
            background=config.video.background,
            deinterlace=config.video.deinterlace,
        )
        frames_dir.mkdir(exist_ok=True)
        bar = ctx.progress.bar(ctx.count, "frames (source size)")
        with bar:
            for index, frame in enumerate(frames):
                write_image(frame, space.track(frames_dir / f"{index:04d}.png"))
                bar.update(1)
        record["source_frames"] = [ctx.count, *size]
        space.save()
    keys_dir.mkdir(exist_ok=True)
    for index in keyframe_indices:  # cheap, and always from the current keyframes
        image = unfit_frame(read_image(space.keyframe_path(index)), size)
        write_image(image, space.track(keys_dir / f"{index:04d}.png"))
    return FolderFrames(frames_dir, ctx.count), lambda index: keys_dir / f"{index:04d}.png"


def default_workspace(output, video) -> Path:
    base = Path(output) if output is not None else Path(video)
    return base.with_name(base.name + ".work")


def _megabytes(count: int) -> str:
    return f"{count / 1e6:,.0f} MB" if count >= 1e6 else f"{count / 1e6:.1f} MB"


def _disk_full_error(
    error: OSError, space: Workspace, folder: Path, stage: str | None, needed: int | None
) -> OutputPathError:
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


_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
"""numpy's `tofile` on a full disk raises `OSError("N requested and M written")` without an errno."""


def _is_disk_full(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or bool(_SHORT_WRITE.search(str(error)))


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
    return (
        {"frames": 3, "keyframes": 3, "propagation": 3 + 8, "writing": 1}[stage]
        * pixels
        * count
        // (10 if stage == "writing" else 1)
    )


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


def write_frames(ctx: StageContext, size: tuple[int, int] | None = None) -> None:
    """Decode the `ctx.count` selected frames into the workspace; `size` (width, height) replaces the configured
    resize (the frames are fitted into it, as `rerender preprocess` does at any resolution: `rerender.video.fit_frame`).

    Raises:
        RerenderError: fewer frames decoded than the header promised (a truncated file).
    """
    from rerender.video import fit_frame

    space, config, count = ctx.workspace, ctx.config, ctx.count
    crop = config.video.crop
    frames = read_frames(
        ctx.video,
        start=config.video.start_frame,
        end=config.video.end_frame,
        stride=config.video.frame_stride,
        crop=crop,
        resolution=None if size else config.video.resolution,
        resize_side=config.video.resize_side,
        size_multiple=config.video.size_multiple,
        info=ctx.info,
        background=config.video.background,
        deinterlace=config.video.deinterlace,
    )
    if size is not None:
        frames = (fit_frame(frame, size) for frame in frames)
    space.frames_dir.mkdir(exist_ok=True)
    written = 0
    with ctx.progress.bar(count, "frames") as bar:
        for index, frame in enumerate(frames):
            write_image(frame, space.track(space.frame_path(index)))
            written += 1
            bar.update(1)
            ctx.progress.notify("frames", written, count)
    if written != count:
        raise RerenderError(f"decoded {written} of {count} frames of {ctx.info.path.name}; the file may be truncated")


def flow_estimator_from_config(config: RerenderConfig):
    """The flow estimator `config.flow` names (`rerender.flow.load_flow_estimator`)."""
    from rerender.flow import load_flow_estimator

    return load_flow_estimator(
        config.flow.flow_estimator, checkpoint=config.flow.flow_checkpoint, dis_preset=config.flow.dis_preset
    )


def cached_flow(space: Workspace, estimator):
    from rerender.flow import FlowCache

    cache = FlowCache(space.flows_dir, on_save=space.track)
    return lambda source, target: cache.get_or_compute(estimator, source, target)


def adaptive_keyframes(ctx: StageContext, frames: Sequence[np.ndarray]) -> list[int]:
    """Keyframes placed by motion (`rerender.keyframes.select_keyframes`, "adaptive"), from the flows of every
    consecutive pair (cached in the workspace: propagation reuses them)."""
    import torch

    from rerender.flow import forward_backward_occlusion

    flow = cached_flow(ctx.workspace, ctx.estimator)
    scores = []
    previous = frames[0]
    with ctx.progress.bar(len(frames) - 1, "motion", unit="pair") as bar:
        for index in range(1, len(frames)):
            current = frames[index]
            forward, backward = flow(previous, current)
            _, occlusion = forward_backward_occlusion(
                torch.from_numpy(forward).permute(2, 0, 1)[None], torch.from_numpy(backward).permute(2, 0, 1)[None]
            )
            scores.append(motion_score(backward, occlusion[0, 0].numpy()))
            previous = current
            bar.update(1)
    return select_keyframes(len(frames), ctx.config.keyframes, scores)


def keyframes_ready(space: Workspace, config: RerenderConfig, renderer_name: str) -> bool:
    """Whether the keyframes stage finished with this config and renderer, every keyframe recorded and its file
    whole (retouched files are whole: they are used as they are)."""
    record = space.record("keyframes")
    return (
        space.is_done("keyframes", config)
        and record.get("depends") == {"renderer": renderer_name}
        and all(
            str(index) in record.get("rendered", {}) and intact_png(space.keyframe_path(index))
            for index in record.get("indices", [None])
        )
    )


def render_keyframes(
    ctx: StageContext, frames: Sequence[np.ndarray], indices: Sequence[int], renderer: KeyframeRenderer
) -> None:
    """Render the keyframes of `indices` that are not rendered yet, recording each file's digest.

    The rendered prefix is kept: keyframes recorded by an earlier (possibly interrupted) run whose files are
    whole, retouched ones included. Rendering is sequential (each keyframe is constrained by the anchor and the
    previous one), so a missing or damaged keyframe is rendered again with every keyframe after it. Progress
    counts the renderer's own units (`on_progress`: denoising steps for diffusion) or else whole keyframes.
    """
    space = ctx.workspace
    space.keyframes_dir.mkdir(exist_ok=True)
    space.state_dir.mkdir(exist_ok=True)
    rendered = space.record("keyframes").setdefault("rendered", {})
    done = _rendered_prefix(space, indices, rendered)
    sources = [frames[index] for index in indices]
    state_before = files_under(space.state_dir)  # a segmented renderer keeps states in subfolders
    bar = ctx.progress.bar(len(indices), f"keyframes ({renderer.name})", unit="key", initial=len(done))
    fine = [False]  # whether the renderer reports its own units

    def on_progress(done_units: int, total_units: int) -> None:
        fine[0] = True
        bar.unit, bar.total, bar.n = "step", total_units, done_units
        bar.refresh()
        ctx.progress.notify("keyframes", done_units, total_units)

    rendering = renderer.render(sources, list(indices), done, space.state_dir, on_progress=on_progress)
    try:
        for position, image in enumerate(rendering, start=len(done)):
            space.track_new_files(space.state_dir, state_before)
            path = write_image(image, space.track(space.keyframe_path(indices[position])))
            rendered[str(indices[position])] = file_digest(path)
            space.save()
            if fine[0]:
                bar.set_postfix_str(f"keyframe {position + 1}/{len(indices)}")
            else:
                bar.update(1)
                ctx.progress.notify("keyframes", position + 1, len(indices))
    finally:
        if hasattr(rendering, "close"):  # stop the renderer now (a cancel, an error): e.g. a Ray actor's stream
            rendering.close()
        bar.close()
        space.track_new_files(space.state_dir, state_before)


def _rendered_prefix(space: Workspace, indices: Sequence[int], rendered: dict[str, str]) -> list[np.ndarray]:
    """The keyframes an earlier run recorded whose files are whole, in order, up to the first missing one; the
    records after it are dropped (they are rendered again)."""
    done = []
    for index in indices:
        path = space.keyframe_path(index)
        if str(index) not in rendered or not intact_png(path):
            break
        done.append(read_image(path))
    if len(done) < len(indices) and str(indices[len(done)]) in rendered:
        first = indices[len(done)]
        line = f"redoing keyframes from {first} on: {space.keyframe_path(first).relative_to(space.root)} is missing or damaged"
        logger.warning("%s (workspace %s)", line, space.root)
        space.redone.append(line)
    for index in indices[len(done) :]:
        rendered.pop(str(index), None)
    space.save()
    return done


def write_keyframe_preview(ctx: StageContext, keyframe_indices: Sequence[int]) -> Path:
    """`keyframes.mp4` in the workspace: the keyframes alone, at the source's rate ÷ stride ÷ K."""
    space, config = ctx.workspace, ctx.config
    path = space.track(space.root / "keyframes.mp4")
    fps = max(1.0, float(ctx.info.fps / config.video.frame_stride) / max(1, config.keyframes.keyframe_interval))
    write_video((_keyframe_at_size(ctx, i) for i in keyframe_indices), path, fps=fps, crf=config.output.crf)
    return path


def _keyframe_at_size(ctx: StageContext, index: int) -> np.ndarray:
    """A keyframe of the workspace, refused (naming the file) when a retouch saved it at another size."""
    path = ctx.workspace.keyframe_path(index)
    image = read_image(path)
    if (image.shape[1], image.shape[0]) != tuple(ctx.size):
        raise ConfigError(
            f"keyframe {str(path)!r} is {image.shape[1]}×{image.shape[0]} but the frames are processed at "
            f"{ctx.size[0]}×{ctx.size[1]}; save a retouched keyframe at the size it was rendered at"
        )
    return image


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
    overrides = {
        item.name: getattr(settings, item.name)
        for item in dataclasses.fields(settings)
        if item.name in shared and getattr(settings, item.name) is not None
    }
    options = PropagationOptions.preset(settings.propagation_preset, **overrides)
    if check_engine:
        resolve_engine(options)
    return options


def propagate_intervals(
    ctx: StageContext,
    frames: Sequence[np.ndarray],
    keyframe_indices: Sequence[int],
    intervals: dict[Interval, str] | None = None,
    key_path: Callable[[int], Path] | None = None,
) -> None:
    """Propagate the key `intervals` (default: every one), saving each one as soon as it completes.

    `key_path(index)` names each keyframe's file (default: the workspace's keyframes).

    Each finished interval is recorded in the manifest with its digest (`IntervalLedger`), so an interrupted run
    keeps it and a rerun propagates only the others. Intervals are independent, so resumed and uninterrupted runs
    give the same frames. Frames stream through `propagate_video_iter`: memory holds a few intervals. Progress (bar
    and callback) advances per propagated frame; keyframes and kept intervals count as done from the start.
    """
    from rerender.propagation import propagate_video_iter

    space, count = ctx.workspace, len(frames)
    options = propagation_options(ctx.config)
    flow = cached_flow(space, ctx.estimator)
    space.propagated_dir.mkdir(exist_ok=True)
    ledger = IntervalLedger(space)
    # the caller usually passes the stale intervals it digested already: hash keyframe files only when it did not
    todo = ledger.digests(keyframe_indices, count) if intervals is None else intervals
    ledger.forget(list(todo))  # first: an interrupted run must not leave a stale record
    reused = ledger.kept(keyframe_indices, count, list(todo))
    initial = len(reused | set(keyframe_indices))
    bar = ctx.progress.bar(count, "propagation", initial=initial)
    ctx.progress.notify("propagation", initial, count)
    progressed = initial  # our own count: a disabled bar never advances
    try:
        for run in _runs(todo):  # consecutive pending intervals, each propagated in one stream
            start, end = run[0][0], run[-1][1]
            keys = LazyImages(
                {
                    index - start: (key_path or space.keyframe_path)(index)
                    for index in keyframe_indices
                    if start <= index <= end
                }
            )
            base = progressed

            def advance(stage: str, done: int, total: int, base: int = base) -> None:
                nonlocal progressed
                bar.update(base + done - progressed)
                progressed = base + done
                ctx.progress.notify("propagation", progressed, count)

            pending = list(run)
            stream = propagate_video_iter(
                FrameRange(frames, start, end + 1), keys, flow=flow, options=options, progress=False, callback=advance
            )
            # closed on any error here (a frame that cannot be written): its pool threads stop now, not when the
            # error (which holds the stream) is released
            with contextlib.closing(stream):
                for offset, image in stream:
                    index = start + offset
                    if index not in reused:  # a run's first key may close a kept interval: leave its file alone
                        write_image(image, space.track(space.propagated_path(index)))
                    # frames arrive in order, so an interval whose end is written is complete: keep it
                    while pending and pending[0][1] <= index:
                        done_interval = pending.pop(0)
                        ledger.record(done_interval, todo[done_interval])
    finally:
        bar.close()


def _runs(intervals) -> list[list[Interval]]:
    """`intervals` sorted and grouped into runs of consecutive ones (each run's end is the next one's start)."""
    runs: list[list[Interval]] = []
    for interval in sorted(intervals):
        if runs and runs[-1][-1][1] == interval[0]:
            runs[-1].append(interval)
        else:
            runs.append([interval])
    return runs


def write_output(ctx: StageContext, output_path: Path) -> float:
    """Encode the propagated frames with the source's fps (÷ stride) and its audio from the first selected frame on.

    Returns:
        The frame rate written.
    """
    space, config, info, count = ctx.workspace, ctx.config, ctx.info, ctx.count
    video_config = config.video
    fps = config.output.fps or info.fps / video_config.frame_stride
    # Each frame keeps its source time (variable-rate clips stay in sync) unless a rate is forced; the audio
    # starts at the first selected frame's time on the source's own clock.
    selection = (video_config.start_frame, video_config.end_frame, video_config.frame_stride)
    times = None if config.output.fps else info.output_times(*selection)[:count]
    audio_start = info.start_time(video_config.start_frame) if not info.is_image_sequence else 0.0

    def outputs():
        for index in range(count):
            yield read_image(space.propagated_path(index))
            ctx.progress.notify("writing", index + 1, count)

    write_video(
        outputs(),
        output_path,
        fps=fps,
        crf=config.output.crf,
        audio_from=ctx.video if config.output.keep_audio and info.has_audio else None,
        audio_start=audio_start,
        inputs=[ctx.video],
        timestamps=times,
        audio_track=config.output.audio_track,
    )
    return fps


def comparison_path(output_path: Path) -> Path:
    """Where `write_comparison` puts the side-by-side video of `output_path`."""
    return output_path.with_name(output_path.stem + "_comparison" + output_path.suffix)


def write_comparison(ctx: StageContext, frames: Sequence[np.ndarray], output_path: Path, fps: float) -> Path:
    """`<output stem>_comparison.mp4`: each source frame beside its result."""
    space = ctx.workspace
    path = comparison_path(output_path)
    pairs = (np.concatenate([frames[i], read_image(space.propagated_path(i))], axis=1) for i in range(len(frames)))
    write_video(pairs, path, fps=fps, crf=ctx.config.output.crf)
    return path
