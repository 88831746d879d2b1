"""`rerender ui`: the three-stage workflow (first keyframe → keyframes → propagation) in the browser (Gradio).

Two more modes sit beside the video: "Still image" (`rerender.animate`: a camera move, then translation) and
"Text only" (`rerender.generate`: Text2Video-Zero keyframes, optionally with background smoothing); a reference
image (IP-Adapter, `prompt.style_image`) applies to all three.

The page is a thin layer over the library: every video run is `rerender.translate` on a per-session workspace
(`rerender.workflow.workspace`), with the page's settings applied to a `RerenderConfig` by `apply_overrides` (so
invalid values give the config's own messages), progress from `translate`'s callback, "Cancel" through its
`cancel` event, and the figures of `rerender.evaluation` afterwards. Help texts are the config fields' own
docstrings, read from `rerender/config.py`. Nothing on the page waits on the network: system fonts only,
no analytics, no share link unless asked for.

Example:
    >>> from rerender.ui import build_app
    >>> app = build_app()                                # doctest: +SKIP
    >>> app.launch(server_name="127.0.0.1")             # doctest: +SKIP
"""

# No `from __future__ import annotations`: Gradio finds `gr.Request` parameters by their evaluated annotations.

import ast
import atexit
import dataclasses
import functools
import inspect
import logging
import os
import queue
import random
import re
import shutil
import tempfile
import textwrap
import threading
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import rerender.config as config_module
from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import CancelledError, ConfigError, MissingDependencyError, RerenderError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home

logger = logging.getLogger(__name__)

__all__ = ["DEMO_VIDEO", "FieldSpec", "field_docstrings", "field_spec", "sanitize_filename", "UiSessions", "build_app", "launch"]

DEMO_VIDEO = Path(__file__).resolve().parent / "assets" / "demo.mp4"
"""The bundled demo clip (see `rerender/assets/README.md`)."""

DEFAULT_MAX_UPLOAD_MB = 500
"""Largest accepted upload, in MiB."""

MODEL_FIELDS = ("model.base_model", "model.vae", "control.type", "control.model", "control.strength")
MAIN_FIELDS = (
    "keyframes.keyframe_interval", "keyframes.keyframe_mode", "keyframes.keyframe_indices",
    "sampling.denoising_strength", "sampling.num_inference_steps", "sampling.guidance_scale", "video.resolution",
)
ADVANCED_GROUPS: dict[str, tuple[str, ...]] = {
    "Cross-frame constraints": (
        "constraints.cross_frame_attention_period", "constraints.loose_cross_frame_attention",
        "constraints.style_update_interval", "constraints.shape_fusion_period", "constraints.pixel_fusion_period",
        "constraints.adain_period", "constraints.mask_strength", "constraints.inner_strength",
        "constraints.smooth_boundary", "constraints.fidelity_encoding", "constraints.fidelity_threshold",
        "constraints.color_preserve", "sampling.same_noise_per_keyframe",
    ),
    "FreeU": ("constraints.freeu", "constraints.freeu.b1", "constraints.freeu.b2", "constraints.freeu.s1", "constraints.freeu.s2"),
    "Refinement": ("sampling.refinement", "sampling.refinement.refinement_strength", "sampling.refinement.refinement_steps"),
    "Propagation": ("propagation.propagation_preset", "propagation.blend_mode", "propagation.workers", "flow.flow_estimator", "flow.dis_preset"),
    "Prompt language": ("prompt.prompt_language", "prompt.translation_model"),
    "Frames and output": ("video.start_frame", "video.end_frame", "video.frame_stride", "video.resize_side", "video.size_multiple", "prompt.added_prompt", "output.crf"),
}
"""The "Advanced" accordion: the config fields each group shows (a group's optional section first)."""

SLIDERS: dict[str, tuple[float, float, float]] = {
    "keyframes.keyframe_interval": (1, 50, 1),
    "sampling.denoising_strength": (0.0, 1.0, 0.05),
    "sampling.num_inference_steps": (1, 100, 1),
    "sampling.guidance_scale": (1.0, 20.0, 0.5),
    "video.resolution": (64, 1024, 16),
    "control.strength": (0.0, 2.0, 0.05),
    "prompt.style_image_scale": (0.0, 2.0, 0.05),
}
"""Fields shown as sliders: (minimum, maximum, step) of the slider only; the config still validates the value."""

STYLE_FIELDS = ("prompt.style_image_scale", "model.ip_adapter", "model.ip_adapter_weight_name")
"""The reference image's settings, beside its upload."""

STILL_MOTIONS = ("zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down")
"""The camera moves the "Still image" mode offers (orbit needs a depth map and path a keyframed path: CLI and API)."""

RENDERERS = ("auto", "diffusion", "classic")
STAGE_BUTTONS = (("first", "First keyframe"), ("keyframes", "Keyframes"), ("propagate", "Propagate"), ("all", "Run all"))


# --------------------------------------------------------------------------------------------------------
# config fields: types, defaults and docstrings (one source of truth: rerender/config.py)
# --------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def field_docstrings(cls: type) -> dict[str, str]:
    """The docstring under each field of a config dataclass, read from its source (the string literal after the field).

    Returns:
        field name → its docstring with whitespace collapsed.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for statement, following in zip(body, body[1:]):
        if (
            isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


@dataclass(frozen=True)
class FieldSpec:
    """One config field as the page shows it."""

    path: str
    """Dotted path (`sampling.denoising_strength`); `control.x` sets every ControlNet."""
    owner: type
    """The dataclass that declares the field."""
    name: str
    """The field's name."""
    annotation: Any
    """Its resolved type."""
    default: Any
    """Its default value (for `control.x`, that of the first default ControlNet)."""
    doc: str
    """Its docstring."""

    @property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.annotation)

    @property
    def base(self) -> Any:
        """The annotation without `None`."""
        arguments = [argument for argument in typing.get_args(self.annotation) if argument is not type(None)]
        if self.optional and len(arguments) == 1:
            return arguments[0]
        return self.annotation

    @property
    def label(self) -> str:
        words = self.name.replace("_", " ").capitalize().replace("Vae", "VAE").replace("Dis ", "DIS ").replace("Cfg", "CFG")
        return f"ControlNet {words.lower()}" if self.owner is config_module.ControlConfig else words


