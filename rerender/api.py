"""`translate`: a video and a prompt in, a restyled, temporally consistent video out.

It reads like the method (Yang et al. 2023, Fig. 2): preprocess frames, choose keyframes, render them with
cross-frame constraints, propagate them to every frame, write the video. Every stage works from a
workspace on disk, so a long video runs in bounded memory and an interrupted run resumes where it stopped.

Example:
    >>> import rerender
    >>> result = rerender.translate("input.mp4", "a cartoon, flat colours", K=10, output="out.mp4")  # doctest: +SKIP
    >>> result.output, result.keyframe_indices, result.timings                                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Protocol, Sequence

import numpy as np
from tqdm.auto import tqdm

from rerender.config import RerenderConfig, apply_overrides, load_config
from rerender.errors import ConfigError, OutputPathError, RerenderError
from rerender.keyframes import motion_score, select_keyframes
from rerender.video import (
    VideoInfo,
    check_output_path,
    compute_output_size,
    probe_video,
    read_frames,
    read_image,
    write_image,
    write_video,
)
from rerender.workspace import Workspace

logger = logging.getLogger(__name__)

__all__ = [
    "STAGE_CHOICES", "TranslationResult", "KeyframeRenderer", "ClassicRenderer", "DiffusionRenderer", "WorkspaceFrames",
    "translate",
    "read_keyframe_folder", "propagate_keyframes", "propagation_options",
]

STAGE_CHOICES = ("all", "first", "keyframes", "propagate")
ProgressCallback = Callable[[str, int, int], None]
"""`callback(stage, done, total)`, called as each stage advances ("frames", "keyframes", "propagation", "writing")."""


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


class KeyframeRenderer(Protocol):
    """Renders keyframes in order; the first one is the anchor."""

    name: str

    def render(
        self,
        frames: Sequence[np.ndarray],
        indices: Sequence[int],
        done: Sequence[np.ndarray],
        state_dir: Path,
    ) -> Iterator[np.ndarray]:
        """Yield the stylized keyframes after the `len(done)` already rendered ones.

        Args:
            frames: the source frames of every keyframe, RGB uint8 `(H, W, 3)`, the anchor first.
            indices: the keyframes' indices among the selected frames (for per-frame inputs such as control maps).
            done: keyframes rendered by an earlier, interrupted run (a prefix of the result).
            state_dir: a folder for whatever the renderer needs to resume exactly.
        """
        ...


@dataclass(frozen=True)
class ClassicRenderer:
    """Keyframes from the built-in non-neural stylizer (no weights needed)."""

    prompt: str
    name: str = "classic"

    def render(
        self, frames: Sequence[np.ndarray], indices: Sequence[int], done: Sequence[np.ndarray], state_dir: Path
    ) -> Iterator[np.ndarray]:
        from rerender.stylizer import ClassicStylizer

        stylizer = ClassicStylizer.from_prompt(self.prompt)
        for frame in frames[len(done):]:
            yield stylizer(frame)


class DiffusionRenderer:
    """Keyframes from a `RerenderPipeline` (SD 1.5 + ControlNet with the cross-frame constraints).

    Rendering is sequential (each keyframe is made consistent with the anchor and the previous one). The
    renderer saves the pipeline's references after every keyframe in `state_dir`, so an interrupted run
    resumes exactly where it stopped without rendering finished keyframes again.
    """

    name = "diffusion"

    def __init__(
        self, pipeline: Any, config: RerenderConfig, flow_estimator: Any | None = None,
        control_maps: Callable[[Sequence[int]], list[list[np.ndarray | None]]] | None = None,
    ) -> None:
        self.pipeline, self.config, self.flow_estimator = pipeline, config, flow_estimator
        self.control_maps = control_maps

    @classmethod
    def from_config(cls, config: RerenderConfig, flow_estimator: Any | None = None, control_maps=None) -> "DiffusionRenderer":
        """Load the pipeline that `config.model` and `config.control` describe."""
        from rerender.models import load_pipeline

        return cls(load_pipeline(config.model, config.control), config, flow_estimator, control_maps)

    def render(
        self, frames: Sequence[np.ndarray], indices: Sequence[int], done: Sequence[np.ndarray], state_dir: Path
    ) -> Iterator[np.ndarray]:
        import torch

        config = self.config
        seed = config.sampling.seed if config.sampling.seed is not None else _recorded_seed(state_dir)
        generator = torch.Generator().manual_seed(seed)
        control_images = None
        if self.control_maps is not None:  # one list of maps per ControlNet, one map per keyframe
            from rerender.control import make_annotator

            # Precomputed maps where given; the other ControlNets' maps from their annotators (e.g. canny).
            annotators = [make_annotator(control) for control in config.control]
            per_frame = [
                [annotator(frame) if found is None else found for found, annotator in zip(maps, annotators)]
                for frame, maps in zip(frames, self.control_maps(indices))
            ]
            control_images = [[maps[net] for maps in per_frame] for net in range(len(config.control))]
        rendered = self.pipeline.render_keyframes(
            list(frames),
            config.prompt.full_prompt,
            config.prompt.negative_prompt,
            control_images=control_images,
            controls=list(config.control),
            flow_estimator=self.flow_estimator,
            num_inference_steps=config.sampling.num_inference_steps,
            guidance_scale=config.sampling.guidance_scale,
            strength=config.sampling.denoising_strength,
            constraints=config.constraints,
            refinement=config.sampling.refinement,
            same_noise_per_keyframe=config.sampling.same_noise_per_keyframe,
            generator=generator,
            resume=_resume_point(state_dir, len(done)),
        )
        try:
            for frame in rendered:
                _save_resume_point(state_dir, frame)
                if frame.index >= len(done):
                    yield (frame.image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        finally:
            rendered.close()


def _recorded_seed(state_dir: Path) -> int:
    """A random seed drawn once per workspace and kept, so a resumed run continues with the same noise."""
    path = state_dir / "seed.txt"
    if path.is_file():
        return int(path.read_text())
    seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    path.write_text(str(seed))
    return seed


def _resume_point(state_dir: Path, done: int):
    """The pipeline state saved after keyframe `done - 1`, or None to start from the anchor."""
    if done == 0:
        return None
    import torch

    path = state_dir / "render_state.pt"
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved if saved.get("next_index") == done else None


def _save_resume_point(state_dir: Path, frame: Any) -> None:
    import torch

    state = getattr(frame, "resume_state", None)
    if state is None:
        return
    temporary = state_dir / ".render_state.pt.partial"
    torch.save({"next_index": frame.index + 1, **state}, temporary)
    os.replace(temporary, state_dir / "render_state.pt")


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
    selection = _selected_frames(info, config)
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


# --------------------------------------------------------------------------------------------------------
# the method
# --------------------------------------------------------------------------------------------------------


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
        **overrides: config options by leaf name or dotted path (`denoising_strength=0.6`).

    Returns:
        A `TranslationResult`.

    Raises:
        InputNotFoundError, VideoReadError: the video is missing or unreadable.
        ConfigError: a bad option, K < 1 or larger than the video, keyframe indices out of range.
        OutputPathError: the output or workspace cannot be written, or the output is the input.
        WorkspaceMismatchError: the workspace belongs to another video or config (use `force`).
    """
    timings: dict[str, float] = {}
    reused: list[str] = []
    notify = callback or (lambda stage_name, done, total: None)

    # 1. Resolve the config and check every input before any expensive work.
    config = _resolve_config(config, prompt, K, overrides)
    if stage not in STAGE_CHOICES:
        raise ConfigError(f"`stage` must be one of {', '.join(STAGE_CHOICES)}, got {stage!r}")
    info = probe_video(video)
    frame_indices = _selected_frames(info, config)
    output_path = None
    if output is not None and stage in ("all", "propagate"):
        output_path = check_output_path(output, [video])
    keyframe_indices = select_keyframes(len(frame_indices), config.keyframes, None) if config.keyframes.keyframe_mode != "adaptive" else None
    control_maps = control_map_reader(config, info)
    if renderer is None and pipeline is None:
        from rerender.models import check_model_sources

        check_model_sources(config.model, config.control)  # a mistyped --model fails now, not after decoding
    workspace_root = Path(workspace) if workspace is not None else _default_workspace(output, video)
    space = Workspace.open(workspace_root, video, config, force=force)

    # 2. Frames: decode, select, crop and resize into the workspace, one frame at a time.
    if space.is_done("frames", config):
        reused.append("frames")
    else:
        started = time.perf_counter()
        space.begin("frames", config)
        _write_frames(space, video, info, config, len(frame_indices), progress, notify)
        space.finish("frames", count=len(frame_indices), size=list(_processing_size(info, config)))
        timings["frames"] = time.perf_counter() - started
    frames = WorkspaceFrames(space, len(frame_indices))

    # 3. Keyframes: uniform every K, an explicit list, or adaptive to the motion in the flow.
    estimator = optical_flow or _load_flow_estimator(config)
    if keyframe_indices is None:
        keyframe_indices = _adaptive_keyframes(space, frames, estimator, config, progress)

    # 4. Render the keyframes (the anchor first) with the diffusion pipeline or the classic stylizer.
    renderer = renderer or _choose_renderer(config, pipeline, estimator, control_maps)
    if space.is_done("keyframes", config) and stage != "first":
        reused.append("keyframes")
        keyframe_indices = space.record("keyframes")["indices"]
    else:
        started = time.perf_counter()
        space.begin("keyframes", config)
        wanted = keyframe_indices[:1] if stage == "first" else keyframe_indices
        _render_keyframes(space, frames, wanted, renderer, progress, notify)
        if stage == "first":
            timings["first"] = time.perf_counter() - started
            return TranslationResult(None, keyframe_indices[:1], len(frames), timings, space.root, renderer.name, reused,
                                     {"first": space.keyframe_path(keyframe_indices[0])})
        space.finish("keyframes", indices=keyframe_indices, renderer=renderer.name)
        timings["keyframes"] = time.perf_counter() - started
    previews = {"keyframes": _write_keyframe_preview(space, keyframe_indices, info, config)}
    if stage == "keyframes":
        return TranslationResult(None, keyframe_indices, len(frames), timings, space.root, renderer.name, reused, previews)

    # 5. Propagate the keyframes to every frame, interval by interval (bounded memory, resumable).
    if space.is_done("propagation", config):
        reused.append("propagation")
    else:
        started = time.perf_counter()
        space.begin("propagation", config)
        _propagate(space, frames, keyframe_indices, estimator, config, progress, notify)
        space.finish("propagation", frames=len(frames))
        timings["propagation"] = time.perf_counter() - started

    # 6. Write the video with the source's fps and audio, every selected frame included.
    started = time.perf_counter()
    assert output_path is not None
    fps = _write_output(space, len(frames), video, info, config, output_path, notify)
    if comparison:
        previews["comparison"] = _write_comparison(space, frames, output_path, fps, config)
    timings["writing"] = time.perf_counter() - started
    return TranslationResult(output_path, keyframe_indices, len(frames), timings, space.root, renderer.name, reused, previews)


