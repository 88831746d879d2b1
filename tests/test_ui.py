"""The web UI (`rerender ui`) through `gradio_client` against a server on 127.0.0.1: every stage, cancel, bad input.

Each run goes through the page's own endpoints, so what is checked is what a browser gets; results are
compared with `rerender.translate` run directly (the page has no implementation of its own).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402

from rerender.config import ConstraintConfig, load_config  # noqa: E402
from rerender.errors import ConfigError  # noqa: E402
from rerender.stylizer import ClassicStylizer  # noqa: E402
from rerender.video import probe_video, read_frames, read_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The page on 127.0.0.1 with the tiny preset as its defaults, and a CLIP path that does not exist."""
    from rerender.ui import launch

    defaults = load_config(REPO / "configs" / "tiny.yaml")
    app, url = launch(port=None, defaults=defaults, clip_model=str(tmp_path_factory.mktemp("no-clip") / "clip"))
    yield app, url
    app.close()


def _arguments(app, prompt="a cartoon", renderer="classic", seed=0, style=None, **settings):
    """The run endpoints' inputs in order: the page's fixed inputs, then each setting by its config path."""
    values = {path: component.value for path, component in app.rerender_page.settings.items()}
    for key, value in settings.items():
        path = key.replace("__", ".")
        assert path in values, path
        values[path] = value
    negative = ""
    return [
        prompt,
        negative,
        seed,
        renderer,
        [],
        "",
        None if style is None else handle_file(str(style)),
        *values.values(),
    ]


def _error(status: str) -> str:
    """The reason a run failed, as the status area shows it (and keeps showing until the next action)."""
    assert status.startswith("**Error:** "), status
    return status.removeprefix("**Error:** ")


def _client(url, video):
    client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})  # a loaded CI machine answers slowly
    summary, status = client.predict(handle_file(str(video)), api_name="/summary")
    assert status == "", status
    return client, summary


def test_help_texts_are_the_config_docstrings():
    from rerender.config import field_docstrings
    from rerender.ui import build_app, field_spec

    app = build_app()
    by_path = app.rerender_page.settings
    mask = by_path["constraints.mask_strength"]
    assert mask.info == field_docstrings(ConstraintConfig)["mask_strength"] != ""
    assert by_path["constraints.pixel_fusion_period"].info == field_spec("constraints.pixel_fusion_period").doc != ""
    assert by_path["propagation.blend_mode"].info.startswith("How the forward and backward passes merge")
    from rerender.config import PromptConfig

    # prompts in other languages (issue 14) have their controls, with the config's own help text
    assert by_path["prompt.prompt_language"].info == field_docstrings(PromptConfig)["prompt_language"] != ""


def test_sanitized_names_and_upload_limit(tmp_path):
    from rerender.ui import UiSessions, sanitize_filename

    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("..\\..\\boot.ini") == "boot.ini"
    assert sanitize_filename("../") == "upload" and sanitize_filename("a b/ç.mp4") == "_.mp4"
    sessions = UiSessions(tmp_path / "sessions", max_upload_mb=1)
    session = sessions.get("../../escape")
    assert session.root.parent == tmp_path / "sessions"
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small.write_bytes(b"x" * 10)
    big.write_bytes(b"x" * (1 << 20) + b"x")
    staged = sessions.take_upload(session, small, "../../../outside.mp4")
    assert staged == session.root / "input" / "outside.mp4" and staged.read_bytes() == small.read_bytes()
    with pytest.raises(ConfigError, match="limit is 1 MiB"):
        sessions.take_upload(session, big, "big.mp4")


