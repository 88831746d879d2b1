"""What a new user runs into (fourth round): each case a defect found by using the CLI, the Python API and the docs
as a newcomer would, with the behaviour that should have happened (the argument as typed, the value, what is
valid; exit 2 for usage errors, before any expensive work)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerender.cli import main

REPO = Path(__file__).resolve().parents[1]


class _Stop(Exception):
    """Raised by a stand-in once the keyframe renderer has seen its arguments."""


@pytest.fixture
def text_keyframe_call(monkeypatch):
    """`generate` up to its keyframe renderer, with no model loaded: returns the renderer's arguments."""
    import rerender.workflow.generation as generation
    from rerender.diffusion import loading

    seen: dict = {}

    def render(pipeline, prompt, indices, motion, size, **kwargs):
        seen.update(kwargs, seed=kwargs["generator"].initial_seed())
        raise _Stop

    monkeypatch.setattr(generation, "render_text_keyframes", render)
    monkeypatch.setattr(loading, "load_pipeline", lambda *args, **kwargs: object())

    def call(*args, **kwargs):
        seen.clear()
        with pytest.raises(_Stop):
            generation.generate(*args, **kwargs)
        return dict(seen)

    return call


def test_python_generate_takes_the_seed_and_steps_from_the_config(text_keyframe_call, tiny_pipeline_dir, tmp_path):
    # was: `rerender.generate(config=...)` ran seed 0 whatever `sampling.seed` said (only the CLI read it)
    from rerender.config import RerenderConfig, apply_overrides

    config = apply_overrides(
        RerenderConfig(), {"base_model": str(tiny_pipeline_dir), "seed": 7, "num_inference_steps": 5}
    )
    common = dict(frames=3, K=2, size=(64, 64), config=config, progress=False, output=tmp_path / "a.mp4")
    seen = text_keyframe_call("a cat", **common)
    assert (seen["seed"], seen["num_inference_steps"]) == (7, 5)
    seen = text_keyframe_call("a cat", seed=3, num_inference_steps=4, **common)  # an explicit argument wins
    assert (seen["seed"], seen["num_inference_steps"]) == (3, 4)


@pytest.mark.parametrize(
    ("frames", "keyframes", "message"),
    [
        ([], {0: "key"}, "`frames` is empty"),
        ("gray", {}, "`keyframes` is empty"),
        ("gray", {5: "key"}, "keyframe index 5 is outside the video; valid indices: 0 … 2"),
        ("gray", {0: "small"}, r"`keyframes\[0\]` must be RGB uint8 of the frames' shape \(16, 16, 3\)"),
        ("float", {0: "key"}, "`frames` must hold RGB uint8"),
    ],
)
def test_propagate_video_refuses_bad_frames_with_the_project_s_errors(frames, keyframes, message):
    # was: a plain ValueError, not one of `rerender.errors` (which the CLI and callers catch as RerenderError)
    import numpy as np

    from rerender.errors import FlowInputError
    from rerender.propagation import propagate_video

    made = {
        "gray": [np.full((16, 16, 3), 10 * t, np.uint8) for t in range(3)],
        "float": [np.zeros((16, 16, 3), np.float32)] * 3,
        "key": np.full((16, 16, 3), 200, np.uint8),
        "small": np.full((8, 8, 3), 200, np.uint8),
    }
    frames = made.get(frames, frames) if isinstance(frames, str) else frames
    keyframes = {index: made[key] for index, key in keyframes.items()}
    with pytest.raises(FlowInputError, match=message):
        propagate_video(frames, keyframes, progress=False, workers=1)


def test_propagate_video_names_the_python_argument_of_a_device_that_cannot_run(monkeypatch):
    # was: "`propagation.device` is 'cuda'", a config option the Python caller never wrote
    import numpy as np
    import torch

    from rerender.errors import ConfigError
    from rerender.propagation import PropagationOptions, propagate_video

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    frames = [np.zeros((16, 16, 3), np.uint8)] * 2
    with pytest.raises(ConfigError, match=r"`options.device` is 'cuda' but torch .*`options.engine='numba'`") as error:
        propagate_video(frames, {0: frames[0]}, options=PropagationOptions(device="cuda"), progress=False)
    assert "propagation.device" not in str(error.value)