def field_spec(path: str) -> FieldSpec:
    """Resolve a dotted config path to its declaring dataclass, type, default and docstring.

    Raises:
        ConfigError: `path` names no config field.
    """
    owner, default_node = RerenderConfig, RerenderConfig()
    parts = path.split(".")
    for depth, part in enumerate(parts):
        hints = typing.get_type_hints(owner)
        if part not in hints:
            raise ConfigError(f"unknown option `{path}`")
        annotation = hints[part]
        value = getattr(default_node, part) if default_node is not None else None
        if depth == len(parts) - 1:
            return FieldSpec(path, owner, part, annotation, value, field_docstrings(owner).get(part, ""))
        if part == "control":  # a tuple of ControlConfig: `control.x` addresses every ControlNet
            owner, default_node = config_module.ControlConfig, (value[0] if value else config_module.ControlConfig())
            continue
        nested = config_module._dataclass_of(annotation)
        if nested is None:
            raise ConfigError(f"unknown option `{path}`")
        owner, default_node = nested, value if value is not None else nested()
    raise ConfigError(f"unknown option `{path}`")


def _text_of(value: Any) -> str:
    """A field value as the text box shows it: tuples as `0.5, 0.8`, `None` as empty."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(str(item) for item in value)
    return str(value)


def _value_of(spec: FieldSpec, raw: Any) -> Any:
    """A component's value as the config expects it (the config itself validates it)."""
    import yaml

    if isinstance(raw, str):
        text = raw.strip()
        if text == "" or text.lower() in ("none", "off", "null"):
            return None if spec.optional else text
        if typing.get_origin(spec.base) is tuple:
            try:
                return yaml.safe_load(f"[{text}]")
            except yaml.YAMLError:
                raise ConfigError(f"`{spec.path}` must be numbers separated by commas, got {raw!r}") from None
        return text
    if raw is None:
        return None
    if spec.base is int and isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return raw


# --------------------------------------------------------------------------------------------------------
# sessions: one workspace per browser session, sanitized uploads, cancel events
# --------------------------------------------------------------------------------------------------------


def sanitize_filename(name: str, fallback: str = "upload") -> str:
    """A safe file name from an uploaded one: its last path component, ASCII letters, digits, `._-` only.

    >>> sanitize_filename("../../etc/passwd"), sanitize_filename("C:\\\\a b\\\\clip (1).MP4"), sanitize_filename("..")
    ('passwd', 'clip__1_.MP4', 'upload')
    """
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    cleaned = cleaned[-120:]
    return cleaned if cleaned.strip("._-") else fallback


@dataclass
class UiSession:
    """One browser session's folder, input and run state."""

    root: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    video: Path | None = None
    """The session's copy of the input video."""
    source_name: str = ""
    """The input's sanitized original name."""
    keyframes: list[int] = field(default_factory=list)
    """The keyframe indices of the last run."""

    @property
    def workspace(self) -> Path:
        return self.root / "work"

    @property
    def output(self) -> Path:
        return self.root / "result.mp4"


class UiSessions:
    """The sessions of one running page: each gets a folder under `root`, removed when the browser leaves."""

    def __init__(self, root: str | os.PathLike | None = None, max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB) -> None:
        if root is None:  # our own temporary folder: removed when the process ends
            root = tempfile.mkdtemp(prefix="rerender-ui-")
            atexit.register(shutil.rmtree, root, ignore_errors=True)
        self.root = Path(root)
        self.max_upload_bytes = int(max_upload_mb) << 20
        self._sessions: dict[str, UiSession] = {}
        self._lock = threading.Lock()
        self._pipeline: tuple[str, Any] | None = None  # (key, loaded pipeline): reused while the model is unchanged

    def get(self, session_id: str) -> UiSession:
        name = sanitize_filename(session_id or "default", "default")
        with self._lock:
            if name not in self._sessions:
                folder = self.root / name
                folder.mkdir(parents=True, exist_ok=True)
                self._sessions[name] = UiSession(folder)
            return self._sessions[name]

    def close(self, session_id: str) -> None:
        name = sanitize_filename(session_id or "default", "default")
        with self._lock:
            session = self._sessions.pop(name, None)
        if session is not None:
            session.cancel.set()
            shutil.rmtree(session.root, ignore_errors=True)

    def take_upload(self, session: UiSession, uploaded: str | os.PathLike, original_name: str | None = None) -> Path:
        """Copy an uploaded file into the session under a sanitized name (never the client's raw name).

        Raises:
            ConfigError: the file is larger than the upload limit.
            InputNotFoundError: the upload is gone.
        """
        source = self._checked_upload(uploaded, original_name)
        name = sanitize_filename(original_name or source.name, "input.mp4")
        folder = session.root / "input"
        for old in (folder, session.workspace):  # a new video: the session's earlier work is for another one
            if old.is_dir():
                shutil.rmtree(old)
        folder.mkdir()
        target = folder / name
        shutil.copyfile(source, target)
        session.video, session.source_name = target, name
        return target

    def _checked_upload(self, uploaded: str | os.PathLike, original_name: str | None) -> Path:
        from rerender.errors import InputNotFoundError

        source = Path(uploaded)
        if not source.is_file():
            raise InputNotFoundError(f"the uploaded file {source.name!r} is gone; upload it again")
        size = source.stat().st_size
        if size > self.max_upload_bytes:
            raise ConfigError(
                f"the upload {sanitize_filename(original_name or source.name)!r} is {size / 2**20:.0f} MiB; "
                f"the limit is {self.max_upload_bytes >> 20} MiB (rerender ui --max-upload-mb)"
            )
        return source

    def take_image(self, session: UiSession, uploaded: str | os.PathLike | None, kind: str) -> Path | None:
        """Copy an uploaded image (the style image, the still) into the session's `kind` folder under a sanitized
        name, replacing the previous one of that kind; None passes through.

        Raises:
            ConfigError: the file is larger than the upload limit.
            InputNotFoundError: the upload is gone.
        """
        if not uploaded:
            return None
        source = self._checked_upload(uploaded, None)
        folder = session.root / sanitize_filename(kind, "image")
        if folder.is_dir():
            shutil.rmtree(folder)
        folder.mkdir()
        target = folder / sanitize_filename(source.name, "image.png")
        shutil.copyfile(source, target)
        return target

    def pipeline_for(self, config: RerenderConfig) -> Any:
        """The diffusion pipeline for `config.model` and `config.control`, loaded once and kept while they stay."""
        from rerender.config import config_hash
        from rerender.diffusion.loading import load_pipeline

        key = config_hash(config, ("model", "control"))
        if self._pipeline is None or self._pipeline[0] != key:
            self._pipeline = None  # free the old one first
            pipeline = load_pipeline(config.model, config.control)
            pipeline.set_progress_bar_config(disable=True)
            self._pipeline = (key, pipeline)
        return self._pipeline[1]