def test_first_keyframe_keyframes_propagate_with_the_classic_renderer(server, synthetic_clip):
    app, url = server
    client, summary = _client(url, synthetic_clip)
    assert "96 × 64" in summary and "25 fps" in summary and "20 (0.80 s)" in summary and "aac" in summary.lower()
    arguments = _arguments(app, keyframes__keyframe_interval=8)

    status, anchor, *_ = client.predict(*arguments, api_name="/first_keyframe")
    assert "First keyframe ready" in status and "classic" in status
    expected = ClassicStylizer.from_prompt("a cartoon")(
        next(read_frames(synthetic_clip, resolution=64, size_multiple=16))
    )
    np.testing.assert_array_equal(read_image(anchor), expected)

    status, anchor, gallery, *_ = client.predict(*arguments, api_name="/keyframes")
    assert "3 keyframes ready" in status
    assert [item["caption"] for item in gallery] == ["frame 0", "frame 8", "frame 19"]

    status, _, _, video, comparison, download, figures, *_ = client.predict(*arguments, api_name="/propagate")
    assert status.startswith("Done: 20 frames") and "reused frames, keyframes" in status
    result_path = video["video"] if isinstance(video, dict) else video
    info = probe_video(result_path)
    assert info.frame_count == 20 and info.fps == 25 and (info.width, info.height) == (64, 48) and info.has_audio
    comparison_path = comparison["video"] if isinstance(comparison, dict) else comparison
    assert probe_video(comparison_path).width == 128
    assert Path(download).read_bytes() == Path(result_path).read_bytes()
    assert (
        "Warp error (output)" in figures
        and "CLIP scores not computed" in figures
        and "no CLIP model available" in figures
    )


def test_a_new_prompt_re_renders_the_anchor(server, synthetic_clip):
    app, url = server
    client, _ = _client(url, synthetic_clip)
    _, first, *_ = client.predict(*_arguments(app, prompt="a cartoon"), api_name="/first_keyframe")
    first_image = read_image(first)
    _, second, *_ = client.predict(*_arguments(app, prompt="an oil painting"), api_name="/first_keyframe")
    expected = ClassicStylizer.from_prompt("an oil painting")(
        next(read_frames(synthetic_clip, resolution=64, size_multiple=16))
    )
    np.testing.assert_array_equal(read_image(second), expected)
    assert not np.array_equal(first_image, read_image(second))


def test_cancel_stops_and_the_next_run_resumes(server, tmp_path):
    from rerender.synthetic import write_synthetic_video

    app, url = server
    clip = tmp_path / "long.mp4"
    write_synthetic_video(clip, num_frames=40, width=128, height=96, motion="mixed", fps=25, audio=False)
    client, _ = _client(url, clip)
    arguments = _arguments(app)
    job = client.submit(*arguments, api_name="/run_all")
    deadline = time.monotonic() + 60
    while not job.outputs() and time.monotonic() < deadline:  # the first update: the run has started
        time.sleep(0.02)
    client.predict(api_name="/cancel")
    status = job.result(timeout=120)[0]
    assert status.startswith("**Cancelled.**")
    status, _, _, video, *_ = client.predict(*arguments, api_name="/run_all")
    assert status.startswith("Done: 40 frames")
    assert probe_video(video["video"] if isinstance(video, dict) else video).frame_count == 40


def test_bad_input_and_bad_settings_are_page_messages(server, tmp_path, synthetic_clip):
    app, url = server
    text = tmp_path / "my notes.mp4"
    text.write_text("this is not a video\n")
    client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})  # a loaded CI machine answers slowly
    summary, status = client.predict(handle_file(str(text)), api_name="/summary")
    # the file as the user named it: no server path (the session folder, Gradio's upload cache), no raw errno
    message = _error(status)
    assert "'my notes.mp4' is not a readable video" in message and message in summary
    assert str(app.rerender_sessions.root) not in message and "/" not in message and "Errno" not in message
    assert "Traceback" not in message
    # A new browser session has its own workspace: the videos other sessions uploaded are not its input.
    status, *_ = client.predict(*_arguments(app), api_name="/first_keyframe")
    assert "no input video" in _error(status)

    client, _ = _client(url, synthetic_clip)
    status, *_ = client.predict(
        *_arguments(app, constraints__pixel_fusion_period="0.9, 0.2"), api_name="/first_keyframe"
    )
    assert re.search(r"pixel_fusion_period` must have start ≤ end", _error(status))
    # "diffusion" without weights (offline, none cached): the library's message, which says how to fetch them.
    status, *_ = client.predict(*_arguments(app, renderer="diffusion"), api_name="/first_keyframe")
    assert re.search("stable-diffusion-v1-5.* not in the Hugging Face cache.*rerender download", _error(status), re.S)
    status, *_ = client.predict(*_arguments(app, constraints__mask_strength=1.5), api_name="/keyframes")
    assert re.search(r"mask_strength` must be in \[0.0, 1.0\], got 1.5", _error(status))


