"""The sampling defaults follow the base model, as the size multiple and the negative prompt already did: the steps,
the guidance and the added prompt left unset are the model's own (`rerender.config.FAMILY_DEFAULTS`: FLUX.1 [dev]
and [schnell], Z-Image and Z-Image-Turbo apart), a value set always wins, and the CLI's help, the web page and the
docs show the one table."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# the known answers, written out here (not read from the table they check): (steps, guidance, added prompt)
SD_TAGS = "best quality, extremely detailed"
EXPECTED = {
    "sd15": (20, 7.5, SD_TAGS),  # the official Rerender's
    "sdxl": (20, 7.5, SD_TAGS),
    "flux-dev": (28, 3.5, ""),  # diffusers' FluxPipeline defaults
    "flux-schnell": (4, 0.0, ""),  # its model card: 4 steps, no guidance
    "zimage": (50, 6.0, ""),  # ZImagePipeline's 50 steps and guidance 5 (pos + 5·(pos − neg)) = 6 in our convention
    "zimage-turbo": (9, 1.0, ""),  # its model card: 9 steps (8 model calls), guidance off
}


@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory) -> tuple[Path, Path]:
    from tests.tiny_flux import save_tiny_flux

    return save_tiny_flux(tmp_path_factory.mktemp("flux"))  # schnell-shaped: no guidance embedding


@pytest.fixture(scope="module")
def tiny_flux_dev(tmp_path_factory) -> Path:
    """A tiny Flux base with a guidance embedding (dev-shaped), in a folder whose name does not say which."""
    from diffusers import FluxPipeline

    from tests.tiny_flux import make_tiny_flux_components

    folder = tmp_path_factory.mktemp("flux-dev")
    components = make_tiny_flux_components(folder / "_tokenizer", guidance_embeds=True)
    FluxPipeline(**components, image_encoder=None, feature_extractor=None).save_pretrained(folder / "base")
    return folder / "base"


@pytest.fixture(scope="module")
def tiny_zimage(tmp_path_factory) -> tuple[Path, Path]:
    from tests.tiny_zimage import save_tiny_zimage

    return save_tiny_zimage(tmp_path_factory.mktemp("zimage"))  # its folder is "z-image": the undistilled name


@pytest.fixture(scope="module")
def bases(tiny_flux, tiny_flux_dev, tiny_zimage, tiny_pipeline_dir, tiny_sdxl_dir, tmp_path_factory) -> dict:
    turbo = tmp_path_factory.mktemp("turbo") / "Z-Image-Turbo"  # the tiny model has Turbo's scheduler (shift 3)
    turbo.symlink_to(tiny_zimage[0], target_is_directory=True)
    undistilled = tmp_path_factory.mktemp("undistilled") / "z-image"  # the same, with Z-Image's scheduler (shift 6)
    undistilled.mkdir()
    for part in tiny_zimage[0].iterdir():
        if part.name != "scheduler":
            (undistilled / part.name).symlink_to(part, target_is_directory=part.is_dir())
    (undistilled / "scheduler").mkdir()
    scheduler = json.loads((tiny_zimage[0] / "scheduler" / "scheduler_config.json").read_text())
    (undistilled / "scheduler" / "scheduler_config.json").write_text(json.dumps({**scheduler, "shift": 6.0}))
    return {
        "sd15": tiny_pipeline_dir,
        "sdxl": tiny_sdxl_dir,
        "flux-dev": tiny_flux_dev,
        "flux-schnell": tiny_flux[0],
        "zimage": undistilled,
        "zimage-turbo": turbo,
    }


def _resolved(base: Path, **overrides):
    from rerender.workflow.preflight import check_run

    settings = {"model.base_model": str(base), **overrides}
    return check_run(None, overrides=settings, stage="keyframes", check_model=False).config


def _used(config) -> tuple:
    return config.sampling.num_inference_steps, config.sampling.guidance_scale, config.prompt.added_prompt


# ------------------------------------------------------------------------------------ 1. the family's own


def test_unset_the_steps_guidance_and_added_prompt_are_the_base_model_s_own(bases):
    from rerender.config import FAMILY_DEFAULTS, RerenderConfig

    unset = RerenderConfig()
    assert _used(unset) == (None, None, None)
    assert {variant: _used(_resolved(base)) for variant, base in bases.items()} == EXPECTED
    options = ("sampling.num_inference_steps", "sampling.guidance_scale", "prompt.added_prompt")  # as `_used`
    for position, option in enumerate(options):  # the table is these answers
        assert FAMILY_DEFAULTS[option] == {variant: values[position] for variant, values in EXPECTED.items()}, option


def test_the_variant_is_read_from_the_model_before_it_loads_and_the_loaded_pipeline_agrees(bases):
    """Preflight reads the variant from configs and names (`base_variant`); the loaded pipeline says its own
    (`variant`: Flux's guidance embedding, Z-Image-Turbo's name); both must agree, or the warnings and the defaults
    would contradict each other. A hub id that is not here is told by its name."""
    from rerender.config import ModelConfig
    from rerender.diffusion.loading import load_pipeline
    from rerender.weights import base_variant

    for variant, family in (("flux-dev", "flux"), ("flux-schnell", "flux"), ("zimage", "zimage")):
        assert base_variant(str(bases[variant]), family) == variant
    assert base_variant(str(bases["zimage-turbo"]), "zimage") == "zimage-turbo"
    names = {
        "black-forest-labs/FLUX.1-schnell": ("flux", "flux-schnell"),
        "black-forest-labs/FLUX.1-dev": ("flux", "flux-dev"),
        "Tongyi-MAI/Z-Image-Turbo": ("zimage", "zimage-turbo"),
        "Tongyi-MAI/Z-Image": ("zimage", "zimage"),
        "stabilityai/stable-diffusion-xl-base-1.0": ("sdxl", "sdxl"),
    }
    for name, (family, variant) in names.items():
        assert base_variant(name, family) == variant, name
    for variant in ("flux-dev", "zimage-turbo"):
        pipeline = load_pipeline(ModelConfig(base_model=str(bases[variant]), device="cpu"), ())
        assert pipeline.variant == variant
        assert pipeline.guidance_embedded if variant == "flux-dev" else pipeline.guidance_distilled


def test_a_caller_s_pipeline_or_no_diffusion_model_gives_the_defaults_too(bases):
    from rerender.config import ModelConfig
    from rerender.diffusion.loading import load_pipeline
    from rerender.workflow.preflight import check_run

    pipeline = load_pipeline(ModelConfig(base_model=str(bases["flux-schnell"]), device="cpu"), ())
    given = check_run(None, stage="keyframes", pipeline=pipeline, check_model=False).config
    assert _used(given) == EXPECTED["flux-schnell"]  # the pipeline's own variant, whatever model.base_model says
    assert _used(_resolved(bases["flux-dev"], renderer="classic")) == EXPECTED["sd15"]  # the stylizer: as before


# ------------------------------------------------------------------------------------ 2. a value set wins


def test_a_value_set_always_wins(bases, tmp_path):
    from rerender.config import load_config

    assert _used(_resolved(bases["flux-schnell"], guidance_scale=3.0, num_inference_steps=7, added_prompt="x")) == (
        7, 3.0, "x",
    )  # fmt: skip
    assert _used(_resolved(bases["sd15"], added_prompt="")) == (20, 7.5, "")  # "" adds nothing, even on SD
    assert _resolved(bases["zimage-turbo"], guidance_scale=0.0).sampling.guidance_scale == 0.0
    # a config file that states the old SD values keeps them on Flux dev: explicit, so not the model's
    path = tmp_path / "mine.yaml"
    path.write_text(
        f"model: {{base_model: '{bases['flux-dev']}'}}\nsampling: {{num_inference_steps: 20, guidance_scale: 7.5}}\n"
    )
    from rerender.workflow.preflight import check_run

    config = check_run(load_config(path), stage="keyframes", check_model=False).config
    assert _used(config) == (20, 7.5, "")
    # unset round-trips through a file as null, and stays the model's own
    from rerender.config import RerenderConfig, config_from_dict, config_to_dict

    data = config_to_dict(RerenderConfig())
    assert data["sampling"]["guidance_scale"] is None and data["prompt"]["added_prompt"] is None
    assert _used(config_from_dict(data)) == (None, None, None)


def test_a_value_out_of_range_is_still_refused_naming_it():
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.errors import ConfigError

    with pytest.raises(ConfigError, match=r"`sampling.guidance_scale` must be in \[0.0, 50.0\], got -1"):
        apply_overrides(RerenderConfig(), {"guidance_scale": -1})
    with pytest.raises(ConfigError, match=r"`sampling.num_inference_steps` must be in \[1, 1000\], got 0"):
        apply_overrides(RerenderConfig(), {"num_inference_steps": 0})


# ------------------------------------------------------- 3. schnell with the defaults: no warning; logged once


def _translate_first(base: Path, control: Path, clip: Path, tmp_path: Path, *extra: str) -> int:
    from rerender.cli import main

    settings = [f"control.model={control}", "resolution=64", "device=cpu", "flow_estimator=dis", *extra]
    command = ["translate", str(clip), "-p", "a cat", "-o", str(tmp_path / "out.mp4"), "-q", "--stage", "first"]
    return main([*command, "--model", str(base), *[part for s in settings for part in ("--set", s)]])


def test_schnell_with_the_defaults_runs_its_4_steps_without_the_guidance_warning(
    tiny_flux, synthetic_clip, tmp_path, caplog, monkeypatch
):
    """`--model <a schnell folder>` without configs/flux.yaml warned that guidance 7.5 is ignored, and ran 20 steps;
    now it runs schnell's 4 without guidance, says so once in the log, and a value set still warns as before."""
    from rerender.diffusion.flux import RerenderFluxPipeline

    steps = []
    real = RerenderFluxPipeline.prepare_schedule

    def spy(self, num_inference_steps, *args, **kwargs):
        steps.append(num_inference_steps)
        return real(self, num_inference_steps, *args, **kwargs)

    monkeypatch.setattr(RerenderFluxPipeline, "prepare_schedule", spy)
    base, control = tiny_flux
    with caplog.at_level(logging.INFO, logger="rerender"):
        assert _translate_first(base, control, synthetic_clip, tmp_path) == 0
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "guidance_scale" in m and "guidance embedding" in m], messages
    assert steps and set(steps) == {4}
    logged = [m for m in messages if "sampling.guidance_scale" in m]
    assert len(logged) == 1 and "FLUX.1 [schnell]" in logged[0], logged
    assert "sampling.guidance_scale 0.0 (the model's own)" in logged[0]
    assert "sampling.num_inference_steps 4 (the model's own)" in logged[0]

    caplog.clear()
    (tmp_path / "set").mkdir()
    with caplog.at_level(logging.INFO, logger="rerender"):
        assert _translate_first(base, control, synthetic_clip, tmp_path / "set", "guidance_scale=3") == 0
    messages = [record.getMessage() for record in caplog.records]
    assert [m for m in messages if "guidance_scale 3 on a Flux model without a guidance embedding" in m]
    assert [m for m in messages if "sampling.guidance_scale 3.0 (set)" in m]


