"""`translate`: a video and a prompt in, a restyled, temporally consistent video out.

It reads like the method (Yang et al. 2023, Fig. 2): preprocess frames, choose keyframes, render them with
cross-frame constraints, propagate them to every frame, write the video. Every stage works from a
workspace on disk (`rerender.workflow.stages`), so a long video runs in bounded memory and an interrupted run resumes
where it stopped. Keyframe renderers live in `rerender.workflow.renderers`; propagating a folder of your own painted
keyframes is `rerender.workflow.keyframe_folder.propagate_keyframes`.

Example:
    >>> import rerender
    >>> result = rerender.translate("input.mp4", "a cartoon, flat colours", K=10, output="out.mp4")  # doctest: +SKIP
    >>> result.output, result.keyframe_indices, result.timings                                          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import ConfigError, OutputPathError
from rerender.keyframes import select_keyframes
from rerender.languages import PromptTranslation, translate_prompt
from rerender.workflow.renderers import (
    ClassicRenderer,
    DiffusionRenderer,
    RENDERER_CHOICES,
    KeyframeRenderer,
    check_diffusion_weights,
    choose_renderer,
)
from rerender.workflow.stages import (
    ProgressCallback,
    WorkspaceFrames,
    adaptive_keyframes,
    cancellable,
    comparison_path,
    comparison_written_here,
    control_map_reader,
    default_workspace,
    disk_guard,
    frames_ready,
    interval_digests,
    keyframes_ready,
    load_flow_estimator,
    prepare_source_size,
    processing_size,
    propagate_intervals,
    propagation_options,
    render_keyframes,
    resolve_config,
    selected_frames,
    stage_bytes,
    stale_intervals,
    write_comparison,
    write_frames,
    write_keyframe_preview,
    write_output,
)
from rerender.video import check_output_path, probe_video
from rerender.diffusion.loading import loading_bars
from rerender.workflow.workspace import Workspace, file_digest

logger = logging.getLogger(__name__)

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
    redone: list[str] = field(default_factory=list)
    """One line per piece of earlier work this call redid because what it depends on changed, and why."""
    workspace_bytes: int = 0
    """Bytes of the files rerender wrote in the workspace, at the end of the call."""
    workspace_deleted: bool = False
    """Whether the workspace was deleted after the write (`delete_workspace`)."""
    prompt: PromptTranslation | None = None
    """The prompt as written and in English as the text encoder read it (`prompt_language`)."""



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
    delete_workspace: bool = False,
    renderer: Literal["auto", "diffusion", "classic"] | KeyframeRenderer | None = None,
    optical_flow: Any | None = None,
    comparison: bool = False,
    progress: bool = True,
    callback: ProgressCallback | None = None,
    prompt_translator: Callable[[str, str], str] | None = None,
    cancel: threading.Event | None = None,
    executor: Any | None = None,
    **overrides: Any,
) -> TranslationResult:
    """Translate `video` into the style of `prompt` and write the result with the source's fps and audio.

    Args:
        video: a video file or a folder of numbered frames.
        prompt: what the result should look like (overrides `config.prompt.prompt`).
        K: keyframe interval (overrides `config.keyframes.keyframe_interval`).
        output: the video to write (`.mp4`, `.mov`, `.mkv`); its folder must exist.
        config: a `RerenderConfig`, or a YAML/JSON file; `None` = defaults.
        pipeline: a loaded `RerenderPipeline` for the keyframes; `None` loads the one `config.model` names
            (from disk, the Hugging Face cache, or downloaded on a connected machine).
        workspace: folder for frames, flows, keyframes and the manifest; default `<output>.work/`.
        stage: "first" renders only the anchor keyframe (to tune the look), "keyframes" stops after the
            keyframes, "propagate" propagates the keyframes of a finished keyframes stage (retouched ones
            included) and refuses when there are none, "all" (default) does everything.
        force: redo every stage even where nothing changed, or start over a workspace made for another
            video. Work whose inputs changed (video, config, keyframe files) is redone without it.
        delete_workspace: after a successful write, delete the workspace (only the files rerender wrote).
        renderer: "diffusion" (SD + ControlNet; raises when its weights cannot be loaded), "classic" (the
            built-in stylizer, no weights), "auto" (diffusion when possible, else classic with a warning), or a
            custom keyframe renderer object (anything with `name` and `render`; overrides `pipeline`). `None` =
            `config.model.renderer`, "diffusion" by default.
        optical_flow: a `rerender.flow` estimator object for fusion, propagation and adaptive keyframes;
            `None` loads the one `config.flow` names.
        comparison: also write `<output stem>_comparison.mp4` (source | result).
        progress: show tqdm progress bars.
        callback: `callback(stage, done, total)` as work advances.
        prompt_translator: `prompt_translator(text, language) -> str` translates a prompt that is not English
            (`prompt_language`); `None` uses the transformers model `config.prompt.translation_model`.
        cancel: set this event (from another thread) to stop at the next safe point: after a frame, a
            keyframe, a propagated frame or a denoising step. Finished work stays in the workspace; the
            same call again resumes.
        executor: where the stages run: `None` = here, or a `rerender.workflow.executors.RayExecutor`: frames and
            flows in chunks and key intervals fanned out to CPU workers (same output bytes), keyframes in a
            (GPU) actor that loads the models once (or in segments, one actor each: `keyframe_segments`).
            Ignored for keyframes when `pipeline` or a renderer object is given (they render here).
        **overrides: config options by leaf name or dotted path (`denoising_strength=0.6`;
            `output_size="source"` writes the result at the source's own size).

    Returns:
        A `TranslationResult`.

    Raises:
        InputNotFoundError, VideoReadError: the video is missing or unreadable.
        ConfigError: a bad option, K < 1 or larger than the video, keyframe indices out of range.
        WeightsNotFoundError: "diffusion" while the weights are not here and cannot be downloaded (offline);
            the message names them and the command that fetches them.
        OutputPathError: the output or workspace cannot be written, the output is the input, or the disk is
            full (finished work is kept: run again to resume).
        WorkspaceOwnershipError: the workspace is a non-empty folder that rerender did not make.
        WorkspaceBusyError: another run holds the workspace.
        WorkspaceMismatchError: the workspace belongs to another video (use `force`).
        WeightsNotFoundError: also when a prompt that is not English needs a translation model that is not here.
        CancelledError: `cancel` was set; the workspace is left resumable.
    """
    timings: dict[str, float] = {}
    reused: list[str] = []
    space: Workspace | None = None
    notify = cancellable(callback or (lambda stage_name, done, total: None), cancel, lambda: space.root if space else workspace)

    # 1. Resolve the config and check every input before any expensive work.
    if isinstance(renderer, str):
        if renderer not in RENDERER_CHOICES:
            raise ConfigError(f"`renderer` must be one of {', '.join(map(repr, RENDERER_CHOICES))} or a renderer object, got {renderer!r}")
        overrides = {**overrides, "model.renderer": renderer}
        renderer = None
    config = resolve_config(config, prompt, K, overrides)
    if not config.prompt.prompt:
        logger.warning("no prompt is set (`prompt.prompt` is empty): the keyframes are rendered without one")
    if stage not in STAGE_CHOICES:
        raise ConfigError(f"`stage` must be one of {', '.join(STAGE_CHOICES)}, got {stage!r}")
    if stage in ("all", "propagate") and getattr(executor, "name", None) != "ray":
        propagation_options(config)  # the propagation engine and device can run here (Ray workers check their own)
    info = probe_video(video)
    frame_indices = selected_frames(info, config)
    output_path = None
    if output is not None and stage in ("all", "propagate"):
        output_path = check_output_path(output, [video])
    keyframe_indices = select_keyframes(len(frame_indices), config.keyframes, None) if config.keyframes.keyframe_mode != "adaptive" else None
    control_maps = control_map_reader(config, info)
    if executor is not None:
        executor.check(config)  # e.g. more keyframe segments than the cluster has GPUs
    if renderer is None and pipeline is None and config.model.renderer != "classic":
        from rerender.diffusion.loading import check_model_sources

        check_model_sources(config.model, config.control)  # a mistyped --model fails now, not after decoding
        check_diffusion_weights(config)  # and missing weights (offline) too
    if config.prompt.style_image is not None and renderer is None and pipeline is None and config.model.renderer == "classic":
        from rerender.diffusion.ip_adapter import read_style_image

        read_style_image(config.prompt.style_image)  # a bad file is still refused, but no adapter is needed
        logger.warning("the classic renderer does not use `prompt.style_image` (an IP-Adapter input): it is ignored")
    elif config.prompt.style_image is not None:  # the reference image and its IP-Adapter, before any model loads
        from rerender.diffusion.ip_adapter import check_style_inputs

        check_style_inputs(config.prompt.style_image, config.model.ip_adapter, config.model.ip_adapter_weight_name)
    # A prompt in another language is translated to English for the CLIP text encoder (a missing translator fails before it loads).
    with loading_bars(progress):  # progress=False: no third-party bars while a translation model loads either
        prompt_record = translate_prompt(config.prompt.prompt, config.prompt.prompt_language, prompt_translator,
                                         config.prompt.translation_model)
    if prompt_record.translator is not None:
        config = apply_overrides(config, {"prompt.prompt": prompt_record.english, "prompt.prompt_language": "en"})
    workspace_root = Path(workspace) if workspace is not None else default_workspace(output, video)
    if output_path is not None and comparison:
        side_by_side = check_output_path(comparison_path(output_path), [video], name="comparison output")
        if side_by_side.exists() and not comparison_written_here(workspace_root, side_by_side):
            # a name we chose, not the caller: a file there that this workspace did not write is theirs
            raise OutputPathError(f"{str(side_by_side)!r} exists and was not written by rerender for this workspace; "
                                  "move it away, or leave out `comparison` (--comparison)")
    check_output_path(workspace_root, [video], kind="folder", name="workspace")
    if output_path is not None and workspace_root.resolve() == output_path.resolve():
        raise OutputPathError(f"workspace {str(workspace_root)!r} is the output video's path; choose another folder")
    with Workspace.open(workspace_root, video, config, force=force) as space:
        space.manifest["prompt"] = prompt_record.to_dict()  # the prompt as written and as the text encoder read it
        if stage == "propagate" and not space.is_done("keyframes", config):
            raise ConfigError(
                f"--stage propagate propagates finished keyframes, but the workspace {str(space.root)!r} has none "
                "for this config; render them first with --stage keyframes, or run --stage all"
            )
        size = processing_size(info, config)

        # 2. Frames: decode, select, crop and resize into the workspace, one frame at a time.
        if frames_ready(space, config, len(frame_indices), size):
            reused.append("frames")
        else:
            started = time.perf_counter()
            with disk_guard(space, "frames", space.frames_dir, stage_bytes("frames", len(frame_indices), size)):
                space.begin("frames", config, size=list(size))
                extract = write_frames if executor is None else executor.write_frames  # e.g. in chunks on Ray workers
                extract(space, video, info, config, len(frame_indices), progress, notify)
                space.finish("frames", count=len(frame_indices), size=list(size))
            timings["frames"] = time.perf_counter() - started
        frames = WorkspaceFrames(space, len(frame_indices))

        # 3. Keyframes: uniform every K, an explicit list, or adaptive to the motion in the flow.
        estimator = optical_flow or load_flow_estimator(config)
        if keyframe_indices is None:
            with disk_guard(space, "keyframes", space.flows_dir, stage_bytes("propagation", len(frames), size)):
                keyframe_indices = adaptive_keyframes(space, frames, estimator, config, progress)

        # 4. Render the keyframes (the anchor first) with the diffusion pipeline or, when asked, the classic stylizer.
        if renderer is None and pipeline is None and executor is not None:
            renderer = executor.keyframe_renderer(config, estimator, control_maps, len(keyframe_indices))  # e.g. on Ray
        with loading_bars(progress):
            renderer = renderer or choose_renderer(config, pipeline, estimator, control_maps)
        if stage != "first" and keyframes_ready(space, config, renderer.name):
            reused.append("keyframes")
            keyframe_indices = space.record("keyframes")["indices"]
        else:
            started = time.perf_counter()
            with disk_guard(space, "keyframes", space.keyframes_dir, stage_bytes("keyframes", len(keyframe_indices), size)):
                space.begin("keyframes", config, renderer=renderer.name)
                wanted = keyframe_indices[:1] if stage == "first" else keyframe_indices
                render_keyframes(space, frames, wanted, renderer, progress, notify)
                if stage == "first":
                    timings["first"] = time.perf_counter() - started
                    return TranslationResult(None, keyframe_indices[:1], len(frames), timings, space.root, renderer.name,
                                             reused, {"first": space.keyframe_path(keyframe_indices[0])}, space.redone,
                                             space.size_bytes(), prompt=prompt_record)
                space.finish("keyframes", indices=keyframe_indices)
            timings["keyframes"] = time.perf_counter() - started
        with disk_guard(space, "keyframes", space.root):
            previews = {"keyframes": write_keyframe_preview(space, keyframe_indices, info, config)}
        if stage == "keyframes":
            return TranslationResult(None, keyframe_indices, len(frames), timings, space.root, renderer.name, reused,
                                     previews, space.redone, space.size_bytes(), prompt=prompt_record)

        # 5. Propagate the keyframes to every frame, key interval by key interval (bounded memory, resumable);
        #    only intervals whose keyframe files changed (e.g. retouched) or whose frames are damaged are redone.
        intervals = stale_intervals(space, interval_digests(space, keyframe_indices, len(frames)))
        if space.is_done("propagation", config) and not intervals:
            reused.append("propagation")
        else:
            started = time.perf_counter()
            with disk_guard(space, "propagation", space.propagated_dir, stage_bytes("propagation", len(frames), size)):
                space.begin("propagation", config)
                # with propagation.output_size = "source": at the source's size, from upscaled keyframes
                propagation_frames, key_path = frames, None
                if config.propagation.output_size == "source":
                    propagation_frames, key_path = prepare_source_size(space, video, info, config, keyframe_indices, progress)
                propagate = propagate_intervals if executor is None else executor.propagate  # e.g. on Ray workers
                propagate(space, propagation_frames, keyframe_indices, estimator, config, progress, notify, intervals,
                          key_path)
                space.finish("propagation", frames=len(frames))
            timings["propagation"] = time.perf_counter() - started

        # 6. Write the video with the source's fps and audio, every selected frame included.
        started = time.perf_counter()
        assert output_path is not None
        with disk_guard(space, "writing", output_path.parent, stage_bytes("writing", len(frames), size)):
            fps = write_output(space, len(frames), video, info, config, output_path, notify)
            if comparison:
                if config.propagation.output_size == "source":
                    frames, _ = prepare_source_size(space, video, info, config, keyframe_indices, False)
                previews["comparison"] = write_comparison(space, frames, output_path, fps, config)
                space.manifest["comparison"] = {"path": str(previews["comparison"].resolve()),
                                                "sha1": file_digest(previews["comparison"])}
                space.save()
        timings["writing"] = time.perf_counter() - started
        result = TranslationResult(output_path, keyframe_indices, len(frames), timings, space.root, renderer.name, reused,
                                   previews, space.redone, space.size_bytes(), prompt=prompt_record)
        if delete_workspace:
            space.remove()
            result.workspace_deleted = True
            # previews inside the workspace went with it (the comparison video lies beside the output)
            result.previews = {name: path for name, path in previews.items() if path.exists()}
        return result