def test_a_null_seed_draws_a_random_seed_and_logs_it(text_keyframe_call, tiny_pipeline_dir, tmp_path, caplog):
    # was: `--set seed=null` (whose help says null draws a seed) ran seed 0 on `generate`
    import logging

    from rerender.config import RerenderConfig, apply_overrides

    config = apply_overrides(RerenderConfig(), {"base_model": str(tiny_pipeline_dir), "seed": None})
    common = dict(frames=3, K=2, size=(64, 64), config=config, progress=False, output=tmp_path / "a.mp4")
    with caplog.at_level(logging.INFO, logger="rerender"):
        seeds = [text_keyframe_call("a cat", **common)["seed"] for _ in range(2)]
    assert seeds[0] != seeds[1]  # drawn (two equal 31-bit draws: 1 in 2 billion)
    assert all(f"sampling.seed is null: drew seed {seed}" in caplog.text for seed in seeds)  # reproducible


def test_the_cli_passes_a_null_seed_on_as_null(monkeypatch, tmp_path):
    from rerender.workflow import generation

    seen = {}

    def fake_generate(prompt, **kwargs):
        seen.update(kwargs)
        raise generation.ConfigError("stop")

    monkeypatch.setattr(generation, "generate", fake_generate)
    assert main(["generate", "-p", "a cat", "-o", str(tmp_path / "out.mp4"), "--set", "seed=null"]) == 2
    assert seen["seed"] is None


def test_translate_logs_the_seed_it_draws_for_a_null_seed(tmp_path, caplog):
    import logging

    from rerender.workflow.renderers import recorded_seed

    with caplog.at_level(logging.INFO, logger="rerender"):
        seed = recorded_seed(tmp_path)
    assert f"sampling.seed is null: drew seed {seed}" in caplog.text
    assert recorded_seed(tmp_path) == seed  # kept in the workspace: a resumed run continues with it


def test_generate_refuses_an_empty_prompt_unless_a_style_image_or_sound_says_what_to_show(
    text_keyframe_call, tiny_pipeline_dir, tmp_path, capsys
):
    # was: `generate -p ""` refused and `translate -p ""` ran, with no rule saying why; the rule (docs: translate a
    # video): a prompt may be empty on purpose when something else gives the content (translate: the video;
    # generate: a style image or a sound), else it is refused naming it
    import numpy as np
    from PIL import Image

    from rerender.errors import ConfigError
    from rerender.workflow.generation import generate

    common = dict(frames=3, K=2, size=(64, 64), progress=False, output=tmp_path / "a.mp4")
    for prompt in ("", "   "):
        with pytest.raises(
            ConfigError, match=r"`prompt` is empty \('\s*'\): .*\(`style_image`\) or a sound \(`audio_prompt`\)"
        ):
            generate(prompt, base_model=str(tiny_pipeline_dir), **common)
    assert main(["generate", "-p", " ", "-o", str(tmp_path / "b.mp4"), "--model", str(tiny_pipeline_dir)]) == 2
    err = capsys.readouterr().err
    assert "-p/--prompt is empty (' ')" in err and "(--style-image) or a sound (--audio-prompt)" in err
    style = tmp_path / "style.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(style)
    with pytest.raises(Exception) as error:  # past the prompt check: this machine has no IP-Adapter weights
        generate("", base_model=str(tiny_pipeline_dir), style_image=str(style), **common)
    assert "prompt" not in str(error.value)


