"""The page: a `Page` of components, its layout and the wiring of its events to `PageHandlers`; and `launch`."""

from dataclasses import dataclass
from typing import Any

from rerender.config import LoraConfig, RerenderConfig, field_docstrings, field_help
from rerender.errors import ConfigError, MissingDependencyError
from rerender.ui.fields import (
    ADVANCED_GROUPS,
    MAIN_FIELDS,
    MODEL_FIELDS,
    RENDERERS,
    STAGE_BUTTONS,
    STILL_AMOUNTS,
    STILL_MOTIONS,
    STYLE_FIELDS,
    component_for,
    config_value,
    field_spec,
)
from rerender.ui.runs import PageHandlers
from rerender.ui.sessions import DEFAULT_MAX_UPLOAD_MB, DEMO_VIDEO, UiSessions
from rerender.ui.summaries import environment_status

CSS = """
.gradio-container {max-width: 1500px !important; margin: auto;}
#rr-header h1 {margin-bottom: 0; font-size: 1.7rem;}
#rr-header p {margin-top: .2rem; opacity: .8;}
#rr-status {min-height: 2.2rem;}
#rr-status p:has(strong:first-child) {margin: 0;}
.rr-stage-buttons button {min-height: 2.8rem;}
"""


@dataclass
class Page:
    """Every component a handler reads or writes, by name (handlers return `{page.status: text, …}`)."""

    video: Any
    demo: Any
    summary: Any
    video_mode: Any
    still_mode: Any
    text_mode: Any
    still: Any
    still_motion: Any
    still_amount: Any
    still_seconds: Any
    still_fps: Any
    text_frames: Any
    text_fps: Any
    text_width: Any
    text_height: Any
    text_dx: Any
    text_dy: Any
    text_smoothing: Any
    text_strength: Any
    prompt: Any
    negative: Any
    seed: Any
    dice: Any
    style: Any
    renderer: Any
    environment: Any
    loras: Any
    lora_scales: Any
    settings: dict[str, Any]
    """Config path → its component, in the order the run endpoints take them."""
    buttons: dict[str, Any]
    """Stage → its button."""
    cancel: Any
    animate_button: Any
    generate_button: Any
    stage_row: Any
    still_row: Any
    text_row: Any
    status: Any
    """The status area: what the last action did, or why it failed (kept until the next action)."""
    progress: Any
    """The one progress display (a run's progress shows here only, stage by stage)."""
    result_tabs: Any
    anchor: Any
    gallery: Any
    retouched: Any
    use_retouched: Any
    result_video: Any
    comparison: Any
    download: Any
    figures: Any

    @property
    def shared_inputs(self) -> list[Any]:
        """The inputs every run takes, in the run endpoints' order: prompt, negative prompt, seed, renderer,
        LoRA files, LoRA scales, style image, then each setting of `settings`."""
        return [
            self.prompt,
            self.negative,
            self.seed,
            self.renderer,
            self.loras,
            self.lora_scales,
            self.style,
            *self.settings.values(),
        ]

    @property
    def run_outputs(self) -> list[Any]:
        return [
            self.status,
            self.anchor,
            self.gallery,
            self.result_video,
            self.comparison,
            self.download,
            self.figures,
            self.result_tabs,
            self.progress,
        ]


