"""Keyframe renderers: the diffusion pipeline (the method) and the built-in classic stylizer (no weights).

A renderer turns the keyframes' source frames into stylized keyframes, in order, the anchor first, and can
resume an interrupted run from `state_dir` (see `KeyframeRenderer`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rerender.config import ControlConfig, RendererName, RerenderConfig, choices
from rerender.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "RENDERER_CHOICES",
    "ProgressFn",
    "KeyframeRenderer",
    "check_diffusion_weights",
    "ClassicRenderer",
    "DiffusionRenderer",
    "choose_renderer",
    "missing_default_weights",
    "renderer_name",
]


ProgressFn = Callable[[int, int], None]
"""`on_progress(done, total)`: a renderer's progress in its own units."""


class KeyframeRenderer(Protocol):
    """Renders keyframes in order; the first one is the anchor."""

    name: str

    def render(
        self,
        frames: Sequence[np.ndarray],
        indices: Sequence[int],
        done: Sequence[np.ndarray],
        state_dir: Path,
        on_progress: ProgressFn | None = None,
    ) -> Iterator[np.ndarray]:
        """Yield the stylized keyframes after the `len(done)` already rendered ones.

        Args:
            frames: the source frames of every keyframe, RGB uint8 `(H, W, 3)`, the anchor first.
            indices: the keyframes' indices among the selected frames (for per-frame inputs such as control maps).
            done: keyframes rendered by an earlier, interrupted run (a prefix of the result; only its length
                matters to the built-in renderers).
            state_dir: a folder for whatever the renderer needs to resume exactly.
            on_progress: ``on_progress(done, total)``, for a renderer whose keyframes take long, called as work
                advances in its own units (`DiffusionRenderer`: denoising steps); the keyframe stage then reports
                those instead of whole keyframes. A renderer may ignore it (`ClassicRenderer` does).
        """
        ...


@dataclass(frozen=True)
class ClassicRenderer:
    """Keyframes from the built-in non-neural stylizer (no weights needed)."""

    prompt: str
    name: str = "classic"

    def render(
        self,
        frames: Sequence[np.ndarray],
        indices: Sequence[int],
        done: Sequence[np.ndarray],
        state_dir: Path,
        on_progress: ProgressFn | None = None,
    ) -> Iterator[np.ndarray]:
        """As `KeyframeRenderer.render` (progress is counted in whole keyframes: `on_progress` is not called)."""
        from rerender.stylizer import ClassicStylizer

        stylizer = ClassicStylizer.from_prompt(self.prompt)
        for frame in frames[len(done) :]:
            yield stylizer(frame)