def test_the_tiny_model_renders_diffusion_keyframes_as_translate_does(
    server, synthetic_clip, tiny_pipeline_dir, tmp_path
):
    from rerender.workflow.translation import translate

    app, url = server
    model = dict(
        model__base_model=str(tiny_pipeline_dir),
        model__vae="",
        control__model=str(tiny_pipeline_dir / "controlnet"),
        keyframes__keyframe_interval=8,
    )
    client, _ = _client(url, synthetic_clip)
    status, anchor, gallery, *_ = client.predict(
        *_arguments(app, prompt="a cat", renderer="diffusion", **model), api_name="/keyframes"
    )
    assert "3 keyframes ready" in status and "diffusion" in status and len(gallery) == 3

    config = load_config(REPO / "configs" / "tiny.yaml")
    direct = translate(
        synthetic_clip,
        "a cat",
        K=8,
        output=None,
        stage="keyframes",
        workspace=tmp_path / "ws",
        config=config,
        progress=False,
        base_model=str(tiny_pipeline_dir),
        **{"control.model": str(tiny_pipeline_dir / "controlnet")},
        added_prompt="best quality, extremely detailed",
        negative_prompt=None,  # the page's empty box: the base model's own
    )
    for item, index in zip(gallery, direct.keyframe_indices):
        image = item["image"] if isinstance(item["image"], str) else item["image"]["path"]
        np.testing.assert_array_equal(
            read_image(image), read_image(direct.workspace / "keyframes" / f"{index:04d}.png")
        )


def test_retouched_keyframes_are_propagated(server, synthetic_clip, tmp_path):
    from rerender.video import write_image

    app, url = server
    client, _ = _client(url, synthetic_clip)
    arguments = _arguments(app, keyframes__keyframe_interval=8)
    client.predict(*arguments, api_name="/run_all")
    painted = np.zeros((48, 64, 3), np.uint8)
    painted[:] = (255, 0, 0)
    write_image(painted, tmp_path / "0008.png")
    status, _ = client.predict([handle_file(str(tmp_path / "0008.png"))], api_name="/retouched")
    assert "Replaced 1 keyframe" in status
    write_image(painted, tmp_path / "0009.png")
    status, _ = client.predict([handle_file(str(tmp_path / "0009.png"))], api_name="/retouched")
    assert "must be named after a keyframe" in _error(status)
    status, _, _, video, *_ = client.predict(*arguments, api_name="/propagate")
    assert "reused frames, keyframes" in status and "propagation" not in status.split("reused")[1]
    frame_8 = list(read_frames(video["video"] if isinstance(video, dict) else video))[8]
    assert frame_8[..., 0].mean() > 200 and frame_8[..., 1].mean() < 60  # the painted red keyframe, through H.264


def test_the_ui_command_binds_to_this_machine_by_default():
    from rerender.cli import build_parser

    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", None, False)
    args = build_parser().parse_args(
        ["ui", "--host", "0.0.0.0", "--port", "8123", "--share", "--set", "resolution=256"]
    )
    assert (args.host, args.port, args.share, args.overrides) == ("0.0.0.0", 8123, True, ["resolution=256"])


def test_without_weights_the_page_offers_the_classic_renderer():
    from rerender.config import RerenderConfig
    from rerender.ui import environment_status

    status = environment_status(RerenderConfig())
    assert "No diffusion weights here" in status and "classic" in status and "stable-diffusion-v1-5" in status


# ------------------------------------------------------------------ the reference image, the still and text-only modes

TINY_MODEL = lambda folder: dict(
    model__base_model=str(folder), model__vae="", control__model=str(folder / "controlnet")
)  # noqa: E731


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_pipeline_dir):
    from diffusers import UNet2DConditionModel

    from tests.tiny_models import save_tiny_ip_adapter

    unet = UNet2DConditionModel.from_pretrained(tiny_pipeline_dir / "unet")
    return save_tiny_ip_adapter(tmp_path_factory.mktemp("tiny-ip-adapter"), unet)