def test_generate_with_an_unset_config_takes_the_model_s_steps_and_guidance(bases, tmp_path, monkeypatch, caplog):
    import torch

    import rerender.workflow.generation as generation

    seen = []

    def render(pipeline, prompt, indices, motion, size, **options):
        seen.append((options["num_inference_steps"], options["guidance_scale"]))
        return [torch.full((1, 3, size[1], size[0]), 0.5) for _ in indices]

    monkeypatch.setattr(generation, "render_text_keyframes", render)
    common = dict(frames=2, K=1, size=(64, 64), progress=False, device="cpu", flow_estimator="dis")
    generation.generate("a cat", output=tmp_path / "a.mp4", base_model=str(bases["flux-schnell"]), **common)
    generation.generate("a cat", output=tmp_path / "b.mp4", base_model=str(bases["flux-dev"]), **common)
    with caplog.at_level(logging.INFO, logger="rerender"):  # arguments win, and the log names them as set
        generation.generate(
            "a cat", output=tmp_path / "c.mp4", base_model=str(bases["flux-dev"]), num_inference_steps=3,
            guidance_scale=2.0, **common,
        )  # fmt: skip
    assert seen == [(4, 0.0), (28, 3.5), (3, 2.0)]
    logged = [record.getMessage() for record in caplog.records if "sampling.guidance_scale" in record.getMessage()]
    assert logged == [
        "on FLUX.1 [dev]: sampling.num_inference_steps 3 (set), sampling.guidance_scale 2.0 (set), "
        "prompt.added_prompt '' (the model's own)"
    ]