# --------------------------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------------------------


def _resolve_config(config, prompt, K, overrides) -> RerenderConfig:
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


def _selected_frames(info: VideoInfo, config: RerenderConfig) -> range:
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


def _processing_size(info: VideoInfo, config: RerenderConfig) -> tuple[int, int]:
    crop = config.video.crop
    return compute_output_size(
        info.width - crop.left - crop.right, info.height - crop.top - crop.bottom,
        config.video.resolution, config.video.resize_side, config.video.size_multiple,
    )


def _default_workspace(output, video) -> Path:
    base = Path(output) if output is not None else Path(video)
    return base.with_name(base.name + ".work")


def _notify_iter(items, stage: str, total: int, notify: ProgressCallback):
    for done, item in enumerate(items, start=1):
        yield item
        notify(stage, done, total)


def _guard_disk(write: Callable[[], Any], space: Workspace) -> Any:
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


def _write_frames(space, video, info, config, count, progress, notify, size: tuple[int, int] | None = None) -> None:
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
        _guard_disk(functools.partial(write_image, frame, space.frame_path(index)), space)
        written += 1
        notify("frames", written, count)
    if written != count:
        raise RerenderError(f"decoded {written} of {count} frames of {info.path.name}; the file may be truncated")


def _load_flow_estimator(config: RerenderConfig):
    from rerender.flow import load_flow_estimator

    return load_flow_estimator(config.flow.flow_estimator, checkpoint=config.flow.flow_checkpoint, dis_preset=config.flow.dis_preset)