def _modes(gr: Any, c: dict[str, Any]) -> None:
    """The input modes: a video, a still (`rerender.animate`), text only (`rerender.generate`)."""
    from rerender.workflow.generation import BackgroundSmoothing

    with gr.Tabs(selected="video", elem_id="rr-modes"):
        with gr.Tab("Video", id="video") as c["video_mode"]:
            with gr.Group():
                c["video"] = gr.Video(label="Input video", sources=["upload"], height=260, elem_id="rr-input")
                with gr.Row():
                    c["demo"] = gr.Button("Use the demo clip", size="sm", variant="secondary")
            c["summary"] = gr.Markdown("Upload a video or use the demo clip.", elem_id="rr-summary")
        with gr.Tab("Still image", id="still") as c["still_mode"]:
            c["still"] = gr.Image(
                label="Still image", type="filepath", sources=["upload"], height=220, elem_id="rr-still"
            )
            with gr.Row():
                c["still_motion"] = gr.Dropdown(
                    list(STILL_MOTIONS),
                    value=STILL_MOTIONS[0],
                    label="Camera move",
                    info="The move the clip is made with; its optical flow is exact",
                )
                c["still_amount"] = gr.Number(
                    value=STILL_AMOUNTS[STILL_MOTIONS[0]],
                    label="Amount",
                    elem_id="rr-still-amount",
                    info="How far the move goes (zoom: 0.25 = "
                    "×1.25; pan: the zoom whose margin it crosses); in (0, 3]",
                )
            with gr.Row():
                c["still_seconds"] = gr.Number(value=4.0, label="Seconds", info="Length of the clip")
                c["still_fps"] = gr.Number(value=25.0, label="Frame rate", info="Frames per second")
        with gr.Tab("Text only", id="text") as c["text_mode"]:
            gr.Markdown(
                "Text2Video-Zero keyframes every K frames (Main settings), propagated in between; "
                "needs the diffusion model."
            )
            with gr.Row():
                c["text_frames"] = gr.Number(value=16, precision=0, label="Frames", info="Frames in the video")
                c["text_fps"] = gr.Number(value=8.0, label="Frame rate", info="Frames per second")
            with gr.Row():
                c["text_width"] = gr.Number(value=512, precision=0, label="Width", info="Pixels, a multiple of 8")
                c["text_height"] = gr.Number(value=512, precision=0, label="Height", info="Pixels, a multiple of 8")
            with gr.Row():
                c["text_dx"] = gr.Number(
                    value=2.0, label="Motion right", info="Pixels per frame the scene moves right"
                )
                c["text_dy"] = gr.Number(value=0.0, label="Motion down", info="Pixels per frame the scene moves down")
            with gr.Row():
                c["text_smoothing"] = gr.Checkbox(
                    value=False,
                    label="Background smoothing",
                    info="Text2Video-Zero §3.3: each keyframe's background is pulled "
                    "towards the anchor's, moved by the same motion",
                )
                c["text_strength"] = gr.Slider(
                    0.0,
                    1.0,
                    value=BackgroundSmoothing().strength,
                    step=0.05,
                    label="Smoothing strength",
                    info=field_docstrings(BackgroundSmoothing)["strength"],
                )


def _settings(gr: Any, c: dict[str, Any], defaults: RerenderConfig) -> None:
    """The prompt, the seed, the reference image and every config field the page shows."""
    settings: dict[str, Any] = c["settings"]

    def add(path: str) -> None:
        settings[path] = component_for(field_spec(path), config_value(defaults, path))

    c["prompt"] = gr.Textbox(
        label="Prompt",
        lines=2,
        value=defaults.prompt.prompt,
        placeholder="a cartoon, flat colours, thick outlines",
        info=field_help("prompt.prompt"),
    )
    c["negative"] = gr.Textbox(
        label="Negative prompt",
        value=defaults.prompt.negative_prompt or "",
        lines=1,
        placeholder="empty: the base model's own (on SD: longbody, lowres, bad anatomy, …; none on Flux and Z-Image)",
        info=field_help("prompt.negative_prompt"),
    )
    with gr.Row():
        c["seed"] = gr.Number(
            label="Seed", value=defaults.sampling.seed, precision=0, scale=4, info=field_help("sampling.seed")
        )
        c["dice"] = gr.Button("Random seed", scale=2, min_width=90, elem_id="rr-dice", size="sm")
    with gr.Accordion("Reference image (IP-Adapter)", open=False):
        c["style"] = gr.Image(label="Style image", type="filepath", sources=["upload"], height=160, elem_id="rr-style")
        for path in STYLE_FIELDS:
            add(path)
    with gr.Tab("Main settings"):
        c["renderer"] = gr.Radio(
            list(RENDERERS),
            value=config_value(defaults, "model.renderer") or RENDERERS[0],
            label="Keyframe renderer",
            info=field_help("model.renderer"),
        )
        for path in MAIN_FIELDS:
            add(path)
    with gr.Tab("Model"):
        c["environment"] = gr.Markdown(environment_status(defaults), elem_id="rr-environment")
        for path in MODEL_FIELDS:
            add(path)
        c["loras"] = gr.File(label="LoRA files (.safetensors)", file_count="multiple", file_types=[".safetensors"])
        c["lora_scales"] = gr.Textbox(
            label="LoRA scales",
            placeholder="0.8, 0.5 (one per file; default 1)",
            info=field_docstrings(LoraConfig)["scale"],
        )
    with gr.Accordion("Advanced", open=False):
        for group, paths in ADVANCED_GROUPS.items():
            with gr.Tab(group):
                for path in paths:
                    add(path)


