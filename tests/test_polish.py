"""Last round's leftovers on the transformer bases (Flux, Z-Image), each as a user of the field expects:
the size multiple and the negative prompt come from the model's family, options a base ignores warn, the CLI keeps
other libraries' warnings away unless --verbose, and `generate` loads no ControlNet."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory) -> tuple[Path, Path]:
    from tests.tiny_flux import save_tiny_flux

    return save_tiny_flux(tmp_path_factory.mktemp("flux"))


@pytest.fixture(scope="module")
def tiny_zimage(tmp_path_factory) -> tuple[Path, Path]:
    from tests.tiny_zimage import save_tiny_zimage

    return save_tiny_zimage(tmp_path_factory.mktemp("zimage"))


def _tiny_run(control: Path) -> list[str]:
    settings = [
        f"control.model={control}",
        "num_inference_steps=1",
        "resolution=64",
        "device=cpu",
        "flow_estimator=dis",
    ]
    return [part for setting in settings for part in ("--set", setting)]


# ------------------------------------------------------------------ 3. third-party warnings only with --verbose


@pytest.mark.slow  # a fresh process / several renders: run with -m slow
def test_a_flux_run_on_the_cli_prints_no_third_party_warnings(tiny_flux, synthetic_clip, tmp_path):
    """transformers' torchvision fallbacks and diffusers' deprecations printed on every run; the user sees none of
    them (a fresh process, as the user runs it), and still sees our own warnings."""
    base, control = tiny_flux
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY", "PYTHONWARNINGS")
    }
    environment.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "rerender.cli", "translate", str(synthetic_clip), "-p", "a cat", "-q"]
    command += ["-o", str(tmp_path / "out.mp4"), "--stage", "first", "--model", str(base), *_tiny_run(control)]
    command += ["--set", "size_multiple=16", "--set", "guidance_scale=3"]  # our own warning: schnell has no guidance
    finished = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=environment, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "[transformers]" not in finished.stderr and "Warning:" not in finished.stderr, finished.stderr
    assert "guidance_scale 3 on a Flux model without a guidance embedding" in finished.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_the_cli_hides_other_libraries_warnings_unless_verbose_and_restores_everything(verbose, capsys):
    from rerender.cli.base import third_party_messages

    library = logging.getLogger("transformers.image_processing_utils")
    hub = logging.getLogger("huggingface_hub.file_download")
    ours = logging.getLogger("rerender.diffusion.flux")
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    level_before = logging.getLogger("transformers").level
    environment_before = {name: os.environ.get(name) for name in ("TRANSFORMERS_VERBOSITY", "PYTHONWARNINGS")}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            filters_before = list(warnings.filters)
            with third_party_messages(verbose):
                for source in (library, hub, ours):
                    source.propagate = True
                hub.warning("hub says")
                ours.warning("ours says")
                hub.error("hub fails")
                warnings.warn_explicit("a deprecation", FutureWarning, "embeddings.py", 1, module="diffusers.models")
                warnings.warn_explicit("ours", UserWarning, "flux.py", 1, module="rerender.diffusion.flux")
                in_block = logging.getLogger("transformers").getEffectiveLevel()
            assert warnings.filters == filters_before
    finally:
        logging.getLogger().removeHandler(handler)
    err = capsys.readouterr().err
    assert "ours says" in err and "hub fails" in err
    assert ("hub says" in err) is verbose and [str(w.message) for w in caught] == (
        ["a deprecation", "ours"] if verbose else ["ours"]
    )
    assert (in_block == logging.ERROR) is not verbose
    assert logging.getLogger("transformers").level == level_before
    assert {name: os.environ.get(name) for name in environment_before} == environment_before


def test_the_library_sets_no_warnings_filter_and_no_logging_handler():
    """Importing the library and checking a run configure neither warnings filters nor logging: every call that
    would is recorded with its caller, and none comes from rerender (other libraries add filters of their own)."""
    code = """
import logging, sys, warnings
callers = []
def recording(function):
    def record(*args, **kwargs):
        callers.append((function.__name__, sys._getframe(1).f_globals.get("__name__", "")))
        return function(*args, **kwargs)
    return record
