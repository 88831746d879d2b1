"""Running a stage: the page's settings as a config, then `translate`, `animate` or `generate` on the session."""

import dataclasses
import queue
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rerender.config as config_module
from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import ConfigError
from rerender.ui.fields import RENDERERS, _value_of, field_spec
from rerender.ui.sessions import UiSession, UiSessions, sanitize_filename



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

