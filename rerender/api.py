"""`translate`: a video and a prompt in, a restyled, temporally consistent video out.

It reads like the method (Yang et al. 2023, Fig. 2): preprocess frames, choose keyframes, render them with
cross-frame constraints, propagate them to every frame, write the video. Every stage works from a
workspace on disk (`rerender.stages`), so a long video runs in bounded memory and an interrupted run resumes
where it stopped. Keyframe renderers live in `rerender.renderers`; propagating a folder of your own painted
keyframes is `rerender.keyframe_folder.propagate_keyframes`.

Example:
    >>> import rerender
    >>> result = rerender.translate("input.mp4", "a cartoon, flat colours", K=10, output="out.mp4")  # doctest: +SKIP
    >>> result.output, result.keyframe_indices, result.timings                                          # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rerender.config import RerenderConfig
from rerender.errors import ConfigError
from rerender.keyframes import select_keyframes
from rerender.renderers import (
    ClassicRenderer,
    DiffusionRenderer,
    KeyframeRenderer,
    choose_renderer,
)
from rerender.stages import (
    ProgressCallback,
    WorkspaceFrames,
    adaptive_keyframes,
    cancellable,
    control_map_reader,
    default_workspace,
    load_flow_estimator,
    processing_size,
    propagate_intervals,
    propagation_options,
    render_keyframes,
    resolve_config,
    selected_frames,
    write_comparison,
    write_frames,
    write_keyframe_preview,
    write_output,
)
from rerender.video import check_output_path, probe_video
from rerender.workspace import Workspace

__all__ = [
    "STAGE_CHOICES", "TranslationResult", "KeyframeRenderer", "ClassicRenderer", "DiffusionRenderer", "WorkspaceFrames",
    "translate", "propagation_options",
]

STAGE_CHOICES = ("all", "first", "keyframes", "propagate")


@dataclass
class TranslationResult:
    """What `translate` did and where everything is."""

    output: Path | None
    """The written video (None when a stage before writing was requested)."""
    keyframe_indices: list[int]
    """Keyframes, as indices into the selected frames."""
    frame_count: int
    """Frames in the output (every selected input frame, first and last included)."""
    timings: dict[str, float]
    """Wall seconds per stage that ran in this call (stages reused from the workspace are absent)."""
    workspace: Path
    """The workspace with frames, flows, keyframes, propagated frames and the manifest."""
    renderer: str
    """Which keyframe renderer ran: "diffusion" or "classic"."""
    reused: list[str] = field(default_factory=list)
    """Stages taken from the workspace instead of being recomputed."""
    previews: dict[str, Path] = field(default_factory=dict)
    """Extra videos: "keyframes" (the keyframes only), "comparison" (source | result side by side)."""



def translate(
    video: str | os.PathLike,
    prompt: str | None = None,
    K: int | None = None,
    output: str | os.PathLike | None = "out.mp4",
    config: RerenderConfig | str | os.PathLike | None = None,
    pipeline: Any | None = None,
    *,
    workspace: str | os.PathLike | None = None,
    stage: Literal["all", "first", "keyframes", "propagate"] = "all",
    force: bool = False,
    renderer: KeyframeRenderer | None = None,
    optical_flow: Any | None = None,
    comparison: bool = False,
    progress: bool = True,
    callback: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    **overrides: Any,
) -> TranslationResult:
    """Translate `video` into the style of `prompt` and write the result with the source's fps and audio.

    Args:
        video: a video file or a folder of numbered frames.
        prompt: what the result should look like (overrides `config.prompt.prompt`).
        K: keyframe interval (overrides `config.keyframes.keyframe_interval`).
        output: the video to write (`.mp4`, `.mov`, `.mkv`); its folder must exist.
        config: a `RerenderConfig`, or a YAML/JSON file; `None` = defaults.
        pipeline: a loaded `RerenderPipeline` for the keyframes; `None` loads `config.model` if its weights
            are available locally (or cached), else falls back to the built-in classic stylizer with a warning.
        workspace: folder for frames, flows, keyframes and the manifest; default `<output>.work/`.
        stage: "first" renders only the anchor keyframe (to tune the look), "keyframes" stops after the
            keyframes, "propagate" propagates existing keyframes, "all" (default) does everything.
        force: redo stages invalidated by a changed config, or reuse a workspace made for another video.
        renderer: a custom keyframe renderer (anything with `name` and `render`); overrides `pipeline`.
        optical_flow: a `rerender.flow` estimator object for fusion, propagation and adaptive keyframes;
            `None` loads the one `config.flow` names.
        comparison: also write `<output stem>_comparison.mp4` (source | result).
        progress: show tqdm progress bars.
        callback: `callback(stage, done, total)` as work advances.
        cancel: set this event (from another thread) to stop at the next safe point: after a frame, a
            keyframe, a propagated chunk or a denoising step. Finished work stays in the workspace; the
            same call again resumes.
        **overrides: config options by leaf name or dotted path (`denoising_strength=0.6`).

    Returns:
        A `TranslationResult`.

    Raises:
        InputNotFoundError, VideoReadError: the video is missing or unreadable.
        ConfigError: a bad option, K < 1 or larger than the video, keyframe indices out of range.
        OutputPathError: the output or workspace cannot be written, or the output is the input.
        WorkspaceMismatchError: the workspace belongs to another video or config (use `force`).
        CancelledError: `cancel` was set; the workspace is left resumable.
    """
    timings: dict[str, float] = {}
    reused: list[str] = []
    space: Workspace | None = None
    notify = cancellable(callback or (lambda stage_name, done, total: None), cancel, lambda: space.root if space else workspace)

    # 1. Resolve the config and check every input before any expensive work.
    config = resolve_config(config, prompt, K, overrides)
    if stage not in STAGE_CHOICES:
        raise ConfigError(f"`stage` must be one of {', '.join(STAGE_CHOICES)}, got {stage!r}")
    info = probe_video(video)
    frame_indices = selected_frames(info, config)
    output_path = None
    if output is not None and stage in ("all", "propagate"):
        output_path = check_output_path(output, [video])
    keyframe_indices = select_keyframes(len(frame_indices), config.keyframes, None) if config.keyframes.keyframe_mode != "adaptive" else None
    control_maps = control_map_reader(config, info)
    if renderer is None and pipeline is None:
        from rerender.models import check_model_sources

        check_model_sources(config.model, config.control)  # a mistyped --model fails now, not after decoding
    workspace_root = Path(workspace) if workspace is not None else default_workspace(output, video)
    space = Workspace.open(workspace_root, video, config, force=force)

    # 2. Frames: decode, select, crop and resize into the workspace, one frame at a time.
    if space.is_done("frames", config):
        reused.append("frames")
    else:
        started = time.perf_counter()
        space.begin("frames", config)
        write_frames(space, video, info, config, len(frame_indices), progress, notify)
        space.finish("frames", count=len(frame_indices), size=list(processing_size(info, config)))
        timings["frames"] = time.perf_counter() - started
    frames = WorkspaceFrames(space, len(frame_indices))

    # 3. Keyframes: uniform every K, an explicit list, or adaptive to the motion in the flow.
    estimator = optical_flow or load_flow_estimator(config)
    if keyframe_indices is None:
        keyframe_indices = adaptive_keyframes(space, frames, estimator, config, progress)

    # 4. Render the keyframes (the anchor first) with the diffusion pipeline or the classic stylizer.
    renderer = renderer or choose_renderer(config, pipeline, estimator, control_maps)
    if space.is_done("keyframes", config) and stage != "first":
        reused.append("keyframes")
        keyframe_indices = space.record("keyframes")["indices"]
    else:
        started = time.perf_counter()
        space.begin("keyframes", config)
        wanted = keyframe_indices[:1] if stage == "first" else keyframe_indices
        notify("keyframes", 0, len(wanted))
        render_keyframes(space, frames, wanted, renderer, progress, notify)
        if stage == "first":
            timings["first"] = time.perf_counter() - started
            return TranslationResult(None, keyframe_indices[:1], len(frames), timings, space.root, renderer.name, reused,
                                     {"first": space.keyframe_path(keyframe_indices[0])})
        space.finish("keyframes", indices=keyframe_indices, renderer=renderer.name)
        timings["keyframes"] = time.perf_counter() - started
    previews = {"keyframes": write_keyframe_preview(space, keyframe_indices, info, config)}
    if stage == "keyframes":
        return TranslationResult(None, keyframe_indices, len(frames), timings, space.root, renderer.name, reused, previews)

    # 5. Propagate the keyframes to every frame, interval by interval (bounded memory, resumable).
    if space.is_done("propagation", config):
        reused.append("propagation")
    else:
        started = time.perf_counter()
        space.begin("propagation", config)
        notify("propagation", 0, len(frames))
        propagate_intervals(space, frames, keyframe_indices, estimator, config, progress, notify)
        space.finish("propagation", frames=len(frames))
        timings["propagation"] = time.perf_counter() - started

    # 6. Write the video with the source's fps and audio, every selected frame included.
    started = time.perf_counter()
    assert output_path is not None
    fps = write_output(space, len(frames), video, info, config, output_path, notify)
    if comparison:
        previews["comparison"] = write_comparison(space, frames, output_path, fps, config)
    timings["writing"] = time.perf_counter() - started
    return TranslationResult(output_path, keyframe_indices, len(frames), timings, space.root, renderer.name, reused, previews)