def test_style_image_controls_render_as_translate_does(
    server, synthetic_clip, tiny_pipeline_dir, adapter_dir, tmp_path
):
    from rerender.config import PromptConfig, field_docstrings
    from rerender.video import write_image
    from rerender.workflow.translation import translate

    app, url = server
    by_path = app.rerender_page.settings
    assert by_path["prompt.style_image_scale"].info == field_docstrings(PromptConfig)["style_image_scale"] != ""
    rows = np.linspace(0, 255, 64, dtype=np.uint8)[:, None, None]
    style = np.concatenate(
        [np.full((64, 64, 1), 250, np.uint8), np.broadcast_to(rows, (64, 64, 1)), np.zeros((64, 64, 1), np.uint8)], 2
    )
    write_image(style, tmp_path / "my style (1).png")
    options = dict(
        **TINY_MODEL(tiny_pipeline_dir),
        keyframes__keyframe_interval=8,
        model__ip_adapter=str(adapter_dir),
        prompt__style_image_scale=1.0,
    )
    client, _ = _client(url, synthetic_clip)
    status, anchor, gallery, *_ = client.predict(
        *_arguments(app, prompt="a cat", renderer="diffusion", style=tmp_path / "my style (1).png", **options),
        api_name="/first_keyframe",
    )
    assert "First keyframe ready" in status
    direct = translate(
        synthetic_clip,
        "a cat",
        K=8,
        output=None,
        stage="first",
        workspace=tmp_path / "ws",
        config=load_config(REPO / "configs" / "tiny.yaml"),
        progress=False,
        base_model=str(tiny_pipeline_dir),
        **{"control.model": str(tiny_pipeline_dir / "controlnet")},
        added_prompt="best quality, extremely detailed",
        negative_prompt=None,  # the page's empty box: the base model's own
        ip_adapter=str(adapter_dir),
        style_image=str(tmp_path / "my style (1).png"),
        style_image_scale=1.0,
    )
    np.testing.assert_array_equal(read_image(anchor), read_image(direct.previews["first"]))
    _, plain, *_ = client.predict(
        *_arguments(app, prompt="a cat", renderer="diffusion", **options), api_name="/first_keyframe"
    )
    assert not np.array_equal(read_image(plain), read_image(anchor))  # the image steers the keyframe


def test_still_image_mode_animates_as_the_library_does(server, tmp_path):
    from rerender.synthetic import make_texture
    from rerender.video import write_image
    from rerender.workflow.animation import animate

    app, url = server
    still = make_texture(96, 128, np.random.default_rng(0))
    write_image(still, tmp_path / "still.png")
    client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})  # a loaded CI machine answers slowly
    status, anchor, gallery, video, _, download, *_ = client.predict(
        handle_file(str(tmp_path / "still.png")),
        "pan-right",
        None,
        0.8,
        10,
        *_arguments(app, keyframes__keyframe_interval=4),
        api_name="/animate",
    )
    assert status.startswith("Done: 8 frames from the still (pan-right)") and "classic" in status
    assert [item["caption"] for item in gallery] == ["frame 0", "frame 4", "frame 7"]  # the last frame too
    result_path = video["video"] if isinstance(video, dict) else video
    info = probe_video(result_path)
    assert (info.frame_count, float(info.fps)) == (8, 10.0)
    direct = animate(
        tmp_path / "still.png",
        "a cartoon",
        motion="pan-right",
        seconds=0.8,
        fps=10,
        output=tmp_path / "direct.mp4",
        config=load_config(REPO / "configs" / "tiny.yaml"),
        K=4,
        renderer="classic",
        progress=False,
        added_prompt="best quality, extremely detailed",
        negative_prompt=None,  # the page's empty box: the base model's own
    )
    for page_frame, direct_frame in zip(read_frames(result_path), read_frames(direct.output), strict=True):
        np.testing.assert_array_equal(page_frame, direct_frame)
    status, *_ = client.predict(None, "zoom-in", None, 1.0, 10, *_arguments(app), api_name="/animate")
    assert "no still image" in _error(status)