def test_the_pipelines_called_directly_take_their_base_s_own_too(tiny_flux, tiny_pipeline_dir, caplog, monkeypatch):
    """`pipeline(frames, prompt)` and `render_text_keyframes(pipeline, …)` without steps or guidance: the base's own
    (schnell ran 20 steps with guidance 7.5, and warned about it); SD keeps the official 20 and 7.5."""
    import numpy as np
    import torch

    from rerender.config import ControlConfig, ModelConfig
    from rerender.diffusion.loading import load_pipeline
    from rerender.diffusion.text2video import render_text_keyframes

    base, control = tiny_flux
    flux = load_pipeline(ModelConfig(base_model=str(base), device="cpu"), (ControlConfig(model=str(control)),))
    sd = load_pipeline(ModelConfig(base_model=str(tiny_pipeline_dir), device="cpu"), ())
    for pipeline in (flux, sd):
        pipeline.set_progress_bar_config(disable=True)
    assert flux.sampling_defaults(None, None) == EXPECTED["flux-schnell"][:2]
    assert sd.sampling_defaults(None, None) == EXPECTED["sd15"][:2] and sd.sampling_defaults(3, 2.0) == (3, 2.0)
    seen = []
    real = type(flux).prepare_schedule

    def spy(self, num_inference_steps, *args, **kwargs):
        seen.append(num_inference_steps)
        return real(self, num_inference_steps, *args, **kwargs)

    monkeypatch.setattr(type(flux), "prepare_schedule", spy)
    frame = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    with caplog.at_level(logging.WARNING, logger="rerender"):
        flux([frame], "a cat", generator=torch.Generator().manual_seed(0), output_type="pt")
        render_text_keyframes(flux, "a cat", [0, 1], (2.0, 0.0), (64, 64), generator=torch.Generator().manual_seed(0))
    assert seen == [4, 4] and not [r for r in caplog.records if "guidance" in r.getMessage()], caplog.text