def _cached_flow(space: Workspace, estimator):
    from rerender.flow import FlowCache

    cache = FlowCache(space.flows_dir)
    return lambda source, target: cache.get_or_compute(estimator, source, target)


def _adaptive_keyframes(space, frames, estimator, config, progress) -> list[int]:
    import torch

    from rerender.flow import forward_backward_occlusion

    flow = _cached_flow(space, estimator)
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


def _choose_renderer(config: RerenderConfig, pipeline, estimator, control_maps=None) -> KeyframeRenderer:
    if pipeline is not None:
        return DiffusionRenderer(pipeline, config, estimator, control_maps)
    missing = _missing_default_weights(config)
    if missing:
        logger.warning(
            "no diffusion weights are configured or cached (%s); rendering keyframes with the built-in classic "
            "stylizer instead. Pass --model (model.base_model) with a local diffusers folder or a .safetensors file, "
            "or download the weights once on a connected machine.",
            "; ".join(missing),
        )
        return ClassicRenderer(config.prompt.prompt)
    return DiffusionRenderer.from_config(config, estimator, control_maps)


def _missing_default_weights(config: RerenderConfig) -> list[str]:
    """What is missing to run diffusion when the user named no model of their own (default hub ids, not cached).

    A model the user configured explicitly (a path, another hub id) is never replaced by the fallback: loading
    it reports its own clear error instead.
    """
    from rerender.config import ModelConfig

    if config.model.base_model != ModelConfig().base_model:
        return []
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        return ["huggingface_hub is not installed"]
    wanted = [(config.model.base_model, "model_index.json")]
    wanted += [(control.resolved_model, "config.json") for control in config.control if control.model is None]
    if config.model.vae == ModelConfig().vae and config.model.vae is not None:
        wanted.append((config.model.vae, "config.json"))
    missing = []
    for repository, filename in wanted:
        cached = try_to_load_from_cache(repository, filename)
        if not isinstance(cached, str):
            missing.append(f"{repository} is not in the Hugging Face cache")
    return missing