def test_translate_warns_about_a_whitespace_prompt_as_about_an_empty_one(silent_clip, tmp_path, caplog, monkeypatch):
    # was: `translate -p "  "` ran unprompted without the warning an empty prompt gets
    import logging

    from rerender.workflow import translation

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(translation, "probe_video", stop)  # just after the prompt's checks, before any decoding
    with caplog.at_level(logging.WARNING, logger="rerender"), pytest.raises(Stop):
        translation.translate(silent_clip, "   ", output=tmp_path / "o.mp4", renderer="classic")
    assert "no prompt is set" in caplog.text


def _translate_args(base, tmp_path, *settings):
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    args = ["translate", demo, "-p", "x", "-o", str(out), "--model", str(base), "--renderer", "diffusion"]
    for setting in settings:
        args += ["--set", setting]
    return [*args, "--stage", "first"]


@pytest.mark.parametrize(
    ("base", "scaling", "made_for", "valid"),
    [("sdxl", 0.18215, "SD 1.5", "SDXL VAE"), ("sd15", 0.13025, "SDXL", "SD 1.5 VAE")],
)
def test_a_vae_of_the_other_family_is_refused_before_any_frame_is_decoded(
    base, scaling, made_for, valid, tiny_sdxl_dir, tiny_pipeline_dir, tmp_path, capsys
):
    # was: an SD 1.5 VAE on SDXL (both 4 latent channels) loaded and decoded washed-out keyframes (scaling 0.18215
    # against SDXL's 0.13025); the other way round likewise
    base_dir = tiny_sdxl_dir if base == "sdxl" else tiny_pipeline_dir
    vae = tmp_path / "vae"
    vae.mkdir()
    (vae / "config.json").write_text(
        f'{{"_class_name": "AutoencoderKL", "latent_channels": 4, "scaling_factor": {scaling}}}'
    )
    args = _translate_args(base_dir, tmp_path, f"control.0.model={base_dir}/controlnet", f"vae={vae}")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"`model.vae` '{vae}' is made for {made_for} (scaling_factor {scaling})" in err and valid in err
    assert not (tmp_path / "out.mp4.work").exists()  # refused before any frame was decoded


