"""Running a stage: the page's settings as a config, then `translate`, `animate` or `generate` on the session.

The jobs (`run_stage`, `run_animate`, `run_generate`) are plain functions over a session; `PageHandlers` turns
button presses into jobs run in a worker thread (`run_in_thread`) and returns what changes on the page as
`{component: value}`, so a new output is one more key, not one more slot in every return. Every error ends up as
a message in the status area, where it stays until the next action.
"""

# No `from __future__ import annotations`: Gradio finds `gr.Request` parameters by their evaluated annotations.

import logging
import queue
import random
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerender.config import RerenderConfig, apply_overrides, field_default
from rerender.errors import CancelledError, ConfigError, RerenderError
from rerender.ui.fields import RENDERERS, STILL_AMOUNTS, field_spec, value_of
from rerender.ui.sessions import DEMO_VIDEO, UiSession, UiSessions, sanitize_filename
from rerender.ui.summaries import environment_status, evaluate_result, friendly_error, video_summary
from rerender.video import IMAGE_EXTENSIONS

try:
    import gradio as gr

    Request: Any = gr.Request
except ImportError:  # build_app says how to install it
    gr, Request = None, Any

if TYPE_CHECKING:
    from rerender.ui.app import Page

logger = logging.getLogger(__name__)


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
        if spec.section:  # an optional section's switch
            if not raw:
                overrides[path] = None
            continue
        value = value_of(spec, raw)
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
                raise ConfigError(
                    f"LoRA scales must be numbers separated by commas, got {request.lora_scales!r}"
                ) from None
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
    sessions: UiSessions,
    session: UiSession,
    request: RunRequest,
    events: "queue.Queue[tuple]",
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
    stage = request.stage
    kwargs = renderer_argument(request.renderer, config, sessions)
    result = translate(
        session.video,
        config=config,
        output=session.output if stage in ("all", "propagate") else None,
        workspace=session.workspace,
        stage=stage,
        comparison=stage in ("all", "propagate"),
        progress=False,
        callback=lambda name, done, total: events.put(("progress", name, done, total)),
        cancel=session.cancel,
        **kwargs,
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
    sessions: UiSessions,
    session: UiSession,
    request: RunRequest,
    still: StillRequest,
    events: "queue.Queue[tuple]",
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
    result = animate(
        image,
        motion=still.motion,
        seconds=still.seconds,  # a cleared Number box is None: the library names it
        fps=still.fps,
        output=session.root / "animated.mp4",
        config=config,
        amount=still.amount,
        workspace=session.root / "animate-work",
        progress=False,
        force=False,
        callback=lambda name, done, total: events.put(("progress", name, done, total)),
        cancel=session.cancel,
        **renderer_argument(request.renderer, config, sessions),
    )
    return {"result": result, "config": config}


def run_generate(
    sessions: UiSessions,
    session: UiSession,
    request: RunRequest,
    text: TextRequest,
    base: RerenderConfig | None = None,
) -> dict[str, Any]:
    """The "Text only" mode: `rerender.generate` with the page's prompt, model, sampling and style image.

    Returns:
        "result" (the `GenerationResult`), "config", "keyframes" (the keyframe image files, for the gallery).
    """
    from rerender.video import write_image
    from rerender.workflow.generation import BackgroundSmoothing, check_generate_prompt, generate

    config = build_config(request, base)
    check_generate_prompt(config.prompt.prompt, config)  # before the model loads
    if request.renderer == "classic":  # else the message would be about diffusion weights the user did not choose
        raise ConfigError(
            "“Text only” needs the diffusion renderer: the classic stylizer restyles a video's frames, "
            "and here there are none; choose diffusion (or auto)"
        )
    smoothing = None if text.smoothing is None else BackgroundSmoothing(strength=float(text.smoothing))

    def whole(value: Any) -> Any:  # a Number component's 16.0 is the integer 16; anything else is checked as given
        return int(value) if isinstance(value, (int, float)) and float(value).is_integer() else value

    frames, size = whole(text.frames), tuple(whole(value) for value in text.size)
    from rerender.workflow.generation import check_generate_inputs

    # before loading the model
    check_generate_inputs(
        config.prompt.prompt, frames, config.keyframes.keyframe_interval, text.motion, size, text.fps
    )
    result = generate(
        config.prompt.prompt,
        frames=frames,
        K=config.keyframes.keyframe_interval,
        output=session.root / "generated.mp4",
        pipeline=sessions.pipeline_for(config, control=False),  # text alone: no ControlNet needed
        motion=tuple(text.motion),
        size=size,
        fps=text.fps,
        negative_prompt=config.prompt.negative_prompt,
        num_inference_steps=config.sampling.num_inference_steps,
        guidance_scale=config.sampling.guidance_scale,
        seed=config.sampling.seed,  # None draws one
        config=config,
        progress=False,
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
    from rerender.workflow.keyframe_folder import keyframe_number

    if not files:
        raise ConfigError("choose the retouched keyframe images first")
    if session.video is None or not (session.workspace / "manifest.json").is_file():
        raise ConfigError("render the keyframes first, then upload retouched ones")
    existing = {int(path.stem): path for path in (session.workspace / "keyframes").glob("[0-9][0-9][0-9][0-9].png")}
    replaced = []
    for file in files:
        name = sanitize_filename(Path(file).name)
        try:  # the rule `rerender propagate` reads names by: "0008_v2.png" and "0008 (1).png" are frame 8
            index = keyframe_number(name)
        except ConfigError:
            index = None
        if index not in existing:
            raise ConfigError(
                f"retouched keyframe {name!r} must be named after a keyframe: one of "
                f"{', '.join(f'{index:04d}.png' for index in sorted(existing))}"
            )
        image, original = read_image(file), read_image(existing[index])
        if image.shape != original.shape:
            raise ConfigError(
                f"retouched keyframe {name!r} is {image.shape[1]}×{image.shape[0]} "
                f"but keyframe {index} is "
                f"{original.shape[1]}×{original.shape[0]}; keep the size"
            )
        replaced.append((index, image))
    for index, image in replaced:
        write_image(image, existing[index])
    # The workspace notices changed keyframe files: "Propagate" redoes only the intervals they bound.
    return len(replaced)


# --------------------------------------------------------------------------------------------------------
# the worker thread and the page's handlers
# --------------------------------------------------------------------------------------------------------

STAGE_NAMES = {
    "frames": "Reading frames",
    "keyframes": "Rendering keyframes",
    "propagation": "Propagating",
    "writing": "Writing the video",
    "evaluation": "Computing the figures",
    "clip": "CLIP scores",
}
"""What the progress display calls each stage the library reports (others are shown by their own name)."""


def run_in_thread(
    job: Callable[["queue.Queue[tuple]"], dict[str, Any]],
    outcome: dict[str, Any],
    cancel: threading.Event | None = None,
) -> Iterator[tuple]:
    """Run `job(events)` in a worker thread; yield its progress events `(kind, stage, done, total)` as they come,
    and once it ends leave its result, or the error it raised under "error", in `outcome`.

    If the caller stops early (the browser went away), `cancel` is set and the worker is waited for, so nothing
    is left writing to the session's files.
    """
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
    try:
        while (event := events.get())[0] != "done":
            yield event
    finally:
        if worker.is_alive() and cancel is not None:
            cancel.set()
        worker.join()


def error_markdown(message: str) -> str:
    """The status text of a failed action: it stays on the page until the next action."""
    return f"**Error:** {message}"


@dataclass
class PageHandlers:
    """The page's event handlers: each returns (or yields) `{component: new value}` for what changes."""

    page: "Page"
    sessions: UiSessions
    defaults: RerenderConfig
    clip_model: str | None

    def session_of(self, request: Any) -> UiSession:
        return self.sessions.get(getattr(request, "session_hash", None) or "default")

    # ------------------------------------------------------------------------------------ small handlers
    def on_video(self, path: str | None, request: Request) -> dict:
        page, session = self.page, self.session_of(request)
        if not path:
            self.sessions.take_upload(session, None)
            return {page.summary: "Upload a video or use the demo clip.", page.status: ""}
        user_name = Path(path).name  # Gradio keeps the name the file had on the user's machine
        if Path(path).suffix.lower() in IMAGE_EXTENSIONS:  # a photo dropped on the video box
            self.sessions.take_upload(session, None)
            message = f"{user_name!r} is a still image: the “Still image” tab makes a clip of it"
            return {page.summary: f"**Not a usable video:** {message}", page.status: error_markdown(message)}
        try:
            summary = video_summary(path, user_name)  # read before anything of the session is replaced
            self.sessions.take_upload(session, path, user_name)
        except Exception as error:  # noqa: BLE001 - every failure is a message on the page
            logger.info("rejected upload: %s", error)
            self.sessions.take_upload(session, None)
            message = friendly_error(error, {str(path): user_name, **session.names()})
            return {page.summary: f"**Not a usable video:** {message}", page.status: error_markdown(message)}
        if session.pending is not None:
            note = (
                "A run is going on: this video is queued and becomes the input when you next press a button; "
                "the running job goes on with the earlier one."
            )
            return {page.summary: summary, page.status: note}
        return {page.summary: summary, page.status: ""}

    def on_demo(self) -> str:
        return str(DEMO_VIDEO)

    def on_dice(self) -> int:
        return random.randint(0, 2**31 - 1)

    def on_motion(self, motion: str) -> float | None:
        """The amount field follows the move: it shows the library's default for the chosen one."""
        return STILL_AMOUNTS.get(motion)

    def on_keyframe_indices(self, indices: str, mode: str) -> str:
        """The mode follows the indices, as the amount follows the move: typing indices selects "explicit", the
        mode that uses them (in another mode they would be ignored); clearing them while "explicit" goes back to
        "uniform", the default."""
        try:
            given = value_of(field_spec("keyframes.keyframe_indices"), indices) is not None
        except ConfigError:  # typed, though not yet numbers: the run names the mistake
            given = True
        if given:
            return "explicit"
        return field_default("keyframes.keyframe_mode") if mode == "explicit" else mode

    def on_environment(self, *values) -> str:
        try:
            settings = dict(zip(self.page.settings, values))
            return environment_status(build_config(RunRequest("first", "auto", settings), self.defaults))
        except Exception as error:  # noqa: BLE001
            return f"**Settings:** {friendly_error(error)}"

    def on_cancel(self, request: Request) -> dict:
        session = self.session_of(request)
        if not session.running.locked():
            return {self.page.status: "Nothing is running."}
        session.cancel.set()
        return {self.page.status: "Cancelling at the next safe point…"}

    def on_retouched(self, files, request: Request) -> dict:
        page, session = self.page, self.session_of(request)
        try:
            with session.run():
                count = use_retouched_keyframes(session, [str(f) for f in (files or [])])
        except Exception as error:  # noqa: BLE001
            return {page.status: error_markdown(friendly_error(error, session.names()))}
        return {
            page.status: f"Replaced {count} keyframe(s); press **Propagate**.",
            page.gallery: gallery_items(session),
        }

    def on_unload(self, request: Request) -> None:
        self.sessions.close(getattr(request, "session_hash", None) or "default")

    # ------------------------------------------------------------------------------------ runs
    def page_request(self, stage: str, session: UiSession, inputs: tuple) -> RunRequest:
        """The shared inputs (prompt, seed, renderer, LoRAs, style image, settings) as a `RunRequest`."""
        prompt_text, negative_text, seed_value, renderer_choice, lora_files, scales, style_file, *values = inputs
        settings = dict(zip(self.page.settings, values))
        settings["prompt.prompt"] = prompt_text or ""
        settings["prompt.negative_prompt"] = negative_text or None  # empty: the base model's own
        settings["model.renderer"] = renderer_choice
        staged = self.sessions.take_image(session, style_file, "style")
        settings["prompt.style_image"] = str(staged) if staged is not None else None
        return RunRequest(
            stage,
            renderer_choice,
            settings,
            [str(f) for f in (lora_files or [])],
            scales or "",
            None if seed_value is None else int(seed_value),
        )

    def guarded(self, session: UiSession, body: Callable[[], Iterator[dict]]) -> Iterator[dict]:
        """Run `body` holding the session (uploads meanwhile are queued); an error or a cancel becomes the status
        text, with the files named as the user named them."""
        try:
            with session.run():
                yield from body()
        except CancelledError:
            yield {
                self.page.status: "**Cancelled.** Finished work is kept; press the button again to resume.",
                self.page.gallery: gallery_items(session),
            }
        except Exception as error:  # noqa: BLE001 - every failure is a message on the page
            if not isinstance(error, (RerenderError, ValueError, OSError)):
                logger.error("run failed", exc_info=error)
            yield {self.page.status: error_markdown(friendly_error(error, session.names()))}

    def threaded(
        self, session: UiSession, job: Callable, progress: Any, outcome: dict[str, Any]
    ) -> Iterator[tuple[str, int, int]]:
        """Run `job(events)` in the worker thread, showing its progress stage by stage; yields each event as
        `(stage, done, total)`, then raises the job's error or leaves its result in `outcome`."""
        for _, name, done, total in run_in_thread(job, outcome, session.cancel):
            progress(done / max(total, 1), desc=f"{STAGE_NAMES.get(name, name)}: {done}/{total}")
            yield name, done, total
        if "error" in outcome:
            raise outcome["error"]

    def runner(self, stage: str) -> Callable:
        """The handler of one stage's button (Gradio reads the request and progress parameters from its
        signature, which a `functools.partial` would hide)."""

        def run(request: Request, progress=gr.Progress() if gr else None, *inputs):
            # Gradio inserts the request and progress tracker at their positions, before the page's inputs.
            session = self.session_of(request)
            yield from self.guarded(session, lambda: self.stage_updates(stage, session, inputs, progress))

        run.__name__ = f"run_{stage}"
        return run

    def stage_updates(self, stage: str, session: UiSession, inputs: tuple, progress: Any) -> Iterator[dict]:
        page = self.page
        run_request = self.page_request(stage, session, inputs)
        yield {page.status: f"Running **{stage}**…", page.result_tabs: gr.Tabs(selected="keyframes")}
        shown_keyframes = 0
        job = lambda events: run_stage(self.sessions, session, run_request, events, self.defaults)  # noqa: E731
        outcome: dict[str, Any] = {}
        for name, _, _ in self.threaded(session, job, progress, outcome):
            if name == "keyframes":  # diffusion counts denoising steps: show the gallery as each keyframe lands
                finished = sorted((session.workspace / "keyframes").glob("[0-9][0-9][0-9][0-9].png"))
                if len(finished) != shown_keyframes:
                    shown_keyframes = len(finished)
                    yield {
                        page.status: f"Keyframes: {len(finished)} finished",
                        page.anchor: str(finished[0]),
                        page.gallery: [(str(path), f"frame {int(path.stem)}") for path in finished],
                    }
        result, config = outcome["result"], outcome["config"]
        first = (
            result.previews.get("first") or session.workspace / "keyframes" / f"{result.keyframe_indices[0]:04d}.png"
        )
        shown = {page.anchor: str(first), page.gallery: gallery_items(session)}
        renderer_note = f"keyframes by the **{result.renderer}** renderer"
        if stage == "first":
            yield {
                **shown,
                page.status: f"First keyframe ready ({renderer_note}). Change the prompt and press it "
                "again, or go on.",
            }
            return
        if stage == "keyframes":
            yield {**shown, page.status: f"{len(result.keyframe_indices)} keyframes ready ({renderer_note})."}
            return
        done_text = (
            f"Done: {result.frame_count} frames, {renderer_note}"
            + (f", reused {', '.join(result.reused)}" if result.reused else "")
            + f" ({sum(result.timings.values()):.1f} s)."
        )
        shown.update(
            {
                page.result_video: str(result.output),
                page.download: str(result.output),
                page.comparison: str(result.previews.get("comparison", "")) or None,
                page.result_tabs: gr.Tabs(selected="result"),
            }
        )
        yield {**shown, page.status: done_text + " Computing the figures…"}
        # the last update carries every output again: an API client sees only the last one
        yield {**shown, page.status: done_text, page.figures: self.figures(session, result.output, config, progress)}

    def figures(self, session: UiSession, output: Path, config: RerenderConfig, progress: Any) -> str:
        """The evaluation figures, computed in the worker with their own progress (the run is not "100 %" yet)."""
        video = session.video
        job = lambda events: {
            "figures": evaluate_result(  # noqa: E731
                output, video, config, self.clip_model, lambda *event: events.put(("progress", *event))
            )
        }
        outcome: dict[str, Any] = {}
        try:
            for _ in self.threaded(session, job, progress, outcome):
                pass
            return outcome["figures"]
        except Exception as error:  # noqa: BLE001 - figures are extra: say why they are missing
            return f"Figures could not be computed: {friendly_error(error, session.names())}"

    def run_still(self, request: Request, progress=gr.Progress() if gr else None, *inputs):
        session = self.session_of(request)
        yield from self.guarded(session, lambda: self.still_updates(session, inputs, progress))

    def still_updates(self, session: UiSession, inputs: tuple, progress: Any) -> Iterator[dict]:
        page = self.page
        still_file, motion_choice, amount_value, seconds_value, fps_value, *shared = inputs
        run_request = self.page_request("all", session, tuple(shared))
        still_request = StillRequest(
            still_file,
            motion_choice,
            seconds_value,
            fps_value,
            None if amount_value in (None, "") else float(amount_value),
        )
        yield {page.status: "Animating the still…", page.result_tabs: gr.Tabs(selected="keyframes")}
        job = lambda events: run_animate(  # noqa: E731
            self.sessions, session, run_request, still_request, events, self.defaults
        )
        outcome: dict[str, Any] = {}
        for _ in self.threaded(session, job, progress, outcome):
            pass
        translation = outcome["result"].translation
        folder = translation.workspace / "keyframes"
        items = [(str(folder / f"{index:04d}.png"), f"frame {index}") for index in translation.keyframe_indices]
        yield {
            page.status: f"Done: {translation.frame_count} frames from the still ({still_request.motion}), "
            f"keyframes by the **{translation.renderer}** renderer.",
            page.anchor: items[0][0],
            page.gallery: items,
            page.result_video: str(translation.output),
            page.comparison: None,
            page.download: str(translation.output),
            page.result_tabs: gr.Tabs(selected="result"),
        }

    def run_text(self, request: Request, progress=gr.Progress() if gr else None, *inputs):
        session = self.session_of(request)
        yield from self.guarded(session, lambda: self.text_updates(session, inputs, progress))

    def text_updates(self, session: UiSession, inputs: tuple, progress: Any) -> Iterator[dict]:
        page = self.page
        frames_value, fps_value, width_value, height_value, dx_value, dy_value, smoothing_on, strength = inputs[:8]
        shared = inputs[8:]
        run_request = self.page_request("all", session, tuple(shared))
        text_request = TextRequest(
            frames_value,
            (width_value, height_value),
            (dx_value, dy_value),
            fps_value,
            float(strength) if smoothing_on else None,
        )
        yield {page.status: "Generating from text…", page.result_tabs: gr.Tabs(selected="keyframes")}
        job = lambda events: run_generate(  # noqa: E731
            self.sessions, session, run_request, text_request, self.defaults
        )
        outcome: dict[str, Any] = {}
        for _ in self.threaded(session, job, progress, outcome):
            pass
        result = outcome["result"]
        items = [(str(path), f"frame {index}") for path, index in zip(outcome["keyframes"], result.keyframe_indices)]
        prompt_note = ""
        if result.prompt is not None and result.prompt.translator is not None:
            prompt_note = f" Prompt read as “{result.prompt.english}” ({result.prompt.language} → en)."
        yield {
            page.status: f"Done: {result.frame_count} frames from text, keyframes {result.keyframe_indices}."
            + prompt_note,
            page.anchor: items[0][0],
            page.gallery: items,
            page.result_video: str(result.output),
            page.comparison: None,
            page.download: str(result.output),
            page.result_tabs: gr.Tabs(selected="result"),
        }


def gallery_items(session: UiSession) -> list[tuple[str, str]]:
    """The session's keyframes as gallery items (image, "frame N")."""
    folder = session.workspace / "keyframes"
    items = []
    for index in session.keyframes or sorted(int(p.stem) for p in folder.glob("[0-9][0-9][0-9][0-9].png")):
        path = folder / f"{index:04d}.png"
        if path.is_file():
            items.append((str(path), f"frame {index}"))
    return items
