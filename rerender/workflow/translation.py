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

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerender.config import InputChange, RendererName, RerenderConfig, Stage, apply_overrides, choices
from rerender.diffusion.loading import loading_bars
from rerender.errors import ConfigError
from rerender.keyframes import select_keyframes
from rerender.languages import PromptTranslation, translate_prompt
from rerender.sound import check_audio_prompt, hear_prompt
from rerender.video import check_input_path, check_run_memory, choose_audio_track, probe_video
from rerender.workflow.context import (
    IntervalLedger,
    Progress,
    ProgressCallback,
    StageContext,
    check_flags,
    check_optical_flow,
    check_progress_arguments,
)
from rerender.workflow.executors import Executor, LocalExecutor
from rerender.workflow.frames import WorkspaceFrames
from rerender.workflow.preflight import absolute_path, check_run, check_workspace_paths, helper_device
from rerender.workflow.renderers import (
    ClassicRenderer,
    DiffusionRenderer,
    KeyframeRenderer,
    choose_renderer,
    renderer_name,
)
from rerender.workflow.stages import (
    adaptive_keyframes,
    control_map_reader,
    default_workspace,
    disk_guard,
    frames_ready,
    keyframes_ready,
    prepare_source_size,
    processing_size,
    propagation_options,
    render_keyframes,
    selected_frames,
    stage_bytes,
    write_comparison,
    write_keyframe_preview,
    write_output,
)
from rerender.workflow.workspace import Workspace

logger = logging.getLogger(__name__)

__all__ = [
    "STAGE_CHOICES",
    "TranslationResult",
    "KeyframeRenderer",
    "ClassicRenderer",
    "DiffusionRenderer",
    "WorkspaceFrames",
    "translate",
    "propagation_options",
]

STAGE_CHOICES = choices(Stage)
"""The values of `stage` (`rerender.config.Stage`)."""


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

    def __post_init__(self) -> None:  # absolute: they still name the same files after the caller's `os.chdir`
        self.output = absolute_path(self.output) if self.output is not None else None
        self.workspace = absolute_path(self.workspace)
        self.previews = {name: absolute_path(path) for name, path in self.previews.items()}