class DiffusionRenderer:
    """Keyframes from a `RerenderPipeline` (SD 1.5 + ControlNet with the cross-frame constraints).

    Rendering is sequential (each keyframe is made consistent with the anchor and the previous one). The
    renderer saves the pipeline's references after every keyframe in `state_dir`, so an interrupted run
    resumes exactly where it stopped without rendering finished keyframes again.
    """

    name = "diffusion"

    def __init__(
        self,
        pipeline: Any,
        config: RerenderConfig,
        flow_estimator: Any | None = None,
        control_maps: Callable[[Sequence[int]], list[list[np.ndarray | None]]] | None = None,
    ) -> None:
        from rerender.workflow.preflight import resolve_family_defaults

        config = resolve_family_defaults(config, pipeline)  # a config that did not pass `check_run`
        self.pipeline, self.config, self.flow_estimator = pipeline, config, flow_estimator
        self.control_maps = control_maps

    @classmethod
    def from_config(
        cls, config: RerenderConfig, flow_estimator: Any | None = None, control_maps=None
    ) -> DiffusionRenderer:
        """Load the pipeline that `config.model` and `config.control` describe."""
        from rerender.diffusion.loading import load_pipeline

        return cls(load_pipeline(config.model, config.control), config, flow_estimator, control_maps)

    def render(
        self,
        frames: Sequence[np.ndarray],
        indices: Sequence[int],
        done: Sequence[np.ndarray],
        state_dir: Path,
        on_progress: ProgressFn | None = None,
    ) -> Iterator[np.ndarray]:
        """Render as `KeyframeRenderer.render`, one run at a time on a pipeline: a run on the same pipeline in
        another thread (two requests of a web service) waits until this one ends, as each installs its own
        attention processors, FreeU factors and IP-Adapter on the shared UNet for the whole run."""
        with pipeline_lock(self.pipeline):
            yield from self._render(frames, indices, done, state_dir, on_progress)

    def _render(
        self,
        frames: Sequence[np.ndarray],
        indices: Sequence[int],
        done: Sequence[np.ndarray],
        state_dir: Path,
        on_progress: ProgressFn | None = None,
    ) -> Iterator[np.ndarray]:
        """Render as `KeyframeRenderer.render`; `on_progress(done, total)` counts denoising steps (UNet calls).

        A resumed run counts the finished keyframes' steps as done, then the anchor's again (it is re-rendered
        to rebuild its references); the count reaches `total` with the last keyframe. While `on_progress` is
        given, the pipeline's own per-pass bars are off (restored afterwards).
        """
        import torch

        config = self.config
        seed = config.sampling.seed if config.sampling.seed is not None else recorded_seed(state_dir)
        generator = torch.Generator().manual_seed(seed)
        control_images = None
        if self.control_maps is not None:  # one list of maps per ControlNet, one map per keyframe
            from rerender.diffusion.control import make_annotator

            # Precomputed maps where given; the other ControlNets' maps from their annotators (e.g. canny).
            annotators = [
                make_annotator(control, device=self.pipeline._execution_device) for control in config.control
            ]
            per_frame = [
                [annotator(frame) if found is None else found for found, annotator in zip(maps, annotators)]
                for frame, maps in zip(frames, self.control_maps(indices))
            ]
            control_images = [[maps[net] for maps in per_frame] for net in range(len(config.control))]
        resume = _resume_point(state_dir, len(done))
        step_end, restore_bars = None, None
        if on_progress is not None:
            planned = self.pipeline.planned_unet_calls(
                len(frames),
                config.sampling.num_inference_steps,
                config.sampling.denoising_strength,
                config.constraints,
                config.sampling.refinement,
            )
            total, finished = sum(planned), [sum(planned[1 : len(done)]) if resume is not None else 0]

            def step_end(pipeline: Any, step: int, timestep: int, values: dict) -> None:
                finished[0] += 1
                on_progress(finished[0], total)

            on_progress(finished[0], total)
            restore_bars = getattr(self.pipeline, "_progress_bar_config", {}).copy()
            self.pipeline.set_progress_bar_config(**{**restore_bars, "disable": True})
        from rerender.diffusion.flux import true_guidance_options
        from rerender.diffusion.ip_adapter import style_adapter

        with style_adapter(self.pipeline, config) as style_image:  # the IP-Adapter for this render only
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
                callback_on_step_end=step_end,
                resume=resume,
                ip_adapter_image=style_image,
                **true_guidance_options(self.pipeline, config.sampling.true_cfg_scale),
            )
            try:
                for frame in rendered:
                    _save_resume_point(state_dir, frame)
                    if frame.index >= len(done):
                        yield (frame.image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            finally:
                rendered.close()
                if restore_bars is not None:
                    self.pipeline.set_progress_bar_config(**restore_bars)


_PIPELINE_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_PIPELINE_LOCKS_GUARD = threading.Lock()


def pipeline_lock(pipeline: Any) -> threading.RLock:
    """The lock that lets one keyframe run at a time use `pipeline` (kept beside it: a lock would make the pipeline
    impossible to pickle or deep-copy); a fresh one for an object that cannot be weakly referenced."""
    with _PIPELINE_LOCKS_GUARD:
        try:
            return _PIPELINE_LOCKS.setdefault(pipeline, threading.RLock())
        except TypeError:
            return threading.RLock()


def recorded_seed(state_dir: Path) -> int:
    """A random seed drawn once per workspace and kept, so a resumed run continues with the same noise."""
    path = state_dir / "seed.txt"
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if not text.isdigit():
            raise ConfigError(
                f"{str(path)!r} must hold the workspace's seed (a non-negative integer), got {text[:40]!r}; "
                "delete the file and the keyframes, or set sampling.seed"
            )
        return int(text)
    seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    path.write_text(str(seed))
    logger.info("sampling.seed is null: drew seed %d (kept in %s; set it to repeat this video)", seed, path)
    return seed


RESUME_STATE_FORMAT = "rerender.render_state"
RESUME_STATE_VERSION = 1
_TENSOR_FILE, _STRUCTURE_FILE = "render_state.safetensors", "render_state.json"
_LEGACY_FILE = "render_state.pt"  # pickled by older versions: never read (loading a pickle can run code)


def _resume_point(state_dir: Path, done: int) -> dict[str, Any] | None:
    """The pipeline state saved after keyframe `done - 1`, or None to start again from the anchor.

    The state is two files: tensors in ``render_state.safetensors`` and everything else (the frame index, the
    feature keys, the tensor file's SHA-256) in ``render_state.json``. Neither format can run code. A state
    that is missing, of another format, damaged or saved at another keyframe is ignored (logged): rendering
    then restarts from the anchor and skips what is already on disk, which gives the same keyframes.
    """
    if done == 0:
        return None
    state = None
    if (state_dir / _STRUCTURE_FILE).is_file() and (state_dir / _TENSOR_FILE).is_file():
        try:
            state = _read_resume_state(state_dir)
        except (OSError, ValueError) as error:
            logger.warning(
                "ignoring the resume state in %s (%s); the keyframes are rendered again from the anchor",
                state_dir,
                error,
            )
    elif (state_dir / _LEGACY_FILE).exists():
        logger.warning(
            "ignoring %s: resume states of older versions are pickled and are never loaded (loading a pickle can "
            "run code); the keyframes are rendered again from the anchor",
            state_dir / _LEGACY_FILE,
        )
    return state if state is not None and state["next_index"] == done else None


def _read_resume_state(state_dir: Path) -> dict[str, Any]:
    """Read and schema-check a saved state; raise `ValueError` naming what is wrong."""
    import hashlib

    import torch
    from safetensors.torch import load

    structure = json.loads((state_dir / _STRUCTURE_FILE).read_text(encoding="utf-8"))
    if not isinstance(structure, dict) or structure.get("format") != RESUME_STATE_FORMAT:
        raise ValueError(f"{_STRUCTURE_FILE} is not a {RESUME_STATE_FORMAT} file")
    if structure.get("version") != RESUME_STATE_VERSION:
        raise ValueError(
            f"{_STRUCTURE_FILE} has version {structure.get('version')!r}, this version reads {RESUME_STATE_VERSION}"
        )
    index, next_index, keys = structure.get("index"), structure.get("next_index"), structure.get("previous_features")
    if not all(type(value) is int and value >= 0 for value in (index, next_index)):
        raise ValueError(f"{_STRUCTURE_FILE} needs integer `index` and `next_index`, got {index!r} and {next_index!r}")
    if keys is not None and not (
        isinstance(keys, list)
        and all(
            isinstance(key, list) and len(key) == 2 and type(key[0]) is int and isinstance(key[1], str) for key in keys
        )
    ):
        raise ValueError(f"{_STRUCTURE_FILE} `previous_features` must be null or a list of [layer, name] pairs")
    content = (state_dir / _TENSOR_FILE).read_bytes()
    if hashlib.sha256(content).hexdigest() != structure.get("sha256"):
        raise ValueError(f"{_TENSOR_FILE} does not match {_STRUCTURE_FILE} (an interrupted save or an edited file)")
    try:
        tensors = load(content)
    except Exception as error:  # safetensors' own error class subclasses nothing more specific
        raise ValueError(f"{_TENSOR_FILE} is not a safetensors file ({error})") from None
    wanted = {"previous_frame", "previous_rendered", "generator_state"} | {
        f"previous_features.{n}" for n in range(len(keys or []))
    }
    if set(tensors) != wanted:
        raise ValueError(f"{_TENSOR_FILE} holds {sorted(tensors)}, expected {sorted(wanted)}")
    if tensors["generator_state"].dtype != torch.uint8 or tensors["previous_frame"].ndim != 4:
        raise ValueError(f"{_TENSOR_FILE} holds tensors of the wrong dtype or rank")
    return {
        "index": index,
        "next_index": next_index,
        "previous_frame": tensors["previous_frame"],
        "previous_rendered": tensors["previous_rendered"],
        "previous_features": None
        if keys is None
        else {(layer, name): tensors[f"previous_features.{n}"] for n, (layer, name) in enumerate(keys)},
        "generator_state": tensors["generator_state"],
    }


def _save_resume_point(state_dir: Path, frame: Any) -> None:
    """Save `frame.resume_state` as safetensors + JSON; the JSON, written last, commits it (see `_resume_point`)."""
    import hashlib

    from safetensors.torch import save

    state = getattr(frame, "resume_state", None)
    if state is None:
        return
    features = state["previous_features"]
    keys = None if features is None else list(features)
    tensors = {
        "previous_frame": state["previous_frame"],
        "previous_rendered": state["previous_rendered"],
        "generator_state": state["generator_state"],
        **{f"previous_features.{n}": features[key] for n, key in enumerate(keys or [])},
    }
    content = save({name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()})
    structure = {
        "format": RESUME_STATE_FORMAT,
        "version": RESUME_STATE_VERSION,
        "index": int(state["index"]),
        "next_index": int(frame.index) + 1,
        "previous_features": None if keys is None else [[int(layer), str(name)] for layer, name in keys],
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    for name, data in ((_TENSOR_FILE, content), (_STRUCTURE_FILE, json.dumps(structure, indent=1).encode())):
        temporary = state_dir / f".{name}.partial"
        temporary.write_bytes(data)
        os.replace(temporary, state_dir / name)


RENDERER_CHOICES = choices(RendererName)
"""The renderer names (`rerender.config.RendererName`)."""


def choose_renderer(config: RerenderConfig, pipeline=None, estimator=None, control_maps=None) -> KeyframeRenderer:
    """The keyframe renderer that `config.model.renderer` asks for.

    * "diffusion": a `DiffusionRenderer` with `pipeline`, or with the pipeline `config.model` names, loaded from
      disk, from the Hugging Face cache, or downloaded on a connected machine.
    * "classic": the built-in stylizer (no weights; control maps are not used).
    * "auto": "diffusion" when its weights can be loaded, else "classic" with a warning that says what is
      missing and how to fetch it.

    Raises:
        WeightsNotFoundError: "diffusion" while a hub id is neither cached nor downloadable (offline); the
            message names what is missing, where it looked and the command that fetches it.
        ConfigError: a `pipeline` given together with "classic".
    """
    name = renderer_name(config, pipeline)
    if name == "classic":
        if config.model.renderer == "auto":
            from rerender.weights import describe_missing

            logger.warning(
                "%s. Rendering keyframes with the built-in classic stylizer instead (--renderer auto).",
                describe_missing(config, missing_default_weights(config)),
            )
        _warn_unused_control_maps(config)
        return ClassicRenderer(config.prompt.prompt)
    if pipeline is not None:
        return DiffusionRenderer(pipeline, config, estimator, control_maps)
    check_diffusion_weights(config)  # "diffusion" raises here when its weights cannot be loaded
    return DiffusionRenderer.from_config(config, estimator, control_maps)


def renderer_name(config: RerenderConfig, pipeline=None) -> str:
    """The `name` of the renderer `choose_renderer(config, pipeline)` returns, found without loading anything:
    "classic" or "diffusion" ("auto" is "classic" when the diffusion weights cannot be loaded here: a cache lookup).

    Raises:
        ConfigError: a `pipeline` given together with "classic".
    """
    from rerender.errors import ConfigError

    choice = config.model.renderer
    if choice == "classic" and pipeline is not None:
        raise ConfigError("`renderer` is 'classic' but a diffusion `pipeline` was given; pass one or the other")
    if choice == "classic":
        return "classic"
    if pipeline is not None or choice == "diffusion":
        return "diffusion"
    return "classic" if missing_default_weights(config) else "diffusion"


def check_diffusion_weights(config: RerenderConfig, controls: Sequence[ControlConfig] | None = None) -> None:
    """Raise `WeightsNotFoundError` when `config.model.renderer` is "diffusion" and its weights cannot be loaded
    (`controls`: the ControlNets the run loads; None = `config.control`).

    Cheap (looks at the cache, at most one connection attempt), so `translate` calls it before decoding anything.
    """
    from rerender.errors import WeightsNotFoundError

    if config.model.renderer != "diffusion":
        return
    missing = missing_default_weights(config, controls)
    if missing:
        from rerender.weights import describe_missing

        raise WeightsNotFoundError(
            f"{describe_missing(config, missing)}; or ask for the built-in classic stylizer with renderer='classic' "
            "(CLI: --renderer classic)"
        )


def _warn_unused_control_maps(config: RerenderConfig) -> None:
    maps = [control.maps for control in config.control if control.maps]
    if maps:
        logger.warning("the classic stylizer does not use control maps; %s ignored", ", ".join(map(repr, maps)))


def missing_default_weights(config: RerenderConfig, controls: Sequence[ControlConfig] | None = None) -> list:
    """The keyframe weights `config` names that cannot be loaded here and now (see `rerender.weights.missing_weights`).

    A hub id is missing only when it is not cached and the hub cannot be used (``HF_HUB_OFFLINE``, no network);
    on a connected machine it is downloaded when loaded, as diffusers' `from_pretrained` does.

    Returns:
        `rerender.weights.WeightSource` records, empty when diffusion can run.
    """
    from rerender.weights import missing_weights

    return missing_weights(config, controls)