# ---------------------------------------------------------------- 4. the CLI's help, the web page and the docs


def _table_text(option: str) -> list[str]:
    """The words each base's value must appear in, from the known answers above."""
    from rerender.config import VARIANT_NAMES

    position = ["sampling.num_inference_steps", "sampling.guidance_scale", "prompt.added_prompt"].index(option)
    words = []
    for variant, values in EXPECTED.items():
        value = values[position]
        words.append((f'"{value}"' if isinstance(value, str) else f"{value:g}", VARIANT_NAMES[variant]))
    return words


def _shows_table(text: str, option: str) -> bool:
    """Each base appears in the text in parentheses after its value (`7.5 (SD 1.5, SDXL)`)."""
    for value, name in _table_text(option):
        groups = re.findall(re.escape(value) + r" \(([^)]*\))", text)
        if not any(name in group for group in groups):
            return False
    return True


def test_the_help_texts_show_the_family_table(capsys):
    from rerender.cli import build_parser
    from rerender.config import field_help

    for option in ("sampling.num_inference_steps", "sampling.guidance_scale", "prompt.added_prompt"):
        assert _shows_table(field_help(option), option), field_help(option)
        assert _shows_table(field_help(option.rpartition(".")[2]), option)  # by its leaf name too
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert _shows_table(help_text, "sampling.num_inference_steps"), help_text


def test_the_config_reference_and_the_guide_show_the_family_table():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_reference", REPO / "docs" / "scripts" / "gen_reference.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    reference = gen.config_markdown()
    for option in ("sampling.num_inference_steps", "sampling.guidance_scale", "prompt.added_prompt"):
        row = next(line for line in reference.splitlines() if line.startswith(f"| `{option}`"))
        assert "`null`" in row and _shows_table(row, option), row
    # the guide's table, row by row: option, then one column per base in the order of its header
    guide = (REPO / "docs" / "guides" / "transformer-models.md").read_text(encoding="utf-8")
    header = next(line for line in guide.splitlines() if line.startswith("|") and "FLUX.1 [schnell]" in line)
    columns = [cell.strip() for cell in header.strip("|").split("|")][1:]
    assert columns == ["SD 1.5, SDXL", "FLUX.1 [dev]", "FLUX.1 [schnell]", "Z-Image", "Z-Image-Turbo"]
    variants = ["sd15", "flux-dev", "flux-schnell", "zimage", "zimage-turbo"]
    for position, option in enumerate(["sampling.num_inference_steps", "sampling.guidance_scale"]):
        row = next(line for line in guide.splitlines() if line.startswith(f"| `{option}`"))
        cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
        assert [cell.split()[0] for cell in cells] == [f"{EXPECTED[v][position]:g}" for v in variants], row


def test_the_web_page_leaves_steps_and_guidance_to_the_model_when_empty():
    from rerender.ui.fields import SLIDERS, field_spec, value_of

    for option in ("sampling.num_inference_steps", "sampling.guidance_scale"):
        spec = field_spec(option)
        assert option not in SLIDERS and spec.optional and spec.default is None  # a number box, empty by default
        assert value_of(spec, None) is None and _shows_table(spec.doc, option)
    assert value_of(field_spec("prompt.added_prompt"), "") is None  # empty box: the model's own
