"""Last round's "noticed, not mended" list: results name absolute paths, `generate` takes `callback` and `cancel`,
`download` refuses a sound prompt the run would refuse, `env` names the flags the user typed and runs the run's own
checks, `batch` names every empty video up front, GPU placement of the depth annotator and CLAP, the IP-Adapter's
image encoder leaves the offload hooks, a loaded pipeline beside `base_model`/`vae`, and concurrent `loading_bars`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

FAST = dict(
    resolution=64,
    size_multiple=16,
    propagation_preset="fast",
    workers=1,
    flow_estimator="dis",
    dis_preset="fast",
    frame_stride=6,
    keyframe_interval=1,
)

# 1. Results name absolute paths: a relative one would stop naming the file after the caller's `os.chdir`


def test_translate_result_paths_are_absolute_and_survive_chdir(silent_clip, tmp_path, monkeypatch):
    import rerender

    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    # the caller's callback moves the working folder during the run (a notebook cell, another thread)
    result = rerender.translate(
        silent_clip,
        "a cartoon",
        output="out.mp4",
        renderer="classic",
        progress=False,
        stage="first",
        callback=lambda stage, done, total: os.chdir(tmp_path),
        **FAST,
    )
    assert Path.cwd() == tmp_path
    assert result.workspace == tmp_path / "run" / "out.mp4.work" and result.workspace.is_dir()
    assert result.previews["first"].parent.parent == result.workspace and result.previews["first"].is_file()


def test_generation_animation_and_job_paths_are_absolute(tmp_path, monkeypatch):
    from rerender.camera import KnownMotionFlow
    from rerender.workflow.animation import AnimationResult
    from rerender.workflow.batching import Job
    from rerender.workflow.generation import GenerationResult
    from rerender.workflow.translation import TranslationResult

    monkeypatch.chdir(tmp_path)
    generated = GenerationResult(Path("out.mp4"), [0], [], 1)
    assert generated.output == tmp_path / "out.mp4"
    job = Job(Path("clips/../a.mp4"), Path("styled/a.mp4"))
    assert (job.video, job.output, job.workspace) == (
        tmp_path / "a.mp4",
        tmp_path / "styled" / "a.mp4",
        tmp_path / "styled" / "a.mp4.work",
    )
    translation = TranslationResult(None, [0], 1, {}, Path("w"), "classic", previews={"first": Path("w/k.png")})
    assert translation.output is None and translation.workspace == tmp_path / "w"
    animation = AnimationResult(translation, None, Path("out_clip_frames"), KnownMotionFlow.__new__(KnownMotionFlow))
    assert animation.clip is None and animation.clip_frames == tmp_path / "out_clip_frames"


# 2. `generate` takes `callback(stage, done, total)` and `cancel`, as `translate` does


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_pipeline_dir):
    from rerender.diffusion.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


GENERATE = dict(
    frames=4, K=3, size=(64, 64), num_inference_steps=2, guidance_scale=1.0, noise_steps=(0, 1), progress=False
)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [({"callback": 5}, "`callback` must be a function"), ({"cancel": "yes"}, "`cancel` must be a threading.Event")],
)
def test_generate_checks_callback_and_cancel_as_translate_does(tmp_path, arguments, named):
    import rerender
    from rerender.errors import ConfigError

    with pytest.raises(ConfigError, match=named):
        rerender.generate("a cat", output=tmp_path / "o.mp4", **GENERATE, **arguments)


def test_generate_reports_keyframes_then_every_propagated_frame(tiny_pipeline, tmp_path):
    import rerender

    calls = []
    result = rerender.generate(
        "a cat",
        output=tmp_path / "o.mp4",
        pipeline=tiny_pipeline,
        callback=lambda *call: calls.append(call),
        **GENERATE,
    )
    assert result.keyframe_indices == [0, 3]
    assert calls == [("keyframes", 0, 2), ("keyframes", 2, 2), ("propagation", 1, 2), ("propagation", 2, 2)]


@pytest.mark.parametrize("stop_at", [("keyframes", 0, 2), ("propagation", 1, 2)])
def test_generate_cancel_stops_at_the_next_safe_point_and_writes_nothing(tiny_pipeline, tmp_path, stop_at):
    import threading

    import rerender
    from rerender.errors import CancelledError

    cancel, denoised = threading.Event(), []
    handle = tiny_pipeline.unet.register_forward_hook(lambda *_: denoised.append(1))

    def callback(*call):
        if call == stop_at:
            cancel.set()

    try:
        with pytest.raises(CancelledError, match="nothing was written"):
            rerender.generate(
                "a cat",
                output=tmp_path / "o.mp4",
                pipeline=tiny_pipeline,
                callback=callback,
                cancel=cancel,
                **GENERATE,
            )
    finally:
        handle.remove()
    assert list(tmp_path.iterdir()) == []  # no video, no partial file
    assert len(denoised) == (0 if stop_at[0] == "keyframes" else 2 + 2)  # both keyframes: 2 steps each (i1 = 0)


def test_generate_cli_stops_at_a_safe_point_on_ctrl_c(tmp_path, monkeypatch, capsys):
    import signal

    from rerender.cli import main
    from rerender.errors import CancelledError
    from rerender.workflow import generation

    def interrupted_generate(prompt, *, cancel, **arguments):  # the user presses Ctrl-C during the run
        os.kill(os.getpid(), signal.SIGINT)
        assert cancel.is_set()  # the first Ctrl-C asks for a stop at the next safe point, it does not kill
        raise CancelledError("cancelled during the keyframes stage")

    monkeypatch.setattr(generation, "generate", interrupted_generate)
    assert main(["generate", "-p", "a cat", "-o", str(tmp_path / "o.mp4")]) == 130
    assert capsys.readouterr().err.strip().endswith("(generate keeps no workspace)")


# 3. `rerender download --audio-prompt` refuses a sound file the run would refuse before fetching CLAP


def test_download_refuses_a_silent_sound_prompt_before_anything_is_fetched(tmp_path, monkeypatch, capsys):
    from rerender import weights
    from rerender.cli import main
    from tests.test_sound import RATE, write_wav

    wav = write_wav(tmp_path / "silent.wav", np.zeros(2 * RATE, np.float32))

    def fetched(*args, **kwargs):
        raise AssertionError("the download started for a sound prompt the run refuses")

    monkeypatch.setattr(weights, "hub_reachable", fetched)
    monkeypatch.setattr(weights, "download_sources", fetched)
    assert main(["download", "--no-flow", "-q", "--audio-prompt", str(wav)]) == 2
    err = capsys.readouterr().err
    assert f"--audio-prompt {str(wav)!r} is silent" in err  # the run's message, with the flag the user typed
    # a dry run fetches nothing: it still lists what the config names
    monkeypatch.undo()
    monkeypatch.setattr(weights, "hub_reachable", lambda: False)
    from rerender.config import RerenderConfig, apply_overrides

    config = apply_overrides(RerenderConfig(), {"prompt.audio_prompt": str(wav)})
    listed = weights.download_weights(config, include_flow=False, dry_run=True, progress=False)
    assert "sound model (CLAP)" in [record["role"] for record in listed]


# 4. `rerender env` names an option by the flag the user typed, as the run's CLI does; 5. and runs the run's checks


def test_env_names_the_flag_the_user_typed_as_the_run_does(tmp_path, capsys):
    from rerender.cli import main

    missing = str(tmp_path / "no-such-model")
    outputs = {}
    for command in ("env", "translate"):
        given = ["--model", missing] if command == "env" else [str(tmp_path / "v.mp4"), "-p", "a", "--model", missing]
        main([command, *given])
        captured = capsys.readouterr()
        outputs[command] = captured.out + captured.err
    refused = next(line for line in outputs["env"].splitlines() if line.startswith("translate refuses this config: "))
    assert refused.removeprefix("translate refuses this config: ") == outputs["translate"].strip().removeprefix(
        "error: "
    )
    assert refused.startswith(f"translate refuses this config: --model {missing!r} does not exist")
    # set in a config file (or --set), it keeps its config key, as the run's CLI keeps it
    from rerender.cli import build_parser
    from rerender.cli.commands.env import _in_cli_terms

    message = f"`model.base_model` {missing!r} does not exist"
    assert (
        _in_cli_terms(build_parser().parse_args(["env", "--set", f"model.base_model={missing}"]))(message) == message
    )


def test_env_refuses_a_silent_sound_prompt_as_the_run_does(tmp_path):
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.environment import model_report
    from rerender.errors import ConfigError
    from rerender.workflow.preflight import check_run
    from tests.test_sound import RATE, write_wav

    wav = write_wav(tmp_path / "silent.wav", np.zeros(2 * RATE, np.float32))
    options = {"prompt.audio_prompt": str(wav), "model.renderer": "classic"}
    with pytest.raises(ConfigError) as refused:
        check_run(None, overrides=options, stage="keyframes")
    assert model_report(apply_overrides(RerenderConfig(), options))["translate"] == f"refused: {refused.value}"
    # 'source' is the video's own sound: env does not know the video, so only the vocabulary is checked
    source = apply_overrides(RerenderConfig(), {**options, "prompt.audio_prompt": "source"})
    verdict = model_report(source)["translate"]  # here: refused for the CLAP model that is not here (offline)
    assert "soundtrack" not in verdict and "silent" not in verdict


# 6. a batch names every empty video up front, as the missing ones, before any model loads


def test_a_batch_folder_with_empty_videos_is_refused_naming_each_before_any_job(silent_clip, tmp_path, monkeypatch):
    from rerender.errors import VideoReadError
    from rerender.workflow import batching

    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "a.mp4").symlink_to(silent_clip)
    for name in ("b.mp4", "c.mov"):
        (folder / name).touch()  # a copy that never finished
    (folder / "frames").mkdir()

    def started(*args, **kwargs):
        raise AssertionError("a job started although the list was refused")

    monkeypatch.setattr(batching, "run_job", started)
    with pytest.raises(VideoReadError, match=r"2 of 3 job\(s\)") as refused:
        batching.batch(folder, "a cat", tmp_path / "out", renderer="classic")
    assert f"job 2: '{folder / 'b.mp4'}' is empty (0 bytes)" in str(refused.value)
    assert f"job 3: '{folder / 'c.mov'}' is empty (0 bytes)" in str(refused.value)
    assert "job 1:" not in str(refused.value) and not (tmp_path / "out").exists()
    assert batching._unreadable(folder / "frames") == f"{str(folder / 'frames')!r} is an empty folder (no frames)"


# 7. GPU paths: the unloaded image encoder leaves the offload chain; the depth annotator and CLAP follow the model


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_pipeline):
    from tests.tiny_models import save_tiny_ip_adapter

    return save_tiny_ip_adapter(tmp_path_factory.mktemp("tiny-ip-adapter"), tiny_pipeline.unet)


def test_an_unloaded_image_encoder_leaves_the_offload_hook_chain(tiny_pipeline, adapter_dir, tmp_path):
    # was: with `model.cpu_offload`, after a style-image run the UNet's offload hook still pointed at the dropped
    # image encoder (its `prev_module_hook`), keeping it in host memory until the next re-hook. The CPU stands in
    # for the GPU: the hooks are the same, only the devices coincide.
    import gc
    import weakref

    from rerender.config import RerenderConfig, apply_overrides
    from rerender.diffusion.ip_adapter import style_adapter
    from rerender.video import write_image

    pipeline = tiny_pipeline
    pipeline.enable_model_cpu_offload(device="cpu")
    style = write_image(np.full((16, 16, 3), 200, np.uint8), tmp_path / "style.png")
    config = apply_overrides(
        RerenderConfig(),
        {"prompt.style_image": str(style), "model.ip_adapter": str(adapter_dir), "prompt.style_image_scale": 0.5},
    )
    try:
        with style_adapter(pipeline, config):
            encoder = weakref.ref(pipeline.image_encoder)
            assert pipeline.unet._hf_hook.prev_module_hook.model is encoder()  # the chain runs through the encoder
        gc.collect()
        assert encoder() is None  # nothing holds it: not the chain, not `_all_hooks`
        modules = {name: item for name, item in pipeline.components.items() if isinstance(item, torch.nn.Module)}
        assert "image_encoder" not in modules and all(hasattr(module, "_hf_hook") for module in modules.values())
        assert pipeline.unet._hf_hook.prev_module_hook.model is pipeline.text_encoder  # offload on, re-chained
    finally:
        pipeline.remove_all_hooks()  # the module's pipeline, as the other tests use it


@pytest.mark.parametrize(
    ("model_device", "cuda", "expected"), [("cuda:1", True, "cuda:1"), ("cpu", True, "cpu"), ("auto", True, "cuda")]
)
def test_helper_networks_follow_the_models_device(monkeypatch, model_device, cuda, expected):
    from rerender.config import ModelConfig, RerenderConfig
    from rerender.workflow.preflight import helper_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert helper_device(RerenderConfig(model=ModelConfig(device=model_device))) == expected

    class Loaded:  # a loaded pipeline decides: its execution device
        _execution_device = torch.device("cuda", 2)

    assert helper_device(RerenderConfig(model=ModelConfig(device=model_device)), Loaded()) == "cuda:2"


class _Stop(Exception):
    """Ends a run once the device under test was chosen."""


def test_animates_depth_annotator_runs_on_the_models_gpu(monkeypatch):
    # was: motion 'orbit' without a depth map ran MiDaS with no device: on the CPU next to a GPU model, and never on
    # the `model.device: cuda:1` the user named. The CUDA device is faked: only the annotator's placement is checked.
    import sys
    import types

    import rerender
    from rerender.workflow import animation

    moved = []

    class MidasDetector:  # controlnet-aux's interface: from_pretrained, to, __call__(..., output_type="np")
        @classmethod
        def from_pretrained(cls, path):
            return cls()

        def to(self, device):
            moved.append(str(device))
            return self

        def __call__(self, frame, detect_resolution, image_resolution, output_type):
            return np.tile(np.linspace(0, 255, frame.shape[1], dtype=np.uint8), (frame.shape[0], 1))

    monkeypatch.setitem(sys.modules, "controlnet_aux", types.SimpleNamespace(MidasDetector=MidasDetector))

    def motion_path(*args, disparity, **kwargs):
        assert disparity.shape == (64, 64)
        raise _Stop

    monkeypatch.setattr(animation, "motion_path", motion_path)
    with pytest.raises(_Stop):
        rerender.animate(
            np.full((64, 64, 3), 100, np.uint8), "a", motion="orbit", renderer="classic", device="cuda:1", seconds=0.2
        )
    assert moved == ["cuda:1"]


def test_the_sound_model_runs_on_the_models_gpu(synthetic_clip, tmp_path, monkeypatch):
    # was: CLAP went to "cuda" (cuda:0) whenever torch saw a GPU, whatever `model.device` named
    import rerender
    from rerender import sound

    devices = []

    def scorer(model, device="cpu"):
        devices.append(device)
        raise _Stop

    monkeypatch.setattr(sound, "check_audio_model", lambda *args: None)  # as if CLAP were cached
    monkeypatch.setattr(sound, "ClapScorer", scorer)
    with pytest.raises(_Stop):
        rerender.translate(
            synthetic_clip,
            "a cartoon",
            output=tmp_path / "o.mp4",
            renderer="classic",
            audio_prompt="source",
            device="cuda:1",
            progress=False,
        )
    assert devices == ["cuda:1"]


# 8. `base_model` / `vae` beside a loaded pipeline: refused when passed in the call, warned about from the config


class _LoadedPipeline:
    """A loaded pipeline as `check_run` sees one: callable, its family, and what `load_pipeline` recorded."""

    family = "sd15"

    def __init__(self, base_model: str, vae: str | None = None) -> None:
        self._rerender_sources = {"base_model": base_model, "vae": vae}

    def __call__(self, *args, **kwargs):
        raise AssertionError("not rendered here")


def test_base_model_or_vae_passed_beside_a_loaded_pipeline_is_refused_naming_both(tmp_path, monkeypatch):
    from rerender.errors import ConfigError
    from rerender.workflow.preflight import check_run

    loaded = _LoadedPipeline(str(tmp_path / "model-a"), "stabilityai/sd-vae-ft-mse")
    for option, value in (("base_model", str(tmp_path / "model-b")), ("vae", "madebyollin/other-vae")):
        with pytest.raises(ConfigError, match=rf"`{option}` '{value}' \(the pipeline was loaded from '.*'\)"):
            check_run(None, overrides={option: value}, pipeline=loaded, stage="keyframes", check_model=False)
    # the same weights, spelled otherwise (a relative path), are what the pipeline holds: nothing to refuse
    monkeypatch.chdir(tmp_path)
    check_run(None, overrides={"base_model": "model-a"}, pipeline=loaded, stage="keyframes", check_model=False)


def test_base_model_or_vae_in_the_config_beside_a_loaded_pipeline_is_warned_about(tmp_path, caplog):
    import logging

    from rerender.config import RerenderConfig, apply_overrides
    from rerender.workflow.preflight import check_run

    config = apply_overrides(RerenderConfig(), {"model.base_model": str(tmp_path / "model-b")})
    with caplog.at_level(logging.WARNING, logger="rerender.workflow.preflight"):
        check_run(config, pipeline=_LoadedPipeline(str(tmp_path / "model-a")), stage="keyframes", check_model=False)
        assert (
            f"`model.base_model` is '{tmp_path / 'model-b'}', but the given `pipeline` was loaded from " in caplog.text
        )
        assert str(tmp_path / "model-a") in caplog.text
        caplog.clear()
        # a pipeline read from the hub cache is the hub id's; the default model, unset, is nobody's mistake
        cached = "/cache/huggingface/hub/models--someone--model/snapshots/0123abc"
        same = apply_overrides(RerenderConfig(), {"model.base_model": "someone/model"})
        check_run(same, pipeline=_LoadedPipeline(cached), stage="keyframes", check_model=False)
        check_run(None, pipeline=_LoadedPipeline(str(tmp_path / "model-a")), stage="keyframes", check_model=False)
    assert caplog.text == ""


def test_load_pipeline_records_what_it_loaded_and_diffusers_pipelines_say_their_folder(
    tiny_pipeline, tiny_pipeline_dir
):
    from rerender.config import ModelConfig
    from rerender.diffusion.loading import load_pipeline, loading_bars
    from rerender.workflow.preflight import pipeline_source, same_weights

    assert pipeline_source(tiny_pipeline, "base_model") == str(tiny_pipeline_dir)  # from_pretrained's folder
    assert same_weights(str(tiny_pipeline_dir / "vae"), tiny_pipeline, "vae") is True
    assert same_weights("stabilityai/sd-vae-ft-mse", tiny_pipeline, "vae") is False
    with loading_bars(False):
        loaded = load_pipeline(ModelConfig(base_model=str(tiny_pipeline_dir), vae=str(tiny_pipeline_dir / "vae")), ())
    assert (pipeline_source(loaded, "base_model"), pipeline_source(loaded, "vae")) == (
        str(tiny_pipeline_dir),
        str(tiny_pipeline_dir / "vae"),
    )


# 9. `loading_bars` is correct for concurrent runs: the global switches stay off until the last quiet run leaves


def test_loading_bars_of_two_concurrent_quiet_runs_and_a_loud_one(monkeypatch):
    import threading

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from rerender.diffusion.loading import loading_bars

    diffusers_logging.enable_progress_bar()
    transformers_logging.enable_progress_bar()

    def bars_on() -> tuple[bool, bool]:
        return diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()

    seen: dict[str, tuple[bool, bool]] = {}
    first_in, second_in, first_out, loud_in, loud_out = (threading.Event() for _ in range(5))

    def first():  # a quiet run that finishes loading first
        with loading_bars(False):
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():  # a quiet run still loading when the first one is done
        first_in.wait(5)
        with loading_bars(False):
            second_in.set()
            first_out.wait(5)
            loud_in.wait(5)
            seen["second, after the first left"] = bars_on()
            loud_out.wait(5)
            seen["second, after the loud one left"] = bars_on()

    def loud():  # a run with bars on, loading meanwhile
        first_out.wait(5)
        with loading_bars(True):
            loud_in.set()
        loud_out.set()

    threads = [threading.Thread(target=target) for target in (first, second, loud)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"second, after the first left": (False, False), "second, after the loud one left": (False, False)}
    assert bars_on() == (True, True)  # restored when the last quiet run left
    diffusers_logging.disable_progress_bar()  # a switch the user turned off stays off
    with loading_bars(False):
        pass
    assert not diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.enable_progress_bar()