def test_text_only_mode_generates_as_the_library_does(server, tiny_pipeline_dir, tmp_path):
    from rerender.config import apply_overrides
    from rerender.diffusion.pipeline import RerenderPipeline
    from rerender.workflow.generation import BackgroundSmoothing, generate

    app, url = server
    client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})  # a loaded CI machine answers slowly
    arguments = _arguments(
        app, prompt="a red cube", renderer="diffusion", keyframes__keyframe_interval=2, **TINY_MODEL(tiny_pipeline_dir)
    )
    status, anchor, gallery, video, _, download, *_ = client.predict(
        3, 6, 64, 64, 4.0, 0.0, True, 0.8, *arguments, api_name="/generate"
    )
    assert status.startswith("Done: 3 frames from text, keyframes [0, 2]")
    result_path = video["video"] if isinstance(video, dict) else video
    assert probe_video(result_path).frame_count == 3
    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    config = apply_overrides(load_config(REPO / "configs" / "tiny.yaml"), {"model.base_model": str(tiny_pipeline_dir)})
    direct = generate(
        "a red cube",
        frames=3,
        K=2,
        output=tmp_path / "direct.mp4",
        pipeline=pipeline,
        motion=(4.0, 0.0),
        size=(64, 64),
        fps=6,
        negative_prompt=None,  # the page's empty box: the base model's own
        num_inference_steps=config.sampling.num_inference_steps,
        guidance_scale=config.sampling.guidance_scale,
        seed=0,
        config=config,
        progress=False,
        background_smoothing=BackgroundSmoothing(strength=0.8),
    )
    for item, keyframe in zip(gallery, direct.keyframes, strict=True):
        image = item["image"] if isinstance(item["image"], str) else item["image"]["path"]
        np.testing.assert_array_equal(read_image(image), keyframe)
    status, *_ = client.predict(0, 6, 64, 64, 4.0, 0.0, False, 0.6, *arguments, api_name="/generate")
    assert "`frames` must be an integer in [1, 3000], got 0" in _error(status)
    status, *_ = client.predict(
        3,
        6,
        64,
        64,
        4.0,
        0.0,
        False,
        0.6,
        *_arguments(app, prompt="a red cube", renderer="classic"),
        api_name="/generate",
    )
    assert "“Text only” needs the diffusion renderer" in _error(status)


# ------------------------------------------------------------------ issue 20: the web page


def test_the_choices_the_page_offers_are_the_config_literals():
    import typing

    from rerender.config import CHOICES, RendererName, Stage, choices, field_type
    from rerender.ui import build_app
    from rerender.ui.fields import DEFAULT_CHOICE, STAGE_BUTTONS, field_spec

    page = build_app().rerender_page
    offered = 0
    for path, component in page.settings.items():
        spec = field_spec(path)
        if typing.get_origin(spec.base) is not typing.Literal:
            continue
        assert spec.base in CHOICES.values(), f"{path}: a closed set of values that is not one of the config's aliases"
        expected = ([DEFAULT_CHOICE] if spec.optional else []) + list(choices(spec.base))
        assert [value for _, value in component.choices] == expected, path
        assert typing.get_args(field_type(path))  # the config's own type, not a copy
        offered += 1
    assert offered >= 8  # keyframe mode, ControlNet type, blend mode, preset, flow estimator, DIS preset, …
    assert [value for _, value in page.renderer.choices] == list(choices(RendererName))
    assert [stage for stage, _ in STAGE_BUTTONS] == list(choices(Stage)) == list(page.buttons)


def test_a_run_shows_its_progress_in_one_place_only(server):
    app, _ = server
    page = app.rerender_page
    runs = [page.buttons[stage]._id for stage in page.buttons] + [page.animate_button._id, page.generate_button._id]
    dependencies = [
        dependency
        for dependency in app.config["dependencies"]
        if any(target[0] in runs for target in dependency["targets"])
    ]
    assert len(dependencies) == len(runs)
    for dependency in dependencies:  # not on the anchor, the gallery and the videos: on the progress display
        assert dependency["show_progress_on"] == [page.progress._id]
        assert dependency["show_progress"] == "full"


def test_the_still_mode_works_with_the_values_it_shows(server, tmp_path):
    from rerender.camera import DEFAULT_AMOUNT
    from rerender.synthetic import make_texture
    from rerender.video import write_image

    app, url = server
    page = app.rerender_page
    motion, amount = page.still_motion.value, page.still_amount.value
    assert amount == DEFAULT_AMOUNT[motion] > 0  # not an empty field that the browser shows and sends as 0
    write_image(make_texture(96, 128, np.random.default_rng(1)), tmp_path / "still.png")
    client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})
    shown = [page.still_seconds.value, page.still_fps.value]
    assert shown == [4.0, 25.0]
    status, *_ = client.predict(
        handle_file(str(tmp_path / "still.png")),
        motion,
        amount,
        0.4,
        10,
        *_arguments(app, keyframes__keyframe_interval=4),
        api_name="/animate",
    )
    assert status.startswith(f"Done: 4 frames from the still ({motion})"), status
    # the field follows the move: each move's own default, which the library accepts
    from rerender.ui.runs import PageHandlers

    for _, choice in page.still_motion.choices:
        assert PageHandlers.on_motion(None, choice) == DEFAULT_AMOUNT[choice] > 0