def _results(gr: Any, c: dict[str, Any]) -> None:
    """The run buttons, the status area and progress display, the keyframes, the result and the figures."""
    with gr.Row(elem_classes="rr-stage-buttons") as c["stage_row"]:
        c["buttons"] = {
            stage: gr.Button(label, variant="primary" if stage == "all" else "secondary", min_width=110)
            for stage, label in STAGE_BUTTONS
        }
        c["cancel"] = gr.Button("Cancel", variant="stop", min_width=90, scale=0)
    with gr.Row(elem_classes="rr-stage-buttons", visible=False) as c["still_row"]:
        c["animate_button"] = gr.Button("Animate the still", variant="primary", elem_id="rr-animate")
    with gr.Row(elem_classes="rr-stage-buttons", visible=False) as c["text_row"]:
        c["generate_button"] = gr.Button("Generate from text", variant="primary", elem_id="rr-generate")
    c["progress"] = gr.Markdown("", elem_id="rr-progress")
    c["status"] = gr.Markdown("", elem_id="rr-status")
    with gr.Tabs(selected="keyframes") as c["result_tabs"]:
        with gr.Tab("Keyframes", id="keyframes"):
            c["anchor"] = gr.Image(label="First keyframe (the anchor)", type="filepath", height=300, interactive=False)
            c["gallery"] = gr.Gallery(label="Keyframes", columns=5, height=240, object_fit="contain")
            with gr.Accordion("Retouch keyframes", open=False):
                gr.Markdown(
                    "Download keyframes from the gallery, paint over them, and upload them back under "
                    "their names (`0008.png` is frame 8) before pressing **Propagate**."
                )
                c["retouched"] = gr.File(label="Retouched keyframes", file_count="multiple", file_types=["image"])
                c["use_retouched"] = gr.Button("Use the retouched keyframes")
        with gr.Tab("Result", id="result"):
            c["result_video"] = gr.Video(label="Result", interactive=False, elem_id="rr-result", height=320)
            c["comparison"] = gr.Video(label="Source | result", interactive=False, height=220)
            c["download"] = gr.File(label="Download", interactive=False)
        with gr.Tab("Figures", id="figures"):
            c["figures"] = gr.Markdown("Temporal-consistency figures appear here after propagation.")


def _wire(page: Page, handlers: PageHandlers, app: Any) -> None:
    """Each event → its handler. Runs share one queue slot ("gpu"): one GPU job at a time across sessions; each
    shows its progress in `page.progress` only."""
    import gradio as gr

    page.video.change(
        handlers.on_video, page.video, [page.summary, page.status], api_name="summary", concurrency_limit=None
    )
    page.demo.click(handlers.on_demo, None, page.video, api_name="demo", concurrency_limit=None)
    page.dice.click(handlers.on_dice, None, page.seed, api_name=False, concurrency_limit=None)
    page.still_motion.change(handlers.on_motion, page.still_motion, page.still_amount, api_name=False, queue=False)
    indices, mode = page.settings["keyframes.keyframe_indices"], page.settings["keyframes.keyframe_mode"]
    # typed indices select the mode that uses them (`input`: what the user types, not a preset being loaded)
    indices.input(handlers.on_keyframe_indices, [indices, mode], mode, api_name=False, queue=False)
    for path in MODEL_FIELDS:
        page.settings[path].change(
            handlers.on_environment,
            list(page.settings.values()),
            page.environment,
            api_name=False,
            concurrency_limit=None,
        )
    run = dict(outputs=page.run_outputs, concurrency_limit=1, concurrency_id="gpu", show_progress_on=page.progress)
    for stage, _ in STAGE_BUTTONS:
        page.buttons[stage].click(
            handlers.runner(stage),
            page.shared_inputs,
            api_name={"all": "run_all", "first": "first_keyframe"}.get(stage, stage),
            **run,
        )
    still_inputs = [page.still, page.still_motion, page.still_amount, page.still_seconds, page.still_fps]
    page.animate_button.click(handlers.run_still, still_inputs + page.shared_inputs, api_name="animate", **run)
    text_inputs = [
        page.text_frames,
        page.text_fps,
        page.text_width,
        page.text_height,
        page.text_dx,
        page.text_dy,
        page.text_smoothing,
        page.text_strength,
    ]
    page.generate_button.click(handlers.run_text, text_inputs + page.shared_inputs, api_name="generate", **run)
    rows = (page.stage_row, page.still_row, page.text_row)
    for mode, shown in zip((page.video_mode, page.still_mode, page.text_mode), rows):  # each mode: its own buttons
        mode.select(
            lambda shown=shown: [gr.Row(visible=row is shown) for row in rows],
            None,
            list(rows),
            api_name=False,
            queue=False,
        )
    page.cancel.click(handlers.on_cancel, None, page.status, api_name="cancel", concurrency_limit=None, queue=False)
    page.use_retouched.click(
        handlers.on_retouched,
        page.retouched,
        [page.status, page.gallery],
        api_name="retouched",
        concurrency_id="gpu",
        concurrency_limit=1,
    )
    app.unload(handlers.on_unload)