def _render_keyframes(space, frames, indices, renderer, progress, notify) -> None:
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
            _guard_disk(functools.partial(write_image, image, space.keyframe_path(indices[position])), space)
            bar.update(1)
            notify("keyframes", position + 1, len(indices))
    finally:
        bar.close()


def _write_keyframe_preview(space, keyframe_indices, info, config) -> Path:
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


def _propagate(space, frames, keyframe_indices, estimator, config, progress, notify) -> None:
    """Propagate in chunks of a few key intervals: memory holds one chunk, and finished chunks are kept."""
    from rerender.propagation import propagate_video

    options = propagation_options(config)
    flow = _cached_flow(space, estimator)
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
    try:
        for start, end in chunks:
            if (start, end) not in finished:
                keys = {index - start: read_image(space.keyframe_path(index)) for index in keyframe_indices if start <= index <= end}
                results = propagate_video(frames[start : end + 1], keys, flow=flow, options=options, progress=False)
                for offset, image in enumerate(results):
                    _guard_disk(functools.partial(write_image, image, space.propagated_path(start + offset)), space)
                record.setdefault("segments", []).append([start, end])
                space.save()
            bar.update(end - start + (1 if start == 0 else 0))
            notify("propagation", min(bar.n, len(frames)), len(frames))
    finally:
        bar.close()