# --------------------------------------------------------------------------------------------------------
# what the page shows
# --------------------------------------------------------------------------------------------------------


def video_summary(path: str | os.PathLike, name: str | None = None) -> str:
    """Markdown: what the reader sees of a video (size, fps, frames, duration, audio, rotation)."""
    from rerender.video import probe_video

    info = probe_video(path)
    rotation = f"{info.rotation}° (applied)" if info.rotation else "none"
    rows = [
        ("Size", f"{info.width} × {info.height}"),
        ("Frame rate", f"{float(info.fps):.3g} fps" + (" (variable)" if info.variable_frame_rate else "")),
        ("Frames", f"{info.frame_count} ({info.duration:.2f} s)"),
        ("Audio", info.audio_codec or "yes" if info.has_audio else "none"),
        ("Rotation", rotation),
    ]
    return f"| Input | {name or Path(path).name} |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows)


def environment_status(config: RerenderConfig | None = None) -> str:
    """Markdown: whether diffusion weights are present for `config.model`, else the classic fallback."""
    from rerender.environment import weight_search_paths
    from rerender.workflow.renderers import missing_default_weights

    config = config or RerenderConfig()
    from rerender.weights import describe_missing

    missing = missing_default_weights(config)
    where = weight_search_paths()
    if missing:
        return (
            "**No diffusion weights here.** The *auto* renderer uses the built-in **classic** stylizer instead "
            "(no weights needed; choose *classic* to say so). For diffusion keyframes, set *Base model* to a local "
            "diffusers folder or `.safetensors` file.\n\n<details><summary>What is missing and how to fetch it"
            f"</summary>\n\n{describe_missing(config, missing)}.\n\n</details>"
        )
    return f"**Diffusion weights:** `{config.model.base_model}` (looked for in `{where['huggingface_hub_cache']}`)."


def evaluation_markdown(report: dict[str, Any]) -> str:
    """Markdown table of a `rerender.evaluation.evaluate_video` report, saying why CLIP is missing if it is."""
    names = {
        "warp_error": "Warp error (output)", "source_warp_error": "Warp error (source)",
        "warp_error_excess": "Warp error excess", "flicker": "Flicker (0–255)", "frames": "Frames compared",
    }
    rows = [(names.get(key, key.replace("_", " ").capitalize()), value) for key, value in report.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)]
    lines = ["| Figure | Value |", "|---|---|"] + [f"| {name} | {value:.5g} |" for name, value in rows]
    clip = report.get("clip")
    if isinstance(clip, dict) and "skipped" in clip:
        lines.append(f"\n**CLIP scores not computed:** {clip['skipped']}")
    elif isinstance(clip, dict):
        lines += [f"| CLIP {key.replace('_', ' ')} | {value:.4g} |" for key, value in clip.items() if isinstance(value, (int, float))]
    if report.get("note"):
        lines.append(f"\n_{report['note']}_")
    return "\n".join(lines)


def evaluate_result(output: Path, source: Path, config: RerenderConfig, clip_model: str | None) -> str:
    from rerender.evaluation import evaluate_video

    report = evaluate_video(
        output, source, prompt=config.prompt.prompt or None, clip_model=clip_model,
        start_frame=config.video.start_frame, frame_stride=config.video.frame_stride,
    )
    if not clip_model:
        report["clip"] = {"skipped": "CLIP scoring is off (rerender ui --no-clip)"}
    elif not config.prompt.prompt and "clip" not in report:
        report["clip"] = {"skipped": "no prompt to score"}
    return evaluation_markdown(report)


def friendly_error(error: BaseException) -> str:
    """The one-line message the page shows for an error (never a traceback)."""
    if isinstance(error, (RerenderError, ValueError, FileNotFoundError, PermissionError, ImportError)):
        return str(error)
    return f"{type(error).__name__}: {error} (details are in the server log)"


# --------------------------------------------------------------------------------------------------------
# running a stage
# --------------------------------------------------------------------------------------------------------


@dataclass
class RunRequest:
    """Everything one button press needs, taken from the page's components."""

    stage: str
    renderer: str
    settings: dict[str, Any]
    """Config path → component value (converted and validated by the config)."""
    loras: list[str] = field(default_factory=list)
    lora_scales: str = ""
    seed: int | None = 0


def build_config(request: RunRequest, base: RerenderConfig | None = None) -> RerenderConfig:
    """The page's settings applied to `base` (default: the defaults), with the config's own errors for invalid values.

    Raises:
        ConfigError: an invalid value, with the config's own message.
    """
    overrides: dict[str, Any] = {}
    for path, raw in request.settings.items():
        spec = field_spec(path)
        if dataclasses.is_dataclass(config_module._dataclass_of(spec.annotation)):  # an optional section's switch
            if not raw:
                overrides[path] = None
            continue
        value = _value_of(spec, raw)
        parent = path.rpartition(".")[0]
        if parent in request.settings and not request.settings[parent]:
            continue  # the section is switched off
        overrides[path] = value
    if request.seed is not None:
        overrides["sampling.seed"] = int(request.seed)
    if request.loras:
        scales = [item.strip() for item in request.lora_scales.split(",") if item.strip()]
        loras = []
        for position, path in enumerate(request.loras):
            try:
                scale = float(scales[position]) if position < len(scales) else 1.0
            except ValueError:
                raise ConfigError(f"LoRA scales must be numbers separated by commas, got {request.lora_scales!r}") from None
            loras.append({"path": str(path), "scale": scale})
        overrides["model.loras"] = loras
    return apply_overrides(base or RerenderConfig(), overrides)


