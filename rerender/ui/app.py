"""The page: its layout, handlers and wiring (Gradio Blocks), and `launch`."""

# No `from __future__ import annotations`: Gradio finds `gr.Request` parameters by their evaluated annotations.

import logging
import queue
import random
import threading
from pathlib import Path
from typing import Any, Iterator

import rerender.config as config_module
from rerender.config import RerenderConfig
from rerender.errors import CancelledError, MissingDependencyError, RerenderError
from rerender.ui.fields import (
    ADVANCED_GROUPS, MAIN_FIELDS, MODEL_FIELDS, RENDERERS, STAGE_BUTTONS, STILL_MOTIONS, STYLE_FIELDS, _component_for,
    _raw_setting, config_value, field_docstrings, field_spec,
)
from rerender.ui.runs import (
    RunRequest, StillRequest, TextRequest, build_config, run_animate, run_generate, run_stage, use_retouched_keyframes,
)
from rerender.ui.sessions import DEFAULT_MAX_UPLOAD_MB, DEMO_VIDEO, UiSession, UiSessions
from rerender.ui.summaries import environment_status, evaluate_result, friendly_error, video_summary

logger = logging.getLogger(__name__)

CSS = """
.gradio-container {max-width: 1500px !important; margin: auto;}
#rr-header h1 {margin-bottom: 0; font-size: 1.7rem;}
#rr-header p {margin-top: .2rem; opacity: .8;}
#rr-status {min-height: 2.2rem;}
.rr-stage-buttons button {min-height: 2.8rem;}
"""


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