def translate(
    video: str | os.PathLike,
    prompt: str | None = None,
    K: int | None = None,
    output: str | os.PathLike | None = "out.mp4",
    config: RerenderConfig | str | os.PathLike | None = None,
    pipeline: Any | None = None,
    *,
    workspace: str | os.PathLike | None = None,
    stage: Stage = "all",
    force: bool = False,
    on_change: InputChange = "refuse",
    overwrite: bool = False,
    delete_workspace: bool = False,
    renderer: RendererName | KeyframeRenderer | None = None,
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
        output: the video to write (`.mp4`, `.mov`, `.mkv`, `.m4v`); its folder must exist.
        config: a `RerenderConfig`, or a YAML/JSON file; `None` = defaults.
        pipeline: a loaded `RerenderPipeline` for the keyframes; `None` loads the one `config.model` names
            (from disk, the Hugging Face cache, or downloaded on a connected machine).
        workspace: folder for frames, flows, keyframes and the manifest; default `<output>.work/`.
        stage: "first" renders only the anchor keyframe (to tune the look), "keyframes" stops after the
            keyframes, "propagate" propagates the keyframes of a finished keyframes stage (retouched ones
            included) and refuses when there are none, "all" (default) does everything.
        force: redo every stage even where nothing changed, or start over a workspace made for another
            video. Work whose inputs changed (video, config, keyframe files) is redone without it.
        on_change: what a workspace made for an earlier version of `video` (the same name, other content: an edited
            file) gets: "refuse" (default; `force` starts it over) or "restart" (it starts over by itself).
        overwrite: replace an existing `output` that rerender did not write; without it such a file is refused
            before any work (an earlier output of rerender's is replaced either way: a rerun).
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

    # 1. Check every argument before any expensive work (`preflight.check_run`), then what the video's header says.
    check_input_path(video, "video")
    check_progress_arguments(callback, cancel)
    if on_change not in choices(InputChange):
        raise ConfigError(
            f"`on_change` must be one of {', '.join(map(repr, choices(InputChange)))}, got {on_change!r}"
        )
    check_optical_flow(optical_flow)
    check_flags(
        force=force, overwrite=overwrite, comparison=comparison, delete_workspace=delete_workspace, progress=progress
    )
    if workspace is not None:
        check_input_path(workspace, "workspace")
    if force and stage == "propagate":  # --force starts the workspace over: the keyframes would go first
        raise ConfigError(
            "`force=True` starts the workspace over, deleting the keyframes that `stage` 'propagate' propagates; "
            "leave out `force=True` (changed keyframe files are propagated again by themselves), or run `stage` 'all'"
        )
    checked = check_run(
        config,
        prompt=prompt,
        K=K,
        overrides=overrides,
        stage=stage,
        output=output,
        inputs=[video],
        renderer=renderer,
        pipeline=pipeline,
        executor=executor,
        prompt_translator=prompt_translator,
        soundtrack=video,
        overwrite=overwrite,
    )
    config, renderer, output_path = checked.config, checked.renderer, checked.output
    workspace_root = Path(workspace) if workspace is not None else default_workspace(output, video)
    check_workspace_paths(workspace_root, output_path, [video], comparison=comparison, overwrite=overwrite)
    # resolved once: a relative path keeps naming the same file if the working folder changes during the run
    output_path = absolute_path(output_path) if output_path is not None else None
    workspace_root = absolute_path(workspace_root)
    if stage == "propagate" and not workspace_root.is_dir():  # refused before any work, and no empty folder made
        raise ConfigError(
            f"`stage` 'propagate' propagates finished keyframes, but the workspace {str(workspace_root)!r} does not "
            "exist, so it has none (if they are in another workspace, name it); render them first with `stage` "
            "'keyframes', or run `stage` 'all'"
        )
    if not config.prompt.prompt.strip() and config.prompt.audio_prompt is None:  # on purpose (the CLI's -p ""):
        # the video gives the content, the model, a style image or a LoRA the look
        logger.warning("no prompt is set (`prompt.prompt` is empty): the keyframes are rendered without one")
    info = probe_video(video)
    frame_indices = selected_frames(info, config)
    keyframe_indices = (
        select_keyframes(len(frame_indices), config.keyframes, None)
        if config.keyframes.keyframe_mode != "adaptive"
        else None
    )
    control_maps = control_map_reader(config, info)
    check_run_memory(info, config, len(frame_indices))  # an 8K source at source size is refused now, not at 15 GB
    if config.output.keep_audio:
        choose_audio_track(info.audio_tracks, config.output.audio_track)  # a track that is not there, now
    # `prompt.audio_prompt` 'source' hears the sound under the frames being translated: a silent span, now
    span = (
        info.start_time(frame_indices[0]),
        info.start_time(frame_indices[-1]) + config.video.frame_stride / float(info.fps),
    )
    check_audio_prompt(
        config.prompt.audio_prompt,
        video,
        config.prompt.audio_vocabulary,
        span=span,
        audio_track=config.output.audio_track,
    )
    # A prompt in another language is translated to English for the CLIP text encoder (a missing translator fails before it loads).
    with loading_bars(progress):  # progress=False: no third-party bars while a translation model loads either
        prompt_record = translate_prompt(
            config.prompt.prompt,
            config.prompt.prompt_language,
            prompt_translator,
            config.prompt.translation_model,
            config.prompt.negative_prompt,
        )
        # `prompt.audio_prompt`: events → words; "source" hears the output's track under the frames translated
        prompt_record = hear_prompt(
            prompt_record,
            config.prompt,
            video,
            span=span,
            audio_track=config.output.audio_track,
            device=helper_device(config, pipeline),  # CLAP on the model's device (cuda:1 named: not cuda:0)
        )
    if prompt_record.translator is not None or prompt_record.sound is not None:
        config = apply_overrides(
            config,
            {
                "prompt.prompt": prompt_record.english,
                "prompt.prompt_language": "en",
                "prompt.negative_prompt": prompt_record.negative_english or "",
            },
        )
    prompt_record = dataclasses.replace(prompt_record, encoded=config.prompt.full_prompt)
    logger.info("the text encoder reads %r (negative: %r)", config.prompt.full_prompt, config.prompt.negative_prompt)
    executor = executor or LocalExecutor()
    # `stage` 'propagate' is checked before anything is forgotten: a refused run never deletes the keyframes
    with Workspace.open(
        workspace_root, video, config, force=force, reconcile=stage != "propagate", on_change=on_change
    ) as space:
        if stage == "propagate":
            _check_keyframes_finished(space, config)
            space.reconcile(config)
        space.manifest["prompt"] = prompt_record.to_dict()  # the prompt as written and as the text encoder read it
        ctx = StageContext(
            workspace=space,
            video=Path(video),
            info=info,
            config=config,
            count=len(frame_indices),
            size=processing_size(info, config),
            optical_flow=optical_flow,
            progress=Progress(progress, callback, cancel, lambda: workspace_root),
        )

        def result(**fields: Any) -> TranslationResult:
            return TranslationResult(
                frame_count=ctx.count,
                timings=timings,
                workspace=space.root,
                reused=reused,
                redone=space.redone,
                workspace_bytes=space.size_bytes(),
                prompt=prompt_record,
                **fields,
            )

        # 2. Frames: decode, select, crop and resize into the workspace, one frame at a time.
        _frames_stage(ctx, executor, timings, reused)
        frames = WorkspaceFrames(space, ctx.count)

        # 3. Keyframes: uniform every K, an explicit list, or adaptive to the motion in the flow.
        if keyframe_indices is None:
            with disk_guard(space, "keyframes", space.flows_dir, stage_bytes("propagation", ctx.count, ctx.size)):
                keyframe_indices = adaptive_keyframes(ctx, frames)

        # 4. Render the keyframes (the anchor first) with the diffusion pipeline or, when asked, the classic stylizer.
        #    Finished keyframes, and every keyframe `stage` 'propagate' uses, are kept as they are: no model loads.
        renderer_used = _finished_keyframes_renderer(space, config, stage, renderer, pipeline)
        if renderer_used is not None:
            reused.append("keyframes")
            keyframe_indices = space.record("keyframes")["indices"]
        else:
            with loading_bars(progress):
                if renderer is None and pipeline is None:
                    renderer = executor.keyframe_renderer(ctx, control_maps, len(keyframe_indices))  # e.g. on Ray
                renderer = renderer or choose_renderer(config, pipeline, ctx.estimator, control_maps)
            renderer_used = renderer.name
            keyframe_indices = _keyframes_stage(ctx, frames, keyframe_indices, renderer, stage == "first", timings)
        if stage == "first":
            return result(
                output=None,
                keyframe_indices=keyframe_indices[:1],
                renderer=renderer_used,
                previews={"first": space.keyframe_path(keyframe_indices[0])},
            )
        with disk_guard(space, "keyframes", space.root):
            previews = {"keyframes": write_keyframe_preview(ctx, keyframe_indices)}
        if stage == "keyframes":
            return result(output=None, keyframe_indices=keyframe_indices, renderer=renderer_used, previews=previews)

        # 5. Propagate the keyframes to every frame, key interval by key interval (bounded memory, resumable);
        #    only intervals whose keyframe files changed (e.g. retouched) or whose frames are damaged are redone.
        _propagation_stage(ctx, executor, frames, keyframe_indices, timings, reused)

        # 6. Write the video with the source's fps and audio, every selected frame included.
        started = time.perf_counter()
        with disk_guard(space, "writing", output_path.parent, stage_bytes("writing", ctx.count, ctx.size)):
            fps = write_output(ctx, output_path)
            if comparison:
                if config.propagation.output_size == "source":
                    frames, _ = prepare_source_size(ctx.with_progress(ctx.progress.quiet()), keyframe_indices)
                previews["comparison"] = write_comparison(ctx, frames, output_path, fps)  # tagged, as every video
        timings["writing"] = time.perf_counter() - started
        done = result(output=output_path, keyframe_indices=keyframe_indices, renderer=renderer_used, previews=previews)
        if delete_workspace:
            space.remove()
            done.workspace_deleted = True
            # previews inside the workspace went with it (the comparison video lies beside the output)
            done.previews = {name: path for name, path in previews.items() if path.exists()}
        return done


def _check_keyframes_finished(space: Workspace, config: RerenderConfig) -> None:
    """`stage` 'propagate' needs keyframes finished under `config`; say which options differ when they do."""
    if space.is_done("keyframes", config):
        return
    changed = space.changed_sections("keyframes", config) if space.record("keyframes").get("done") else []
    found = (
        f"holds keyframes rendered with other options (config changed: {', '.join(changed)}); run with the options "
        "they were rendered with, or render them again"
        if changed
        else "has none for this config; render them first"
    )
    raise ConfigError(
        f"`stage` 'propagate' propagates finished keyframes, but the workspace {str(space.root)!r} {found} with "
        "`stage` 'keyframes', or run `stage` 'all'"
    )


def _frames_stage(ctx: StageContext, executor: Executor, timings: dict[str, float], reused: list[str]) -> None:
    """Step 2 of `translate`: the selected frames into the workspace, unless they are there already."""
    space = ctx.workspace
    if frames_ready(space, ctx.config, ctx.count, ctx.size):
        reused.append("frames")
        return
    started = time.perf_counter()
    with disk_guard(space, "frames", space.frames_dir, stage_bytes("frames", ctx.count, ctx.size)):
        space.begin("frames", ctx.config, size=list(ctx.size))
        executor.write_frames(ctx)  # e.g. in chunks on Ray workers
        space.finish("frames", count=ctx.count, size=list(ctx.size))
    timings["frames"] = time.perf_counter() - started


def _finished_keyframes_renderer(
    space: Workspace, config: RerenderConfig, stage: Stage, renderer: KeyframeRenderer | None, pipeline: object
) -> str | None:
    """Step 4 of `translate`, before any model loads: the name of the renderer that finished this workspace's
    keyframes when they are to be used as they are, else None (they are rendered).

    They are used as they are when the renderer this run would choose finished them with this config, and always
    for `stage` 'propagate' (checked finished by `_check_keyframes_finished`): its keyframes may be retouched, and
    are never rendered again by another renderer (e.g. `renderer` 'auto' on a machine without the weights).

    Raises:
        ConfigError: `stage` 'propagate' while a keyframe file is missing or damaged and this run's renderer is not
            the one that made the others (rendering it again would not match them).
    """
    if stage == "first":
        return None
    if stage != "propagate":
        name = renderer.name if renderer is not None else renderer_name(config, pipeline)
        return name if keyframes_ready(space, config, name) else None
    made_by = space.record("keyframes").get("depends", {}).get("renderer")
    if keyframes_ready(space, config, made_by):  # whichever renderer this run would choose
        return made_by
    name = renderer.name if renderer is not None else renderer_name(config, pipeline)
    if made_by != name:
        raise ConfigError(
            f"`stage` 'propagate': a keyframe file in {str(space.keyframes_dir)!r} is missing or damaged, and the "
            f"keyframes were rendered with renderer {made_by!r} while this run would use {name!r}; restore the file, "
            f"or run where renderer {made_by!r} can load"
        )
    return None  # the damaged keyframes are rendered again, by the renderer that made the others


def _keyframes_stage(
    ctx: StageContext,
    frames: WorkspaceFrames,
    keyframe_indices: list[int],
    renderer: KeyframeRenderer,
    first_only: bool,
    timings: dict[str, float],
) -> list[int]:
    """Step 4 of `translate`: render the keyframes (only the anchor with `first_only`); returns their indices."""
    space, config = ctx.workspace, ctx.config
    started = time.perf_counter()
    with disk_guard(
        space, "keyframes", space.keyframes_dir, stage_bytes("keyframes", len(keyframe_indices), ctx.size)
    ):
        space.begin("keyframes", config, renderer=renderer.name)
        render_keyframes(ctx, frames, keyframe_indices[:1] if first_only else keyframe_indices, renderer)
        if not first_only:
            space.finish("keyframes", indices=keyframe_indices)
    timings["first" if first_only else "keyframes"] = time.perf_counter() - started
    return keyframe_indices


def _propagation_stage(
    ctx: StageContext,
    executor: Executor,
    frames: WorkspaceFrames,
    keyframe_indices: list[int],
    timings: dict[str, float],
    reused: list[str],
) -> None:
    """Step 5 of `translate`: propagate the key intervals that are not done (or whose keyframes changed)."""
    space, config = ctx.workspace, ctx.config
    ledger = IntervalLedger(space)
    intervals = ledger.stale(ledger.digests(keyframe_indices, ctx.count))
    if space.is_done("propagation", config) and not intervals:
        reused.append("propagation")
        return
    started = time.perf_counter()
    with disk_guard(space, "propagation", space.propagated_dir, stage_bytes("propagation", ctx.count, ctx.size)):
        space.begin("propagation", config)
        # with propagation.output_size = "source": at the source's size, from upscaled keyframes
        propagation_frames, key_path = frames, None
        if config.propagation.output_size == "source":
            propagation_frames, key_path = prepare_source_size(ctx, keyframe_indices)
        executor.propagate(ctx, propagation_frames, keyframe_indices, intervals, key_path)  # e.g. on Ray workers
        space.finish("propagation", frames=ctx.count)
    timings["propagation"] = time.perf_counter() - started