def test_an_upload_during_a_run_never_touches_the_running_job(server, tmp_path, synthetic_clip):
    from rerender.synthetic import write_synthetic_video

    app, url = server
    long_clip = tmp_path / "long.mp4"
    write_synthetic_video(long_clip, num_frames=40, width=128, height=96, motion="mixed", fps=25, audio=False)
    client, _ = _client(url, long_clip)
    arguments = _arguments(app)
    job = client.submit(*arguments, api_name="/run_all")
    deadline = time.monotonic() + 60
    while not job.outputs() and time.monotonic() < deadline:  # the first update: the run has started
        time.sleep(0.02)
    summary, status = client.predict(handle_file(str(synthetic_clip)), api_name="/summary")
    assert "20 (0.80 s)" in summary and "queued" in status  # the page says what happens to the new video
    status, *_ = job.result(timeout=240)
    assert status.startswith("Done: 40 frames"), status  # the running job finished on its own input and workspace
    status, _, _, video, *_ = client.predict(*arguments, api_name="/run_all")
    assert status.startswith("Done: 20 frames"), status  # the next run takes the queued video
    assert probe_video(video["video"] if isinstance(video, dict) else video).frame_count == 20


def test_an_error_stays_in_the_status_area_until_the_next_action(server, synthetic_clip):
    app, url = server
    client, _ = _client(url, synthetic_clip)
    status, *_ = client.predict(*_arguments(app, prompt=""), api_name="/first_keyframe")
    assert "`prompt` is empty" in _error(status)  # a value of the status component, not a popup that goes away
    status, *_ = client.predict(*_arguments(app), api_name="/first_keyframe")
    assert status.startswith("First keyframe ready")  # the next action replaces it


def test_progress_is_honest_per_stage_and_the_figures_have_their_own(synthetic_clip, tmp_path):
    from rerender.ui import UiSessions, build_app
    from rerender.ui.runs import STAGE_NAMES, PageHandlers

    defaults = load_config(REPO / "configs" / "tiny.yaml")
    sessions = UiSessions(tmp_path / "sessions")
    page = build_app(sessions, "", defaults=defaults).rerender_page
    handlers = PageHandlers(page, sessions, defaults, "")
    session = sessions.get("one")
    sessions.take_upload(session, synthetic_clip, "clip.mp4")
    reports: list[tuple[float, str]] = []
    updates = []
    inputs = ("a cartoon", "", 0, "classic", [], "", None, *[c.value for c in page.settings.values()])
    with session.run():
        for update in handlers.stage_updates("all", session, inputs, lambda f, desc: reports.append((f, desc))):
            updates.append((len(reports), update))
    pattern = re.compile(r"(.+): (\d+)/(\d+)$")
    stages = []
    for fraction, desc in reports:  # each report is its own stage's count, and the fraction is that count
        name, done, total = pattern.match(desc).groups()
        assert fraction == pytest.approx(int(done) / max(int(total), 1)) and int(done) <= int(total)
        if not stages or stages[-1] != name:
            stages.append(name)
    assert stages[-1] == STAGE_NAMES["evaluation"] and STAGE_NAMES["propagation"] in stages
    # the video is shown (status "Computing the figures…") before the figures' progress starts, not at "100 %"
    shown_at, shown = next((count, update) for count, update in updates if page.result_video in update)
    assert shown[page.status].endswith("Computing the figures…")
    assert all(not desc.startswith(STAGE_NAMES["evaluation"]) for _, desc in reports[:shown_at])
    assert any(desc.startswith(STAGE_NAMES["evaluation"]) for _, desc in reports[shown_at:])
    last = updates[-1][1]
    assert "Warp error (output)" in last[page.figures] and last[page.status].startswith("Done: 20 frames")