def renderer_argument(choice: str, config: RerenderConfig, sessions: UiSessions) -> dict[str, Any]:
    """`translate` keyword arguments for the page's renderer choice ("auto", "diffusion" or "classic")."""
    from rerender.workflow.renderers import missing_default_weights

    if choice not in RENDERERS:
        raise ConfigError(f"`renderer` must be one of {', '.join(RENDERERS)}, got {choice!r}")
    if choice == "classic" or (choice == "auto" and missing_default_weights(config)):
        return {"renderer": choice}  # "auto" falls back to the classic stylizer, saying why
    return {"renderer": choice, "pipeline": sessions.pipeline_for(config)}  # loaded once, kept while the model stays


def run_stage(
    sessions: UiSessions, session: UiSession, request: RunRequest, events: "queue.Queue[tuple]",
    base: RerenderConfig | None = None,
) -> dict[str, Any]:
    """Run one button's stage with `translate` on the session's workspace; progress goes to `events`.

    Returns:
        "result" (the `TranslationResult`), "config".
    """
    from rerender.workflow.translation import translate

    if session.video is None:
        raise ConfigError("no input video: upload one or press “Use the demo clip”")
    config = build_config(request, base)
    if not config.prompt.prompt.strip():
        raise ConfigError("`prompt` is empty: describe what the result should look like")
    session.cancel.clear()
    stage = request.stage
    kwargs = renderer_argument(request.renderer, config, sessions)
    result = translate(
        session.video, config=config, output=session.output if stage in ("all", "propagate") else None,
        workspace=session.workspace, stage=stage, comparison=stage in ("all", "propagate"),
        progress=False, callback=lambda name, done, total: events.put(("progress", name, done, total)),
        cancel=session.cancel, **kwargs,
    )
    session.keyframes = list(result.keyframe_indices)
    return {"result": result, "config": config}


@dataclass
class StillRequest:
    """The "Still image" mode's inputs (`rerender.animate`)."""

    image: str | None
    """The uploaded still."""
    motion: str = "zoom-in"
    seconds: float = 4.0
    fps: float = 25.0
    amount: float | None = None
    """How far the move goes; None = the move's default."""


@dataclass
class TextRequest:
    """The "Text only" mode's inputs (`rerender.generate`)."""

    frames: int = 16
    size: tuple[int, int] = (512, 512)
    motion: tuple[float, float] = (2.0, 0.0)
    fps: float = 8.0
    smoothing: float | None = None
    """Background smoothing strength α, or None = off."""


def run_animate(
    sessions: UiSessions, session: UiSession, request: RunRequest, still: StillRequest, events: "queue.Queue[tuple]",
    base: RerenderConfig | None = None,
) -> dict[str, Any]:
    """The "Still image" mode: `rerender.animate` on the session's still, with the page's settings.

    Returns:
        "result" (the `AnimationResult`), "config".
    """
    from rerender.workflow.animation import animate

    config = build_config(request, base)
    if not config.prompt.prompt.strip():
        raise ConfigError("`prompt` is empty: describe what the result should look like")
    image = sessions.take_image(session, still.image, "still")
    if image is None:
        raise ConfigError("no still image: upload one in the “Still image” tab")
    session.cancel.clear()
    result = animate(
        image, motion=still.motion, seconds=float(still.seconds), fps=float(still.fps), output=session.root / "animated.mp4",
        config=config, amount=still.amount, workspace=session.root / "animate-work", progress=False, force=False,
        callback=lambda name, done, total: events.put(("progress", name, done, total)),
        **renderer_argument(request.renderer, config, sessions),
    )
    return {"result": result, "config": config}


def run_generate(
    sessions: UiSessions, session: UiSession, request: RunRequest, text: TextRequest, base: RerenderConfig | None = None,
) -> dict[str, Any]:
    """The "Text only" mode: `rerender.generate` with the page's prompt, model, sampling and style image.

    Returns:
        "result" (the `GenerationResult`), "config", "keyframes" (the keyframe image files, for the gallery).
    """
    from rerender.workflow.generation import BackgroundSmoothing, generate
    from rerender.video import write_image

    config = build_config(request, base)
    if not config.prompt.prompt.strip():
        raise ConfigError("`prompt` is empty: describe what the video should show")
    if request.renderer == "classic":  # else the message would be about diffusion weights the user did not choose
        raise ConfigError("“Text only” needs the diffusion renderer: the classic stylizer restyles a video's frames, "
                          "and here there are none; choose diffusion (or auto)")
    smoothing = None if text.smoothing is None else BackgroundSmoothing(strength=float(text.smoothing))
    frames = int(text.frames) if isinstance(text.frames, (int, float)) and float(text.frames).is_integer() else text.frames
    size = tuple(int(value) if isinstance(value, (int, float)) and float(value).is_integer() else value for value in text.size)
    from rerender.workflow.generation import check_generate_inputs

    check_generate_inputs(config.prompt.prompt, frames, config.keyframes.keyframe_interval, text.motion, size)  # before loading
    result = generate(
        config.prompt.prompt, frames=frames, K=config.keyframes.keyframe_interval, output=session.root / "generated.mp4",
        pipeline=sessions.pipeline_for(config), motion=tuple(text.motion), size=size, fps=float(text.fps),
        negative_prompt=config.prompt.negative_prompt, num_inference_steps=config.sampling.num_inference_steps,
        guidance_scale=config.sampling.guidance_scale, seed=config.sampling.seed or 0, config=config, progress=False,
        background_smoothing=smoothing,
    )
    folder = session.root / "generated-keyframes"
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir()
    keyframes = []
    for index, image in zip(result.keyframe_indices, result.keyframes):
        keyframes.append(folder / f"{index:04d}.png")
        write_image(image, keyframes[-1])
    return {"result": result, "config": config, "keyframes": keyframes}


# --------------------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------------------

CSS = """
.gradio-container {max-width: 1500px !important; margin: auto;}
#rr-header h1 {margin-bottom: 0; font-size: 1.7rem;}
#rr-header p {margin-top: .2rem; opacity: .8;}
#rr-status {min-height: 2.2rem;}
.rr-stage-buttons button {min-height: 2.8rem;}
"""


def config_value(config: RerenderConfig, path: str) -> Any:
    """The value at a dotted path of `config` (`control.x`: the first ControlNet's)."""
    node: Any = config
    for part in path.split("."):
        if node is None:
            return None
        node = getattr(node, part)
        if part == "control":
            node = node[0] if node else None
    return node