def _write_output(space, count: int, video, info: VideoInfo, config: RerenderConfig, output_path: Path, notify):
    """Encode the propagated frames with the source's fps (÷ stride) and its audio from the first selected frame on."""
    fps = config.output.fps or info.fps / config.video.frame_stride
    audio_start = float(config.video.start_frame / info.fps) if not info.is_image_sequence else 0.0
    outputs = _notify_iter((read_image(space.propagated_path(i)) for i in range(count)), "writing", count, notify)
    _guard_disk(lambda: write_video(outputs, output_path, fps=fps, crf=config.output.crf,
                                    audio_from=video if config.output.keep_audio and info.has_audio else None,
                                    audio_start=audio_start, inputs=[video]), space)
    return fps


def _write_comparison(space, frames, output_path: Path, fps, config) -> Path:
    path = output_path.with_name(output_path.stem + "_comparison" + output_path.suffix)
    pairs = (np.concatenate([frames[i], read_image(space.propagated_path(i))], axis=1) for i in range(len(frames)))
    write_video(pairs, path, fps=fps, crf=config.output.crf)
    return path


# --------------------------------------------------------------------------------------------------------
# propagation of your own keyframes (the classic EbSynth workflow)
# --------------------------------------------------------------------------------------------------------


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
        workspace: keep intermediates (frames, flows, propagated frames) here; default a temporary folder
            that is removed afterwards.
        force, optical_flow, progress, callback, **overrides: as `translate`.

    Raises:
        as `translate`, plus `ConfigError` for keyframe folders that break the rules above.
    """
    timings: dict[str, float] = {}
    notify = callback or (lambda stage_name, done, total: None)

    # 1. Check the inputs: video, output, keyframe names, sizes.
    config = _resolve_config(config, None, None, overrides)
    info = probe_video(video)
    frame_indices = _selected_frames(info, config)
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

    temporary = None
    if workspace is None:
        temporary = tempfile.TemporaryDirectory(prefix="rerender-propagate-", dir=output_path.parent)
        workspace = temporary.name
    try:
        space = Workspace.open(workspace, video, config, force=force)

        # 2. Frames at the keyframes' size.
        started = time.perf_counter()
        if not space.is_done("frames", config) or space.record("frames").get("size") != [width, height]:
            space.begin("frames", config)
            _write_frames(space, video, info, config, len(frame_indices), progress, notify, size=(width, height))
            space.finish("frames", count=len(frame_indices), size=[width, height])
        frames = WorkspaceFrames(space, len(frame_indices))
        space.keyframes_dir.mkdir(exist_ok=True)
        for index, image in key_images.items():
            write_image(image, space.keyframe_path(index))
        timings["frames"] = time.perf_counter() - started

        # 3. Propagate interval by interval.
        started = time.perf_counter()
        indices = list(key_images)
        record = space.record("propagation")
        if record.get("keyframes") != [f"{i}:{_file_digest(p)}" for i, p in key_files.items()]:
            space.clear("propagation")
        space.begin("propagation", config)
        space.record("propagation")["keyframes"] = [f"{i}:{_file_digest(p)}" for i, p in key_files.items()]
        estimator = optical_flow or _load_flow_estimator(config)
        _propagate(space, frames, indices, estimator, config, progress, notify)
        space.finish("propagation", frames=len(frames))
        timings["propagation"] = time.perf_counter() - started

        # 4. Write the video with the source's fps and audio.
        started = time.perf_counter()
        _write_output(space, len(frames), video, info, config, output_path, notify)
        timings["writing"] = time.perf_counter() - started
        return TranslationResult(output_path, indices, len(frames), timings, space.root if temporary is None else Path(),
                                 "keyframes folder", [])
    finally:
        if temporary is not None:
            temporary.cleanup()


def _file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha1(path.read_bytes()).hexdigest()[:16]