warnings.filterwarnings = recording(warnings.filterwarnings)
warnings.simplefilter = recording(warnings.simplefilter)
logging.basicConfig = recording(logging.basicConfig)
logging.Logger.addHandler = recording(logging.Logger.addHandler)
logging.Logger.setLevel = recording(logging.Logger.setLevel)
import rerender, rerender.diffusion.flux, rerender.diffusion.zimage, rerender.workflow.generation
import rerender.workflow.translation
from rerender.workflow.preflight import check_run
check_run(None, stage="keyframes", check_model=False)
ours = [call for call in callers if call[1].split(".")[0] in ("rerender", "ebsynth_bridge")]
assert callers and not ours, ours
"""
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert finished.returncode == 0, finished.stderr


# --------------------------------------------------- 1. the size multiple and 2. the negative prompt of the family


def _resolved(base: Path, control: Path | None = None, **overrides):
    from rerender.workflow.preflight import check_run

    settings = {"model.base_model": str(base), **overrides}
    if control is not None:
        settings["control.model"] = str(control)
    return check_run(None, overrides=settings, stage="keyframes", check_model=False).config


@pytest.fixture(scope="module")
def bases(tiny_flux, tiny_zimage, tiny_pipeline_dir, tiny_sdxl_dir) -> dict[str, Path]:
    return {"flux": tiny_flux[0], "zimage": tiny_zimage[0], "sd15": tiny_pipeline_dir, "sdxl": tiny_sdxl_dir}


def test_the_size_multiple_is_the_model_family_s_own_unless_set(bases):
    from rerender.config import RerenderConfig

    assert RerenderConfig().video.size_multiple is None
    assert {family: _resolved(base).video.size_multiple for family, base in bases.items()} == {
        "flux": 16, "zimage": 16, "sd15": 8, "sdxl": 8,
    }  # fmt: skip
    assert _resolved(bases["sd15"], size_multiple=64).video.size_multiple == 64  # the user's, when the model takes it
    assert _resolved(bases["flux"], renderer="classic").video.size_multiple == 8  # the stylizer takes any size


@pytest.mark.parametrize("family", ["flux", "zimage"])
def test_a_size_multiple_the_model_cannot_take_is_refused_naming_the_option_the_value_and_the_model_s(
    family, bases, monkeypatch
):
    import rerender.diffusion.loading
    from rerender.errors import ConfigError

    monkeypatch.setattr(rerender.diffusion.loading, "load_pipeline", lambda *args: pytest.fail("the model was loaded"))
    with pytest.raises(ConfigError) as refused:
        _resolved(bases[family], size_multiple=8)
    message = str(refused.value)
    assert "`video.size_multiple` is 8" in message and "multiples of 16" in message
    assert {"flux": "Flux", "zimage": "Z-Image"}[family] in message


def test_the_family_table_is_what_the_pipelines_take(tiny_flux, tiny_zimage, tiny_pipeline_dir, tiny_sdxl_dir):
    """`FAMILY_SIZE_MULTIPLES` (read before any model loads) is what each loaded pipeline takes (its `size_multiple`:
    VAE factor × patch size; the tiny UNet models' VAEs are 2× only, so 8 is a multiple of theirs), and a caller's
    own pipeline gives its multiple to the run."""
    from rerender.config import FAMILY_SIZE_MULTIPLES, ControlConfig, ModelConfig
    from rerender.diffusion.loading import load_pipeline
    from rerender.workflow.preflight import check_run

    folders = {
        "flux": tiny_flux,
        "zimage": tiny_zimage,
        "sd15": (tiny_pipeline_dir, None),
        "sdxl": (tiny_sdxl_dir, None),
    }
    for family, (base, control) in folders.items():
        controls = (ControlConfig(model=str(control)),) if control is not None else (ControlConfig(),)
        pipeline = load_pipeline(ModelConfig(base_model=str(base), device="cpu"), controls)
        assert pipeline.family == family and FAMILY_SIZE_MULTIPLES[family] % pipeline.size_multiple == 0
        if control is not None:  # the transformers' tiny VAEs have the real 8× factor
            assert pipeline.size_multiple == FAMILY_SIZE_MULTIPLES[family] == 16
        given = check_run(None, stage="keyframes", pipeline=pipeline, check_model=False).config
        assert given.video.size_multiple == FAMILY_SIZE_MULTIPLES[family]
    pipeline.vae_scale_factor = 32  # a model whose VAE is 32× down: its frames must be multiples of 32
    assert check_run(None, stage="keyframes", pipeline=pipeline, check_model=False).config.video.size_multiple == 32


def test_a_flux_folder_with_the_default_config_renders_at_sizes_it_takes(tiny_flux, synthetic_clip, tmp_path, capsys):
    """`--model <a Flux folder>` and nothing else about sizes: the 96×64 clip at 64 px becomes 64×48 (16s), not
    64×40 (a multiple of 8 only, which Flux cannot take)."""
    from PIL import Image

    from rerender.cli import main

    base, control = tiny_flux
    output = tmp_path / "out.mp4"
    code = main(
        [
            "translate", str(synthetic_clip), "-p", "a cat", "-o", str(output), "-q", "--stage", "first",
            "--model", str(base), *_tiny_run(control), "--set", "guidance_scale=0",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with Image.open(tmp_path / "out.mp4.work" / "keyframes" / "0000.png") as keyframe:
        assert keyframe.size == (64, 48)


def test_the_default_negative_prompt_is_the_family_s(bases):
    from rerender.config import DEFAULT_NEGATIVE_PROMPT, default_negative_prompt

    negatives = {family: _resolved(base).prompt.negative_prompt for family, base in bases.items()}
    assert negatives == {"flux": "", "zimage": "", "sd15": DEFAULT_NEGATIVE_PROMPT, "sdxl": DEFAULT_NEGATIVE_PROMPT}
    # Flux with true classifier-free guidance has a negative branch: the default one steers it
    assert _resolved(bases["flux"], true_cfg_scale=3.0).prompt.negative_prompt == DEFAULT_NEGATIVE_PROMPT
    assert default_negative_prompt("flux", 3.0) == DEFAULT_NEGATIVE_PROMPT == default_negative_prompt(None)
    # what the user sets is kept, the empty prompt included
    assert _resolved(bases["sd15"], negative_prompt="").prompt.negative_prompt == ""
    assert _resolved(bases["flux"], negative_prompt="blurry").prompt.negative_prompt == "blurry"


# ------------------------------------------------------------- 4. options that do nothing on a base say so


def test_an_option_of_another_base_warns_naming_it_and_the_bases_that_use_it(bases, caplog):
    cases = [
        ("sd15", {"true_cfg_scale": 3.0}, "`sampling.true_cfg_scale`", "only Flux uses it"),
        ("sdxl", {"true_cfg_scale": 3.0}, "`sampling.true_cfg_scale`", "only Flux uses it"),
        ("sd15", {"cross_frame_blocks": 4}, "`constraints.cross_frame_blocks`", "only Z-Image and Flux use it"),
        (
            "flux",
            {"freeu": {"b1": 1.1, "b2": 1.2, "s1": 0.9, "s2": 0.2}},
            "`constraints.freeu`",
            "only SD 1.5 and SDXL",
        ),
        ("zimage", {"loose_cross_frame_attention": True}, "`constraints.loose_cross_frame_attention`", "only SD 1.5"),
    ]
    for family, overrides, option, bases_named in cases:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rerender"):
            _resolved(bases[family], **overrides)
        warned = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        assert len(warned) == 1 and option in warned[0] and bases_named in warned[0], (family, warned)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rerender"):  # where each acts, and at its default: nothing
        _resolved(bases["flux"], true_cfg_scale=3.0, cross_frame_blocks=2)
        _resolved(bases["sd15"])
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


# ----------------------------------------------------------------- 5. `generate` loads no ControlNet


@pytest.mark.parametrize("family", ["sd15", "flux", "zimage"])
def test_generate_loads_no_controlnet_and_needs_none_named(family, bases, tmp_path, monkeypatch):
    """Text2Video-Zero has no control: `generate` neither loads a ControlNet nor asks for one (on Flux, which has no
    default ControlNet, one had to be named; Z-Image loaded its Union ControlNet for nothing)."""
    import rerender.diffusion.loading as loading
    from rerender.video import probe_video
    from rerender.workflow.generation import generate

    loaded = []
    real = loading.load_pipeline

    def spy(model, controls=(), **options):
        pipeline = real(model, controls, **options)
        loaded.append((tuple(controls), getattr(pipeline, "controlnet", "absent")))
        return pipeline

    monkeypatch.setattr(loading, "load_pipeline", spy)
    output = tmp_path / "gen.mp4"
    result = generate(
        "a cat", frames=3, K=2, output=output, size=(64, 64), motion=(2.0, 0.0), num_inference_steps=2,
        config=None, progress=False, base_model=str(bases[family]), device="cpu", flow_estimator="dis",
        guidance_scale=1.0,
    )  # fmt: skip
    assert loaded == [((), None)]
    assert result.frame_count == 3 and probe_video(output).frame_count == 3


def test_a_pipeline_loaded_without_a_controlnet_refuses_frames_to_restyle(bases):
    import numpy as np

    from rerender.config import ModelConfig
    from rerender.diffusion.loading import load_pipeline
    from rerender.errors import ConfigError

    pipeline = load_pipeline(ModelConfig(base_model=str(bases["sd15"]), device="cpu"), ())
    assert pipeline.controlnet is None and pipeline.controlnets == []
    frames = [np.zeros((64, 64, 3), np.uint8)]
    with pytest.raises(ConfigError, match="without a ControlNet"):
        pipeline(frames, "a cat", num_inference_steps=2)


def test_generate_refuses_a_size_the_model_cannot_take_before_it_loads(bases, tmp_path, monkeypatch):
    import rerender.diffusion.loading as loading
    from rerender.errors import ConfigError
    from rerender.workflow.generation import generate

    monkeypatch.setattr(loading, "load_pipeline", lambda *args, **kwargs: pytest.fail("the model was loaded"))
    with pytest.raises(ConfigError, match=r"`size` must be multiples of 16 on Flux .*got 72×64"):
        generate("a cat", frames=3, K=2, output=tmp_path / "x.mp4", size=(72, 64), base_model=str(bases["flux"]))


def test_generate_takes_the_steps_from_the_config_as_the_presets_set_them(bases, tmp_path, monkeypatch):
    """`--config configs/flux.yaml` means 4 steps on schnell: `generate` ran 20 whatever the config said."""
    import torch

    import rerender.workflow.generation as generation
    from rerender.config import RerenderConfig, apply_overrides

    seen = []

    def render(pipeline, prompt, indices, motion, size, **options):
        seen.append(options["num_inference_steps"])
        return [torch.full((1, 3, size[1], size[0]), 0.5) for _ in indices]

    monkeypatch.setattr(generation, "render_text_keyframes", render)
    config = apply_overrides(RerenderConfig(), {"num_inference_steps": 4, "base_model": str(bases["flux"])})
    common = dict(frames=3, K=2, size=(64, 64), config=config, progress=False, device="cpu", flow_estimator="dis")
    generation.generate("a cat", output=tmp_path / "a.mp4", **common)
    generation.generate("a cat", output=tmp_path / "b.mp4", num_inference_steps=6, **common)
    assert seen == [4, 6]


def test_the_web_page_s_text_mode_loads_no_controlnet_and_reuses_a_loaded_model(bases, tmp_path):
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.ui.sessions import UiSessions

    sessions = UiSessions(root=tmp_path)
    flux = apply_overrides(RerenderConfig(), {"base_model": str(bases["flux"]), "device": "cpu"})
    pipeline = sessions.pipeline_for(flux, control=False)  # the SD default ControlNet is neither loaded nor refused
    assert pipeline.family == "flux" and pipeline.controlnet is None
    assert sessions.pipeline_for(flux, control=False) is pipeline
    sd = apply_overrides(RerenderConfig(), {"base_model": str(bases["sd15"]), "device": "cpu"})
    restyling = sessions.pipeline_for(sd)  # with its ControlNet, for a video
    assert restyling.controlnet is not None and sessions.pipeline_for(sd, control=False) is restyling