def _component_for(spec: FieldSpec, gr: Any, default: Any) -> Any:
    """A Gradio component for a config field, labelled by its name, with its docstring as help text."""
    info = spec.doc or None
    if dataclasses.is_dataclass(config_module._dataclass_of(spec.annotation)):  # an optional section: a switch
        return gr.Checkbox(label=f"Use {spec.label.lower()}", value=default is not None, info=info)
    base = spec.base
    if base is bool:
        return gr.Checkbox(label=spec.label, value=bool(default), info=info)
    if typing.get_origin(base) is typing.Literal:
        choices = [str(choice) for choice in typing.get_args(base)]
        if spec.optional:
            choices = ["(default)"] + choices
        return gr.Dropdown(choices=choices, value=default if default is not None else "(default)", label=spec.label, info=info)
    if spec.path in SLIDERS:
        low, high, step = SLIDERS[spec.path]
        return gr.Slider(low, high, value=default, step=step, label=spec.label, info=info)
    if base in (int, float):
        return gr.Number(value=default, label=spec.label, info=info, precision=0 if base is int else None)
    return gr.Textbox(value=_text_of(default), label=spec.label, info=info, placeholder="empty = off" if spec.optional else None)


def _raw_setting(spec: FieldSpec, value: Any) -> Any:
    return None if value == "(default)" else value