def test_a_control_mode_on_a_controlnet_that_is_not_a_union_is_refused(tiny_sdxl_dir, tmp_path, capsys):
    # was: `control.0.control_mode` on a plain ControlNet was silently ignored
    args = _translate_args(
        tiny_sdxl_dir, tmp_path, f"control.0.model={tiny_sdxl_dir}/controlnet", "control.0.control_mode=3"
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "`control[0].control_mode` is 3, but" in err and "is not a ControlNet Union" in err
    assert "leave control_mode unset" in err
    assert not (tmp_path / "out.mp4.work").exists()


@pytest.mark.parametrize(("family", "count"), [("flux", 4), ("zimage", 3)])
def test_cross_frame_blocks_above_the_model_s_block_count_is_refused(family, count, tmp_path, capsys):
    # was: `constraints.cross_frame_blocks=40` on a model with fewer blocks ran with all of them, silently
    from tests.tiny_flux import save_tiny_flux
    from tests.tiny_zimage import save_tiny_zimage

    base, controlnet = (save_tiny_flux if family == "flux" else save_tiny_zimage)(tmp_path / family)
    args = _translate_args(
        base, tmp_path, f"control.0.model={controlnet}", f"constraints.cross_frame_blocks={count + 1}"
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"`constraints.cross_frame_blocks` is {count + 1}, but" in err and f"has {count} blocks" in err
    assert f"1 to {count}" in err
    assert not (tmp_path / "out.mp4.work").exists()


def test_env_says_translate_refuses_a_controlnet_folder_given_as_the_model(tiny_pipeline_dir, tmp_path, capsys):
    # was: `rerender env --model CONTROLNET_FOLDER` said the CLI falls back to the classic stylizer, while
    # `translate --model CONTROLNET_FOLDER` refuses it (exit 2)
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.environment import model_report

    folder = str(tiny_pipeline_dir / "controlnet")
    report = model_report(apply_overrides(RerenderConfig(), {"base_model": folder}))
    assert report["translate"].startswith("refused: ") and "falls back" not in report["translate"]
    assert folder in report["translate"]
    demo = str(REPO / "rerender" / "assets" / "demo.mp4")
    assert main(["translate", demo, "-p", "x", "-o", str(tmp_path / "o.mp4"), "--model", folder]) == 2


def test_a_boolean_flag_s_help_says_what_it_does_not_the_field_s_raw_default():
    # was: "--no-deinterlace … (default: True)": True is the field's default, the flag's effect is the opposite
    import argparse

    from rerender.cli.options import add_config_option

    parser = argparse.ArgumentParser()
    add_config_option(parser, "--no-deinterlace", path="video.deinterlace", action="store_const", const=False)
    add_config_option(parser, "--loose", path="constraints.loose_cross_frame_attention", action="store_true")
    helps = {action.dest: action.help for action in parser._actions}
    assert helps["video.deinterlace"].endswith("(on by default; this flag turns it off)")
    assert helps["constraints.loose_cross_frame_attention"].endswith("(off by default; this flag turns it on)")
    assert "default: True" not in helps["video.deinterlace"] and "default: False" not in str(helps)
    assert parser.parse_args(["--no-deinterlace"]).__dict__["video.deinterlace"] is False


def test_generate_without_progress_draws_no_denoising_bars(
    text_keyframe_call, tiny_pipeline_dir, tmp_path, monkeypatch
):
    # was: `generate -q` on Flux / Z-Image drew a bar per denoising pass (the flow path's `denoise`), while the
    # caller had asked for none; the pipeline's own setting is restored afterwards
    from rerender.config import RerenderConfig, apply_overrides

    class Pipeline:
        _progress_bar_config = {"leave": False}

        def set_progress_bar_config(self, **kwargs):
            self._progress_bar_config = kwargs

    import rerender.workflow.generation as generation
    from rerender.diffusion import loading

    pipeline, seen = Pipeline(), []
    render = generation.render_text_keyframes  # the fixture's stand-in

    def spy(pipe, *args, **kwargs):
        seen.append(dict(pipe._progress_bar_config))
        return render(pipe, *args, **kwargs)

    monkeypatch.setattr(generation, "render_text_keyframes", spy)
    monkeypatch.setattr(loading, "load_pipeline", lambda *args, **kwargs: pipeline)
    config = apply_overrides(RerenderConfig(), {"base_model": str(tiny_pipeline_dir)})
    common = dict(frames=3, K=2, size=(64, 64), config=config, output=tmp_path / "a.mp4")
    text_keyframe_call("a cat", progress=False, **common)
    text_keyframe_call("a cat", progress=True, **common)
    assert seen == [{"leave": False, "disable": True}, {"leave": False}]
    assert pipeline._progress_bar_config == {"leave": False}


def test_download_with_only_local_sources_offline_says_there_is_nothing_to_fetch(tiny_pipeline_dir, capsys):
    # was: "`rerender download` needs the network, but HF_HUB_OFFLINE is set" (exit 2) with every model a folder
    args = ["download", "--model", str(tiny_pipeline_dir), "--set", f"control.0.model={tiny_pipeline_dir}/controlnet"]
    assert main([*args, "--no-flow"]) == 0
    out = capsys.readouterr().out
    assert f"{tiny_pipeline_dir}: local, nothing to fetch" in out and "needs the network" not in out
    assert out.rstrip().endswith("nothing to fetch: every source is local")


def test_every_command_but_eval_takes_config_and_set_and_eval_says_why_not(capsys):
    # was: README says every command has --config/--set, but `eval` has neither and did not say so; eval reads no
    # config option (its flags are all it takes), so the claim names the commands that do
    taking = ["translate", "keyframes", "propagate", "batch", "animate", "generate", "download", "env", "info"]
    for command in [*taking, "preprocess", "ui"]:
        main([command, "--help"])
        text = capsys.readouterr().out
        assert "--config" in text and "--set" in text, command
    main(["eval", "--help"])
    text = capsys.readouterr().out
    assert "--set" not in text.replace("no --config/--set", "") and "reads no config option" in text