def build_app(
    sessions: UiSessions | None = None,
    clip_model: str | None = None,
    *,
    defaults: RerenderConfig | None = None,
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB,
) -> Any:
    """Build the Gradio Blocks page (not launched); its `Page` is `app.rerender_page`.

    Args:
        sessions: where session workspaces live; default a new temporary folder.
        clip_model: CLIP model for the evaluation figures (a local folder or cached hub id); `None` = the
            default model if it is cached (figures say why CLIP is missing otherwise).
        defaults: the settings the page starts from (and the options it does not show); default the defaults
            with the renderer "auto", as on the CLI: without diffusion weights, the classic stylizer runs.
        max_upload_mb: largest accepted upload.

    Raises:
        MissingDependencyError: Gradio is not installed (`pip install "rerender[ui]"`).
    """
    try:
        import gradio as gr
    except ImportError:
        raise MissingDependencyError('the web UI needs Gradio: pip install "rerender[ui]"') from None
    from rerender.evaluation import DEFAULT_CLIP_MODEL

    sessions = sessions or UiSessions(max_upload_mb=max_upload_mb)
    if defaults is None:  # the CLI's own defaults, one config for both (`CLI_DEFAULTS`: the renderer "auto")
        from rerender.cli.options import default_config

        defaults = default_config()
    components: dict[str, Any] = {"settings": {}}
    with gr.Blocks(title="Rerender A Video", analytics_enabled=False) as app:
        with gr.Row(elem_id="rr-header"):
            gr.Markdown(
                "# Rerender A Video\nRestyle a video from a prompt: render the **first keyframe** to tune the look, "
                "then the **keyframes**, then **propagate** them to every frame. Each step reuses the last one's work."
            )
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=380):
                _modes(gr, components)
                _settings(gr, components, defaults)
            with gr.Column(scale=7, min_width=480):
                _results(gr, components)
        page = Page(**components)
        handlers = PageHandlers(page, sessions, defaults, clip_model if clip_model is not None else DEFAULT_CLIP_MODEL)
        _wire(page, handlers, app)
    app.rerender_sessions = sessions  # type: ignore[attr-defined]
    app.rerender_page = page  # type: ignore[attr-defined]
    return app


def launch(
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    *,
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB,
    clip_model: str | None = None,
    defaults: RerenderConfig | None = None,
    quiet: bool = True,
) -> tuple[Any, str]:
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

    port = _usable_port(host, port)  # before the page is built: Gradio's own message names its `server_port`
    sessions = UiSessions(max_upload_mb=max_upload_mb)
    app = build_app(sessions, clip_model, defaults=defaults, max_upload_mb=max_upload_mb)
    app.queue(default_concurrency_limit=1)
    # System fonts only: the default theme would fetch web fonts from the internet.
    theme = gr.themes.Soft(
        primary_hue="indigo",
        secondary_hue="slate",
        neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )
    _, local_url, _ = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=True,
        quiet=quiet,
        show_error=True,
        max_file_size=f"{int(max_upload_mb)}mb",
        allowed_paths=[str(DEMO_VIDEO.parent), str(sessions.root)],
        theme=theme,
        css=CSS,
        ssr_mode=False,
        footer_links=[],
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
    )
    return app, local_url


def _usable_port(host: str, port: int | None) -> int:
    """`port` checked and free on `host`, or a free port when it is 0 or None (bound once, to find out).

    Raises:
        ConfigError: the port is not an integer in 0-65535, or another program listens on it on `host`.
    """
    import socket

    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        raise ConfigError(f"`port` must be a TCP port in [0, 65535] (0 or None: a free one), got {port!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host if host not in ("0.0.0.0", "") else "127.0.0.1", port or 0))
        except OSError as error:
            raise ConfigError(
                f"`port` {port} cannot be used on {host} ({error.strerror or error}); choose another, or leave it "
                "out for a free one"
            ) from None
        return probe.getsockname()[1]