def build_app(
    sessions: UiSessions | None = None, clip_model: str | None = None, *, defaults: RerenderConfig | None = None,
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB,
) -> Any:
    """Build the Gradio Blocks page (not launched).

    Args:
        sessions: where session workspaces live; default a new temporary folder.
        clip_model: CLIP model for the evaluation figures (a local folder or cached hub id); `None` = the
            default model if it is cached (figures say why CLIP is missing otherwise).
        defaults: the settings the page starts from (and the options it does not show); default the defaults.
        max_upload_mb: largest accepted upload.

    Raises:
        MissingDependencyError: Gradio is not installed (`pip install "rerender[ui]"`).
    """
    try:
        import gradio as gr
    except ImportError:
        raise MissingDependencyError('the web UI needs Gradio: pip install "rerender[ui]"') from None
    from rerender.evaluation import DEFAULT_CLIP_MODEL
    from rerender.workflow.generation import BackgroundSmoothing

    sessions = sessions or UiSessions(max_upload_mb=max_upload_mb)
    defaults = defaults or RerenderConfig()
    clip = clip_model if clip_model is not None else DEFAULT_CLIP_MODEL
    setting_paths: list[str] = []
    setting_components: list[Any] = []

    def add(path: str) -> Any:
        component = _component_for(field_spec(path), gr, config_value(defaults, path))
        setting_paths.append(path)
        setting_components.append(component)
        return component

    with gr.Blocks(title="Rerender A Video", analytics_enabled=False) as app:
        with gr.Row(elem_id="rr-header"):
            gr.Markdown(
                "# Rerender A Video\nRestyle a video from a prompt: render the **first keyframe** to tune the look, "
                "then the **keyframes**, then **propagate** them to every frame. Each step reuses the last one's work."
            )
        with gr.Row(equal_height=False):
            # ---------------------------------------------------------------- left: input and settings
            with gr.Column(scale=5, min_width=380):
                with gr.Tabs(selected="video", elem_id="rr-modes"):
                    with gr.Tab("Video", id="video") as video_mode:
                        with gr.Group():
                            video = gr.Video(label="Input video", sources=["upload"], height=260, elem_id="rr-input")
                            with gr.Row():
                                demo = gr.Button("Use the demo clip", size="sm", variant="secondary")
                        summary = gr.Markdown("Upload a video or use the demo clip.", elem_id="rr-summary")
                    with gr.Tab("Still image", id="still") as still_mode:  # rerender.animate
                        still = gr.Image(label="Still image", type="filepath", sources=["upload"], height=220, elem_id="rr-still")
                        with gr.Row():
                            still_motion = gr.Dropdown(list(STILL_MOTIONS), value="zoom-in", label="Camera move",
                                                       info="The move the clip is made with; its optical flow is exact")
                            still_amount = gr.Number(value=None, label="Amount", info="How far the move goes (empty = the move's default)")
                        with gr.Row():
                            still_seconds = gr.Number(value=4.0, label="Seconds", info="Length of the clip")
                            still_fps = gr.Number(value=25.0, label="Frame rate", info="Frames per second")
                    with gr.Tab("Text only", id="text") as text_mode:  # rerender.generate
                        gr.Markdown("Text2Video-Zero keyframes every K frames (Main settings), propagated in between; "
                                    "needs the diffusion model.")
                        with gr.Row():
                            text_frames = gr.Number(value=16, precision=0, label="Frames", info="Frames in the video")
                            text_fps = gr.Number(value=8.0, label="Frame rate", info="Frames per second")
                        with gr.Row():
                            text_width = gr.Number(value=512, precision=0, label="Width", info="Pixels, a multiple of 8")
                            text_height = gr.Number(value=512, precision=0, label="Height", info="Pixels, a multiple of 8")
                        with gr.Row():
                            text_dx = gr.Number(value=2.0, label="Motion right", info="Pixels per frame the scene moves right")
                            text_dy = gr.Number(value=0.0, label="Motion down", info="Pixels per frame the scene moves down")
                        with gr.Row():
                            smoothing_docs = field_docstrings(BackgroundSmoothing)
                            text_smoothing = gr.Checkbox(value=False, label="Background smoothing",
                                                         info="Text2Video-Zero §3.3: each keyframe's background is pulled "
                                                              "towards the anchor's, moved by the same motion")
                            text_strength = gr.Slider(0.0, 1.0, value=BackgroundSmoothing().strength, step=0.05,
                                                      label="Smoothing strength", info=smoothing_docs["strength"])
                prompt = gr.Textbox(label="Prompt", lines=2, value=defaults.prompt.prompt, placeholder="a cartoon, flat colours, thick outlines",
                                    info=field_docstrings(config_module.PromptConfig)["prompt"])
                negative = gr.Textbox(label="Negative prompt", value=defaults.prompt.negative_prompt, lines=1,
                                      info=field_docstrings(config_module.PromptConfig)["negative_prompt"])
                with gr.Row():
                    seed = gr.Number(label="Seed", value=defaults.sampling.seed, precision=0, scale=4,
                                     info=field_docstrings(config_module.SamplingConfig)["seed"])
                    dice = gr.Button("Random seed", scale=2, min_width=90, elem_id="rr-dice", size="sm")
                with gr.Accordion("Reference image (IP-Adapter)", open=False):
                    style = gr.Image(label="Style image", type="filepath", sources=["upload"], height=160, elem_id="rr-style")
                    for path in STYLE_FIELDS:
                        add(path)
                with gr.Tab("Main settings"):
                    renderer = gr.Radio(list(RENDERERS), value="auto", label="Keyframe renderer",
                                        info=field_docstrings(config_module.ModelConfig)["renderer"])
                    for path in MAIN_FIELDS:
                        add(path)
                with gr.Tab("Model"):
                    environment = gr.Markdown(environment_status(defaults), elem_id="rr-environment")
                    for path in MODEL_FIELDS:
                        add(path)
                    loras = gr.File(label="LoRA files (.safetensors)", file_count="multiple", file_types=[".safetensors"])
                    lora_scales = gr.Textbox(label="LoRA scales", placeholder="0.8, 0.5 (one per file; default 1)",
                                             info=field_docstrings(config_module.LoraConfig)["scale"])
                with gr.Accordion("Advanced", open=False):
                    for group, paths in ADVANCED_GROUPS.items():
                        with gr.Tab(group):
                            for path in paths:
                                add(path)
            # ---------------------------------------------------------------- right: stages and results
            with gr.Column(scale=7, min_width=480):
                with gr.Row(elem_classes="rr-stage-buttons") as stage_row:
                    buttons = {stage: gr.Button(label, variant="primary" if stage == "all" else "secondary", min_width=110)
                               for stage, label in STAGE_BUTTONS}
                    cancel = gr.Button("Cancel", variant="stop", min_width=90, scale=0)
                with gr.Row(elem_classes="rr-stage-buttons", visible=False) as still_row:
                    animate_button = gr.Button("Animate the still", variant="primary", elem_id="rr-animate")
                with gr.Row(elem_classes="rr-stage-buttons", visible=False) as text_row:
                    generate_button = gr.Button("Generate from text", variant="primary", elem_id="rr-generate")
                status = gr.Markdown("", elem_id="rr-status")
                with gr.Tabs(selected="keyframes") as result_tabs:
                    with gr.Tab("Keyframes", id="keyframes"):
                        anchor = gr.Image(label="First keyframe (the anchor)", type="filepath", height=300, interactive=False)
                        gallery = gr.Gallery(label="Keyframes", columns=5, height=240, object_fit="contain")
                        with gr.Accordion("Retouch keyframes", open=False):
                            gr.Markdown("Download keyframes from the gallery, paint over them, and upload them back under "
                                        "their names (`0008.png` is frame 8) before pressing **Propagate**.")
                            retouched = gr.File(label="Retouched keyframes", file_count="multiple", file_types=["image"])
                            use_retouched = gr.Button("Use the retouched keyframes")
                    with gr.Tab("Result", id="result"):
                        result_video = gr.Video(label="Result", interactive=False, elem_id="rr-result", height=320)
                        comparison = gr.Video(label="Source | result", interactive=False, height=220)
                        download = gr.File(label="Download", interactive=False)
                    with gr.Tab("Figures", id="figures"):
                        figures = gr.Markdown("Temporal-consistency figures appear here after propagation.")

        # ------------------------------------------------------------------------------------ handlers
        def session_of(request: gr.Request) -> UiSession:
            return sessions.get(getattr(request, "session_hash", None) or "default")

        def on_video(path: str | None, request: gr.Request):
            session = session_of(request)
            if not path:
                session.video = None
                return "Upload a video or use the demo clip."
            try:
                staged = sessions.take_upload(session, path, Path(path).name)
                return video_summary(staged, session.source_name)
            except Exception as error:  # noqa: BLE001 - every failure is a message on the page
                session.video = None
                logger.info("rejected upload: %s", error)
                raise gr.Error(friendly_error(error), print_exception=False) from None

        def on_demo():
            return str(DEMO_VIDEO)

        def on_dice():
            return random.randint(0, 2**31 - 1)

        def on_environment(*values):
            try:
                settings = dict(zip(setting_paths, values))
                return environment_status(build_config(RunRequest("first", "auto", {
                    path: _raw_setting(field_spec(path), value) for path, value in settings.items()}), defaults))
            except Exception as error:  # noqa: BLE001
                return f"**Settings:** {friendly_error(error)}"

        def on_cancel(request: gr.Request):
            session_of(request).cancel.set()
            return "Cancelling at the next safe point…"

        def make_runner(stage: str):
            # Gradio inserts the request and progress tracker at their positions, before the page's inputs.
            def run(request: gr.Request, progress=gr.Progress(), *inputs):
                session = session_of(request)
                run_request = page_request(stage, session, inputs)
                yield from stream_run(session, run_request, progress)

            run.__name__ = f"run_{stage}"
            return run

        def page_request(stage: str, session: UiSession, inputs: tuple) -> RunRequest:
            """The shared inputs (prompt, seed, renderer, LoRAs, style image, settings) as a `RunRequest`."""
            prompt_text, negative_text, seed_value, renderer_choice, lora_files, scales, style_file, *values = inputs
            settings = {path: _raw_setting(field_spec(path), value) for path, value in zip(setting_paths, values)}
            settings["prompt.prompt"] = prompt_text or ""
            settings["prompt.negative_prompt"] = negative_text or ""
            settings["model.renderer"] = renderer_choice
            try:
                staged = sessions.take_image(session, style_file, "style")
            except Exception as error:  # noqa: BLE001 - a page message
                raise gr.Error(friendly_error(error), print_exception=False) from None
            settings["prompt.style_image"] = str(staged) if staged is not None else None
            return RunRequest(stage, renderer_choice, settings, [str(f) for f in (lora_files or [])],
                              scales or "", None if seed_value is None else int(seed_value))

        def run_in_thread(job, outcome: dict[str, Any]) -> Iterator[tuple]:
            """Run `job(events)` in a worker thread; yield its progress events `(kind, stage, done, total)` as they
            come, and once it ends leave its result, or the error it raised under "error", in `outcome`."""
            events: queue.Queue = queue.Queue()

            def work():
                try:
                    outcome.update(job(events))
                except BaseException as error:  # noqa: BLE001 - reported on the page
                    outcome["error"] = error
                finally:
                    events.put(("done",))

            worker = threading.Thread(target=work, name="rerender-ui-run", daemon=True)
            worker.start()
            while (event := events.get())[0] != "done":
                yield event
            worker.join()

        def raise_on_page(error: BaseException | None) -> None:
            if error is not None:
                if not isinstance(error, (RerenderError, ValueError, FileNotFoundError)):
                    logger.error("run failed", exc_info=error)
                raise gr.Error(friendly_error(error), print_exception=False)

        def threaded(job, progress) -> Iterator[dict[str, Any] | None]:
            """Run `job(events)` in a thread, passing its progress events to the page, then yield its outcome."""
            outcome: dict[str, Any] = {}
            for _, name, done, total in run_in_thread(job, outcome):
                progress(done / max(total, 1), desc=f"{name} {done}/{total}")
            raise_on_page(outcome.get("error"))
            yield outcome

        def run_still(request: gr.Request, progress=gr.Progress(), *inputs):
            still_file, motion_choice, amount_value, seconds_value, fps_value, *shared = inputs
            session = session_of(request)
            run_request = page_request("all", session, tuple(shared))
            still_request = StillRequest(still_file, motion_choice, seconds_value, fps_value,
                                         None if amount_value in (None, "") else float(amount_value))
            skip = gr.skip()
            yield ("Animating the still…", skip, skip, skip, skip, skip, skip, gr.Tabs(selected="keyframes"))
            for outcome in threaded(lambda events: run_animate(sessions, session, run_request, still_request, events, defaults), progress):
                result = outcome["result"]
                translation = result.translation
                folder = translation.workspace / "keyframes"
                items = [(str(folder / f"{index:04d}.png"), f"frame {index}") for index in translation.keyframe_indices]
                yield (f"Done: {translation.frame_count} frames from the still ({still_request.motion}), keyframes by the "
                       f"**{translation.renderer}** renderer.", items[0][0], items, str(translation.output),
                       None, str(translation.output), skip, gr.Tabs(selected="result"))

        def run_text(request: gr.Request, progress=gr.Progress(), *inputs):
            frames_value, fps_value, width_value, height_value, dx_value, dy_value, smoothing_on, strength, *shared = inputs
            session = session_of(request)
            run_request = page_request("all", session, tuple(shared))
            text_request = TextRequest(frames_value, (width_value, height_value), (dx_value, dy_value), fps_value,
                                       float(strength) if smoothing_on else None)
            skip = gr.skip()
            yield ("Generating from text…", skip, skip, skip, skip, skip, skip, gr.Tabs(selected="keyframes"))
            for outcome in threaded(lambda events: run_generate(sessions, session, run_request, text_request, defaults), progress):
                result = outcome["result"]
                items = [(str(path), f"frame {index}") for path, index in zip(outcome["keyframes"], result.keyframe_indices)]
                prompt_note = ""
                if result.prompt is not None and result.prompt.translator is not None:
                    prompt_note = f" Prompt read as “{result.prompt.english}” ({result.prompt.language} → en)."
                yield (f"Done: {result.frame_count} frames from text, keyframes {result.keyframe_indices}.{prompt_note}",
                       items[0][0], items, str(result.output), None, str(result.output), skip, gr.Tabs(selected="result"))

        def gallery_items(session: UiSession) -> list[tuple[str, str]]:
            folder = session.workspace / "keyframes"
            items = []
            for index in session.keyframes or sorted(int(p.stem) for p in folder.glob("[0-9][0-9][0-9][0-9].png")):
                path = folder / f"{index:04d}.png"
                if path.is_file():
                    items.append((str(path), f"frame {index}"))
            return items

        def stream_run(session: UiSession, run_request: RunRequest, progress) -> Iterator[tuple]:
            skip = gr.skip()
            outcome: dict[str, Any] = {}
            shown_keyframes = 0
            yield (f"Running **{run_request.stage}**…", skip, skip, skip, skip, skip, skip, gr.Tabs(selected="keyframes"))
            for _, name, done, total in run_in_thread(
                    lambda events: run_stage(sessions, session, run_request, events, defaults), outcome):
                progress(done / max(total, 1), desc=f"{name} {done}/{total}")
                if name == "keyframes":  # diffusion counts denoising steps: show the gallery as each keyframe lands
                    finished = sorted((session.workspace / "keyframes").glob("[0-9][0-9][0-9][0-9].png"))
                    if len(finished) != shown_keyframes:
                        shown_keyframes = len(finished)
                        items = [(str(path), f"frame {int(path.stem)}") for path in finished]
                        yield (f"Keyframes: {len(finished)} finished", str(finished[0]), items, skip, skip, skip, skip, skip)
            error = outcome.get("error")
            if isinstance(error, CancelledError):
                yield ("**Cancelled.** Finished work is kept; press the button again to resume.", skip, gallery_items(session), skip, skip, skip, skip, skip)
                return
            raise_on_page(error)
            result = outcome["result"]
            first = result.previews.get("first") or (session.workspace / "keyframes" / f"{result.keyframe_indices[0]:04d}.png")
            items = gallery_items(session)
            renderer_note = f"keyframes by the **{result.renderer}** renderer"
            if run_request.stage == "first":
                yield (f"First keyframe ready ({renderer_note}). Change the prompt and press it again, or go on.", str(first), items, skip, skip, skip, skip, skip)
                return
            if run_request.stage == "keyframes":
                yield (f"{len(result.keyframe_indices)} keyframes ready ({renderer_note}).", str(first), items, skip, skip, skip, skip, skip)
                return
            progress(1.0, desc="figures")
            try:
                report = evaluate_result(result.output, session.video, outcome["config"], clip)
            except Exception as error:  # noqa: BLE001 - figures are extra: say why they are missing
                report = f"Figures could not be computed: {friendly_error(error)}"
            seconds = sum(result.timings.values())
            done_text = (f"Done: {result.frame_count} frames, {renderer_note}"
                         + (f", reused {', '.join(result.reused)}" if result.reused else "") + f" ({seconds:.1f} s).")
            yield (done_text, str(first), items, str(result.output), str(result.previews.get("comparison", "")) or None,
                   str(result.output), report, gr.Tabs(selected="result"))

        def on_retouched(files, request: gr.Request):
            session = session_of(request)
            try:
                count = use_retouched_keyframes(session, [str(f) for f in (files or [])])
            except Exception as error:  # noqa: BLE001
                raise gr.Error(friendly_error(error), print_exception=False) from None
            return f"Replaced {count} keyframe(s); press **Propagate**.", gallery_items(session)

        # ------------------------------------------------------------------------------------ wiring
        video.change(on_video, video, summary, api_name="summary", concurrency_limit=None)
        demo.click(on_demo, None, video, api_name="demo", concurrency_limit=None)
        dice.click(on_dice, None, seed, api_name=False, concurrency_limit=None)
        model_components = [setting_components[setting_paths.index(path)] for path in MODEL_FIELDS]
        for component in model_components:
            component.change(on_environment, setting_components, environment, api_name=False, concurrency_limit=None)
        outputs = [status, anchor, gallery, result_video, comparison, download, figures, result_tabs]
        inputs = [prompt, negative, seed, renderer, loras, lora_scales, style, *setting_components]
        for stage, _ in STAGE_BUTTONS:
            # One GPU job at a time across every session: the queue serialises them (concurrency_id "gpu").
            buttons[stage].click(make_runner(stage), inputs, outputs, api_name={"all": "run_all", "first": "first_keyframe"}.get(stage, stage),
                                 concurrency_limit=1, concurrency_id="gpu")
        animate_button.click(run_still, [still, still_motion, still_amount, still_seconds, still_fps, *inputs], outputs,
                             api_name="animate", concurrency_limit=1, concurrency_id="gpu")
        generate_button.click(run_text, [text_frames, text_fps, text_width, text_height, text_dx, text_dy, text_smoothing,
                                         text_strength, *inputs], outputs, api_name="generate", concurrency_limit=1,
                              concurrency_id="gpu")
        for mode, shown in ((video_mode, stage_row), (still_mode, still_row), (text_mode, text_row)):
            # each mode shows its own run button(s)
            mode.select(lambda shown=shown: [gr.Row(visible=row is shown) for row in (stage_row, still_row, text_row)],
                        None, [stage_row, still_row, text_row], api_name=False, queue=False)
        cancel.click(on_cancel, None, status, api_name="cancel", concurrency_limit=None, queue=False)
        use_retouched.click(on_retouched, retouched, [status, gallery], api_name="retouched", concurrency_id="gpu", concurrency_limit=1)
        def on_unload(request: gr.Request):
            sessions.close(getattr(request, "session_hash", None) or "default")

        app.unload(on_unload)

    app.rerender_sessions = sessions  # type: ignore[attr-defined]
    app.rerender_setting_components = list(setting_components)  # type: ignore[attr-defined]
    app.rerender_setting_paths = list(setting_paths)  # type: ignore[attr-defined]  # the order of the run endpoints' settings
    return app


def use_retouched_keyframes(session: UiSession, files: list[str]) -> int:
    """Write retouched keyframes (named by frame index) over the session's keyframes before propagation.

    Raises:
        ConfigError: a file not named after one of the keyframes, or of another size.
    """
    from rerender.video import read_image, write_image

    if not files:
        raise ConfigError("choose the retouched keyframe images first")
    if session.video is None or not (session.workspace / "manifest.json").is_file():
        raise ConfigError("render the keyframes first, then upload retouched ones")
    existing = {int(path.stem): path for path in (session.workspace / "keyframes").glob("[0-9][0-9][0-9][0-9].png")}
    replaced = []
    for file in files:
        name = sanitize_filename(Path(file).name)
        digits = re.findall(r"\d+", Path(name).stem)
        if not digits or int(digits[-1]) not in existing:
            raise ConfigError(f"retouched keyframe {name!r} must be named after a keyframe: one of "
                              f"{', '.join(f'{index:04d}.png' for index in sorted(existing))}")
        index = int(digits[-1])
        image, original = read_image(file), read_image(existing[index])
        if image.shape != original.shape:
            raise ConfigError(f"retouched keyframe {name!r} is {image.shape[1]}×{image.shape[0]} but keyframe {index} is "
                              f"{original.shape[1]}×{original.shape[0]}; keep the size")
        replaced.append((index, image))
    for index, image in replaced:
        write_image(image, existing[index])
    # The workspace notices changed keyframe files: "Propagate" redoes only the intervals they bound.
    return len(replaced)


def launch(host: str = "127.0.0.1", port: int | None = None, share: bool = False, *, max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB,
           clip_model: str | None = None, defaults: RerenderConfig | None = None, quiet: bool = True) -> tuple[Any, str]:
    """Build and start the page; returns (the Blocks app, its local address).

    Args:
        host: interface to bind (127.0.0.1: this machine only).
        port: TCP port; `None` = a free one.
        share: also open a public Gradio share link (off by default; needs the internet).
        max_upload_mb: largest accepted upload.
        clip_model: CLIP model for the figures; `None` = the default one if cached.
        defaults: the settings the page starts from (e.g. `load_config("configs/tiny.yaml")`).

    Returns:
        The app, serving in a background thread (`app.block_thread()` waits; `app.close()` stops), and its
        address. Session folders are removed by `app.close()` / when the process ends.
    """
    import gradio as gr

    sessions = UiSessions(max_upload_mb=max_upload_mb)
    app = build_app(sessions, clip_model, defaults=defaults, max_upload_mb=max_upload_mb)
    app.queue(default_concurrency_limit=1)
    # System fonts only: the default theme would fetch web fonts from the internet.
    theme = gr.themes.Soft(
        primary_hue="indigo", secondary_hue="slate", neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )
    _, local_url, _ = app.launch(
        server_name=host, server_port=port or _free_port(host), share=share, prevent_thread_lock=True, quiet=quiet,
        show_error=True, max_file_size=f"{int(max_upload_mb)}mb", allowed_paths=[str(DEMO_VIDEO.parent), str(sessions.root)],
        theme=theme, css=CSS, ssr_mode=False, footer_links=[], pwa=False, mcp_server=False, enable_monitoring=False,
    )
    return app, local_url


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host if host not in ("0.0.0.0", "") else "127.0.0.1", 0))
        return probe.getsockname()[1]
